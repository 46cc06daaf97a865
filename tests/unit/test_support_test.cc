// Tests of the test helpers themselves: PgCluster (a real PostgreSQL 15) and Subprocess.
// A missing or broken PostgreSQL must fail these tests, never skip them.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<PgCluster> MustStart() {
  absl::Time t0 = absl::Now();
  auto c = PgCluster::Start();
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return nullptr;
  std::printf("PgCluster at %s: initdb %s, start %s, total %s\n", (*c)->base_dir().c_str(),
              absl::FormatDuration((*c)->initdb_duration()).c_str(),
              absl::FormatDuration((*c)->start_duration()).c_str(),
              absl::FormatDuration(absl::Now() - t0).c_str());
  return std::move(*c);
}

// A temp file path, removed at the end of the test.
class TempPath {
 public:
  TempPath() {
    std::string tmpl = "/tmp/lethe-test-XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    EXPECT_GE(fd, 0);
    ::close(fd);
    ::unlink(tmpl.c_str());
    path_ = tmpl;
  }
  ~TempPath() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// True while `pid` is a live (non-zombie) process.
bool Alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  return !(paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z');
}

// ---------------------------------------------------------------------------------------------
// PgCluster

TEST(PgCluster, StartsAndRunsSql) {
  auto pg = MustStart();
  ASSERT_NE(pg, nullptr);
  EXPECT_TRUE(pg->running());
  EXPECT_TRUE(std::filesystem::exists(pg->data_dir() + "/PG_VERSION"));
  EXPECT_THAT(pg->Dsn("app"), HasSubstr(absl::StrCat("host=", pg->socket_dir(),
                                                     " port=", pg->port(),
                                                     " dbname=app user=postgres")));

  auto version = pg->Query("postgres", "SHOW server_version_num");
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_THAT(*version, ::testing::StartsWith("15"));
  auto fsync = pg->Query("postgres", "SHOW fsync");
  ASSERT_TRUE(fsync.ok()) << fsync.status();
  EXPECT_EQ(*fsync, "off");
  auto listen = pg->Query("postgres", "SHOW listen_addresses");
  ASSERT_TRUE(listen.ok()) << listen.status();
  EXPECT_EQ(*listen, "");

  ASSERT_TRUE(pg->CreateDatabase("app").ok());
  ASSERT_TRUE(pg->Exec("app", "CREATE TABLE t (k text PRIMARY KEY, v int);"
                              "INSERT INTO t VALUES ('a', 1), ('b', 2);")
                  .ok());
  auto sum = pg->Query("app", "SELECT sum(v) FROM t");
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, "3");

  // Several statements: the last result counts; no rows and NULL give "".
  auto last = pg->Query("app", "UPDATE t SET v = 10 WHERE k = 'a'; SELECT v FROM t WHERE k = 'a'");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, "10");
  auto none = pg->Query("app", "SELECT v FROM t WHERE k = 'zzz'");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, "");
  auto null = pg->Query("app", "SELECT NULL::text");
  ASSERT_TRUE(null.ok()) << null.status();
  EXPECT_EQ(*null, "");
  auto utf8 = pg->Query("app", "SELECT upper('äöü') || length('äöü')");  // UTF8, C.UTF-8 ctype
  ASSERT_TRUE(utf8.ok()) << utf8.status();
  EXPECT_EQ(*utf8, "ÄÖÜ3");

  // The postmaster leads its own session (pg_ctl calls setsid), so killing the process group
  // of the pg_ctl that started it cannot take the server down.
  std::ifstream pidfile(pg->data_dir() + "/postmaster.pid");
  pid_t postmaster = 0;
  ASSERT_TRUE(pidfile >> postmaster);
  EXPECT_EQ(::getsid(postmaster), postmaster);
}

