#include "controlplane/request_manager.h"

#include "audit/hygiene.h"
#include "audit/request_lifecycle.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "controlplane/authorizer.h"
#include "crypto/seal.h"
#include "proto/envelope.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {
namespace {

std::string NewId() { return crypto::Hex(crypto::RandomBytes(16)); }

// The X25519 key an access request's agents seal their parts to, derived from the request
// key: destroying the request key destroys it too.
absl::StatusOr<crypto::X25519PrivateKey> PartKey(const SecretBytes& request_key) {
  return crypto::X25519PrivateKey::FromSeed(SecretBytes(crypto::HmacSha256(request_key, "lethe.v1 access part key")));
}

bool Contains(const std::vector<SubjectIdentity>& ids, const SubjectIdentity& id) {
  for (const auto& i : ids)
    if (i.type == id.type && RevealSecret(i.value) == RevealSecret(id.value)) return true;
  return false;
}

// The same identity given twice is one identity.
std::vector<SubjectIdentity> Distinct(std::vector<SubjectIdentity> ids) {
  std::vector<SubjectIdentity> unique;
  for (auto& id : ids)
    if (!Contains(unique, id)) unique.push_back(std::move(id));
  return unique;
}

// Adds each identity's token to `tokens` and returns the identities (and reason) sealed under
// the request key with additional data `aad`, as RequestSubmitted.sealed and
// IdentitiesAdded.sealed hold them.
absl::StatusOr<std::string> SealIdentities(const IdentityVault& vault, const SecretBytes& key,
                                           const std::vector<SubjectIdentity>& ids,
                                           const std::string& reason, const std::string& aad,
                                           google::protobuf::RepeatedPtrField<v1::IdentityToken>* tokens) {
  v1::SealedRequest sealed;
  for (const auto& id : ids) {
    auto* t = tokens->Add();
    t->set_type(id.type);
    t->set_token(vault.Tokenize(id.type, id.value));
    auto* raw = sealed.add_identities();
    raw->set_type(id.type);
    raw->set_value(std::string(RevealSecret(id.value)));
  }
  sealed.set_reason(reason);
  std::string plain_raw;
  sealed.SerializeToString(&plain_raw);
  sealed.Clear();
  SecretBytes plain(std::move(plain_raw));
  return crypto::SealAesGcm(key, RevealSecret(plain), aad);
}

}  // namespace

RequestManager::RequestManager(LedgerWriter& writer, Projections& projections,
                               IdentityVault& vault, const crypto::Ed25519PrivateKey& signing_key,
                               const Clock& clock, RequestManagerOptions options)
    : writer_(writer),
      projections_(projections),
      store_(projections.requests),
      vault_(vault),
      key_(signing_key),
      clock_(clock),
      options_(options) {}

absl::Status RequestManager::SequenceAndWait(std::unique_lock<std::mutex>& lock,
                                             std::vector<v1::LedgerEntry> entries,
                                             const v1::Actor* actor) {
  LETHE_ASSIGN_OR_RETURN(LedgerWriter::Ticket ticket, writer_.Sequence(lock, std::move(entries), actor));
  lock.unlock();
  return writer_.WaitDurable(ticket);
}

bool RequestManager::Stale(const Prepared& p) const {
  if (projections_.policies.Active() != p.policy) return true;
  // Each command is sealed to its domain's current agent key, which an enrolment or a
  // revocation since may have changed.
  for (const auto& e : p.entries) {
    if (!e.has_command_issued()) continue;
    auto agent = store_.CurrentAgent(e.command_issued().domain());
    if (!agent || agent->encryption_key_id != e.command_issued().recipient_key_id()) return true;
  }
  return false;
}

absl::StatusOr<RequestRecord> RequestManager::OpenRequest(const std::string& request_id,
                                                          std::string_view action) const {
  auto r = store_.Get(request_id);
  if (!r.ok()) return r.status();
  if (r->state != v1::IN_PROGRESS)
    return absl::FailedPreconditionError(absl::StrCat("request_id: request ", request_id,
                                                      " has ended; only an open request can ",
                                                      Av(action)));
  return *r;
}

absl::StatusOr<std::shared_ptr<const policies::Policy>> RequestManager::ActivePolicy() const {
  auto p = projections_.policies.Active();
  if (!p) return absl::FailedPreconditionError("no policy has been activated");
  return p;
}

absl::StatusOr<std::string> RequestManager::TokenOf(const SubjectIdentity& identity) const {
  LETHE_ASSIGN_OR_RETURN(auto policy, ActivePolicy());
  LETHE_ASSIGN_OR_RETURN(
      auto one, NormalizeIdentities(*policy, {SubjectIdentity{identity.type, identity.value}}, "identity"));
  return vault_.Tokenize(one[0].type, one[0].value);
}

