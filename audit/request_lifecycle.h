// The one rule for what makes the story of a request valid, entry by entry: which entries
// may follow which (a command only for a planned domain of an open request, a receipt only
// for a command, signed by a key enrolled for its domain and not revoked, a completion only
// once every target answered, ...), and that each request's plan is the scope its policy
// gives. Its readers: lethed's RequestStore (strictly, on replay), the receipt check on
// lethed's write path, the Auditor, and the certificate verifier. What lethed believes about
// a ledger and what an auditor verifies are therefore the same verdict.
//
// What it does not judge, because only the auditor's reading needs it: the entry framing
// and hash chain, entry 0, time order, who made each entry (roles), the hygiene of free text
// and sealed fields, and unknown fields (audit/auditor.h).
//
// Check(e) is a function of the state so far and the next entry: it changes nothing. Apply(e)
// moves the state on by an entry Check accepted. Not thread-safe; callers serialise.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/crypto.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"

namespace lethe::audit {

// Checks one recorded receipt: its signature by `agent_key`, that the signed body names the
// same command, request and domain as the entry, that it was made for exactly the command
// bytes whose digest lethed recorded, and that a COMPLETED receipt carries the re-check.
// Returns the verified receipt; an error message says what is wrong. `refusal_allowed`
// accepts an agent's refusal (outcome REJECTED), which lethed notes but never records.
// `access`: the command was an AccessCommand, whose COMPLETED receipt carries its part's
// digests instead of the re-check, and which never carries a purge (rows affected or
// remaining, tombstones).
absl::StatusOr<v1::Receipt> CheckRecordedReceipt(const v1::ReceiptRecorded& recorded,
                                                 const crypto::Ed25519PublicKey& agent_key,
                                                 std::string_view command_digest,
                                                 bool refusal_allowed = false,
                                                 bool verify_signature = true, bool access = false);

// Rule D5's gaps of a receipt: the sinks it names that keep the subject's copy (they do not
// delete on tombstones and no purger of the domain covers them), as "sink NAME (KIND) of
// topic TOPIC", in receipt order. A request whose receipts are all COMPLETED and name one is
// DONE_WITH_GAPS.
std::vector<std::string> ReceiptGaps(const v1::Receipt& receipt);

// The tables an erasure receipt's purge left dead tuples in (action delete or anonymize, rows
// affected), in receipt order: what its PHYSICALLY_PURGED receipt must list (rule V3). Empty
// for any other receipt.
std::vector<const v1::TableResult*> TablesToVacuum(const v1::Receipt& receipt);

// Rule T16: the sinks an erasure receipt of `domain` must list, from that domain's section of
// `policy`: each topic's, in topic then file order, with covered_by written "s3 bucket NAME"
// or "table SCHEMA.NAME".
std::vector<v1::SinkResult> PolicySinks(const policies::Policy& policy, const std::string& domain);

enum class LifecycleScope {
  // Every entry of a log, in order (lethed's replay, the auditor): a request is planned
  // with the policy active where it lands, activations are numbered 1, 2, ..., and a
  // withdrawal plans an erasure exactly when the consent it ends was not already withdrawn.
  kWholeLog,
  // The entries of one request with what proves it, in log order (an erasure certificate):
  // the policy a request names is looked up among the activations shown, and the history of
  // consent and of other requests is not there to judge.
  kOneRequest,
};

// A receipt envelope whose signature verified under an agent key. Only
// RequestLifecycle::VerifyReceiptEnvelope makes one, so holding one is proof of that check.
class VerifiedReceiptEnvelope {
 public:
  const std::string& body() const { return body_; }

