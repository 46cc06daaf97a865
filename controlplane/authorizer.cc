#include "controlplane/authorizer.h"

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <map>
#include <mutex>

#include <grpcpp/security/auth_context.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/crypto.h"
#include "crypto/x509.h"

namespace lethe::controlplane {
namespace {

constexpr char kPropRole[] = "lethe.role";
constexpr char kPropName[] = "lethe.name";
constexpr char kPropSpiffe[] = "lethe.spiffe_id";
constexpr char kPropCertSha[] = "lethe.certificate_sha256";

// The one table of who may call what. `admin` may do everything `auditor` may.
struct Rule {
  const char* method;
  std::vector<std::string> roles;
};
const std::vector<Rule>& Rules() {
  static const auto* rules = [] {
    const std::vector<std::string> operator_only = {kRoleOperator};
    const std::vector<std::string> admin_only = {kRoleAdmin};
    const std::vector<std::string> readers = {kRoleOperator, kRoleAuditor, kRoleAdmin};
    const std::vector<std::string> auditors = {kRoleAuditor, kRoleAdmin};
    return new std::vector<Rule>{
        {"/lethe.v1.SubjectRequests/Submit", operator_only},
        {"/lethe.v1.SubjectRequests/Extend", operator_only},
        {"/lethe.v1.SubjectRequests/AddIdentities", operator_only},
        {"/lethe.v1.SubjectRequests/FindOpen", operator_only},
        {"/lethe.v1.SubjectRequests/Export", operator_only},
        {"/lethe.v1.SubjectRequests/ConfirmExport", operator_only},
        {"/lethe.v1.SubjectRequests/Get", readers},
        {"/lethe.v1.SubjectRequests/List", readers},
        {"/lethe.v1.SubjectRequests/Watch", readers},
        {"/lethe.v1.Consent/Change", operator_only},
        {"/lethe.v1.Consent/Show", operator_only},
        {"/lethe.v1.Consent/List", operator_only},
        {"/lethe.v1.Policies/Activate", admin_only},
        {"/lethe.v1.Policies/Show", auditors},
        {"/lethe.v1.Agents/Enroll", admin_only},
        {"/lethe.v1.Agents/Revoke", admin_only},
        {"/lethe.v1.Agents/List", auditors},
        {"/lethe.v1.Ledger/GetCheckpoint", auditors},
        {"/lethe.v1.Ledger/ListCheckpoints", auditors},
        {"/lethe.v1.Ledger/GetEntries", auditors},
        {"/lethe.v1.Ledger/GetInclusionProof", auditors},
        {"/lethe.v1.Ledger/GetConsistencyProof", auditors},
        {"/lethe.v1.Ledger/GetCertificate", auditors},
        {"/lethe.v1.EmbeddedKafkaFaults/SetBrokerUp", admin_only},
        {"/lethe.v1.EmbeddedKafkaFaults/PushRequestErrors", admin_only},
        {"/lethe.v1.EmbeddedKafkaFaults/MovePartitionLeader", admin_only},
        // gRPC's standard services on the authenticated port: any role may ask whether lethed
        // serves and which services it has (a probe without a certificate uses the plaintext
        // --health-listen port, which serves health alone).
        {"/grpc.health.v1.Health/Check", readers},
        {"/grpc.health.v1.Health/Watch", readers},
        {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", readers},
    };
  }();
  return *rules;
}

std::string Property(const grpc::AuthContext& ctx, const char* name) {
  auto values = ctx.FindPropertyValues(name);
  if (values.empty()) return "";
  return std::string(values.front().data(), values.front().size());
}

}  // namespace

std::vector<std::string> RolesFor(std::string_view method) {
  for (const auto& r : Rules())
    if (method == r.method) return r.roles;
  return {};
}

absl::Status Authorize(std::string_view method, std::string_view role) {
  const std::vector<std::string> roles = RolesFor(method);
  if (roles.empty())
    return absl::PermissionDeniedError(absl::StrCat("method ", Quote(method), " is not served"));
  if (std::find(roles.begin(), roles.end(), role) != roles.end()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      Quote(method), " needs role ", absl::StrJoin(roles, " or "), "; the caller's certificate has role ",
      Quote(role)));
}

grpc::Status RoleAuthorizer::Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                                     OutputMetadata*, OutputMetadata*) {
  auto path = auth_metadata.find(":path");
  if (path == auth_metadata.end())
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "call names no method");
  const std::string method(path->second.data(), path->second.size());
  // gRPC hands every call of a connection the connection's own AuthContext, and AddProperty
  // appends: adding the caller's properties on each call grew it by four per call, so that
  // each lookup slowed down and the memory of a long-lived connection grew without bound.
  // The certificate is the connection's, so its properties are added once, at its first
  // call; later calls read them. AddProperty is not thread safe and calls of one connection
  // may be processed at once, so the check and the additions hold mu_.
  std::lock_guard<std::mutex> lock(mu_);
  const auto roles = context->FindPropertyValues(kPropRole);
  if (roles.size() > 1)
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "connection names more than one role");
  if (roles.size() == 1) {
    if (absl::Status s = Authorize(method, std::string_view(roles.front().data(), roles.front().size()));
        !s.ok())
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, std::string(s.message()));
    return grpc::Status::OK;
  }
  const std::string pem = Property(*context, "x509_pem_cert");
  if (pem.empty())
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no client certificate");
  auto info = crypto::InspectCertificate(pem);
  if (!info.ok())
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "client certificate does not parse");
  std::vector<crypto::SpiffeId> ids;
  std::string last_error = "the client certificate has no URI SAN";
  for (const auto& uri : info->uri_sans) {
    auto id = crypto::ParseSpiffeId(uri);
    if (id.ok()) ids.push_back(*id);
    else last_error = std::string(id.status().message());
  }
  if (ids.size() != 1)
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        ids.empty() ? "client certificate: " + last_error +
                                          " (lethed expects spiffe://TRUST_DOMAIN/lethe/ROLE/NAME)"
                                    : "client certificate names more than one lethe SPIFFE id");
  const crypto::SpiffeId& id = ids.front();
  if (id.trust_domain != trust_domain_)
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "client certificate is of trust domain " + Quote(id.trust_domain) +
                            "; lethed accepts " + trust_domain_);
  if (absl::Status s = Authorize(method, id.role); !s.ok())
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, std::string(s.message()));
  context->AddProperty(kPropRole, id.role);
  context->AddProperty(kPropName, id.name);
  context->AddProperty(kPropSpiffe, id.ToUri());
  context->AddProperty(kPropCertSha, info->sha256_hex);
  context->SetPeerIdentityPropertyName(kPropSpiffe);
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& certs_dir, std::string trust_domain, std::string* trust_domain_used) {
  LETHE_ASSIGN_OR_RETURN(std::string ca, lethe::ReadFile(certs_dir + "/ca.crt"));
  LETHE_ASSIGN_OR_RETURN(std::string cert, lethe::ReadFile(certs_dir + "/server.crt"));
  LETHE_ASSIGN_OR_RETURN(std::string key_raw, lethe::ReadFile(certs_dir + "/server.key"));
  SecretBytes key(std::move(key_raw));
  for (const auto& [path, pem] : {std::pair<std::string, std::string_view>{certs_dir + "/ca.crt", ca},
                                  {certs_dir + "/server.crt", cert}})
    if (auto info = crypto::InspectCertificate(pem); !info.ok()) return Annotate(info.status(), path);
  if (trust_domain.empty()) {
    auto td = crypto::TrustDomainOfCa(ca);
    if (!td.ok())
      return absl::InvalidArgumentError(certs_dir + "/ca.crt: " + std::string(td.status().message()) +
                                        "; give --trust-domain");
    trust_domain = *td;
  } else if (!crypto::IsTrustDomain(trust_domain)) {
    return absl::InvalidArgumentError("--trust-domain: not a trust domain ([a-z0-9._-])");
  }
  LETHE_RETURN_IF_ERROR(RequireTls13());
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = ca;
  options.pem_key_cert_pairs.push_back({std::string(RevealSecret(key)), cert});
  auto creds = grpc::SslServerCredentials(options);
  creds->SetAuthMetadataProcessor(std::make_shared<RoleAuthorizer>(trust_domain));
  if (trust_domain_used != nullptr) *trust_domain_used = trust_domain;
  return creds;
}

