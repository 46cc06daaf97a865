// RequestStore: the control plane's state, a projection of the ledger. It is rebuilt at
// start by replaying every entry and kept current by applying each entry after it is
// durable, so it never knows anything the ledger does not.
//
// Thread safe. Readers get copies.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "lethe/v1/api.pb.h"
#include "lethe/v1/ledger.pb.h"

namespace lethe::controlplane {

struct CommandRecord {
  std::string command_id;
  std::string request_id;
  std::string domain;
  std::string digest;
  std::string sealed_envelope;
  int64_t not_after_unix_ms = 0;
  uint64_t entry = 0;
};

struct DomainRecord {
  std::string domain;
  v1::DomainState state = v1::PENDING;
  std::string command_id;  // the latest command issued for the domain
  std::optional<v1::Receipt> receipt;
  std::string agent_key_id;
  uint64_t receipt_entry = 0;
  int64_t receipt_unix_ms = 0;
};

struct RequestRecord {
  std::string request_id;
  v1::RequestSubmitted submitted;  // as recorded (tokens and sealed data only)
  uint64_t submitted_entry = 0;
  v1::RequestState state = v1::IN_PROGRESS;
  int64_t completed_unix_ms = 0;
  uint64_t completed_entry = 0;       // RequestCompleted, once final
  std::vector<DomainRecord> domains;  // in target order
};

struct AgentRecord {
  std::string domain;
  std::string key_id;
  std::string public_key;  // raw
  uint64_t entry = 0;
  int64_t enrolled_unix_ms = 0;
};

struct PendingCommand {
  CommandRecord command;
  bool expiring = false;  // not_after is near or past: a fresh command should be issued
};

class RequestStore {
 public:
  // Applies one durable entry. kDataLoss when it contradicts earlier entries.
  absl::Status Apply(uint64_t seq, const v1::LedgerEntry& entry);

  std::optional<RequestRecord> Get(const std::string& request_id) const;
  std::vector<RequestRecord> List() const;
  std::optional<CommandRecord> Command(const std::string& command_id) const;
  std::vector<AgentRecord> Agents() const;
  // The enrolled key of `domain` with id `key_id`, if any.
  std::optional<crypto::Ed25519PublicKey> AgentKey(const std::string& domain,
                                                   const std::string& key_id) const;
  bool HasAgent(const std::string& domain) const;
  // Latest command of every domain still waiting for a receipt. `expiry_margin`: how long
  // before not_after a command counts as expiring.
  std::vector<PendingCommand> Pending(absl::Time now, absl::Duration expiry_margin) const;
  // Ledger indices of everything that proves the request, in log order: the enrolments of
  // the agent keys that signed its receipts, RequestSubmitted, every CommandIssued, every
  // ReceiptRecorded and RequestCompleted.
  std::vector<uint64_t> EvidenceEntries(const std::string& request_id) const;
  // Requests that have every receipt but no RequestCompleted yet (only after a crash).
  std::vector<std::string> AnsweredButOpen() const;

  // Publish attempts are runtime facts, not ledger facts.
  void NotePublished(const std::string& command_id);
  int Attempts(const std::string& command_id) const;

  // Changes whenever an entry is applied or a command published.
  uint64_t version() const;
  // Waits until version() != seen or `timeout` passes. Returns the current version.
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout) const;

 private:
  void Bump();

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  uint64_t version_ = 0;
  std::map<std::string, RequestRecord> requests_;
  std::vector<std::string> order_;  // request ids in submission order
  std::map<std::string, CommandRecord> commands_;
  std::vector<AgentRecord> agents_;
  std::map<std::string, int> attempts_;
};

// Converts a record to its API form.
v1::RequestView ToView(const RequestRecord& r, const RequestStore& store);

}  // namespace lethe::controlplane
