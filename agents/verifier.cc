#include "agents/verifier.h"

#include "proto/envelope.h"

namespace lethe::agent {

const char* RejectionName(Rejection r) {
  switch (r) {
    case Rejection::kMalformed: return "malformed";
    case Rejection::kBadSignature: return "bad_signature";
    case Rejection::kWrongDomain: return "wrong_domain";
    case Rejection::kExpired: return "expired";
    case Rejection::kPolicyDrift: return "policy_drift";
  }
  return "unknown";
}

CommandVerifier::CommandVerifier(crypto::Ed25519PublicKey control_plane_key, std::string domain,
                                 std::string domain_policy_hash, const Clock& clock,
                                 absl::Duration max_clock_skew)
    : key_(std::move(control_plane_key)),
      domain_(std::move(domain)),
      policy_hash_(std::move(domain_policy_hash)),
      clock_(clock),
      skew_(max_clock_skew) {}

VerifyResult CommandVerifier::Verify(std::string_view wire) const {
  auto fail = [](Rejection r, absl::Status s) {
    VerifyResult out{s};
    out.rejection = r;
    return out;
  };
  v1::SignedEnvelope env;
  if (!env.ParseFromArray(wire.data(), static_cast<int>(wire.size())))
    return fail(Rejection::kMalformed, absl::InvalidArgumentError("not a SignedEnvelope"));
  auto body = VerifyEnvelope(env, kDeleteCommandType, key_);
  if (!body.ok()) {
    const Rejection r = absl::IsInvalidArgument(body.status()) ? Rejection::kMalformed
                                                                : Rejection::kBadSignature;
    return fail(r, body.status());
  }
  VerifiedCommand vc;
  if (!vc.command.ParseFromString(*body))
    return fail(Rejection::kMalformed, absl::InvalidArgumentError("signed body is not a DeleteCommand"));
  vc.digest = crypto::Sha256(*body);
  const auto& c = vc.command;
  if (c.domain() != domain_)
    return fail(Rejection::kWrongDomain,
                absl::FailedPreconditionError("command is for domain " + c.domain() +
                                              ", this agent serves " + domain_));
  const absl::Time now = clock_.Now();
  if (absl::FromUnixMillis(c.not_after_unix_ms()) <= now)
    return fail(Rejection::kExpired, absl::FailedPreconditionError("command expired"));
  if (absl::FromUnixMillis(c.issued_at_unix_ms()) > now + skew_)
    return fail(Rejection::kExpired,
                absl::FailedPreconditionError("command issued in the future (clock skew?)"));
  if (c.domain_policy_hash() != policy_hash_) {
    VerifyResult out = fail(Rejection::kPolicyDrift,
                            absl::FailedPreconditionError(
                                "policy drift: the command was planned with domain policy " +
                                crypto::Hex(c.domain_policy_hash()).substr(0, 16) +
                                ", this agent runs " + crypto::Hex(policy_hash_).substr(0, 16) +
                                "; deploy the active policy to the agent"));
    out.authentic = std::move(vc);
    return out;
  }
  return VerifyResult{std::move(vc)};
}

}  // namespace lethe::agent