 private:
  friend class RequestLifecycle;
  VerifiedReceiptEnvelope(std::string key_raw, std::string payload_type, std::string body, std::string signature)
      : key_raw_(std::move(key_raw)),
        payload_type_(std::move(payload_type)),
        body_(std::move(body)),
        signature_(std::move(signature)) {}
  std::string key_raw_, payload_type_, body_, signature_;
};

// What a lifecycle remembers of the requests that have ended: the IdDigest of each one's id and
// of each of its command ids, so that whatever names them afterwards is refused. Lookups may
// fail (lethed keeps them in a scratch file: controlplane/digest_table.h); a failed lookup is
// returned by Check as it is, never taken for an answer.
class EndedIds {
 public:
  virtual ~EndedIds() = default;
  virtual absl::StatusOr<bool> RequestEnded(absl::uint128 digest) const = 0;
  virtual absl::StatusOr<bool> CommandEnded(absl::uint128 digest) const = 0;
  virtual void EndRequest(absl::uint128 digest) = 0;
  virtual void EndCommand(absl::uint128 digest) = 0;
};

// The default: two hash sets, about 16 bytes and a little more per id.
class InMemoryEndedIds final : public EndedIds {
 public:
  absl::StatusOr<bool> RequestEnded(absl::uint128 d) const override { return requests_.contains(d); }
  absl::StatusOr<bool> CommandEnded(absl::uint128 d) const override { return commands_.contains(d); }
  void EndRequest(absl::uint128 d) override { requests_.insert(d); }
  void EndCommand(absl::uint128 d) override { commands_.insert(d); }

 private:
  absl::flat_hash_set<absl::uint128> requests_, commands_;
};

// Where a lifecycle keeps, once a request has ended, its commands whose COMPLETED receipt still
// awaits a PHYSICALLY_PURGED one (rule V1): as the ledger index of the entry that recorded
// that receipt, which is read back when the second receipt comes. Without one (UseVacuumWaits)
// they stay in memory, as an auditor's run keeps them. A domain whose vacuums are never proven
// (no pg_read_all_stats, no vacuum) keeps its commands waiting for good; lethed keeps them in
// a scratch file (controlplane/request_store.cc). Lookups and reads may fail; a failure is
// returned by Check as it is.
class VacuumWaits {
 public:
  virtual ~VacuumWaits() = default;
  // The ledger index remembered for the command with this IdDigest, if it still awaits.
  virtual absl::StatusOr<std::optional<uint64_t>> Find(absl::uint128 command) const = 0;
  virtual void Await(absl::uint128 command, uint64_t seq) = 0;
  virtual void Done(absl::uint128 command) = 0;
  // The entry at `seq`, read back from the log.
  virtual absl::StatusOr<v1::LedgerEntry> Read(uint64_t seq) const = 0;
};

class RequestLifecycle {
 public:
  explicit RequestLifecycle(LifecycleScope scope = LifecycleScope::kWholeLog) : scope_(scope) {}

  // Whether `e` may come next. On a ReceiptRecorded that passes, `*verified_receipt` (when
  // given) is the receipt it carries, its signature checked. The code says what kind of
  // wrong: kPermissionDenied for a receipt whose key or signature is not what the log
  // enrolled, kFailedPrecondition for an entry the story so far does not allow,
  // kInvalidArgument for a malformed one, kAlreadyExists for a second receipt for a command
  // or a domain (authentic, but not news), and (kOneRequest only) kNotFound when the entries
  // lack one that this one needs. The message names no entry number.
  absl::Status Check(const v1::LedgerEntry& e, v1::Receipt* verified_receipt = nullptr) const;
  // The receipt rule alone, for lethed's intake: `rr` checked as the next entry would be,
  // with an agent's refusal (REJECTED) accepted when `refusal_allowed` (it is never recorded).
  absl::Status CheckReceipt(const v1::ReceiptRecorded& rr, bool refusal_allowed,
                            v1::Receipt* verified) const;
  // Verifies a receipt envelope's signature under `key` (any thread, no state read).
  static absl::StatusOr<VerifiedReceiptEnvelope> VerifyReceiptEnvelope(const v1::SignedEnvelope& env,
                                                                      const crypto::Ed25519PublicKey& key);
  // Lets the next CheckReceipt of the same bytes under the same key reuse that verdict, as it
  // reuses its own: lethed's intake verifies before it takes the writer lock, and the check
  // under the lock then costs no second Ed25519 verification.
  void RememberVerified(const VerifiedReceiptEnvelope& v) const;
  // Moves the state on by `e`, which Check accepted.
  //
  // A request that has ended is forgotten but for a 128-bit digest (SHA-256, truncated) of its
  // id and of each of its command ids (EndedIds): whatever names it afterwards is refused as
  // before, and what is remembered grows by about a hundred bytes per ended request instead of
  // its whole story, in memory or wherever UseEndedIds puts it. A receipt for a command of an ended request is then kAlreadyExists without its
  // binding to the command being checked again (the request has every answer it will ever
  // take; lethed's intake has verified the envelope against an enrolled key before asking).
  void Apply(const v1::LedgerEntry& e);