TEST(PgCluster, ErrorsBecomeStatuses) {
  auto pg = MustStart();
  ASSERT_NE(pg, nullptr);
  ASSERT_TRUE(pg->CreateDatabase("app").ok());
  absl::Status dup = pg->CreateDatabase("app");
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists) << dup;

  auto bad = pg->Query("app", "SELEKT 1");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("syntax error"));

  ASSERT_TRUE(pg->Exec("app", "CREATE TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1)").ok());
  absl::Status conflict = pg->Exec("app", "INSERT INTO u VALUES (1)");
  EXPECT_EQ(conflict.code(), absl::StatusCode::kAlreadyExists) << conflict;

  auto missing_db = pg->Query("no_such_db", "SELECT 1");
  EXPECT_FALSE(missing_db.ok());
  EXPECT_THAT(std::string(missing_db.status().message()), HasSubstr("no_such_db"));

  // Odd database names are quoted, both in SQL and in the conninfo.
  ASSERT_TRUE(pg->CreateDatabase("odd name's \"db\"").ok());
  auto odd = pg->Query("odd name's \"db\"", "SELECT current_database()");
  ASSERT_TRUE(odd.ok()) << odd.status();
  EXPECT_EQ(*odd, "odd name's \"db\"");
}

TEST(PgCluster, StopFailsConnectionsAndRestartKeepsData) {
  auto pg = MustStart();
  ASSERT_NE(pg, nullptr);
  ASSERT_TRUE(pg->CreateDatabase("app").ok());
  ASSERT_TRUE(pg->Exec("app", "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')").ok());

  absl::Time t0 = absl::Now();
  ASSERT_TRUE(pg->Stop().ok());
  std::printf("Stop took %s\n", absl::FormatDuration(absl::Now() - t0).c_str());
  EXPECT_FALSE(pg->running());
  auto down = pg->Query("app", "SELECT v FROM t");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_TRUE(pg->Stop().ok());  // idempotent

  t0 = absl::Now();
  absl::Status restarted = pg->Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  std::printf("Restart took %s\n", absl::FormatDuration(absl::Now() - t0).c_str());
  EXPECT_TRUE(pg->running());
  auto kept = pg->Query("app", "SELECT v FROM t");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, "kept");

  // Restart while running stops first.
  ASSERT_TRUE(pg->Exec("app", "INSERT INTO t VALUES ('second')").ok());
  restarted = pg->Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  auto count = pg->Query("app", "SELECT count(*) FROM t");
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, "2");
}

TEST(PgCluster, DestructorStopsServerAndRemovesDir) {
  auto pg = MustStart();
  ASSERT_NE(pg, nullptr);
  std::string base = pg->base_dir();
  std::string dsn = pg->Dsn("postgres");
  auto pid_text = pg->Query("postgres", "SELECT pg_backend_pid()");
  ASSERT_TRUE(pid_text.ok());
  std::ifstream pidfile(pg->data_dir() + "/postmaster.pid");
  pid_t postmaster = 0;
  ASSERT_TRUE(pidfile >> postmaster);
  ASSERT_TRUE(Alive(postmaster));

  pg.reset();
  EXPECT_FALSE(std::filesystem::exists(base));
  EXPECT_FALSE(Alive(postmaster));
}

TEST(PgCluster, TwoClustersAtOnce) {
  // Start both concurrently, as ctest -j does with separate test processes.
  std::unique_ptr<PgCluster> a, b;
  std::thread ta([&] { a = MustStart(); });
  std::thread tb([&] { b = MustStart(); });
  ta.join();
  tb.join();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->base_dir(), b->base_dir());
  EXPECT_NE(a->Dsn("app"), b->Dsn("app"));

  ASSERT_TRUE(a->CreateDatabase("app").ok());
  ASSERT_TRUE(b->CreateDatabase("app").ok());
  ASSERT_TRUE(a->Exec("app", "CREATE TABLE t (v text); INSERT INTO t VALUES ('from a')").ok());
  ASSERT_TRUE(b->Exec("app", "CREATE TABLE t (v text); INSERT INTO t VALUES ('from b')").ok());
  EXPECT_EQ(a->Query("app", "SELECT v FROM t").value_or("?"), "from a");
  EXPECT_EQ(b->Query("app", "SELECT v FROM t").value_or("?"), "from b");

  // Stopping one leaves the other alone.
  ASSERT_TRUE(a->Stop().ok());
  EXPECT_FALSE(a->Query("app", "SELECT 1").ok());
  EXPECT_EQ(b->Query("app", "SELECT v FROM t").value_or("?"), "from b");
}

