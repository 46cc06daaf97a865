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

absl::StatusOr<v1::Receipt> CheckRecordedReceipt(const v1::ReceiptRecorded& rr,
                                                 const crypto::Ed25519PublicKey& agent_key,
                                                 std::string_view command_digest) {
  auto body = proto::VerifyEnvelope(rr.receipt(), proto::kReceiptType, agent_key);
  if (!body.ok()) return absl::PermissionDeniedError("receipt signature: " + body.status().ToString());
  v1::Receipt receipt;
  if (!receipt.ParseFromString(*body)) return absl::InvalidArgumentError("signed receipt does not parse");
  if (receipt.command_id() != rr.command_id() || receipt.request_id() != rr.request_id() ||
      receipt.domain() != rr.domain())
    return absl::InvalidArgumentError("signed receipt names another command, request or domain");
  if (receipt.command_digest() != command_digest)
    return absl::InvalidArgumentError("receipt was made for different command bytes than lethed issued");
  if (receipt.outcome() != v1::Receipt::COMPLETED && receipt.outcome() != v1::Receipt::FAILED)
    return absl::InvalidArgumentError("receipt has no outcome");
  if (receipt.outcome() == v1::Receipt::COMPLETED && !receipt.verified_zero_remaining())
    return absl::InvalidArgumentError("COMPLETED receipt without the zero-remaining check");
  return receipt;
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
  switch (e.body_case()) {
    case E::kLogCreated:
      return Fail("LogCreated may only be entry 0");
    case E::kAgentEnrolled: {
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"admin"}, "agent key enrolment"));
      auto k = crypto::Ed25519PublicKey::FromRaw(e.agent_enrolled().public_key());
      if (!k.ok()) return Fail("AgentEnrolled holds no valid Ed25519 key");
      if (k->KeyId() != e.agent_enrolled().key_id()) return Fail("AgentEnrolled key_id mismatch");
      auto [lo, hi] = agent_keys_.equal_range(e.agent_enrolled().domain());
      for (auto i = lo; i != hi; ++i)
        if (i->second.key.KeyId() == k->KeyId()) return Fail("agent key enrolled twice for one domain");
      agent_keys_.emplace(e.agent_enrolled().domain(), AgentKey{*k, false});
      report_.governance.push_back({body_seq_, e.time_unix_ms(),
                                    absl::StrCat("agent key ", k->KeyId(), " enrolled for domain ",
                                                 Quote(e.agent_enrolled().domain())),
                                    e.actor()});
      ++report_.agents;
      return absl::OkStatus();
    }
    case E::kAgentKeyRevoked: {
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"admin"}, "agent key revocation"));
      const auto& r = e.agent_key_revoked();
      AgentKey* found = nullptr;
      auto [lo, hi] = agent_keys_.equal_range(r.domain());
      for (auto i = lo; i != hi; ++i)
        if (i->second.key.KeyId() == r.key_id()) found = &i->second;
      if (found == nullptr) return Fail("revocation of a key that was never enrolled for its domain");
      if (found->revoked) return Fail("agent key revoked twice");
      LETHE_RETURN_IF_ERROR(CheckFreeText("AgentKeyRevoked.reason", r.reason()));
      found->revoked = true;
      report_.governance.push_back({body_seq_, e.time_unix_ms(),
                                    absl::StrCat("agent key ", Quote(r.key_id()), " of domain ",
                                                 Quote(r.domain()), " revoked"),
                                    e.actor()});
      ++report_.key_revocations;
      return absl::OkStatus();
    }
    case E::kRequestSubmitted: {
      const auto& r = e.request_submitted();
      // A consent withdrawal's erasure is caused by the ConsentChanged before it.
      if (r.consent_change_id().empty()) LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "request submission"));
      if (requests_.count(r.request_id())) return Fail("request id submitted twice");
      if (r.target_domains().empty() && r.needs_identity().empty())
        return Fail("request has no domain in scope");
      for (const auto& t : r.subject())
        if (t.token().size() != 32) return Fail("identity token is not 32 bytes");
      LETHE_RETURN_IF_ERROR(CheckSealed("RequestSubmitted.sealed", r.sealed()));
      if (!r.consent_change_id().empty()) {
        auto c = consent_plans_.find(r.consent_change_id());
        if (c == consent_plans_.end() || c->second.request_id != r.request_id())
          return Fail("request names a consent change that did not plan it");
        if (c->second.purpose != r.scope_purpose())
          return Fail("request's scope purpose differs from its consent change's purpose");
        consent_plans_.erase(c);
      }
      Request req;
      req.targets.insert(r.target_domains().begin(), r.target_domains().end());
      for (const auto& n : r.needs_identity()) {
        if (req.targets.count(n.domain())) return Fail("domain both targeted and waiting for an identity");
        req.waiting[n.domain()] = {n.identity_types().begin(), n.identity_types().end()};
      }
      for (const auto& t : r.subject()) req.identity_types.insert(t.type());
      LETHE_RETURN_IF_ERROR(CheckPlan(r, req));
      req.due_unix_ms = r.due_unix_ms();
      requests_[r.request_id()] = std::move(req);
      ++report_.requests;
      return absl::OkStatus();
    }
    case E::kCommandIssued: {
      const auto& c = e.command_issued();
      auto it = requests_.find(c.request_id());
      if (it == requests_.end()) return Fail("command for an unknown request");
      if (!it->second.targets.count(c.domain())) return Fail("command for a domain outside the plan");
      it->second.commanded.insert(c.domain());
      if (it->second.completed) return Fail("command issued after the request completed");
      if (commands_.count(c.command_id())) return Fail("command id issued twice");
      if (c.command_digest().size() != 32) return Fail("command digest is not 32 bytes");
      LETHE_RETURN_IF_ERROR(CheckSealed("CommandIssued.sealed_envelope", c.sealed_envelope()));
      if (active_policy_ && c.domain_policy_hash() != active_policy_->DomainHash(c.domain()))
        return Fail("command carries domain_policy_hash " + crypto::Hex(c.domain_policy_hash()).substr(0, 16) +
                    ", not the domain hash of domain " + c.domain() + " in the active policy");
      commands_[c.command_id()] = Command{c.request_id(), c.domain(), c.command_digest()};
      ++report_.commands;
      return absl::OkStatus();
    }
    case E::kReceiptRecorded: {
      const auto& rr = e.receipt_recorded();
      auto cmd = commands_.find(rr.command_id());
      if (cmd == commands_.end()) return Fail("receipt for an unknown command");
      if (cmd->second.request_id != rr.request_id() || cmd->second.domain != rr.domain())
        return Fail("receipt does not match its command's request and domain");
      if (receipted_commands_.count(rr.command_id())) return Fail("second receipt for a command");
      if (requests_[rr.request_id()].answered.count(rr.domain()))
        return Fail("second receipt from domain " + rr.domain() + " for request " + rr.request_id() +
                    " (the first receipt recorded for a domain decides its outcome)");
      // Find the enrolled key of that domain named by the envelope.
      const crypto::Ed25519PublicKey* agent = nullptr;
      bool revoked = false;
      auto [lo, hi] = agent_keys_.equal_range(rr.domain());
      for (auto i = lo; i != hi; ++i) {
        if (i->second.key.KeyId() == rr.receipt().key_id()) {
          agent = &i->second.key;
          revoked = i->second.revoked;
        }
      }
      if (agent == nullptr) return Fail("receipt signed by a key not enrolled for domain " + rr.domain());
      if (revoked)
        return Fail("receipt signed by agent key " + Quote(rr.receipt().key_id()) +
                    ", which was revoked before the receipt was recorded");
      auto checked = CheckRecordedReceipt(rr, *agent, cmd->second.digest);
      if (!checked.ok()) return Fail(std::string(checked.status().message()));
      if (std::string unknown = UnknownField(*checked); !unknown.empty()) {
        if (!options_.allow_unknown_fields)
          return Fail("the signed receipt holds field " + unknown +
                      ", which proto/lethe/v1 does not define (--allow-unknown-fields accepts it)");
        ++report_.unknown_field_entries;
      }
      LETHE_RETURN_IF_ERROR(CheckFreeText("Receipt.error", checked->error()));
      const bool ok = checked->outcome() == v1::Receipt::COMPLETED;
      receipted_commands_.insert(rr.command_id());
      requests_[rr.request_id()].answered[rr.domain()] = ok;
      ++report_.receipts;
      return absl::OkStatus();
    }
    case E::kRequestCompleted: {
      const auto& c = e.request_completed();
      auto it = requests_.find(c.request_id());
      if (it == requests_.end()) return Fail("completion of an unknown request");
      Request& r = it->second;
      if (r.completed) return Fail("request completed twice");
      if (!r.waiting.empty())
        return Fail("request completed while domain " + r.waiting.begin()->first + " still needed an identity");
      bool all_ok = true;
      for (const auto& d : r.targets) {
        auto a = r.answered.find(d);
        if (a == r.answered.end()) return Fail("request completed without a receipt from domain " + d);
        all_ok = all_ok && a->second;
      }
      const auto want = all_ok ? v1::RequestCompleted::COMPLETED : v1::RequestCompleted::FAILED;
      if (c.outcome() != want) return Fail("completion outcome contradicts the receipts");
      r.completed = true;
      (all_ok ? report_.requests_completed : report_.requests_failed)++;
      return absl::OkStatus();
    }
    case E::kIdentitiesAdded: {
      const auto& a = e.identities_added();
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "identities added"));
      auto it = requests_.find(a.request_id());
      if (it == requests_.end()) return Fail("identities added to an unknown request");
      Request& req = it->second;
      if (req.completed) return Fail("identities added after the request completed");
      LETHE_RETURN_IF_ERROR(CheckSealed("IdentitiesAdded.sealed", a.sealed()));
      for (const auto& t : a.subject()) {
        if (t.token().size() != 32) return Fail("identity token is not 32 bytes");
        req.identity_types.insert(t.type());
      }
      if (a.target_domains().empty()) return Fail("identities added for no domain");
      for (const auto& d : a.target_domains()) {
        if (!req.waiting.erase(d)) return Fail("identities added for domain " + d + ", which did not wait for one");
        req.targets.insert(d);
      }
      // The plan: every waiting domain that now has all its identity types must be targeted.
      for (auto w = req.waiting.begin(); w != req.waiting.end(); ++w) {
        bool complete = true;
        for (const auto& t : w->second) complete = complete && req.identity_types.count(t) > 0;
        if (complete)
          return Fail("request " + a.request_id() + ": plan drops domain " + w->first +
                      ", whose identity types the added identities complete");
      }
      return absl::OkStatus();
    }
    case E::kDeadlineExtended: {
      const auto& x = e.deadline_extended();
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "deadline extension"));
      auto it = requests_.find(x.request_id());
      if (it == requests_.end()) return Fail("extension of an unknown request");
      Request& r = it->second;
      if (r.completed) return Fail("extension of a request that had completed");
      if (x.extension_seconds() <= 0) return Fail("extension is not positive");
      LETHE_RETURN_IF_ERROR(CheckSealed("DeadlineExtended.sealed_reason", x.sealed_reason()));
      r.extended_seconds += x.extension_seconds();
      if (max_extension_seconds_ >= 0 && r.extended_seconds > max_extension_seconds_)
        return Fail(absl::StrCat("extensions add up to ", r.extended_seconds,
                                 " s, beyond the policy's max_extension of ", max_extension_seconds_, " s"));
      if (x.new_due_unix_ms() != r.due_unix_ms + x.extension_seconds() * 1000)
        return Fail("extended due date is not the previous due date plus the extension");
      r.due_unix_ms = x.new_due_unix_ms();
      ++report_.extensions;
      return absl::OkStatus();
    }
    case E::kPolicyActivated: {
      const auto& pa = e.policy_activated();
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"admin", "lethed"}, "policy activation"));
      if (pa.activation() != activations_ + 1)
        return Fail(absl::StrCat("policy activation ", pa.activation(), " follows activation ", activations_));
      auto parsed = policies::Policy::Parse(pa.policy_yaml(), "<policy>");
      if (!parsed.ok()) return Fail("activated policy does not validate");
      if (parsed->Hash() != pa.policy_hash()) return Fail("activated policy does not hash to its policy_hash");
      activations_ = pa.activation();
      max_extension_seconds_ = absl::ToInt64Seconds(parsed->deadlines().max_extension);
      active_policy_hash_ = pa.policy_hash();
      active_policy_ = std::make_shared<const policies::Policy>(std::move(*parsed));
      report_.governance.push_back({body_seq_, e.time_unix_ms(),
                                    absl::StrCat("policy activation ", pa.activation(), " (",
                                                 crypto::Hex(pa.policy_hash()).substr(0, 16), ")"),
                                    e.actor()});
      ++report_.policy_activations;
      return absl::OkStatus();
    }
    case E::kConsentChanged: {
      const auto& c = e.consent_changed();
      LETHE_RETURN_IF_ERROR(CheckActor(e, {"operator"}, "consent change"));
      if (c.subject().token().size() != 32) return Fail("consent subject token is not 32 bytes");
      if (c.status() != v1::GRANTED && c.status() != v1::WITHDRAWN) return Fail("consent change has no status");
      if (c.purpose().empty()) return Fail("consent change names no purpose");
      LETHE_RETURN_IF_ERROR(CheckFreeText("ConsentChanged.source", c.source()));
      if (!active_policy_) return Fail("consent change before any policy was activated");
      if (c.policy_hash() != active_policy_hash_)
        return Fail("consent change recorded under policy " + crypto::Hex(c.policy_hash()).substr(0, 16) +
                    ", not the active policy " + crypto::Hex(active_policy_hash_).substr(0, 16));
      const policies::Purpose* purpose = nullptr;
      for (const auto& p : active_policy_->purposes())
        if (p.name == c.purpose()) purpose = &p;
      if (purpose == nullptr) return Fail("consent change for purpose " + Quote(c.purpose()) +
                                          ", which the active policy does not declare");
      // A withdrawal of an erase-on-withdrawal purpose plans an erasure exactly when the
      // subject's consent to it was not already withdrawn; nothing else plans one.
      const std::string key = absl::StrCat(c.subject().type(), "/", crypto::Hex(c.subject().token()), "/", c.purpose());
      auto last = consent_status_.find(key);
      const bool already_withdrawn = last != consent_status_.end() && last->second == v1::WITHDRAWN;
      const bool must_plan = c.status() == v1::WITHDRAWN && purpose->erase_on_withdrawal && !already_withdrawn;
      if (must_plan && c.erasure_request_id().empty())
        return Fail("withdrawal of consent to " + Quote(c.purpose()) +
                    ", an erase_on_withdrawal purpose, planned no erasure");
      if (!must_plan && !c.erasure_request_id().empty())
        return Fail(c.status() != v1::WITHDRAWN ? "a consent grant planned an erasure"
                    : !purpose->erase_on_withdrawal
                        ? "withdrawal of a purpose without erase_on_withdrawal planned an erasure"
                        : "a second withdrawal in a row planned another erasure");
      consent_status_[key] = c.status();
      if (!c.erasure_request_id().empty())
        consent_plans_[c.change_id()] = PlannedByConsent{c.erasure_request_id(), c.purpose(), body_seq_};
      ++report_.consent_changes;
      return absl::OkStatus();
    }
    case E::BODY_NOT_SET:
      return Fail("entry has no body");
  }
  return Fail("unknown entry kind");
}

