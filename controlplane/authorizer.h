// Who may call what on lethed, and who called.
//
// With --certs-dir, lethed serves TLS 1.3 only and requires a client certificate signed by
// its CA. The certificate names the caller in a URI SAN
//   spiffe://TRUST_DOMAIN/lethe/ROLE/NAME
// and RoleAuthorizer, run by gRPC before any handler, checks the role against kRules, the one
// table of who may call each method. A call outside the caller's role ends with
// PERMISSION_DENIED naming the method and the roles it needs; the handler never runs.
// Handlers read the verified caller with ActorOf() and record it in the ledger.
//
// With --insecure there is no transport security and no authentication: every caller may
// call everything and is recorded as role "insecure".
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "lethe/v1/ledger.pb.h"

namespace lethe::controlplane {

inline constexpr char kRoleAdmin[] = "admin";
inline constexpr char kRoleOperator[] = "operator";
inline constexpr char kRoleAuditor[] = "auditor";
inline constexpr char kRoleInsecure[] = "insecure";  // lethed --insecure: nobody is authenticated
inline constexpr char kRoleLethed[] = "lethed";      // lethed acting on its own configuration

// The roles that may call `method` ("/lethe.v1.Service/Method"); empty for an unknown method.
std::vector<std::string> RolesFor(std::string_view method);
// OK when `role` may call `method`; otherwise kPermissionDenied naming both and the roles the
// method needs.
absl::Status Authorize(std::string_view method, std::string_view role);

// Checks every call's client certificate and role before its handler runs.
class RoleAuthorizer final : public grpc::AuthMetadataProcessor {
 public:
  explicit RoleAuthorizer(std::string trust_domain) : trust_domain_(std::move(trust_domain)) {}
  bool IsBlocking() const override { return false; }  // no I/O: runs inline
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed, OutputMetadata* response) override;

 private:
  const std::string trust_domain_;
  std::mutex mu_;  // serialises reading and adding the connection context's properties
};

// TLS 1.3-only, client-certificate-verifying credentials from DIR/ca.crt, DIR/server.crt and
// DIR/server.key, with RoleAuthorizer installed. The trust domain is `trust_domain`, or the
// one ca.crt names when empty. A missing or unreadable file is an error naming it.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& certs_dir, std::string trust_domain, std::string* trust_domain_used);

// Makes every TLS context this process creates from now on refuse anything below TLS 1.3
// (gRPC 1.51 has no per-server setting). Idempotent.
absl::Status RequireTls13();

// The verified caller of a call: what RoleAuthorizer recorded, or role "insecure" on a
// plaintext server.
v1::Actor ActorOf(const grpc::ServerContext& context);
// Operators see decrypted free text (extension reasons); auditors and admins do not.
bool MaySeeFreeText(const v1::Actor& actor);
// "role NAME (certificate 0123abcd...)" for logs and CLI output.
std::string Describe(const v1::Actor& actor);

}  // namespace lethe::controlplane
