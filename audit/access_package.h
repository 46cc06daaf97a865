// Access packages: what `lethectl request export` writes for a completed access request, and
// its offline verification (docs/access.md is the schema).
//
// A package is one JSON document, "lethe.access-package/1": the request's facts, one section
// per target domain holding the part that domain's agent gathered (or, for a domain that
// answered FAILED, its error), and a manifest: per part its digest, size, command and the
// ledger entry of its receipt, plus the request's certificate (lethe.v1.ErasureCertificate,
// base64) — its entries proven against a checkpoint lethed signed.
//
// Verification needs lethed's public key alone: the certificate verifies (audit/certificate.h)
// and is an access request's; each COMPLETED receipt's part is in the package and is exactly
// the bytes the agent signed the digest of (the part's canonical JSON: keys sorted, no
// whitespace, UTF-8, as nlohmann::json::dump writes it); no part is there that no receipt
// names. A package altered anywhere in its parts or manifest fails.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "audit/certificate.h"
#include "crypto/crypto.h"
#include "crypto/secret.h"
#include "lethe/v1/certificate.pb.h"
#include "lethe/v1/messages.pb.h"

namespace lethe::audit {

inline constexpr char kAccessPackageFormat[] = "lethe.access-package/1";

struct PackagePart {
  std::string domain;
  SecretBytes part;  // the part's exact bytes; empty for a domain that answered FAILED
  v1::Receipt receipt;
  uint64_t receipt_entry = 0;
  std::string agent_key_id;
};

struct PackageInput {
  std::string request_id;
  int64_t received_unix_ms = 0;
  int64_t completed_unix_ms = 0;
  int64_t exported_unix_ms = 0;
  std::vector<std::string> identity_types;
  std::vector<PackagePart> parts;  // target order
  v1::ErasureCertificate certificate;
};

// The package document. kDataLoss when a part is not the JSON its receipt's digest names.
absl::StatusOr<SecretBytes> BuildAccessPackage(const PackageInput& in);

struct PackageReport {
  CertificateReport certificate;
  struct Domain {
    std::string domain;
    bool completed = false;
    uint64_t part_size = 0;
    int64_t rows = 0;  // rows exported, summed over the part's tables (from the receipt)
  };
  std::vector<Domain> domains;  // target order
};

// Verifies a package document (bounded: at most kMaxPackageBytes). kInvalidArgument for a
// document that is not a package; kPermissionDenied / kDataLoss as VerifyCertificate, and
// kDataLoss for a part that is not the one its receipt names.
inline constexpr size_t kMaxPackageBytes = size_t{1} << 30;
absl::StatusOr<PackageReport> VerifyAccessPackage(std::string_view package, const crypto::Ed25519PublicKey& key);

// The canonical bytes of a part held in a package (parsed JSON), whose SHA-256 a receipt
// signs. For callers that take parts out of a package (the CSV export).
absl::StatusOr<std::string> CanonicalPartOf(std::string_view package, const std::string& domain);

}  // namespace lethe::audit
