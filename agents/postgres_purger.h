// PostgresPurger: carries out one verified command in the domain's own PostgreSQL, in one
// transaction: for each table of the domain's policy section, in order (children before
// parents), apply its action to the subject's rows with parameterised statements —
//   delete:    delete them, then re-count them;
//   anonymize: rewrite the listed columns (NULL, a constant, or a keyed SHA-256 under the
//              domain's secret in lethe_agent.settings), then check that no row is still keyed
//              by the identity and no rewritten column still holds it;
//   retain:    change nothing, count the rows withheld and report their legal basis —
// then, still before committing, produce a tombstone for every key of the subject on each of
// the domain's compacted Kafka topics (so a crash cannot commit a purge without them); sign
// a receipt; record the command id and the receipt in lethe_agent.processed_commands;
// commit.
// A command already in that table is not executed again: its stored receipt is returned.
//
// Table and column names come only from the validated policy and are quoted as identifiers;
// identity values travel only as statement parameters.
#pragma once

#include <functional>
#include <memory>
#include <pqxx/connection>
#include <string>

#include "absl/status/statusor.h"
#include "agents/command_verifier.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"


namespace lethe::agents {

struct PurgeResult {
  std::string receipt_wire;  // serialized SignedEnvelope
  v1::Receipt receipt;
  bool replayed = false;     // the command had been processed before
};

// Produces one tombstone (key, null value) to a compacted topic and returns where the broker
// put it. kUnavailable when the broker did not acknowledge it.
using TombstoneSink =
    std::function<absl::StatusOr<v1::TombstoneResult>(const std::string& topic, const std::string& key)>;

class PostgresPurger {
 public:
  // `tombstones` serves the domain's kafka topics; it may be empty when the domain has none.
  PostgresPurger(std::string dsn, policies::Domain domain, const crypto::Ed25519PrivateKey& key,
                 const Clock& clock, TombstoneSink tombstones = nullptr);
  ~PostgresPurger();

  // Creates schema lethe_agent and its table when absent. kUnavailable when the server
  // cannot be reached. Purge calls it until it has succeeded once.
  absl::Status EnsureSchema();

  // kUnavailable: the database could not be reached or the transaction could not commit;
  // nothing changed, retry later. Any other failure to purge is answered with a FAILED
  // receipt (stored like a COMPLETED one), after rolling the purge back.
  absl::StatusOr<PurgeResult> Purge(const VerifiedCommand& command);

 private:
  absl::StatusOr<pqxx::connection*> Connection();
  PurgeResult Sign(v1::Receipt receipt);

  const std::string dsn_;
  const policies::Domain domain_;
  const crypto::Ed25519PrivateKey& key_;
  const Clock& clock_;
  const TombstoneSink tombstones_;
  std::unique_ptr<pqxx::connection> conn_;
  bool schema_ready_ = false;  // EnsureSchema succeeded once
  std::string hash_key_hex_;   // the domain's anonymization secret, hex (from lethe_agent.settings)
};

}  // namespace lethe::agents
