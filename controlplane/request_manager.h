// RequestManager: the control plane's write path for subjects: erasure requests, their
// receipts, identities added, deadline extensions and consent (policy activation is
// policy_activator.h's, agent keys agent_enrolment.h's).
// It validates, records the ledger entries of each change as one batch through the
// LedgerWriter (ledger_writer.h), and answers once they are durable. A call that fails
// leaves ledger, key store and state as they were.
//
// Thread safe. A change that depends on recorded state (receipts, completion, enrolment,
// consent, extensions, re-issue) reads it and sequences its entries under the writer's lock,
// so that a check and the entries that depend on it cannot interleave with another change;
// no lock is held while a change waits for its fdatasync, so concurrent changes share one.
// Work that needs no recorded state (sealing, signing, a new request key) is done before the
// lock is taken.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "controlplane/access_parts.h"
#include "controlplane/identity_vault.h"
#include "controlplane/ledger_writer.h"
#include "controlplane/planner.h"
#include "controlplane/projections.h"
#include "controlplane/validation.h"  // the input rules and size limits
#include "crypto/crypto.h"
#include "policies/policy.h"

namespace lethe::controlplane {

struct RequestManagerOptions {
  // How long a signed command stays valid. Shorter bounds the use of a captured command;
  // a command still unanswered near its expiry is replaced by a fresh one.
  absl::Duration command_ttl = absl::Hours(24);
  // Where the parts of access requests are held (access_parts.h); must outlive the manager.
  // Without it, access requests are refused.
  AccessParts* parts = nullptr;
  // Called for each receipt recorded: whether its request is an access request, and how long
  // after the request's submission (lethed's clock) the receipt was recorded. For metrics.
  std::function<void(bool access, absl::Duration latency)> receipt_latency;
};

// A part of an access package, opened: what one domain gathered, and the receipt it came with.
struct OpenedPart {
  std::string domain;
  SecretBytes part;  // the part's canonical JSON (personal data)
  v1::Receipt receipt;
  uint64_t receipt_entry = 0;
  std::string agent_key_id;
};

struct ReceiptCounters {
  std::atomic<uint64_t> recorded{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> refused{0};  // REJECTED by an agent (e.g. policy drift): command stays open
};

class RequestManager {
 public:
  RequestManager(LedgerWriter& writer, Projections& projections, IdentityVault& vault,
                 const crypto::Ed25519PrivateKey& signing_key, const Clock& clock,
                 RequestManagerOptions options = {});

  // The active policy; kFailedPrecondition before the first activation.
  absl::StatusOr<std::shared_ptr<const policies::Policy>> ActivePolicy() const;

  // Validates the identities (kInvalidArgument naming the field), plans every domain of the
  // active policy, and records RequestSubmitted plus one CommandIssued per target domain.
  // Domains keyed by none of the identity types are recorded as needing one. Returns the id.
  absl::StatusOr<std::string> SubmitErasure(std::vector<SubjectIdentity> identities,
                                            std::string reason, const v1::Actor& actor) {
    return Submit(v1::RequestSubmitted::ERASURE, std::move(identities), std::move(reason), actor);
  }
  // The same for either kind: an access request is planned like an erasure, due after the
  // policy's deadlines.access, and its commands are AccessCommands.
  absl::StatusOr<std::string> Submit(v1::RequestSubmitted::Kind kind, std::vector<SubjectIdentity> identities,
                                     std::string reason, const v1::Actor& actor);

  // The parts of a completed access request, opened, in target order (a domain that answered
  // FAILED has none: it is listed with its receipt and an empty part). kFailedPrecondition
  // when the request is not a completed access request, or its package was released (the
  // message says when and how).
  absl::StatusOr<std::vector<OpenedPart>> OpenParts(const std::string& request_id) const;
  // Records PackageReleased (EXPORTED with the digest of the package handed out, by `actor`;
  // or EXPIRED, by lethed), then destroys the request key and removes the parts. Only once
  // per request: a second release is kFailedPrecondition.
  absl::Status ReleasePackage(const std::string& request_id, v1::PackageReleased::Reason reason,
                              const std::string& package_sha256, const v1::Actor* actor);
  // Releases, EXPIRED, every held package whose due date plus the active policy's
  // deadlines.access_retention has passed.
  absl::Status ReleaseExpired();

  // The open requests whose subject holds any of `identities` (validated as for
  // SubmitErasure, compared as tokens), oldest first, each with the types it shares.
  absl::StatusOr<std::vector<std::pair<std::string, std::vector<std::string>>>> FindOpen(
      std::vector<SubjectIdentity> identities);

  // Adds identities to an open request: records IdentitiesAdded and commands for the domains
  // that waited for one of the new types. kFailedPrecondition when no waiting domain uses any.
  absl::Status AddIdentities(const std::string& request_id,
                             std::vector<SubjectIdentity> identities, const v1::Actor& actor);

  // Records DeadlineExtended: moves the due date of an open request by `by`. The extensions
  // of one request add up to at most the policy's max_extension.
  absl::Status Extend(const std::string& request_id, absl::Duration by, std::string reason,
                      const v1::Actor& actor);