absl::StatusOr<v1::LedgerEntry> RequestManager::MakeCommand(const std::string& request_id,
                                                            const DomainPlan& plan,
                                                            const SecretBytes& key,
                                                            absl::Time now, bool access) {
  // The identities travel sealed to the domain's agent: no topic carries them in clear.
  auto agent = store_.CurrentAgent(plan.domain);
  if (!agent)
    return absl::FailedPreconditionError(
        "domain " + plan.domain +
        " has no enrolled agent key to seal its command to; enroll one first (lethectl agent enroll)");
  LETHE_ASSIGN_OR_RETURN(crypto::X25519PublicKey recipient,
                   crypto::X25519PublicKey::FromRaw(agent->encryption_public_key));
  const std::string command_id = NewId();
  v1::DeleteCommand cmd;
  cmd.set_command_id(command_id);
  cmd.set_request_id(request_id);
  cmd.set_domain(plan.domain);
  {
    v1::SealedIdentities ids;
    for (const auto& id : plan.identities) {
      auto* out = ids.add_identities();
      out->set_type(id.type);
      out->set_value(std::string(RevealSecret(id.value)));
    }
    std::string raw;
    ids.SerializeToString(&raw);
    ids.Clear();
    SecretBytes plain(std::move(raw));
    cmd.set_sealed_identities(crypto::SealTo(recipient, RevealSecret(plain)));
    cmd.set_recipient_key_id(recipient.KeyId());
  }
  cmd.set_domain_policy_hash(plan.domain_policy_hash);
  cmd.set_issued_at_unix_ms(absl::ToUnixMillis(now));
  cmd.set_not_after_unix_ms(absl::ToUnixMillis(now + options_.command_ttl));
  cmd.set_nonce(crypto::RandomBytes(16));
  // The serialized command holds raw identities: keep it in a SecretBytes while it lives.
  std::string raw_body;
  cmd.SerializeToString(&raw_body);
  cmd.Clear();
  if (access) {
    // The same fields under the same numbers (messages.proto), plus the key to seal the part
    // to, under a payload type that no agent can take for a delete.
    v1::AccessCommand ac;
    ac.ParseFromString(raw_body);
    LETHE_ASSIGN_OR_RETURN(crypto::X25519PrivateKey part_key, PartKey(key));
    ac.set_part_recipient_key(part_key.public_key().raw());
    std::string().swap(raw_body);
    ac.SerializeToString(&raw_body);
    ac.Clear();
  }
  SecretBytes body(std::move(raw_body));
  const std::string digest = crypto::Sha256(RevealSecret(body));
  v1::SignedEnvelope env = proto::SignEnvelope(access ? proto::kAccessCommandType : proto::kDeleteCommandType,
                                               std::string(RevealSecret(body)), key_);
  std::string raw_wire;
  env.SerializeToString(&raw_wire);
  env.Clear();
  SecretBytes wire(std::move(raw_wire));

  v1::LedgerEntry e;
  auto* ci = e.mutable_command_issued();
  ci->set_command_id(command_id);
  ci->set_request_id(request_id);
  ci->set_domain(plan.domain);
  ci->set_command_digest(digest);
  LETHE_ASSIGN_OR_RETURN(std::string sealed, crypto::SealAesGcm(key, RevealSecret(wire), ci->command_id()));
  ci->set_sealed_envelope(std::move(sealed));
  ci->set_not_after_unix_ms(absl::ToUnixMillis(now + options_.command_ttl));
  for (const auto& id : plan.identities) ci->add_identity_types(id.type);
  ci->set_domain_policy_hash(plan.domain_policy_hash);
  ci->set_recipient_key_id(recipient.KeyId());
  return e;
}

absl::StatusOr<std::vector<v1::LedgerEntry>> RequestManager::BuildErasure(
    const policies::Policy& policy, const ErasureSpec& spec, const std::string& request_id,
    const SecretBytes& key, absl::Time now, size_t* targets) {
  const ErasurePlan plan = PlanErasure(policy, spec.identities, spec.scope);
  std::vector<v1::LedgerEntry> entries;
  v1::LedgerEntry submitted;
  auto* s = submitted.mutable_request_submitted();
  s->set_request_id(request_id);
  s->set_kind(spec.access ? v1::RequestSubmitted::ACCESS : v1::RequestSubmitted::ERASURE);
  LETHE_ASSIGN_OR_RETURN(std::string ct, SealIdentities(vault_, key, spec.identities, spec.reason,
                                                  request_id, s->mutable_subject()));
  s->set_sealed(std::move(ct));
  s->set_policy_hash(policy.Hash());
  for (const auto& t : plan.targets) s->add_target_domains(t.domain);
  for (const auto& n : plan.needs_identity) {
    auto* need = s->add_needs_identity();
    need->set_domain(n.domain);
    for (const auto& t : n.identity_types) need->add_identity_types(t);
  }
  s->set_received_unix_ms(absl::ToUnixMillis(now));
  s->set_due_unix_ms(
      absl::ToUnixMillis(now + (spec.access ? policy.deadlines().access : policy.deadlines().erasure)));
  s->set_consent_change_id(spec.consent_change_id);
  s->set_scope_purpose(spec.scope_purpose);
  entries.push_back(std::move(submitted));
  for (const auto& t : plan.targets) {
    LETHE_ASSIGN_OR_RETURN(v1::LedgerEntry cmd, MakeCommand(request_id, t, key, now, spec.access));
    entries.push_back(std::move(cmd));
  }
  if (targets != nullptr) *targets = plan.targets.size();
  if (!plan.needs_identity.empty()) {
    std::vector<std::string> names;
    for (const auto& n : plan.needs_identity) names.push_back(n.domain);
    spdlog::warn("request {}: domain(s) {} need an identity type the request does not carry",
                 request_id, absl::StrJoin(names, ", "));
  }
  return entries;
}