// ---------------------------------------------------------------------------------------------
// Subprocess

TEST(Subprocess, ExitCodeAndLog) {
  TempPath log;
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "echo hi; echo oops >&2; exit 3"}, log.path());
  ASSERT_TRUE(p.ok()) << p.status();
  auto st = (*p)->Wait(absl::Seconds(10));
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 3);
  EXPECT_FALSE((*p)->Running());
  EXPECT_EQ((*p)->Log(), "hi\noops\n");
  // Waiting again returns the same status.
  EXPECT_EQ((*p)->Wait(absl::ZeroDuration()).value_or(-1), *st);
}

TEST(Subprocess, LogIsAppended) {
  TempPath log;
  for (const char* word : {"one", "two"}) {
    auto p = Subprocess::Spawn({"/bin/echo", word}, log.path());
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE((*p)->Wait(absl::Seconds(10)).ok());
  }
  EXPECT_EQ(ReadFileOrEmpty(log.path()), "one\ntwo\n");
}

TEST(Subprocess, KillReportsSignal) {
  TempPath log;
  auto p = Subprocess::Spawn({"/bin/sleep", "100"}, log.path());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE((*p)->Running());
  EXPECT_EQ(::getpgid((*p)->pid()), (*p)->pid());  // its own process group
  auto early = (*p)->Wait(absl::Milliseconds(50));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kDeadlineExceeded);

  (*p)->Kill(SIGKILL);
  auto st = (*p)->Wait(absl::Seconds(10));
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_TRUE(WIFSIGNALED(*st));
  EXPECT_EQ(WTERMSIG(*st), SIGKILL);
  EXPECT_FALSE((*p)->Running());
}

TEST(Subprocess, EnvironmentIsInheritedAndExtended) {
  TempPath log;
  ::setenv("LETHE_INHERITED", "yes", 1);
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "echo \"$LETHE_INHERITED $LETHE_EXTRA $HOME\""},
                             log.path(), {"LETHE_EXTRA=a b=c", "HOME=/nowhere"});
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE((*p)->Wait(absl::Seconds(10)).ok());
  EXPECT_EQ((*p)->Log(), "yes a b=c /nowhere\n");
  ::unsetenv("LETHE_INHERITED");
}

TEST(Subprocess, CwdAndArgumentsNeedNoQuoting) {
  TempPath log;
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "pwd; printf '[%s]' \"$1\"", "sh", "it's a \"b\" $x"},
                             log.path(), {}, "/");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE((*p)->Wait(absl::Seconds(10)).ok());
  EXPECT_EQ((*p)->Log(), "/\n[it's a \"b\" $x]");
}

TEST(Subprocess, MissingProgramFailsToSpawn) {
  TempPath log;
  auto p = Subprocess::Spawn({"/nonexistent/program"}, log.path());
  EXPECT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("/nonexistent/program"));
}

TEST(Subprocess, DestructorKillsWholeGroup) {
  TempPath log;
  TempPath pidfile;
  pid_t grandchild = 0;
  {
    auto p = Subprocess::Spawn(
        {"/bin/sh", "-c", "sleep 100 & echo $! > \"$1\"; wait", "sh", pidfile.path()},
        log.path());
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE(WaitFor(
        [&] {
          std::ifstream in(pidfile.path());
          return static_cast<bool>(in >> grandchild) && grandchild > 0;
        },
        absl::Seconds(10)));
    ASSERT_TRUE(Alive(grandchild));
  }
  EXPECT_TRUE(WaitFor([&] { return !Alive(grandchild); }, absl::Seconds(10)));
}

