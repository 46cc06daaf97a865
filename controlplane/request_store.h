// RequestStore: the control plane's state, a projection of the ledger. It is rebuilt at
// start by replaying every entry and kept current by applying each entry as it is sequenced
// into the log (ledger_writer.h), so it never knows anything the ledger's queue does not.
//
// Memory: a request is held whole while it is open. Once it has ended and its RequestCompleted
// is durable (MarkDurable), it is compacted to the ledger indices of its entries, a few dozen
// bytes kept on disk, and Get rebuilds it from those entries, read back through the
// EntryReader, each checked against its Merkle leaf. What the ended request shows is the same
// either way. Everything remembered of ended requests (where their stories are, which request
// and command ids are spent) lives in scratch files (base/scratch_file.h) rebuilt at every
// start, so that memory follows the open requests, not every request ever recorded.
//
// Thread safe. Readers get copies.
#pragma once

#include <condition_variable>
#include <deque>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "audit/request_lifecycle.h"
#include "base/scratch_file.h"
#include "controlplane/digest_table.h"
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
  std::string recipient_key_id;  // the agent encryption key its identities are sealed to
  bool access = false;           // an AccessCommand (its request is an access request)
};

struct DomainRecord {
  std::string domain;
  v1::DomainState state = v1::PENDING;
  std::vector<std::string> needed_types;  // NEEDS_IDENTITY: the types the domain is keyed by
  std::string command_id;  // the latest command issued for the domain
  std::optional<v1::Receipt> receipt;
  std::string agent_key_id;
  uint64_t receipt_entry = 0;
  int64_t receipt_unix_ms = 0;
  // The PHYSICALLY_PURGED receipt of the domain's answered command, once recorded (it may
  // come after the request ended).
  std::optional<v1::Receipt> physical;
  std::string physical_key_id;
  uint64_t physical_entry = 0;
};

// Additional data of the sealed blobs of a request's later entries (see ledger.proto).
inline std::string ExtensionAad(const std::string& request_id, size_t index) {
  return request_id + "/extension/" + std::to_string(index);
}
inline std::string AdditionAad(const std::string& request_id, size_t index) {
  return request_id + "/identities/" + std::to_string(index);
}

struct ExtensionRecord {
  int64_t extension_seconds = 0;
  int64_t new_due_unix_ms = 0;
  int64_t recorded_unix_ms = 0;
  uint64_t entry = 0;
  std::string sealed_reason;
};

struct RequestRecord {
  std::string request_id;
  v1::RequestSubmitted submitted;  // as recorded (tokens and sealed data only)
  uint64_t submitted_entry = 0;
  uint64_t ordinal = 0;  // its place among every request recorded, from 0
  int64_t due_unix_ms = 0;                 // submitted due date plus every extension
  std::vector<ExtensionRecord> extensions;
  std::vector<std::string> sealed_additions;  // IdentitiesAdded.sealed, in order
  std::vector<uint64_t> addition_entries;     // their ledger indices
  std::vector<uint64_t> command_entries;      // every CommandIssued of the request, re-issues too
  std::vector<std::string> command_ids;       // their command ids (while the request is open)
  uint64_t consent_entry = 0;              // ConsentChanged that planned it, if any
  v1::RequestState state = v1::IN_PROGRESS;
  int64_t completed_unix_ms = 0;
  uint64_t completed_entry = 0;       // RequestCompleted, once final
  // Access requests: PackageReleased, once the package was exported or expired (0 before).
  uint64_t released_entry = 0;
  int64_t released_unix_ms = 0;
  v1::PackageReleased::Reason released_reason = v1::PackageReleased::REASON_UNSPECIFIED;
  bool access() const { return submitted.kind() == v1::RequestSubmitted::ACCESS; }
  std::vector<DomainRecord> domains;  // targets in policy order, then those needing an identity
  bool Overdue(absl::Time now) const {
    return state == v1::IN_PROGRESS && absl::FromUnixMillis(due_unix_ms) < now;
  }
};

struct AgentRecord {
  std::string domain;
  std::string key_id;
  std::string public_key;  // raw
  std::optional<crypto::Ed25519PublicKey> verify_key;  // public_key, decoded once at enrolment
  std::string encryption_public_key;  // raw X25519; empty for keys enrolled before sealing
  std::string encryption_key_id;
  uint64_t entry = 0;
  int64_t enrolled_unix_ms = 0;
  v1::Actor enrolled_by;
  bool revoked = false;
  uint64_t revoked_entry = 0;
  int64_t revoked_unix_ms = 0;
  v1::Actor revoked_by;
  std::string revocation_reason;
};

