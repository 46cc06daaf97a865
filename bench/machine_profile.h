// MachineProfile: `perf record -a -g -o FILE` over the whole machine (lethed, its broker, the
// agents and PostgreSQL's backends are separate processes or threads) for one stretch of a
// benchmark: armed with a file, started and stopped around the part to profile; only the
// first stretch after arming is recorded. A benchmark's `--perf-out FILE` arms it.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace lethe::bench {

class MachineProfile {
 public:
  MachineProfile() = default;
  MachineProfile(const MachineProfile&) = delete;
  MachineProfile& operator=(const MachineProfile&) = delete;
  ~MachineProfile() { Stop(); }

  void Arm(std::string out) { out_ = std::move(out); }
  void Start() {
    if (out_.empty() || pid_ > 0) return;
    std::vector<std::string> argv = {"perf", "record", "-a", "-g", "-q", "-o", out_};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, "perf", nullptr, nullptr, args.data(), environ) != 0) {
      fprintf(stderr, "cannot start perf: no profile written\n");
      pid_ = -1;
      out_.clear();
    }
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    out_.clear();
  }

 private:
  std::string out_;
  pid_t pid_ = -1;
};

}  // namespace lethe::bench
