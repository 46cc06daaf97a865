// Names the calling thread, as `top -H`, `ps -L`, perf and /proc/<pid>/task/*/comm show it:
// every long-lived thread of lethed and lethe-agent names itself when it starts, so that an
// operator can tell which one spins or blocks, and a profile can tell them apart.
#pragma once

#include <string_view>

namespace lethe {

// Linux keeps 15 bytes of a thread's name; a longer name is cut to that.
void NameThisThread(std::string_view name);

}  // namespace lethe