absl::StatusOr<std::string> RequestManager::Submit(v1::RequestSubmitted::Kind kind,
                                                   std::vector<SubjectIdentity> identities, std::string reason,
                                                   const v1::Actor& actor) {
  if (kind != v1::RequestSubmitted::ERASURE && kind != v1::RequestSubmitted::ACCESS)
    return absl::InvalidArgumentError("kind: a request is an erasure or an access request");
  if (kind == v1::RequestSubmitted::ACCESS && options_.parts == nullptr)
    return absl::FailedPreconditionError("kind: this lethed has no place to keep access packages");
  Prepared p;
  LETHE_ASSIGN_OR_RETURN(p.policy, ActivePolicy());
  LETHE_ASSIGN_OR_RETURN(auto normalized, NormalizeIdentities(*p.policy, identities));
  LETHE_RETURN_IF_ERROR(ValidateErasureReason(reason));
  ErasureSpec spec;
  spec.access = kind == v1::RequestSubmitted::ACCESS;
  spec.identities = Distinct(std::move(normalized));
  spec.reason = std::move(reason);
  const std::string request_id = NewId();
  LETHE_ASSIGN_OR_RETURN(SecretBytes key, vault_.CreateRequestKey(request_id));
  absl::Status st = [&]() -> absl::Status {
    // The request is sealed and its commands signed before the lock is taken: it depends on
    // no recorded state but the active policy and the domains' agent keys, which are checked
    // again under the lock. Should either have changed, it is planned again there.
    LETHE_ASSIGN_OR_RETURN(p.entries, BuildErasure(*p.policy, spec, request_id, key,
                                                   clock_.Now(), &p.targets));
    auto lock = writer_.Lock();
    if (Stale(p)) {
      LETHE_ASSIGN_OR_RETURN(p.policy, ActivePolicy());
      // As received, normalized by the policy now active.
      LETHE_ASSIGN_OR_RETURN(auto renormalized, NormalizeIdentities(*p.policy, identities));
      spec.identities = Distinct(std::move(renormalized));
      LETHE_ASSIGN_OR_RETURN(p.entries, BuildErasure(*p.policy, spec, request_id, key,
                                                     clock_.Now(), &p.targets));
    }
    return SequenceAndWait(lock, std::move(p.entries), &actor);
  }();
  if (!st.ok()) {
    (void)vault_.DestroyRequestKey(request_id);  // nothing was recorded
    return st;
  }
  spdlog::info("request {}: {} recorded, {} target domain(s)", request_id, spec.access ? "access" : "erasure",
               p.targets);
  return request_id;
}

absl::StatusOr<std::vector<std::pair<std::string, std::vector<std::string>>>> RequestManager::FindOpen(
    std::vector<SubjectIdentity> identities) {
  LETHE_ASSIGN_OR_RETURN(auto policy, ActivePolicy());
  LETHE_ASSIGN_OR_RETURN(auto normalized, NormalizeIdentities(*policy, identities));
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& id : Distinct(std::move(normalized))) {
    for (const std::string& rid : store_.OpenWithToken(id.type, vault_.Tokenize(id.type, id.value))) {
      auto it = std::find_if(out.begin(), out.end(), [&](const auto& m) { return m.first == rid; });
      if (it == out.end()) it = out.insert(out.end(), {rid, {}});
      if (std::find(it->second.begin(), it->second.end(), id.type) == it->second.end())
        it->second.push_back(id.type);
    }
  }
  // Oldest first: by the ledger entry that recorded each.
  std::vector<std::pair<uint64_t, size_t>> order;
  for (size_t i = 0; i < out.size(); ++i) {
    auto r = store_.Get(out[i].first);
    order.emplace_back(r.ok() ? r->submitted_entry : 0, i);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::pair<std::string, std::vector<std::string>>> ordered;
  for (const auto& [entry, i] : order) ordered.push_back(std::move(out[i]));
  return ordered;
}

absl::StatusOr<std::vector<SubjectIdentity>> RequestManager::RequestIdentities(
    const RequestRecord& r, const SecretBytes& key) const {
  std::vector<SubjectIdentity> out;
  auto add = [&](std::string_view sealed_blob, const std::string& aad) -> absl::Status {
    LETHE_ASSIGN_OR_RETURN(SecretBytes plain, crypto::OpenAesGcm(key, sealed_blob, aad));
    v1::SealedRequest sealed;
    if (!sealed.ParseFromString(std::string(RevealSecret(plain))))
      return absl::DataLossError("request " + r.request_id + ": sealed identities do not parse");
    for (const auto& id : sealed.identities())
      out.push_back(SubjectIdentity{id.type(), SecretBytes(id.value())});
    sealed.Clear();
    return absl::OkStatus();
  };
  LETHE_RETURN_IF_ERROR(add(r.submitted.sealed(), r.request_id));
  for (size_t i = 0; i < r.sealed_additions.size(); ++i)
    LETHE_RETURN_IF_ERROR(add(r.sealed_additions[i], AdditionAad(r.request_id, i)));
  return out;
}

