#include "audit/auditor.h"

#include "absl/strings/str_cat.h"
#include "audit/hygiene.h"
#include "base/status.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"
#include "proto/envelope.h"

namespace lethe::audit {
namespace {

// The first field of `m` (or of a message inside it) that its schema does not define, as a
// path such as "receipt_recorded.receipt.#42"; empty when there is none.
std::string UnknownField(const google::protobuf::Message& m) {
  const auto* refl = m.GetReflection();
  const auto& unknown = refl->GetUnknownFields(m);
  if (!unknown.empty()) return absl::StrCat("#", unknown.field(0).number());
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  refl->ListFields(m, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const int n = f->is_repeated() ? refl->FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      const auto& sub = f->is_repeated() ? refl->GetRepeatedMessage(m, f, i) : refl->GetMessage(m, f);
      if (std::string inner = UnknownField(sub); !inner.empty()) return absl::StrCat(f->name(), ".", inner);
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<StructureReport> VerifyStructure(const std::string& ledger_dir,
                                                std::string_view checkpoint_note,
                                                const crypto::Ed25519PublicKey& key) {
  LETHE_ASSIGN_OR_RETURN(ledger::Checkpoint unverified, ledger::ParseCheckpointUnverified(checkpoint_note));
  LETHE_ASSIGN_OR_RETURN(ledger::Checkpoint cp, ledger::VerifyCheckpoint(checkpoint_note, unverified.origin, key));
  StructureReport report;
  ledger::CompactRange tree;
  ledger::BatchTracker batches;
  bool mid_batch = false;
  std::string prev(32, '\0');
  std::string root_at_cp = cp.size == 0 ? ledger::EmptyRoot() : "";
  std::string complete_root = ledger::EmptyRoot();
  LETHE_ASSIGN_OR_RETURN(ledger::ScanResult scan, ledger::ScanSegments(ledger_dir, [&](const ledger::ScannedRecord& rec) {
    std::string leaf;
    uint32_t batch_remaining = 0;
    LETHE_RETURN_IF_ERROR(ledger::CheckChainLinkFast(rec, prev, &leaf, &batch_remaining));
    LETHE_RETURN_IF_ERROR(batches.Next(rec.index, batch_remaining, rec.segment, rec.segment_version));
    tree.Append(leaf);
    prev = std::move(leaf);
    if (!batches.in_batch()) complete_root = tree.Root();
    if (tree.size() == cp.size) {
      root_at_cp = tree.Root();
      mid_batch = batches.in_batch();
    }
    return absl::OkStatus();
  }));
  if (cp.size > tree.size())
    return absl::DataLossError(absl::StrCat("checkpoint covers ", cp.size,
                                            " entries but the log has only ", tree.size()));
  if (root_at_cp != cp.root)
    return absl::DataLossError(absl::StrCat("Merkle root of the first ", cp.size,
                                            " entries differs from the signed checkpoint"));
  if (mid_batch)
    return absl::DataLossError(absl::StrCat("the signed checkpoint ends inside a batch: entry ",
                                            cp.size - 1, " says more entries of its batch follow"));
  LETHE_RETURN_IF_ERROR(batches.CheckEnd(scan.last_segment));
  report.entries = batches.complete();
  report.incomplete_batch_entries = tree.size() - batches.complete();
  report.checkpoint_size = cp.size;
  report.root = complete_root;
  report.torn_tail = scan.torn_tail;
  return report;
}

Auditor::Auditor(crypto::Ed25519PublicKey control_plane_key, std::string checkpoint_note,
                 AuditOptions options)
    : key_(std::move(control_plane_key)),
      checkpoint_note_(std::move(checkpoint_note)),
      options_(options) {
  auto unverified = ledger::ParseCheckpointUnverified(checkpoint_note_);
  if (!unverified.ok()) {
    checkpoint_status_ = unverified.status();
    return;
  }
  auto cp = ledger::VerifyCheckpoint(checkpoint_note_, unverified->origin, key_);
  if (!cp.ok()) {
    checkpoint_status_ = cp.status();
    return;
  }
  checkpoint_ = *cp;
  if (checkpoint_->size == 0) root_at_checkpoint_ = ledger::EmptyRoot();
}

absl::Status Auditor::Fail(std::string_view why) const {
  return absl::DataLossError(absl::StrCat("entry ", body_seq_, ": ",
                                          absl::string_view(why.data(), why.size())));
}

absl::Status Auditor::Add(uint64_t seq, std::string_view bytes, std::string_view segment,
                          uint32_t segment_version) {
  body_seq_ = seq;
  if (seq != next_seq_) return Fail(absl::StrCat("out of order (expected entry ", next_seq_, ")"));
  Held h;
  h.seq = seq;
  h.bytes = bytes.size();
  if (!h.entry.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return Fail("does not parse as a LedgerEntry");
  if (h.entry.seq() != seq) return Fail(absl::StrCat("says it is entry ", h.entry.seq()));
  if (std::string unknown = UnknownField(h.entry); !unknown.empty()) {
    if (!options_.allow_unknown_fields)
      return Fail("holds field " + unknown + ", which proto/lethe/v1 does not define (an unknown "
                  "field could carry anything; --allow-unknown-fields accepts it)");
    ++report_.unknown_field_entries;
  }
  if (h.entry.prev_hash() != prev_hash_) return Fail("prev_hash does not match entry before it (chain broken)");
  if (absl::Status s = batches_.Next(seq, h.entry.batch_remaining(), segment, segment_version); !s.ok())
    return Fail(std::string(s.message()));
  prev_hash_ = ledger::LeafHash(bytes);
  tree_.Append(prev_hash_);
  ++next_seq_;
  if (checkpoint_ && tree_.size() == checkpoint_->size) {
    root_at_checkpoint_ = tree_.Root();
    checkpoint_mid_batch_ = batches_.in_batch();
  }
  if (checkpoint_ && seq >= checkpoint_->size) {
    ++report_.uncovered_entries;
    report_.uncovered_bytes += bytes.size();
  }
  // The rules apply to whole batches: a batch is checked once its last entry is in, and an
  // incomplete batch at the end (an unacknowledged write) is reported, not checked.
  held_.push_back(std::move(h));
  if (batches_.in_batch()) return absl::OkStatus();
  for (Held& e : held_) {
    body_seq_ = e.seq;
    LETHE_RETURN_IF_ERROR(CheckBody(e.entry));
  }
  held_.clear();
  body_seq_ = seq;
  complete_root_ = tree_.Root();
  return absl::OkStatus();
}

absl::Status Auditor::CheckActor(const v1::LedgerEntry& e,
                                 std::initializer_list<std::string_view> roles,
                                 std::string_view what) {
  const std::string& role = e.actor().role();
  if (role.empty() || role == "insecure") {
    ++report_.unauthenticated;
    if (options_.accept_unauthenticated) return absl::OkStatus();
    return Fail(absl::StrCat(Av(what), " records no authenticated caller (",
                             role.empty() ? "no actor" : "lethed ran with --insecure",
                             "); pass --accept-unauthenticated to accept such a log"));
  }
  for (std::string_view r : roles)
    if (role == r) return absl::OkStatus();
  std::string allowed;
  for (std::string_view r : roles) absl::StrAppend(&allowed, allowed.empty() ? "" : " or ", Av(r));
  return Fail(absl::StrCat(Av(what), " was made by role ", Quote(role), " (", Quote(e.actor().name()),
                           "); only ", allowed, " may"));
}

absl::Status Auditor::CheckFreeText(std::string_view field, std::string_view text) const {
  if (std::string why = FreeTextProblem(text, kMaxFreeTextBytes); !why.empty())
    return Fail(absl::StrCat(Av(field), " breaks the rule for free text in clear: ", why));
  return absl::OkStatus();
}

absl::Status Auditor::CheckSealed(std::string_view field, std::string_view sealed) const {
  if (std::string why = SealedProblem(sealed); !why.empty())
    return Fail(absl::StrCat(Av(field), " is not a sealed envelope: it ", why));
  return absl::OkStatus();
}

absl::Status Auditor::CheckBody(const v1::LedgerEntry& e) {
  using E = v1::LedgerEntry;
  if (e.time_unix_ms() < last_time_unix_ms_)
    return Fail(absl::StrCat("its time (", e.time_unix_ms(), " ms) is before the time of the entry before it (",
                             last_time_unix_ms_, " ms)"));
  last_time_unix_ms_ = e.time_unix_ms();
  if (body_seq_ == 0) {
    if (e.body_case() != E::kLogCreated) return Fail("entry 0 is not LogCreated");
    if (e.log_created().control_plane_public_key() != key_.raw())
      return Fail("the log was created for another control-plane key than the one given");
    report_.origin = e.log_created().origin();
    return absl::OkStatus();
  }
  // Who made it, and what it may hold in clear; then the request story (request_lifecycle.h).
  switch (e.body_case()) {
    case E::kLogCreated:
      return Fail("LogCreated may only be entry 0");
    case E::BODY_NOT_SET:
      return Fail("entry has no body");
    case E::kAgentEnrolled:
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"admin"}, "agent key enrolment"));
      break;
    case E::kAgentKeyRevoked:
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"admin"}, "agent key revocation"));
      LETHE_RETURN_IF_ERROR(CheckFreeText("AgentKeyRevoked.reason", e.agent_key_revoked().reason()));
      break;
    case E::kRequestSubmitted:
      // A consent withdrawal's erasure is caused by the ConsentChanged before it.
      if (e.request_submitted().consent_change_id().empty())
        LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "request submission"));
      LETHE_RETURN_IF_ERROR(CheckSealed("RequestSubmitted.sealed", e.request_submitted().sealed()));
      break;
    case E::kCommandIssued:
      LETHE_RETURN_IF_ERROR(CheckSealed("CommandIssued.sealed_envelope", e.command_issued().sealed_envelope()));
      break;
    case E::kReceiptRecorded:
    case E::kRequestCompleted:
      break;
    case E::kIdentitiesAdded:
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "identities added"));
      LETHE_RETURN_IF_ERROR(CheckSealed("IdentitiesAdded.sealed", e.identities_added().sealed()));
      break;
    case E::kDeadlineExtended:
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "deadline extension"));
      LETHE_RETURN_IF_ERROR(CheckSealed("DeadlineExtended.sealed_reason", e.deadline_extended().sealed_reason()));
      break;
    case E::kPolicyActivated:
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"admin", "lethed"}, "policy activation"));
      break;
    case E::kConsentChanged:
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "consent change"));
      LETHE_RETURN_IF_ERROR(CheckFreeText("ConsentChanged.source", e.consent_changed().source()));
      break;
    case E::kPackageReleased:
      // An export is an operator's act; an expiry is lethed's own (no actor).
      if (e.package_released().reason() == v1::PackageReleased::EXPORTED)
        LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "access package export"));
      break;
  }
  v1::Receipt receipt;
  if (absl::Status s = lifecycle_.Check(e, &receipt); !s.ok()) return Fail(std::string(s.message()));
  if (e.has_receipt_recorded()) {
    if (std::string unknown = UnknownField(receipt); !unknown.empty()) {
      if (!options_.allow_unknown_fields)
        return Fail("the signed receipt holds field " + unknown +
                    ", which proto/lethe/v1 does not define (--allow-unknown-fields accepts it)");
      ++report_.unknown_field_entries;
    }
    LETHE_RETURN_IF_ERROR(CheckFreeText("Receipt.error", receipt.error()));
  }
  lifecycle_.Apply(e);
  Count(e);
  return absl::OkStatus();
}

