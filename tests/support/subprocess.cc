#include "tests/support/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace lethe::testing {
namespace {

std::string ErrnoText(int err) { return std::string(strerror(err)); }

// The inherited environment with `extra` ("K=V") entries replacing or adding variables.
std::vector<std::string> BuildEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  auto key_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv(*e);
    std::string key = key_of(kv);
    bool overridden = std::any_of(extra.begin(), extra.end(),
                                  [&](const std::string& x) { return key_of(x) == key; });
    if (!overridden) env.push_back(std::move(kv));
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Sleeps a little, never past `deadline`; the pause grows from 1 ms to `max_pause`.
void PauseUntil(absl::Time deadline, absl::Duration& pause, absl::Duration max_pause) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return;
  absl::SleepFor(std::min(left, pause));
  pause = std::min(pause * 2, max_pause);
}

}  // namespace

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string Tail(const std::string& text, int max_lines) {
  if (max_lines <= 0) return "";
  size_t pos = text.size();
  // Ignore one trailing newline so that "a\nb\n" has two lines.
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  int lines = 0;
  while (pos > 0) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    if (++lines == max_lines) return text.substr(nl + 1);
    pos = nl;
  }
  return text;
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Spawn(std::vector<std::string> argv,
                                                              const std::string& log_path,
                                                              std::vector<std::string> extra_env,
                                                              const std::string& cwd) {
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("Subprocess::Spawn: empty argv");
  }
  for (const std::string& kv : extra_env) {
    if (kv.find('=') == std::string::npos || kv.front() == '=') {
      return absl::InvalidArgumentError(absl::StrCat("Subprocess::Spawn: bad env entry '", kv,
                                                     "' (want K=V)"));
    }
  }
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(
        absl::StrCat("Subprocess::Spawn: cannot open log ", log_path, ": ", ErrnoText(errno)));
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, log_fd, STDERR_FILENO);
  // Do not leak the parent's descriptors (sockets, pipes) into long-lived children.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());

  // Own process group; default signal dispositions and an empty signal mask, whatever the
  // test runner did to its own.
  sigset_t all, none;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  sigemptyset(&none);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);

  std::vector<std::string> env = BuildEnv(extra_env);
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_env = CStrings(env);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, &attr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(log_fd);
  if (rc != 0) {
    // glibc reports exec failures (ENOENT, EACCES, a bad cwd) here, and reaps the child.
    return absl::FailedPreconditionError(absl::StrCat(
        "Subprocess::Spawn: cannot run ", absl::StrJoin(argv, " "), ": ", ErrnoText(rc)));
  }
  return std::unique_ptr<Subprocess>(new Subprocess(pid, log_path));
}

Subprocess::~Subprocess() {
  // The group outlives its leader while any member is alive; kill it either way.
  ::kill(-pid_, SIGKILL);
  if (!status_) {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

void Subprocess::Kill(int sig) {
  if (status_) return;  // Reaped: the pid may belong to someone else now.
  if (::kill(-pid_, sig) < 0 && errno == ESRCH) ::kill(pid_, sig);
}

bool Subprocess::Poll() {
  if (status_) return true;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = st;
    return true;
  }
  if (r < 0 && errno == ECHILD) {
    // Someone else reaped it (e.g. SIGCHLD set to SIG_IGN). The status is lost.
    status_ = -1;
    return true;
  }
  return false;
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    if (Poll()) {
      if (*status_ == -1) {
        return absl::InternalError(
            absl::StrCat("pid ", pid_, " was reaped elsewhere; exit status unknown"));
      }
      return *status_;
    }
    if (absl::Now() >= deadline) break;
    PauseUntil(deadline, pause, absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("pid ", pid_, " still running after ", absl::FormatDuration(timeout)));
}

bool Subprocess::Running() { return !Poll(); }

std::string Subprocess::Log() const { return ReadFileOrEmpty(log_path_); }

absl::StatusOr<CommandResult> RunCommand(std::vector<std::string> argv, absl::Duration timeout,
                                         std::vector<std::string> extra_env,
                                         const std::string& cwd) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "lethe-cmd-XXXXXX").string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("RunCommand: mkstemp: ", ErrnoText(errno)));
  }
  ::close(fd);
  struct Cleanup {
    std::string path;
    ~Cleanup() { ::unlink(path.c_str()); }
  } cleanup{tmpl};

  std::string what = absl::StrJoin(argv, " ");
  auto child = Subprocess::Spawn(std::move(argv), tmpl, std::move(extra_env), cwd);
  if (!child.ok()) return child.status();
  const absl::Duration left = TestTimeLeft();
  absl::StatusOr<int> st = (*child)->Wait(std::min(timeout, left));
  if (!st.ok() && left < timeout)
    st = absl::DeadlineExceededError(absl::StrCat(
        "stopped at the test's time budget (", absl::FormatDuration(TestTimeBudget()),
        ", before the ctest timeout), not at its own timeout of ", absl::FormatDuration(timeout)));
  if (!st.ok()) {
    (*child)->Kill(SIGKILL);
    (void)(*child)->Wait(absl::Seconds(5));
    return absl::Status(st.status().code(),
                        absl::StrCat("RunCommand(", what, "): ", st.status().message(),
                                     "; output:\n", Tail((*child)->Log())));
  }
  CommandResult result;
  if (WIFEXITED(*st)) {
    result.exit_code = WEXITSTATUS(*st);
  } else if (WIFSIGNALED(*st)) {
    result.exit_code = 128 + WTERMSIG(*st);
  } else {
    result.exit_code = -1;
  }
  // Kill anything the command left running in its group before reading the output.
  child->reset();
  result.output = ReadFileOrEmpty(tmpl);
  return result;
}

