// Process hardening for the binaries that hold keys (lethed, lethe-agent, lethectl).
#pragma once

namespace lethe {

// No core dumps: a crash must not write the signing key, request keys or subject identities
// held in memory to disk. Sets RLIMIT_CORE to 0 and marks the process non-dumpable (which
// also keeps other processes of the same user from ptrace-attaching).
void DisableCoreDumps();

}  // namespace lethe
