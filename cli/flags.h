// What every lethectl command shares: the global flags (Global) and the Context the command
// groups add their commands to, the channel to lethed (mutual TLS), failure messages with
// their exit codes, and the duration and identity flags.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "audit/auditor.h"
#include "lethe/v1/messages.pb.h"

namespace lethe::cli {

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

// What the command groups share while lethectl's app is built and run: the global flags, the
// exit code of the command that ran, and the example each command's --help shows.
struct Context {
  Global g;
  int rc = 0;
  std::map<const CLI::App*, std::string> examples;
};

// The global flags on `app`, defaulting to the environment (LETHE_ADDR, LETHE_CERTS_DIR,
// LETHE_CERT, LETHE_KEY).
void AddGlobalFlags(CLI::App& app, Global& g);

// A local failure (a file, a flag, a check done here): the message, and the exit code of its
// kind (an unreadable local file is not an unreachable lethed).
int Fail(const std::string& what, const absl::Status& s);

// A call lethed answered with an error, or could not be made: the code, the message, and
// what to do next where there is something to do.
int FailGrpc(const std::string& what, const grpc::Status& s);

// The channel to lethed at --addr with the credentials the flags give; exits with the usage
// code when the address or the certificates are wrong.
std::shared_ptr<grpc::Channel> Connect(const Global& g);

// One duration syntax for every flag: a positive number with a unit, ms, s, m, h, d (24h), w
// (7d) or y (365d), or a sum of them ("1h30m").
absl::StatusOr<absl::Duration> ParseFlagDuration(const std::string& flag, const std::string& s);
absl::StatusOr<absl::Duration> ParseTimeout(const std::string& s);

// The identities of repeated --identity flags and --identities-from (cli/input.h) into `out`.
absl::Status ParseIdentities(const std::vector<std::string>& flags, const std::string& from,
                             google::protobuf::RepeatedPtrField<lethe::v1::Identity>* out);

}  // namespace lethe::cli