absl::Status RequestManager::AddIdentities(const std::string& request_id,
                                           std::vector<SubjectIdentity> identities,
                                           const v1::Actor& actor) {
  // Everything here depends on recorded state (the request, the policy, the agent keys), so
  // all of it runs under the lock; none of it waits for a disk.
  auto lock = writer_.Lock();
  LETHE_ASSIGN_OR_RETURN(auto policy, ActivePolicy());
  LETHE_ASSIGN_OR_RETURN(auto normalized, NormalizeIdentities(*policy, identities));
  identities = Distinct(std::move(normalized));
  LETHE_ASSIGN_OR_RETURN(const RequestRecord r, OpenRequest(request_id, "be given identities"));
  LETHE_ASSIGN_OR_RETURN(SecretBytes key, vault_.RequestKey(request_id));
  LETHE_ASSIGN_OR_RETURN(std::vector<SubjectIdentity> known, RequestIdentities(r, key));
  // Only identities the request does not hold yet.
  std::vector<SubjectIdentity> fresh;
  for (auto& id : identities)
    if (!Contains(known, id)) fresh.push_back(std::move(id));
  std::vector<std::string> waiting;
  for (const auto& d : r.domains)
    if (d.state == v1::NEEDS_IDENTITY) waiting.push_back(d.domain);
  if (waiting.empty())
    return absl::FailedPreconditionError("request_id: no domain of request " + request_id +
                                         " is waiting for an identity");
  std::vector<SubjectIdentity> all = known;
  for (const auto& f : fresh) all.push_back(SubjectIdentity{f.type, f.value});
  const ErasurePlan plan = PlanErasure(*policy, all, waiting);
  // Only domains the fresh identities reach.
  std::vector<DomainPlan> reached;
  for (const auto& t : plan.targets) {
    bool uses_fresh = false;
    for (const auto& id : t.identities) uses_fresh = uses_fresh || Contains(fresh, id);
    if (uses_fresh) reached.push_back(DomainPlan{t.domain, t.identities, t.domain_policy_hash});
  }
  if (reached.empty())
    return absl::FailedPreconditionError(
        "identities: the given identities complete no waiting domain's identity types (waiting: " +
        absl::StrJoin(waiting, ", ") + ")");
  const absl::Time now = clock_.Now();
  v1::LedgerEntry added;
  auto* a = added.mutable_identities_added();
  a->set_request_id(request_id);
  LETHE_ASSIGN_OR_RETURN(std::string ct,
                   SealIdentities(vault_, key, fresh, "", AdditionAad(request_id, r.sealed_additions.size()),
                                  a->mutable_subject()));
  a->set_sealed(std::move(ct));
  std::vector<v1::LedgerEntry> entries;
  for (const auto& d : reached) a->add_target_domains(d.domain);
  entries.push_back(std::move(added));
  for (const auto& d : reached) {
    LETHE_ASSIGN_OR_RETURN(v1::LedgerEntry cmd, MakeCommand(request_id, d, key, now, r.access()));
    entries.push_back(std::move(cmd));
  }
  LETHE_RETURN_IF_ERROR(SequenceAndWait(lock, std::move(entries), &actor));
  spdlog::info("request {}: identities added; {} more domain(s) targeted", request_id, reached.size());
  return absl::OkStatus();
}

absl::Status RequestManager::Extend(const std::string& request_id, absl::Duration by,
                                    std::string reason, const v1::Actor& actor) {
  LETHE_RETURN_IF_ERROR(ValidateExtension(by, reason));
  auto lock = writer_.Lock();
  LETHE_ASSIGN_OR_RETURN(auto policy, ActivePolicy());
  LETHE_ASSIGN_OR_RETURN(const RequestRecord r, OpenRequest(request_id, "be extended"));
  absl::Duration total = by;
  for (const auto& x : r.extensions) total += absl::Seconds(x.extension_seconds);
  const absl::Duration cap = policy->deadlines().max_extension;
  if (total > cap)
    return absl::InvalidArgumentError(absl::StrCat(
        "extension_seconds: the request's extensions would add up to ",
        absl::FormatDuration(total), ", more than the policy's deadlines.max_extension (",
        absl::FormatDuration(cap), ")"));
  LETHE_ASSIGN_OR_RETURN(SecretBytes key, vault_.RequestKey(request_id));
  v1::LedgerEntry e;
  auto* x = e.mutable_deadline_extended();
  x->set_request_id(request_id);
  x->set_extension_seconds(absl::ToInt64Seconds(by));
  x->set_new_due_unix_ms(r.due_unix_ms + absl::ToInt64Milliseconds(by));
  LETHE_ASSIGN_OR_RETURN(std::string sealed,
                   crypto::SealAesGcm(key, reason, ExtensionAad(request_id, r.extensions.size())));
  x->set_sealed_reason(std::move(sealed));
  LETHE_RETURN_IF_ERROR(SequenceAndWait(lock, {e}, &actor));
  spdlog::info("request {}: due date extended by {}", request_id, absl::FormatDuration(by));
  return absl::OkStatus();
}

absl::StatusOr<ConsentRecord> RequestManager::ChangeConsent(SubjectIdentity identity,
                                                            std::string purpose,
                                                            v1::ConsentStatus status,
                                                            std::string source,
                                                            const v1::Actor& actor) {
  LETHE_RETURN_IF_ERROR(ValidateConsentStatus(status));
  LETHE_RETURN_IF_ERROR(ValidateConsentSource(source));
  // Whether the change plans an erasure depends on the consent recorded before it. The
  // erasure is prepared (its request key made durable, its commands sealed and signed) on
  // that state read without the lock; under the lock the decision is taken again, and the
  // change prepared again should it differ or should the policy or an agent key have changed.
  // After a few such races the last attempt prepares everything under the lock.
  constexpr int kOptimisticAttempts = 4;
  for (int attempt = 1;; ++attempt) {
    const bool locked_attempt = attempt > kOptimisticAttempts;
    std::unique_lock<std::mutex> lock;
    if (locked_attempt) lock = writer_.Lock();
    Prepared p;
    LETHE_ASSIGN_OR_RETURN(p.policy, ActivePolicy());
    LETHE_ASSIGN_OR_RETURN(
        std::vector<SubjectIdentity> one,
        NormalizeIdentities(*p.policy, {SubjectIdentity{identity.type, identity.value}}, "identity"));
    LETHE_ASSIGN_OR_RETURN(const policies::Purpose* purpose_def, ValidatePurpose(*p.policy, purpose));
    const std::string token = vault_.Tokenize(one[0].type, one[0].value);
    auto erases = [&](const std::optional<ConsentRecord>& prev) {
      return status == v1::WITHDRAWN && purpose_def->erase_on_withdrawal &&
             !(prev && prev->status == v1::WITHDRAWN);
    };
    const bool erase = erases(projections_.consent.Latest(identity.type, token, purpose));

    v1::LedgerEntry change;
    auto* c = change.mutable_consent_changed();
    c->set_change_id(NewId());
    c->mutable_subject()->set_type(identity.type);
    c->mutable_subject()->set_token(token);
    c->set_purpose(purpose);
    c->set_status(status);
    c->set_source(source);
    c->set_policy_hash(p.policy->Hash());
    std::string request_id;
    if (erase) {
      request_id = NewId();
      c->set_erasure_request_id(request_id);
      ErasureSpec spec;
      spec.identities = std::move(one);
      spec.reason = "consent withdrawn for purpose " + purpose + " (source: " + source + ")";
      spec.scope = purpose_def->domains;
      spec.scope_purpose = purpose;
      spec.consent_change_id = c->change_id();
      LETHE_ASSIGN_OR_RETURN(SecretBytes key, vault_.CreateRequestKey(request_id));
      auto built = BuildErasure(*p.policy, spec, request_id, key, clock_.Now(), nullptr);
      if (!built.ok()) {
        (void)vault_.DestroyRequestKey(request_id);
        return built.status();
      }
      p.entries.push_back(std::move(change));
      for (auto& e : *built) p.entries.push_back(std::move(e));
    } else {
      p.entries.push_back(std::move(change));
    }

    if (!locked_attempt) {
      lock = writer_.Lock();
      if (erases(projections_.consent.Latest(identity.type, token, purpose)) != erase || Stale(p)) {
        lock.unlock();
        if (erase) (void)vault_.DestroyRequestKey(request_id);
        continue;
      }
    }
    auto ticket = writer_.Sequence(lock, std::move(p.entries), &actor);
    auto now_latest = projections_.consent.Latest(identity.type, token, purpose);
    lock.unlock();
    if (absl::Status st = ticket.ok() ? writer_.WaitDurable(*ticket) : ticket.status(); !st.ok()) {
      if (erase) (void)vault_.DestroyRequestKey(request_id);  // nothing was recorded
      return st;
    }
    if (!now_latest) return absl::InternalError("consent change not applied after append");
    spdlog::info("consent: {} {} (entry {}){}", purpose,
                 status == v1::GRANTED ? "granted" : "withdrawn", now_latest->entry,
                 erase ? "; erasure " + request_id + " planned" : "");
    return *now_latest;
  }
}

