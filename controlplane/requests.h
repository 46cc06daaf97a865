// RequestManager: the control plane's write path. Every state change goes through here:
// it validates, appends the ledger entries in one durable batch, and only then applies
// them to the RequestStore. A call that fails leaves ledger, key store and state as they were.
//
// Thread safe: writes that check recorded state (receipts, completion, enrolment, re-issue)
// are serialised by one mutex so that a check and the append that depends on it cannot
// interleave; submissions depend on no recorded state and run concurrently.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/planner.h"
#include "controlplane/state.h"
#include "controlplane/vault.h"
#include "crypto/clock.h"
#include "crypto/crypto.h"
#include "ledger/ledger.h"
#include "policies/policy.h"

namespace lethe::controlplane {

inline constexpr size_t kMaxIdentityValueBytes = 1024;
inline constexpr size_t kMaxIdentities = 16;
inline constexpr size_t kMaxReasonBytes = 4096;

struct RequestManagerOptions {
  // How long a signed command stays valid. Shorter bounds the use of a captured command;
  // a command still unanswered near its expiry is replaced by a fresh one.
  absl::Duration command_ttl = absl::Hours(24);
};

struct ReceiptCounters {
  std::atomic<uint64_t> recorded{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> rejected{0};
};

class RequestManager {
 public:
  RequestManager(ledger::Ledger& ledger, RequestStore& store, IdentityVault& vault,
                 const policy::Policy& policy, const crypto::Ed25519PrivateKey& signing_key,
                 const Clock& clock, RequestManagerOptions options = {});

  // Validates the identities (kInvalidArgument naming the field), plans the domains, and
  // records RequestSubmitted plus one CommandIssued per target domain. Returns the id.
  absl::StatusOr<std::string> SubmitErasure(std::vector<SubjectIdentity> identities,
                                            std::string reason);

  // Records AgentEnrolled for `domain` (must be a policy domain) with the PEM public key.
  absl::StatusOr<AgentRecord> EnrollAgent(const std::string& domain, const std::string& pem);

  // Verifies a receipt envelope from Kafka against the enrolled agent key and its command,
  // and records it; appends RequestCompleted once every target domain has answered, then
  // destroys the request key. A receipt already recorded is accepted silently (agents
  // re-send on redelivery). kPermissionDenied / kInvalidArgument / kFailedPrecondition
  // reject it; kUnavailable means "retry later".
  absl::Status RecordReceipt(std::string_view wire);

  // Replaces commands that are at or near expiry with freshly signed ones.
  absl::Status ReissueExpiring(absl::Duration margin);

  // The exact wire bytes of a recorded command (decrypted with its request key).
  absl::StatusOr<std::string> CommandWire(const CommandRecord& command) const;

  // After a restart: completes requests whose receipts are all recorded and destroys keys
  // of finished requests that a crash left behind.
  absl::Status Recover();

  const ReceiptCounters& receipt_counters() const { return counters_; }

 private:
  absl::StatusOr<v1::LedgerEntry> MakeCommand(const std::string& request_id,
                                              const DomainPlan& plan, const SecretBytes& key,
                                              absl::Time now);
  absl::Status AppendAndApply(std::vector<v1::LedgerEntry> entries);
  absl::Status Complete(const std::string& request_id);

  ledger::Ledger& ledger_;
  RequestStore& store_;
  IdentityVault& vault_;
  const policy::Policy& policy_;
  const crypto::Ed25519PrivateKey& key_;
  const Clock& clock_;
  const RequestManagerOptions options_;
  std::mutex write_mu_;
  ReceiptCounters counters_;
};

}  // namespace lethe::controlplane
