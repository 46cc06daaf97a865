// Erasure certificates: one request's ledger entries, each with an inclusion proof against
// one signed checkpoint (proto: lethe.v1.ErasureCertificate). Whoever holds lethed's public
// key can check, with nothing else, that the request was recorded, which domains were sent
// signed commands, that each answered with a receipt signed by the agent key the ledger
// enrolled for it, and how the request ended.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/crypto.h"
#include "lethe/v1/certificate.pb.h"
#include "lethe/v1/ledger.pb.h"

namespace lethe::audit {

inline constexpr char kCertificateFormat[] = "lethe.erasure-certificate/v1";

struct CertifiedDomain {
  std::string domain;
  v1::Receipt receipt;       // verified
  std::string agent_key_id;
  uint64_t receipt_entry = 0;
  // The domain's PHYSICALLY_PURGED receipt, when the certificate holds one (verified).
  std::optional<v1::Receipt> physical;
  std::string physical_key_id;
  uint64_t physical_entry = 0;
};

struct CertificateReport {
  std::string request_id;
  std::string origin;
  uint64_t checkpoint_size = 0;
  std::vector<std::string> identity_types;
  int64_t received_unix_ms = 0;
  int64_t due_unix_ms = 0;  // after every extension the certificate shows
  int extensions = 0;
  // When a consent withdrawal planned the erasure: the purpose (its ConsentChanged entry is
  // part of the certificate).
  std::string scope_purpose;
  int64_t completed_unix_ms = 0;
  // An access request (its receipts carry the digests of the parts of its package), and, once
  // its package was released, how.
  bool access = false;
  v1::PackageReleased::Reason released = v1::PackageReleased::REASON_UNSPECIFIED;
  v1::RequestCompleted::Outcome outcome = v1::RequestCompleted::OUTCOME_UNSPECIFIED;
  std::vector<CertifiedDomain> domains;  // in target order
  size_t entries = 0;
};

// kPermissionDenied: the checkpoint is not signed by `key`. kDataLoss: an entry is not in the
// checkpointed tree, or a receipt does not verify. kInvalidArgument: the certificate is
// malformed or incomplete (a target domain without command or receipt, no completion).
absl::StatusOr<CertificateReport> VerifyCertificate(const v1::ErasureCertificate& cert,
                                                    const crypto::Ed25519PublicKey& key);

}  // namespace lethe::audit
