#include "controlplane/requests.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/status.h"
#include "proto/envelope.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {
namespace {

std::string NewId() { return crypto::Hex(crypto::RandomBytes(16)); }

bool IsTypeName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

absl::Status ValidateIdentities(const policy::Policy& policy,
                                const std::vector<SubjectIdentity>& ids) {
  if (ids.empty()) return absl::InvalidArgumentError("identities: at least one identity is required");
  if (ids.size() > kMaxIdentities)
    return absl::InvalidArgumentError(
        absl::StrCat("identities: at most ", kMaxIdentities, " identities, got ", ids.size()));
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string field = absl::StrCat("identities[", i, "]");
    const auto& id = ids[i];
    if (id.type.empty()) return absl::InvalidArgumentError(field + ".type: empty identity type");
    if (!IsTypeName(id.type))
      return absl::InvalidArgumentError(field + ".type: not an identity type name ([a-z0-9_]+)");
    if (!policy.HasIdentity(id.type))
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".type: unknown identity type \"", id.type, "\" (the policy declares: ",
          absl::StrJoin(policy.identities(), ", "), ")"));
    // Values are personal data: errors describe them, never quote them.
    if (id.value.empty()) return absl::InvalidArgumentError(field + ".value: empty identity value");
    if (id.value.size() > kMaxIdentityValueBytes)
      return absl::InvalidArgumentError(absl::StrCat(field, ".value: longer than ",
                                                     kMaxIdentityValueBytes, " bytes (got ",
                                                     id.value.size(), " bytes)"));
  }
  return absl::OkStatus();
}

}  // namespace

RequestManager::RequestManager(ledger::Ledger& ledger, RequestStore& store, IdentityVault& vault,
                               const policy::Policy& policy,
                               const crypto::Ed25519PrivateKey& signing_key, const Clock& clock,
                               RequestManagerOptions options)
    : ledger_(ledger),
      store_(store),
      vault_(vault),
      policy_(policy),
      key_(signing_key),
      clock_(clock),
      options_(options) {}

absl::Status RequestManager::AppendAndApply(std::vector<v1::LedgerEntry> entries) {
  ASSIGN_OR_RETURN(auto appended, ledger_.Append(std::move(entries), clock_.Now()));
  for (const auto& a : appended) RETURN_IF_ERROR(store_.Apply(a.seq, a.entry));
  return absl::OkStatus();
}

absl::StatusOr<v1::LedgerEntry> RequestManager::MakeCommand(const std::string& request_id,
                                                            const DomainPlan& plan,
                                                            const SecretBytes& key,
                                                            absl::Time now) {
  const std::string command_id = NewId();
  v1::DeleteCommand cmd;
  cmd.set_command_id(command_id);
  cmd.set_request_id(request_id);
  cmd.set_domain(plan.domain);
  for (const auto& id : plan.identities) {
    auto* out = cmd.add_identities();
    out->set_type(id.type);
    out->set_value(std::string(RevealSecret(id.value)));
  }
  cmd.set_domain_policy_hash(plan.domain_policy_hash);
  cmd.set_issued_at_unix_ms(absl::ToUnixMillis(now));
  cmd.set_not_after_unix_ms(absl::ToUnixMillis(now + options_.command_ttl));
  cmd.set_nonce(crypto::RandomBytes(16));
  // The serialized command holds raw identities: keep it in a SecretBytes while it lives.
  std::string raw_body;
  cmd.SerializeToString(&raw_body);
  cmd.Clear();
  SecretBytes body(std::move(raw_body));
  const std::string digest = crypto::Sha256(RevealSecret(body));
  v1::SignedEnvelope env = SignEnvelope(kDeleteCommandType, std::string(RevealSecret(body)), key_);
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
  ASSIGN_OR_RETURN(std::string sealed, crypto::SealAesGcm(key, RevealSecret(wire), ci->command_id()));
  ci->set_sealed_envelope(std::move(sealed));
  ci->set_not_after_unix_ms(absl::ToUnixMillis(now + options_.command_ttl));
  for (const auto& id : plan.identities) ci->add_identity_types(id.type);
  ci->set_domain_policy_hash(plan.domain_policy_hash);
  return e;
}

