// ConsentStore: consent per pseudonymous subject identity and purpose, a projection of the
// ledger's ConsentChanged entries. A subject is named by (identity type, token) only: the
// store, like the ledger, never sees a raw identity.
//
// Memory: the current state of each (subject identity, purpose) is held whole; a change that
// has been superseded and is durable (MarkDurable) is held as its ledger index only, in a
// scratch file (base/scratch_file.h) rebuilt at every start, and History reads it back through
// the EntryReader (Ledger::ReadEntry, which checks each entry against its Merkle leaf). So
// memory follows the subject identities and purposes, not the number of changes.
//
// Thread safe. Readers get copies.
#pragma once

#include <condition_variable>
#include <functional>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/scratch_file.h"
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
  ConsentStore();
  // Where the scratch file goes (lethed: its data directory; by default $TMPDIR or /tmp). Call
  // before the first Apply; it is created then, and a failure is that Apply's.
  void SetScratchDir(std::string dir);
  absl::Status Apply(uint64_t seq, const v1::LedgerEntry& entry);
  // Where superseded changes are read back from (see RequestStore::EntryReader).
  using EntryReader = std::function<absl::StatusOr<std::string>(uint64_t seq)>;
  void SetEntryReader(EntryReader reader);
  // Entries below `end` are durable: superseded changes among them are dropped from memory.
  void MarkDurable(uint64_t end);

  // Every change of the subject identity, oldest first; superseded ones are read back from
  // the ledger (kDataLoss when one no longer matches it).
  absl::StatusOr<std::vector<ConsentRecord>> History(const std::string& type, const std::string& token) const;
  // The latest change of the subject identity per purpose, in order of first record.
  std::vector<ConsentRecord> Current(const std::string& type, const std::string& token) const;
  std::optional<ConsentRecord> Latest(const std::string& type, const std::string& token,
                                      const std::string& purpose) const;
  // The latest change of every subject identity for `purpose`, oldest first.
  std::vector<ConsentRecord> ByPurpose(const std::string& purpose) const;
  // Current states whose change is at a ledger index above `after`, in ledger order: what a
  // publisher that has published everything up to `after` still owes the consent topic.
  std::vector<ConsentRecord> CurrentAfter(uint64_t after) const;
  // Changes recorded, and how many of them are held whole.
  size_t size() const;
  size_t held() const;

  // Changes whenever a change is applied; WaitForChange waits for that or `timeout`.
  uint64_t version() const;
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  uint64_t version_ = 0;
  size_t changes_ = 0;
  struct CurrentState {
    ConsentRecord record;  // the current state
    uint64_t first_entry;  // the first change of this subject identity and purpose
  };
  std::map<std::string, CurrentState> latest_;  // by TopicKey
  std::map<uint64_t, std::string> latest_by_entry_;  // the entry of each current state -> TopicKey
  // Superseded changes not yet durable, by entry: History cannot read them back yet.
  std::map<uint64_t, ConsentRecord> superseded_;
  // Every change of every subject identity, a node of kNodeBytes each in `changes_file_`: its
  // ledger index and the node number + 1 of the same subject identity's change before it (0
  // for its first); by_subject_: "type\0token" -> the node number + 1 of its latest change.
  static constexpr size_t kNodeBytes = 16;
  std::string scratch_dir_;
  std::unique_ptr<ScratchFile> changes_file_;
  std::map<std::string, uint64_t> by_subject_;
  uint64_t durable_end_ = 0;
  EntryReader reader_;
};

}  // namespace lethe::controlplane