absl::Status RequestManager::RecordReceipt(std::string_view wire) {
  LETHE_ASSIGN_OR_RETURN(std::optional<SequencedReceipt> sequenced, SequenceReceipt(wire));
  if (!sequenced) return absl::OkStatus();
  LETHE_RETURN_IF_ERROR(writer_.WaitDurable(sequenced->ticket));
  return Complete(sequenced->request_id);
}

absl::StatusOr<std::optional<RequestManager::SequencedReceipt>> RequestManager::SequenceReceipt(
    std::string_view wire) {
  auto reject = [&](absl::Status s) {
    counters_.rejected.fetch_add(1);
    spdlog::warn("receipt rejected: {}", s.ToString());
    return s;
  };
  v1::SignedEnvelope env;
  if (!env.ParseFromArray(wire.data(), static_cast<int>(wire.size())))
    return reject(absl::InvalidArgumentError("receipt: not a SignedEnvelope"));
  if (env.payload_type() == proto::kAccessPartChunkType) {
    // A piece of an access part: held until its receipt comes. Nothing is recorded.
    if (absl::Status held = AcceptChunk(env); !held.ok()) return reject(held);
    return std::nullopt;
  }
  if (env.payload_type() != proto::kReceiptType)
    return reject(absl::InvalidArgumentError("receipt: payload_type is not lethe.v1.Receipt"));
  // The signature first: find the enrolled key by the envelope's key id, verify the bytes, and
  // only then parse them. Nothing of the body is read before it is authentic.
  std::optional<AgentRecord> agent;
  for (const auto& a : store_.Agents())
    if (a.key_id == env.key_id()) agent = a;
  if (!agent)
    return reject(absl::PermissionDeniedError("receipt: signed by key " + Quote(env.key_id(), 16) +
                                              ", which is not enrolled"));
  if (!agent->verify_key) return reject(absl::InternalError("enrolled agent key does not load"));
  auto verified = audit::RequestLifecycle::VerifyReceiptEnvelope(env, *agent->verify_key);
  if (!verified.ok()) return reject(verified.status());
  v1::Receipt receipt;
  if (!receipt.ParseFromString(verified->body()))
    return reject(absl::InvalidArgumentError("receipt: signed body does not parse"));
  store_.RememberVerifiedReceipt(*verified);  // the check under the lock reuses this verdict
  v1::LedgerEntry e;
  auto* rr = e.mutable_receipt_recorded();
  *rr->mutable_receipt() = env;
  rr->set_command_id(receipt.command_id());
  rr->set_request_id(receipt.request_id());
  rr->set_domain(receipt.domain());

  const std::optional<CommandRecord> command = store_.Command(receipt.command_id());
  const bool access = command.has_value() && command->access;
  if (access && receipt.outcome() == v1::Receipt::COMPLETED) {
    // The part comes first: opened, checked against this receipt and stored before the receipt
    // is recorded. Not for a receipt that is no news (the stored part is the recorded one's).
    absl::Status before = store_.CheckReceipt(*rr, false, nullptr);
    if (before.code() == absl::StatusCode::kAlreadyExists) {
      counters_.duplicates.fetch_add(1);
      if (options_.parts != nullptr) options_.parts->Forget(receipt.command_id());
      return std::nullopt;
    }
    if (!before.ok()) return reject(Annotate(before, "receipt"));
    if (absl::Status kept = KeepPart(receipt); !kept.ok()) {
      if (absl::IsInternal(kept) || absl::IsUnavailable(kept)) return kept;  // ours: retry
      return reject(kept);
    }
  }

  auto lock = writer_.Lock();
  // The rule the ledger is replayed and audited by (audit/request_lifecycle.h): the key
  // enrolled for the receipt's domain and not revoked, the command it answers, the bytes it
  // was made for, an outcome, and the re-check behind COMPLETED.
  const bool refusal = receipt.outcome() == v1::Receipt::REJECTED;
  if (absl::Status checked = store_.CheckReceipt(*rr, refusal, nullptr); !checked.ok()) {
    if (checked.code() == absl::StatusCode::kAlreadyExists) {
      counters_.duplicates.fetch_add(1);
      return std::nullopt;  // already answered: a redelivery
    }
    return reject(Annotate(checked, "receipt"));
  }
  if (refusal) {
    // The agent refused the command without acting (e.g. policy drift). Not an answer: the
    // command stays open and is re-published; the reason is shown on the request.
    counters_.refused.fetch_add(1);
    std::string why = Quote(receipt.error(), 300);  // the agent's words: printable, bounded
    spdlog::warn("request {}: domain {} refused command {}: {}", Quote(receipt.request_id()),
                 Quote(receipt.domain()), Quote(receipt.command_id()), why);
    store_.NoteRejection(receipt.command_id(), std::move(why));
    if (access && options_.parts != nullptr) options_.parts->Forget(receipt.command_id());
    return std::nullopt;
  }
  if (std::string why = audit::FreeTextProblem(receipt.error(), audit::kMaxFreeTextBytes); !why.empty())
    return reject(absl::InvalidArgumentError("receipt: error text " + why));
  // A PHYSICALLY_PURGED receipt is the domain's second: no answer, no latency to measure.
  const bool physical = receipt.outcome() == v1::Receipt::PHYSICALLY_PURGED;
  const std::optional<int64_t> received_ms = options_.receipt_latency && !physical
                                                 ? store_.ReceivedUnixMs(receipt.request_id())
                                                 : std::nullopt;
  LETHE_ASSIGN_OR_RETURN(LedgerWriter::Ticket ticket, writer_.Sequence(lock, {e}, nullptr));
  lock.unlock();
  if (access && options_.parts != nullptr) options_.parts->Forget(receipt.command_id());
  counters_.recorded.fetch_add(1);
  if (!physical) store_.NoteAnswered(receipt.domain());
  if (received_ms) options_.receipt_latency(access, clock_.Now() - absl::FromUnixMillis(*received_ms));
  spdlog::info("request {}: receipt from domain {} ({})", Quote(receipt.request_id()), Quote(receipt.domain()),
               physical                                        ? "physically purged"
               : receipt.outcome() == v1::Receipt::COMPLETED ? "completed"
                                                               : "failed");
  return SequencedReceipt{ticket, receipt.request_id()};
}

