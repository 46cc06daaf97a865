#include "agents/postgres_purger.h"

#include <stdexcept>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agents/postgres_gatherer.h"
#include "agents/recheck.h"
#include "agents/subject_keys.h"
#include "agents/vacuum_watch.h"
#include "base/status.h"
#include "proto/envelope.h"
#include "proto/receipt_tables.h"
#include "crypto/seal.h"
#include "spdlog/spdlog.h"

namespace lethe::agents {
namespace {

constexpr char kSchemaSql[] =
    "CREATE SCHEMA IF NOT EXISTS lethe_agent;"
    "CREATE TABLE IF NOT EXISTS lethe_agent.processed_commands ("
    "  command_id   text PRIMARY KEY,"
    "  request_id   text NOT NULL,"
    "  outcome      text NOT NULL,"
    "  receipt      bytea NOT NULL,"      // the signed receipt envelope, re-sent on redelivery
    "  processed_at timestamptz NOT NULL DEFAULT now());"
    // The domain's secret for `anonymize ... hash`: stable within the domain, kept with its data.
    "CREATE TABLE IF NOT EXISTS lethe_agent.settings ("
    "  name  text PRIMARY KEY,"
    "  value bytea NOT NULL);";

// Thrown when a policy asks for something the table's columns cannot hold; the message becomes
// the FAILED receipt's error as it is (it names only the table, column and type).
struct UnsupportedColumn : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An SQL expression that turns `digest` (a bytea SHA-256) into a value of `column`'s type:
// hex text (cut to a varchar/char length), the leading bits as a non-negative integer, a
// UUID, or the raw bytes. Other types cannot carry a keyed hash.
std::string HashInColumnType(pqxx::work& tx, const std::string& qualified, const policies::Table& t,
                             const std::string& column, const std::string& digest) {
  pqxx::result r = tx.exec_params(
      "SELECT ty.typname, a.atttypmod FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid "
      "WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped",
      qualified, column);
  if (r.empty())
    throw UnsupportedColumn("table " + t.QualifiedName() + " has no column " + column);
  const std::string type = r[0][0].as<std::string>();
  const int typmod = r[0][1].as<int>();
  const std::string hex = "encode(" + digest + ", 'hex')";
  if (type == "text" || type == "citext" || type == "name") return hex;
  if (type == "varchar" || type == "bpchar")
    return typmod > 4 ? absl::StrCat("left(", hex, ", ", typmod - 4, ")") : hex;
  if (type == "int8") return "(('x' || left(" + hex + ", 16))::bit(64)::bigint & 9223372036854775807)";
  if (type == "int4") return "(('x' || left(" + hex + ", 8))::bit(32)::integer & 2147483647)";
  if (type == "int2") return "((('x' || left(" + hex + ", 8))::bit(32)::integer & 32767)::smallint)";
  if (type == "uuid") return "left(" + hex + ", 32)::uuid";
  if (type == "bytea") return digest;
  throw UnsupportedColumn("column " + column + " of " + t.QualifiedName() + " has type " + type +
                          ", which cannot hold a keyed hash; set it to null or a constant");
}

// Applies `t`'s action to the rows keyed by one identity value, inside `tx`. Throws pqxx
// errors; the caller turns them into a FAILED receipt or a retry. What is left is counted
// apart, by RecountSubject (recheck.h).
void ApplyToTable(pqxx::work& tx, const policies::Table& t, const SecretBytes& identity,
                  const std::string& hash_key_hex, v1::TableResult* tr) {
  const std::string qualified = tx.quote_name(t.schema) + "." + tx.quote_name(t.name);
  const std::string key = tx.quote_name(t.key_column);
  // The one place this function reads the raw identity: it is bound as parameter $1.
  const std::string value(RevealSecret(identity));
  // Parameters go untyped, so PostgreSQL reads each as its column's own type.
  // The subject's rows, by the table's comparison. Exact leaves $1 untyped, so PostgreSQL
  // reads it as the column's own type; case_insensitive compares the texts lower-cased.
  const std::string where = t.match == policies::Match::kCaseInsensitive
                                ? absl::StrCat("lower(", key, "::text) = lower($1::text)")
                                : absl::StrCat(key, " = $1");
  auto count_where = [&]() {
    pqxx::result r =
        tx.exec_params(absl::StrCat("SELECT count(*) FROM ", qualified, " WHERE ", where), value);
    return r[0][0].as<int64_t>();
  };
  switch (t.action) {
    case policies::TableAction::kDelete: {
      pqxx::result del =
          tx.exec_params(absl::StrCat("DELETE FROM ", qualified, " WHERE ", where), value);
      tr->set_rows_affected(tr->rows_affected() + del.affected_rows());
      return;
    }
    case policies::TableAction::kAnonymize: {
      std::vector<std::string> params = {value};
      std::vector<std::string> sets;
      std::string hash_param;
      for (const auto& rw : t.set) {
        const std::string col = tx.quote_name(rw.column);
        switch (rw.kind) {
          case policies::ColumnRewrite::Kind::kNull:
            sets.push_back(col + " = NULL");
            break;
          case policies::ColumnRewrite::Kind::kHash: {
            if (hash_param.empty()) {
              params.push_back(hash_key_hex);
              hash_param = "$" + std::to_string(params.size());
            }
            // A keyed SHA-256 of the old value: stable within the domain, not reversible
            // without the domain's secret. Written in the column's own type.
            const std::string digest =
                absl::StrCat("sha256(convert_to(", hash_param, " || ", col, "::text, 'UTF8'))");
            sets.push_back(col + " = " + HashInColumnType(tx, qualified, t, rw.column, digest));
            break;
          }
          case policies::ColumnRewrite::Kind::kConstant:
            params.push_back(rw.constant);
            sets.push_back(absl::StrCat(col, " = $", params.size()));
            break;
        }
      }
      pqxx::result upd = tx.exec_params(
          absl::StrCat("UPDATE ", qualified, " SET ", absl::StrJoin(sets, ", "), " WHERE ", where),
          pqxx::prepare::make_dynamic_params(params));
      tr->set_rows_affected(tr->rows_affected() + upd.affected_rows());
      return;
    }
    case policies::TableAction::kRetain:
      tr->set_rows_withheld(tr->rows_withheld() + count_where());
      return;
  }
}

// Test hook: LETHE_FAILPOINT=agent-after-purge-commit kills the process right after the
// purge transaction commits, before the receipt is published.
void MaybeCrash(const char* point) {
  const char* fp = std::getenv("LETHE_FAILPOINT");
  if (fp != nullptr && std::string_view(fp) == point) {
    spdlog::critical("failpoint {} reached: killing this process", point);
    ::kill(::getpid(), SIGKILL);
  }
}

// A failure that is the database's, not the command's: retry later.
bool Transient(const std::exception& e) {
  return dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
         dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr ||
         dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr ||
         dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr ||
         dynamic_cast<const pqxx::insufficient_resources*>(&e) != nullptr;
}

// What a FAILED receipt says about a database error, with no data from the rows.
std::string Describe(const std::exception& e, const std::string& table) {
  if (auto* u = dynamic_cast<const UnsupportedColumn*>(&e)) return u->what();
  if (dynamic_cast<const pqxx::undefined_table*>(&e)) return "table " + table + " does not exist";
  if (dynamic_cast<const pqxx::undefined_column*>(&e))
    return "table " + table + " lacks the key column named in the policy";
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&e))
    return "deleting from " + table +
           " violates a foreign key: list referencing tables before the tables they reference";
  if (dynamic_cast<const pqxx::data_exception*>(&e))
    return "an identity value does not fit the type of the key column of " + table;
  if (dynamic_cast<const pqxx::insufficient_privilege*>(&e))
    return "the agent's database role may not delete from " + table;
  if (auto* s = dynamic_cast<const pqxx::sql_error*>(&e))
    return "database error " + s->sqlstate() + " on " + table;
  return "database error on " + table;
}

}  // namespace

