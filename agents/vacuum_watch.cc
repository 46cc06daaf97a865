#include "agents/vacuum_watch.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "base/status.h"
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

// The 32-bit transaction id of a full one (xid8), as text PostgreSQL reads as xid.
std::string Xid32(int64_t xid8) { return std::to_string(static_cast<uint64_t>(xid8) % 4294967296ULL); }

// Whether a transaction, a replication slot or a prepared transaction of the server may still
// see rows that transaction `xid32` deleted: a vacuum started now would keep them.
bool HorizonHeldBack(pqxx::nontransaction& tx, const std::string& xid32) {
  pqxx::result r = tx.exec_params(
      "SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
      "          ((backend_xmin IS NOT NULL AND age(backend_xmin) >= age($1::xid)) OR "
      "           (backend_xid IS NOT NULL AND age(backend_xid) >= age($1::xid)))) "
      "     + (SELECT count(*) FROM pg_replication_slots WHERE xmin IS NOT NULL AND age(xmin) >= age($1::xid)) "
      "     + (SELECT count(*) FROM pg_prepared_xacts WHERE age(transaction) >= age($1::xid))",
      xid32);
  return r[0][0].as<int64_t>() > 0;
}

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
  thread_ = std::thread([this] { Run(); });
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
  while (true) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, absl::ToChronoMilliseconds(options_.poll), [&] { return stop_ || kicked_; });
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
  PassResult out;
  std::map<std::string, TableRef> tables;  // by qualified name
  for (const policies::Table& t : domain_.tables) tables[t.QualifiedName()] = TableRef{t.schema, t.name, t.vacuum};
  pqxx::nontransaction tx(c);  // every statement its own transaction: fresh statistics each time

  struct Row {
    std::string command_id;
    int position = 0;
    std::string table;
    int64_t purge_xid = 0;
    bool baselined = false;
    int64_t baseline_count = 0;
    bool baseline_running = false;
  };
  std::vector<Row> rows;
  for (const auto& r : tx.exec(
           "SELECT t.command_id, t.position, t.table_name, c.purge_xid, t.baseline_count IS NOT NULL, "
           "coalesce(t.baseline_count, 0), coalesce(t.baseline_running, false) "
           "FROM lethe_agent.vacuum_tables t JOIN lethe_agent.vacuum_commands c USING (command_id) "
           "WHERE t.vacuumed_unix_ms IS NULL ORDER BY c.recorded_at, t.command_id, t.position")) {
    rows.push_back(Row{r[0].as<std::string>(), r[1].as<int>(), r[2].as<std::string>(), r[3].as<int64_t>(),
                       r[4].as<bool>(), r[5].as<int64_t>(), r[6].as<bool>()});
  }

  if (!rows.empty()) {
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
      pending_.store(static_cast<int>(rows.size()));
      out.pending = static_cast<int>(rows.size());
      return out;
    }
    warned_privilege_ = false;
  }

  // 1 and 2: the baseline of each table entry whose purge no transaction can see any more.
  std::map<int64_t, bool> held;  // purge xid -> horizon held back (one query per purge)
  std::map<std::string, std::pair<int64_t, bool>> current;  // table -> (count, running), this pass
  auto observe = [&](const std::string& table) -> std::optional<std::pair<int64_t, bool>> {
    if (auto it = current.find(table); it != current.end()) return it->second;
    auto ref = tables.find(table);
    if (ref == tables.end()) return std::nullopt;  // no longer in the policy: stays pending
    // Running first, then the count: a vacuum that ends in between is counted and also taken
    // as running, which only asks for one more.
    pqxx::result run = tx.exec_params(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_vacuum WHERE datname = current_database() AND "
        "(relid IS NULL OR relid = to_regclass(format('%I.%I', $1::text, $2::text))))",
        ref->second.schema, ref->second.name);
    pqxx::result cnt = tx.exec_params(
        "SELECT coalesce(vacuum_count + autovacuum_count, 0) FROM pg_stat_user_tables "
        "WHERE relid = to_regclass(format('%I.%I', $1::text, $2::text))",
        ref->second.schema, ref->second.name);
    if (cnt.empty()) return std::nullopt;  // the table is gone or not a user table
    auto v = std::make_pair(cnt[0][0].as<int64_t>(), run[0][0].as<bool>());
    current[table] = v;
    return v;
  };
  for (Row& r : rows) {
    if (r.baselined) continue;
    auto h = held.find(r.purge_xid);
    if (h == held.end()) h = held.emplace(r.purge_xid, HorizonHeldBack(tx, Xid32(r.purge_xid))).first;
    if (h->second) continue;
    std::optional<std::pair<int64_t, bool>> now = observe(r.table);
    if (!now) continue;
    tx.exec_params(
        "UPDATE lethe_agent.vacuum_tables SET baseline_count = $3, baseline_running = $4 "
        "WHERE command_id = $1 AND position = $2",
        r.command_id, r.position, now->first, now->second);
    r.baselined = true;
    r.baseline_count = now->first;
    r.baseline_running = now->second;
    ++out.baselined;
  }
  // Later observations must see vacuums that end from here on.
  current.clear();

  auto mark = [&](const Row& r, const std::string& vacuum, absl::Time when) {
    tx.exec_params(
        "UPDATE lethe_agent.vacuum_tables SET vacuum = $3, vacuumed_unix_ms = $4 "
        "WHERE command_id = $1 AND position = $2 AND vacuumed_unix_ms IS NULL",
        r.command_id, r.position, vacuum, absl::ToUnixMillis(when));
    ++out.vacuumed;
  };
  std::vector<bool> done(rows.size(), false);

  // 3: the agent's own VACUUM, for the tables whose policy asks for it, rate-limited.
  std::map<std::string, std::vector<size_t>> due;  // table -> baselined rows waiting
  for (size_t i = 0; i < rows.size(); ++i) {
    auto ref = tables.find(rows[i].table);
    if (!rows[i].baselined || ref == tables.end() || ref->second.mode == policies::Table::Vacuum::kWatch) continue;
    due[rows[i].table].push_back(i);
  }
  for (const auto& [table, indices] : due) {
    const TableRef& ref = tables.at(table);
    const absl::Time start = clock_.Now();
    if (auto last = last_run_.find(table); last != last_run_.end() && start - last->second < options_.min_interval)
      continue;
    // VACUUM skips, with a mere warning, a table its caller does not own: ask first.
    const pqxx::result owner = tx.exec_params(
        "SELECT pg_has_role(current_user, c.relowner, 'MEMBER') OR r.rolsuper OR "
        "pg_has_role(current_user, d.datdba, 'MEMBER') FROM pg_class c, pg_roles r, pg_database d "
        "WHERE c.oid = to_regclass(format('%I.%I', $1::text, $2::text)) AND r.rolname = current_user AND "
        "d.datname = current_database()",
        ref.schema, ref.name);
    const bool allowed = owner.size() == 1 && owner[0][0].as<bool>();
    if (!allowed) {
      if (!warned_owner_[table])
        spdlog::warn("domain {}: may not VACUUM table {} (the agent's role does not own it); {}", domain_.name, table,
                     ref.mode == policies::Table::Vacuum::kAfterPurge ? "waiting for a vacuum it sees instead"
                                                                      : "its purges stay pending");
      warned_owner_[table] = true;
      continue;
    }
    const bool full = ref.mode == policies::Table::Vacuum::kFullAfterPurge;
    last_run_[table] = start;
    tx.exec(VacuumSql(c, ref, full));
    const absl::Time end = clock_.Now();
    ++out.vacuums_run;
    for (size_t i : indices) {
      mark(rows[i], full ? "vacuum full" : "vacuum", end);
      done[i] = true;
    }
    spdlog::info("domain {}: {} of table {} for {} purge(s)", domain_.name, full ? "VACUUM FULL" : "VACUUM", table,
                 indices.size());
  }

  // 3': a vacuum seen to complete that began after the baseline (not for full_after_purge).
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    auto ref = tables.find(r.table);
    if (done[i] || !r.baselined || ref == tables.end() || ref->second.mode == policies::Table::Vacuum::kFullAfterPurge)
      continue;
    std::optional<std::pair<int64_t, bool>> now = observe(r.table);
    if (!now) continue;
    if (now->first < r.baseline_count) {
      // The statistics were reset (a crash, pg_stat_reset): count anew from here.
      tx.exec_params(
          "UPDATE lethe_agent.vacuum_tables SET baseline_count = $3, baseline_running = $4 "
          "WHERE command_id = $1 AND position = $2",
          r.command_id, r.position, now->first, now->second);
      continue;
    }
    if (now->first > r.baseline_count + (r.baseline_running ? 1 : 0)) {
      mark(r, "observed", clock_.Now());
      done[i] = true;
    }
  }
  out.pending = static_cast<int>(std::count(done.begin(), done.end(), false));
  pending_.store(out.pending);

  // 4: the receipts of the commands whose every table is vacuumed.
  std::map<std::string, v1::Receipt> complete;
  for (const auto& r : tx.exec(
           "SELECT c.command_id, c.request_id, c.command_digest, t.table_name, t.action, t.vacuum, t.vacuumed_unix_ms "
           "FROM lethe_agent.vacuum_commands c JOIN lethe_agent.vacuum_tables t USING (command_id) "
           "WHERE NOT EXISTS (SELECT 1 FROM lethe_agent.vacuum_tables u "
           "                  WHERE u.command_id = c.command_id AND u.vacuumed_unix_ms IS NULL) "
           "ORDER BY c.command_id, t.position")) {
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
