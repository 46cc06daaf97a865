// CommandVerifier: decides whether a DeleteCommand from Kafka may be acted on. It checks the
// envelope's signature against lethed's key before parsing anything, then the domain, the
// expiry and the policy hash. A rejected command deletes nothing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "crypto/secret.h"
#include "lethe/v1/messages.pb.h"

namespace lethe::agents {

enum class Rejection { kMalformed, kBadSignature, kWrongDomain, kExpired, kPolicyDrift, kNotForThisKey };
const char* RejectionName(Rejection r);

// One identity of the subject, opened from the command. The raw value is read only through
// RevealSecret(), where it is bound as a statement parameter or put into a Kafka key.
struct CommandIdentity {
  std::string type;   // an identity type of the policy, e.g. "email"
  SecretBytes value;  // wiped when destroyed
};

// The identities opened from a command's sealed_identities: the shape of v1::SealedIdentities,
// with each value held in a SecretBytes.
class OpenedIdentities {
 public:
  const std::vector<CommandIdentity>& identities() const { return identities_; }
  void Add(std::string type, SecretBytes value) {
    identities_.push_back(CommandIdentity{std::move(type), std::move(value)});
  }

 private:
  std::vector<CommandIdentity> identities_;
};

struct VerifiedCommand {
  // As signed; its identities are still sealed. For an access command, its fields 1 to 10
  // (messages.proto: the same as a DeleteCommand's).
  v1::DeleteCommand command;
  // An AccessCommand (payload type lethe.v1.AccessCommand): gather, never purge. Its part is
  // sealed to part_recipient_key (raw X25519, 32 bytes).
  bool access = false;
  std::string part_recipient_key;
  std::string digest;           // SHA-256 of the signed body bytes
  OpenedIdentities identities;  // opened from command.sealed_identities: keep it short-lived
};

struct VerifyResult {
  absl::StatusOr<VerifiedCommand> command;
  Rejection rejection = Rejection::kMalformed;  // meaningful when !command.ok()
  // kPolicyDrift and kNotForThisKey: the command, whose signature, domain and expiry did
  // verify. The agent answers it with a signed REJECTED receipt so that lethed can show why
  // nothing happened (and, for a key mismatch, re-seal it to the domain's current key).
  std::optional<VerifiedCommand> authentic;
};

// Thread safety: Verify is const and may be called concurrently.
class CommandVerifier {
 public:
  // `encryption_key` opens the identities sealed to this agent; it must outlive the verifier.
  CommandVerifier(crypto::Ed25519PublicKey control_plane_key, std::string domain,
                  std::string domain_policy_hash, const crypto::X25519PrivateKey& encryption_key,
                  const Clock& clock, absl::Duration max_clock_skew = absl::Minutes(5));
  VerifyResult Verify(std::string_view wire) const;

 private:
  const crypto::Ed25519PublicKey key_;
  const std::string domain_;
  const std::string policy_hash_;
  const crypto::X25519PrivateKey& encryption_key_;
  const Clock& clock_;
  const absl::Duration skew_;
};

}  // namespace lethe::agents
