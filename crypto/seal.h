// Sealing data to one recipient: libsodium's sealed box (an ephemeral X25519 key agreement
// with the recipient's key, then XSalsa20-Poly1305). Only the holder of the recipient's
// private key can open it; the sender keeps nothing that could. lethed seals the identities
// in each command to the enrolled encryption key of the domain's agent.
//
// Key files hold PEM blocks: an agent's PREFIX.key holds its Ed25519 signing key and its
// X25519 encryption key (two PKCS#8 blocks, Ed25519 first), PREFIX.pub the two public keys
// (two SubjectPublicKeyInfo blocks). The X25519 loaders pick the X25519 block.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/secret.h"

namespace lethe::crypto {

inline constexpr size_t kX25519KeySize = 32;
// A sealed box is this much longer than its plaintext.
inline constexpr size_t kSealOverhead = 48;

class X25519PublicKey {
 public:
  static absl::StatusOr<X25519PublicKey> FromRaw(std::string_view raw);
  // The X25519 key among the PEM public key blocks of `pem`; kNotFound if there is none.
  static absl::StatusOr<X25519PublicKey> FromPem(std::string_view pem);
  const std::string& raw() const { return raw_; }
  std::string ToPem() const;
  // Hex of the first 8 bytes of SHA-256(raw key), as for Ed25519 keys.
  std::string KeyId() const;

 private:
  friend class X25519PrivateKey;
  explicit X25519PublicKey(std::string raw) : raw_(std::move(raw)) {}
  std::string raw_;
};

class X25519PrivateKey {
 public:
  static absl::StatusOr<X25519PrivateKey> Generate();
  // The key pair libsodium derives from a 32-byte seed (crypto_box_seed_keypair): the same
  // seed, the same keys. kInvalidArgument for a seed of another size.
  static absl::StatusOr<X25519PrivateKey> FromSeed(const SecretBytes& seed);
  // The X25519 key among the PEM private key blocks of `pem`; kNotFound if there is none.
  static absl::StatusOr<X25519PrivateKey> FromPem(std::string_view pem);
  static absl::StatusOr<X25519PrivateKey> LoadFile(const std::string& path);
  const X25519PublicKey& public_key() const { return public_key_; }
  SecretBytes ToPem() const;  // PKCS#8
  // Opens a box sealed to this key; kDataLoss if it was not, or was altered.
  absl::StatusOr<SecretBytes> Open(std::string_view sealed) const;

 private:
  X25519PrivateKey(SecretBytes raw, X25519PublicKey pub)
      : raw_(std::move(raw)), public_key_(std::move(pub)) {}
  SecretBytes raw_;
  X25519PublicKey public_key_;
};

// `lethectl keys generate --out PREFIX`: PREFIX.key (mode 0600: an Ed25519 signing key, then an
// X25519 encryption key) and PREFIX.pub (their public keys). Refuses to replace either file
// (kAlreadyExists). Returns the signing key's id.
absl::StatusOr<std::string> GenerateKeyFiles(const std::string& prefix);

// Seals `plaintext` to `recipient`: kSealOverhead bytes longer, different every time.
std::string SealTo(const X25519PublicKey& recipient, std::string_view plaintext);

}  // namespace lethe::crypto