PostgresPurger::PostgresPurger(std::string dsn, policies::Domain domain,
                               const crypto::Ed25519PrivateKey& key, const Clock& clock,
                               TombstoneSink tombstones, S3Eraser* objects)
    : dsn_(std::move(dsn)),
      domain_(std::move(domain)),
      key_(key),
      clock_(clock),
      tombstones_(std::move(tombstones)),
      objects_(objects) {}

PostgresPurger::~PostgresPurger() = default;

absl::StatusOr<pqxx::connection*> PostgresPurger::Connection() {
  try {
    if (conn_ && conn_->is_open()) return conn_.get();
    conn_ = std::make_unique<pqxx::connection>(dsn_);
    return conn_.get();
  } catch (const std::exception& e) {
    conn_.reset();
    // libpq's message may name the host; it never holds subject data.
    return absl::UnavailableError(absl::StrCat("PostgreSQL unreachable: ", e.what()));
  }
}

absl::Status PostgresPurger::EnsureSchema() {
  LETHE_ASSIGN_OR_RETURN(pqxx::connection * c, Connection());
  try {
    pqxx::work tx(*c);
    tx.exec(kSchemaSql);
    tx.exec(kVacuumSchemaSql);  // the physical purge watch's (vacuum_watch.h)
    tx.exec_params(
        "INSERT INTO lethe_agent.settings (name, value) VALUES ('anonymization_key', $1) "
        "ON CONFLICT (name) DO NOTHING",
        pqxx::binarystring(crypto::RandomBytes(32)));
    pqxx::result key =
        tx.exec("SELECT value FROM lethe_agent.settings WHERE name = 'anonymization_key'");
    hash_key_hex_ = crypto::Hex(pqxx::binarystring(key[0][0]).str());
    tx.commit();
    schema_ready_ = true;
    return absl::OkStatus();
  } catch (const std::exception& e) {
    conn_.reset();
    return absl::UnavailableError(absl::StrCat("cannot create schema lethe_agent: ", e.what()));
  }
}

