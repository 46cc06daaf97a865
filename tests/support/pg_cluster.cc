#include <cstdlib>
#include "tests/support/pg_cluster.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <exception>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <random>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace lethe::testing {
namespace {

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin/";
constexpr absl::Duration kReadyTimeout = absl::Seconds(30);
constexpr absl::Duration kReadyPoll = absl::Milliseconds(20);

bool IsRoot() { return ::geteuid() == 0; }

std::string RunuserPath() {
  for (const char* p : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "/usr/sbin/runuser";
}

// argv for a PostgreSQL binary; as root it runs as `postgres` (initdb refuses root).
std::vector<std::string> ToolArgv(const std::string& tool, std::vector<std::string> args) {
  std::vector<std::string> argv;
  if (IsRoot()) argv = {RunuserPath(), "-u", "postgres", "--"};
  argv.push_back(std::string(kPgBin) + tool);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// A conninfo value, quoted when it has to be.
std::string ConninfoValue(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \t\n'\\") == std::string::npos) return v;
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// Maps a PostgreSQL SQLSTATE to a status code.
absl::StatusCode CodeForSqlState(const std::string& state) {
  if (state == "42P04" || state == "42P07" || state == "42710" || state == "23505") {
    return absl::StatusCode::kAlreadyExists;
  }
  if (state == "3D000" || state == "42P01" || state == "42883" || state == "42703") {
    return absl::StatusCode::kNotFound;
  }
  std::string cls = state.substr(0, 2);
  if (cls == "08" || cls == "57" || cls == "53") return absl::StatusCode::kUnavailable;
  if (cls == "23" || cls == "40" || cls == "55") return absl::StatusCode::kFailedPrecondition;
  if (cls == "42" || cls == "22") return absl::StatusCode::kInvalidArgument;
  return absl::StatusCode::kInternal;
}

// Runs `fn(tx)` on a fresh connection to `dsn`, converting libpqxx exceptions to a Status.
template <typename Fn>
absl::Status WithTx(const std::string& dsn, const std::string& what, Fn fn) {
  try {
    pqxx::connection conn(dsn);
    pqxx::nontransaction tx(conn);
    fn(tx);
    return absl::OkStatus();
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(absl::StrCat(what, ": connection failed: ", e.what()));
  } catch (const pqxx::sql_error& e) {
    return absl::Status(CodeForSqlState(e.sqlstate()),
                        absl::StrCat(what, ": SQLSTATE ", e.sqlstate(), ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

// The postmaster's pid from DATA/postmaster.pid, or 0. A stale file whose pid now belongs to
// some other program also gives 0, so that we never signal a stranger.
pid_t PostmasterPid(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  std::string comm = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/comm"));
  if (!comm.empty() && comm != "postgres\n") return 0;
  return static_cast<pid_t>(pid);
}

// True if `pid` names a live process (not a zombie waiting for a reaper that never comes).
bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) < 0 && errno == ESRCH) return false;
  std::string stat = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return true;  // no /proc; trust kill()
  size_t paren = stat.rfind(')');
  return !(paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z');
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start() { return Start(Options()); }

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start(Options options) {
  // For the test that a broken fixture fails the run (tests/scripts/no_silent_skips.sh).
  if (const char* broken = std::getenv("LETHE_TEST_BREAK_POSTGRES"); broken != nullptr && *broken == '1')
    return absl::UnavailableError("PgCluster: PostgreSQL start broken on purpose (LETHE_TEST_BREAK_POSTGRES=1)");
  for (const char* tool : {"initdb", "pg_ctl", "postgres"}) {
    std::string path = std::string(kPgBin) + tool;
    if (::access(path.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("PgCluster: ", path,
                       " not found; install postgresql-15 (tests/scripts/deps.sh)"));
    }
  }
  uid_t uid = 0;
  gid_t gid = 0;
  if (IsRoot()) {
    struct passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "PgCluster: running as root but there is no `postgres` user to run initdb as");
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }

  std::unique_ptr<PgCluster> c(new PgCluster());
  std::string tmpl = "/tmp/lethe-pg-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("PgCluster: mkdtemp: ", strerror(errno)));
  }
  c->base_dir_ = tmpl;
  c->data_dir_ = tmpl + "/data";
  c->socket_dir_ = tmpl;
  c->server_log_ = tmpl + "/postgres.log";
  c->tool_log_ = tmpl + "/tools.log";
  // From here on, the destructor cleans up whatever fails.
  if (::chmod(tmpl.c_str(), 0755) != 0 || (IsRoot() && ::chown(tmpl.c_str(), uid, gid) != 0)) {
    return absl::InternalError(
        absl::StrCat("PgCluster: chmod/chown ", tmpl, ": ", strerror(errno)));
  }
  std::random_device rd;
  c->port_ = std::uniform_int_distribution<int>(20000, 60000)(rd);

  absl::Time t0 = absl::Now();
  absl::Status s = c->RunTool("initdb",
                              {"-D", c->data_dir_, "--auth=trust", "-U", "postgres", "--no-sync",
                               "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"},
                              absl::Seconds(120));
  if (!s.ok()) return s;
  c->initdb_duration_ = absl::Now() - t0;

  // Settings go into postgresql.conf (rather than pg_ctl -o) so that Restart() keeps them and
  // nothing needs shell quoting.
  {
    std::ofstream conf(c->data_dir_ + "/postgresql.conf", std::ios::app);
    conf << "\n# lethe::testing::PgCluster\n"
         << "port = " << c->port_ << "\n"
         << "unix_socket_directories = '" << c->socket_dir_ << "'\n"
         << "listen_addresses = ''\n"
         << "fsync = " << (options.fsync ? "on" : "off") << "\n";
    if (!conf.good()) {
      return absl::InternalError(
          absl::StrCat("PgCluster: cannot append to ", c->data_dir_, "/postgresql.conf"));
    }
  }
  s = c->StartServer();
  if (!s.ok()) return s;
  return c;
}

PgCluster::~PgCluster() {
  if (base_dir_.empty()) return;
  starter_.reset();
  // Immediate shutdown is SIGQUIT to the postmaster (what pg_ctl -m immediate sends); if it is
  // somehow still there after 10 s, SIGKILL it.
  pid_t pm = PostmasterPid(data_dir_);
  if (pm > 0 && ProcessAlive(pm)) {
    ::kill(pm, SIGQUIT);
    if (!WaitFor([&] { return !ProcessAlive(pm); }, absl::Seconds(10))) {
      ::kill(pm, SIGKILL);
      WaitFor([&] { return !ProcessAlive(pm); }, absl::Seconds(5));
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(base_dir_, ec);
}

std::string PgCluster::ServerLog() const { return ReadFileOrEmpty(server_log_); }
std::string PgCluster::ToolLog() const { return ReadFileOrEmpty(tool_log_); }

std::string PgCluster::LogTails() const {
  return absl::StrCat("\n--- tail of ", tool_log_, " ---\n", Tail(ToolLog(), 20), "\n--- tail of ",
                      server_log_, " ---\n", Tail(ServerLog(), 20));
}

absl::Status PgCluster::RunTool(const std::string& tool, std::vector<std::string> args,
                                absl::Duration timeout) {
  std::vector<std::string> argv = ToolArgv(tool, std::move(args));
  std::string what = absl::StrJoin(argv, " ");
  {
    std::ofstream log(tool_log_, std::ios::app);
    log << "== " << what << "\n";
  }
  // cwd "/": the postgres user may not be allowed into our working directory.
  auto child = Subprocess::Spawn(argv, tool_log_, {}, "/");
  if (!child.ok()) return child.status();
  absl::StatusOr<int> st = (*child)->Wait(timeout);
  if (!st.ok()) {
    return absl::DeadlineExceededError(
        absl::StrCat("PgCluster: `", what, "` timed out after ", absl::FormatDuration(timeout),
                     LogTails()));
  }
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
    return absl::InternalError(
        absl::StrCat("PgCluster: `", what, "` failed (wait status ", *st, ")", LogTails()));
  }
  return absl::OkStatus();
}

absl::Status PgCluster::StartServer() {
  absl::Time t0 = absl::Now();
  if (starter_ != nullptr) {
    (void)starter_->Wait(absl::Seconds(35));
    starter_.reset();
  }
  std::vector<std::string> argv = ToolArgv(
      "pg_ctl", {"start", "-w", "-t", "30", "-D", data_dir_, "-l", server_log_});
  {
    std::ofstream log(tool_log_, std::ios::app);
    log << "== " << absl::StrJoin(argv, " ") << "\n";
  }
  auto child = Subprocess::Spawn(argv, tool_log_, {}, "/");
  if (!child.ok()) return child.status();
  starter_ = std::move(*child);

  // pg_ctl -w checks every 100 ms; ask the server itself every 20 ms instead, and use pg_ctl
  // only to learn early that the server died.
  const std::string conninfo = Dsn("postgres") + " connect_timeout=2";
  absl::Time deadline = t0 + kReadyTimeout;
  while (true) {
    PGPing ping = PQping(conninfo.c_str());
    if (ping == PQPING_OK) {
      running_ = true;
      start_duration_ = absl::Now() - t0;
      return absl::OkStatus();
    }
    if (ping == PQPING_NO_ATTEMPT) {
      return absl::InternalError(absl::StrCat("PgCluster: bad conninfo: ", conninfo));
    }
    if (!starter_->Running()) {
      int st = *starter_->exit_status();
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        return absl::InternalError(
            absl::StrCat("PgCluster: pg_ctl start failed (wait status ", st, ")", LogTails()));
      }
    }
    if (absl::Now() >= deadline) {
      running_ = true;  // Unknown state: let Stop()/the destructor take it down.
      return absl::DeadlineExceededError(
          absl::StrCat("PgCluster: server at ", socket_dir_, " port ", port_,
                       " did not accept connections within ",
                       absl::FormatDuration(kReadyTimeout), LogTails()));
    }
    absl::SleepFor(std::min(kReadyPoll, deadline - absl::Now()));
  }
}

absl::Status PgCluster::Stop(bool immediate) {
  // Fast shutdown is SIGINT to the postmaster, immediate shutdown SIGQUIT; this is what
  // `pg_ctl stop -m fast|immediate -w` does, except that pg_ctl only looks every 100 ms
  // whether the server is gone.
  pid_t pm = PostmasterPid(data_dir_);
  const int sig = immediate ? SIGQUIT : SIGINT;
  if (pm > 0 && ProcessAlive(pm)) {
    if (::kill(pm, sig) != 0 && errno != ESRCH) {
      return absl::InternalError(
          absl::StrCat("PgCluster: kill(", pm, ", ", strsignal(sig), "): ", strerror(errno)));
    }
    if (!WaitFor([&] { return !ProcessAlive(pm); }, absl::Seconds(60))) {
      return absl::DeadlineExceededError(
          absl::StrCat("PgCluster: postmaster ", pm, " still running 60 s after ", strsignal(sig),
                       LogTails()));
    }
  }
  running_ = false;
  if (starter_ != nullptr) {
    (void)starter_->Wait(absl::Seconds(35));
    starter_.reset();
  }
  return absl::OkStatus();
}

absl::Status PgCluster::Restart() {
  if (running_ || ProcessAlive(PostmasterPid(data_dir_))) {
    absl::Status s = Stop();
    if (!s.ok()) return s;
  }
  return StartServer();
}

std::string PgCluster::Dsn(const std::string& db) const {
  return absl::StrCat("host=", ConninfoValue(socket_dir_), " port=", port_,
                      " dbname=", ConninfoValue(db), " user=postgres");
}

absl::Status PgCluster::CreateDatabase(const std::string& name) {
  return WithTx(Dsn("postgres"), absl::StrCat("CREATE DATABASE ", name),
                [&](pqxx::nontransaction& tx) {
                  tx.exec("CREATE DATABASE " + tx.quote_name(name));
                });
}

absl::StatusOr<std::string> PgCluster::Query(const std::string& db, const std::string& sql) {
  std::string value;
  absl::Status s = WithTx(Dsn(db), absl::StrCat("query in ", db), [&](pqxx::nontransaction& tx) {
    pqxx::result r = tx.exec(sql);
    if (!r.empty() && r.columns() > 0 && !r[0][0].is_null()) value = r[0][0].c_str();
  });
  if (!s.ok()) return s;
  return value;
}

absl::Status PgCluster::Exec(const std::string& db, const std::string& sql) {
  return WithTx(Dsn(db), absl::StrCat("exec in ", db),
                [&](pqxx::nontransaction& tx) { tx.exec(sql); });
}

}  // namespace lethe::testing
