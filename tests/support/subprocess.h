// Child processes for tests: spawn, signal, wait with a deadline, and poll for conditions.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lethe::testing {

// One child process, started in a process group of its own (pgid == pid).
// Not thread safe: use one Subprocess from one thread at a time.
class Subprocess {
 public:
  // Starts argv[0] (a path; PATH is not searched) with the given args. stdin is /dev/null;
  // stdout and stderr are appended to `log_path` (created if absent). The environment is
  // inherited, plus `extra_env` entries "K=V" (which replace inherited variables of the same
  // name). If `cwd` is non-empty the child starts in that directory. Fails (without a child
  // left behind) if the program cannot be executed.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Spawn(std::vector<std::string> argv,
                                                           const std::string& log_path,
                                                           std::vector<std::string> extra_env = {},
                                                           const std::string& cwd = "");

  // SIGKILLs the whole process group (also when the child itself has already exited, so that
  // stray grandchildren die too) and reaps the child if it has not been reaped yet.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Sends `sig` to the child's process group (the child and anything it started that stayed
  // in its group). Does nothing once the child has been reaped.
  void Kill(int sig);

  // Waits up to `timeout` for the child to exit; returns the raw wait status (use WIFEXITED,
  // WEXITSTATUS, WIFSIGNALED, WTERMSIG) or DeadlineExceeded. After the child has been reaped,
  // returns the same status again immediately.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // Non-blocking: true while the child has not exited (reaps it if it has).
  bool Running();

  // The exit status, if the child has been reaped.
  std::optional<int> exit_status() const { return status_; }

  // The current contents of the log file ("" if it cannot be read).
  std::string Log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  Subprocess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  bool Poll();  // waitpid(WNOHANG); true once reaped.

  pid_t pid_;
  std::string log_path_;
  std::optional<int> status_;
};

// The result of RunCommand. exit_code is the exit status, or 128+N if killed by signal N.
struct CommandResult {
  int exit_code;
  std::string output;  // combined stdout + stderr
};

// Runs a command to completion. If it does not finish within `timeout` its process group is
// killed and DeadlineExceeded is returned (with the output so far in the message). Anything
// the command leaves running in its process group is killed when it exits (daemons that call
// setsid(), like the postmaster that pg_ctl starts, survive).
absl::StatusOr<CommandResult> RunCommand(std::vector<std::string> argv, absl::Duration timeout,
                                         std::vector<std::string> extra_env = {},
                                         const std::string& cwd = "");

// Polls `condition` every 10 ms until it returns true or `timeout` passes; returns whether it
// became true. The condition is always evaluated at least once, and once more at the deadline.
// No wait outlasts the test's time budget (TestTimeLeft): a hang fails with the caller's own
// message, and a note on stderr, before ctest's timeout kills the test without one.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);
// The same on an injected clock (for WaitFor's own test); no test budget applies.
struct WaitClock {
  std::function<absl::Time()> now;
  std::function<void(absl::Duration)> sleep;
};
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout, const WaitClock& clock);

// Every test gets a time budget, 240 s (LETHE_TEST_BUDGET_SECONDS) of ctest's 300 s timeout,
// counted from the start of its process: WaitFor and RunCommand stop there. Infinite when the
// process runs more than one test.
absl::Duration TestTimeBudget();
absl::Duration TestTimeLeft();

// Reads a whole file; "" if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// The last `max_lines` lines of `text` (for error messages).
std::string Tail(const std::string& text, int max_lines = 30);

// The first python3 that runs `import <modules>`: $LETHE_PYTHON3, then /usr/bin/python3, then
// a python3 on PATH. "" when none does, with *why saying what each one lacked.
std::string FindPython3(const std::string& modules, std::string* why);

}  // namespace lethe::testing
