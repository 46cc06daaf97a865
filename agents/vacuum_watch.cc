#include "agents/vacuum_watch.h"

#include <algorithm>
#include <optional>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/thread_name.h"
#include "lethe/v1/messages.pb.h"
#include "proto/envelope.h"
#include "spdlog/spdlog.h"

namespace lethe::agents {

const char kVacuumSchemaSql[] =
    // One row per COMPLETED erasure whose purge left dead tuples, until its receipt is signed.
    "CREATE TABLE IF NOT EXISTS lethe_agent.vacuum_commands ("
    "  command_id        text PRIMARY KEY,"
    "  request_id        text NOT NULL,"
    "  command_digest    bytea NOT NULL,"
    "  completed_unix_ms bigint NOT NULL,"  // the COMPLETED receipt's completed_at_unix_ms
    "  purge_xid         bigint NOT NULL,"  // pg_current_xact_id() of the purge transaction
    "  recorded_at       timestamptz NOT NULL DEFAULT now());"
    // Its tables, in receipt order: the baseline once taken, then the vacuum that removed them.
    "CREATE TABLE IF NOT EXISTS lethe_agent.vacuum_tables ("
    "  command_id       text NOT NULL REFERENCES lethe_agent.vacuum_commands ON DELETE CASCADE,"
    "  position         int NOT NULL,"
    "  table_name       text NOT NULL,"
    "  action           text NOT NULL,"
    "  baseline_count   bigint,"
    "  baseline_running boolean,"
    "  vacuum           text,"
    "  vacuumed_unix_ms bigint,"
    "  PRIMARY KEY (command_id, position));"
    // Signed PHYSICALLY_PURGED receipts; sent once the broker acknowledged them.
    "CREATE TABLE IF NOT EXISTS lethe_agent.physical_receipts ("
    "  command_id text PRIMARY KEY,"
    "  request_id text NOT NULL,"
    "  receipt    bytea NOT NULL,"
    "  sent       boolean NOT NULL DEFAULT false,"
    "  created_at timestamptz NOT NULL DEFAULT now())";

namespace {

struct TableRef {
  std::string schema, name;
  policies::Table::Vacuum mode = policies::Table::Vacuum::kWatch;
};

// "VACUUM" or "VACUUM FULL" of `t`, quoted.
std::string VacuumSql(pqxx::connection& c, const TableRef& t, bool full) {
  return absl::StrCat(full ? "VACUUM FULL " : "VACUUM ", c.quote_name(t.schema), ".", c.quote_name(t.name));
}

}  // namespace

VacuumWatch::VacuumWatch(std::string dsn, policies::Domain domain, const crypto::Ed25519PrivateKey& key,
                         const Clock& clock, VacuumWatchOptions options)
    : dsn_(std::move(dsn)), domain_(std::move(domain)), key_(key), clock_(clock), options_(options) {}

VacuumWatch::~VacuumWatch() { Stop(); }

void VacuumWatch::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = NamedThread("vacuum-watch", [this] { Run(); });
}