absl::Status RequestManager::CompleteAll(const std::vector<std::string>& request_ids) {
  std::vector<std::string> due;
  {
    auto lock = writer_.Lock();
    for (const auto& id : request_ids)
      if (CompletionDue(id).has_value() && std::find(due.begin(), due.end(), id) == due.end()) due.push_back(id);
  }
  if (due.empty()) return absl::OkStatus();
  // Crypto-shredding: from here on the sealed identities and commands are unreadable. Each
  // key goes before the completion is recorded (and waited for without the lock), so whoever
  // sees the request ended finds its key gone. Should a completion then not be recorded (a
  // failed write), its receipts are durable and Recover completes it at the next start.
  // An access request keeps its key (and so its parts) until its package is released.
  std::vector<std::string> shred;
  for (const auto& id : due)
    if (!store_.IsAccess(id)) shred.push_back(id);
  LETHE_RETURN_IF_ERROR(vault_.DestroyRequestKeys(shred));
  auto lock = writer_.Lock();
  std::vector<v1::LedgerEntry> entries;
  std::vector<std::pair<std::string, v1::RequestCompleted::Outcome>> done;
  for (const auto& id : due) {
    const std::optional<v1::RequestCompleted::Outcome> outcome = CompletionDue(id);
    if (!outcome.has_value()) continue;  // completed by a concurrent receipt
    v1::LedgerEntry e;
    e.mutable_request_completed()->set_request_id(id);
    e.mutable_request_completed()->set_outcome(*outcome);
    entries.push_back(std::move(e));
    done.emplace_back(id, *outcome);
  }
  if (entries.empty()) return absl::OkStatus();
  LETHE_RETURN_IF_ERROR(SequenceAndWait(lock, std::move(entries)));
  for (const auto& [id, outcome] : done)
    spdlog::info("request {}: {}; {}", id,
                 outcome == v1::RequestCompleted::COMPLETED        ? "completed"
                 : outcome == v1::RequestCompleted::DONE_WITH_GAPS ? "done with gaps (a sink keeps a copy)"
                                                                   : "failed",
                 std::find(shred.begin(), shred.end(), id) != shred.end()
                     ? "request key destroyed"
                     : "its access package is held until exported or expired");
  return absl::OkStatus();
}

std::optional<v1::RequestCompleted::Outcome> RequestManager::CompletionDue(const std::string& request_id) const {
  auto req = store_.Get(request_id);
  if (!req.ok() || req->state != v1::IN_PROGRESS) return std::nullopt;
  bool all_ok = true, gaps = false;
  for (const auto& d : req->domains) {
    if (d.state != v1::DONE && d.state != v1::DOMAIN_FAILED) return std::nullopt;
    // Every receipt durable: a completion must never outlive a receipt it stands on. The
    // writer of a receipt not yet durable calls Complete itself once it is.
    if (d.receipt_entry >= writer_.durable_size()) return std::nullopt;
    all_ok = all_ok && d.state == v1::DONE;
    gaps = gaps || (d.state == v1::DONE && d.receipt && !audit::ReceiptGaps(*d.receipt).empty());
  }
  return !all_ok ? v1::RequestCompleted::FAILED
         : gaps  ? v1::RequestCompleted::DONE_WITH_GAPS
                 : v1::RequestCompleted::COMPLETED;
}

