// lethectl's global flags, the channel to lethed with its credentials, failure messages and
// the flag parsers the command groups share.
#include "cli/flags.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_format.h"
#include "base/status.h"
#include "cli/exit_codes.h"
#include "cli/input.h"
#include "crypto/crypto.h"
#include "policies/policy.h"

namespace lethe::cli {
namespace {

// The address the commands talk to, for the messages of failed calls.
std::string g_addr;

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

}  // namespace

void AddGlobalFlags(CLI::App& app, Global& g) {
  const char* env_addr = std::getenv("LETHE_ADDR");
  g.addr = env_addr ? env_addr : "127.0.0.1:7411";
  if (const char* v = std::getenv("LETHE_CERTS_DIR")) g.certs_dir = v;
  if (const char* v = std::getenv("LETHE_CERT")) g.cert = v;
  if (const char* v = std::getenv("LETHE_KEY")) g.key = v;
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
}

int Fail(const std::string& what, const absl::Status& s) {
  std::cerr << "lethectl " << what << ": " << s.message() << "\n";
  if (s.code() == absl::StatusCode::kUnavailable) return kExitFailed;
  return ExitFor(s.code());
}

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
    std::exit(kExitUsage);
  }
  auto creds = Credentials(g);
  if (!creds.ok()) {
    std::cerr << "lethectl: " << creds.status().message() << "\n";
    std::exit(2);
  }
  grpc::ChannelArguments args;
  // An access package arrives in one message (SubjectRequests.Export): allow the largest one
  // the verifier reads (audit::kMaxPackageBytes).
  args.SetMaxReceiveMessageSize(1 << 30);
  return grpc::CreateCustomChannel(g.addr, *creds, args);
}

absl::StatusOr<absl::Duration> ParseFlagDuration(const std::string& flag, const std::string& s) {
  absl::Duration d;
  if (absl::ParseDuration(s, &d) && d > absl::ZeroDuration()) return d;
  if (auto p = lethe::policies::ParsePolicyDuration(s); p.ok() && *p > absl::ZeroDuration()) return *p;
  return absl::InvalidArgumentError(flag + ": not a duration like 90s, 5m, 2h, 14d or 2w (got \"" +
                                     s.substr(0, 16) + "\")");
}

absl::StatusOr<absl::Duration> ParseTimeout(const std::string& s) { return ParseFlagDuration("--timeout", s); }

absl::Status ParseIdentities(const std::vector<std::string>& flags, const std::string& from,
                             google::protobuf::RepeatedPtrField<lethe::v1::Identity>* out) {
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> args, IdentityArgs(flags, from));
  for (const std::string& arg : args) {
    const size_t eq = arg.find('=');
    auto* id = out->Add();
    id->set_type(arg.substr(0, eq));
    id->set_value(arg.substr(eq + 1));
  }
  return absl::OkStatus();
}

}  // namespace lethe::cli