absl::Duration TestTimeBudget() {
  static const absl::Duration budget = [] {
    const char* v = std::getenv("LETHE_TEST_BUDGET_SECONDS");
    int64_t seconds = 240;
    if (v != nullptr && *v != '\0') seconds = std::strtoll(v, nullptr, 10);
    return absl::Seconds(seconds > 0 ? seconds : 240);
  }();
  return budget;
}

absl::Duration TestTimeLeft() {
  const ::testing::UnitTest* unit = ::testing::UnitTest::GetInstance();
  // A budget per process is a budget per test only when the process runs one (as ctest runs
  // them); a binary run by hand over many tests waits as long as each wait asks.
  if (unit == nullptr || unit->test_to_run_count() != 1 || unit->start_timestamp() == 0)
    return absl::InfiniteDuration();
  const absl::Time started = absl::FromUnixMillis(unit->start_timestamp());
  return std::max(absl::ZeroDuration(), started + TestTimeBudget() - absl::Now());
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  return WaitFor(condition, timeout, WaitClock{});
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout, const WaitClock& clock) {
  const auto now = clock.now ? clock.now : [] { return absl::Now(); };
  const auto sleep = clock.sleep ? clock.sleep : [](absl::Duration d) { absl::SleepFor(d); };
  const absl::Duration left_of_test = clock.now ? absl::InfiniteDuration() : TestTimeLeft();
  const bool capped = left_of_test < timeout;
  const absl::Time deadline = now() + std::min(timeout, left_of_test);
  while (true) {
    if (condition()) return true;
    absl::Duration left = deadline - now();
    if (left <= absl::ZeroDuration()) {
      if (capped)
        std::fprintf(stderr,
                     "WaitFor: gave up at the test's time budget (%s, before the ctest timeout) "
                     "instead of waiting the %s asked for\n",
                     absl::FormatDuration(TestTimeBudget()).c_str(), absl::FormatDuration(timeout).c_str());
      return false;
    }
    sleep(std::min(left, absl::Milliseconds(10)));
  }
}

std::string FindPython3(const std::string& modules, std::string* why) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("LETHE_PYTHON3"); env != nullptr && *env != '\0') candidates.push_back(env);
  candidates.push_back("/usr/bin/python3");
  if (const char* path = std::getenv("PATH"); path != nullptr)
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty()))
      candidates.push_back(absl::StrCat(dir, "/python3"));
  for (const std::string& py : candidates) {
    if (::access(py.c_str(), X_OK) != 0) continue;
    auto r = RunCommand({py, "-c", "import " + modules}, absl::Seconds(60));
    if (r.ok() && r->exit_code == 0) return py;
    absl::StrAppend(why, "\n  ", py, ": ", r.ok() ? Tail(r->output, 2) : r.status().ToString());
  }
  if (why->empty()) *why = "\n  no python3 found";
  return "";
}

}  // namespace lethe::testing