absl::Status RequestManager::Complete(const std::string& request_id) { return CompleteAll({request_id}); }

absl::Status RequestManager::ReissueExpiring(absl::Duration margin) {
  // Nearly every pass of the outbox finds nothing to re-issue: say so without the writer's
  // lock (which every Submit and receipt waits for) and without copying every pending command.
  if (store_.ToReissue(clock_.Now(), margin).empty()) return absl::OkStatus();
  auto lock = writer_.Lock();
  auto policy = projections_.policies.Active();
  if (!policy) return absl::OkStatus();
  const absl::Time now = clock_.Now();
  std::vector<v1::LedgerEntry> entries;
  for (const auto& p : store_.ToReissue(now, margin)) {
    auto req = store_.Get(p.command.request_id);
    if (!req.ok()) continue;
    if (policy->FindDomain(p.command.domain) == nullptr) continue;  // left the policy: its last command stays
    LETHE_ASSIGN_OR_RETURN(SecretBytes key, vault_.RequestKey(req->request_id));
    LETHE_ASSIGN_OR_RETURN(std::vector<SubjectIdentity> ids, RequestIdentities(*req, key));
    // The same rule as at submission: the planner, over the active policy, for this domain.
    ErasurePlan plan = PlanErasure(*policy, ids, {p.command.domain});
    if (plan.targets.empty()) {
      // The active policy now keys the domain by a type the request lacks: a command with part
      // of the identities would purge part of the person. The last command stays; the reason
      // is shown on the request (once: a note wakes the outbox).
      std::string why = "not re-issued: the active policy keys domain " + p.command.domain + " by ";
      why += plan.needs_identity.empty() ? std::string("nothing the request carries")
                                         : absl::StrJoin(plan.needs_identity[0].identity_types, ", ") +
                                               ", which the request lacks";
      if (store_.LastRejection(p.command.command_id) != why) {
        spdlog::warn("request {}: command {} {}", req->request_id, p.command.command_id, why);
        store_.NoteRejection(p.command.command_id, std::move(why));
      }
      continue;
    }
    LETHE_ASSIGN_OR_RETURN(v1::LedgerEntry e,
                           MakeCommand(req->request_id, plan.targets[0], key, now, req->access()));
    entries.push_back(std::move(e));
  }
  if (entries.empty()) return absl::OkStatus();
  spdlog::info("re-issuing {} command(s) near expiry", entries.size());
  return SequenceAndWait(lock, std::move(entries));
}

absl::StatusOr<std::string> RequestManager::CommandWire(const CommandRecord& command) const {
  LETHE_ASSIGN_OR_RETURN(SecretBytes key, vault_.RequestKey(command.request_id));
  LETHE_ASSIGN_OR_RETURN(SecretBytes wire,
                   crypto::OpenAesGcm(key, command.sealed_envelope, command.command_id));
  return std::string(RevealSecret(wire));
}

absl::Status RequestManager::Recover() {
  LETHE_RETURN_IF_ERROR(CompleteAll(store_.AnsweredButOpen()));
  // Keys on disk whose request is not open: ended (a crash between the key's destruction and
  // its sync) or never recorded (a crash during a submission). Either way nothing may read
  // them again.
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> stored, vault_.StoredRequestKeys());
  std::vector<std::string> stale;
  for (auto& id : stored) {
    auto r = store_.Get(id);
    if (!r.ok() && !absl::IsNotFound(r.status())) return r.status();
    const bool package_held = r.ok() && r->access() && r->state != v1::IN_PROGRESS && r->released_entry == 0;
    if (!r.ok() || (r->state != v1::IN_PROGRESS && !package_held)) stale.push_back(std::move(id));
  }
  if (!stale.empty()) {
    LETHE_RETURN_IF_ERROR(vault_.DestroyRequestKeys(stale));
    spdlog::info("destroyed {} request key(s) left behind by a crash", stale.size());
  }
  // Parts whose key is gone (a crash between a release and their removal) open no more: remove them.
  if (options_.parts != nullptr) {
    LETHE_ASSIGN_OR_RETURN(std::vector<std::string> with_parts, options_.parts->StoredRequests());
    for (const auto& id : with_parts)
      if (!vault_.HasRequestKey(id)) LETHE_RETURN_IF_ERROR(options_.parts->Remove(id));
  }
  return ReleaseExpired();
}

absl::Status RequestManager::AcceptChunk(const v1::SignedEnvelope& env) {
  if (options_.parts == nullptr) return absl::FailedPreconditionError("part chunk: this lethed holds no parts");
  // As for a receipt: the enrolled key the envelope names verifies the bytes before they are read.
  std::optional<AgentRecord> agent;
  for (const auto& a : store_.Agents())
    if (a.key_id == env.key_id()) agent = a;
  if (!agent || !agent->verify_key)
    return absl::PermissionDeniedError("part chunk: signed by key " + Quote(env.key_id(), 16) + ", which is not enrolled");
  if (agent->revoked)
    return absl::PermissionDeniedError("part chunk: signed by revoked agent key " + Quote(env.key_id(), 16));
  auto body = proto::VerifyEnvelope(env, proto::kAccessPartChunkType, *agent->verify_key);
  if (!body.ok()) return absl::PermissionDeniedError("part chunk: " + std::string(body.status().message()));
  v1::AccessPartChunk chunk;
  if (!chunk.ParseFromString(*body)) return absl::InvalidArgumentError("part chunk: signed body does not parse");
  const std::optional<CommandRecord> command = store_.Command(chunk.command_id());
  if (!command) return absl::FailedPreconditionError("part chunk: for no open command");
  if (!command->access) return absl::PermissionDeniedError("part chunk: for a command that is no access command");
  if (command->request_id != chunk.request_id() || command->domain != chunk.domain() ||
      agent->domain != chunk.domain())
    return absl::PermissionDeniedError("part chunk: names another request or domain than its command and key");
  return options_.parts->AddChunk(chunk);
}

