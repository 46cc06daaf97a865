// What lethectl prints for more than one command: callers, times and messages as text or
// JSON, and the verdicts of the ledger's verification (audit reports, kept checkpoints,
// tlog-proofs), as text or (-o json) JSON.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "audit/auditor.h"
#include "audit/offline_verify.h"
#include "cli/flags.h"
#include "google/protobuf/message.h"
#include "lethe/v1/api.pb.h"

namespace lethe::cli {

// Who caused an entry: "ROLE NAME (certificate SHA256)", or why nobody is named.
std::string ActorLine(const lethe::v1::ActorView& a);

// A message as lethectl's JSON output (cli/json.h).
std::string Json(const google::protobuf::Message& m);

// A time as UTC ISO 8601, or "-" for none (0).
std::string Time(int64_t ms);

// The verdict of `ledger verify` on the log read from `source`; returns the exit code.
int PrintAudit(const Global& g, const absl::StatusOr<lethe::audit::AuditReport>& report,
               const std::string& source, const std::string& warning);

// The verdict of `ledger verify --dir`; returns the exit code.
int PrintDataDirAudit(const Global& g, const lethe::audit::DataDirVerification& v);

// The verdict of `ledger verify --since` on the kept checkpoints `since` names: each failure
// naming its file, then the verdict; returns the exit code.
int PrintKept(const Global& g, const std::string& since, const lethe::audit::KeptVerdict& v);

// `ledger proof`: the proof as C2SP tlog-proof@v1, or (-o json) with its parts.
void PrintInclusionProof(const Global& g, const lethe::audit::InclusionProof& proof);

}  // namespace lethe::cli
