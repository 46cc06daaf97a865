// What lethectl prints for more than one command, and the verdicts of the ledger's
// verification (cli/render.h).
#include "cli/render.h"

#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "cli/json.h"
#include "crypto/crypto.h"
#include "nlohmann/json.hpp"

namespace lethe::cli {

namespace v1 = lethe::v1;

std::string ActorLine(const v1::ActorView& a) {
  if (a.role().empty()) return "no recorded caller";
  if (a.role() == "insecure") return "an unauthenticated caller (lethed --insecure)";
  std::string out = a.role() + " " + a.name();
  if (!a.certificate_sha256().empty()) out += " (certificate " + a.certificate_sha256().substr(0, 16) + ")";
  return out;
}

std::string Json(const google::protobuf::Message& m) { return ToJson(m); }

std::string Time(int64_t ms) {
  if (ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

int PrintAudit(const Global& g, const absl::StatusOr<lethe::audit::AuditReport>& report,
               const std::string& source, const std::string& warning) {
  if (!report.ok()) {
    if (g.json()) {
      std::cout << nlohmann::json{{"ok", false}, {"error", std::string(report.status().message())}}.dump(2)
                << "\n";
    }
    std::cerr << "ledger verify: FAILED: " << report.status().message() << "\n";
    return 1;
  }
  const auto& r = *report;
  if (g.json()) {
    std::cout << nlohmann::json{{"ok", true},
                                {"source", source},
                                {"origin", r.origin},
                                {"entries", r.entries},
                                {"checkpoint_size", r.checkpoint_size},
                                {"root", lethe::crypto::Base64(r.root)},
                                {"agents", r.agents},
                                {"requests", r.requests},
                                {"requests_completed", r.requests_completed},
                                {"requests_failed", r.requests_failed},
                                {"requests_with_gaps", r.requests_with_gaps},
                                {"commands", r.commands},
                                {"receipts", r.receipts},
                                {"policy_activations", r.policy_activations},
                                {"consent_changes", r.consent_changes},
                                {"extensions", r.extensions},
                                {"access_requests", r.access_requests},
                                {"packages_exported", r.packages_exported},
                                {"packages_expired", r.packages_expired},
                                {"uncovered_entries", r.uncovered_entries},
                                {"uncovered_bytes", r.uncovered_bytes},
                                {"incomplete_batch_entries", r.incomplete_batch_entries},
                                {"incomplete_batch_bytes", r.incomplete_batch_bytes},
                                {"unknown_field_entries", r.unknown_field_entries},
                                {"warning", warning}}
                     .dump(2)
              << "\n";
    return 0;
  }
  if (!warning.empty()) std::cout << "warning: " << warning << "\n";
  std::cout << "ledger verify: OK (" << source << ")\n"
            << "  origin      " << r.origin << "\n"
            << "  entries     " << r.entries << " (hash chain intact)\n"
            << "  checkpoint  size " << r.checkpoint_size << ", signature verified, Merkle root matches"
            << "\n";
  if (r.uncovered_entries > 0)
    std::cout << absl::StrFormat(
        "  past it     %d entr%s (%d bytes) after the checkpoint: chained and checked, but no "
        "signature covers them yet\n",
        r.uncovered_entries, r.uncovered_entries == 1 ? "y" : "ies", r.uncovered_bytes);
  if (r.incomplete_batch_entries > 0)
    std::cout << absl::StrFormat(
        "  unacknowledged  the log ends inside a batch: %d entr%s (%d bytes) of a write that "
        "never completed, not part of the log; lethed cuts them when it next starts\n",
        r.incomplete_batch_entries, r.incomplete_batch_entries == 1 ? "y" : "ies",
        r.incomplete_batch_bytes);
  std::cout
            << "  root        " << lethe::crypto::Base64(r.root) << "\n"
            << "  agents      " << r.agents << " enrolled key(s)\n"
            << "  requests    " << r.requests << " (" << r.requests_completed << " completed, "
            << r.requests_with_gaps << " done with gaps, " << r.requests_failed << " failed, "
            << (r.requests - r.requests_completed - r.requests_with_gaps - r.requests_failed) << " in progress; "
            << r.access_requests << " of them access)\n"
            << "  commands    " << r.commands << "\n"
            << "  receipts    " << r.receipts << ", every signature verified against enrolled agent keys\n"
            << "  policies    " << r.policy_activations << " activation(s), each hashing to its recorded hash\n"
            << "  consent     " << r.consent_changes << " change(s), tokens only\n"
            << "  extensions  " << r.extensions << ", each within the policy's max_extension\n"
            << "  access      " << r.packages_exported << " package(s) exported, " << r.packages_expired
            << " expired; no access receipt carries a purge, each completed one its part's digests\n"
            << "  plans       every request's domains are exactly the scope its policy gives\n";
  if (r.unknown_field_entries > 0)
    std::cout << "  unknown fields  " << r.unknown_field_entries
              << " entr" << (r.unknown_field_entries == 1 ? "y holds" : "ies hold")
              << " fields proto/lethe/v1 does not define (accepted: --allow-unknown-fields)\n";
  if (r.unauthenticated > 0)
    std::cout << "  unauthenticated  " << r.unauthenticated
              << " entr" << (r.unauthenticated == 1 ? "y" : "ies")
              << " caused by callers lethed did not authenticate (accepted: --accept-unauthenticated)\n";
  std::cout << "  governance (who activated each policy, who enrolled and revoked each key):\n";
  for (const auto& ev : r.governance) {
    v1::ActorView a;
    a.set_role(ev.actor.role());
    a.set_name(ev.actor.name());
    a.set_certificate_sha256(ev.actor.certificate_sha256());
    std::cout << absl::StrFormat("    entry %-5d %s  %s, by %s\n", ev.entry, Time(ev.unix_ms), ev.what,
                                 ActorLine(a));
  }
  return 0;
}

int PrintDataDirAudit(const Global& g, const lethe::audit::DataDirVerification& v) {
  if (v.empty_log) {
    std::cout << "ledger verify: OK (" << v.source << "): the log is empty and has no checkpoint\n";
    return 0;
  }
  return PrintAudit(g, v.report, v.source, v.warning);
}

int PrintKept(const Global& g, const std::string& since, const lethe::audit::KeptVerdict& v) {
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& f : v.failures) {
    std::cerr << "ledger verify --since: FAILED: " << f.file << ": " << f.error << "\n";
    failures.push_back({{"file", f.file}, {"error", f.error}});
  }
  if (g.json()) {
    std::cout << nlohmann::json{{"ok", v.ok()}, {"since", since}, {"kept", v.kept},
                                {"to", v.log_size}, {"failures", failures}}.dump(2) << "\n";
  } else if (v.ok() && v.kept == 1) {
    std::cout << "ledger verify --since: OK: the log of " << v.log_size
              << " entries extends the kept checkpoint of " << v.largest << " entries (" << v.detail
              << "; both checkpoints signed by " << v.key_id << ")\n";
  } else if (v.ok()) {
    std::cout << "ledger verify --since: OK: the log of " << v.log_size << " entries extends all "
              << v.kept << " kept checkpoints in " << since << " (sizes " << v.smallest << " to "
              << v.largest << ", each signed by " << v.key_id << "; " << v.method << ")\n";
  } else {
    std::cerr << "ledger verify --since: FAILED: " << v.failures.size() << " of " << v.kept
              << " kept checkpoint(s) in " << since << " are not extended by the log of " << v.log_size
              << " entries\n";
  }
  return v.ok() ? 0 : 1;
}

void PrintInclusionProof(const Global& g, const lethe::audit::InclusionProof& proof) {
  // C2SP tlog-proof@v1: header, index, proof hashes, blank line, the checkpoint verbatim.
  std::string text = absl::StrCat("c2sp.org/tlog-proof@v1\nindex ", proof.index, "\n");
  for (const auto& h : proof.hashes) absl::StrAppend(&text, h, "\n");
  absl::StrAppend(&text, "\n", proof.checkpoint);
  if (g.json()) {
    std::cout << nlohmann::json{{"index", proof.index},
                                {"tree_size", proof.tree_size},
                                {"proof", proof.hashes},
                                {"checkpoint", proof.checkpoint},
                                {"tlog_proof", text}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << text;
  }
}

}  // namespace lethe::cli
