// Independent verification of a ledger from its raw entries, for auditors. It trusts only
// lethed's public key: agent keys are taken from the AgentEnrolled entries of the log itself.
//
// Checks, in one streaming pass: the hash chain; that entry 0 is LogCreated naming this key;
// every ReceiptRecorded's signature against a key enrolled for its domain before it, and its
// binding to a CommandIssued (same command id, request, domain and command digest); that each
// RequestCompleted follows a receipt from every target domain with a matching outcome; and
// that the signed checkpoint's root equals the Merkle root of the entries below it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "audit/request_lifecycle.h"
#include "crypto/crypto.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "lethe/v1/ledger.pb.h"
#include "policies/policy.h"

namespace lethe::audit {

struct AuditReport {
  uint64_t entries = 0;  // in complete batches
  uint64_t agents = 0;
  uint64_t requests = 0;
  uint64_t requests_completed = 0;
  uint64_t requests_failed = 0;
  uint64_t requests_with_gaps = 0;  // DONE_WITH_GAPS: erased, but a sink keeps a copy
  uint64_t commands = 0;
  uint64_t receipts = 0;
  uint64_t policy_activations = 0;
  uint64_t consent_changes = 0;
  uint64_t extensions = 0;
  // Access requests among `requests`, and the packages released (exported or expired).
  uint64_t access_requests = 0;
  uint64_t packages_exported = 0;
  uint64_t packages_expired = 0;
  uint64_t checkpoint_size = 0;
  // Entries past the checkpoint (not covered by its signature), and their payload bytes.
  uint64_t uncovered_entries = 0;
  uint64_t uncovered_bytes = 0;
  // Entries of an incomplete batch at the end of the log: an unacknowledged write that
  // lethed cuts when it next starts. Chain-checked, but not counted as part of the log.
  uint64_t incomplete_batch_entries = 0;
  uint64_t incomplete_batch_bytes = 0;
  std::string root;           // Merkle root over the entries (incomplete batch excluded)
  std::string origin;
  uint64_t key_revocations = 0;
  // Entries a person caused, recorded without an authenticated caller (lethed --insecure, or
  // a log written before lethed had mutual TLS); accepted only with accept_unauthenticated.
  uint64_t unauthenticated = 0;
  // Entries with fields proto/lethe/v1 does not define (accepted with allow_unknown_fields).
  uint64_t unknown_field_entries = 0;
  // Who activated each policy and who enrolled and revoked each agent key, in log order.
  struct GovernanceEvent {
    uint64_t entry = 0;
    int64_t unix_ms = 0;
    std::string what;
    v1::Actor actor;
  };
  std::vector<GovernanceEvent> governance;
};

struct AuditOptions {
  // Accept entries a person caused that record no authenticated caller (role "insecure" or
  // none), e.g. of a development lethed run with --insecure. Off: such entries fail.
  bool accept_unauthenticated = false;
  // Accept entries (and signed receipts) holding protobuf fields proto/lethe/v1 does not
  // define, counting them. Off: such an entry fails, since an unknown field could carry
  // anything, raw identifiers included.
  bool allow_unknown_fields = false;
};

struct StructureReport {
  uint64_t entries = 0;                   // in complete batches
  uint64_t incomplete_batch_entries = 0;  // of a batch the log ends inside
  uint64_t checkpoint_size = 0;
  std::string root;  // over the entries of complete batches
  std::optional<ledger::TornTail> torn_tail;
};

// The structural half of verification, read-only and fast: every record's framing, the hash
// chain, the Merkle root at the checkpoint's size and the checkpoint's signature by `key`,
// without parsing entry bodies (the Auditor does that). kDataLoss names the first bad entry.
absl::StatusOr<StructureReport> VerifyStructure(const std::string& ledger_dir,
                                                std::string_view checkpoint_note,
                                                const crypto::Ed25519PublicKey& key);

class Auditor {
 public:
  // `checkpoint_note` is the signed checkpoint to check the entries against.
  Auditor(crypto::Ed25519PublicKey control_plane_key, std::string checkpoint_note,
          AuditOptions options = {});

  // Feeds entry number `seq` (must be the next one). kDataLoss names the entry on failure.
  // When the entries come from segment files, `segment` and `segment_version` name where
  // (ScannedRecord): batches are then also checked against segment boundaries and versions.
  absl::Status Add(uint64_t seq, std::string_view bytes, std::string_view segment = {},
                   uint32_t segment_version = 0);
  // Ends the pass: checks the checkpoint against the tree.
  // `last_segment` (ScanResult::last_segment, for entries read from segments): a batch left
  // open in an earlier segment is corruption, not an unacknowledged write.
  absl::StatusOr<AuditReport> Finish(std::string_view last_segment = {});

 private:
  absl::Status Fail(std::string_view why) const;
  absl::Status CheckBody(const v1::LedgerEntry& e);
  // The entry must record a caller of one of `roles` (an authenticated one, unless
  // accept_unauthenticated); `what` names the entry kind in the failure.
  absl::Status CheckActor(const v1::LedgerEntry& e, std::initializer_list<std::string_view> roles,
                          std::string_view what);
  // audit/hygiene.h: free text in clear, and sealed fields.
  absl::Status CheckFreeText(std::string_view field, std::string_view text) const;
  absl::Status CheckSealed(std::string_view field, std::string_view sealed) const;
  // Adds an entry the rules accepted to the report.
  void Count(const v1::LedgerEntry& e);

  const crypto::Ed25519PublicKey key_;
  const std::string checkpoint_note_;
  std::optional<ledger::Checkpoint> checkpoint_;
  absl::Status checkpoint_status_;
  std::string root_at_checkpoint_;
  uint64_t next_seq_ = 0;
  uint64_t body_seq_ = 0;  // the entry being checked, named by Fail
  std::string prev_hash_ = std::string(32, '\0');
  ledger::BatchTracker batches_;
  std::string complete_root_;  // Merkle root where the last complete batch ends
  bool checkpoint_mid_batch_ = false;
  struct Held {
    uint64_t seq = 0;
    uint64_t bytes = 0;
    v1::LedgerEntry entry;
  };
  std::vector<Held> held_;  // entries of the batch still open
  ledger::CompactRange tree_;
  const AuditOptions options_;
  RequestLifecycle lifecycle_;
  int64_t last_time_unix_ms_ = 0;
  AuditReport report_;
};

}  // namespace lethe::audit
