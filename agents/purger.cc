#include "agents/purger.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "crypto/status.h"
#include "proto/envelope.h"
#include "spdlog/spdlog.h"

namespace lethe::agent {
namespace {

constexpr char kSchemaSql[] =
    "CREATE SCHEMA IF NOT EXISTS lethe_agent;"
    "CREATE TABLE IF NOT EXISTS lethe_agent.processed_commands ("
    "  command_id   text PRIMARY KEY,"
    "  request_id   text NOT NULL,"
    "  outcome      text NOT NULL,"
    "  receipt      bytea NOT NULL,"      // the signed receipt envelope, re-sent on redelivery
    "  processed_at timestamptz NOT NULL DEFAULT now())";

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

PostgresPurger::PostgresPurger(std::string dsn, policy::Domain domain,
                               const crypto::Ed25519PrivateKey& key, const Clock& clock)
    : dsn_(std::move(dsn)), domain_(std::move(domain)), key_(key), clock_(clock) {}

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
  ASSIGN_OR_RETURN(pqxx::connection * c, Connection());
  try {
    pqxx::work tx(*c);
    tx.exec(kSchemaSql);
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
  v1::SignedEnvelope env = SignEnvelope(kReceiptType, receipt.SerializeAsString(), key_);
  r.receipt_wire = env.SerializeAsString();
  r.receipt = std::move(receipt);
  return r;
}

absl::StatusOr<PurgeResult> PostgresPurger::Purge(const VerifiedCommand& vc) {
  const v1::DeleteCommand& cmd = vc.command;
  if (!schema_ready_) RETURN_IF_ERROR(EnsureSchema());
  ASSIGN_OR_RETURN(pqxx::connection * c, Connection());

  v1::Receipt receipt;
  receipt.set_command_id(cmd.command_id());
  receipt.set_request_id(cmd.request_id());
  receipt.set_domain(cmd.domain());
  receipt.set_command_digest(vc.digest);

  std::string current_table;
  try {
    pqxx::work tx(*c);
    // Serialise concurrent deliveries of the same command (two agent replicas, say).
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))", cmd.command_id());
    pqxx::result seen = tx.exec_params(
        "SELECT receipt FROM lethe_agent.processed_commands WHERE command_id = $1",
        cmd.command_id());
    if (!seen.empty()) {
      PurgeResult r;
      pqxx::binarystring stored(seen[0][0]);
      r.receipt_wire = stored.str();
      v1::SignedEnvelope env;
      env.ParseFromString(r.receipt_wire);
      r.receipt.ParseFromString(env.body());
      r.replayed = true;
      tx.commit();
      return r;
    }

    bool all_zero = true;
    std::string missing_identity;
    for (const policy::Table& t : domain_.tables) {
      current_table = t.QualifiedName();
      const std::string qualified = tx.quote_name(t.schema) + "." + tx.quote_name(t.name);
      const std::string key = tx.quote_name(t.key_column);
      auto* tr = receipt.add_tables();
      tr->set_table(current_table);
      tr->set_action("delete");
      bool any = false;
      for (const auto& id : cmd.identities()) {
        if (id.type() != t.identity) continue;
        any = true;
        // The parameter goes untyped, so PostgreSQL reads it as the key column's own type.
        pqxx::result del = tx.exec_params(
            absl::StrCat("DELETE FROM ", qualified, " WHERE ", key, " = $1"), id.value());
        tr->set_rows_affected(tr->rows_affected() + del.affected_rows());
        pqxx::result left = tx.exec_params(
            absl::StrCat("SELECT count(*) FROM ", qualified, " WHERE ", key, " = $1"), id.value());
        tr->set_rows_remaining(tr->rows_remaining() + left[0][0].as<int64_t>());
      }
      if (!any && missing_identity.empty()) missing_identity = t.identity;
      if (tr->rows_remaining() != 0) all_zero = false;
    }
    if (!missing_identity.empty()) {
      tx.abort();
      receipt.clear_tables();
      receipt.set_outcome(v1::Receipt::FAILED);
      receipt.set_error("the command carries no " + missing_identity +
                        " identity, which table(s) of this domain are keyed by");
    } else if (!all_zero) {
      tx.abort();
      receipt.clear_tables();
      receipt.set_outcome(v1::Receipt::FAILED);
      receipt.set_error("rows of the subject remained after deleting them; rolled back");
    } else {
      receipt.set_outcome(v1::Receipt::COMPLETED);
      receipt.set_verified_zero_remaining(true);
      receipt.set_completed_at_unix_ms(absl::ToUnixMillis(clock_.Now()));
      PurgeResult r = Sign(std::move(receipt));
      tx.exec_params(
          "INSERT INTO lethe_agent.processed_commands (command_id, request_id, outcome, receipt) "
          "VALUES ($1, $2, 'COMPLETED', $3)",
          cmd.command_id(), cmd.request_id(), pqxx::binarystring(r.receipt_wire));
      tx.commit();
      MaybeCrash("agent-after-purge-commit");
      return r;
    }
  } catch (const std::exception& e) {
    if (Transient(e) || !c->is_open()) {
      conn_.reset();
      return absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
    }
    receipt.clear_tables();
    receipt.set_outcome(v1::Receipt::FAILED);
    receipt.set_error(Describe(e, current_table));
  }

  // FAILED: nothing was deleted. Store the receipt so that a redelivery answers the same.
  receipt.set_verified_zero_remaining(false);
  receipt.set_completed_at_unix_ms(absl::ToUnixMillis(clock_.Now()));
  PurgeResult r = Sign(std::move(receipt));
  try {
    pqxx::work tx(*c);
    tx.exec_params(
        "INSERT INTO lethe_agent.processed_commands (command_id, request_id, outcome, receipt) "
        "VALUES ($1, $2, 'FAILED', $3) ON CONFLICT (command_id) DO NOTHING",
        cmd.command_id(), cmd.request_id(), pqxx::binarystring(r.receipt_wire));
    tx.commit();
  } catch (const std::exception& e) {
    conn_.reset();
    return absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
  }
  return r;
}

}  // namespace lethe::agent