  // For lethed's replay of its own ledger only: receipts in entries below `seq` are not
  // verified against their agent's key again (everything else about them still is). Sound
  // when `seq` is the size of a checkpoint lethed signed and the replay is then checked
  // against it (Ledger::Open does): those bytes are the ones lethed recorded, and lethed
  // verified each receipt before recording it. Auditors never call this.
  void TrustReceiptSignaturesBelow(uint64_t seq) { trusted_below_ = seq; }
  // Keeps what is remembered of ended requests in `ids` (which must outlive this) instead of
  // in memory. Call before the first entry.
  void UseEndedIds(EndedIds* ids) { external_ended_ = ids; }
  // Keeps the commands of ended requests that await a vacuum in `waits` (which must outlive
  // this) instead of in memory, from now on: those held so far move there at once. (lethed
  // replays its ledger before it can read entries back, then calls this.)
  void UseVacuumWaits(VacuumWaits* waits);
  // Commands awaiting a PHYSICALLY_PURGED receipt held in memory (for tests and metrics).
  size_t awaiting_vacuum_in_memory() const { return awaiting_vacuum_.size(); }
  // Check, then Apply.
  absl::Status Step(const v1::LedgerEntry& e, v1::Receipt* verified_receipt = nullptr);

  // At the end of a whole log: every target of a plan was sent a command, and every erasure a
  // consent change planned was recorded.
  absl::Status CheckEnd() const;

  // The first 128 bits of SHA-256(id): how an ended request or command is remembered.
  static absl::uint128 IdDigest(std::string_view id);

  // The active policy (kWholeLog), or null before the first activation.
  const std::shared_ptr<const policies::Policy>& active_policy() const { return active_policy_; }

 private:
  struct Request {
    std::set<std::string> targets;
    std::set<std::string> commanded;  // targets that got at least one command
    std::map<std::string, std::vector<std::string>> waiting;  // domain -> identity types it lacks
    std::set<std::string> identity_types;  // every type the request carries
    std::map<std::string, bool> answered;  // domain -> receipt outcome COMPLETED?
    std::set<std::string> gapped;          // domains whose COMPLETED receipt names a gap (D5)
    std::shared_ptr<const policies::Policy> policy;  // planned with
    std::vector<std::string> command_ids;  // every command issued for it
    int64_t due_unix_ms = 0;
    int64_t extended_seconds = 0;
    bool access = false;  // an access request (RequestSubmitted kind ACCESS)
  };
  struct Command {
    std::string request_id;
    std::string domain;
    std::string digest;
    bool access = false;
    // The policy whose domain section the command carried (T16); null when unknown.
    std::shared_ptr<const policies::Policy> policy;
  };
  struct AgentKey {
    crypto::Ed25519PublicKey key;
    bool revoked = false;
  };
  // A command whose COMPLETED erasure receipt deleted or rewrote rows, and whose
  // PHYSICALLY_PURGED receipt has not been recorded yet (rules V1 to V4). Kept after the
  // request ends: the vacuum may come later.
  struct AwaitingVacuum {
    Command command;
    std::vector<std::pair<std::string, std::string>> tables;  // (table, action), receipt order
    int64_t completed_unix_ms = 0;
    uint64_t receipt_seq = 0;  // the entry that recorded the COMPLETED receipt
  };
  // A command of an ended request that awaits a vacuum, read back through vacuum_waits_.
  absl::StatusOr<std::optional<AwaitingVacuum>> ParkedAwaiting(const std::string& command_id) const;
  struct PlannedByConsent {
    std::string request_id;
    std::string purpose;
  };

