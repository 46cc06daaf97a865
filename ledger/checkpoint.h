// Signed checkpoints in the C2SP tlog-checkpoint format (a C2SP signed-note):
//
//   <origin>\n
//   <tree size, decimal>\n
//   <base64 root hash>\n
//   \n
//   — <key name> <base64(4-byte big-endian key id || 64-byte Ed25519 signature)>\n
//
// The signature covers the three text lines including their newlines. The key name is the
// origin, and key id = SHA-256(key name || 0x0A || 0x01 || public key)[:4].
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/crypto.h"

namespace lethe::ledger {

inline constexpr char kDefaultOrigin[] = "lethe.local/ledger";

struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  std::string root;  // 32 raw bytes
};

std::string CheckpointBody(const Checkpoint& cp);
// Requires IsValidKeyName(cp.origin) (Ledger::Open checks its origin): otherwise the note
// does not verify.
std::string SignCheckpoint(const Checkpoint& cp, const crypto::Ed25519PrivateKey& key);
// Parses `note` and checks its signature by `key` under the key name `origin`.
// kPermissionDenied when no valid signature of that key is present; kInvalidArgument when
// the text is malformed.
absl::StatusOr<Checkpoint> VerifyCheckpoint(std::string_view note, std::string_view origin,
                                            const crypto::Ed25519PublicKey& key);
// Parses the body without checking signatures (to learn the origin before verifying).
// kInvalidArgument, as from VerifyCheckpoint, when the text is malformed or the origin is not
// a valid key name.
absl::StatusOr<Checkpoint> ParseCheckpointUnverified(std::string_view note);

// Whether `name` may be a note key name, and so the origin of a Lethe checkpoint (whose key
// name is its origin): non-empty, well-formed UTF-8, without Unicode spaces (Go's
// unicode.IsSpace) and without '+' (C2SP signed-note). A signature line is "— <name> <sig>",
// so a name with a space cannot be told from its signature: a checkpoint under such an
// origin could be signed but never verified, not even by the ledger that wrote it.
bool IsValidKeyName(std::string_view name);

uint32_t NoteKeyId(std::string_view key_name, const crypto::Ed25519PublicKey& key);
// "name+hex(keyid)+base64(0x01 || public key)", the standard note verifier key.
std::string VerifierKey(std::string_view key_name, const crypto::Ed25519PublicKey& key);

}  // namespace lethe::ledger
