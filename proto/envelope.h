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
inline constexpr char kAccessCommandType[] = "lethe.v1.AccessCommand";
inline constexpr char kAccessPartChunkType[] = "lethe.v1.AccessPartChunk";
inline constexpr char kConsentStateType[] = "lethe.v1.ConsentState";

// Signs `body` (already serialized) as a message of `payload_type`.
v1::SignedEnvelope SignEnvelope(std::string_view payload_type, std::string body,
                                const crypto::Ed25519PrivateKey& key);

// Checks type, key id and signature of `env`. Returns the body bytes (still unparsed).
// kPermissionDenied for a wrong key or bad signature, kInvalidArgument for a wrong type.
absl::StatusOr<std::string> VerifyEnvelope(const v1::SignedEnvelope& env,
                                           std::string_view expected_type,
                                           const crypto::Ed25519PublicKey& key);

}  // namespace lethe::proto
