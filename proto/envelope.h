// Signing and verifying SignedEnvelope: sign bytes, never objects.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/crypto.h"
#include "lethe/v1/messages.pb.h"

namespace lethe::proto {

inline constexpr char kDeleteCommandType[] = "lethe.v1.DeleteCommand";
inline constexpr char kReceiptType[] = "lethe.v1.Receipt";
inline constexpr char kConsentStateType[] = "lethe.v1.ConsentState";

// Signs `body` (already serialized) as a message of `payload_type`.
v1::SignedEnvelope SignEnvelope(std::string_view payload_type, std::string body,
                                const crypto::Ed25519PrivateKey& key);

// Checks type, key id and signature of `env`. Returns the body bytes (still unparsed).
// kPermissionDenied for a wrong key or bad signature, kInvalidArgument for a wrong type.
absl::StatusOr<std::string> VerifyEnvelope(const v1::SignedEnvelope& env,
                                           std::string_view expected_type,
                                           const crypto::Ed25519PublicKey& key);

// Parses the envelope from wire bytes, then verifies it and parses the body into `out`.
template <typename Message>
absl::Status OpenEnvelope(std::string_view wire, std::string_view expected_type,
                          const crypto::Ed25519PublicKey& key, Message* out,
                          std::string* body_out = nullptr) {
  v1::SignedEnvelope env;
  if (!env.ParseFromArray(wire.data(), static_cast<int>(wire.size())))
    return absl::InvalidArgumentError("message is not a SignedEnvelope");
  auto body = VerifyEnvelope(env, expected_type, key);
  if (!body.ok()) return body.status();
  if (!out->ParseFromString(*body))
    return absl::InvalidArgumentError(std::string("signed body is not a ") +
                                      std::string(expected_type));
  if (body_out) *body_out = std::move(*body);
  return absl::OkStatus();
}

}  // namespace lethe::proto