PurgeResult PostgresPurger::Sign(v1::Receipt receipt) {
  PurgeResult r;
  v1::SignedEnvelope env = proto::SignEnvelope(proto::kReceiptType, receipt.SerializeAsString(), key_);
  r.receipt_wire = env.SerializeAsString();
  r.receipt = std::move(receipt);
  return r;
}

PurgeResult PostgresPurger::StoredReceipt(std::string wire) {
  PurgeResult r;
  r.receipt_wire = std::move(wire);
  v1::SignedEnvelope env;
  env.ParseFromString(r.receipt_wire);
  r.receipt.ParseFromString(env.body());
  r.replayed = true;
  return r;
}

absl::StatusOr<std::string> PostgresPurger::Carry(pqxx::work& tx, const VerifiedCommand& vc, v1::Receipt& receipt,
                                                  std::string& current_table) {
  bool all_zero = true;
  std::string missing_identity;
  for (const policies::Table& t : domain_.tables) {
    current_table = t.QualifiedName();
    auto* tr = receipt.add_tables();
    tr->set_table(current_table);
    tr->set_action(policies::Table::ActionName(t.action));
    if (t.action == policies::TableAction::kRetain) {
      tr->set_basis(t.basis);
      tr->set_retention_period_seconds(absl::ToInt64Seconds(t.period));
    }
    for (const auto& rw : t.set) tr->add_columns(rw.column);
    bool any = false;
    for (const auto& id : vc.identities.identities()) {
      if (id.type != t.identity) continue;
      any = true;
      ApplyToTable(tx, t, id.value, hash_key_hex_, tr);
    }
    // Then what is left, by a query of its own: no row may still be keyed by an identity,
    // and no rewritten column may still hold one.
    if (t.action != policies::TableAction::kRetain) {
      for (const auto& id : vc.identities.identities()) {
        if (id.type != t.identity) continue;
        const Recount left = RecountSubject(tx, t, id.value);
        tr->set_rows_remaining(tr->rows_remaining() + left.remaining);
        tr->set_rows_near_match(tr->rows_near_match() + left.near_matches);
      }
    }
    if (!any && missing_identity.empty()) missing_identity = t.identity;
    if (tr->rows_remaining() != 0) all_zero = false;
  }
  // Tombstones, before the commit: a crash after this point re-runs them on redelivery.
  if (missing_identity.empty() && all_zero) {
    for (const policies::KafkaTopic& topic : domain_.kafka_topics) {
      current_table = "topic " + topic.topic;
      std::vector<std::string> keys = SubjectKeys(topic.key_template, topic.identities, vc.identities);
      if (keys.empty()) {
        missing_identity = topic.identities.empty() ? "?" : topic.identities.front();
        break;
      }
      if (!tombstones_) return absl::FailedPreconditionError("no Kafka producer for the domain's topics");
      for (const auto& k : keys) {
        auto t = tombstones_(topic.topic, k);
        if (!t.ok())
          return absl::UnavailableError("tombstone to " + topic.topic + ": " + std::string(t.status().message()));
        *receipt.add_tombstones() = *t;
      }
    }
  }
  if (!missing_identity.empty())
    return "the command carries no " + missing_identity +
           " identity, which this domain's tables or topics are keyed by";
  if (!all_zero) return std::string("rows of the subject remained after deleting them; rolled back");
  for (const policies::KafkaTopic& topic : domain_.kafka_topics) {
    for (const policies::Sink& sk : topic.sinks) {
      v1::SinkResult* r = receipt.add_sinks();
      r->set_topic(topic.topic);
      r->set_name(sk.name);
      r->set_kind(policies::Sink::KindName(sk.kind));
      r->set_deletes_on_tombstone(sk.deletes_on_tombstone);
      if (!sk.covered_by_bucket.empty()) r->set_covered_by("s3 bucket " + sk.covered_by_bucket);
      if (!sk.covered_by_table.empty()) r->set_covered_by("table " + sk.covered_by_table);
    }
  }
  // S3 last, still before the commit: a failure to finish rolls the tables back and the
  // redelivery erases what is left.
  if (!domain_.s3.buckets.empty()) {
    current_table = "S3";
    if (objects_ == nullptr) return absl::FailedPreconditionError("no S3 client for the domain's buckets");
    LETHE_ASSIGN_OR_RETURN(ObjectErasure erased, objects_->Erase(vc.identities));
    if (!erased.failure.empty()) return erased.failure;
    for (auto& b : erased.buckets) *receipt.add_s3() = std::move(b);
  }
  receipt.set_outcome(v1::Receipt::COMPLETED);
  receipt.set_verified_zero_remaining(true);
  receipt.set_completed_at_unix_ms(absl::ToUnixMillis(clock_.Now()));
  return std::string();
}