absl::StatusOr<std::string> RequestManager::SubmitErasure(std::vector<SubjectIdentity> identities,
                                                          std::string reason) {
  RETURN_IF_ERROR(ValidateIdentities(policy_, identities));
  if (reason.size() > kMaxReasonBytes)
    return absl::InvalidArgumentError(
        absl::StrCat("reason: longer than ", kMaxReasonBytes, " bytes (got ", reason.size(), ")"));
  // The same identity given twice is one identity.
  std::vector<SubjectIdentity> unique;
  for (auto& id : identities) {
    bool dup = false;
    for (const auto& u : unique) dup = dup || (u.type == id.type && u.value == id.value);
    if (!dup) unique.push_back(std::move(id));
  }
  ASSIGN_OR_RETURN(ErasurePlan plan, PlanErasure(policy_, unique));

  // No write_mu_ here: a new request depends on no recorded state, so concurrent submissions
  // proceed in parallel and share the ledger's group commit.
  const absl::Time now = clock_.Now();
  const std::string request_id = NewId();
  ASSIGN_OR_RETURN(SecretBytes key, vault_.CreateRequestKey(request_id));
  auto built = [&]() -> absl::StatusOr<std::vector<v1::LedgerEntry>> {
    std::vector<v1::LedgerEntry> entries;
    v1::LedgerEntry submitted;
    auto* s = submitted.mutable_request_submitted();
    s->set_request_id(request_id);
    s->set_kind(v1::RequestSubmitted::ERASURE);
    v1::SealedRequest sealed;
    for (const auto& id : unique) {
      auto* t = s->add_subject();
      t->set_type(id.type);
      t->set_token(vault_.Tokenize(id.type, id.value));
      auto* raw = sealed.add_identities();
      raw->set_type(id.type);
      raw->set_value(std::string(RevealSecret(id.value)));
    }
    sealed.set_reason(reason);
    std::string plain_raw;
    sealed.SerializeToString(&plain_raw);
    sealed.Clear();
    SecretBytes plain(std::move(plain_raw));
    ASSIGN_OR_RETURN(std::string ct, crypto::SealAesGcm(key, RevealSecret(plain), request_id));
    s->set_sealed(std::move(ct));
    s->set_policy_hash(policy_.Hash());
    for (const auto& t : plan.targets) s->add_target_domains(t.domain);
    s->set_received_unix_ms(absl::ToUnixMillis(now));
    s->set_due_unix_ms(absl::ToUnixMillis(now + policy_.deadlines().erasure));
    entries.push_back(std::move(submitted));
    for (const auto& t : plan.targets) {
      ASSIGN_OR_RETURN(v1::LedgerEntry cmd, MakeCommand(request_id, t, key, now));
      entries.push_back(std::move(cmd));
    }
    return entries;
  }();
  absl::Status st = built.ok() ? AppendAndApply(std::move(*built)) : built.status();
  if (!st.ok()) {
    (void)vault_.DestroyRequestKey(request_id);  // nothing was recorded
    return st;
  }
  spdlog::info("request {}: erasure recorded, {} target domain(s)", request_id, plan.targets.size());
  return request_id;
}

