#include "audit/certificate.h"

#include <algorithm>
#include <set>

#include <map>

#include "absl/strings/str_cat.h"
#include "audit/auditor.h"
#include "audit/request_lifecycle.h"
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
  // The request's story, by the same rule lethed and the auditor apply to a whole log.
  RequestLifecycle lifecycle(LifecycleScope::kOneRequest);
  std::optional<v1::RequestSubmitted> submitted;
  std::optional<v1::RequestCompleted> completed;
  std::vector<std::string> targets;  // in plan order: submitted, then added
  std::map<std::string, CertifiedDomain> answered;  // by domain
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
    std::string request_id;
    switch (e.body_case()) {
      case v1::LedgerEntry::kAgentEnrolled:
      case v1::LedgerEntry::kPolicyActivated:
        request_id = cert.request_id();
        break;
      case v1::LedgerEntry::kRequestSubmitted: request_id = e.request_submitted().request_id(); break;
      case v1::LedgerEntry::kCommandIssued: request_id = e.command_issued().request_id(); break;
      case v1::LedgerEntry::kReceiptRecorded: request_id = e.receipt_recorded().request_id(); break;
      case v1::LedgerEntry::kRequestCompleted: request_id = e.request_completed().request_id(); break;
      case v1::LedgerEntry::kIdentitiesAdded: request_id = e.identities_added().request_id(); break;
      case v1::LedgerEntry::kDeadlineExtended: request_id = e.deadline_extended().request_id(); break;
      case v1::LedgerEntry::kPackageReleased: request_id = e.package_released().request_id(); break;
      case v1::LedgerEntry::kConsentChanged:
        if (e.consent_changed().erasure_request_id() != cert.request_id())
          return absl::InvalidArgumentError(where + " is a consent change that did not plan this request");
        request_id = cert.request_id();
        break;
      default:
        return absl::InvalidArgumentError(where + " is not part of an erasure certificate");
    }
    if (request_id != cert.request_id()) return absl::InvalidArgumentError(where + " belongs to another request");
    v1::Receipt receipt;
    if (absl::Status s = lifecycle.Step(e, &receipt); !s.ok()) {
      const std::string why = where + ": " + std::string(s.message());
      return s.code() == absl::StatusCode::kNotFound ? absl::InvalidArgumentError("the certificate is incomplete: " + why)
                                                     : absl::DataLossError(why);
    }
    switch (e.body_case()) {
      case v1::LedgerEntry::kRequestSubmitted:
        submitted = e.request_submitted();
        targets.assign(submitted->target_domains().begin(), submitted->target_domains().end());
        for (const auto& t : submitted->subject()) report.identity_types.push_back(t.type());
        report.received_unix_ms = submitted->received_unix_ms();
        report.due_unix_ms = submitted->due_unix_ms();
        report.scope_purpose = submitted->consent_change_id().empty() ? "" : submitted->scope_purpose();
        report.access = submitted->kind() == v1::RequestSubmitted::ACCESS;
        break;
      case v1::LedgerEntry::kPackageReleased:
        report.released = e.package_released().reason();
        break;
      case v1::LedgerEntry::kIdentitiesAdded:
        for (const auto& t : e.identities_added().subject()) report.identity_types.push_back(t.type());
        for (const auto& d : e.identities_added().target_domains()) targets.push_back(d);
        break;
      case v1::LedgerEntry::kDeadlineExtended:
        report.due_unix_ms = e.deadline_extended().new_due_unix_ms();
        ++report.extensions;
        break;
      case v1::LedgerEntry::kReceiptRecorded: {
        const auto& rr = e.receipt_recorded();
        if (receipt.outcome() == v1::Receipt::PHYSICALLY_PURGED) {
          // The rule admitted it only after its domain's COMPLETED receipt (V1).
          CertifiedDomain& d = answered.at(rr.domain());
          d.physical = receipt;
          d.physical_key_id = rr.receipt().key_id();
          d.physical_entry = pe.index();
          break;
        }
        CertifiedDomain answer;
        answer.domain = rr.domain();
        answer.receipt = receipt;
        answer.agent_key_id = rr.receipt().key_id();
        answer.receipt_entry = pe.index();
        answered[rr.domain()] = std::move(answer);
        break;
      }
      case v1::LedgerEntry::kRequestCompleted:
        completed = e.request_completed();
        report.completed_unix_ms = e.time_unix_ms();
        break;
      default:
        break;
    }
  }
  if (!submitted) return absl::InvalidArgumentError("the certificate lacks RequestSubmitted");
  if (!completed) return absl::InvalidArgumentError("the certificate lacks RequestCompleted");
  // The completion was checked against the receipts of every target (request_lifecycle.h).
  for (const auto& d : targets) report.domains.push_back(answered.at(d));
  report.entries = static_cast<size_t>(cert.entries_size());
  report.outcome = completed->outcome();
  return report;
}

}  // namespace lethe::audit