struct PendingCommand {
  CommandRecord command;
  bool expiring = false;  // not_after is near or past: a fresh command should be issued
  int64_t due_unix_ms = 0;  // the request's due date
};

class RequestStore {
 public:
  RequestStore();
  ~RequestStore();
  // Where the scratch files go (lethed: its data directory; by default $TMPDIR or /tmp). Call
  // before the first Apply; they are created then, and a failure is that Apply's.
  void SetScratchDir(std::string dir);

  // Applies one entry of the log, in log order. kDataLoss when it breaks the rule for a request's story
  // (audit/request_lifecycle.h), which the auditor applies too: lethed never holds, nor
  // starts from, a ledger an auditor would reject for it.
  absl::Status Apply(uint64_t seq, const v1::LedgerEntry& entry);
  // Replay of lethed's own ledger: receipts below `seq`, the size of a checkpoint lethed
  // signed and Ledger::Open checks the replay against, are not verified again
  // (RequestLifecycle::TrustReceiptSignaturesBelow). Call before replaying.
  void TrustReceiptSignaturesBelow(uint64_t seq) {
    std::lock_guard<std::mutex> l(mu_);
    lifecycle_.TrustReceiptSignaturesBelow(seq);
  }
  // Lets the next CheckReceipt of these bytes under this key reuse their verdict
  // (RequestLifecycle::RememberVerified).
  void RememberVerifiedReceipt(const audit::VerifiedReceiptEnvelope& v) const;
  // The same rule for a receipt about to be recorded (RequestLifecycle::CheckReceipt).
  absl::Status CheckReceipt(const v1::ReceiptRecorded& rr, bool refusal_allowed,
                            v1::Receipt* verified) const;

  // Where ended requests are read back from once compacted: the exact bytes of a ledger entry
  // (lethed: Ledger::ReadEntry). Set before the first Get of an ended request.
  using EntryReader = std::function<absl::StatusOr<std::string>(uint64_t seq)>;
  // Several entries at once, strictly ascending (lethed: Ledger::ReadEntries, which reads
  // neighbours together): how a request and a page of requests are read back. Without one the
  // EntryReader is asked entry by entry.
  using EntriesReader = std::function<absl::StatusOr<std::vector<std::string>>(absl::Span<const uint64_t> seqs)>;
  void SetEntryReader(EntryReader reader, EntriesReader entries = nullptr);
  // Entries below `end` are durable (and readable): ended requests whose completion is among
  // them are compacted. Without calls to it nothing is compacted.
  void MarkDurable(uint64_t end);