absl::Status Auditor::CheckPlan(const v1::RequestSubmitted& r, const Request& req) {
  if (!active_policy_) return Fail("request " + r.request_id() + " submitted before any policy was activated");
  if (r.policy_hash() != active_policy_hash_)
    return Fail("request " + r.request_id() + " was planned with policy " +
                crypto::Hex(r.policy_hash()).substr(0, 16) + ", not the active policy " +
                crypto::Hex(active_policy_hash_).substr(0, 16));
  std::vector<std::string> scope;
  if (!r.scope_purpose().empty()) {
    const policies::Purpose* purpose = nullptr;
    for (const auto& p : active_policy_->purposes())
      if (p.name == r.scope_purpose()) purpose = &p;
    if (purpose == nullptr)
      return Fail("request " + r.request_id() + " is scoped to purpose " + Quote(r.scope_purpose()) +
                  ", which the active policy does not declare");
    scope = purpose->domains;
    if (scope.empty()) return Fail("request " + r.request_id() + ": its purpose names no domain");
  }
  const std::vector<std::string> have(req.identity_types.begin(), req.identity_types.end());
  std::set<std::string> in_scope;
  for (const auto& d : active_policy_->ErasureScope(have, scope)) {
    in_scope.insert(d.domain);
    if (d.missing_types.empty()) {
      if (!req.targets.count(d.domain))
        return Fail("request " + r.request_id() + ": plan drops domain " + d.domain +
                    ", which the policy puts in scope and the request's identities reach");
    } else {
      auto w = req.waiting.find(d.domain);
      if (w == req.waiting.end())
        return Fail("request " + r.request_id() + ": plan drops domain " + d.domain +
                    ", which the policy puts in scope (it needs an identity the request lacks)");
      if (w->second != d.missing_types)
        return Fail("request " + r.request_id() + ": domain " + d.domain +
                    " is recorded as needing other identity types than the policy says");
    }
  }
  for (const auto& d : req.targets)
    if (!in_scope.count(d))
      return Fail("request " + r.request_id() + ": plan adds domain " + Quote(d) +
                  ", which the policy does not put in scope");
  for (const auto& [d, types] : req.waiting)
    if (!in_scope.count(d))
      return Fail("request " + r.request_id() + ": plan adds waiting domain " + Quote(d) +
                  ", which the policy does not put in scope");
  return absl::OkStatus();
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
  for (const auto& [id, r] : requests_) {
    for (const auto& d : r.targets)
      if (!r.commanded.count(d))
        return absl::DataLossError("request " + id + ": domain " + d +
                                   " is a target of the plan but no command was issued to it");
  }
  if (!consent_plans_.empty()) {
    const auto& [change, plan] = *consent_plans_.begin();
    return absl::DataLossError(absl::StrCat("entry ", plan.entry, ": consent change planned erasure ",
                                            plan.request_id, ", which the log does not hold"));
  }
  report_.entries = batches_.complete();
  report_.checkpoint_size = checkpoint_->size;
  report_.root = batches_.complete() == 0 ? ledger::EmptyRoot() : complete_root_;
  return report_;
}

}  // namespace lethe::audit
