// Reading a signed envelope in a test: the plain way, parse, verify, parse the body. The
// product reads envelopes through its own checks (agents/command_verifier.h for commands,
// audit/request_lifecycle.h for receipts); tests and the envelope fuzzer use this as the
// independent reference.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "crypto/crypto.h"
#include "lethe/v1/messages.pb.h"
#include "proto/envelope.h"

namespace lethe::testing {

// Parses `wire` as a SignedEnvelope, verifies it is of `expected_type` and signed by `key`,
// and parses its body into `out` (its bytes into `body_out`, when given).
template <typename Message>
absl::Status OpenEnvelope(std::string_view wire, std::string_view expected_type,
                          const crypto::Ed25519PublicKey& key, Message* out,
                          std::string* body_out = nullptr) {
  v1::SignedEnvelope env;
  if (!env.ParseFromArray(wire.data(), static_cast<int>(wire.size())))
    return absl::InvalidArgumentError("message is not a SignedEnvelope");
  auto body = proto::VerifyEnvelope(env, expected_type, key);
  if (!body.ok()) return body.status();
  if (!out->ParseFromString(*body)) return absl::InvalidArgumentError("signed body does not parse");
  if (body_out) *body_out = std::move(*body);
  return absl::OkStatus();
}

}  // namespace lethe::testing
