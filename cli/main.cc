// lethectl: the command line of privacy operators and auditors.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include <signal.h>
#include <unistd.h>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "audit/auditor.h"
#include "audit/certificate.h"
#include "audit/tiles.h"
#include "base/file_system.h"
#include "base/status.h"
#include "cli/exit_codes.h"
#include "cli/input.h"
#include "cli/json.h"
#include "crypto/crypto.h"
#include "crypto/process.h"
#include "crypto/seal.h"
#include "crypto/x509.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "lethe/v1/api.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "policies/policy.h"

namespace {
using lethe::Av;
namespace v1 = lethe::v1;

struct Global {
  std::string addr;
  std::string output = "text";
  // Mutual TLS: the CA that signed lethed's certificate, and this caller's certificate.
  std::string certs_dir;  // --certs-dir or LETHE_CERTS_DIR: ca.crt (+ one client.*.crt)
  std::string cert;       // --cert or LETHE_CERT
  std::string key;        // --key or LETHE_KEY
  bool insecure = false;  // plaintext, for a lethed started with --insecure
  lethe::audit::AuditOptions audit;  // ledger verify --accept-unauthenticated
  // Machine output: json, or yaml (the same documents, converted as they are printed).
  bool json() const { return output == "json" || output == "yaml"; }
};

using lethe::cli::ExitFor;

// The address the commands talk to, for the messages of failed calls.
std::string g_addr;

// A local failure (a file, a flag, a check done here): the message, and the exit code of its
// kind (an unreadable local file is not an unreachable lethed).
int Fail(const std::string& what, const absl::Status& s) {
  std::cerr << "lethectl " << what << ": " << s.message() << "\n";
  if (s.code() == absl::StatusCode::kUnavailable) return lethe::cli::kExitFailed;
  return ExitFor(s.code());
}

// A call lethed answered with an error, or could not be made: the code, the message, and
// what to do next where there is something to do.
int FailGrpc(const std::string& what, const grpc::Status& s) {
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  std::cerr << "lethectl " << what << ": " << absl::StatusCodeToString(code) << ": "
            << s.error_message() << "\n";
  if (code == absl::StatusCode::kUnavailable)
    std::cerr << "  lethed did not answer at " << g_addr
              << ": is it running, and are --addr (LETHE_ADDR) and the certificates right?\n";
  else if (code == absl::StatusCode::kPermissionDenied)
    std::cerr << "  the role in your client certificate may not do this: admin activates policies "
                 "and enrolls keys, operator submits and changes, auditor reads and verifies\n";
  return ExitFor(code);
}

// The client certificate to present: --cert/--key, else the one client.*.crt in the certs dir.
absl::Status FindClientCertificate(const Global& g, std::string* cert, std::string* key) {
  if (!g.cert.empty() || !g.key.empty()) {
    if (g.cert.empty() || g.key.empty())
      return absl::InvalidArgumentError("--cert and --key go together (or LETHE_CERT and LETHE_KEY)");
    *cert = g.cert;
    *key = g.key;
    return absl::OkStatus();
  }
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(g.certs_dir, ec)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("client.", 0) == 0 && name.size() > 11 && name.substr(name.size() - 4) == ".crt")
      found.push_back(f.path().string());
  }
  if (ec) return absl::NotFoundError("--certs-dir " + g.certs_dir + ": " + ec.message());
  if (found.size() != 1)
    return absl::InvalidArgumentError(absl::StrFormat(
        "--certs-dir %s holds %d client certificates (client.NAME.crt); pick one with --cert and --key",
        g.certs_dir, found.size()));
  *cert = found.front();
  *key = cert->substr(0, cert->size() - 4) + ".key";
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(const Global& g) {
  if (g.insecure) {
    if (!g.certs_dir.empty() || !g.cert.empty())
      return absl::InvalidArgumentError("--insecure excludes --certs-dir and --cert");
    return grpc::InsecureChannelCredentials();
  }
  if (g.certs_dir.empty())
    return absl::InvalidArgumentError(
        "no certificates: give --certs-dir DIR (or LETHE_CERTS_DIR) holding ca.crt and your "
        "client.NAME.crt and .key, or --insecure for a lethed started with --insecure");
  std::string cert_path, key_path;
  LETHE_RETURN_IF_ERROR(FindClientCertificate(g, &cert_path, &key_path));
  grpc::SslCredentialsOptions o;
  LETHE_ASSIGN_OR_RETURN(o.pem_root_certs, lethe::ReadFile(g.certs_dir + "/ca.crt"));
  LETHE_ASSIGN_OR_RETURN(o.pem_cert_chain, lethe::ReadFile(cert_path));
  LETHE_ASSIGN_OR_RETURN(std::string key_pem, lethe::ReadFile(key_path));
  lethe::SecretBytes guarded(std::move(key_pem));
  o.pem_private_key = std::string(lethe::RevealSecret(guarded));
  return grpc::SslCredentials(o);
}

