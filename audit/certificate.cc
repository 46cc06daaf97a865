#include "audit/certificate.h"

#include <algorithm>
#include <set>

#include <map>

#include "absl/strings/str_cat.h"
#include "audit/auditor.h"
#include "base/status.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "policies/policy.h"

namespace lethe::audit {

absl::StatusOr<CertificateReport> VerifyCertificate(const v1::ErasureCertificate& cert,
                                                    const crypto::Ed25519PublicKey& key) {
  if (cert.format() != kCertificateFormat)
    return absl::InvalidArgumentError("not a " + std::string(kCertificateFormat) + " certificate");
  LETHE_ASSIGN_OR_RETURN(ledger::Checkpoint unverified, ledger::ParseCheckpointUnverified(cert.checkpoint()));
  LETHE_ASSIGN_OR_RETURN(ledger::Checkpoint cp, ledger::VerifyCheckpoint(cert.checkpoint(), unverified.origin, key));

  CertificateReport report;
  report.request_id = cert.request_id();
  report.origin = cp.origin;
  report.checkpoint_size = cp.size;
  std::multimap<std::string, std::pair<crypto::Ed25519PublicKey, uint64_t>> agents;
  std::map<std::string, v1::CommandIssued> commands;
  std::map<std::string, std::pair<v1::ReceiptRecorded, uint64_t>> receipts;  // by domain
  std::optional<v1::RequestSubmitted> submitted;
  std::optional<v1::RequestCompleted> completed;
  std::optional<v1::ConsentChanged> consent;
  std::map<std::string, std::string> policies;  // policy hash -> YAML, from PolicyActivated
  std::vector<std::string> added_targets;
  int64_t due_after_extensions = 0;
  int64_t completed_ms = 0;
  uint64_t last_index = 0;
  bool first = true;

  for (const auto& pe : cert.entries()) {
    const std::string where = absl::StrCat("entry ", pe.index());
    if (!first && pe.index() <= last_index)
      return absl::InvalidArgumentError(where + ": entries must be in log order, each once");
    first = false;
    last_index = pe.index();
    std::vector<std::string> proof(pe.proof().begin(), pe.proof().end());
    if (absl::Status s = ledger::VerifyInclusion(pe.index(), cp.size, ledger::LeafHash(pe.entry()), proof, cp.root);
        !s.ok())
      return absl::DataLossError(where + " is not in the checkpointed log: " + std::string(s.message()));
    v1::LedgerEntry e;
    if (!e.ParseFromString(pe.entry())) return absl::DataLossError(where + " does not parse");
    if (e.seq() != pe.index()) return absl::DataLossError(where + " says it is another entry");
    switch (e.body_case()) {
      case v1::LedgerEntry::kAgentEnrolled: {
        auto k = crypto::Ed25519PublicKey::FromRaw(e.agent_enrolled().public_key());
        if (!k.ok()) return absl::DataLossError(where + ": enrolled key is not an Ed25519 key");
        agents.emplace(e.agent_enrolled().domain(), std::make_pair(*k, pe.index()));
        break;
      }
      case v1::LedgerEntry::kPolicyActivated:
        policies[e.policy_activated().policy_hash()] = e.policy_activated().policy_yaml();
        break;
      case v1::LedgerEntry::kRequestSubmitted:
        if (e.request_submitted().request_id() != cert.request_id())
          return absl::InvalidArgumentError(where + " belongs to another request");
        submitted = e.request_submitted();
        break;
      case v1::LedgerEntry::kCommandIssued:
        if (e.command_issued().request_id() != cert.request_id())
          return absl::InvalidArgumentError(where + " belongs to another request");
        commands[e.command_issued().command_id()] = e.command_issued();
        break;
      case v1::LedgerEntry::kReceiptRecorded:
        if (e.receipt_recorded().request_id() != cert.request_id())
          return absl::InvalidArgumentError(where + " belongs to another request");
        receipts[e.receipt_recorded().domain()] = {e.receipt_recorded(), pe.index()};
        break;
      case v1::LedgerEntry::kRequestCompleted:
        if (e.request_completed().request_id() != cert.request_id())
          return absl::InvalidArgumentError(where + " belongs to another request");
        completed = e.request_completed();
        completed_ms = e.time_unix_ms();
        break;
      case v1::LedgerEntry::kIdentitiesAdded:
        if (e.identities_added().request_id() != cert.request_id())
          return absl::InvalidArgumentError(where + " belongs to another request");
        for (const auto& t : e.identities_added().subject()) report.identity_types.push_back(t.type());
        for (const auto& d : e.identities_added().target_domains()) added_targets.push_back(d);
        break;
      case v1::LedgerEntry::kDeadlineExtended:
        if (e.deadline_extended().request_id() != cert.request_id())
          return absl::InvalidArgumentError(where + " belongs to another request");
        due_after_extensions = e.deadline_extended().new_due_unix_ms();
        ++report.extensions;
        break;
      case v1::LedgerEntry::kConsentChanged:
        if (e.consent_changed().erasure_request_id() != cert.request_id())
          return absl::InvalidArgumentError(where + " is a consent change that did not plan this request");
        consent = e.consent_changed();
        break;
      default:
        return absl::InvalidArgumentError(where + " is not part of an erasure certificate");
    }
  }
  if (!submitted) return absl::InvalidArgumentError("the certificate lacks RequestSubmitted");
  if (!completed) return absl::InvalidArgumentError("the certificate lacks RequestCompleted");
  std::vector<std::string> types;
  for (const auto& t : submitted->subject()) types.push_back(t.type());
  types.insert(types.end(), report.identity_types.begin(), report.identity_types.end());
  report.identity_types = std::move(types);
  report.received_unix_ms = submitted->received_unix_ms();
  report.due_unix_ms = due_after_extensions != 0 ? due_after_extensions : submitted->due_unix_ms();
  if (!submitted->consent_change_id().empty()) {
    if (!consent || consent->change_id() != submitted->consent_change_id())
      return absl::InvalidArgumentError("the certificate lacks the consent change that planned the request");
    if (consent->purpose() != submitted->scope_purpose() || consent->status() != v1::WITHDRAWN)
      return absl::DataLossError("the consent change does not match the request's scope");
    report.scope_purpose = submitted->scope_purpose();
  }
  // The plan: the targets and waiting domains must be exactly the scope that the policy the
  // request was planned with gives its identity types (and purpose).
  auto yaml = policies.find(submitted->policy_hash());
  if (yaml == policies.end())
    return absl::InvalidArgumentError("the certificate lacks the activation of the policy the request was planned with");
  auto policy = policies::Policy::Parse(yaml->second, "<certificate policy>");
  if (!policy.ok() || policy->Hash() != submitted->policy_hash())
    return absl::DataLossError("the policy in the certificate does not hash to the request's policy hash");
  {
    std::vector<std::string> have;
    for (const auto& t : submitted->subject()) have.push_back(t.type());
    std::vector<std::string> scope;
    if (!submitted->scope_purpose().empty()) {
      for (const auto& p : policy->purposes())
        if (p.name == submitted->scope_purpose()) scope = p.domains;
      if (scope.empty()) return absl::DataLossError("the request's purpose names no domain of its policy");
    }
    std::set<std::string> planned(submitted->target_domains().begin(), submitted->target_domains().end());
    for (const auto& n : submitted->needs_identity()) planned.insert(n.domain());
    std::set<std::string> in_scope;
    for (const auto& d : policy->ErasureScope(have, scope)) {
      in_scope.insert(d.domain);
      if (!planned.count(d.domain))
        return absl::DataLossError("request " + cert.request_id() + ": plan drops domain " + d.domain +
                                   ", which its policy puts in scope");
      const bool targeted = std::find(submitted->target_domains().begin(), submitted->target_domains().end(),
                                      d.domain) != submitted->target_domains().end();
      if (targeted != d.missing_types.empty())
        return absl::DataLossError("request " + cert.request_id() + ": domain " + d.domain +
                                   (targeted ? " is targeted though the request lacks an identity type it is keyed by"
                                             : " waits for an identity though the request carries every type it needs"));
    }
    for (const auto& d : planned)
      if (!in_scope.count(d))
        return absl::DataLossError("request " + cert.request_id() + ": plan adds domain " + d +
                                   ", which its policy does not put in scope");
  }
  std::vector<std::string> targets(submitted->target_domains().begin(), submitted->target_domains().end());
  for (const auto& d : added_targets) targets.push_back(d);
  for (const auto& n : submitted->needs_identity()) {
    if (std::find(added_targets.begin(), added_targets.end(), n.domain()) == added_targets.end())
      return absl::DataLossError("request completed while domain " + n.domain() +
                                 " still needed an identity");
  }
  report.completed_unix_ms = completed_ms;
  report.entries = static_cast<size_t>(cert.entries_size());

  bool all_ok = true;
  for (const auto& domain : targets) {
    auto r = receipts.find(domain);
    if (r == receipts.end())
      return absl::InvalidArgumentError("the certificate holds no receipt from domain " + domain);
    const v1::ReceiptRecorded& rr = r->second.first;
    auto c = commands.find(rr.command_id());
    if (c == commands.end() || c->second.domain() != domain)
      return absl::InvalidArgumentError("the certificate lacks the command domain " + domain + " answered");
    const crypto::Ed25519PublicKey* agent = nullptr;
    auto [lo, hi] = agents.equal_range(domain);
    for (auto i = lo; i != hi; ++i)
      if (i->second.first.KeyId() == rr.receipt().key_id() && i->second.second < r->second.second)
        agent = &i->second.first;
    if (agent == nullptr)
      return absl::InvalidArgumentError("the receipt of domain " + domain +
                                        " is signed by a key the certificate does not show enrolled");
    auto receipt = CheckRecordedReceipt(rr, *agent, c->second.command_digest());
    if (!receipt.ok())
      return absl::DataLossError("receipt of domain " + domain + ": " + std::string(receipt.status().message()));
    all_ok = all_ok && receipt->outcome() == v1::Receipt::COMPLETED;
    report.domains.push_back(CertifiedDomain{domain, *receipt, rr.receipt().key_id(), r->second.second});
  }
  const auto want = all_ok ? v1::RequestCompleted::COMPLETED : v1::RequestCompleted::FAILED;
  if (completed->outcome() != want)
    return absl::DataLossError("the recorded outcome contradicts the receipts");
  report.outcome = completed->outcome();
  return report;
}

}  // namespace lethe::audit
