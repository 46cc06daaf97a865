#include "proto/envelope.h"

#include "absl/strings/str_cat.h"

namespace lethe::proto {
namespace {
std::string SigningInput(std::string_view type, std::string_view body) {
  return absl::StrCat(absl::string_view(type.data(), type.size()), "\n",
                      absl::string_view(body.data(), body.size()));
}
}  // namespace

v1::SignedEnvelope SignEnvelope(std::string_view payload_type, std::string body,
                                const crypto::Ed25519PrivateKey& key) {
  v1::SignedEnvelope env;
  env.set_signature(key.Sign(SigningInput(payload_type, body)));
  env.set_payload_type(std::string(payload_type));
  env.set_body(std::move(body));
  env.set_key_id(key.public_key().KeyId());
  return env;
}

absl::StatusOr<std::string> VerifyEnvelope(const v1::SignedEnvelope& env,
                                           std::string_view expected_type,
                                           const crypto::Ed25519PublicKey& key) {
  if (env.payload_type() != expected_type)
    return absl::InvalidArgumentError("envelope payload_type is not " + std::string(expected_type));
  if (env.key_id() != key.KeyId())
    return absl::PermissionDeniedError("envelope signed by key " + env.key_id() +
                                       ", expected " + key.KeyId());
  if (!key.Verify(SigningInput(expected_type, env.body()), env.signature()))
    return absl::PermissionDeniedError("envelope signature does not verify");
  return env.body();
}

}  // namespace lethe::proto
