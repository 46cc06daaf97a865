// X.509 certificates for mutual TLS between lethectl and lethed, with OpenSSL 3.
//
// Identities follow SPIFFE: a client certificate carries one URI SAN
//   spiffe://TRUST_DOMAIN/lethe/ROLE/NAME
// so a certificate issued by SPIRE, cert-manager or a service mesh works as well as one made
// by `lethectl certs create-client`. The CA made by `create-ca` carries spiffe://TRUST_DOMAIN
// as its own URI SAN, which is how lethed learns the trust domain it accepts.
//
// Files in a certs directory (CockroachDB's layout):
//   ca.crt, ca.key                      the CA (key mode 0600)
//   server.crt, server.key              lethed's serving certificate
//   client.NAME.crt, client.NAME.key    one per person or tool
// Keys are ECDSA P-256 in PKCS#8 PEM. Nothing here ever overwrites an existing key file.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lethe::crypto {

// A parsed lethe SPIFFE id.
struct SpiffeId {
  std::string trust_domain;
  std::string role;
  std::string name;
  std::string ToUri() const;
};

// Role and name syntax: role [a-z]{1,32}; name [A-Za-z0-9._-]{1,64}, not starting with '.'.
bool IsCertName(std::string_view name);
// Trust domain syntax (SPIFFE): [a-z0-9._-]{1,255}.
bool IsTrustDomain(std::string_view td);

// Parses "spiffe://TD/lethe/ROLE/NAME". Errors quote at most a short prefix of the input.
absl::StatusOr<SpiffeId> ParseSpiffeId(std::string_view uri);

// What lethed needs to know of a verified peer certificate.
struct CertificateInfo {
  std::string sha256_hex;             // fingerprint: SHA-256 of the DER encoding, lowercase hex
  std::vector<std::string> uri_sans;  // every URI SAN, in order
  std::string common_name;
};
absl::StatusOr<CertificateInfo> InspectCertificate(std::string_view pem);

// The trust domain a CA certificate names with its spiffe://TD URI SAN; kNotFound if none.
absl::StatusOr<std::string> TrustDomainOfCa(std::string_view ca_pem);

struct CertOptions {
  absl::Duration lifetime = absl::Hours(24 * 366);
};

// `lethectl certs create-ca`: DIR/ca.crt and DIR/ca.key. kAlreadyExists if ca.key exists.
absl::Status CreateCa(const std::string& dir, const std::string& trust_domain,
                      CertOptions options = {.lifetime = absl::Hours(24 * 3653)});
// `create-server`: DIR/server.crt and DIR/server.key, signed by the CA in DIR; each host is a
// DNS name or an IP address SAN.
absl::Status CreateServerCert(const std::string& dir, const std::vector<std::string>& hosts,
                              CertOptions options = {});
// `create-client`: DIR/client.NAME.crt and DIR/client.NAME.key with the URI SAN
// spiffe://TD/lethe/ROLE/NAME, TD taken from the CA in DIR.
absl::Status CreateClientCert(const std::string& dir, const std::string& role,
                              const std::string& name, CertOptions options = {});

}  // namespace lethe::crypto