std::shared_ptr<grpc::Channel> Connect(const Global& g) {
  g_addr = g.addr;
  // gRPC reads "localhost" as port 443: refuse an address without a port.
  const bool has_scheme = g.addr.rfind("unix:", 0) == 0 || g.addr.rfind("dns:", 0) == 0 ||
                          g.addr.rfind("ipv4:", 0) == 0 || g.addr.rfind("ipv6:", 0) == 0;
  const size_t colon = g.addr.rfind(':');
  if (!has_scheme && (colon == std::string::npos || colon + 1 == g.addr.size() ||
                      g.addr.find_first_not_of("0123456789", colon + 1) != std::string::npos)) {
    std::cerr << "lethectl: --addr " << g.addr.substr(0, 64)
              << ": give HOST:PORT (lethed listens on port 7411 unless told otherwise)\n";
    std::exit(lethe::cli::kExitUsage);
  }
  auto creds = Credentials(g);
  if (!creds.ok()) {
    std::cerr << "lethectl: " << creds.status().message() << "\n";
    std::exit(2);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(g.addr, *creds, args);
}

std::string ActorLine(const v1::ActorView& a) {
  if (a.role().empty()) return "no recorded caller";
  if (a.role() == "insecure") return "an unauthenticated caller (lethed --insecure)";
  std::string out = a.role() + " " + a.name();
  if (!a.certificate_sha256().empty()) out += " (certificate " + a.certificate_sha256().substr(0, 16) + ")";
  return out;
}

std::string Json(const google::protobuf::Message& m) { return lethe::cli::ToJson(m); }

std::string Time(int64_t ms) {
  if (ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

const char* StateName(v1::RequestState s) {
  switch (s) {
    case v1::IN_PROGRESS: return "IN_PROGRESS";
    case v1::COMPLETED: return "COMPLETED";
    case v1::FAILED: return "FAILED";
    default: return "UNKNOWN";
  }
}

const char* DomainStateName(v1::DomainState s) {
  switch (s) {
    case v1::PENDING: return "PENDING";
    case v1::DONE: return "DONE";
    case v1::DOMAIN_FAILED: return "FAILED";
    case v1::NEEDS_IDENTITY: return "NEEDS_IDENTITY";
    default: return "UNKNOWN";
  }
}

std::string Period(int64_t seconds) {
  constexpr int64_t kDay = 86400;
  if (seconds > 0 && seconds % (365 * kDay) == 0) return absl::StrCat(seconds / (365 * kDay), "y");
  if (seconds > 0 && seconds % kDay == 0) return absl::StrCat(seconds / kDay, "d");
  return absl::StrCat(seconds, "s");
}

// One table's part of a receipt, e.g. "billing.invoices withheld 2 under \"Tax records\" for 7y".
template <typename TableLike>
std::string TableSummary(const TableLike& t) {
  if (t.action() == "retain")
    return absl::StrFormat("%s withheld %d under \"%s\" for %s", t.table(), t.rows_withheld(),
                           t.basis(), Period(t.retention_period_seconds()));
  std::string out =
      t.action() == "anonymize"
          ? absl::StrFormat("%s anonymized %d (%s)", t.table(), t.rows_affected(),
                            absl::StrJoin(t.columns(), ", "))
          : absl::StrFormat("%s deleted %d", t.table(), t.rows_affected());
  // Rows the exact comparison left that match after trimming and lower-casing: say so, so
  // that "0 remaining" is not read as "nothing of this person is left".
  if (t.rows_near_match() > 0)
    absl::StrAppendFormat(&out, " (WARNING: %d near match(es) left in place: rows equal to an "
                                "identity after trimming and lower-casing; check them by hand)",
                          t.rows_near_match());
  return out;
}

std::string DomainLine(const v1::DomainProgress& d) {
  std::string line = absl::StrFormat("  %-16s %-8s", d.domain(), DomainStateName(d.state()));
  if (d.state() == v1::PENDING) {
    absl::StrAppendFormat(&line, " command %s, published %d time(s)", d.command_id().substr(0, 12),
                          d.attempts());
    if (!d.last_rejection().empty())
      absl::StrAppendFormat(&line, "; the agent refused it: %s", d.last_rejection());
  } else if (d.state() == v1::NEEDS_IDENTITY) {
    absl::StrAppendFormat(&line, " keyed by %s, which the request does not carry "
                                 "(lethectl request add-identity)",
                          absl::StrJoin(d.needed_identity_types(), " and "));
  } else if (d.state() == v1::DONE) {
    std::vector<std::string> tables;
    for (const auto& t : d.tables()) tables.push_back(TableSummary(t));
    for (const auto& t : d.tombstones())
      tables.push_back(absl::StrFormat("tombstone %s[%d]@%d", t.topic(), t.partition(), t.offset()));
    absl::StrAppendFormat(&line, " %s; 0 remaining verified; receipt entry %d signed by agent key %s",
                          absl::StrJoin(tables, ", "), d.receipt_entry(), d.agent_key_id());
  } else {
    absl::StrAppendFormat(&line, " %s (receipt entry %d)", d.error(), d.receipt_entry());
  }
  return line;
}

void PrintRequest(const v1::RequestView& r) {
  std::cout << "request " << r.request_id() << "  " << StateName(r.state())
            << (r.overdue() ? "  OVERDUE" : "") << "\n";
  std::cout << "  kind: " << r.kind() << "   identity types: ";
  for (int i = 0; i < r.identity_types_size(); ++i) std::cout << (i ? ", " : "") << r.identity_types(i);
  if (!r.scope_purpose().empty())
    std::cout << "\n  planned by consent withdrawal for purpose " << r.scope_purpose()
              << " (ledger entry " << r.consent_entry() << ", change " << r.consent_change_id()
              << "); scope: that purpose's domains";
  std::cout << "\n  received " << Time(r.received_unix_ms()) << "   due " << Time(r.due_unix_ms())
            << "   completed " << Time(r.completed_unix_ms()) << "\n";
  for (const auto& x : r.extensions())
    std::cout << "  extended by " << Period(x.extension_seconds()) << " on " << Time(x.recorded_unix_ms())
              << " (entry " << x.entry() << "): "
              << (x.reason_shredded() ? "(reason shredded with the request)" : x.reason()) << "\n";
  std::cout << "  ledger entries: submitted " << r.submitted_entry();
  if (r.completed_entry() != 0) std::cout << ", completed " << r.completed_entry();
  std::cout << "   policy " << r.policy_hash().substr(0, 16) << "\n";
  for (const auto& d : r.domains()) std::cout << DomainLine(d) << "\n";
}

// One duration syntax for every flag: a positive number with a unit, ms, s, m, h, d (24h), w
// (7d) or y (365d), or a sum of them ("1h30m").
absl::StatusOr<absl::Duration> ParseFlagDuration(const std::string& flag, const std::string& s) {
  absl::Duration d;
  if (absl::ParseDuration(s, &d) && d > absl::ZeroDuration()) return d;
  if (auto p = lethe::policies::ParsePolicyDuration(s); p.ok() && *p > absl::ZeroDuration()) return *p;
  return absl::InvalidArgumentError(flag + ": not a duration like 90s, 5m, 2h, 14d or 2w (got \"" +
                                     s.substr(0, 16) + "\")");
}

absl::StatusOr<absl::Duration> ParseTimeout(const std::string& s) { return ParseFlagDuration("--timeout", s); }

// ---- keys ---------------------------------------------------------------------------------

// The identities of repeated --identity flags and --identities-from (cli/input.h) into `out`.
absl::Status ParseIdentities(const std::vector<std::string>& flags, const std::string& from,
                             google::protobuf::RepeatedPtrField<v1::Identity>* out) {
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> args, lethe::cli::IdentityArgs(flags, from));
  for (const std::string& arg : args) {
    const size_t eq = arg.find('=');
    auto* id = out->Add();
    id->set_type(arg.substr(0, eq));
    id->set_value(arg.substr(eq + 1));
  }
  return absl::OkStatus();
}
absl::Status ParseIdentities(const std::vector<std::string>& flags,
                             google::protobuf::RepeatedPtrField<v1::Identity>* out) {
  return ParseIdentities(flags, "", out);
}

int KeysGenerate(const Global& g, const std::string& prefix, bool force) {
  // Never lose a key silently: it may sign a live ledger, whose checkpoints and commands no
  // other key can sign. --force keeps the old pair beside the new one.
  std::vector<std::string> kept;
  for (const char* ext : {".key", ".pub"}) {
    const std::string path = prefix + ext;
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) continue;
    if (!force)
      return Fail("keys generate",
                  absl::AlreadyExistsError(
                      path + " exists; keys generate never replaces a key (it may sign a live "
                             "ledger or receipts). Use another --out, or --force to replace the "
                             "pair, keeping the old files as " + prefix + ext + ".bak-<time>"));
    const std::string backup =
        path + ".bak-" + absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone());
    if (std::filesystem::exists(backup, ec))
      return Fail("keys generate", absl::AlreadyExistsError(backup + " exists; try again in a second"));
    std::filesystem::rename(path, backup, ec);
    if (ec) return Fail("keys generate", absl::UnavailableError("cannot move " + path + " to " + backup + ": " + ec.message()));
    kept.push_back(backup);
  }
  std::error_code ec;
  const auto parent = std::filesystem::path(prefix).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
    return Fail("keys generate", absl::NotFoundError("directory " + parent.string() +
                                                     " does not exist; create it first (mkdir -p " +
                                                     parent.string() + ")"));
  auto key_id = lethe::crypto::GenerateKeyFiles(prefix);
  if (!key_id.ok()) return Fail("keys generate", key_id.status());
  if (g.json()) {
    nlohmann::json j = {{"key", prefix + ".key"}, {"pub", prefix + ".pub"}, {"key_id", *key_id},
                        {"backups", kept}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  for (const auto& b : kept) std::cout << "kept the old " << b << "\n";
  std::cout << "wrote " << prefix << ".key (private, mode 0600) and " << prefix
            << ".pub: an Ed25519 signing key (key id " << *key_id
            << ") and an X25519 key that commands are sealed to\n";
  return 0;
}

// ---- agents -------------------------------------------------------------------------------

int AgentEnroll(const Global& g, const std::string& domain, const std::string& pub_path) {
  auto pem = lethe::ReadFile(pub_path);
  if (!pem.ok()) return Fail("agent enroll", pem.status());
  auto stub = v1::Agents::NewStub(Connect(g));
  v1::EnrollAgentRequest req;
  req.set_domain(domain);
  req.set_public_key_pem(*pem);
  v1::AgentView resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Enroll(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("agent enroll", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    std::cout << "enrolled agent key " << resp.key_id() << " for domain " << resp.domain()
              << " (ledger entry " << resp.entry() << ")\n";
  }
  return 0;
}

int AgentRevoke(const Global& g, const std::string& domain, const std::string& key_id,
                const std::string& reason) {
  auto stub = v1::Agents::NewStub(Connect(g));
  v1::RevokeAgentKeyRequest req;
  req.set_domain(domain);
  req.set_key_id(key_id);
  req.set_reason(reason);
  v1::AgentView resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Revoke(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("agent revoke", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    std::cout << "revoked agent key " << resp.key_id() << " of domain " << resp.domain()
              << " (ledger entry " << resp.revoked_entry()
              << "); receipts it signs from now on are refused\n";
  }
  return 0;
}

int AgentList(const Global& g) {
  auto stub = v1::Agents::NewStub(Connect(g));
  v1::ListAgentsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->List(&ctx, v1::ListAgentsRequest(), &resp);
  if (!s.ok()) return FailGrpc("agent list", s);
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  std::cout << absl::StrFormat("%-16s %-18s %-8s %-6s %-20s %s\n", "DOMAIN", "KEY ID", "STATE",
                               "ENTRY", "ENROLLED", "BY");
  for (const auto& a : resp.agents()) {
    std::cout << absl::StrFormat("%-16s %-18s %-8s %-6d %-20s %s\n", a.domain(), a.key_id(),
                                 a.state() == v1::REVOKED ? "REVOKED" : "ACTIVE", a.entry(),
                                 Time(a.enrolled_unix_ms()), ActorLine(a.enrolled_by()));
    if (a.state() == v1::REVOKED)
      std::cout << absl::StrFormat("  revoked %s by %s (ledger entry %d)%s\n", Time(a.revoked_unix_ms()),
                                   ActorLine(a.revoked_by()), a.revoked_entry(),
                                   a.revocation_reason().empty() ? "" : ": " + a.revocation_reason());
  }
  return 0;
}

// ---- requests -----------------------------------------------------------------------------

// What an operator must do for an open request: for each domain that lacks an identity type
// (NEEDS_IDENTITY) or refused its command for policy drift, the step that unblocks it. With
// `only_when_stuck`, "" while some other domain may still answer.
std::string NextStep(const v1::RequestView& v, bool only_when_stuck = true) {
  if (v.state() != v1::IN_PROGRESS) return "";
  std::vector<std::string> steps;
  bool waiting = false;
  for (const auto& d : v.domains()) {
    if (d.state() == v1::NEEDS_IDENTITY) {
      std::vector<std::string> flags;
      for (const auto& t : d.needed_identity_types()) flags.push_back("--identity " + t + "=...");
      steps.push_back(absl::StrFormat("domain %s needs %s: lethectl request add-identity %s %s",
                                      d.domain(), absl::StrJoin(d.needed_identity_types(), " and "),
                                      v.request_id(), absl::StrJoin(flags, " ")));
    } else if (d.state() == v1::PENDING && !d.last_rejection().empty()) {
      steps.push_back(absl::StrFormat(
          "domain %s refused its command: %s (deploy the active policy, `lethectl policy show --yaml`, "
          "to its agent)", d.domain(), d.last_rejection()));
    } else if (d.state() == v1::PENDING) {
      waiting = true;
    }
  }
  return waiting && only_when_stuck ? "" : absl::StrJoin(steps, "\n");
}

// Set while --wait follows a recorded request: Ctrl-C then says how to follow it again.
char g_interrupt_note[256];
void OnInterrupt(int) {
  const ssize_t n = static_cast<ssize_t>(std::strlen(g_interrupt_note));
  if (n > 0) (void)!::write(2, g_interrupt_note, static_cast<size_t>(n));
  ::_exit(130);
}
void NoteOnInterrupt(const std::string& id) {
  std::snprintf(g_interrupt_note, sizeof(g_interrupt_note),
                "\nlethectl: stopped following; request %s is recorded and goes on. Follow it "
                "with: lethectl request watch %s\n",
                id.c_str(), id.c_str());
  ::signal(SIGINT, OnInterrupt);
  ::signal(SIGTERM, OnInterrupt);
}

int Watch(const Global& g, const std::string& id, absl::Duration timeout) {
  // Progress lines appear as they happen, also through a pipe (| tee).
  std::cout.setf(std::ios::unitbuf);
  NoteOnInterrupt(id);
  auto stub = v1::SubjectRequests::NewStub(Connect(g));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::GetRequestRequest req;
  req.set_request_id(id);
  auto reader = stub->Watch(&ctx, req);
  v1::RequestView view, last;
  bool any = false;
  // On a terminal each domain keeps one line, rewritten in place as it changes; into a pipe
  // or file, a line is added per change.
  const bool redraw = !g.json() && ::isatty(STDOUT_FILENO) == 1;
  int drawn = 0;
  while (reader->Read(&view)) {
    if (redraw) {
      if (drawn > 0) std::cout << "\x1b[" << drawn << "A";
      for (const auto& d : view.domains()) std::cout << "\r\x1b[2K" << DomainLine(d) << "\n";
      drawn = view.domains_size();
    } else if (!g.json()) {
      for (const auto& d : view.domains()) {
        bool changed = true;
        for (const auto& p : last.domains())
          if (p.domain() == d.domain()) changed = p.state() != d.state();
        if (changed || !any) std::cout << DomainLine(d) << "\n";
      }
    }
    last = view;
    any = true;
    if (view.state() != v1::IN_PROGRESS) break;
    if (const std::string next = NextStep(view); !next.empty()) {
      // Nothing will change until someone acts: say what, and stop waiting.
      ctx.TryCancel();
      if (g.json()) std::cout << Json(view);
      std::cerr << "lethectl: request " << id << " cannot progress until an operator acts:\n"
                << next << "\n";
      (void)reader->Finish();
      return lethe::cli::kExitNeedsOperator;
    }
  }
  grpc::Status s = reader->Finish();
  if (any && last.state() != v1::IN_PROGRESS) {
    if (g.json()) {
      std::cout << Json(last);
    } else {
      std::cout << "request " << id << " " << StateName(last.state()) << " at "
                << Time(last.completed_unix_ms()) << "\n";
    }
    return last.state() == v1::COMPLETED ? 0 : lethe::cli::kExitFailed;
  }
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    std::cerr << "lethectl: timed out after " << absl::FormatDuration(timeout)
              << " waiting for request " << id << " (still IN_PROGRESS)\n";
    if (g.json() && any) std::cout << Json(last);
    return lethe::cli::kExitTimeout;
  }
  if (any && s.error_code() != grpc::StatusCode::OK)
    std::cerr << "lethectl: the watch of request " << id
              << " was cut off; it goes on: lethectl request watch " << id << "\n";
  return FailGrpc("request watch", s);
}

int RequestErase(const Global& g, const std::vector<std::string>& identities,
                 const std::string& identities_from, const std::string& reason,
                 const std::string& reason_from, bool wait, const std::string& timeout_text,
                 bool allow_duplicate) {
  auto timeout = ParseTimeout(timeout_text);
  if (!timeout.ok()) return Fail("request erase", timeout.status());
  v1::SubmitRequest req;
  if (absl::Status st = ParseIdentities(identities, identities_from, req.mutable_identities()); !st.ok())
    return Fail("request erase", st);
  auto reason_text = lethe::cli::ReasonText(reason, reason_from);
  if (!reason_text.ok()) return Fail("request erase", reason_text.status());
  req.set_reason(*reason_text);
  auto stub = v1::SubjectRequests::NewStub(Connect(g));
  if (!allow_duplicate) {
    // A second request for a person with one open is usually a mistake (a re-run script, a
    // double click): say which, and record nothing unless told to.
    v1::FindOpenRequest find;
    *find.mutable_identities() = req.identities();
    v1::FindOpenResponse found;
    grpc::ClientContext fctx;
    fctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    if (grpc::Status fs = stub->FindOpen(&fctx, find, &found); !fs.ok())
      return FailGrpc("request erase", fs);
    if (found.matches_size() > 0) {
      std::cerr << "lethectl request erase: not submitted: an open request already covers this subject:\n";
      for (const auto& m : found.matches())
        std::cerr << "  " << m.request_id() << " (same " << absl::StrJoin(m.identity_types(), " and ")
                  << "): lethectl request get " << m.request_id() << "\n";
      std::cerr << "  to record another anyway: --allow-duplicate\n";
      return lethe::cli::kExitFailed;
    }
  }
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  grpc::Status s = stub->Submit(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("request erase", s);
  if (!wait) {
    if (g.json()) {
      std::cout << Json(resp.request());
    } else {
      // The id first (scripts take the first line), then where each domain starts.
      std::cout << resp.request_id() << "\n";
      for (const auto& d : resp.request().domains()) std::cout << DomainLine(d) << "\n";
      if (const std::string next = NextStep(resp.request(), /*only_when_stuck=*/false); !next.empty())
        std::cout << "needs an operator:\n" << next << "\n";
    }
    return 0;
  }
  if (!g.json()) {
    std::cout << "request " << resp.request_id() << " recorded; waiting for "
              << resp.request().domains_size() << " domain(s)\n";
  }
  return Watch(g, resp.request_id(), *timeout);
}

int RequestGet(const Global& g, const std::string& id) {
  auto stub = v1::SubjectRequests::NewStub(Connect(g));
  v1::GetRequestRequest req;
  req.set_request_id(id);
  v1::RequestView resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Get(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("request get", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    PrintRequest(resp);
  }
  return 0;
}

int RequestExtend(const Global& g, const std::string& id, const std::string& by,
                  const std::string& reason) {
  auto d = ParseFlagDuration("--by", by);
  if (!d.ok()) return Fail("request extend", d.status());
  v1::ExtendRequest req;
  req.set_request_id(id);
  req.set_extension_seconds(absl::ToInt64Seconds(*d));
  req.set_reason(reason);
  auto stub = v1::SubjectRequests::NewStub(Connect(g));
  v1::RequestView resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Extend(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("request extend", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    std::cout << "request " << id << ": due date moved to " << Time(resp.due_unix_ms()) << "\n";
  }
  return 0;
}

int RequestAddIdentity(const Global& g, const std::string& id,
                       const std::vector<std::string>& identities, const std::string& identities_from) {
  v1::AddIdentitiesRequest req;
  req.set_request_id(id);
  if (absl::Status st = ParseIdentities(identities, identities_from, req.mutable_identities()); !st.ok())
    return Fail("request add-identity", st);
  auto stub = v1::SubjectRequests::NewStub(Connect(g));
  v1::RequestView resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->AddIdentities(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("request add-identity", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    PrintRequest(resp);
  }
  return 0;
}

int RequestList(const Global& g, bool overdue) {
  auto stub = v1::SubjectRequests::NewStub(Connect(g));
  v1::ListRequestsResponse resp;
  v1::ListRequestsRequest req;
  req.set_overdue(overdue);
  req.set_page_size(1000);
  do {  // every page
    v1::ListRequestsResponse page;
    grpc::ClientContext ctx;
    grpc::Status s = stub->List(&ctx, req, &page);
    if (!s.ok()) return FailGrpc("request list", s);
    for (auto& r : *page.mutable_requests()) *resp.add_requests() = std::move(r);
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  if (overdue && resp.requests().empty()) {
    std::cout << "no overdue request\n";
    return 0;
  }
  std::cout << absl::StrFormat("%-32s %-8s %-12s %-20s %-20s %s\n", "REQUEST", "KIND", "STATE",
                               "RECEIVED", "DUE", "DOMAINS (done/total)");
  for (const auto& r : resp.requests()) {
    int done = 0;
    for (const auto& d : r.domains()) done += d.state() == v1::DONE || d.state() == v1::DOMAIN_FAILED;
    std::cout << absl::StrFormat("%-32s %-8s %-12s %-20s %-20s %d/%d\n", r.request_id(), r.kind(),
                                 r.overdue() ? "OVERDUE" : StateName(r.state()),
                                 Time(r.received_unix_ms()), Time(r.due_unix_ms()), done,
                                 r.domains_size());
  }
  return 0;
}

// ---- ledger -------------------------------------------------------------------------------

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
                                {"commands", r.commands},
                                {"receipts", r.receipts},
                                {"policy_activations", r.policy_activations},
                                {"consent_changes", r.consent_changes},
                                {"extensions", r.extensions},
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
            << r.requests_failed << " failed, "
            << (r.requests - r.requests_completed - r.requests_failed) << " in progress)\n"
            << "  commands    " << r.commands << "\n"
            << "  receipts    " << r.receipts << ", every signature verified against enrolled agent keys\n"
            << "  policies    " << r.policy_activations << " activation(s), each hashing to its recorded hash\n"
            << "  consent     " << r.consent_changes << " change(s), tokens only\n"
            << "  extensions  " << r.extensions << ", each within the policy's max_extension\n"
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

// `observe`, if set, sees every record the audit reads, in the same pass; *read_all says
// whether that pass got through every segment.
int LedgerVerifyOffline(const Global& g, const std::string& dir, const std::string& pub_path,
                        const std::function<void(const lethe::ledger::ScannedRecord&)>& observe = nullptr,
                        bool* read_all = nullptr) {
  if (read_all != nullptr) *read_all = false;
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail("ledger verify", key.status());
  const std::string ledger_dir = dir + "/ledger";
  const std::string cp_path = ledger_dir + "/" + lethe::ledger::Ledger::kCheckpointFile;
  if (!std::filesystem::exists(cp_path)) {
    // No checkpoint: acceptable over an empty log only; entries nothing signed vouches for
    // could be anything.
    auto scan = lethe::ledger::ScanSegments(ledger_dir, [](const lethe::ledger::ScannedRecord&) {
      return absl::OkStatus();
    });
    if (!scan.ok()) return PrintAudit(g, scan.status(), ledger_dir, "");
    if (scan->records == 0 && std::filesystem::is_directory(ledger_dir)) {
      if (read_all != nullptr) *read_all = true;
      std::cout << "ledger verify: OK (" << ledger_dir << "): the log is empty and has no checkpoint\n";
      return 0;
    }
    return PrintAudit(g, absl::DataLossError(absl::StrCat(
                             "no checkpoint (", cp_path, ") over a log of ", scan->records,
                             " entries: no signature vouches for any of them")),
                      ledger_dir, "");
  }
  auto note = lethe::ReadFile(cp_path);
  if (!note.ok()) return Fail("ledger verify", note.status());
  // One pass: the Auditor is told each record's segment and its version, so it checks batches
  // against segment boundaries as well as the entries.
  lethe::audit::Auditor auditor(*key, *note, g.audit);
  auto scan = lethe::ledger::ScanSegments(ledger_dir, [&](const lethe::ledger::ScannedRecord& rec) {
    if (observe) observe(rec);
    absl::Status s = auditor.Add(rec.index, rec.payload, rec.segment, rec.segment_version);
    if (!s.ok()) return lethe::Annotate(s, rec.segment + " offset " + std::to_string(rec.offset));
    return s;
  });
  std::string warning;
  if (!scan.ok()) return PrintAudit(g, scan.status(), ledger_dir, "");
  if (read_all != nullptr) *read_all = true;
  if (scan->torn_tail && !scan->torn_tail->zeros) {
    warning = absl::StrFormat(
        "torn tail in %s at offset %d (%d bytes): an unacknowledged write cut short by a crash; "
        "lethed removes it when it next starts",
        scan->torn_tail->segment, scan->torn_tail->offset, scan->torn_tail->bytes);
  }
  // Files lethed never writes there are not part of the log (FORMAT.md §5.1): named, ignored.
  auto strays = lethe::ledger::StrayLedgerFiles(ledger_dir);
  if (!strays.ok()) return PrintAudit(g, strays.status(), ledger_dir, "");
  if (!strays->empty()) {
    if (!warning.empty()) warning += "; ";
    warning += "files that are not part of the log, ignored: " + absl::StrJoin(*strays, ", ");
  }
  return PrintAudit(g, auditor.Finish(scan->last_segment), ledger_dir, warning);
}

int LedgerVerifyOnline(const Global& g, const std::string& pub_path) {
  auto stub = v1::Ledger::NewStub(Connect(g));
  v1::CheckpointView cp;
  {
    // A fresh checkpoint, so that the verification covers every entry there is now.
    grpc::ClientContext ctx;
    v1::GetCheckpointRequest req;
    req.set_fresh(true);
    grpc::Status s = stub->GetCheckpoint(&ctx, req, &cp);
    if (!s.ok()) return FailGrpc("ledger verify", s);
  }
  auto server_key = lethe::crypto::Ed25519PublicKey::FromPem(cp.public_key_pem());
  if (!server_key.ok()) return Fail("ledger verify", server_key.status());
  std::string warning;
  std::optional<lethe::crypto::Ed25519PublicKey> key;
  if (!pub_path.empty()) {
    auto pinned = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
    if (!pinned.ok()) return Fail("ledger verify", pinned.status());
    key = *pinned;
  } else {
    key = *server_key;
    warning = "verified against the key the server reports (" + server_key->KeyId() +
              "); pass --public-key to pin the key you trust";
  }
  lethe::audit::Auditor auditor(*key, cp.checkpoint(), g.audit);
  grpc::ClientContext ctx;
  v1::GetEntriesRequest req;
  req.set_start(0);
  req.set_end(cp.size());
  auto reader = stub->GetEntries(&ctx, req);
  v1::RawEntry e;
  absl::Status st;
  while (st.ok() && reader->Read(&e)) st = auditor.Add(e.seq(), e.entry());
  if (!st.ok()) {
    ctx.TryCancel();
    reader->Finish();
    return PrintAudit(g, st, g.addr, "");
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FailGrpc("ledger verify", s);
  return PrintAudit(g, auditor.Finish(), g.addr, warning);
}

// The key the auditor trusts: the pinned file, or (with a warning) the server's.
absl::StatusOr<lethe::crypto::Ed25519PublicKey> TrustedKey(const std::string& pub_path,
                                                            const std::string& server_pem,
                                                            std::string* warning) {
  if (!pub_path.empty()) return lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  LETHE_ASSIGN_OR_RETURN(auto key, lethe::crypto::Ed25519PublicKey::FromPem(server_pem));
  *warning = "trusting the key the server reports (" + key.KeyId() +
             "); pass --public-key to pin the key you trust";
  return key;
}

absl::StatusOr<v1::CheckpointView> FetchCheckpoint(const Global& g, bool fresh) {
  auto stub = v1::Ledger::NewStub(Connect(g));
  v1::GetCheckpointRequest req;
  req.set_fresh(fresh);
  v1::CheckpointView cp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->GetCheckpoint(&ctx, req, &cp);
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return cp;
}

// Fetches and verifies the checkpoint; returns it parsed.
absl::StatusOr<std::pair<v1::CheckpointView, lethe::ledger::Checkpoint>> VerifiedCheckpoint(
    const Global& g, const std::string& pub_path, bool fresh, std::string* warning) {
  LETHE_ASSIGN_OR_RETURN(v1::CheckpointView view, FetchCheckpoint(g, fresh));
  LETHE_ASSIGN_OR_RETURN(auto key, TrustedKey(pub_path, view.public_key_pem(), warning));
  LETHE_ASSIGN_OR_RETURN(auto unverified, lethe::ledger::ParseCheckpointUnverified(view.checkpoint()));
  LETHE_ASSIGN_OR_RETURN(auto cp, lethe::ledger::VerifyCheckpoint(view.checkpoint(), unverified.origin, key));
  return std::make_pair(view, cp);
}

// ---- kept checkpoints: ledger checkpoint --save DIR, ledger verify --since FILE|DIR --------

// The name a checkpoint of `size` entries is kept under by --save.
std::string KeptName(uint64_t size) { return absl::StrFormat("%020d.checkpoint", size); }

bool IsKeptName(const std::string& name, uint64_t* size) {
  return name.size() == 31 && name.substr(20) == ".checkpoint" &&
         std::all_of(name.begin(), name.begin() + 20, [](char c) { return c >= '0' && c <= '9'; }) &&
         absl::SimpleAtoi(name.substr(0, 20), size);
}

struct KeptCheckpoint {
  std::string path;
  std::string note;
};

// The kept checkpoints `since` names: one file, or every *.checkpoint file of a directory in
// name order (for names --save gives, the order of their sizes).
absl::StatusOr<std::vector<KeptCheckpoint>> LoadKept(const std::string& since) {
  namespace fs = std::filesystem;
  std::vector<std::string> paths;
  std::error_code ec;
  if (fs::is_directory(since, ec)) {
    for (const auto& e : fs::directory_iterator(since, ec))
      if (e.path().extension() == ".checkpoint" && e.is_regular_file()) paths.push_back(e.path().string());
    if (ec) return absl::UnavailableError("cannot list " + since + ": " + ec.message());
    if (paths.empty())
      return absl::NotFoundError("no kept checkpoints (*.checkpoint) in " + since +
                                 "; keep them with `ledger checkpoint --save " + since + "`");
    std::sort(paths.begin(), paths.end());
  } else {
    paths.push_back(since);
  }
  std::vector<KeptCheckpoint> out;
  for (auto& p : paths) {
    LETHE_ASSIGN_OR_RETURN(std::string note, lethe::ReadFile(p));
    out.push_back(KeptCheckpoint{std::move(p), std::move(note)});
  }
  return out;
}

// The roots of a log at the sizes of kept checkpoints, from its leaf hashes in order.
class RootsAt {
 public:
  explicit RootsAt(const std::vector<KeptCheckpoint>& kept) {
    for (const auto& k : kept)
      if (auto cp = lethe::ledger::ParseCheckpointUnverified(k.note); cp.ok()) sizes_.push_back(cp->size);
    std::sort(sizes_.begin(), sizes_.end());
    sizes_.erase(std::unique(sizes_.begin(), sizes_.end()), sizes_.end());
    Record();
  }
  void Add(std::string leaf) {
    range_.Append(std::move(leaf));
    Record();
  }
  uint64_t size() const { return range_.size(); }
  // Whether the log, at the kept checkpoint's size (at most size()), has its root.
  absl::StatusOr<std::string> Extends(const lethe::ledger::Checkpoint& cp) const {
    auto it = roots_.find(cp.size);
    if (it == roots_.end()) return absl::InternalError(absl::StrCat("no root computed at size ", cp.size));
    if (it->second != cp.root)
      return absl::DataLossError(absl::StrCat("the log's root at that size is ", lethe::crypto::Base64(it->second),
                                              ", the kept checkpoint's ", lethe::crypto::Base64(cp.root)));
    return std::string("its root recomputed from the entries");
  }

 private:
  void Record() {
    while (next_ < sizes_.size() && sizes_[next_] < range_.size()) ++next_;
    if (next_ < sizes_.size() && sizes_[next_] == range_.size()) roots_[range_.size()] = range_.Root();
  }
  std::vector<uint64_t> sizes_;
  size_t next_ = 0;
  lethe::ledger::CompactRange range_;
  std::map<uint64_t, std::string> roots_;
};

// Checks a log of `log_size` entries against every kept checkpoint: each must verify under
// `key` (key name `origin`, or its own origin when that is empty), the log must be at least
// as large (else it was cut back: a rollback), and `extends` must show the log extends it.
// Prints each failure naming its file, then the verdict; returns the exit code.
int CheckKept(const Global& g, const std::string& since, const std::vector<KeptCheckpoint>& kept,
              const std::string& origin, const lethe::crypto::Ed25519PublicKey& key, uint64_t log_size,
              const std::string& method,
              const std::function<absl::StatusOr<std::string>(const lethe::ledger::Checkpoint&)>& extends) {
  nlohmann::json failures = nlohmann::json::array();
  uint64_t smallest = UINT64_MAX, largest = 0;
  std::string detail;
  for (const auto& k : kept) {
    absl::Status st;
    std::string key_name = origin;
    if (key_name.empty())
      if (auto own = lethe::ledger::ParseCheckpointUnverified(k.note); own.ok()) key_name = own->origin;
    auto cp = lethe::ledger::VerifyCheckpoint(k.note, key_name, key);
    if (!cp.ok()) {
      st = absl::Status(cp.status().code(), absl::StrCat("not a checkpoint of ", key_name, " signed by ",
                                                         key.KeyId(), ": ", cp.status().message()));
    } else if (cp->size > log_size) {
      st = absl::DataLossError(absl::StrFormat(
          "rollback: the kept checkpoint covers %d entries but the log has only %d: it was cut back "
          "to an older state (or it is another log)",
          cp->size, log_size));
    } else if (auto how = extends(*cp); !how.ok()) {
      st = absl::DataLossError(absl::StrFormat("the log does not extend the kept checkpoint of %d entries: %s",
                                               cp->size, how.status().message()));
    } else {
      detail = *how;
      smallest = std::min(smallest, cp->size);
      largest = std::max(largest, cp->size);
    }
    if (!st.ok()) {
      std::cerr << "ledger verify --since: FAILED: " << k.path << ": " << st.message() << "\n";
      failures.push_back({{"file", k.path}, {"error", std::string(st.message())}});
    }
  }
  if (g.json()) {
    std::cout << nlohmann::json{{"ok", failures.empty()}, {"since", since}, {"kept", kept.size()},
                                {"to", log_size}, {"failures", failures}}.dump(2) << "\n";
  } else if (failures.empty() && kept.size() == 1) {
    std::cout << "ledger verify --since: OK: the log of " << log_size
              << " entries extends the kept checkpoint of " << largest << " entries (" << detail
              << "; both checkpoints signed by " << key.KeyId() << ")\n";
  } else if (failures.empty()) {
    std::cout << "ledger verify --since: OK: the log of " << log_size << " entries extends all "
              << kept.size() << " kept checkpoints in " << since << " (sizes " << smallest << " to "
              << largest << ", each signed by " << key.KeyId() << "; " << method << ")\n";
  } else {
    std::cerr << "ledger verify --since: FAILED: " << failures.size() << " of " << kept.size()
              << " kept checkpoint(s) in " << since << " are not extended by the log of " << log_size
              << " entries\n";
  }
  return failures.empty() ? 0 : 1;
}

// `ledger checkpoint --save DIR`: keeps in DIR the latest checkpoint and every one lethed
// signed since the largest DIR holds (every one, the first time), each verified under `key`
// and proven consistent with the latest, as DIR/<size, 20 digits>.checkpoint. A kept file is
// never replaced: the same size with another root is a fork. Counts what it kept.
// Proves with lethed's consistency proof that `latest` extends `old` (old.size <=
// latest.size); returns the number of hashes in the proof.
absl::StatusOr<size_t> ProveExtends(v1::Ledger::Stub& stub, const lethe::ledger::Checkpoint& old,
                                    const lethe::ledger::Checkpoint& latest) {
  std::vector<std::string> path;
  if (old.size > 0 && old.size < latest.size) {
    v1::GetConsistencyProofRequest req;
    req.set_from(old.size);
    req.set_to(latest.size);
    v1::ConsistencyProofView proof;
    grpc::ClientContext ctx;
    grpc::Status s = stub.GetConsistencyProof(&ctx, req, &proof);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), "consistency proof: " + s.error_message());
    path.assign(proof.proof().begin(), proof.proof().end());
  }
  LETHE_RETURN_IF_ERROR(lethe::ledger::VerifyConsistency(old.size, latest.size, path, old.root, latest.root));
  return path.size();
}

absl::Status SaveCheckpoints(const Global& g, const lethe::crypto::Ed25519PublicKey& key,
                             const std::string& latest_note, const lethe::ledger::Checkpoint& latest,
                             const std::string& dir, uint64_t* added, uint64_t* already) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError("cannot create " + dir + ": " + ec.message());
  auto stub = v1::Ledger::NewStub(Connect(g));
  // Whether the latest checkpoint extends `old` (old.size <= latest.size).
  auto consistent = [&](const lethe::ledger::Checkpoint& old) -> absl::Status {
    return ProveExtends(*stub, old, latest).status();
  };

  // The largest checkpoint kept already. The log must not have shrunk below it, and must
  // still extend it (and so every one kept before it, each of which it was checked against
  // when it was kept): checked before anything newer is kept.
  uint64_t largest_name = 0;
  bool have = false;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    uint64_t size = 0;
    if (IsKeptName(e.path().filename().string(), &size)) {
      largest_name = have ? std::max(largest_name, size) : size;
      have = true;
    }
  }
  if (ec) return absl::UnavailableError("cannot list " + dir + ": " + ec.message());
  const std::string largest_path = dir + "/" + KeptName(largest_name);
  std::optional<lethe::ledger::Checkpoint> largest;
  if (have) {
    LETHE_ASSIGN_OR_RETURN(std::string note, lethe::ReadFile(largest_path));
    auto kept = lethe::ledger::VerifyCheckpoint(note, latest.origin, key);
    if (!kept.ok()) return lethe::Annotate(kept.status(), "the kept checkpoint " + largest_path);
    if (kept->size > latest.size)
      return absl::DataLossError(absl::StrFormat(
          "rollback: the kept checkpoint %s covers %d entries but lethed's latest only %d: the log was "
          "cut back to an older state (or it is another log)",
          largest_path, kept->size, latest.size));
    largest = *kept;
  }
  bool largest_checked = !have;
  auto check_largest = [&]() -> absl::Status {
    if (largest_checked) return absl::OkStatus();
    largest_checked = true;
    if (absl::Status s = consistent(*largest); !s.ok())
      return absl::DataLossError(absl::StrFormat(
          "the log no longer extends the kept checkpoint %s (a fork, or a rewritten history): %s",
          largest_path, s.message()));
    return absl::OkStatus();
  };

  // One checkpoint lethed serves, verified already. The one kept under its size, if any, is
  // the largest kept (the list starts at its size): same root, or a fork. Any other is proven
  // consistent with the latest, then kept (never over an existing file).
  auto keep = [&](const lethe::ledger::Checkpoint& cp, const std::string& note) -> absl::Status {
    if (largest && cp.size == largest->size) {
      ++*already;
      if (cp.root == largest->root) return absl::OkStatus();
      return absl::DataLossError(absl::StrCat(
          "FORK: ", largest_path, " keeps a checkpoint of ", cp.size, " entries with root ",
          lethe::crypto::Base64(largest->root), ", and lethed now serves one of the same size with root ",
          lethe::crypto::Base64(cp.root),
          ": two histories signed by the same key. Keep both notes as evidence; the one lethed "
          "serves:\n",
          note));
    }
    LETHE_RETURN_IF_ERROR(check_largest());
    if (absl::Status st = consistent(cp); !st.ok())
      return absl::DataLossError(absl::StrFormat(
          "lethed's checkpoint of %d entries is not consistent with its latest, of %d: %s", cp.size,
          latest.size, st.message()));
    LETHE_RETURN_IF_ERROR(lethe::WriteNewFile(dir + "/" + KeptName(cp.size), note, 0644));
    ++*added;
    return absl::OkStatus();
  };

  bool saw_latest = false, done = false;
  std::string token;
  do {
    v1::ListCheckpointsRequest req;
    req.set_from_size(largest ? largest->size : 0);
    req.set_page_size(1000);
    req.set_page_token(token);
    v1::ListCheckpointsResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub->ListCheckpoints(&ctx, req, &resp);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), "ListCheckpoints: " + s.error_message());
    for (const auto& c : resp.checkpoints()) {
      auto cp = lethe::ledger::VerifyCheckpoint(c.checkpoint(), latest.origin, key);
      if (!cp.ok())
        return absl::DataLossError(absl::StrCat("lethed serves a checkpoint (size ", c.size(),
                                                ") that does not verify: ", cp.status().message()));
      if (cp->size > latest.size) {  // signed after the latest: kept next time
        done = true;
        break;
      }
      saw_latest = saw_latest || cp->size == latest.size;
      LETHE_RETURN_IF_ERROR(keep(*cp, c.checkpoint()));
    }
    token = resp.next_page_token();
  } while (!done && !token.empty());
  if (!saw_latest) LETHE_RETURN_IF_ERROR(keep(latest, latest_note));
  return check_largest();
}

int LedgerCheckpoint(const Global& g, const std::string& pub_path, bool fresh, const std::string& out,
                     const std::string& save) {
  std::string warning;
  auto cp = VerifiedCheckpoint(g, pub_path, fresh, &warning);
  if (!cp.ok()) return Fail("ledger checkpoint", cp.status());
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  if (!out.empty()) {
    if (auto s = lethe::WriteFileAtomic(out, cp->first.checkpoint(), 0644); !s.ok())
      return Fail("ledger checkpoint", s);
    std::cerr << "checkpoint of size " << cp->second.size << " verified and saved to " << out << "\n";
  }
  uint64_t added = 0, already = 0;
  if (!save.empty()) {
    auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
    if (!key.ok()) return Fail("ledger checkpoint --save", key.status());
    absl::Status s = SaveCheckpoints(g, *key, cp->first.checkpoint(), cp->second, save, &added, &already);
    if (!s.ok()) {
      std::cerr << "lethectl ledger checkpoint --save: FAILED after keeping " << added
                << " new checkpoint(s) in " << save << ": " << s.message() << "\n";
      return 1;
    }
    std::cerr << "ledger checkpoint --save: " << added << " new checkpoint(s) kept in " << save << " ("
              << already << " already kept); each signed by " << key->KeyId()
              << " and consistent with the latest, of " << cp->second.size << " entries\n";
  }
  if (g.json()) {
    nlohmann::json j{{"origin", cp->second.origin}, {"size", cp->second.size},
                     {"root", lethe::crypto::Base64(cp->second.root)}, {"checkpoint", cp->first.checkpoint()}};
    if (!save.empty()) j["saved"] = {{"dir", save}, {"new", added}, {"already_kept", already}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << cp->first.checkpoint();
  }
  return 0;
}

int LedgerVerifierKey(const Global& g, const std::string& pub_path, const std::string& origin) {
  if (!pub_path.empty()) {  // offline
    auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
    if (!key.ok()) return Fail("ledger verifier-key", key.status());
    const std::string vkey = lethe::ledger::VerifierKey(origin.empty() ? lethe::ledger::kDefaultOrigin : origin, *key);
    std::cout << (g.json() ? nlohmann::json{{"verifier_key", vkey}}.dump(2) : vkey) << "\n";
    return 0;
  }
  auto view = FetchCheckpoint(g, false);
  if (!view.ok()) return Fail("ledger verifier-key", view.status());
  auto key = lethe::crypto::Ed25519PublicKey::FromPem(view->public_key_pem());
  auto cp = lethe::ledger::ParseCheckpointUnverified(view->checkpoint());
  if (!key.ok() || !cp.ok()) return Fail("ledger verifier-key", absl::InternalError("bad server answer"));
  const std::string vkey = lethe::ledger::VerifierKey(origin.empty() ? cp->origin : origin, *key);
  std::cout << (g.json() ? nlohmann::json{{"verifier_key", vkey}}.dump(2) : vkey) << "\n";
  return 0;
}

int LedgerProof(const Global& g, uint64_t index, const std::string& pub_path) {
  std::string warning;
  auto cp = VerifiedCheckpoint(g, pub_path, /*fresh=*/true, &warning);
  if (!cp.ok()) return Fail("ledger proof", cp.status());
  auto stub = v1::Ledger::NewStub(Connect(g));
  v1::GetInclusionProofRequest req;
  req.set_index(index);
  req.set_size(cp->second.size);
  v1::InclusionProofView proof;
  grpc::ClientContext ctx;
  grpc::Status s = stub->GetInclusionProof(&ctx, req, &proof);
  if (!s.ok()) return FailGrpc("ledger proof", s);
  std::vector<std::string> path(proof.proof().begin(), proof.proof().end());
  if (auto v = lethe::ledger::VerifyInclusion(index, cp->second.size,
                                              lethe::ledger::LeafHash(proof.entry()), path,
                                              cp->second.root);
      !v.ok())
    return Fail("ledger proof", v);
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  // C2SP tlog-proof@v1: header, index, proof hashes, blank line, the checkpoint verbatim.
  std::string text = absl::StrCat("c2sp.org/tlog-proof@v1\nindex ", index, "\n");
  std::vector<std::string> hashes;
  for (const auto& h : path) hashes.push_back(lethe::crypto::Base64(h));
  for (const auto& h : hashes) absl::StrAppend(&text, h, "\n");
  absl::StrAppend(&text, "\n", cp->first.checkpoint());
  if (g.json()) {
    std::cout << nlohmann::json{{"index", index},
                                {"tree_size", cp->second.size},
                                {"proof", hashes},
                                {"checkpoint", cp->first.checkpoint()},
                                {"tlog_proof", text}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << text;
  }
  return 0;
}

// `ledger verify --since FILE|DIR` against lethed: the log, at a fresh checkpoint, must extend
// every kept checkpoint (consistency proofs).
int LedgerVerifySince(const Global& g, const std::string& since, const std::string& pub_path) {
  auto kept = LoadKept(since);
  if (!kept.ok()) return Fail("ledger verify --since", kept.status());
  std::string warning;
  auto now = VerifiedCheckpoint(g, pub_path, /*fresh=*/true, &warning);
  if (!now.ok()) return Fail("ledger verify --since", now.status());
  auto key = TrustedKey(pub_path, now->first.public_key_pem(), &warning);
  if (!key.ok()) return Fail("ledger verify --since", key.status());
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  const lethe::ledger::Checkpoint cur = now->second;
  auto stub = v1::Ledger::NewStub(Connect(g));
  return CheckKept(
      g, since, *kept, cur.origin, *key, cur.size, "consistency proofs to the latest checkpoint",
      [&](const lethe::ledger::Checkpoint& old) -> absl::StatusOr<std::string> {
        LETHE_ASSIGN_OR_RETURN(size_t hashes, ProveExtends(*stub, old, cur));
        return absl::StrFormat("%d-hash consistency proof verified", hashes);
      });
}

// `ledger verify --dir DIR --since FILE|DIR`: the audit, and the entries on disk must extend
// every kept checkpoint (the root at its size, recomputed in the audit's pass).
int LedgerVerifyOfflineSince(const Global& g, const std::string& dir, const std::string& since,
                             const std::string& pub_path) {
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail("ledger verify --since", key.status());
  auto kept = LoadKept(since);
  if (!kept.ok()) return Fail("ledger verify --since", kept.status());
  RootsAt roots(*kept);
  std::string origin;  // named by entry 0
  bool read_all = false;
  const int rc = LedgerVerifyOffline(
      g, dir, pub_path,
      [&](const lethe::ledger::ScannedRecord& rec) {
        if (rec.index == 0) {
          v1::LedgerEntry e;
          if (e.ParseFromArray(rec.payload.data(), static_cast<int>(rec.payload.size())))
            origin = e.log_created().origin();
        }
        roots.Add(lethe::ledger::LeafHash(rec.payload));
      },
      &read_all);
  if (!read_all) return std::max(rc, 1);  // the audit could not read every record: said above
  return std::max(rc, CheckKept(g, since, *kept, origin, *key, roots.size(), "roots recomputed from the entries",
                                [&](const lethe::ledger::Checkpoint& cp) { return roots.Extends(cp); }));
}

int LedgerExport(const Global& g, const std::string& out, const std::string& pub_path) {
  std::string warning;
  auto cp = VerifiedCheckpoint(g, pub_path, /*fresh=*/true, &warning);
  if (!cp.ok()) return Fail("ledger export", cp.status());
  auto stub = v1::Ledger::NewStub(Connect(g));
  grpc::ClientContext ctx;
  v1::GetEntriesRequest req;
  req.set_start(0);
  req.set_end(cp->second.size);
  auto reader = stub->GetEntries(&ctx, req);
  std::vector<std::string> entries;
  v1::RawEntry e;
  while (reader->Read(&e)) entries.push_back(std::move(*e.mutable_entry()));
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FailGrpc("ledger export", s);
  absl::Status st = lethe::audit::ExportTiles(
      out, cp->second.size, cp->first.checkpoint(),
      [&](uint64_t i) -> absl::StatusOr<std::string> {
        if (i >= entries.size()) return absl::DataLossError("server sent too few entries");
        return entries[i];
      });
  if (!st.ok()) return Fail("ledger export", st);
  auto key = TrustedKey(pub_path, cp->first.public_key_pem(), &warning);
  if (!key.ok()) return Fail("ledger export", key.status());
  auto report = lethe::audit::VerifyTiles(out, *key, g.audit);
  if (!report.ok()) return Fail("ledger export", lethe::Annotate(report.status(), "verifying the export"));
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  if (g.json()) {
    std::cout << nlohmann::json{{"out", out},
                                {"entries", report->size},
                                {"full_tiles", report->full_tiles},
                                {"partial_tiles", report->partial_tiles},
                                {"entry_bundles", report->bundles},
                                {"verified", true}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << "exported " << report->size << " entries to " << out << " as C2SP tlog-tiles ("
            << report->full_tiles << " full and " << report->partial_tiles << " partial hash tiles, "
            << report->bundles << " entry bundles, lethe/agents.json); verified\n";
  return 0;
}

int LedgerVerifyBundle(const Global& g, const std::string& dir, const std::string& pub_path,
                       const std::string& since) {
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail("ledger verify --bundle", key.status());
  auto report = lethe::audit::VerifyTiles(dir, *key, g.audit);
  if (!report.ok()) return PrintAudit(g, report.status(), dir, "");
  std::string note = absl::StrFormat("tiles: %d full, %d partial, %d entry bundles; every file checked",
                                     report->full_tiles, report->partial_tiles, report->bundles);
  if (!g.json()) std::cout << note << "\n";
  const int rc = PrintAudit(g, report->audit, dir, "");
  if (since.empty()) return rc;
  // The export must extend every kept checkpoint: the roots at their sizes come from the
  // level-0 tiles (the leaf hashes), which VerifyTiles has just checked against the export's
  // checkpoint.
  auto kept = LoadKept(since);
  if (!kept.ok()) return Fail("ledger verify --since", kept.status());
  RootsAt roots(*kept);
  for (uint64_t n = 0; n * lethe::audit::kTileWidth < report->size; ++n) {
    const uint64_t left = report->size - n * lethe::audit::kTileWidth;
    const int width = left >= lethe::audit::kTileWidth ? 0 : static_cast<int>(left);
    auto tile = lethe::ReadFile(dir + "/" + lethe::audit::TilePath(0, n, width));
    if (!tile.ok()) return Fail("ledger verify --since", tile.status());
    for (size_t i = 0; i + 32 <= tile->size(); i += 32) roots.Add(tile->substr(i, 32));
  }
  if (roots.size() != report->size)
    return Fail("ledger verify --since", absl::DataLossError(absl::StrFormat(
                                             "the level-0 tiles of %s hold %d leaves, not %d", dir,
                                             roots.size(), report->size)));
  return std::max(rc, CheckKept(g, since, *kept, report->audit.origin, *key, report->size,
                                "roots recomputed from the export's tiles",
                                [&](const lethe::ledger::Checkpoint& cp) { return roots.Extends(cp); }));
}

std::string OutcomeName(v1::RequestCompleted::Outcome o) {
  return o == v1::RequestCompleted::COMPLETED ? "COMPLETED" : "FAILED";
}

void PrintCertificate(const lethe::audit::CertificateReport& r) {
  std::cout << "Erasure certificate for request " << r.request_id << ": " << OutcomeName(r.outcome) << "\n"
            << "  log        " << r.origin << ", checkpoint of " << r.checkpoint_size
            << " entries (signature verified)\n"
            << "  identities " << absl::StrJoin(r.identity_types, ", ") << " (as keyed hashes only)\n"
            << "  received   " << Time(r.received_unix_ms) << "   due " << Time(r.due_unix_ms)
            << (r.extensions ? absl::StrCat(" (after ", r.extensions, " extension(s))") : "")
            << "   completed " << Time(r.completed_unix_ms) << "\n";
  if (!r.scope_purpose.empty())
    std::cout << "  scope      the domains of purpose " << r.scope_purpose
              << ", planned by the consent withdrawal included below\n";
  for (const auto& d : r.domains) {
    std::cout << "  " << absl::StrFormat("%-16s", d.domain) << " receipt entry " << d.receipt_entry
              << ", signed by agent key " << d.agent_key_id << ": "
              << (d.receipt.outcome() == v1::Receipt::COMPLETED ? "purged" : "FAILED: " + d.receipt.error())
              << "\n";
    for (const auto& t : d.receipt.tables())
      std::cout << "      " << TableSummary(t) << (t.action() == "retain" ? "" : ", 0 remaining") << "\n";
    for (const auto& t : d.receipt.tombstones()) {
      std::cout << "      tombstone " << t.topic() << " partition " << t.partition() << " offset " << t.offset();
      if (t.config_read())
        std::cout << " (cleanup.policy=" << t.cleanup_policy() << ", delete.retention.ms="
                  << t.delete_retention_ms() << ", max.compaction.lag.ms=" << t.max_compaction_lag_ms() << ")";
      else
        std::cout << " (topic configuration not readable)";
      std::cout << "\n";
    }
  }
  std::cout << "  " << r.entries << " ledger entries, each proven included in the checkpointed log\n";
}

int RequestCertificate(const Global& g, const std::string& id, const std::string& out,
                       const std::string& pub_path) {
  auto stub = v1::Ledger::NewStub(Connect(g));
  v1::GetCertificateRequest req;
  req.set_request_id(id);
  v1::ErasureCertificate cert;
  grpc::ClientContext ctx;
  grpc::Status s = stub->GetCertificate(&ctx, req, &cert);
  if (!s.ok()) return FailGrpc("request certificate", s);
  std::string warning;
  auto view = FetchCheckpoint(g, false);
  if (!view.ok()) return Fail("request certificate", view.status());
  auto key = TrustedKey(pub_path, view->public_key_pem(), &warning);
  if (!key.ok()) return Fail("request certificate", key.status());
  auto report = lethe::audit::VerifyCertificate(cert, *key);
  if (!report.ok()) return Fail("request certificate", report.status());
  std::string json = Json(cert);
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  if (out.empty()) {
    std::cout << json;
  } else {
    if (auto st = lethe::WriteFileAtomic(out, json, 0644); !st.ok())
      return Fail("request certificate", st);
    if (g.json()) {
      std::cout << nlohmann::json{{"out", out}, {"request_id", id}, {"verified", true}}.dump(2) << "\n";
      return 0;
    }
    PrintCertificate(*report);
    std::cout << "written to " << out << "; check it with: lethectl request certificate --verify "
              << out << " --public-key LETHED.pub\n";
  }
  return 0;
}

int RequestCertificateVerify(const Global& g, const std::string& file, const std::string& pub_path) {
  if (pub_path.empty())
    return Fail("request certificate --verify", absl::InvalidArgumentError("--verify needs --public-key"));
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail("request certificate --verify", key.status());
  auto text = lethe::ReadFile(file);
  if (!text.ok()) return Fail("request certificate --verify", text.status());
  v1::ErasureCertificate cert;
  if (!google::protobuf::util::JsonStringToMessage(*text, &cert).ok())
    return Fail("request certificate --verify", absl::InvalidArgumentError(file + ": not a certificate (JSON)"));
  auto report = lethe::audit::VerifyCertificate(cert, *key);
  if (!report.ok()) {
    std::cerr << "certificate: INVALID: " << report.status().message() << "\n";
    return 1;
  }
  if (g.json()) {
    std::cout << nlohmann::json{{"ok", true}, {"request_id", report->request_id},
                                {"outcome", OutcomeName(report->outcome)},
                                {"checkpoint_size", report->checkpoint_size}}.dump(2) << "\n";
  } else {
    PrintCertificate(*report);
    std::cout << "certificate: VALID\n";
  }
  return 0;
}

// ---- policy -------------------------------------------------------------------------------

int PolicyValidate(const Global& g, const std::string& path) {
  auto text = lethe::ReadFile(path);
  if (!text.ok()) return Fail("policy validate", text.status());
  auto diags = lethe::policies::Policy::Validate(*text);
  if (g.json()) {
    nlohmann::json out = {{"file", path}, {"valid", diags.empty()}, {"errors", nlohmann::json::array()}};
    for (const auto& d : diags)
      out["errors"].push_back({{"line", d.line}, {"column", d.column}, {"message", d.message}});
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& d : diags) std::cerr << d.ToString(path) << "\n";
    if (diags.empty()) {
      auto p = lethe::policies::Policy::Parse(*text, path);
      std::cout << path << ": valid (policy \"" << p->name() << "\", " << p->domains().size()
                << " domain(s), sha256 " << lethe::crypto::Hex(p->Hash()) << ")\n";
    } else {
      std::cerr << path << ": " << diags.size() << " error(s)\n";
    }
  }
  return diags.empty() ? 0 : 1;
}

int PolicyActivate(const Global& g, const std::string& path) {
  auto text = lethe::ReadFile(path);
  if (!text.ok()) return Fail("policy activate", text.status());
  // Check locally first: every error at once, with line and column, without a round trip.
  auto diags = lethe::policies::Policy::Validate(*text);
  if (!diags.empty()) {
    for (const auto& d : diags) std::cerr << d.ToString(path) << "\n";
    std::cerr << path << ": " << diags.size() << " error(s); nothing activated\n";
    return 2;
  }
  v1::ActivatePolicyRequest req;
  req.set_yaml(*text);
  req.set_source_name(path);
  auto stub = v1::Policies::NewStub(Connect(g));
  v1::PolicyView resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Activate(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("policy activate", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    std::cout << "policy \"" << resp.name() << "\" activated: activation " << resp.activation()
              << ", sha256 " << resp.policy_hash() << ", ledger entry " << resp.entry() << "\n"
              << "  domains: " << absl::StrJoin(resp.domains(), ", ") << "\n"
              << "  agents whose local policy section differs will refuse new commands "
                 "(policy drift) until they run this file\n";
  }
  return 0;
}

int PolicyShow(const Global& g, bool with_yaml) {
  auto stub = v1::Policies::NewStub(Connect(g));
  v1::ShowPolicyResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Show(&ctx, v1::ShowPolicyRequest(), &resp);
  if (!s.ok()) return FailGrpc("policy show", s);
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  const auto& a = resp.active();
  std::cout << "active policy: \"" << a.name() << "\" (format version " << a.format_version()
            << "), activation " << a.activation() << "\n"
            << "  sha256     " << a.policy_hash() << "\n"
            << "  activated  " << Time(a.activated_unix_ms()) << " by " << ActorLine(a.activated_by())
            << " via " << a.source() << " (ledger entry " << a.entry() << ")\n"
            << "  domains    " << absl::StrJoin(a.domains(), ", ") << "\n"
            << "  purposes   " << (a.purposes().empty() ? "-" : absl::StrJoin(a.purposes(), ", ")) << "\n"
            << "history:\n"
            << absl::StrFormat("  %-4s %-20s %-16s %-6s %s\n", "#", "ACTIVATED", "SHA256", "ENTRY", "SOURCE");
  for (const auto& h : resp.history())
    std::cout << absl::StrFormat("  %-4d %-20s %-16s %-6d %s, by %s\n", h.activation(),
                                 Time(h.activated_unix_ms()), h.policy_hash().substr(0, 16), h.entry(),
                                 h.source(), ActorLine(h.activated_by()));
  if (with_yaml) std::cout << "---\n" << a.yaml();
  return 0;
}

// ---- consent ------------------------------------------------------------------------------

const char* ConsentName(v1::ConsentStatus s) {
  return s == v1::GRANTED ? "GRANTED" : s == v1::WITHDRAWN ? "WITHDRAWN" : "UNKNOWN";
}

// Exactly one identity, from --identity or --identities-from.
absl::StatusOr<v1::Identity> OneIdentity(const std::string& arg, const std::string& from) {
  google::protobuf::RepeatedPtrField<v1::Identity> ids;
  std::vector<std::string> flags;
  if (!arg.empty()) flags.push_back(arg);
  LETHE_RETURN_IF_ERROR(ParseIdentities(flags, from, &ids));
  if (ids.size() != 1)
    return absl::InvalidArgumentError(absl::StrCat("consent is per identity: give exactly one, not ", ids.size()));
  return ids[0];
}

int ConsentChange(const Global& g, v1::ConsentStatus status, const std::string& identity,
                  const std::string& identities_from, const std::string& purpose,
                  const std::string& source) {
  const std::string what = status == v1::GRANTED ? "consent grant" : "consent withdraw";
  auto id = OneIdentity(identity, identities_from);
  if (!id.ok()) return Fail(what, id.status());
  v1::ChangeConsentRequest req;
  *req.mutable_identity() = *id;
  req.set_purpose(purpose);
  req.set_status(status);
  req.set_source(source);
  auto stub = v1::Consent::NewStub(Connect(g));
  v1::ConsentChangeView resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Change(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc(what, s);
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  const auto& c = resp.change();
  std::cout << "consent " << (status == v1::GRANTED ? "granted" : "withdrawn") << " for purpose "
            << c.purpose() << ": ledger entry " << c.entry() << ", subject " << c.identity_type()
            << " token " << c.subject_token().substr(0, 16) << "\n";
  if (!c.erasure_request_id().empty())
    std::cout << "erasure planned in the purpose's domains: request " << c.erasure_request_id()
              << " (lethectl request get " << c.erasure_request_id() << ")\n";
  return 0;
}

std::string ConsentLine(const v1::ConsentRecordView& c) {
  return absl::StrFormat("  %-14s %-10s %-20s entry %-6d %s%s", c.purpose(), ConsentName(c.status()),
                         Time(c.changed_unix_ms()), c.entry(), c.source(),
                         c.erasure_request_id().empty() ? "" : "  -> erasure " + c.erasure_request_id());
}

int ConsentShow(const Global& g, const std::string& identity, const std::string& identities_from) {
  auto id = OneIdentity(identity, identities_from);
  if (!id.ok()) return Fail("consent show", id.status());
  v1::ShowConsentRequest req;
  *req.mutable_identity() = *id;
  auto stub = v1::Consent::NewStub(Connect(g));
  v1::ShowConsentResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Show(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("consent show", s);
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  std::cout << "subject " << resp.identity_type() << " token " << resp.subject_token() << "\n";
  if (resp.history().empty()) {
    std::cout << "no consent recorded\n";
    return 0;
  }
  std::cout << "current:\n";
  for (const auto& c : resp.current()) std::cout << ConsentLine(c) << "\n";
  std::cout << "history:\n";
  for (const auto& c : resp.history()) std::cout << ConsentLine(c) << "\n";
  return 0;
}

int ConsentList(const Global& g, const std::string& purpose, const std::string& status) {
  v1::ListConsentRequest req;
  req.set_purpose(purpose);
  if (status == "granted") req.set_status(v1::GRANTED);
  if (status == "withdrawn") req.set_status(v1::WITHDRAWN);
  auto stub = v1::Consent::NewStub(Connect(g));
  v1::ListConsentResponse resp;
  req.set_page_size(1000);
  do {  // every page
    v1::ListConsentResponse page;
    grpc::ClientContext ctx;
    grpc::Status s = stub->List(&ctx, req, &page);
    if (!s.ok()) return FailGrpc("consent list", s);
    for (auto& r : *page.mutable_records()) *resp.add_records() = std::move(r);
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  std::cout << absl::StrFormat("%-10s %-18s %-10s %-20s %-6s %s\n", "TYPE", "TOKEN", "STATUS",
                               "CHANGED", "ENTRY", "SOURCE");
  for (const auto& c : resp.records())
    std::cout << absl::StrFormat("%-10s %-18s %-10s %-20s %-6d %s\n", c.identity_type(),
                                 c.subject_token().substr(0, 16), ConsentName(c.status()),
                                 Time(c.changed_unix_ms()), c.entry(), c.source());
  return 0;
}

constexpr char kVersion[] = "0.9.0";

// The names of `app`'s subcommands.
std::vector<std::string> CommandNames(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* sub : app.get_subcommands({})) out.push_back(sub->get_name());
  return out;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Walks the command words of argv (skipping global flags and their values): at the first word
// that is not a command of its level, prints "unknown command" with the nearest one and
// returns the usage exit code. `help` prints the help of the level it is at.
std::optional<int> UnknownCommand(CLI::App& app, int argc, char** argv) {
  static const std::vector<std::string> kValued = {"--addr", "-o", "--output", "--certs-dir", "--cert", "--key"};
  CLI::App* level = &app;
  std::string path = "lethectl";
  for (int i = 1; i < argc; ++i) {
    const std::string w = argv[i];
    if (w == "--") break;
    if (!w.empty() && w[0] == '-') {
      if (std::find(kValued.begin(), kValued.end(), w) != kValued.end()) ++i;
      continue;
    }
    const std::vector<std::string> names = CommandNames(*level);
    if (names.empty()) return std::nullopt;  // a leaf: the rest are its arguments
    if (w == "help") {
      std::cout << level->help();
      return 0;
    }
    if (std::find(names.begin(), names.end(), w) != names.end()) {
      level = level->get_subcommand(w);
      path += " " + w;
      continue;
    }
    std::string best;
    size_t best_d = 3;  // suggest only what is close
    for (const auto& n : names) {
      const size_t d = EditDistance(w, n);
      if (d < best_d) best_d = d, best = n;
    }
    std::cerr << path << ": unknown command \"" << w << "\"";
    if (!best.empty()) std::cerr << "; did you mean \"" << best << "\"?";
    std::cerr << "\n  commands: " << absl::StrJoin(names, ", ") << "\n  see: " << path << " --help\n";
    return lethe::cli::kExitUsage;
  }
  return std::nullopt;
}

// A completion script for bash or zsh (through bashcompinit): command words per level, and
// the flags of the deepest command given.
int PrintCompletion(const CLI::App& app, const std::string& shell) {
  std::string cases;
  std::function<void(const CLI::App&, const std::string&)> walk = [&](const CLI::App& a, const std::string& key) {
    std::vector<std::string> words = CommandNames(a);
    for (const CLI::Option* o : a.get_options({}))
      for (const auto& n : o->get_lnames()) words.push_back("--" + n);
    absl::StrAppend(&cases, "    \"", key, "\") words=\"", absl::StrJoin(words, " "), "\" ;;\n");
    for (const CLI::App* sub : a.get_subcommands({}))
      walk(*sub, key.empty() ? sub->get_name() : key + " " + sub->get_name());
  };
  walk(app, "");
  std::cout << (shell == "zsh" ? "autoload -U +X bashcompinit && bashcompinit\n" : "")
            << "_lethectl() {\n"
               "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" key=\"\" w words\n"
               "  for w in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do\n"
               "    case \"$w\" in -*) ;; *) key=\"${key:+$key }$w\" ;; esac\n"
               "  done\n"
               "  case \"$key\" in\n"
            << cases
            << "    *) words=\"\" ;;\n"
               "  esac\n"
               "  COMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") )\n"
               "}\n"
               "complete -o default -F _lethectl lethectl\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Global g;
  const char* env_addr = std::getenv("LETHE_ADDR");
  g.addr = env_addr ? env_addr : "127.0.0.1:7411";
  lethe::DisableCoreDumps();
  if (const char* v = std::getenv("LETHE_CERTS_DIR")) g.certs_dir = v;
  if (const char* v = std::getenv("LETHE_CERT")) g.cert = v;
  if (const char* v = std::getenv("LETHE_KEY")) g.key = v;
  CLI::App app{"lethectl: submit and track data-subject requests; verify the Lethe ledger", "lethectl"};
  app.require_subcommand(1);
  // Global flags may follow the subcommand too: `lethectl consent list --purpose p -o json`.
  app.fallthrough();
  app.add_option("--addr", g.addr, "lethed address HOST:PORT (env LETHE_ADDR)")->capture_default_str();
  app.add_option("-o,--output", g.output, "output format: text, json or yaml (docs/cli-json.md)")
      ->check(CLI::IsMember({"text", "json", "yaml"}))
      ->capture_default_str();
  app.add_option("--certs-dir", g.certs_dir,
                 "ca.crt and your client.NAME.crt/.key (env LETHE_CERTS_DIR); with `certs`, where "
                 "to write");
  app.add_option("--cert", g.cert, "client certificate (PEM), if not the one in --certs-dir (env LETHE_CERT)");
  app.add_option("--key", g.key, "its private key (PEM) (env LETHE_KEY)");
  app.add_flag("--insecure", g.insecure, "plaintext, no certificate: for a lethed run with --insecure");
  int rc = 0;

  auto* certs = app.add_subcommand("certs", "the CA and certificates for mutual TLS (in --certs-dir)")
                    ->require_subcommand(1);
  std::string trust_domain = "lethe.local";
  std::vector<std::string> hosts;
  std::string role, cert_name;
  auto need_dir = [&] {
    if (g.certs_dir.empty()) {
      std::cerr << "lethectl certs: --certs-dir DIR is required\n";
      return false;
    }
    return true;
  };
  // What a certs command wrote, in words or (-o json) as {"wrote": [files]}.
  auto wrote = [&](const std::vector<std::string>& files, const std::string& words) {
    if (g.json()) {
      std::vector<std::string> paths;
      for (const auto& f : files) paths.push_back(g.certs_dir + "/" + f);
      std::cout << nlohmann::json{{"wrote", paths}}.dump(2) << "\n";
    } else {
      std::cout << words << "\n";
    }
  };
  auto* mkca = certs->add_subcommand("create-ca", "write ca.crt and ca.key (0600); never overwrites");
  mkca->add_option("--trust-domain", trust_domain, "SPIFFE trust domain")->capture_default_str();
  mkca->callback([&] {
    if (!need_dir()) { rc = 2; return; }
    absl::Status s = lethe::crypto::CreateCa(g.certs_dir, trust_domain);
    rc = s.ok() ? 0 : Fail("certs create-ca", s);
    if (s.ok())
      wrote({"ca.crt", "ca.key"}, "wrote " + g.certs_dir + "/ca.crt and ca.key (mode 0600) for trust domain " +
                                      trust_domain);
  });
  auto* mksrv = certs->add_subcommand("create-server", "write server.crt and server.key signed by the CA");
  mksrv->add_option("--host", hosts, "DNS name or IP address lethed is reached at, repeatable")->required();
  mksrv->callback([&] {
    if (!need_dir()) { rc = 2; return; }
    absl::Status s = lethe::crypto::CreateServerCert(g.certs_dir, hosts);
    rc = s.ok() ? 0 : Fail("certs create-server", s);
    if (s.ok())
      wrote({"server.crt", "server.key"},
            "wrote " + g.certs_dir + "/server.crt and server.key for " + absl::StrJoin(hosts, ", "));
  });
  auto* mkcli = certs->add_subcommand(
      "create-client", "write client.NAME.crt and .key: spiffe://TRUST_DOMAIN/lethe/ROLE/NAME");
  mkcli->add_option("--role", role, "admin, operator or auditor")->required();
  mkcli->add_option("--name", cert_name, "who holds it, e.g. alice or ci-audit")->required();
  mkcli->callback([&] {
    if (!need_dir()) { rc = 2; return; }
    absl::Status s = lethe::crypto::CreateClientCert(g.certs_dir, role, cert_name);
    rc = s.ok() ? 0 : Fail("certs create-client", s);
    if (s.ok())
      wrote({"client." + cert_name + ".crt", "client." + cert_name + ".key"},
            "wrote " + g.certs_dir + "/client." + cert_name + ".crt and .key (role " + role + ")");
  });

  auto* keys = app.add_subcommand("keys", "Ed25519 key pairs")->require_subcommand(1);
  std::string prefix;
  bool force = false;
  auto* keygen = keys->add_subcommand("generate", "write PREFIX.key (0600) and PREFIX.pub; never replaces a key");
  keygen->add_option("--out", prefix, "file prefix")->required();
  keygen->add_flag("--force", force, "replace an existing pair, keeping it as PREFIX.key.bak-<time> and .pub.bak-<time>");
  keygen->callback([&] { rc = KeysGenerate(g, prefix, force); });

  auto* agent = app.add_subcommand("agent", "agent keys")->require_subcommand(1);
  std::string domain, pub;
  auto* enroll = agent->add_subcommand("enroll", "record an agent's receipt-signing key in the ledger");
  enroll->add_option("--domain", domain, "policy domain")->required();
  enroll->add_option("--public-key", pub, "agent public key (PEM)")->required();
  enroll->callback([&] { rc = AgentEnroll(g, domain, pub); });
  std::string key_id, revoke_reason;
  auto* revoke = agent->add_subcommand("revoke", "record AgentKeyRevoked: refuse the key's receipts from now on");
  revoke->add_option("--domain", domain, "policy domain")->required();
  revoke->add_option("--key-id", key_id, "the key id `agent list` shows")->required();
  revoke->add_option("--reason", revoke_reason, "why (recorded in clear; no personal data)");
  revoke->callback([&] { rc = AgentRevoke(g, domain, key_id, revoke_reason); });
  agent->add_subcommand("list", "enrolled agent keys, with state and who enrolled them")
      ->callback([&] { rc = AgentList(g); });

  auto* request = app.add_subcommand("request", "data-subject requests")->require_subcommand(1);
  std::vector<std::string> identities;
  std::string identities_from, reason_from;
  std::string reason, timeout = "5m", id;
  bool wait = false;
  auto* erase = request->add_subcommand("erase", "erase a person from every domain that holds them");
  erase->add_option("--identity", identities, "TYPE=VALUE, repeatable (seen by ps and shell history: prefer --identities-from)");
  erase->add_option("--identities-from", identities_from, "FILE, or - for standard input: one TYPE=VALUE a line");
  erase->add_option("--reason", reason, "why (kept encrypted, shredded on completion)");
  erase->add_option("--reason-from", reason_from, "FILE, or - for standard input: the reason");
  bool allow_duplicate = false;
  erase->add_flag("--allow-duplicate", allow_duplicate,
                  "submit even when an open request already covers one of these identities");
  erase->add_flag("--wait", wait, "follow progress until the request completes (exit 4 at once if it needs an operator)");
  erase->add_option("--timeout", timeout, "with --wait: give up after this long (e.g. 90s, 5m)")
      ->capture_default_str();
  erase->callback([&] {
    rc = RequestErase(g, identities, identities_from, reason, reason_from, wait, timeout, allow_duplicate);
  });
  auto* get = request->add_subcommand("get", "show one request, per domain");
  get->add_option("id", id, "request id")->required();
  get->callback([&] { rc = RequestGet(g, id); });
  bool overdue = false;
  auto* list = request->add_subcommand("list", "list requests with their due dates");
  list->add_flag("--overdue", overdue, "only open requests past their due date");
  list->callback([&] { rc = RequestList(g, overdue); });
  std::string by;
  auto* extend = request->add_subcommand(
      "extend", "move an open request's due date (GDPR Art. 12(3); capped by deadlines.max_extension)");
  extend->add_option("id", id, "request id")->required();
  extend->add_option("--by", by, "how much longer: <n>h, <n>d or <n>w")->required();
  extend->add_option("--reason", reason, "why (kept encrypted, shredded with the request); this or --reason-from is required");
  extend->add_option("--reason-from", reason_from, "FILE, or - for standard input: the reason");
  extend->callback([&] {
    auto text = lethe::cli::ReasonText(reason, reason_from);
    if (text.ok() && text->empty()) text = absl::InvalidArgumentError("give --reason TEXT or --reason-from FILE|-");
    rc = text.ok() ? RequestExtend(g, id, by, *text) : Fail("request extend", text.status());
  });
  auto* add_id = request->add_subcommand(
      "add-identity", "give an open request an identity type a waiting domain is keyed by");
  add_id->add_option("id", id, "request id")->required();
  add_id->add_option("--identity", identities, "TYPE=VALUE, repeatable");
  add_id->add_option("--identities-from", identities_from, "FILE, or - for standard input: one TYPE=VALUE a line");
  add_id->callback([&] { rc = RequestAddIdentity(g, id, identities, identities_from); });
  std::string cert_verify, cert_out, cert_key;
  auto* cert = request->add_subcommand(
      "certificate", "an erasure certificate: the request's entries with inclusion proofs");
  cert->add_option("id", id, "request id");
  cert->add_option("--out", cert_out, "write the certificate (JSON) here");
  cert->add_option("--verify", cert_verify, "check a certificate file offline");
  cert->add_option("--public-key", cert_key, "lethed's public key (PEM)");
  cert->callback([&] {
    if (!cert_verify.empty() && (!id.empty() || !cert_out.empty())) {
      rc = Fail("request certificate",
                absl::InvalidArgumentError("--verify FILE checks a certificate offline: it takes no "
                                           "request id and no --out"));
    } else if (!cert_verify.empty()) {
      rc = RequestCertificateVerify(g, cert_verify, cert_key);
    } else if (id.empty()) {
      rc = Fail("request certificate", absl::InvalidArgumentError("give a request id or --verify FILE"));
    } else {
      rc = RequestCertificate(g, id, cert_out, cert_key);
    }
  });
  auto* watch = request->add_subcommand("watch", "follow a request until it completes");
  watch->add_option("id", id, "request id")->required();
  watch->add_option("--timeout", timeout, "give up after this long")->capture_default_str();
  watch->callback([&] {
    auto t = ParseTimeout(timeout);
    rc = t.ok() ? Watch(g, id, *t) : Fail("request watch", t.status());
  });

  auto* ledger = app.add_subcommand("ledger", "audit the ledger")->require_subcommand(1);
  std::string dir, key, since, bundle, out, origin;
  bool fresh = false;
  uint64_t entry = 0;
  auto* verify = ledger->add_subcommand(
      "verify", "check the hash chain, Merkle root, checkpoint and every receipt signature");
  verify->add_option("--dir", dir, "lethed's data directory: verify offline from the files");
  verify->add_option("--since", since,
                     "a checkpoint file kept earlier, or a directory of them (`ledger checkpoint "
                     "--save`): prove the log extends every one (a log cut back fails: rollback); "
                     "with --dir or --bundle, offline");
  verify->add_option("--bundle", bundle, "a directory written by `ledger export`: verify it offline");
  verify->add_option("--public-key", key, "lethed's public key (PEM): the only key trusted");
  verify->add_flag("--accept-unauthenticated", g.audit.accept_unauthenticated,
                   "accept entries a person caused without an authenticated caller (a lethed run "
                   "with --insecure, or a log written before lethed had mutual TLS)");
  verify->add_flag("--allow-unknown-fields", g.audit.allow_unknown_fields,
                   "accept entries holding protobuf fields proto/lethe/v1 does not define "
                   "(counted); by default they fail, since they could carry anything");
  verify->callback([&] {
    if (!dir.empty() && !bundle.empty()) {
      rc = Fail("ledger verify", absl::InvalidArgumentError(
                                     "--dir (a data directory) and --bundle (an export) are two ways "
                                     "to verify offline: give one"));
      return;
    }
    if ((!dir.empty() || !bundle.empty()) && key.empty()) {
      rc = Fail("ledger verify", absl::InvalidArgumentError("--dir and --bundle need --public-key"));
      return;
    }
    // Say which it is: an auditor must know whether the server was trusted with any of it.
    (g.json() ? std::cerr : std::cout)
        << "ledger verify: "
        << (!bundle.empty() ? "offline, from the export in " + bundle + " (no server contacted)"
            : !dir.empty()  ? "offline, from the files in " + dir + " (no server contacted)"
                            : "online, through lethed at " + g.addr)
        << "\n";
    if (!bundle.empty()) {
      rc = LedgerVerifyBundle(g, bundle, key, since);
    } else if (!dir.empty()) {
      rc = since.empty() ? LedgerVerifyOffline(g, dir, key) : LedgerVerifyOfflineSince(g, dir, since, key);
    } else if (!since.empty()) {
      rc = LedgerVerifySince(g, since, key);
    } else {
      rc = LedgerVerifyOnline(g, key);
    }
  });
  auto* checkpoint = ledger->add_subcommand("checkpoint", "fetch the latest checkpoint and check its signature");
  checkpoint->add_option("--public-key", key, "lethed's public key (PEM) to check it with");
  checkpoint->add_flag("--fresh", fresh, "ask lethed to sign one for the current size first");
  checkpoint->add_option("--out", out, "also save it, e.g. for a later `ledger verify --since`");
  std::string save;
  checkpoint->add_option("--save", save,
                         "keep it and every checkpoint lethed signed since the last --save in this "
                         "directory, as <size>.checkpoint, each verified and proven consistent; never "
                         "replaces one (needs --public-key)");
  checkpoint->callback([&] {
    if (!save.empty() && key.empty()) {
      rc = Fail("ledger checkpoint", absl::InvalidArgumentError(
                                         "--save needs --public-key: kept checkpoints are evidence only "
                                         "under a key you trust"));
      return;
    }
    rc = LedgerCheckpoint(g, key, fresh, out, save);
  });
  auto* vkey = ledger->add_subcommand("verifier-key", "print the signed-note verifier key name+keyid+key");
  vkey->add_option("--public-key", key, "offline: lethed's public key (PEM)");
  vkey->add_option("--origin", origin, "key name (default: the log's origin)");
  vkey->callback([&] { rc = LedgerVerifierKey(g, key, origin); });
  auto* proof = ledger->add_subcommand("proof", "print an inclusion proof (C2SP tlog-proof) with its checkpoint");
  proof->add_option("--entry", entry, "entry index")->required();
  proof->add_option("--public-key", key, "lethed's public key (PEM) to check it with");
  proof->callback([&] { rc = LedgerProof(g, entry, key); });
  auto* xport = ledger->add_subcommand("export", "write the log as a static C2SP tlog-tiles tree");
  xport->add_option("--out", out, "new directory")->required();
  xport->add_option("--public-key", key, "lethed's public key (PEM) to check the export with");
  xport->callback([&] { rc = LedgerExport(g, out, key); });

  auto* pol = app.add_subcommand("policy", "validate, activate and show policies")->require_subcommand(1);
  std::string policy_file;
  auto* validate = pol->add_subcommand("validate", "check a policy file; print every error");
  validate->add_option("file", policy_file, "policy YAML")->required();
  validate->callback([&] { rc = PolicyValidate(g, policy_file); });
  auto* activate = pol->add_subcommand(
      "activate", "make a policy file the active policy (recorded in the ledger as PolicyActivated)");
  activate->add_option("file", policy_file, "policy YAML")->required();
  activate->callback([&] { rc = PolicyActivate(g, policy_file); });
  bool with_yaml = false;
  auto* show = pol->add_subcommand("show", "the active policy and every earlier activation");
  show->add_flag("--yaml", with_yaml, "also print the active policy's YAML as activated");
  show->callback([&] { rc = PolicyShow(g, with_yaml); });

  auto* consent = app.add_subcommand("consent", "consent per data subject and purpose")
                      ->require_subcommand(1);
  std::string identity, purpose, source, status_filter;
  for (const char* verb : {"grant", "withdraw"}) {
    const bool grant = std::string(verb) == "grant";
    auto* c = consent->add_subcommand(verb, grant ? "record that a person granted consent for a purpose"
                                                  : "record a withdrawal; plans an erasure when the "
                                                    "purpose is marked erase_on_withdrawal");
    c->add_option("--identity", identity, "TYPE=VALUE (or --identities-from)");
    c->add_option("--identities-from", identities_from, "FILE, or - for standard input: one TYPE=VALUE line");
    c->add_option("--purpose", purpose, "a purpose of the active policy")->required();
    c->add_option("--source", source,
                  "where the change came from, e.g. signup-form-v3 (recorded in the ledger: "
                  "no personal data)")->required();
    c->callback([&, grant] {
      rc = ConsentChange(g, grant ? v1::GRANTED : v1::WITHDRAWN, identity, identities_from, purpose, source);
    });
  }
  auto* cshow = consent->add_subcommand("show", "current consent per purpose and the history of one identity");
  cshow->add_option("--identity", identity, "TYPE=VALUE (or --identities-from)");
  cshow->add_option("--identities-from", identities_from, "FILE, or - for standard input: one TYPE=VALUE line");
  cshow->callback([&] { rc = ConsentShow(g, identity, identities_from); });
  auto* clist = consent->add_subcommand("list", "current consent of every subject for one purpose");
  clist->add_option("--purpose", purpose, "purpose")->required();
  clist->add_option("--status", status_filter, "only granted or withdrawn")
      ->check(CLI::IsMember({"granted", "withdrawn"}));
  clist->callback([&] { rc = ConsentList(g, purpose, status_filter); });

  // `version`, and shell completion generated from the commands defined above.
  app.add_subcommand("version", "print lethectl's version")->callback([&] {
    std::cout << "lethectl " << kVersion << "\n";
    rc = 0;
  });
  std::string shell;
  auto* completion = app.add_subcommand("completion", "print a completion script: source <(lethectl completion bash)");
  completion->add_option("shell", shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  completion->callback([&] { rc = PrintCompletion(app, shell); });
  app.set_version_flag("--version", std::string("lethectl ") + kVersion);

  // Every command's --help shows an example, then the global flags and the exit codes.
  static const std::map<std::string, std::string> kExamples = {
      {"certs", "lethectl certs create-ca --certs-dir certs --trust-domain example.org"},
      {"certs create-ca", "lethectl certs create-ca --certs-dir certs --trust-domain example.org"},
      {"certs create-server", "lethectl certs create-server --certs-dir certs --host lethe.example.org --host 127.0.0.1"},
      {"certs create-client", "lethectl certs create-client --certs-dir certs --role operator --name olga"},
      {"keys", "lethectl keys generate --out keys/lethed"},
      {"keys generate", "mkdir -p keys && lethectl keys generate --out keys/growth"},
      {"agent", "lethectl agent list"},
      {"agent enroll", "lethectl --certs-dir root agent enroll --domain growth --public-key keys/growth.pub"},
      {"agent revoke", "lethectl --certs-dir root agent revoke --domain growth --key-id 3f2a9c0d1e2b4a5c --reason rotated"},
      {"agent list", "lethectl agent list -o json | jq '.agents[] | select(.state == \"ACTIVE\")'"},
      {"request", "printf 'email=alice@example.com\\n' | lethectl request erase --identities-from - --wait"},
      {"request erase", "printf 'email=alice@example.com\\nuser_id=73310042\\n' | lethectl request erase --identities-from - --wait"},
      {"request get", "lethectl request get 3f2a9c0d1e2b4a5c6d7e8f9012345678 -o json"},
      {"request list", "lethectl request list --overdue"},
      {"request extend", "lethectl request extend 3f2a9c0d1e2b4a5c6d7e8f9012345678 --by 14d --reason-from reason.txt"},
      {"request add-identity", "echo user_id=73310042 | lethectl request add-identity 3f2a9c0d1e2b4a5c6d7e8f9012345678 --identities-from -"},
      {"request certificate", "lethectl request certificate 3f2a9c0d1e2b4a5c6d7e8f9012345678 --out cert.json --public-key lethed.pub"},
      {"request watch", "lethectl request watch 3f2a9c0d1e2b4a5c6d7e8f9012345678 --timeout 10m"},
      {"ledger", "lethectl ledger verify --dir /var/lib/lethe --public-key lethed.pub"},
      {"ledger verify", "lethectl ledger verify --dir /var/lib/lethe --public-key lethed.pub --since kept/"},
      {"ledger checkpoint", "lethectl ledger checkpoint --save kept/ --public-key lethed.pub"},
      {"ledger verifier-key", "lethectl ledger verifier-key --public-key lethed.pub"},
      {"ledger proof", "lethectl ledger proof --entry 42 --public-key lethed.pub"},
      {"ledger export", "lethectl ledger export --out export/ --public-key lethed.pub"},
      {"policy", "lethectl policy validate policies/sample.yaml"},
      {"policy validate", "lethectl policy validate policies/sample.yaml"},
      {"policy activate", "lethectl --certs-dir root policy activate policies/sample.yaml"},
      {"policy show", "lethectl policy show --yaml"},
      {"consent", "echo email=carol@example.com | lethectl consent grant --identities-from - --purpose marketing --source signup-form-v3"},
      {"consent grant", "echo email=carol@example.com | lethectl consent grant --identities-from - --purpose marketing --source signup-form-v3"},
      {"consent withdraw", "echo email=carol@example.com | lethectl consent withdraw --identities-from - --purpose marketing --source unsubscribe-link"},
      {"consent show", "echo email=carol@example.com | lethectl consent show --identities-from -"},
      {"consent list", "lethectl consent list --purpose marketing --status withdrawn -o json"},
      {"version", "lethectl version"},
      {"completion", "source <(lethectl completion bash)"},
  };
  // Every command's --help ends with the global flags and the exit codes.
  const std::string footer = absl::StrCat(
      "Global flags (before or after the command): --addr HOST:PORT (LETHE_ADDR), -o text|json, "
      "--certs-dir DIR (LETHE_CERTS_DIR), --cert FILE --key FILE, --insecure\n\n",
      lethe::cli::kExitCodesHelp);
  std::function<void(CLI::App*, const std::string&)> add_footer = [&](CLI::App* a, const std::string& path) {
    auto ex = kExamples.find(path);
    a->footer(ex == kExamples.end() ? footer : "Example:\n  " + ex->second + "\n\n" + footer);
    for (CLI::App* sub : a->get_subcommands({}))
      add_footer(sub, path.empty() ? sub->get_name() : path + " " + sub->get_name());
  };
  add_footer(&app, "");

  // A command word that is not one: say so, with the nearest command, instead of CLI11's
  // "A subcommand is required".
  if (std::optional<int> r = UnknownCommand(app, argc, argv)) return *r;
  // -o yaml: what the command prints (JSON) is collected and converted when it is done.
  std::ostringstream collected;
  std::streambuf* terminal = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a == "-oyaml" || a == "--output=yaml" ||
        ((a == "-o" || a == "--output") && i + 1 < argc && std::string(argv[i + 1]) == "yaml"))
      terminal = std::cout.rdbuf(collected.rdbuf());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (terminal != nullptr) std::cout.rdbuf(terminal);
    const int code = app.exit(e);
    return code == 0 ? 0 : lethe::cli::kExitUsage;
  }
  if (terminal != nullptr) {
    std::cout.rdbuf(terminal);
    std::cout << lethe::cli::JsonTextToYaml(collected.str());
  }
  return rc;
}
