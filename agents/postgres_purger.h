// PostgresPurger: the Purger (purger.h) of a PostgreSQL domain. It carries out one verified
// command in the domain's own PostgreSQL, in one transaction: for each table of the domain's
// policy section, in order (children before parents), apply its action to the subject's rows
// with parameterised statements —
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
// identity values travel only as statement parameters, read from their SecretBytes by
// RevealSecret() where they are bound (here and in recheck.cc) or put into a Kafka key.
#pragma once

#include <memory>
#include <pqxx/connection>
#include <pqxx/transaction>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agents/command_verifier.h"
#include "agents/purger.h"
#include "agents/s3_eraser.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"

namespace lethe::agents {

// Thread safety: not thread-safe; one agent loop calls EnsureSchema and Purge from one thread
// at a time (it holds one connection). Distinct instances may run concurrently.
class PostgresPurger final : public Purger {
 public:
  // `tombstones` serves the domain's kafka topics and `objects` its S3 buckets; either may be
  // null when the domain has none.
  PostgresPurger(std::string dsn, policies::Domain domain, const crypto::Ed25519PrivateKey& key,
                 const Clock& clock, TombstoneSink tombstones = nullptr, S3Eraser* objects = nullptr);
  ~PostgresPurger() override;

  // Creates schema lethe_agent and its table when absent. kUnavailable when the server
  // cannot be reached. Purge calls it until it has succeeded once.
  absl::Status EnsureSchema() override;

  // kUnavailable: the database could not be reached or the transaction could not commit;
  // nothing changed, retry later. Any other failure to purge is answered with a FAILED
  // receipt (stored like a COMPLETED one), after rolling the purge back.
  absl::StatusOr<PurgeResult> Purge(const VerifiedCommand& command) override;

  // Several commands in one transaction (one commit, one lock and look-up statement for all),
  // each carried out and re-checked as Purge does it. If one of them would be FAILED, or a
  // statement fails for one command's sake, the batch is rolled back and every command is
  // carried out alone by Purge; a transient failure rolls it back and is returned alone.
  std::vector<absl::StatusOr<PurgeResult>> PurgeAll(const std::vector<const VerifiedCommand*>& commands) override;

  // The largest piece of a sealed part per AccessPartChunk (default 512 KiB: with its envelope,
  // well under a broker's default message.max.bytes of 1,000,000).
  void set_part_chunk_bytes(size_t n) { part_chunk_bytes_ = n == 0 ? 1 : n; }

 private:
  absl::StatusOr<pqxx::connection*> Connection();
  PurgeResult Sign(v1::Receipt receipt);
  // The result of a command processed before, from its stored receipt envelope.
  static PurgeResult StoredReceipt(std::string wire);
  // `commands` carried out in one transaction (Purge's and PurgeAll's common path): their
  // results in order, each COMPLETED or the stored receipt of a command processed before; or,
  // with nothing kept, `failure`: why a command cannot be carried out as it stands (it is to
  // be answered FAILED). An error status (kUnavailable): nothing kept, retry later.
  struct Together {
    std::vector<PurgeResult> results;
    std::string failure;
  };
  absl::StatusOr<Together> CarryTogether(const std::vector<const VerifiedCommand*>& commands);
  // One command's work inside `tx`: every table's action and re-check, then the tombstones.
  // Returns "" with `receipt` COMPLETED (unsigned), or why the command fails (the caller rolls
  // back); an error status (a tombstone not acknowledged: kUnavailable) leaves it to the
  // caller to roll back and retry. pqxx exceptions propagate; `current_table` names where.
  absl::StatusOr<std::string> Carry(pqxx::work& tx, const VerifiedCommand& vc, v1::Receipt& receipt,
                                    std::string& current_table);
  // An access command: the subject's rows and keys gathered in one read-only, repeatable-read
  // transaction (postgres_gatherer.h), sealed to the command's part key, chunked, and a
  // COMPLETED receipt naming the part; or a FAILED receipt saying why not. Nothing is written.
  absl::StatusOr<PurgeResult> Gather(const VerifiedCommand& vc);

  const std::string dsn_;
  const policies::Domain domain_;
  const crypto::Ed25519PrivateKey& key_;
  const Clock& clock_;
  const TombstoneSink tombstones_;
  S3Eraser* const objects_;
  std::unique_ptr<pqxx::connection> conn_;
  bool schema_ready_ = false;  // EnsureSchema succeeded once
  std::string hash_key_hex_;   // the domain's anonymization secret, hex (from lethe_agent.settings)
  size_t part_chunk_bytes_ = 512 * 1024;
};

}  // namespace lethe::agents