namespace {

v1::Receipt ReceiptFor(const VerifiedCommand& vc) {
  v1::Receipt receipt;
  receipt.set_command_id(vc.command.command_id());
  receipt.set_request_id(vc.command.request_id());
  receipt.set_domain(vc.command.domain());
  receipt.set_command_digest(vc.digest);
  return receipt;
}

// A PostgreSQL text[] literal of `values`, each quoted, with '"' and '\' escaped.
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char ch : values[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

absl::StatusOr<PostgresPurger::Together> PostgresPurger::CarryTogether(
    const std::vector<const VerifiedCommand*>& commands) {
  if (!schema_ready_) LETHE_RETURN_IF_ERROR(EnsureSchema());
  LETHE_ASSIGN_OR_RETURN(pqxx::connection * c, Connection());
  std::vector<std::string> ids;
  for (const VerifiedCommand* vc : commands) ids.push_back(vc->command.command_id());
  const std::string id_array = TextArray(ids);
  Together out;
  std::string current_table;
  try {
    pqxx::work tx(*c);
    // Serialise concurrent deliveries of the same commands (two agent replicas, say): every
    // command's lock, taken in one order, so that another replica's batch cannot deadlock
    // with this one; then what was processed before.
    tx.exec_params(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext(id) AS h "
        "FROM unnest($1::text[]) AS id) AS ids ORDER BY h",
        id_array);
    std::map<std::string, std::string> seen;  // command id -> stored receipt
    for (const auto& row : tx.exec_params(
             "SELECT command_id, receipt FROM lethe_agent.processed_commands WHERE command_id = ANY($1::text[])",
             id_array))
      seen[row[0].as<std::string>()] = pqxx::binarystring(row[1]).str();

    std::vector<std::string> insert;  // (command id, request id, receipt hex) per new receipt
    for (const VerifiedCommand* vc : commands) {
      const std::string& id = vc->command.command_id();
      if (auto it = seen.find(id); it != seen.end()) {  // before, or earlier in this batch
        out.results.push_back(StoredReceipt(it->second));
        continue;
      }
      v1::Receipt receipt = ReceiptFor(*vc);
      // On an error status the transaction is rolled back as `tx` goes: nothing changed.
      LETHE_ASSIGN_OR_RETURN(std::string failure, Carry(tx, *vc, receipt, current_table));
      if (!failure.empty()) {
        tx.abort();
        out.failure = std::move(failure);
        return out;
      }
      PurgeResult r = Sign(std::move(receipt));
      insert.push_back(id);
      insert.push_back(vc->command.request_id());
      insert.push_back(crypto::Hex(r.receipt_wire));
      seen[id] = r.receipt_wire;
      out.results.push_back(std::move(r));
    }
    // The tables each purge left dead tuples in, for the physical purge watch
    // (vacuum_watch.h): recorded with the purge, so that no crash can lose them.
    std::string purge_xid;
    for (const PurgeResult& r : out.results) {
      if (r.replayed) continue;
      std::vector<const v1::TableResult*> rows;
      for (const auto& t : r.receipt.tables())
        if (proto::LeftDeadTuples(t)) rows.push_back(&t);
      if (rows.empty()) continue;
      if (purge_xid.empty()) purge_xid = tx.exec("SELECT pg_current_xact_id()::text")[0][0].as<std::string>();
      tx.exec_params(
          "INSERT INTO lethe_agent.vacuum_commands (command_id, request_id, command_digest, completed_unix_ms, "
          "purge_xid) VALUES ($1, $2, $3, $4, $5::bigint)",
          r.receipt.command_id(), r.receipt.request_id(), pqxx::binarystring(r.receipt.command_digest()),
          r.receipt.completed_at_unix_ms(), purge_xid);
      for (size_t i = 0; i < rows.size(); ++i)
        tx.exec_params(
            "INSERT INTO lethe_agent.vacuum_tables (command_id, position, table_name, action) VALUES ($1, $2, $3, $4)",
            r.receipt.command_id(), static_cast<int>(i), rows[i]->table(), rows[i]->action());
    }
    if (!insert.empty()) {
      std::string sql =
          "INSERT INTO lethe_agent.processed_commands (command_id, request_id, outcome, receipt) VALUES ";
      for (size_t i = 0; i < insert.size(); i += 3)
        absl::StrAppend(&sql, i == 0 ? "" : ", ", "($", i + 1, ", $", i + 2, ", 'COMPLETED', decode($", i + 3,
                        ", 'hex'))");
      tx.exec_params(sql, pqxx::prepare::make_dynamic_params(insert));
    }
    tx.commit();
  } catch (const std::exception& e) {
    if (Transient(e) || !c->is_open()) {
      conn_.reset();
      return absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
    }
    out.results.clear();
    out.failure = Describe(e, current_table);
    return out;
  }
  MaybeCrash("agent-after-purge-commit");
  return out;
}

absl::StatusOr<PurgeResult> PostgresPurger::Purge(const VerifiedCommand& vc) {
  if (vc.access) return Gather(vc);
  LETHE_ASSIGN_OR_RETURN(Together together, CarryTogether({&vc}));
  if (together.failure.empty()) return std::move(together.results.front());

  // FAILED: nothing was deleted. Store the receipt so that a redelivery answers the same.
  v1::Receipt receipt = ReceiptFor(vc);
  receipt.set_outcome(v1::Receipt::FAILED);
  receipt.set_error(together.failure);
  receipt.set_verified_zero_remaining(false);
  receipt.set_completed_at_unix_ms(absl::ToUnixMillis(clock_.Now()));
  PurgeResult r = Sign(std::move(receipt));
  LETHE_ASSIGN_OR_RETURN(pqxx::connection * c, Connection());
  try {
    pqxx::work tx(*c);
    tx.exec_params(
        "INSERT INTO lethe_agent.processed_commands (command_id, request_id, outcome, receipt) "
        "VALUES ($1, $2, 'FAILED', $3) ON CONFLICT (command_id) DO NOTHING",
        vc.command.command_id(), vc.command.request_id(), pqxx::binarystring(r.receipt_wire));
    tx.commit();
  } catch (const std::exception& e) {
    conn_.reset();
    return absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
  }
  return r;
}

std::vector<absl::StatusOr<PurgeResult>> PostgresPurger::PurgeAll(
    const std::vector<const VerifiedCommand*>& commands) {
  bool any_access = false;
  for (const VerifiedCommand* c : commands) any_access = any_access || c->access;
  if (commands.size() <= 1) return Purger::PurgeAll(commands);
  if (any_access) {
    // In order: each run of erasures between access commands shares a transaction, and each
    // access command gathers alone (a read-only snapshot), seeing exactly the erasures before
    // it. Carrying the whole batch out one by one instead cost a transaction and a commit per
    // erasure whenever a batch held one access command: the chaos run's agents fell behind.
    std::vector<absl::StatusOr<PurgeResult>> out;
    std::vector<const VerifiedCommand*> run;
    auto flush = [&] {
      if (run.empty()) return true;
      std::vector<absl::StatusOr<PurgeResult>> done = PurgeAll(run);
      const bool all = !done.empty() && done.size() == run.size() && done.back().ok();
      for (auto& r : done) out.push_back(std::move(r));
      run.clear();
      return all;
    };
    for (const VerifiedCommand* c : commands) {
      if (!c->access) {
        run.push_back(c);
        continue;
      }
      if (!flush()) return out;  // stops after the first error, as PurgeAll promises
      out.push_back(Purge(*c));
      if (!out.back().ok()) return out;
    }
    flush();
    return out;
  }
  absl::StatusOr<Together> together = CarryTogether(commands);
  if (!together.ok()) return {together.status()};  // nothing kept: retry the batch
  // A command that fails is answered alone, with nothing of it kept: the batch was rolled
  // back; carry each command out in its own transaction.
  if (!together->failure.empty()) return Purger::PurgeAll(commands);
  std::vector<absl::StatusOr<PurgeResult>> out;
  for (PurgeResult& r : together->results) out.push_back(std::move(r));
  return out;
}

absl::StatusOr<PurgeResult> PostgresPurger::Gather(const VerifiedCommand& vc) {
  if (!schema_ready_) LETHE_RETURN_IF_ERROR(EnsureSchema());
  LETHE_ASSIGN_OR_RETURN(pqxx::connection * c, Connection());
  v1::Receipt receipt = ReceiptFor(vc);
  auto failed = [&](std::string why) {
    receipt.clear_tables();
    receipt.set_outcome(v1::Receipt::FAILED);
    receipt.set_error(std::move(why));
    receipt.set_completed_at_unix_ms(absl::ToUnixMillis(clock_.Now()));
    return Sign(std::move(receipt));
  };
  // Every table and topic of the section needs one of the command's identity types, as for a
  // purge: an access answer must not silently leave a table out.
  for (const policies::Table& t : domain_.tables) {
    bool any = false;
    for (const auto& id : vc.identities.identities()) any = any || id.type == t.identity;
    if (!any)
      return failed("the command carries no " + t.identity + " identity, which this domain's tables are keyed by");
  }
  std::vector<TopicKeys> topics;
  for (const policies::KafkaTopic& topic : domain_.kafka_topics) {
    TopicKeys tk;
    tk.topic = topic.topic;
    for (std::string& k : SubjectKeys(topic.key_template, topic.identities, vc.identities)) tk.keys.emplace_back(std::move(k));
    if (tk.keys.empty())
      return failed("the command carries no " + (topic.identities.empty() ? std::string("?") : topic.identities.front()) +
                    " identity, which this domain's topics are keyed by");
    topics.push_back(std::move(tk));
  }
  PartHeader header;
  header.request_id = vc.command.request_id();
  header.command_id = vc.command.command_id();
  header.domain = vc.command.domain();
  header.gathered_at = clock_.Now();
  header.salt = crypto::RandomBytes(16);
  GatheredPart part;
  std::string current_table = "the domain's tables";
  try {
    // One snapshot of every table, and no way to change one.
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(*c);
    part = GatherSubject(tx, domain_, vc.identities, topics, header);
    tx.commit();
  } catch (const std::exception& e) {
    if (Transient(e) || !c->is_open()) {
      conn_.reset();
      return absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
    }
    return failed(Describe(e, current_table));
  }
  for (size_t i = 0; i < domain_.tables.size(); ++i) {
    const policies::Table& t = domain_.tables[i];
    auto* tr = receipt.add_tables();
    tr->set_table(t.QualifiedName());
    tr->set_action(policies::Table::ActionName(t.action));
    if (t.action == policies::TableAction::kRetain) {
      tr->set_basis(t.basis);
      tr->set_retention_period_seconds(absl::ToInt64Seconds(t.period));
    }
    for (const auto& rw : t.set) tr->add_columns(rw.column);
    if (i < part.tables.size()) tr->set_rows_exported(part.tables[i].rows);
  }
  // Sealed to the request's part key, which only lethed can derive; then cut into signed chunks.
  LETHE_ASSIGN_OR_RETURN(const crypto::X25519PublicKey recipient,
                         crypto::X25519PublicKey::FromRaw(vc.part_recipient_key));
  const std::string sealed = crypto::SealTo(recipient, RevealSecret(part.json));
  receipt.set_part_sha256(crypto::Sha256(RevealSecret(part.json)));
  receipt.set_part_size(RevealSecret(part.json).size());
  part = GatheredPart();  // the clear part is not needed any more
  receipt.set_part_sealed_sha256(crypto::Sha256(sealed));
  const size_t count = (sealed.size() + part_chunk_bytes_ - 1) / part_chunk_bytes_;
  receipt.set_part_chunks(static_cast<uint32_t>(count));
  receipt.set_outcome(v1::Receipt::COMPLETED);
  receipt.set_completed_at_unix_ms(absl::ToUnixMillis(clock_.Now()));
  PurgeResult r = Sign(std::move(receipt));
  for (size_t i = 0; i < count; ++i) {
    v1::AccessPartChunk chunk;
    chunk.set_command_id(vc.command.command_id());
    chunk.set_request_id(vc.command.request_id());
    chunk.set_domain(vc.command.domain());
    chunk.set_sealed_sha256(r.receipt.part_sealed_sha256());
    chunk.set_index(static_cast<uint32_t>(i));
    chunk.set_count(static_cast<uint32_t>(count));
    chunk.set_data(sealed.substr(i * part_chunk_bytes_, part_chunk_bytes_));
    r.part_chunks.push_back(
        proto::SignEnvelope(proto::kAccessPartChunkType, chunk.SerializeAsString(), key_).SerializeAsString());
  }
  return r;
}

}  // namespace lethe::agents