absl::Status RequestManager::KeepPart(const v1::Receipt& receipt) {
  if (options_.parts == nullptr) return absl::FailedPreconditionError("receipt: this lethed holds no parts");
  auto sealed = options_.parts->TakeSealed(receipt.command_id(), receipt.part_sealed_sha256(), receipt.part_chunks());
  if (!sealed.ok())
    return absl::FailedPreconditionError("receipt: its part has not arrived whole: " +
                                         std::string(sealed.status().message()));
  auto key = vault_.RequestKey(receipt.request_id());
  if (!key.ok()) return absl::FailedPreconditionError("receipt: the request's key is gone");
  LETHE_ASSIGN_OR_RETURN(crypto::X25519PrivateKey part_key, PartKey(*key));
  auto part = part_key.Open(*sealed);
  if (!part.ok()) return absl::PermissionDeniedError("receipt: its part is not sealed to the request's part key");
  if (crypto::Sha256(RevealSecret(*part)) != receipt.part_sha256() || RevealSecret(*part).size() != receipt.part_size())
    return absl::PermissionDeniedError("receipt: its part does not match the digest and size it signed");
  // Durable before the receipt is recorded: a recorded receipt always has its part.
  return options_.parts->Store(receipt.request_id(), receipt.domain(), *key, *part);
}

absl::StatusOr<std::vector<OpenedPart>> RequestManager::OpenParts(const std::string& request_id) const {
  if (options_.parts == nullptr) return absl::FailedPreconditionError("this lethed holds no access packages");
  LETHE_ASSIGN_OR_RETURN(const RequestRecord r, store_.Get(request_id));
  if (!r.access())
    return absl::FailedPreconditionError("request_id: request " + request_id + " is an erasure, not an access request");
  if (r.released_entry != 0)
    return absl::FailedPreconditionError(absl::StrCat(
        "request_id: the package of request ", request_id, " was ",
        r.released_reason == v1::PackageReleased::EXPORTED ? "exported" : "left unexported past its retention",
        " at ", absl::FormatTime(absl::RFC3339_sec, absl::FromUnixMillis(r.released_unix_ms), absl::UTCTimeZone()),
        " (ledger entry ", r.released_entry, ") and its key destroyed; submit a new access request"));
  if (r.state == v1::IN_PROGRESS) {
    size_t answered = 0;
    for (const auto& d : r.domains) answered += d.state == v1::DONE || d.state == v1::DOMAIN_FAILED;
    return absl::FailedPreconditionError(absl::StrCat("request_id: request ", request_id, " is in progress: ", answered,
                                                      " of ", r.domains.size(), " domain(s) have answered"));
  }
  auto key = vault_.RequestKey(request_id);
  if (!key.ok()) return absl::FailedPreconditionError("request_id: the key of request " + request_id + " is gone");
  std::vector<OpenedPart> out;
  for (const auto& d : r.domains) {
    if (!d.receipt) continue;
    OpenedPart p;
    p.domain = d.domain;
    p.receipt = *d.receipt;
    p.receipt_entry = d.receipt_entry;
    p.agent_key_id = d.agent_key_id;
    if (d.state == v1::DONE) {
      LETHE_ASSIGN_OR_RETURN(p.part, options_.parts->Load(request_id, d.domain, *key));
      if (crypto::Sha256(RevealSecret(p.part)) != d.receipt->part_sha256())
        return absl::DataLossError("the stored part of domain " + d.domain + " of request " + request_id +
                                   " is not the one its receipt names");
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::Status RequestManager::ReleasePackage(const std::string& request_id, v1::PackageReleased::Reason reason,
                                            const std::string& package_sha256, const v1::Actor* actor) {
  {
    auto lock = writer_.Lock();
    LETHE_ASSIGN_OR_RETURN(const RequestRecord r, store_.Get(request_id));
    if (!r.access() || r.state == v1::IN_PROGRESS || r.released_entry != 0)
      return absl::FailedPreconditionError("request_id: request " + request_id +
                                           " holds no package to release (not a completed access request, or "
                                           "released already)");
    v1::LedgerEntry e;
    auto* p = e.mutable_package_released();
    p->set_request_id(request_id);
    p->set_reason(reason);
    if (reason == v1::PackageReleased::EXPORTED) p->set_package_sha256(package_sha256);
    LETHE_RETURN_IF_ERROR(SequenceAndWait(lock, {e}, actor));
  }
  // Recorded: now the key, then the files (Recover finishes either after a crash).
  LETHE_RETURN_IF_ERROR(vault_.DestroyRequestKey(request_id));
  if (options_.parts != nullptr) LETHE_RETURN_IF_ERROR(options_.parts->Remove(request_id));
  spdlog::info("request {}: access package {}; request key destroyed", request_id,
               reason == v1::PackageReleased::EXPORTED ? "exported" : "expired");
  return absl::OkStatus();
}

absl::Status RequestManager::ReleaseExpired() {
  const std::map<std::string, int64_t> held = store_.UnreleasedPackages();
  if (held.empty()) return absl::OkStatus();
  auto policy = projections_.policies.Active();
  if (!policy) return absl::OkStatus();
  const absl::Time now = clock_.Now();
  for (const auto& [id, due] : held) {
    if (absl::FromUnixMillis(due) + policy->deadlines().access_retention > now) continue;
    absl::Status st = ReleasePackage(id, v1::PackageReleased::EXPIRED, "", nullptr);
    if (!st.ok() && !absl::IsFailedPrecondition(st)) return st;  // released meanwhile: fine
  }
  return absl::OkStatus();
}

}  // namespace lethe::controlplane