  // kNotFound for an id never submitted; for an ended request, whatever reading its entries
  // back reports (kDataLoss when one no longer matches the log).
  absl::StatusOr<RequestRecord> Get(const std::string& request_id) const;
  // When an open request was received (RequestSubmitted.received_unix_ms); nullopt for an
  // unknown or ended one. Cheap: no copy of the record.
  std::optional<int64_t> ReceivedUnixMs(const std::string& request_id) const;
  // Every request, in submission order (reads every ended one back: for tests and tools).
  absl::StatusOr<std::vector<RequestRecord>> List() const;
  // How many requests are in each state, for metrics: costs the open requests only.
  struct Tally {
    uint64_t in_progress = 0, completed = 0, done_with_gaps = 0, failed = 0, overdue = 0, domains_needing_identity = 0;
  };
  Tally Count(absl::Time now) const;
  // How many requests are in progress (Count's in_progress, without walking them).
  size_t InProgress() const;
  // How many requests are held whole, and how many compacted to their ledger indices; how
  // many commands await a PHYSICALLY_PURGED receipt in memory (those of open requests; the
  // ended ones' wait in a scratch file).
  struct Held {
    size_t whole = 0, compacted = 0, awaiting_vacuum = 0;
  };
  Held held() const;
  // One page, in submission order: up to `limit` requests recorded after ledger entry `after`
  // (0: from the first), only those overdue at `overdue_at` when it is given (open requests,
  // then); `more` tells whether another follows. Copies (or reads back) only the page.
  absl::StatusOr<std::vector<RequestRecord>> ListPage(uint64_t after, size_t limit,
                                                      std::optional<absl::Time> overdue_at, bool* more) const;
  std::optional<CommandRecord> Command(const std::string& command_id) const;
  std::vector<AgentRecord> Agents() const;
  // The enrolled key of `domain` with id `key_id`, if any, revoked or not.
  std::optional<AgentRecord> Agent(const std::string& domain, const std::string& key_id) const;
  // The key commands for `domain` are sealed to: its newest enrolled, not revoked key that
  // has an encryption key.
  std::optional<AgentRecord> CurrentAgent(const std::string& domain) const;
  // The enrolled, not revoked key of `domain` with id `key_id`, if any.
  std::optional<crypto::Ed25519PublicKey> AgentKey(const std::string& domain,
                                                   const std::string& key_id) const;
  // Latest command of every domain still waiting for a receipt. `expiry_margin`: how long
  // before not_after a command counts as expiring.
  std::vector<PendingCommand> Pending(absl::Time now, absl::Duration expiry_margin) const;
  // The pending commands to issue afresh (RequestManager::ReissueExpiring): those expiring, and
  // those sealed to a key other than their domain's current agent key (a rotation or a
  // revocation: the current agent could not open them). Not those of an overdue request
  // (outbox.h): re-signed once an extension revives it. Usually none, and then nothing is
  // copied; the outbox asks on every pass.
  std::vector<PendingCommand> ToReissue(absl::Time now, absl::Duration expiry_margin) const;
  // Ledger indices of everything that proves the request, in log order: the enrolments of
  // the agent keys that signed its receipts, RequestSubmitted, every CommandIssued, every
  // ReceiptRecorded and RequestCompleted.
  absl::StatusOr<std::vector<uint64_t>> EvidenceEntries(const std::string& request_id) const;
  // Requests that have every receipt but no RequestCompleted yet (only after a crash).
  std::vector<std::string> AnsweredButOpen() const;
  // Completed access requests whose package is held (not released yet): id -> due date, ms.
  std::map<std::string, int64_t> UnreleasedPackages() const;
  // Whether `id` is an access request held whole (open, or ended and not yet compacted), read
  // without copying its record: what completing a request asks, once per request.
  bool IsAccess(const std::string& id) const;

  // Open requests whose subject holds the identity token `token` of `type`, oldest first.
  std::vector<std::string> OpenWithToken(const std::string& type, const std::string& token) const;

  // Publish attempts and agents' refusals are runtime facts, not ledger facts, kept while the
  // request is open.
  void NotePublished(const std::string& command_id);
  int Attempts(const std::string& command_id) const;
  void NoteRejection(const std::string& command_id, std::string why);
  std::string LastRejection(const std::string& command_id) const;
  // Receipts recorded from the domain since lethed started (a runtime count): the outbox
  // publishes a command the domain's agent refused again as soon as the domain answers
  // another, since its agent may have been fixed (outbox.h).
  void NoteAnswered(const std::string& domain);
  uint64_t Answers(const std::string& domain) const;