TEST(RunCommand, ReturnsExitCodeAndOutput) {
  auto r = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 7"}, absl::Seconds(10));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_EQ(r->output, "out\nerr\n");

  auto ok = RunCommand({"/bin/sh", "-c", "echo \"$GREETING\""}, absl::Seconds(10),
                       {"GREETING=hello"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->exit_code, 0);
  EXPECT_EQ(ok->output, "hello\n");

  auto killed = RunCommand({"/bin/sh", "-c", "kill -TERM $$"}, absl::Seconds(10));
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(killed->exit_code, 128 + SIGTERM);
}

TEST(RunCommand, TimesOut) {
  absl::Time t0 = absl::Now();
  auto r = RunCommand({"/bin/sh", "-c", "echo started; sleep 100"}, absl::Milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("started"));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
}

TEST(WaitFor, PollsUntilTrueOrTimeout) {
  std::atomic<int> calls{0};
  EXPECT_TRUE(WaitFor([&] { return ++calls >= 3; }, absl::Seconds(5)));
  EXPECT_EQ(calls.load(), 3);
}

// On an injected clock: polls every 10 ms of it, sleeping in between (never busy), once more at
// the deadline, and gives up there.
TEST(WaitFor, SleepsTenMillisecondsBetweenPollsAndStopsAtTheDeadline) {
  absl::Time t = absl::FromUnixSeconds(1'000'000);
  std::vector<absl::Duration> sleeps;
  WaitClock clock{[&] { return t; }, [&](absl::Duration d) { sleeps.push_back(d); t += d; }};
  int calls = 0;
  EXPECT_FALSE(WaitFor([&] { return ++calls < 0; }, absl::Milliseconds(95), clock));
  EXPECT_EQ(calls, 11);  // at 0, 10, ..., 90 ms, and at the deadline
  ASSERT_EQ(sleeps.size(), 10u);
  for (size_t i = 0; i + 1 < sleeps.size(); ++i) EXPECT_EQ(sleeps[i], absl::Milliseconds(10));
  EXPECT_EQ(sleeps.back(), absl::Milliseconds(5));  // not past the deadline

  calls = 0;
  sleeps.clear();
  EXPECT_TRUE(WaitFor([&] { return ++calls == 4; }, absl::Seconds(5), clock));
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(sleeps.size(), 3u);
}

// Run alone (as ctest runs each test), a test's waits end at its budget, before ctest's own
// timeout, with a note saying so. The test runs itself, alone, with a 1 s budget: there it
// waits for a condition that never holds, for an hour.
TEST(WaitFor, StopsAtTheTestsTimeBudget) {
  if (std::getenv("LETHE_TEST_BUDGET_CHILD") != nullptr) {
    EXPECT_EQ(TestTimeBudget(), absl::Seconds(1));
    EXPECT_FALSE(WaitFor([] { return false; }, absl::Hours(1)));
    return;
  }
  const absl::Time t0 = absl::Now();
  auto child = RunCommand({std::filesystem::read_symlink("/proc/self/exe").string(),
                           "--gtest_filter=WaitFor.StopsAtTheTestsTimeBudget"},
                          absl::Seconds(60), {"LETHE_TEST_BUDGET_CHILD=1", "LETHE_TEST_BUDGET_SECONDS=1"});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(child->exit_code, 0) << child->output;
  EXPECT_THAT(child->output, ::testing::HasSubstr("WaitFor: gave up at the test's time budget (1s"));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(30));
}

TEST(Tail, KeepsLastLines) {
  EXPECT_EQ(Tail("a\nb\nc\n", 2), "b\nc\n");
  EXPECT_EQ(Tail("a\nb\nc", 2), "b\nc");
  EXPECT_EQ(Tail("a\nb\n", 5), "a\nb\n");
  EXPECT_EQ(Tail("", 3), "");
}

}  // namespace
}  // namespace lethe::testing
