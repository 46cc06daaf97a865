// ConsentStore: consent per pseudonymous subject identity and purpose, a projection of the
// ledger's ConsentChanged entries. A subject is named by (identity type, token) only: the
// store, like the ledger, never sees a raw identity.
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
#include "lethe/v1/ledger.pb.h"

namespace lethe::controlplane {

struct ConsentRecord {
  std::string identity_type;
  std::string token;  // raw 32-byte HMAC token
  std::string purpose;
  v1::ConsentStatus status = v1::CONSENT_STATUS_UNSPECIFIED;
  int64_t changed_unix_ms = 0;
  std::string source;
  std::string change_id;
  std::string erasure_request_id;
  uint64_t entry = 0;
  // The record key on lethe.consent: "<identity type>:<hex token>:<purpose>".
  std::string TopicKey() const;
};

class ConsentStore {
 public:
  absl::Status Apply(uint64_t seq, const v1::LedgerEntry& entry);

  // Every change of the subject identity, oldest first.
  std::vector<ConsentRecord> History(const std::string& type, const std::string& token) const;
  // The latest change of the subject identity per purpose, in order of first record.
  std::vector<ConsentRecord> Current(const std::string& type, const std::string& token) const;
  std::optional<ConsentRecord> Latest(const std::string& type, const std::string& token,
                                      const std::string& purpose) const;
  // The latest change of every subject identity for `purpose`, oldest first.
  std::vector<ConsentRecord> ByPurpose(const std::string& purpose) const;
  // Current states whose change is at a ledger index above `after`, in ledger order: what a
  // publisher that has published everything up to `after` still owes the consent topic.
  std::vector<ConsentRecord> CurrentAfter(uint64_t after) const;
  size_t size() const;

  // Changes whenever a change is applied; WaitForChange waits for that or `timeout`.
  uint64_t version() const;
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  uint64_t version_ = 0;
  std::vector<ConsentRecord> changes_;      // ledger order
  std::map<std::string, size_t> latest_;    // TopicKey -> index into changes_
  // "type\0token" -> indices into changes_ of that subject identity, in ledger order: a
  // subject's history and current state without a pass over every change.
  std::map<std::string, std::vector<size_t>> by_subject_;
};

}  // namespace lethe::controlplane