void VacuumWatch::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void VacuumWatch::Kick() {
  {
    std::lock_guard<std::mutex> l(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

void VacuumWatch::Run() {
  // A kick (a batch of purges) brings the next pass forward, but never closer than this to
  // the last one: under a stream of purges the watch costs a pass a second, not one a batch.
  const auto min_gap = absl::ToChronoMilliseconds(std::min(options_.poll, options_.min_kick_gap));
  while (true) {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (cv_.wait_for(l, min_gap, [&] { return stop_; })) return;
      cv_.wait_for(l, absl::ToChronoMilliseconds(options_.poll) - min_gap, [&] { return stop_ || kicked_; });
      if (stop_) return;
      kicked_ = false;
    }
    absl::StatusOr<PassResult> r = Pass();
    if (!r.ok()) spdlog::warn("domain {}: physical purge watch: {}", domain_.name, r.status().ToString());
  }
}

absl::StatusOr<VacuumWatch::PassResult> VacuumWatch::Pass() {
  try {
    if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(dsn_);
    return PassOn(*conn_);
  } catch (const std::exception& e) {
    conn_.reset();
    return absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
  }
}

absl::StatusOr<VacuumWatch::PassResult> VacuumWatch::PassOn(pqxx::connection& c) {
  // Set-based, table by table: a pass costs a few statements per table with purges pending,
  // however many purges wait on it.
  PassResult out;
  std::map<std::string, TableRef> tables;  // by qualified name
  for (const policies::Table& t : domain_.tables) tables[t.QualifiedName()] = TableRef{t.schema, t.name, t.vacuum};
  pqxx::nontransaction tx(c);  // every statement its own transaction: fresh statistics each time

  std::vector<std::string> pending_tables;
  for (const auto& r : tx.exec("SELECT DISTINCT table_name FROM lethe_agent.vacuum_tables "
                               "WHERE vacuumed_unix_ms IS NULL ORDER BY table_name"))
    pending_tables.push_back(r[0].as<std::string>());

  if (!pending_tables.empty()) {
    // Other sessions' horizons and vacuums are visible to superusers and pg_read_all_stats only.
    const bool sees_all =
        tx.exec("SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') FROM pg_roles "
                "WHERE rolname = current_user")[0][0]
            .as<bool>();
    if (!sees_all) {
      if (!warned_privilege_)
        spdlog::error(
            "domain {}: cannot prove physical purge: the agent's database role may not see other sessions' "
            "snapshots and vacuums (GRANT pg_read_all_stats TO it); no PHYSICALLY_PURGED receipt is sent",
            domain_.name);
      warned_privilege_ = true;
      pending_tables.clear();  // nothing can be proven; counted as pending below
    } else {
      warned_privilege_ = false;
    }
  }

  // 1. The oldest transaction id any other session, replication slot or prepared transaction
  // may still see rows of (a snapshot's xmin, a running transaction's id): a purge whose
  // transaction is older than it is seen by no one, and a vacuum started from now on removes
  // its rows. NULL: no one holds anything back.
  std::optional<std::string> oldest;
  if (!pending_tables.empty()) {
    pqxx::result o = tx.exec(
        "SELECT x::text FROM ("
        "  SELECT backend_xmin AS x FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_xmin IS NOT NULL"
        "  UNION ALL SELECT backend_xid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        "  UNION ALL SELECT xmin FROM pg_replication_slots WHERE xmin IS NOT NULL"
        "  UNION ALL SELECT transaction FROM pg_prepared_xacts) AS held "
        "ORDER BY age(x) DESC LIMIT 1");
    if (!o.empty()) oldest = o[0][0].as<std::string>();
  }

  // The table's vacuum count and whether a vacuum of it runs now. Running first, then the
  // count: a vacuum that ends in between is counted and also taken as running, which only
  // asks for one more.
  auto observe = [&](const TableRef& ref) -> std::optional<std::pair<int64_t, bool>> {
    pqxx::result run = tx.exec_params(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_vacuum WHERE datname = current_database() AND "
        "(relid IS NULL OR relid = to_regclass(format('%I.%I', $1::text, $2::text))))",
        ref.schema, ref.name);
    pqxx::result cnt = tx.exec_params(
        "SELECT coalesce(vacuum_count + autovacuum_count, 0) FROM pg_stat_user_tables "
        "WHERE relid = to_regclass(format('%I.%I', $1::text, $2::text))",
        ref.schema, ref.name);
    if (cnt.empty()) return std::nullopt;  // the table is gone or not a user table
    return std::make_pair(cnt[0][0].as<int64_t>(), run[0][0].as<bool>());
  };
  // Marks the baselined entries of `table` still waiting as vacuumed by `vacuum`; with
  // `count` (the table's vacuum count now), only those whose baseline it passes by more than
  // the vacuum that was running at the baseline.
  auto mark = [&](const std::string& table, const std::string& vacuum, std::optional<int64_t> count) {
    constexpr char kSql[] =
        "UPDATE lethe_agent.vacuum_tables SET vacuum = $2, vacuumed_unix_ms = $3 "
        "WHERE table_name = $1 AND vacuumed_unix_ms IS NULL AND baseline_count IS NOT NULL";
    const int64_t when = absl::ToUnixMillis(clock_.Now());
    pqxx::result r =
        count ? tx.exec_params(absl::StrCat(kSql, " AND baseline_count + CASE WHEN baseline_running THEN 1 ELSE 0 "
                                                  "END < $4::bigint"),
                               table, vacuum, when, *count)
              : tx.exec_params(kSql, table, vacuum, when);
    out.vacuumed += static_cast<int>(r.affected_rows());
  };

  for (const std::string& table : pending_tables) {
    auto ref_it = tables.find(table);
    if (ref_it == tables.end()) continue;  // no longer in the policy: stays pending
    const TableRef& ref = ref_it->second;

    // 2. The baseline of every entry whose purge no one can see any more.
    std::optional<std::pair<int64_t, bool>> now = observe(ref);
    if (!now) continue;
    constexpr char kBaseline[] =
        "UPDATE lethe_agent.vacuum_tables t SET baseline_count = $2, baseline_running = $3 "
        "FROM lethe_agent.vacuum_commands c "
        "WHERE t.command_id = c.command_id AND t.table_name = $1 AND t.baseline_count IS NULL AND "
        "t.vacuumed_unix_ms IS NULL";
    // The purge's 32-bit transaction id, older than the oldest one held (both ages taken now).
    pqxx::result based =
        oldest ? tx.exec_params(absl::StrCat(kBaseline, " AND age(((c.purge_xid % 4294967296)::text)::xid) > "
                                                        "age($4::text::xid)"),
                                table, now->first, now->second, *oldest)
               : tx.exec_params(kBaseline, table, now->first, now->second);
    out.baselined += static_cast<int>(based.affected_rows());

    // 3. The agent's own VACUUM, when the policy asks for it, rate-limited: it covers every
    // entry baselined before it starts.
    if (ref.mode != policies::Table::Vacuum::kWatch) {
      const bool waiting =
          tx.exec_params("SELECT EXISTS (SELECT 1 FROM lethe_agent.vacuum_tables WHERE table_name = $1 AND "
                         "vacuumed_unix_ms IS NULL AND baseline_count IS NOT NULL)",
                         table)[0][0]
              .as<bool>();
      const absl::Time start = clock_.Now();
      auto last = last_run_.find(table);
      const bool due = last == last_run_.end() || start - last->second >= options_.min_interval;
      if (waiting && due) {
        // VACUUM skips, with a mere warning, a table its caller does not own: ask first.
        const pqxx::result owner = tx.exec_params(
            "SELECT pg_has_role(current_user, c.relowner, 'MEMBER') OR r.rolsuper OR "
            "pg_has_role(current_user, d.datdba, 'MEMBER') FROM pg_class c, pg_roles r, pg_database d "
            "WHERE c.oid = to_regclass(format('%I.%I', $1::text, $2::text)) AND r.rolname = current_user AND "
            "d.datname = current_database()",
            ref.schema, ref.name);
        if (owner.size() == 1 && owner[0][0].as<bool>()) {
          const bool full = ref.mode == policies::Table::Vacuum::kFullAfterPurge;
          last_run_[table] = start;
          tx.exec(VacuumSql(c, ref, full));
          ++out.vacuums_run;
          const int before = out.vacuumed;
          mark(table, full ? "vacuum full" : "vacuum", std::nullopt);
          spdlog::info("domain {}: {} of table {} for {} purge(s)", domain_.name, full ? "VACUUM FULL" : "VACUUM",
                       table, out.vacuumed - before);
        } else if (!warned_owner_[table]) {
          spdlog::warn("domain {}: may not VACUUM table {} (the agent's role does not own it); {}", domain_.name,
                       table,
                       ref.mode == policies::Table::Vacuum::kAfterPurge ? "waiting for a vacuum it sees instead"
                                                                        : "its purges stay pending");
          warned_owner_[table] = true;
        }
      }
    }

    // 3'. A vacuum seen to complete after the baseline, beyond the one running then: it began
    // after the baseline. Not for full_after_purge, which asks for a rewrite.
    if (ref.mode == policies::Table::Vacuum::kFullAfterPurge) continue;
    now = observe(ref);
    if (!now) continue;
    // The statistics were reset (a crash, pg_stat_reset): count anew from here.
    tx.exec_params(
        "UPDATE lethe_agent.vacuum_tables SET baseline_count = $2, baseline_running = $3 "
        "WHERE table_name = $1 AND vacuumed_unix_ms IS NULL AND baseline_count > $2",
        table, now->first, now->second);
    mark(table, "observed", now->first);
  }
  out.pending = static_cast<int>(
      tx.exec("SELECT count(*) FROM lethe_agent.vacuum_tables WHERE vacuumed_unix_ms IS NULL")[0][0].as<int64_t>());
  pending_.store(out.pending);

  // 4: the receipts of the commands whose every table is vacuumed, a bounded number at a time:
  // each one stored ends its watch, so the next read finds the next ones.
  const int per_query = std::max(1, options_.receipts_per_query);
  for (bool more = true; more;) {
    std::map<std::string, v1::Receipt> complete;
    const pqxx::result rows = tx.exec_params(
        "SELECT c.command_id, c.request_id, c.command_digest, t.table_name, t.action, t.vacuum, t.vacuumed_unix_ms "
        "FROM lethe_agent.vacuum_tables t JOIN lethe_agent.vacuum_commands c USING (command_id) "
        "WHERE c.command_id IN (SELECT d.command_id FROM lethe_agent.vacuum_commands d "
        "                       WHERE NOT EXISTS (SELECT 1 FROM lethe_agent.vacuum_tables u "
        "                                         WHERE u.command_id = d.command_id AND u.vacuumed_unix_ms IS NULL) "
        "                       ORDER BY d.command_id LIMIT $1) "
        "ORDER BY c.command_id, t.position",
        per_query);
    ++out.receipt_queries;
    for (const auto& r : rows) {
      v1::Receipt& receipt = complete[r[0].as<std::string>()];
      if (receipt.command_id().empty()) {
        receipt.set_command_id(r[0].as<std::string>());
        receipt.set_request_id(r[1].as<std::string>());
        receipt.set_domain(domain_.name);
        receipt.set_command_digest(pqxx::binarystring(r[2]).str());
        receipt.set_outcome(v1::Receipt::PHYSICALLY_PURGED);
      }
      v1::TableResult* t = receipt.add_tables();
      t->set_table(r[3].as<std::string>());
      t->set_action(r[4].as<std::string>());
      t->set_vacuum(r[5].as<std::string>());
      t->set_vacuumed_unix_ms(r[6].as<int64_t>());
      receipt.set_physically_gone_by_unix_ms(std::max(receipt.physically_gone_by_unix_ms(), t->vacuumed_unix_ms()));
    }
    more = complete.size() >= static_cast<size_t>(per_query);
    for (auto& [command_id, receipt] : complete) {
      receipt.set_completed_at_unix_ms(
          std::max(absl::ToUnixMillis(clock_.Now()), receipt.physically_gone_by_unix_ms()));
      const std::string wire =
          proto::SignEnvelope(proto::kReceiptType, receipt.SerializeAsString(), key_).SerializeAsString();
      // One statement, so one transaction: the receipt stored and its watch ended together.
      tx.exec_params(
          "WITH stored AS (INSERT INTO lethe_agent.physical_receipts (command_id, request_id, receipt) "
          "                VALUES ($1, $2, $3) ON CONFLICT (command_id) DO NOTHING) "
          "DELETE FROM lethe_agent.vacuum_commands WHERE command_id = $1",
          command_id, receipt.request_id(), pqxx::binarystring(wire));
      ++out.receipts;
      has_ready_.store(true);
    }
  }
  return out;
}

absl::StatusOr<std::vector<VacuumWatch::Ready>> VacuumWatch::Unsent(size_t limit) {
  try {
    if (!send_conn_ || !send_conn_->is_open()) send_conn_ = std::make_unique<pqxx::connection>(dsn_);
    pqxx::nontransaction tx(*send_conn_);
    // Cleared before reading: a receipt stored meanwhile sets it again.
    has_ready_.store(false);
    std::vector<Ready> out;
    for (const auto& r : tx.exec_params(
             "SELECT command_id, request_id, receipt FROM lethe_agent.physical_receipts WHERE NOT sent "
             "ORDER BY created_at, command_id LIMIT $1",
             static_cast<int64_t>(limit)))
      out.push_back(Ready{r[0].as<std::string>(), r[1].as<std::string>(), pqxx::binarystring(r[2]).str()});
    if (out.size() == limit) has_ready_.store(true);  // more after these
    return out;
  } catch (const std::exception& e) {
    send_conn_.reset();
    has_ready_.store(true);
    return absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
  }
}

absl::Status VacuumWatch::MarkSent(const std::vector<std::string>& command_ids) {
  if (command_ids.empty()) return absl::OkStatus();
  try {
    if (!send_conn_ || !send_conn_->is_open()) send_conn_ = std::make_unique<pqxx::connection>(dsn_);
    pqxx::work tx(*send_conn_);
    for (const std::string& id : command_ids)
      tx.exec_params("UPDATE lethe_agent.physical_receipts SET sent = true WHERE command_id = $1", id);
    tx.commit();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    send_conn_.reset();
    return absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
  }
}

}  // namespace lethe::agents
