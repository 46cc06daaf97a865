// Purger: what the agent needs from a domain's own store — carry out one verified command
// (purge, re-check that nothing of the subject is left, sign the receipt, remember the
// command) in one transaction, or answer a command it has seen before with its stored
// receipt. PostgresPurger (postgres_purger.h) is the implementation lethe-agent runs; tests
// use a fake (tests/fakes/fake_purger.h). Also the types both sides share.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agents/command_verifier.h"
#include "lethe/v1/messages.pb.h"

namespace lethe::agents {

struct PurgeResult {
  std::string receipt_wire;  // serialized SignedEnvelope of `receipt`, signed by the agent
  v1::Receipt receipt;       // COMPLETED (with the re-check's counts per table) or FAILED
  bool replayed = false;     // the command had been processed before: the stored receipt
  // An access command's part, sealed and cut into signed AccessPartChunk envelopes: published,
  // in order, before the receipt.
  std::vector<std::string> part_chunks;
};

// Produces one tombstone (key, null value) to a compacted topic and returns where the broker
// put it. kUnavailable when the broker did not acknowledge it.
using TombstoneSink =
    std::function<absl::StatusOr<v1::TombstoneResult>(const std::string& topic, const std::string& key)>;

// Thread safety: an implementation serves one agent loop; its methods are called from one
// thread at a time (not concurrently).
class Purger {
 public:
  virtual ~Purger() = default;

  // Prepares the store (for PostgreSQL: schema lethe_agent and its tables). kUnavailable
  // when the store cannot be reached; Purge calls it itself until it has succeeded once.
  virtual absl::Status EnsureSchema() = 0;

  // Carries out `command` once. An access command (command.access) is read, never purged:
  // the subject's rows in one read-only transaction, sealed into a part (part_chunks) that
  // a COMPLETED receipt names by digest; nothing is recorded, so a redelivery gathers again.
  // Returns:
  // - a COMPLETED receipt: every table's action applied, the re-check found 0 remaining rows,
  //   the tombstones were acknowledged, and the command is recorded as processed;
  // - a FAILED receipt: the command cannot be carried out as it stands (nothing changed);
  //   it is recorded too, so that a redelivery answers the same;
  // - replayed = true and the stored receipt, for a command processed before (nothing runs);
  // - kUnavailable (or another error): the store or the broker failed; nothing changed and
  //   nothing was recorded, retry later.
  virtual absl::StatusOr<PurgeResult> Purge(const VerifiedCommand& command) = 0;

  // Carries out `commands` in order, each with the outcome Purge would give it; an
  // implementation may share one transaction among them. Returns one result per command
  // handled: the vector stops after the first error (the commands after it were not
  // attempted, and nothing of the failed one changed). This default purges them one by one.
  virtual std::vector<absl::StatusOr<PurgeResult>> PurgeAll(const std::vector<const VerifiedCommand*>& commands) {
    std::vector<absl::StatusOr<PurgeResult>> out;
    for (const VerifiedCommand* c : commands) {
      out.push_back(Purge(*c));
      if (!out.back().ok()) break;
    }
    return out;
  }
};

}  // namespace lethe::agents
