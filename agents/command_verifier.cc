#include "agents/command_verifier.h"

#include <algorithm>

#include "base/status.h"
#include "proto/envelope.h"

namespace lethe::agents {

const char* RejectionName(Rejection r) {
  switch (r) {
    case Rejection::kMalformed: return "malformed";
    case Rejection::kBadSignature: return "bad_signature";
    case Rejection::kWrongDomain: return "wrong_domain";
    case Rejection::kExpired: return "expired";
    case Rejection::kPolicyDrift: return "policy_drift";
    case Rejection::kNotForThisKey: return "not_for_this_key";
  }
  return "unknown";
}

namespace {

// Moves the identities out of `sealed` into SecretBytes, then wipes and clears `sealed`.
OpenedIdentities TakeIdentities(v1::SealedIdentities& sealed) {
  OpenedIdentities out;
  for (auto& id : *sealed.mutable_identities()) {
    std::string* v = id.mutable_value();
    out.Add(id.type(), SecretBytes(*v));
    std::fill(v->begin(), v->end(), '\0');
  }
  sealed.Clear();
  return out;
}

}  // namespace

CommandVerifier::CommandVerifier(crypto::Ed25519PublicKey control_plane_key, std::string domain,
                                 std::string domain_policy_hash,
                                 const crypto::X25519PrivateKey& encryption_key, const Clock& clock,
                                 absl::Duration max_clock_skew)
    : key_(std::move(control_plane_key)),
      domain_(std::move(domain)),
      policy_hash_(std::move(domain_policy_hash)),
      encryption_key_(encryption_key),
      clock_(clock),
      skew_(max_clock_skew) {}

VerifyResult CommandVerifier::Verify(std::string_view wire) const {
  auto fail = [](Rejection r, absl::Status s) {
    return VerifyResult{s, r, std::nullopt};
  };
  v1::SignedEnvelope env;
  if (!env.ParseFromArray(wire.data(), static_cast<int>(wire.size())))
    return fail(Rejection::kMalformed, absl::InvalidArgumentError("not a SignedEnvelope"));
  // Two kinds of command, told apart by the signed payload type alone: an access command can
  // never be read as a delete.
  const bool access = env.payload_type() == proto::kAccessCommandType;
  auto body = proto::VerifyEnvelope(env, access ? proto::kAccessCommandType : proto::kDeleteCommandType, key_);
  if (!body.ok()) {
    const Rejection r = absl::IsInvalidArgument(body.status()) ? Rejection::kMalformed
                                                                : Rejection::kBadSignature;
    return fail(r, body.status());
  }
  VerifiedCommand vc;
  vc.access = access;
  if (access) {
    // Fields 1 to 10 of an AccessCommand are a DeleteCommand's (messages.proto).
    v1::AccessCommand ac;
    if (!ac.ParseFromString(*body))
      return fail(Rejection::kMalformed, absl::InvalidArgumentError("signed body is not an AccessCommand"));
    if (ac.part_recipient_key().size() != crypto::kX25519KeySize)
      return fail(Rejection::kMalformed, absl::InvalidArgumentError("access command carries no part key"));
    vc.part_recipient_key = ac.part_recipient_key();
    ac.clear_part_recipient_key();
    if (!vc.command.ParseFromString(ac.SerializeAsString()))
      return fail(Rejection::kMalformed, absl::InvalidArgumentError("signed body is not an AccessCommand"));
  } else if (!vc.command.ParseFromString(*body)) {
    return fail(Rejection::kMalformed, absl::InvalidArgumentError("signed body is not a DeleteCommand"));
  }
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
  // Last, the sealed identities: only this agent's encryption key opens them.
  const std::string mine = encryption_key_.public_key().KeyId();
  absl::Status unopened;
  if (c.recipient_key_id() != mine) {
    unopened = absl::FailedPreconditionError("the command is sealed to encryption key " +
                                             Quote(c.recipient_key_id(), 16) + ", this agent holds " + mine +
                                             "; lethed re-seals it to the domain's newest enrolled key");
  } else if (auto plain = encryption_key_.Open(c.sealed_identities()); !plain.ok()) {
    unopened = absl::FailedPreconditionError("the command's identities do not open with this agent's key");
  } else {
    v1::SealedIdentities sealed;
    const std::string_view raw = RevealSecret(*plain);
    const bool parsed = sealed.ParseFromArray(raw.data(), static_cast<int>(raw.size()));
    vc.identities = TakeIdentities(sealed);
    if (!parsed || vc.identities.identities().empty())
      unopened = absl::FailedPreconditionError("the command's sealed identities do not parse");
  }
  if (!unopened.ok()) {
    VerifyResult out = fail(Rejection::kNotForThisKey, unopened);
    out.authentic = std::move(vc);
    return out;
  }
  return VerifyResult{std::move(vc), Rejection::kMalformed, std::nullopt};
}

}  // namespace lethe::agents