  // Records ConsentChanged for one identity and purpose. A withdrawal of a purpose marked
  // erase_on_withdrawal (unless consent was already withdrawn) also plans an erasure scoped
  // to that purpose's domains, in the same ledger batch. Returns the recorded change.
  absl::StatusOr<ConsentRecord> ChangeConsent(SubjectIdentity identity, std::string purpose,
                                              v1::ConsentStatus status, std::string source,
                                              const v1::Actor& actor);

  // The token of an identity (for read-only lookups such as consent show).
  absl::StatusOr<std::string> TokenOf(const SubjectIdentity& identity) const;

  // Verifies a receipt envelope from Kafka against the enrolled agent key and its command,
  // and records it; appends RequestCompleted once every target domain has answered, then
  // destroys the request key. A receipt already recorded is accepted silently (agents
  // re-send on redelivery). kPermissionDenied / kInvalidArgument / kFailedPrecondition
  // reject it; kUnavailable means "retry later".
  absl::Status RecordReceipt(std::string_view wire);

  // RecordReceipt in two steps, for an intake that takes many receipts per fdatasync:
  // SequenceReceipt checks the receipt and sequences its entry without waiting for it to be
  // durable; it returns the ticket to wait for and the request, or nullopt when nothing was
  // recorded (a redelivery, or an agent's refusal). Once the last ticket of a batch is
  // durable (WaitDurable), CompleteAll ends each request whose domains have all answered: it
  // destroys their keys and records their completions with one wait.
  struct SequencedReceipt {
    LedgerWriter::Ticket ticket;
    std::string request_id;
  };
  absl::StatusOr<std::optional<SequencedReceipt>> SequenceReceipt(std::string_view wire);
  absl::Status WaitDurable(const LedgerWriter::Ticket& ticket) const { return writer_.WaitDurable(ticket); }
  absl::Status CompleteAll(const std::vector<std::string>& request_ids);

  // Replaces commands that are at or near expiry with freshly signed ones.
  absl::Status ReissueExpiring(absl::Duration margin);

  // The exact wire bytes of a recorded command (decrypted with its request key).
  absl::StatusOr<std::string> CommandWire(const CommandRecord& command) const;

  // After a restart: completes requests whose receipts are all recorded and destroys keys
  // of finished requests that a crash left behind.
  absl::Status Recover();

  const ReceiptCounters& receipt_counters() const { return counters_; }
  // Readers that show state call writer().AwaitDurable() after reading it.
  const LedgerWriter& writer() const { return writer_; }

 private:
  struct ErasureSpec {
    bool access = false;                      // an access request: AccessCommands, no purge
    std::vector<SubjectIdentity> identities;  // validated, distinct
    std::string reason;
    std::vector<std::string> scope;  // empty: every domain
    std::string scope_purpose;
    std::string consent_change_id;
  };
  // The entries of a new request (RequestSubmitted, then its CommandIssued), sealed under
  // `key`.
  absl::StatusOr<std::vector<v1::LedgerEntry>> BuildErasure(const policies::Policy& policy,
                                                            const ErasureSpec& spec,
                                                            const std::string& request_id,
                                                            const SecretBytes& key,
                                                            absl::Time now, size_t* targets);
  absl::StatusOr<v1::LedgerEntry> MakeCommand(const std::string& request_id,
                                              const DomainPlan& plan, const SecretBytes& key,
                                              absl::Time now, bool access);
  // An access chunk from lethe.receipts: verified against the domain's enrolled key and held.
  absl::Status AcceptChunk(const v1::SignedEnvelope& env);
  // A COMPLETED access receipt's part: taken whole from the chunks held, opened with the
  // request's part key, checked against the receipt's digests, stored under the request key.
  absl::Status KeepPart(const v1::Receipt& receipt);
  // Every identity of the request, decrypted: the submitted ones, then each addition.
  absl::StatusOr<std::vector<SubjectIdentity>> RequestIdentities(const RequestRecord& r,
                                                                 const SecretBytes& key) const;
  // The request, if it exists and is still open; otherwise kNotFound, or kFailedPrecondition
  // ending in "only an open request can <action>".
  absl::StatusOr<RequestRecord> OpenRequest(const std::string& request_id,
                                            std::string_view action) const;
  // Entries built before the lock was taken, and what they were built on.
  struct Prepared {
    std::shared_ptr<const policies::Policy> policy;
    std::vector<v1::LedgerEntry> entries;
    size_t targets = 0;
  };
  // Under the writer's lock: whether `p` was built on a policy or an agent key that is no
  // longer current.
  bool Stale(const Prepared& p) const;
  // Sequences `entries` under `lock`, releases it and waits for them to be durable.
  absl::Status SequenceAndWait(std::unique_lock<std::mutex>& lock,
                               std::vector<v1::LedgerEntry> entries,
                               const v1::Actor* actor = nullptr);
  // Under the writer's lock: whether the request is open with every domain answered by a
  // durable receipt, and if so whether all of them completed.
  std::optional<v1::RequestCompleted::Outcome> CompletionDue(const std::string& request_id) const;
  absl::Status Complete(const std::string& request_id);

  LedgerWriter& writer_;
  Projections& projections_;
  RequestStore& store_;
  IdentityVault& vault_;
  const crypto::Ed25519PrivateKey& key_;
  const Clock& clock_;
  const RequestManagerOptions options_;
  ReceiptCounters counters_;
};

}  // namespace lethe::controlplane