absl::Status RequireTls13() {
  static std::once_flag once;
  static absl::Status result;
  std::call_once(once, [] {
    // Load the default configuration first, so that it cannot be loaded later over ours.
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr);
    // "Protocol" sets SSL_OP_NO_* flags on every new SSL_CTX (system_default), which gRPC's
    // later SSL_CTX_set_min_proto_version(TLS1_2) does not clear.
    static const char kConf[] =
        "openssl_conf = lethe_conf\n"
        "[lethe_conf]\nssl_conf = lethe_ssl\n"
        "[lethe_ssl]\nsystem_default = lethe_tls\n"
        "[lethe_tls]\nProtocol = -ALL, TLSv1.3\nMinProtocol = TLSv1.3\n";
    BIO* bio = BIO_new_mem_buf(kConf, -1);
    CONF* conf = NCONF_new(nullptr);
    long bad_line = 0;
    if (conf == nullptr || NCONF_load_bio(conf, bio, &bad_line) <= 0 ||
        CONF_modules_load(conf, nullptr, 0) <= 0) {
      ERR_clear_error();
      result = absl::InternalError("cannot restrict TLS to version 1.3 (OpenSSL configuration)");
    }
    if (conf) NCONF_free(conf);
    BIO_free(bio);
  });
  return result;
}

v1::Actor ActorOf(const grpc::ServerContext& context) {
  v1::Actor a;
  auto auth = context.auth_context();
  const std::string role = auth ? Property(*auth, kPropRole) : "";
  if (role.empty()) {
    // Only a plaintext server lets a call through without RoleAuthorizer's properties. On a
    // TLS server that cannot happen; should it, the entry records no role and fails audit.
    if (!auth || Property(*auth, "transport_security_type") != "ssl") a.set_role(kRoleInsecure);
    return a;
  }
  a.set_role(role);
  a.set_name(Property(*auth, kPropName));
  a.set_spiffe_id(Property(*auth, kPropSpiffe));
  a.set_certificate_sha256(Property(*auth, kPropCertSha));
  return a;
}

bool MaySeeFreeText(const v1::Actor& actor) {
  return actor.role() == kRoleOperator || actor.role() == kRoleInsecure;
}

std::string Describe(const v1::Actor& actor) {
  if (actor.role().empty()) return "nobody recorded";
  if (actor.role() == kRoleInsecure) return "an unauthenticated caller (lethed --insecure)";
  std::string out = absl::StrCat(actor.role(), " ", actor.name());
  if (!actor.certificate_sha256().empty())
    absl::StrAppend(&out, " (certificate ", actor.certificate_sha256().substr(0, 16), ")");
  return out;
}

}  // namespace lethe::controlplane