absl::StatusOr<AgentRecord> RequestManager::EnrollAgent(const std::string& domain,
                                                        const std::string& pem) {
  if (policy_.FindDomain(domain) == nullptr)
    return absl::InvalidArgumentError("domain: \"" + domain + "\" is not a domain of the active policy");
  auto key = crypto::Ed25519PublicKey::FromPem(pem);
  if (!key.ok())
    return absl::InvalidArgumentError("public_key_pem: " + std::string(key.status().message()));
  std::lock_guard<std::mutex> lock(write_mu_);
  if (store_.AgentKey(domain, key->KeyId()))
    return absl::AlreadyExistsError("public_key_pem: key " + key->KeyId() +
                                    " is already enrolled for domain " + domain);
  v1::LedgerEntry e;
  auto* a = e.mutable_agent_enrolled();
  a->set_domain(domain);
  a->set_public_key(key->raw());
  a->set_key_id(key->KeyId());
  RETURN_IF_ERROR(AppendAndApply({e}));
  for (const auto& rec : store_.Agents())
    if (rec.domain == domain && rec.key_id == key->KeyId()) return rec;
  return absl::InternalError("enrolled agent not found after append");
}

absl::Status RequestManager::RecordReceipt(std::string_view wire) {
  auto reject = [&](absl::Status s) {
    counters_.rejected.fetch_add(1);
    spdlog::warn("receipt rejected: {}", s.ToString());
    return s;
  };
  v1::SignedEnvelope env;
  if (!env.ParseFromArray(wire.data(), static_cast<int>(wire.size())))
    return reject(absl::InvalidArgumentError("receipt: not a SignedEnvelope"));
  if (env.payload_type() != kReceiptType)
    return reject(absl::InvalidArgumentError("receipt: payload_type is not lethe.v1.Receipt"));
  // Read the claimed domain to find its key; nothing is trusted until the signature verifies.
  v1::Receipt claimed;
  if (!claimed.ParseFromString(env.body()))
    return reject(absl::InvalidArgumentError("receipt: body does not parse"));
  auto agent = store_.AgentKey(claimed.domain(), env.key_id());
  if (!agent)
    return reject(absl::PermissionDeniedError("receipt: signed by key " + env.key_id() +
                                              ", which is not enrolled for its domain"));
  auto body = VerifyEnvelope(env, kReceiptType, *agent);
  if (!body.ok()) return reject(body.status());
  const v1::Receipt& receipt = claimed;  // the verified body is these same bytes

  std::lock_guard<std::mutex> lock(write_mu_);
  auto cmd = store_.Command(receipt.command_id());
  if (!cmd) return reject(absl::FailedPreconditionError("receipt: unknown command"));
  if (cmd->request_id != receipt.request_id() || cmd->domain != receipt.domain())
    return reject(absl::PermissionDeniedError("receipt: names another request or domain than its command"));
  if (receipt.command_digest() != cmd->digest)
    return reject(absl::PermissionDeniedError("receipt: made for other command bytes than lethed issued"));
  if (receipt.outcome() != v1::Receipt::COMPLETED && receipt.outcome() != v1::Receipt::FAILED)
    return reject(absl::InvalidArgumentError("receipt: no outcome"));
  if (receipt.outcome() == v1::Receipt::COMPLETED && !receipt.verified_zero_remaining())
    return reject(absl::InvalidArgumentError("receipt: COMPLETED without the zero-remaining check"));
  auto req = store_.Get(receipt.request_id());
  if (!req) return reject(absl::FailedPreconditionError("receipt: unknown request"));
  for (const auto& d : req->domains) {
    if (d.domain == receipt.domain() && d.state != v1::PENDING) {
      counters_.duplicates.fetch_add(1);
      return absl::OkStatus();  // already answered: a redelivery
    }
  }
  v1::LedgerEntry e;
  auto* rr = e.mutable_receipt_recorded();
  *rr->mutable_receipt() = env;
  rr->set_command_id(receipt.command_id());
  rr->set_request_id(receipt.request_id());
  rr->set_domain(receipt.domain());
  RETURN_IF_ERROR(AppendAndApply({e}));
  counters_.recorded.fetch_add(1);
  spdlog::info("request {}: receipt from domain {} ({})", receipt.request_id(), receipt.domain(),
               receipt.outcome() == v1::Receipt::COMPLETED ? "completed" : "failed");
  return Complete(receipt.request_id());
}

