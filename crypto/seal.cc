#include "crypto/seal.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "base/file_system.h"
#include "base/status.h"
#include "crypto/crypto.h"
#include "crypto/openssl_ptr.h"

namespace lethe::crypto {
namespace {

using PkeyPtr = ossl::Pkey;
using BioPtr = ossl::Bio;

void InitSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) std::abort();  // no usable randomness: continuing would be unsafe
}

std::string PemOf(EVP_PKEY* key, bool is_private) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (is_private) PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  else PEM_write_bio_PUBKEY(bio.get(), key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  std::string out(data, static_cast<size_t>(n));
  OPENSSL_cleanse(data, static_cast<size_t>(n));
  return out;
}

// The X25519 key among the PEM blocks of `pem` (private or public ones).
PkeyPtr FindX25519(std::string_view pem, bool is_private) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (true) {
    PkeyPtr k(is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                         : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!k) break;
    if (EVP_PKEY_get_id(k.get()) == EVP_PKEY_X25519) {
      ERR_clear_error();
      return k;
    }
  }
  ERR_clear_error();
  return nullptr;
}

}  // namespace

absl::StatusOr<X25519PublicKey> X25519PublicKey::FromRaw(std::string_view raw) {
  if (raw.size() != kX25519KeySize)
    return absl::InvalidArgumentError("an X25519 public key is 32 bytes");
  return X25519PublicKey(std::string(raw));
}

absl::StatusOr<X25519PublicKey> X25519PublicKey::FromPem(std::string_view pem) {
  PkeyPtr k = FindX25519(pem, false);
  if (!k) return absl::NotFoundError("no X25519 public key (PEM) found");
  std::string raw(kX25519KeySize, '\0');
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(k.get(), reinterpret_cast<unsigned char*>(raw.data()), &len) != 1 ||
      len != kX25519KeySize)
    return absl::InvalidArgumentError("X25519 public key does not export");
  return X25519PublicKey(std::move(raw));
}

std::string X25519PublicKey::ToPem() const {
  PkeyPtr k(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr,
                                        reinterpret_cast<const unsigned char*>(raw_.data()), raw_.size()));
  return PemOf(k.get(), false);
}

std::string X25519PublicKey::KeyId() const { return Hex(Sha256(raw_).substr(0, 8)); }

absl::StatusOr<X25519PrivateKey> X25519PrivateKey::Generate() {
  InitSodium();
  std::string pk(crypto_box_PUBLICKEYBYTES, '\0');
  std::string sk(crypto_box_SECRETKEYBYTES, '\0');
  crypto_box_keypair(reinterpret_cast<unsigned char*>(pk.data()), reinterpret_cast<unsigned char*>(sk.data()));
  SecretBytes secret(std::move(sk));
  return X25519PrivateKey(std::move(secret), X25519PublicKey(std::move(pk)));
}

absl::StatusOr<X25519PrivateKey> X25519PrivateKey::FromSeed(const SecretBytes& seed) {
  InitSodium();
  if (RevealSecret(seed).size() != crypto_box_SEEDBYTES)
    return absl::InvalidArgumentError("an X25519 seed is 32 bytes");
  std::string pk(crypto_box_PUBLICKEYBYTES, '\0');
  std::string sk(crypto_box_SECRETKEYBYTES, '\0');
  crypto_box_seed_keypair(reinterpret_cast<unsigned char*>(pk.data()), reinterpret_cast<unsigned char*>(sk.data()),
                          reinterpret_cast<const unsigned char*>(RevealSecret(seed).data()));
  SecretBytes secret(std::move(sk));
  return X25519PrivateKey(std::move(secret), X25519PublicKey(std::move(pk)));
}

absl::StatusOr<X25519PrivateKey> X25519PrivateKey::FromPem(std::string_view pem) {
  PkeyPtr k = FindX25519(pem, true);
  if (!k) return absl::NotFoundError("no X25519 private key (PEM) found");
  std::string raw(kX25519KeySize, '\0');
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_private_key(k.get(), reinterpret_cast<unsigned char*>(raw.data()), &len) != 1 ||
      len != kX25519KeySize)
    return absl::InvalidArgumentError("X25519 private key does not export");
  SecretBytes secret(std::move(raw));
  std::string pk(crypto_box_PUBLICKEYBYTES, '\0');
  InitSodium();
  crypto_scalarmult_base(reinterpret_cast<unsigned char*>(pk.data()),
                         reinterpret_cast<const unsigned char*>(RevealSecret(secret).data()));
  return X25519PrivateKey(std::move(secret), X25519PublicKey(std::move(pk)));
}

absl::StatusOr<X25519PrivateKey> X25519PrivateKey::LoadFile(const std::string& path) {
  LETHE_ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
  SecretBytes guarded(std::move(pem));
  auto key = FromPem(RevealSecret(guarded));
  if (!key.ok())
    return Annotate(key.status(), path + " (an agent key file from `lethectl keys generate` holds one)");
  return key;
}

SecretBytes X25519PrivateKey::ToPem() const {
  std::string_view raw = RevealSecret(raw_);
  PkeyPtr k(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr,
                                         reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
  return SecretBytes(PemOf(k.get(), true));
}

absl::StatusOr<SecretBytes> X25519PrivateKey::Open(std::string_view sealed) const {
  InitSodium();
  if (sealed.size() < kSealOverhead) return absl::DataLossError("sealed box is too short");
  std::string plain(sealed.size() - kSealOverhead, '\0');
  if (crypto_box_seal_open(reinterpret_cast<unsigned char*>(plain.data()),
                           reinterpret_cast<const unsigned char*>(sealed.data()), sealed.size(),
                           reinterpret_cast<const unsigned char*>(public_key_.raw().data()),
                           reinterpret_cast<const unsigned char*>(RevealSecret(raw_).data())) != 0) {
    sodium_memzero(plain.data(), plain.size());
    return absl::DataLossError("sealed box does not open with this key (sealed to another, or altered)");
  }
  return SecretBytes(std::move(plain));
}

std::string SealTo(const X25519PublicKey& recipient, std::string_view plaintext) {
  InitSodium();
  std::string out(plaintext.size() + kSealOverhead, '\0');
  crypto_box_seal(reinterpret_cast<unsigned char*>(out.data()),
                  reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                  reinterpret_cast<const unsigned char*>(recipient.raw().data()));
  return out;
}

absl::StatusOr<std::string> GenerateKeyFiles(const std::string& prefix) {
  const std::string key_path = prefix + ".key";
  const std::string pub_path = prefix + ".pub";
  LETHE_ASSIGN_OR_RETURN(Ed25519PrivateKey sign, Ed25519PrivateKey::Generate());
  LETHE_ASSIGN_OR_RETURN(X25519PrivateKey enc, X25519PrivateKey::Generate());
  SecretBytes both(std::string(RevealSecret(sign.ToPem())) + std::string(RevealSecret(enc.ToPem())));
  LETHE_RETURN_IF_ERROR(WriteNewFile(key_path, RevealSecret(both), 0600));
  absl::Status s = WriteNewFile(pub_path, sign.public_key().ToPem() + enc.public_key().ToPem(), 0644);
  if (!s.ok()) {
    ::unlink(key_path.c_str());  // no half-written key pair
    return s;
  }
  return sign.public_key().KeyId();
}

}  // namespace lethe::crypto
