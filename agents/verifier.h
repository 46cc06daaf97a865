// CommandVerifier: decides whether a DeleteCommand from Kafka may be acted on. It checks the
// envelope's signature against lethed's key before parsing anything, then the domain, the
// expiry and the policy hash. A rejected command deletes nothing.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/clock.h"
#include "crypto/crypto.h"
#include "lethe/v1/messages.pb.h"

namespace lethe::agent {

enum class Rejection { kMalformed, kBadSignature, kWrongDomain, kExpired, kPolicyDrift };
const char* RejectionName(Rejection r);

struct VerifiedCommand {
  v1::DeleteCommand command;  // holds raw identities: keep it short-lived
  std::string digest;         // SHA-256 of the signed body bytes
};

struct VerifyResult {
  absl::StatusOr<VerifiedCommand> command;
  Rejection rejection = Rejection::kMalformed;  // meaningful when !command.ok()
  // kPolicyDrift only: the command, whose signature, domain and expiry did verify. The agent
  // answers it with a signed REJECTED receipt so that lethed can show why nothing happened.
  std::optional<VerifiedCommand> authentic;
};

class CommandVerifier {
 public:
  CommandVerifier(crypto::Ed25519PublicKey control_plane_key, std::string domain,
                  std::string domain_policy_hash, const Clock& clock,
                  absl::Duration max_clock_skew = absl::Minutes(5));
  VerifyResult Verify(std::string_view wire) const;

 private:
  const crypto::Ed25519PublicKey key_;
  const std::string domain_;
  const std::string policy_hash_;
  const Clock& clock_;
  const absl::Duration skew_;
};

}  // namespace lethe::agent