void Auditor::Count(const v1::LedgerEntry& e) {
  using E = v1::LedgerEntry;
  switch (e.body_case()) {
    case E::kAgentEnrolled:
      report_.governance.push_back({body_seq_, e.time_unix_ms(),
                                    absl::StrCat("agent key ", e.agent_enrolled().key_id(), " enrolled for domain ",
                                                 Quote(e.agent_enrolled().domain())),
                                    e.actor()});
      ++report_.agents;
      break;
    case E::kAgentKeyRevoked:
      report_.governance.push_back({body_seq_, e.time_unix_ms(),
                                    absl::StrCat("agent key ", Quote(e.agent_key_revoked().key_id()), " of domain ",
                                                 Quote(e.agent_key_revoked().domain()), " revoked"),
                                    e.actor()});
      ++report_.key_revocations;
      break;
    case E::kRequestSubmitted:
      ++report_.requests;
      if (e.request_submitted().kind() == v1::RequestSubmitted::ACCESS) ++report_.access_requests;
      break;
    case E::kPackageReleased:
      (e.package_released().reason() == v1::PackageReleased::EXPORTED ? report_.packages_exported
                                                                      : report_.packages_expired)++;
      break;
    case E::kCommandIssued:
      ++report_.commands;
      break;
    case E::kReceiptRecorded:
      ++report_.receipts;
      break;
    case E::kRequestCompleted:
      (e.request_completed().outcome() == v1::RequestCompleted::COMPLETED        ? report_.requests_completed
       : e.request_completed().outcome() == v1::RequestCompleted::DONE_WITH_GAPS ? report_.requests_with_gaps
                                                                                 : report_.requests_failed)++;
      break;
    case E::kDeadlineExtended:
      ++report_.extensions;
      break;
    case E::kPolicyActivated:
      report_.governance.push_back({body_seq_, e.time_unix_ms(),
                                    absl::StrCat("policy activation ", e.policy_activated().activation(), " (",
                                                 crypto::Hex(e.policy_activated().policy_hash()).substr(0, 16), ")"),
                                    e.actor()});
      ++report_.policy_activations;
      break;
    case E::kConsentChanged:
      ++report_.consent_changes;
      break;
    case E::kIdentitiesAdded:
    case E::kLogCreated:
    case E::BODY_NOT_SET:
      break;
  }
}