  absl::Status Missing(absl::Status whole_log) const;
  absl::Status CheckSubmitted(const v1::RequestSubmitted& r) const;
  absl::Status CheckPlan(const v1::RequestSubmitted& r, const policies::Policy& policy) const;
  absl::Status CheckConsent(const v1::ConsentChanged& c) const;
  absl::Status CheckActivation(const v1::PolicyActivated& pa) const;
  // The policy `hash` names: the active one (kWholeLog, which must be it) or one shown.
  std::shared_ptr<const policies::Policy> PolicyFor(const std::string& hash) const;
  static std::string ConsentKey(const v1::ConsentChanged& c);
  // The policy a PolicyActivated holds, parsed once by Check for Apply.
  absl::StatusOr<std::shared_ptr<const policies::Policy>> ParseActivated(
      const v1::PolicyActivated& pa) const;

  const LifecycleScope scope_;
  uint64_t trusted_below_ = 0;  // TrustReceiptSignaturesBelow
  // CheckReceipt, with the signature check made only when `verify_signature`.
  absl::Status CheckReceiptImpl(const v1::ReceiptRecorded& rr, bool refusal_allowed,
                                v1::Receipt* verified, bool verify_signature) const;
  // Keyed by random ids and looked up once per entry: hashed, not ordered. Open requests only.
  absl::node_hash_map<std::string, Request> requests_;
  // Ended requests and their commands, by IdDigest (see Apply): in memory, unless UseEndedIds.
  EndedIds& ended_ids() const { return external_ended_ != nullptr ? *external_ended_ : own_ended_; }
  // The contradiction for an entry naming `request_id`, which is not open: `if_ended` if it
  // has ended, else `otherwise`.
  absl::Status NoOpenRequest(std::string_view request_id, std::string_view if_ended,
                             std::string_view otherwise) const;
  mutable InMemoryEndedIds own_ended_;
  EndedIds* external_ended_ = nullptr;
  absl::flat_hash_map<std::string, Command> commands_;
  // Completed access requests whose package has not been released (PackageReleased) yet.
  absl::flat_hash_set<std::string> unreleased_packages_;
  absl::flat_hash_set<std::string> receipted_commands_;
  // By command id: of open requests, and of ended ones unless vacuum_waits_ keeps those.
  absl::flat_hash_map<std::string, AwaitingVacuum> awaiting_vacuum_;
  VacuumWaits* vacuum_waits_ = nullptr;
  absl::flat_hash_set<std::string> vacuumed_commands_;  // physical receipt recorded (open requests)
  // Rules V1 to V4 for a PHYSICALLY_PURGED receipt of `command_id`, already verified.
  // `parked`: the command's wait read back from vacuum_waits_, when it is kept there.
  absl::Status CheckPhysical(const std::string& command_id, const v1::Receipt& receipt,
                             const AwaitingVacuum* parked) const;
  std::multimap<std::string, AgentKey> agent_keys_;  // domain -> keys
  std::map<std::string, PlannedByConsent> consent_plans_;  // change_id -> planned erasure
  std::map<std::string, v1::ConsentStatus> consent_status_;  // "type/token hex/purpose" -> latest
  std::shared_ptr<const policies::Policy> active_policy_;
  std::string active_policy_hash_;
  std::map<std::string, std::shared_ptr<const policies::Policy>> policies_;  // by hash
  uint64_t activations_ = 0;
  // An enrolled key, decoded (RFC 8032 5.1.3: tens of microseconds) once per distinct key,
  // not at both Check and Apply nor again for a key enrolled anew. Callers serialise Check
  // and Apply, as for parsed_.
  absl::StatusOr<crypto::Ed25519PublicKey> DecodeAgentKey(const std::string& raw) const;
  mutable std::map<std::string, crypto::Ed25519PublicKey> decoded_keys_;  // raw -> key
  // The last receipt envelope whose signature CheckReceipt verified, and the key it verified
  // under. lethed checks a receipt before recording it and again when the recorded entry is
  // applied; the same bytes under the same key verify the same, so the second check reuses
  // the first verdict instead of spending another Ed25519 verification under the writer lock.
  struct VerifiedEnvelope {
    std::string key_raw, payload_type, body, signature;
  };
  mutable std::optional<VerifiedEnvelope> last_verified_;
  mutable std::shared_ptr<const policies::Policy> parsed_;  // of the last activation checked
  mutable std::string parsed_hash_;
};

}  // namespace lethe::audit
