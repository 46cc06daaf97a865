// VacuumWatch: the agent's proof that PostgreSQL has physically removed what a purge deleted.
//
// A DELETE (or an anonymizing UPDATE) leaves the old row versions in the table's pages as dead
// tuples, readable in its files, until a VACUUM removes them. For every COMPLETED erasure
// receipt whose purge changed rows, PostgresPurger records the tables in
// lethe_agent.vacuum_tables in the purge's own transaction (so that a crash cannot lose them),
// with the purge's transaction id. This watch then, per table:
//   1. waits until no transaction, replication slot or prepared transaction of the server can
//      still see the rows (every backend_xmin and xid is past the purge's): a vacuum that
//      started earlier keeps them as "recently dead";
//   2. notes the table's vacuum count (pg_stat_user_tables vacuum_count + autovacuum_count) and
//      whether a vacuum of it is running then (pg_stat_progress_vacuum; one it cannot see the
//      table of counts as running). That is the baseline;
//   3. with `vacuum: after_purge` (or `full_after_purge`) runs VACUUM (or VACUUM FULL) on the
//      table itself, outside any transaction and at most once per min_interval per table: it
//      covers every purge baselined before it. Otherwise (and also for after_purge) it
//      accepts a vacuum that counted after the baseline, beyond the one running then: one that
//      began after the baseline, so after the commit and the horizon;
//   4. once every table of a command is vacuumed, signs its PHYSICALLY_PURGED receipt and
//      stores it in lethe_agent.physical_receipts, from where the agent's loop publishes it
//      (Unsent, MarkSent). Everything is in the domain's database: a restart goes on where it
//      stopped.
// Seeing other sessions' backend_xmin and vacuum progress needs superuser or the role
// pg_read_all_stats; without it the watch cannot prove a horizon and sends nothing, and says
// so in the log. VACUUM needs the table's owner (or the database's); a table the agent may not
// vacuum waits for a vacuum it sees (after_purge) or stays pending (full_after_purge).
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <pqxx/connection>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "policies/policy.h"

namespace lethe::agents {

struct VacuumWatchOptions {
  // How often the thread (Start) looks at what is pending; Kick wakes it sooner, but no
  // sooner than min_kick_gap (or poll, if shorter) after the last pass.
  absl::Duration poll = absl::Seconds(10);
  absl::Duration min_kick_gap = absl::Seconds(1);
  // The least time between two VACUUMs the agent runs on one table (rate limit).
  absl::Duration min_interval = absl::Minutes(1);
  // Step 4 reads and signs the receipts of at most this many commands at a time, so that
  // the backlog one vacuum releases (every purge since the last) never sits in memory whole.
  int receipts_per_query = 256;
};

// The SQL that creates the watch's tables (part of PostgresPurger's schema).
extern const char kVacuumSchemaSql[];

// Thread safety: Pass, Start/Stop and Kick from the owning thread or the watch's own; Unsent,
// MarkSent and has_ready from one other thread (the agent loop), on a connection of their own.
class VacuumWatch {
 public:
  VacuumWatch(std::string dsn, policies::Domain domain, const crypto::Ed25519PrivateKey& key, const Clock& clock,
              VacuumWatchOptions options);
  ~VacuumWatch();

  // What one pass did (for tests and logs).
  struct PassResult {
    int baselined = 0;   // tables whose baseline was taken
    int vacuums_run = 0; // VACUUMs the agent ran
    int vacuumed = 0;    // table entries found vacuumed
    int receipts = 0;    // PHYSICALLY_PURGED receipts signed and stored
    int receipt_queries = 0;  // step 4's reads, of at most options.receipts_per_query commands each
    int pending = 0;     // table entries still waiting, after the pass
  };
  // One pass over what is pending (steps 1 to 4 above). kUnavailable when the database fails.
  absl::StatusOr<PassResult> Pass();

  // Runs Pass every options.poll (sooner after Kick) in a thread, until Stop.
  void Start();
  void Stop();
  void Kick();

  struct Ready {
    std::string command_id;
    std::string request_id;
    std::string wire;  // the signed receipt envelope
  };
  // Stored receipts not yet acknowledged by the broker, oldest first (at most `limit`).
  absl::StatusOr<std::vector<Ready>> Unsent(size_t limit = 100);
  absl::Status MarkSent(const std::vector<std::string>& command_ids);
  // Whether a pass stored a receipt since the last Unsent that returned none (true at start).
  bool has_ready() const { return has_ready_.load(); }
  // Table entries waiting for a vacuum after the last pass.
  int pending() const { return pending_.load(); }

 private:
  absl::StatusOr<PassResult> PassOn(pqxx::connection& c);
  void Run();

  const std::string dsn_;
  const policies::Domain domain_;
  const crypto::Ed25519PrivateKey& key_;
  const Clock& clock_;
  const VacuumWatchOptions options_;
  std::unique_ptr<pqxx::connection> conn_;       // Pass
  std::unique_ptr<pqxx::connection> send_conn_;  // Unsent, MarkSent
  std::map<std::string, absl::Time> last_run_;   // table -> when the agent last started a VACUUM of it
  bool warned_privilege_ = false;
  std::map<std::string, bool> warned_owner_;
  std::atomic<bool> has_ready_{true};
  std::atomic<int> pending_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, kicked_ = false;
  std::thread thread_;
};

}  // namespace lethe::agents
