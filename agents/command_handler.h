// CommandHandler: what an agent does with one command from its Kafka topic, apart from the
// consumer itself. It verifies the command (CommandVerifier); a rejection is counted, logged
// without personal data and, when the command is authentic (policy drift, another key),
// answered with a signed REJECTED receipt. A verified command goes to the domain's Purger,
// and its receipt (COMPLETED, FAILED, or the stored one of a replay, re-signed under the
// current key) is published. Agent (agent.h) feeds it messages and commits or rewinds their
// offsets by what Handle returns; tests drive it with fakes (tests/fakes/).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "agents/command_verifier.h"
#include "agents/purger.h"
#include "base/clock.h"
#include "crypto/crypto.h"

namespace lethe::agents {

struct AgentStats {
  std::atomic<uint64_t> purged{0};
  std::atomic<uint64_t> gathered{0};   // access commands answered COMPLETED
  std::atomic<uint64_t> replayed{0};
  std::atomic<uint64_t> failed{0};     // FAILED receipts
  std::atomic<uint64_t> rejected{0};   // commands refused by the verifier
  std::atomic<uint64_t> retries{0};    // transient failures (database, broker)
  std::atomic<uint64_t> receipts_sent{0};
  std::atomic<uint64_t> physical_receipts{0};  // PHYSICALLY_PURGED receipts acknowledged by the broker
};

// Publishes a signed receipt (SignedEnvelope bytes) keyed by its request id to
// lethe.receipts, and returns once the broker acknowledged it.
using ReceiptSink = std::function<absl::Status(const std::string& request_id, const std::string& wire)>;

// Thread safety: Handle is called from one thread at a time (the agent's loop); rejected()
// and the AgentStats it updates may be read from any thread concurrently with it.
class CommandHandler {
 public:
  // `verifier`, `purger`, `key`, `clock` and `stats` must outlive the handler. `count`, when
  // set, is told each command's result ("purged", "replayed", "failed", "rejected_<why>").
  CommandHandler(std::string domain, const CommandVerifier& verifier, Purger& purger,
                 const crypto::Ed25519PrivateKey& key, const Clock& clock, ReceiptSink receipts,
                 AgentStats& stats, std::function<void(const std::string&)> count = nullptr);

  // Handles one command's wire bytes; `where` names it in logs (topic/partition@offset).
  // OK: the command is settled (its receipt was acknowledged, or it was refused and needs
  // none): commit its offset. An error: nothing was acknowledged; rewind and retry it.
  absl::Status Handle(std::string_view wire, const std::string& where);

  struct Incoming {
    std::string_view wire;
    std::string where;
  };
  // Handles `commands` in order, as Handle would one by one, except that verified commands
  // in a row go to the purger together (Purger::PurgeAll: one transaction for PostgreSQL).
  // Sets *settled to how many leading commands are settled (their receipts handed to the
  // sink, or none needed); on an error, the command at *settled and those after it are not:
  // rewind to it and retry.
  absl::Status HandleAll(const std::vector<Incoming>& commands, size_t* settled);

  uint64_t rejected(Rejection r) const;
  // Called with the duration of each Purger::PurgeAll (one transaction for PostgreSQL). Set
  // before the first command.
  void set_transaction_observer(std::function<void(absl::Duration)> observe) {
    observe_transaction_ = std::move(observe);
  }

 private:
  // A command the verifier refused: counted, logged, and answered with a signed REJECTED
  // receipt when it is authentic.
  absl::Status Reject(VerifyResult& v, const std::string& where);
  // Counts and logs a purger's result and hands its receipt to the sink.
  absl::Status Answer(const v1::DeleteCommand& cmd, PurgeResult r);
  void Count(const std::string& result) const {
    if (count_) count_(result);
  }

  const std::string domain_;
  const CommandVerifier& verifier_;
  Purger& purger_;
  const crypto::Ed25519PrivateKey& key_;
  const Clock& clock_;
  const ReceiptSink receipts_;
  AgentStats& stats_;
  const std::function<void(const std::string&)> count_;
  std::function<void(absl::Duration)> observe_transaction_;
  mutable std::mutex mu_;
  std::map<Rejection, uint64_t> rejections_;
};

}  // namespace lethe::agents