  // Changes whenever an entry is applied or a command published.
  uint64_t version() const;
  // Waits until version() != seen or `timeout` passes. Returns the current version.
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout) const;

 private:
  void Bump();
  // CurrentAgent, with mu_ held; null when the domain has none.
  const AgentRecord* CurrentAgentLocked(const std::string& domain) const;
  // Pending, with mu_ held; `to_reissue`: only what ToReissue returns.
  std::vector<PendingCommand> PendingLocked(absl::Time now, absl::Duration expiry_margin,
                                            bool to_reissue) const;
  // Creates the scratch files if they are not yet.
  absl::Status OpenScratch();
  // Moves request `id`, ended and durable, out of requests_ into the scratch files; false
  // (and the request stays whole) if they cannot be written.
  bool Compact(const std::string& id);
  // The entries of some ended requests, read back in one call of the reader: every index in
  // their packed stories (see stories_), ascending, and the bytes of each.
  struct EntriesRead {
    std::vector<uint64_t> seqs;
    std::vector<std::string> bytes;
  };
  static absl::StatusOr<EntriesRead> ReadBack(const std::vector<const std::string*>& stories,
                                              const EntriesReader& reader);
  // Rebuilds an ended request from its packed story and its entries, read back.
  static absl::StatusOr<RequestRecord> Load(uint64_t submitted_entry, const std::string& packed,
                                            const EntriesRead& read);
  // Submission record `ordinal`: the request's submitted entry and, once compacted, where its
  // packed story is (offset + 1 in stories_, and length; 0 while it is held whole).
  struct Submission {
    uint64_t entry = 0, story = 0;
    uint32_t length = 0;
  };
  static constexpr size_t kSubmissionBytes = 24;
  // Ended requests whose entries a list reads back in one call of the entries reader.
  static constexpr size_t kReadBackRequests = 128;
  static std::string EncodeSubmission(const Submission& s);
  static Submission ParseSubmission(const char* rec);
  absl::StatusOr<Submission> ReadSubmission(uint64_t ordinal) const;
  absl::StatusOr<std::string> ReadStory(const Submission& s) const;
  // Adds entry `seq` (later than all of it) to the packed story of compacted request `id`: a
  // PHYSICALLY_PURGED receipt recorded after the request was compacted.
  absl::Status AddToStory(const std::string& id, uint64_t seq);
  uint64_t submission_count() const { return submissions_ ? submissions_->size() / kSubmissionBytes : 0; }
  // The lifecycle's EndedIds, in ended_requests_ (value kEndedWhole until compacted) and
  // ended_commands_.
  class ScratchEndedIds;
  static constexpr uint64_t kEndedWhole = 0;
  static constexpr uint64_t kNoVacuumWait = 0;  // in ended_commands_
  // The lifecycle's VacuumWaits, in ended_commands_.
  class ScratchVacuumWaits;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  uint64_t version_ = 0;
  // Requests held whole (open, or ended but not yet compacted), by id; whole_ keeps their order.
  absl::node_hash_map<std::string, RequestRecord> requests_;
  std::map<uint64_t, std::string> whole_;  // submitted entry -> id
  std::string scratch_dir_;
  // Every request in submission order, kSubmissionBytes each (Submission).
  std::unique_ptr<ScratchFile> submissions_;
  // The packed stories of compacted requests: the ledger indices of every entry of a request,
  // ascending, as varint deltas.
  std::unique_ptr<ScratchFile> stories_;
  // IdDigest of every ended request -> its ordinal + 1 once compacted (kEndedWhole before);
  // IdDigest of every command of an ended request -> while it awaits its PHYSICALLY_PURGED
  // receipt, the ledger index of its COMPLETED receipt + 1 (0 otherwise: ScratchVacuumWaits).
  std::unique_ptr<DigestTable> ended_requests_, ended_commands_;
  std::unique_ptr<ScratchEndedIds> ended_ids_;
  std::unique_ptr<ScratchVacuumWaits> vacuum_waits_;
  uint64_t compacted_ = 0;
  std::deque<std::pair<uint64_t, std::string>> ending_;  // (completed entry, id), log order
  EntryReader reader_;
  EntriesReader entries_reader_;
  // The requests still IN_PROGRESS, by submission entry: what the outbox walks on every pass,
  // so that a pass costs the open requests, not every request ever recorded.
  std::map<uint64_t, std::string> in_progress_;
  uint64_t completed_ = 0, done_with_gaps_ = 0, failed_ = 0;  // ended requests, by outcome
  // Completed access requests whose package is held: id -> due date (ms). They stay whole
  // (not compacted) until PackageReleased, which ends their story.
  std::map<std::string, int64_t> unreleased_;
  absl::node_hash_map<std::string, CommandRecord> commands_;
  std::vector<AgentRecord> agents_;
  std::map<std::string, int> attempts_;
  std::map<std::string, std::string> rejections_;
  std::map<std::string, uint64_t> answers_;  // by domain
  // Open requests by the identity tokens of their subject ("type\0token" -> request ids in
  // submission order); a request leaves it when it completes.
  std::map<std::string, std::vector<std::string>> open_by_token_;
  // ConsentChanged that planned an erasure: change_id -> ledger index.
  std::map<std::string, uint64_t> consent_entries_;
  audit::RequestLifecycle lifecycle_;
};

class IdentityVault;
// Converts a record to its API form as of `now`. With a vault, extension reasons are
// decrypted while the request key exists.
v1::RequestView ToView(const RequestRecord& r, const RequestStore& store, absl::Time now,
                       const IdentityVault* vault = nullptr);

}  // namespace lethe::controlplane
