// A throwaway, real PostgreSQL 15 server for integration tests.
//
// Usage:
//     auto cluster = lethe::testing::PgCluster::Start();
//     ASSERT_TRUE(cluster.ok()) << cluster.status();
//     ASSERT_TRUE((*cluster)->CreateDatabase("ledger").ok());
//     pqxx::connection c((*cluster)->Dsn("ledger"));
//
// Each cluster lives in its own mkdtemp("/tmp/lethe-pg-XXXXXX") directory (data directory,
// unix socket, logs), listens on a unix socket only and runs with fsync=off (Options::fsync
// turns it on). Nothing is shared with the system cluster on port 5432 or with other
// PgClusters, so any number can run at once.
// When running as root, initdb and pg_ctl run as the `postgres` user through runuser.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {

class PgCluster {
 public:
  // initdb into a fresh temp dir, start the server, wait (up to 30 s) until it accepts
  // connections. Fails (never skips) if PostgreSQL 15 is not installed or does not start; the
  // error carries the tail of the initdb/pg_ctl and server logs.
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start();
  struct Options {
    // fsync = on: a crash (Stop(true)) loses nothing committed, as in production.
    bool fsync = false;
  };
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start(Options options);

  // Stops the server (immediate mode) and removes the directory.
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // CREATE DATABASE `name` (quoted as an identifier), run through the `postgres` database.
  absl::Status CreateDatabase(const std::string& name);

  // libpq / libpqxx conninfo: "host=SOCKDIR port=PORT dbname=DB user=postgres".
  std::string Dsn(const std::string& db) const;

  // pg_ctl stop -m fast (or -m immediate: a crash, recovered from the WAL at the next start),
  // waiting until the server is gone. OK if already stopped. The cluster can be started again
  // with Restart().
  absl::Status Stop(bool immediate = false);

  // Starts the server again (stopping it first if it is running) and waits until it accepts
  // connections. The data is kept.
  absl::Status Restart();

  // Runs `sql` in `db` (possibly several statements, outside any explicit transaction) and
  // returns the first column of the first row of the last statement's result as text ("" if
  // there are no rows or the value is NULL).
  absl::StatusOr<std::string> Query(const std::string& db, const std::string& sql);
  absl::Status Exec(const std::string& db, const std::string& sql);

  const std::string& data_dir() const { return data_dir_; }
  const std::string& base_dir() const { return base_dir_; }      // the temp dir
  const std::string& socket_dir() const { return socket_dir_; }  // == base_dir()
  int port() const { return port_; }
  bool running() const { return running_; }

  // The server's log and the combined initdb/pg_ctl output.
  std::string ServerLog() const;
  std::string ToolLog() const;

  // How long initdb and the (last) server start took.
  absl::Duration initdb_duration() const { return initdb_duration_; }
  absl::Duration start_duration() const { return start_duration_; }

 private:
  PgCluster() = default;
  // Runs a PostgreSQL binary (as postgres when root) to completion; non-zero exit is an error.
  absl::Status RunTool(const std::string& tool, std::vector<std::string> args,
                       absl::Duration timeout);
  absl::Status StartServer();
  absl::Status WaitUntilStopped(absl::Duration timeout);
  std::string LogTails() const;

  std::string base_dir_;
  std::string data_dir_;
  std::string socket_dir_;
  std::string server_log_;
  std::string tool_log_;
  int port_ = 0;
  bool running_ = false;
  // The `pg_ctl start -w` of the last start. We stop waiting for it as soon as the server
  // answers (it only checks every 100 ms); it is reaped later.
  std::unique_ptr<Subprocess> starter_;
  absl::Duration initdb_duration_;
  absl::Duration start_duration_;
};

}  // namespace lethe::testing