absl::StatusOr<AuditReport> Auditor::Finish(std::string_view last_segment) {
  if (!checkpoint_status_.ok())
    return absl::PermissionDeniedError("checkpoint: " + std::string(checkpoint_status_.message()));
  if (checkpoint_->origin != report_.origin && next_seq_ > 0)
    return absl::DataLossError("checkpoint origin differs from the log's origin");
  if (checkpoint_->size > next_seq_)
    return absl::DataLossError(absl::StrCat("checkpoint covers ", checkpoint_->size,
                                            " entries but the log has only ", next_seq_));
  if (root_at_checkpoint_ != checkpoint_->root)
    return absl::DataLossError(absl::StrCat(
        "Merkle root of the first ", checkpoint_->size,
        " entries differs from the signed checkpoint (the log was rewritten)"));
  if (checkpoint_mid_batch_)
    return absl::DataLossError(absl::StrCat(
        "the signed checkpoint ends inside a batch: entry ", checkpoint_->size - 1,
        " says more entries of its batch follow (a checkpoint is only signed where a batch ends)"));
  if (!last_segment.empty()) LETHE_RETURN_IF_ERROR(batches_.CheckEnd(last_segment));
  report_.incomplete_batch_entries = held_.size();
  for (const Held& h : held_) report_.incomplete_batch_bytes += h.bytes;
  // Counted once: as the incomplete batch (always past the checkpoint), not as uncovered.
  report_.uncovered_entries -= report_.incomplete_batch_entries;
  report_.uncovered_bytes -= report_.incomplete_batch_bytes;
  if (absl::Status s = lifecycle_.CheckEnd(); !s.ok()) return absl::DataLossError(std::string(s.message()));
  report_.entries = batches_.complete();
  report_.checkpoint_size = checkpoint_->size;
  report_.root = batches_.complete() == 0 ? ledger::EmptyRoot() : complete_root_;
  return report_;
}

}  // namespace lethe::audit