absl::Status RequestManager::Complete(const std::string& request_id) {
  auto req = store_.Get(request_id);
  if (!req || req->state != v1::IN_PROGRESS) return absl::OkStatus();
  bool all_ok = true;
  for (const auto& d : req->domains) {
    if (d.state == v1::PENDING) return absl::OkStatus();
    all_ok = all_ok && d.state == v1::DONE;
  }
  v1::LedgerEntry e;
  e.mutable_request_completed()->set_request_id(request_id);
  e.mutable_request_completed()->set_outcome(all_ok ? v1::RequestCompleted::COMPLETED
                                                    : v1::RequestCompleted::FAILED);
  RETURN_IF_ERROR(AppendAndApply({e}));
  // Crypto-shredding: from here on the sealed identities and commands are unreadable.
  RETURN_IF_ERROR(vault_.DestroyRequestKey(request_id));
  spdlog::info("request {}: {}; request key destroyed", request_id, all_ok ? "completed" : "failed");
  return absl::OkStatus();
}

absl::Status RequestManager::ReissueExpiring(absl::Duration margin) {
  std::lock_guard<std::mutex> lock(write_mu_);
  const absl::Time now = clock_.Now();
  std::vector<v1::LedgerEntry> entries;
  for (const auto& p : store_.Pending(now, margin)) {
    if (!p.expiring) continue;
    auto req = store_.Get(p.command.request_id);
    if (!req) continue;
    ASSIGN_OR_RETURN(SecretBytes key, vault_.RequestKey(req->request_id));
    ASSIGN_OR_RETURN(SecretBytes plain,
                     crypto::OpenAesGcm(key, req->submitted.sealed(), req->request_id));
    v1::SealedRequest sealed;
    if (!sealed.ParseFromString(std::string(RevealSecret(plain))))
      return absl::DataLossError("sealed request does not parse");
    DomainPlan plan;
    plan.domain = p.command.domain;
    const policy::Domain* d = policy_.FindDomain(plan.domain);
    if (d == nullptr) continue;
    const auto types = d->IdentityTypes();
    for (const auto& id : sealed.identities()) {
      if (std::find(types.begin(), types.end(), id.type()) != types.end())
        plan.identities.push_back(SubjectIdentity{id.type(), SecretBytes(id.value())});
    }
    sealed.Clear();
    plan.domain_policy_hash = policy_.DomainHash(plan.domain);
    ASSIGN_OR_RETURN(v1::LedgerEntry e, MakeCommand(req->request_id, plan, key, now));
    entries.push_back(std::move(e));
  }
  if (entries.empty()) return absl::OkStatus();
  spdlog::info("re-issuing {} command(s) near expiry", entries.size());
  return AppendAndApply(std::move(entries));
}

absl::StatusOr<std::string> RequestManager::CommandWire(const CommandRecord& command) const {
  ASSIGN_OR_RETURN(SecretBytes key, vault_.RequestKey(command.request_id));
  ASSIGN_OR_RETURN(SecretBytes wire,
                   crypto::OpenAesGcm(key, command.sealed_envelope, command.command_id));
  return std::string(RevealSecret(wire));
}

absl::Status RequestManager::Recover() {
  std::lock_guard<std::mutex> lock(write_mu_);
  for (const auto& id : store_.AnsweredButOpen()) RETURN_IF_ERROR(Complete(id));
  for (const auto& r : store_.List()) {
    if (r.state != v1::IN_PROGRESS && vault_.HasRequestKey(r.request_id)) {
      RETURN_IF_ERROR(vault_.DestroyRequestKey(r.request_id));
      spdlog::info("request {}: destroyed a key left behind by a crash", r.request_id);
    }
  }
  return absl::OkStatus();
}

}  // namespace lethe::controlplane
