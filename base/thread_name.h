// Names threads, as `top -H`, `ps -L`, perf and /proc/<pid>/task/*/comm show them: every
// long-lived thread of lethed and lethe-agent is started by NamedThread, so that an operator
// can tell which one spins or blocks, and a profile can tell them apart.
#pragma once

#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace lethe {

// Linux keeps 15 bytes of a thread's name; a longer name is cut to that.
void NameThisThread(std::string_view name);

// A thread that names itself `name`, then runs `body`.
template <typename Body>
std::thread NamedThread(std::string_view name, Body body) {
  return std::thread([name = std::string(name), body = std::move(body)]() mutable {
    NameThisThread(name);
    body();
  });
}

}  // namespace lethe
