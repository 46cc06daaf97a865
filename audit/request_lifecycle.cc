#include "audit/request_lifecycle.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status.h"
#include "proto/envelope.h"
#include "proto/receipt_tables.h"

namespace lethe::audit {
namespace {

absl::Status Contradicts(std::string_view why) { return absl::FailedPreconditionError(Av(why)); }
absl::Status Malformed(std::string_view why) { return absl::InvalidArgumentError(Av(why)); }
std::string HashPrefix(const std::string& hash) { return crypto::Hex(hash).substr(0, 16); }

}  // namespace

std::vector<v1::SinkResult> PolicySinks(const policies::Policy& policy, const std::string& domain) {
  std::vector<v1::SinkResult> out;
  const policies::Domain* d = policy.FindDomain(domain);
  if (d == nullptr) return out;
  for (const policies::KafkaTopic& topic : d->kafka_topics) {
    for (const policies::Sink& sk : topic.sinks) {
      v1::SinkResult& r = out.emplace_back();
      r.set_topic(topic.topic);
      r.set_name(sk.name);
      r.set_kind(policies::Sink::KindName(sk.kind));
      r.set_deletes_on_tombstone(sk.deletes_on_tombstone);
      if (!sk.covered_by_bucket.empty()) r.set_covered_by("s3 bucket " + sk.covered_by_bucket);
      if (!sk.covered_by_table.empty()) r.set_covered_by("table " + sk.covered_by_table);
    }
  }
  return out;
}

std::vector<std::string> ReceiptGaps(const v1::Receipt& receipt) {
  std::vector<std::string> out;
  for (const auto& sk : receipt.sinks())
    if (!sk.deletes_on_tombstone() && sk.covered_by().empty())
      out.push_back(absl::StrCat("sink ", sk.name(), " (", sk.kind(), ") of topic ", sk.topic()));
  return out;
}

std::vector<const v1::TableResult*> TablesToVacuum(const v1::Receipt& receipt) {
  std::vector<const v1::TableResult*> out;
  if (receipt.outcome() != v1::Receipt::COMPLETED || receipt.part_chunks() != 0) return out;
  for (const auto& t : receipt.tables())
    if (proto::LeftDeadTuples(t)) out.push_back(&t);
  return out;
}

namespace {
// V4: the shape of a PHYSICALLY_PURGED receipt, on its own.
absl::Status CheckPhysicalShape(const v1::Receipt& receipt) {
  if (receipt.tombstones_size() > 0 || receipt.s3_size() > 0 || receipt.sinks_size() > 0 ||
      !receipt.part_sha256().empty() || !receipt.part_sealed_sha256().empty() || receipt.part_chunks() != 0 ||
      !receipt.error().empty() || receipt.verified_zero_remaining())
    return absl::InvalidArgumentError(
        "PHYSICALLY_PURGED receipt carries more than its tables' vacuums (tombstones, S3, sinks, a part, an "
        "error or the re-check)");
  if (receipt.tables_size() == 0) return absl::InvalidArgumentError("PHYSICALLY_PURGED receipt names no table");
  int64_t latest = 0;
  for (const auto& t : receipt.tables()) {
    if (t.vacuum() != "vacuum" && t.vacuum() != "vacuum full" && t.vacuum() != "observed")
      return absl::InvalidArgumentError("PHYSICALLY_PURGED receipt: table " + Quote(t.table(), 64) +
                                        " has no known vacuum (vacuum, vacuum full or observed)");
    if (t.vacuumed_unix_ms() <= 0)
      return absl::InvalidArgumentError("PHYSICALLY_PURGED receipt: table " + Quote(t.table(), 64) +
                                        " has no vacuum time");
    if (t.rows_affected() != 0 || t.rows_remaining() != 0 || t.rows_withheld() != 0 || t.rows_near_match() != 0 ||
        t.rows_exported() != 0 || !t.basis().empty() || t.retention_period_seconds() != 0 || t.columns_size() != 0)
      return absl::InvalidArgumentError("PHYSICALLY_PURGED receipt: table " + Quote(t.table(), 64) +
                                        " reports rows");
    latest = std::max(latest, t.vacuumed_unix_ms());
  }
  if (receipt.physically_gone_by_unix_ms() != latest)
    return absl::InvalidArgumentError(
        "PHYSICALLY_PURGED receipt: physically_gone_by_unix_ms is not its latest vacuum time");
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<v1::Receipt> CheckRecordedReceipt(const v1::ReceiptRecorded& rr,
                                                 const crypto::Ed25519PublicKey& agent_key,
                                                 std::string_view command_digest, bool refusal_allowed,
                                                 bool verify_signature, bool access) {
  absl::StatusOr<std::string> body = rr.receipt().body();
  if (verify_signature) {
    body = proto::VerifyEnvelope(rr.receipt(), proto::kReceiptType, agent_key);
    if (!body.ok()) return absl::PermissionDeniedError("receipt signature: " + body.status().ToString());
  } else if (rr.receipt().payload_type() != proto::kReceiptType || rr.receipt().key_id() != agent_key.KeyId()) {
    return absl::PermissionDeniedError("receipt envelope is not a receipt signed by its agent's key");
  }
  v1::Receipt receipt;
  if (!receipt.ParseFromString(*body)) return absl::InvalidArgumentError("signed receipt does not parse");
  if (receipt.command_id() != rr.command_id() || receipt.request_id() != rr.request_id() ||
      receipt.domain() != rr.domain())
    return absl::PermissionDeniedError("signed receipt names another command, request or domain");
  if (receipt.command_digest() != command_digest)
    return absl::PermissionDeniedError("receipt was made for different command bytes than lethed issued");
  const bool refusal = refusal_allowed && receipt.outcome() == v1::Receipt::REJECTED;
  const bool physical = receipt.outcome() == v1::Receipt::PHYSICALLY_PURGED;
  if (receipt.outcome() != v1::Receipt::COMPLETED && receipt.outcome() != v1::Receipt::FAILED && !refusal &&
      !physical)
    return absl::InvalidArgumentError("receipt has no outcome");
  if (physical && access) return absl::InvalidArgumentError("access receipt reports a physical purge");
  if (physical) {
    LETHE_RETURN_IF_ERROR(CheckPhysicalShape(receipt));
    return receipt;
  }
  if (receipt.physically_gone_by_unix_ms() != 0)
    return absl::InvalidArgumentError("receipt other than PHYSICALLY_PURGED carries physically_gone_by_unix_ms");
  for (const auto& t : receipt.tables())
    if (!t.vacuum().empty() || t.vacuumed_unix_ms() != 0)
      return absl::InvalidArgumentError("receipt other than PHYSICALLY_PURGED reports a vacuum of table " +
                                        Quote(t.table(), 64));
  if (access) {
    // An access command reads: whatever its outcome, its receipt may report no purge.
    if (receipt.tombstones_size() > 0) return absl::InvalidArgumentError("access receipt reports tombstones");
    if (receipt.s3_size() > 0) return absl::InvalidArgumentError("access receipt reports S3 buckets");
    if (receipt.sinks_size() > 0) return absl::InvalidArgumentError("access receipt reports sinks");
    for (const auto& t : receipt.tables())
      if (t.rows_affected() != 0 || t.rows_remaining() != 0)
        return absl::InvalidArgumentError("access receipt reports rows changed or remaining in " +
                                          Quote(t.table(), 64));
    if (receipt.outcome() == v1::Receipt::COMPLETED &&
        (receipt.part_sha256().size() != 32 || receipt.part_sealed_sha256().size() != 32 ||
         receipt.part_chunks() == 0))
      return absl::InvalidArgumentError("COMPLETED access receipt without its part's digests");
    return receipt;
  }
  if (receipt.outcome() == v1::Receipt::COMPLETED && !receipt.verified_zero_remaining())
    return absl::InvalidArgumentError("COMPLETED receipt without the zero-remaining check");
  if (receipt.outcome() == v1::Receipt::COMPLETED) {
    for (const auto& b : receipt.s3())
      if (b.objects_remaining() != 0 || b.lines_remaining() != 0)
        return absl::InvalidArgumentError("COMPLETED receipt with objects or lines remaining in S3 bucket " +
                                          Quote(b.bucket(), 64));
  }
  if (!receipt.part_sha256().empty() || !receipt.part_sealed_sha256().empty())
    return absl::InvalidArgumentError("erasure receipt carries a part");
  return receipt;
}

absl::StatusOr<crypto::Ed25519PublicKey> RequestLifecycle::DecodeAgentKey(const std::string& raw) const {
  if (auto it = decoded_keys_.find(raw); it != decoded_keys_.end()) return it->second;
  LETHE_ASSIGN_OR_RETURN(crypto::Ed25519PublicKey key, crypto::Ed25519PublicKey::FromRaw(raw));
  decoded_keys_.emplace(raw, key);
  return key;
}

std::string RequestLifecycle::ConsentKey(const v1::ConsentChanged& c) {
  return absl::StrCat(c.subject().type(), "/", crypto::Hex(c.subject().token()), "/", c.purpose());
}

std::shared_ptr<const policies::Policy> RequestLifecycle::PolicyFor(const std::string& hash) const {
  if (scope_ == LifecycleScope::kWholeLog) return hash == active_policy_hash_ ? active_policy_ : nullptr;
  auto it = policies_.find(hash);
  return it == policies_.end() ? nullptr : it->second;
}

absl::StatusOr<std::shared_ptr<const policies::Policy>> RequestLifecycle::ParseActivated(
    const v1::PolicyActivated& pa) const {
  if (parsed_ && parsed_hash_ == pa.policy_hash()) return parsed_;
  auto parsed = policies::Policy::Parse(pa.policy_yaml(), "<policy>");
  if (!parsed.ok()) return Malformed("activated policy does not validate");
  if (parsed->Hash() != pa.policy_hash()) return Malformed("activated policy does not hash to its policy_hash");
  parsed_ = std::make_shared<const policies::Policy>(std::move(*parsed));
  parsed_hash_ = pa.policy_hash();
  return parsed_;
}

// Something the entries should hold and do not: in a whole log a contradiction, in the
// entries of one request (kNotFound) an incomplete set.
absl::Status RequestLifecycle::Missing(absl::Status whole_log) const {
  if (scope_ == LifecycleScope::kOneRequest) return absl::NotFoundError(whole_log.message());
  return whole_log;
}

absl::Status RequestLifecycle::CheckActivation(const v1::PolicyActivated& pa) const {
  if (scope_ == LifecycleScope::kWholeLog && pa.activation() != activations_ + 1)
    return Contradicts(absl::StrCat("policy activation ", pa.activation(), " follows activation ", activations_));
  return ParseActivated(pa).status();
}

absl::Status RequestLifecycle::NoOpenRequest(std::string_view request_id, std::string_view if_ended,
                                             std::string_view otherwise) const {
  LETHE_ASSIGN_OR_RETURN(const bool ended, ended_ids().RequestEnded(IdDigest(request_id)));
  return Contradicts(ended ? if_ended : otherwise);
}

absl::Status RequestLifecycle::CheckSubmitted(const v1::RequestSubmitted& r) const {
  if (requests_.count(r.request_id())) return Contradicts("request id submitted twice");
  LETHE_ASSIGN_OR_RETURN(const bool ended, ended_ids().RequestEnded(IdDigest(r.request_id())));
  if (ended) return Contradicts("request id submitted twice");
  if (r.kind() != v1::RequestSubmitted::ERASURE && r.kind() != v1::RequestSubmitted::ACCESS)
    return Malformed("request has no known kind");
  if (r.kind() == v1::RequestSubmitted::ACCESS && !r.consent_change_id().empty())
    return Malformed("an access request names a consent change");
  if (r.target_domains().empty() && r.needs_identity().empty())
    return Malformed("request has no domain in scope");
  for (const auto& t : r.subject())
    if (t.token().size() != 32) return Malformed("identity token is not 32 bytes");
  std::set<std::string> targets(r.target_domains().begin(), r.target_domains().end());
  for (const auto& n : r.needs_identity())
    if (targets.count(n.domain())) return Malformed("domain both targeted and waiting for an identity");
  if (!r.consent_change_id().empty()) {
    auto c = consent_plans_.find(r.consent_change_id());
    if (c == consent_plans_.end() || c->second.request_id != r.request_id())
      return Missing(Contradicts("request names a consent change that did not plan it"));
    if (c->second.purpose != r.scope_purpose())
      return Contradicts("request's scope purpose differs from its consent change's purpose");
  }
  std::shared_ptr<const policies::Policy> policy = PolicyFor(r.policy_hash());
  if (policy == nullptr) {
    if (scope_ == LifecycleScope::kOneRequest)
      return absl::NotFoundError("the activation of the policy request " + r.request_id() +
                                 " was planned with is not among the entries");
    if (!active_policy_)
      return Contradicts("request " + r.request_id() + " submitted before any policy was activated");
    return Contradicts("request " + r.request_id() + " was planned with policy " + HashPrefix(r.policy_hash()) +
                       ", not the active policy " + HashPrefix(active_policy_hash_));
  }
  return CheckPlan(r, *policy);
}

// The request's targets and waiting domains must be exactly the scope the policy gives its
// identity types (and purpose, when a consent withdrawal planned it).
absl::Status RequestLifecycle::CheckPlan(const v1::RequestSubmitted& r, const policies::Policy& policy) const {
  std::set<std::string> targets(r.target_domains().begin(), r.target_domains().end());
  std::map<std::string, std::vector<std::string>> waiting;
  for (const auto& n : r.needs_identity())
    waiting[n.domain()] = {n.identity_types().begin(), n.identity_types().end()};
  std::set<std::string> types;
  for (const auto& t : r.subject()) types.insert(t.type());
  std::vector<std::string> scope;
  if (!r.scope_purpose().empty()) {
    const policies::Purpose* purpose = nullptr;
    for (const auto& p : policy.purposes())
      if (p.name == r.scope_purpose()) purpose = &p;
    if (purpose == nullptr)
      return Contradicts("request " + r.request_id() + " is scoped to purpose " + Quote(r.scope_purpose()) +
                         ", which its policy does not declare");
    scope = purpose->domains;
    if (scope.empty()) return Contradicts("request " + r.request_id() + ": its purpose names no domain");
  }
  const std::vector<std::string> have(types.begin(), types.end());
  std::set<std::string> in_scope;
  for (const auto& d : policy.ErasureScope(have, scope)) {
    in_scope.insert(d.domain);
    if (d.missing_types.empty()) {
      if (!targets.count(d.domain))
        return Contradicts("request " + r.request_id() + ": plan drops domain " + d.domain +
                           ", which the policy puts in scope and the request's identities reach");
    } else {
      auto w = waiting.find(d.domain);
      if (w == waiting.end())
        return Contradicts("request " + r.request_id() + ": plan drops domain " + d.domain +
                           ", which the policy puts in scope (it needs an identity the request lacks)");
      if (w->second != d.missing_types)
        return Contradicts("request " + r.request_id() + ": domain " + d.domain +
                           " is recorded as needing other identity types than the policy says");
    }
  }
  for (const auto& d : targets)
    if (!in_scope.count(d))
      return Contradicts("request " + r.request_id() + ": plan adds domain " + Quote(d) +
                         ", which the policy does not put in scope");
  for (const auto& [d, t] : waiting)
    if (!in_scope.count(d))
      return Contradicts("request " + r.request_id() + ": plan adds waiting domain " + Quote(d) +
                         ", which the policy does not put in scope");
  return absl::OkStatus();
}

absl::Status RequestLifecycle::CheckReceipt(const v1::ReceiptRecorded& rr, bool refusal_allowed,
                                            v1::Receipt* verified) const {
  return CheckReceiptImpl(rr, refusal_allowed, verified, /*verify_signature=*/true);
}

absl::StatusOr<VerifiedReceiptEnvelope> RequestLifecycle::VerifyReceiptEnvelope(
    const v1::SignedEnvelope& env, const crypto::Ed25519PublicKey& key) {
  LETHE_ASSIGN_OR_RETURN(std::string body, proto::VerifyEnvelope(env, proto::kReceiptType, key));
  return VerifiedReceiptEnvelope(key.raw(), env.payload_type(), std::move(body), env.signature());
}

void RequestLifecycle::RememberVerified(const VerifiedReceiptEnvelope& v) const {
  last_verified_ = VerifiedEnvelope{v.key_raw_, v.payload_type_, v.body_, v.signature_};
}

absl::Status RequestLifecycle::CheckReceiptImpl(const v1::ReceiptRecorded& rr, bool refusal_allowed,
                                                v1::Receipt* verified, bool verify_signature) const {
  const Command* command = nullptr;
  std::optional<AwaitingVacuum> parked;
  if (auto it = commands_.find(rr.command_id()); it != commands_.end()) {
    command = &it->second;
  } else if (auto a = awaiting_vacuum_.find(rr.command_id()); a != awaiting_vacuum_.end()) {
    command = &a->second.command;  // its request has ended; only its PHYSICALLY_PURGED receipt is news
  } else {
    if (vacuum_waits_ != nullptr) {
      LETHE_ASSIGN_OR_RETURN(parked, ParkedAwaiting(rr.command_id()));
      if (parked) command = &parked->command;  // as above, kept on disk
    }
    if (command == nullptr) {
      LETHE_ASSIGN_OR_RETURN(const bool spent, ended_ids().CommandEnded(IdDigest(rr.command_id())));
      if (spent) return absl::AlreadyExistsError("receipt for a command of a request that has ended");
      return Missing(Contradicts("receipt for an unknown command"));
    }
  }
  if (command->request_id != rr.request_id() || command->domain != rr.domain())
    return absl::PermissionDeniedError("receipt does not match its command's request and domain");
  // The enrolled key of that domain the envelope names.
  const AgentKey* agent = nullptr;
  auto [lo, hi] = agent_keys_.equal_range(rr.domain());
  for (auto i = lo; i != hi; ++i)
    if (i->second.key.KeyId() == rr.receipt().key_id()) agent = &i->second;
  if (agent == nullptr)
    return Missing(absl::PermissionDeniedError("receipt signed by a key not enrolled for domain " + rr.domain()));
  if (agent->revoked)
    return absl::PermissionDeniedError("receipt signed by agent key " + Quote(rr.receipt().key_id()) +
                                       ", which was revoked before the receipt was recorded");
  const v1::SignedEnvelope& env = rr.receipt();
  const bool seen = last_verified_.has_value() && last_verified_->key_raw == agent->key.raw() &&
                    last_verified_->signature == env.signature() && last_verified_->body == env.body() &&
                    last_verified_->payload_type == env.payload_type();
  const bool verify = verify_signature && !seen;
  LETHE_ASSIGN_OR_RETURN(v1::Receipt receipt,
                         CheckRecordedReceipt(rr, agent->key, command->digest, refusal_allowed, verify,
                                              command->access));
  if (verify) last_verified_ = VerifiedEnvelope{agent->key.raw(), env.payload_type(), env.body(), env.signature()};
  if (receipt.outcome() == v1::Receipt::PHYSICALLY_PURGED) {
    LETHE_RETURN_IF_ERROR(CheckPhysical(rr.command_id(), receipt, parked ? &*parked : nullptr));
    if (verified != nullptr) *verified = std::move(receipt);
    return absl::OkStatus();
  }
  if (!commands_.contains(rr.command_id()))
    return absl::AlreadyExistsError("receipt for a command of a request that has ended");
  // T16: an erasure receipt lists exactly the sinks of its domain's section in the policy its
  // command carried (leaving one out would hide a gap).
  if (!command->access && receipt.outcome() == v1::Receipt::COMPLETED && command->policy) {
    const std::vector<v1::SinkResult> want = PolicySinks(*command->policy, rr.domain());
    bool same = static_cast<size_t>(receipt.sinks_size()) == want.size();
    for (size_t i = 0; same && i < want.size(); ++i) {
      const v1::SinkResult& got = receipt.sinks(static_cast<int>(i));
      same = got.topic() == want[i].topic() && got.name() == want[i].name() && got.kind() == want[i].kind() &&
             got.deletes_on_tombstone() == want[i].deletes_on_tombstone() && got.covered_by() == want[i].covered_by();
    }
    if (!same)
      return absl::InvalidArgumentError("receipt's sinks differ from those of domain " + rr.domain() +
                                        " in the policy its command carried");
  }
  // Authentic and bound to its command: now whether it is news.
  if (receipted_commands_.count(rr.command_id())) return absl::AlreadyExistsError("second receipt for a command");
  auto req = requests_.find(rr.request_id());
  if (req != requests_.end() && req->second.answered.count(rr.domain()))
    return absl::AlreadyExistsError("second receipt from domain " + rr.domain() + " for request " + rr.request_id() +
                                    " (the first receipt recorded for a domain decides its outcome)");
  if (verified != nullptr) *verified = std::move(receipt);
  return absl::OkStatus();
}

void RequestLifecycle::UseVacuumWaits(VacuumWaits* waits) {
  vacuum_waits_ = waits;
  if (waits == nullptr) return;
  for (auto it = awaiting_vacuum_.begin(); it != awaiting_vacuum_.end();) {
    if (commands_.contains(it->first)) {
      ++it;  // its request is open
      continue;
    }
    waits->Await(IdDigest(it->first), it->second.receipt_seq);
    awaiting_vacuum_.erase(it++);
  }
}

absl::StatusOr<std::optional<RequestLifecycle::AwaitingVacuum>> RequestLifecycle::ParkedAwaiting(
    const std::string& command_id) const {
  LETHE_ASSIGN_OR_RETURN(const std::optional<uint64_t> seq, vacuum_waits_->Find(IdDigest(command_id)));
  if (!seq) return std::nullopt;
  LETHE_ASSIGN_OR_RETURN(const v1::LedgerEntry e, vacuum_waits_->Read(*seq));
  v1::Receipt receipt;
  if (e.body_case() != v1::LedgerEntry::kReceiptRecorded || e.receipt_recorded().command_id() != command_id ||
      !receipt.ParseFromString(e.receipt_recorded().receipt().body()) ||
      receipt.outcome() != v1::Receipt::COMPLETED)
    return absl::DataLossError(absl::StrCat("ledger entry ", *seq, ", remembered as the COMPLETED receipt of command ",
                                            Quote(command_id, 16), " awaiting a vacuum, is not that receipt"));
  const v1::ReceiptRecorded& rr = e.receipt_recorded();
  AwaitingVacuum a;
  // The COMPLETED receipt was bound to its command (digest, request, domain) when recorded.
  a.command = Command{rr.request_id(), rr.domain(), receipt.command_digest(), false, nullptr};
  for (const v1::TableResult* t : TablesToVacuum(receipt)) a.tables.emplace_back(t->table(), t->action());
  a.completed_unix_ms = receipt.completed_at_unix_ms();
  a.receipt_seq = *seq;
  return std::optional<AwaitingVacuum>(std::move(a));
}

absl::Status RequestLifecycle::CheckPhysical(const std::string& command_id, const v1::Receipt& receipt,
                                             const AwaitingVacuum* parked) const {
  const AwaitingVacuum* want = parked;
  if (want == nullptr)
    if (auto a = awaiting_vacuum_.find(command_id); a != awaiting_vacuum_.end()) want = &a->second;
  if (want == nullptr) {
    if (vacuumed_commands_.contains(command_id))
      return absl::AlreadyExistsError("second PHYSICALLY_PURGED receipt for a command");
    if (!commands_.contains(command_id))  // ended, and nothing awaited a vacuum
      return absl::AlreadyExistsError("PHYSICALLY_PURGED receipt for a command with no vacuum awaited");
    if (!receipted_commands_.contains(command_id))
      return Missing(Contradicts("PHYSICALLY_PURGED receipt before its command's COMPLETED receipt"));
    return Contradicts("PHYSICALLY_PURGED receipt for a command whose receipt left no dead rows to vacuum");
  }
  bool same = static_cast<size_t>(receipt.tables_size()) == want->tables.size();
  for (size_t i = 0; same && i < want->tables.size(); ++i) {
    const v1::TableResult& t = receipt.tables(static_cast<int>(i));
    same = t.table() == want->tables[i].first && t.action() == want->tables[i].second;
  }
  if (!same)
    return Contradicts(
        "PHYSICALLY_PURGED receipt's tables are not the tables its COMPLETED receipt deleted or rewrote rows in");
  for (const auto& t : receipt.tables())
    if (t.vacuumed_unix_ms() < want->completed_unix_ms)
      return Contradicts("PHYSICALLY_PURGED receipt: table " + Quote(t.table(), 64) +
                         " was vacuumed before the purge committed");
  if (receipt.completed_at_unix_ms() < receipt.physically_gone_by_unix_ms())
    return Contradicts("PHYSICALLY_PURGED receipt signed before its last vacuum");
  return absl::OkStatus();
}

absl::Status RequestLifecycle::CheckConsent(const v1::ConsentChanged& c) const {
  if (c.subject().token().size() != 32) return Malformed("consent subject token is not 32 bytes");
  if (c.status() != v1::GRANTED && c.status() != v1::WITHDRAWN) return Malformed("consent change has no status");
  if (c.purpose().empty()) return Malformed("consent change names no purpose");
  if (scope_ == LifecycleScope::kOneRequest) {
    // Shown only as the cause of the request: a withdrawal that planned it.
    if (c.status() != v1::WITHDRAWN || c.erasure_request_id().empty())
      return Contradicts("a consent change in a certificate must be the withdrawal that planned its request");
    return absl::OkStatus();
  }
  if (!active_policy_) return Contradicts("consent change before any policy was activated");
  if (c.policy_hash() != active_policy_hash_)
    return Contradicts("consent change recorded under policy " + HashPrefix(c.policy_hash()) +
                       ", not the active policy " + HashPrefix(active_policy_hash_));
  const policies::Purpose* purpose = nullptr;
  for (const auto& p : active_policy_->purposes())
    if (p.name == c.purpose()) purpose = &p;
  if (purpose == nullptr)
    return Contradicts("consent change for purpose " + Quote(c.purpose()) +
                       ", which the active policy does not declare");
  // A withdrawal of an erase-on-withdrawal purpose plans an erasure exactly when the
  // subject's consent to it was not already withdrawn; nothing else plans one.
  auto last = consent_status_.find(ConsentKey(c));
  const bool already_withdrawn = last != consent_status_.end() && last->second == v1::WITHDRAWN;
  const bool must_plan = c.status() == v1::WITHDRAWN && purpose->erase_on_withdrawal && !already_withdrawn;
  if (must_plan && c.erasure_request_id().empty())
    return Contradicts("withdrawal of consent to " + Quote(c.purpose()) +
                       ", an erase_on_withdrawal purpose, planned no erasure");
  if (!must_plan && !c.erasure_request_id().empty())
    return Contradicts(c.status() != v1::WITHDRAWN ? "a consent grant planned an erasure"
                       : !purpose->erase_on_withdrawal
                           ? "withdrawal of a purpose without erase_on_withdrawal planned an erasure"
                           : "a second withdrawal in a row planned another erasure");
  return absl::OkStatus();
}

absl::Status RequestLifecycle::Check(const v1::LedgerEntry& e, v1::Receipt* verified_receipt) const {
  using E = v1::LedgerEntry;
  switch (e.body_case()) {
    case E::kLogCreated:
    case E::BODY_NOT_SET:
      return absl::OkStatus();  // the auditor's business (entry 0)
    case E::kAgentEnrolled: {
      auto k = DecodeAgentKey(e.agent_enrolled().public_key());
      if (!k.ok()) return Malformed("AgentEnrolled holds no valid Ed25519 key");
      if (k->KeyId() != e.agent_enrolled().key_id()) return Malformed("AgentEnrolled key_id mismatch");
      auto [lo, hi] = agent_keys_.equal_range(e.agent_enrolled().domain());
      for (auto i = lo; i != hi; ++i)
        if (i->second.key.KeyId() == k->KeyId()) return Contradicts("agent key enrolled twice for one domain");
      return absl::OkStatus();
    }
    case E::kAgentKeyRevoked: {
      const auto& r = e.agent_key_revoked();
      const AgentKey* found = nullptr;
      auto [lo, hi] = agent_keys_.equal_range(r.domain());
      for (auto i = lo; i != hi; ++i)
        if (i->second.key.KeyId() == r.key_id()) found = &i->second;
      if (found == nullptr) return Contradicts("revocation of a key that was never enrolled for its domain");
      if (found->revoked) return Contradicts("agent key revoked twice");
      return absl::OkStatus();
    }
    case E::kRequestSubmitted:
      return CheckSubmitted(e.request_submitted());
    case E::kCommandIssued: {
      const auto& c = e.command_issued();
      auto it = requests_.find(c.request_id());
      if (it == requests_.end())
        return NoOpenRequest(c.request_id(), "command issued after the request completed",
                             "command for an unknown request");
      if (!it->second.targets.count(c.domain())) return Contradicts("command for a domain outside the plan");
      if (commands_.count(c.command_id())) return Contradicts("command id issued twice");
      LETHE_ASSIGN_OR_RETURN(const bool spent, ended_ids().CommandEnded(IdDigest(c.command_id())));
      if (spent) return Contradicts("command id issued twice");
      if (c.command_digest().size() != 32) return Malformed("command digest is not 32 bytes");
      // Whole log: the policy active when the command is issued (a re-issued command is
      // signed anew); one request: the policy it was planned with.
      const policies::Policy& policy =
          scope_ == LifecycleScope::kWholeLog ? *active_policy_ : *it->second.policy;
      if (c.domain_policy_hash() != policy.DomainHash(c.domain()))
        return Contradicts("command carries domain_policy_hash " + HashPrefix(c.domain_policy_hash()) +
                           ", not the domain hash of domain " + c.domain() + " in the active policy");
      return absl::OkStatus();
    }
    case E::kReceiptRecorded:
      return CheckReceiptImpl(e.receipt_recorded(), /*refusal_allowed=*/false, verified_receipt,
                              /*verify_signature=*/e.seq() >= trusted_below_);
    case E::kRequestCompleted: {
      const auto& c = e.request_completed();
      auto it = requests_.find(c.request_id());
      if (it == requests_.end())
        return NoOpenRequest(c.request_id(), "request completed twice", "completion of an unknown request");
      const Request& r = it->second;
      if (!r.waiting.empty())
        return Contradicts("request completed while domain " + r.waiting.begin()->first +
                           " still needed an identity");
      bool all_ok = true, gaps = false;
      for (const auto& d : r.targets) {
        auto a = r.answered.find(d);
        if (a == r.answered.end())
          return Missing(Contradicts("request completed without a receipt from domain " + d));
        all_ok = all_ok && a->second;
        gaps = gaps || r.gapped.count(d) > 0;
      }
      const auto want = !all_ok ? v1::RequestCompleted::FAILED
                        : gaps  ? v1::RequestCompleted::DONE_WITH_GAPS
                                : v1::RequestCompleted::COMPLETED;
      if (c.outcome() != want) return Contradicts("completion outcome contradicts the receipts");
      return absl::OkStatus();
    }
    case E::kIdentitiesAdded: {
      const auto& a = e.identities_added();
      auto it = requests_.find(a.request_id());
      if (it == requests_.end())
        return NoOpenRequest(a.request_id(), "identities added after the request completed",
                             "identities added to an unknown request");
      const Request& req = it->second;
      std::set<std::string> types = req.identity_types;
      for (const auto& t : a.subject()) {
        if (t.token().size() != 32) return Malformed("identity token is not 32 bytes");
        types.insert(t.type());
      }
      if (a.target_domains().empty()) return Malformed("identities added for no domain");
      auto waiting = req.waiting;
      for (const auto& d : a.target_domains())
        if (!waiting.erase(d))
          return Contradicts("identities added for domain " + d + ", which did not wait for one");
      // The plan: every waiting domain that now has all its identity types must be targeted.
      for (const auto& [domain, needed] : waiting) {
        bool complete = true;
        for (const auto& t : needed) complete = complete && types.count(t) > 0;
        if (complete)
          return Contradicts("request " + a.request_id() + ": plan drops domain " + domain +
                             ", whose identity types the added identities complete");
      }
      return absl::OkStatus();
    }
    case E::kDeadlineExtended: {
      const auto& x = e.deadline_extended();
      auto it = requests_.find(x.request_id());
      if (it == requests_.end())
        return NoOpenRequest(x.request_id(), "extension of a request that had completed",
                             "extension of an unknown request");
      const Request& r = it->second;
      if (x.extension_seconds() <= 0) return Malformed("extension is not positive");
      const int64_t max = absl::ToInt64Seconds(r.policy->deadlines().max_extension);
      if (r.extended_seconds + x.extension_seconds() > max)
        return Contradicts(absl::StrCat("extensions add up to ", r.extended_seconds + x.extension_seconds(),
                                        " s, beyond the policy's max_extension of ", max, " s"));
      if (x.new_due_unix_ms() != r.due_unix_ms + x.extension_seconds() * 1000)
        return Contradicts("extended due date is not the previous due date plus the extension");
      return absl::OkStatus();
    }
    case E::kPolicyActivated:
      return CheckActivation(e.policy_activated());
    case E::kConsentChanged:
      return CheckConsent(e.consent_changed());
    case E::kPackageReleased: {
      const auto& p = e.package_released();
      if (p.reason() != v1::PackageReleased::EXPORTED && p.reason() != v1::PackageReleased::EXPIRED)
        return Malformed("package release has no reason");
      if (p.reason() == v1::PackageReleased::EXPORTED && p.package_sha256().size() != 32)
        return Malformed("exported package's digest is not 32 bytes");
      if (!unreleased_packages_.contains(p.request_id())) {
        if (scope_ == LifecycleScope::kOneRequest && !requests_.count(p.request_id()))
          return Missing(Contradicts("package release of a request the entries do not complete"));
        return Contradicts("package release of " + Quote(p.request_id(), 32) +
                           ", which is no completed access request with a package held");
      }
      return absl::OkStatus();
    }
  }
  return Malformed("unknown entry kind");
}

void RequestLifecycle::Apply(const v1::LedgerEntry& e) {
  using E = v1::LedgerEntry;
  switch (e.body_case()) {
    case E::kLogCreated:
    case E::BODY_NOT_SET:
      return;
    case E::kAgentEnrolled: {
      auto k = DecodeAgentKey(e.agent_enrolled().public_key());
      if (k.ok()) agent_keys_.emplace(e.agent_enrolled().domain(), AgentKey{*std::move(k), false});
      return;
    }
    case E::kAgentKeyRevoked: {
      auto [lo, hi] = agent_keys_.equal_range(e.agent_key_revoked().domain());
      for (auto i = lo; i != hi; ++i)
        if (i->second.key.KeyId() == e.agent_key_revoked().key_id()) i->second.revoked = true;
      return;
    }
    case E::kRequestSubmitted: {
      const auto& r = e.request_submitted();
      Request req;
      req.targets.insert(r.target_domains().begin(), r.target_domains().end());
      for (const auto& n : r.needs_identity())
        req.waiting[n.domain()] = {n.identity_types().begin(), n.identity_types().end()};
      for (const auto& t : r.subject()) req.identity_types.insert(t.type());
      req.policy = PolicyFor(r.policy_hash());
      req.due_unix_ms = r.due_unix_ms();
      req.access = r.kind() == v1::RequestSubmitted::ACCESS;
      if (!r.consent_change_id().empty()) consent_plans_.erase(r.consent_change_id());
      requests_[r.request_id()] = std::move(req);
      return;
    }
    case E::kCommandIssued: {
      const auto& c = e.command_issued();
      Request& r = requests_[c.request_id()];
      r.commanded.insert(c.domain());
      r.command_ids.push_back(c.command_id());
      commands_[c.command_id()] = Command{c.request_id(), c.domain(), c.command_digest(), r.access,
                                          scope_ == LifecycleScope::kWholeLog ? active_policy_ : r.policy};
      return;
    }
    case E::kReceiptRecorded: {
      const auto& rr = e.receipt_recorded();
      v1::Receipt receipt;
      // The signature was checked by Check; only the outcome is read here.
      (void)receipt.ParseFromString(rr.receipt().body());
      if (receipt.outcome() == v1::Receipt::PHYSICALLY_PURGED) {
        awaiting_vacuum_.erase(rr.command_id());
        if (commands_.contains(rr.command_id())) {
          vacuumed_commands_.insert(rr.command_id());
        } else if (vacuum_waits_ != nullptr) {
          vacuum_waits_->Done(IdDigest(rr.command_id()));  // its request has ended
        }
        return;
      }
      receipted_commands_.insert(rr.command_id());
      if (auto c = commands_.find(rr.command_id()); c != commands_.end() && !c->second.access) {
        std::vector<const v1::TableResult*> dead = TablesToVacuum(receipt);
        if (!dead.empty()) {
          AwaitingVacuum& w = awaiting_vacuum_[rr.command_id()];
          w.command = c->second;
          w.command.policy = nullptr;  // not needed to check the vacuum; not kept alive for it
          for (const v1::TableResult* t : dead) w.tables.emplace_back(t->table(), t->action());
          w.completed_unix_ms = receipt.completed_at_unix_ms();
          w.receipt_seq = e.seq();
        }
      }
      Request& r = requests_[rr.request_id()];
      r.answered[rr.domain()] = receipt.outcome() == v1::Receipt::COMPLETED;
      if (receipt.outcome() == v1::Receipt::COMPLETED && !ReceiptGaps(receipt).empty()) r.gapped.insert(rr.domain());
      return;
    }
    case E::kRequestCompleted: {
      // Nothing may follow for it: its story shrinks to the digests that refuse whatever would.
      auto it = requests_.find(e.request_completed().request_id());
      if (it == requests_.end()) return;
      for (const auto& id : it->second.command_ids) {
        commands_.erase(id);
        receipted_commands_.erase(id);
        vacuumed_commands_.erase(id);
        ended_ids().EndCommand(IdDigest(id));
        if (vacuum_waits_ == nullptr) continue;
        if (auto a = awaiting_vacuum_.find(id); a != awaiting_vacuum_.end()) {
          vacuum_waits_->Await(IdDigest(id), a->second.receipt_seq);
          awaiting_vacuum_.erase(a);
        }
      }
      ended_ids().EndRequest(IdDigest(it->first));
      // An access request's parts stay held (under its key) until the package is released.
      if (it->second.access) unreleased_packages_.insert(it->first);
      requests_.erase(it);
      return;
    }
    case E::kPackageReleased:
      unreleased_packages_.erase(e.package_released().request_id());
      return;
    case E::kIdentitiesAdded: {
      const auto& a = e.identities_added();
      Request& req = requests_[a.request_id()];
      for (const auto& t : a.subject()) req.identity_types.insert(t.type());
      for (const auto& d : a.target_domains()) {
        req.waiting.erase(d);
        req.targets.insert(d);
      }
      return;
    }
    case E::kDeadlineExtended: {
      Request& r = requests_[e.deadline_extended().request_id()];
      r.extended_seconds += e.deadline_extended().extension_seconds();
      r.due_unix_ms = e.deadline_extended().new_due_unix_ms();
      return;
    }
    case E::kPolicyActivated: {
      const auto& pa = e.policy_activated();
      auto parsed = ParseActivated(pa);
      if (!parsed.ok()) return;
      activations_ = pa.activation();
      active_policy_ = *parsed;
      active_policy_hash_ = pa.policy_hash();
      policies_[pa.policy_hash()] = *parsed;
      return;
    }
    case E::kConsentChanged: {
      const auto& c = e.consent_changed();
      consent_status_[ConsentKey(c)] = c.status();
      if (!c.erasure_request_id().empty())
        consent_plans_[c.change_id()] = PlannedByConsent{c.erasure_request_id(), c.purpose()};
      return;
    }
  }
}

absl::uint128 RequestLifecycle::IdDigest(std::string_view id) {
  const std::string d = crypto::Sha256(id);
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 8; ++i) {
    hi = hi << 8 | static_cast<unsigned char>(d[i]);
    lo = lo << 8 | static_cast<unsigned char>(d[8 + i]);
  }
  return absl::MakeUint128(hi, lo);
}

absl::Status RequestLifecycle::Step(const v1::LedgerEntry& e, v1::Receipt* verified_receipt) {
  LETHE_RETURN_IF_ERROR(Check(e, verified_receipt));
  Apply(e);
  return absl::OkStatus();
}

absl::Status RequestLifecycle::CheckEnd() const {
  for (const auto& [id, r] : requests_)
    for (const auto& d : r.targets)
      if (!r.commanded.count(d))
        return Contradicts("request " + id + ": domain " + d +
                           " is a target of the plan but no command was issued to it");
  if (scope_ == LifecycleScope::kWholeLog && !consent_plans_.empty()) {
    const auto& [change, plan] = *consent_plans_.begin();
    return Contradicts("consent change " + Quote(change, 16) + " planned erasure " + plan.request_id +
                       ", which the log does not hold");
  }
  return absl::OkStatus();
}

}  // namespace lethe::audit
