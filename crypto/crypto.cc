#include "crypto/crypto.h"

#include <fcntl.h>
#include <sodium.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/openssl_ptr.h"

namespace lethe::crypto {
namespace {

using ossl::Bio;
using ossl::CipherCtx;
using ossl::MdCtx;
using ossl::Pkey;

const std::array<uint32_t, 256>& Crc32cTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

}  // namespace

std::string Sha256(std::string_view data) { return Sha256Parts({data}); }

namespace {

const EVP_MD* Sha256Md() {
  // Fetched once and deliberately never freed: it must outlive every thread's context and
  // OpenSSL's own atexit cleanup.
  static const EVP_MD* const md = [] {
    const EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return m != nullptr ? m : EVP_sha256();
  }();
  return md;
}

[[noreturn]] void DigestFailed(const char* what) {
  std::fprintf(stderr, "lethe::crypto: %s\n", what);
  std::abort();
}

EVP_MD_CTX* ThreadMdCtx() {
  thread_local MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) DigestFailed("EVP_MD_CTX_new failed");
  return ctx.get();
}

}  // namespace

void Sha256PartsInto(std::initializer_list<std::string_view> parts, unsigned char* out) {
  EVP_MD_CTX* ctx = ThreadMdCtx();
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex2(ctx, Sha256Md(), nullptr) == 1;
  for (auto p : parts) ok = ok && (p.empty() || EVP_DigestUpdate(ctx, p.data(), p.size()) == 1);
  if (!ok || EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != kSha256Size) DigestFailed("SHA-256 failed");
}

std::string Sha256Parts(std::initializer_list<std::string_view> parts) {
  std::string out(kSha256Size, '\0');
  Sha256PartsInto(parts, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

namespace {
bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}
}  // namespace

// libsodium rather than OpenSSL for the two primitives every write calls: OpenSSL 3's one-shot
// HMAC fetches its digest from the provider each call (4-5 us here, against 1 us).
std::string HmacSha256(const SecretBytes& key, std::string_view data) {
  if (!SodiumReady()) std::abort();  // the library cannot start: nothing can be keyed safely
  std::string out(kSha256Size, '\0');
  std::string_view k = RevealSecret(key);
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(k.data()), k.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  crypto_auth_hmacsha256_final(&st, reinterpret_cast<unsigned char*>(out.data()));
  sodium_memzero(&st, sizeof(st));  // the state holds the key's pads
  return out;
}

std::string RandomBytes(size_t n) {
  // The kernel's getrandom() behind a ChaCha20 generator; libsodium aborts rather than return
  // weak bytes when the OS entropy source is broken.
  if (!SodiumReady()) std::abort();
  std::string out(n, '\0');
  randombytes_buf(out.data(), n);
  return out;
}

SecretBytes RandomSecret(size_t n) { return SecretBytes(RandomBytes(n)); }

namespace {
uint32_t Crc32cPortable(std::string_view data, uint32_t crc) {
  const auto& t = Crc32cTable();
  uint32_t c = ~crc;
  for (unsigned char b : data) c = t[(c ^ b) & 0xFF] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__)
// The SSE4.2 crc32 instruction computes CRC-32C (Castagnoli) 8 bytes at a time.
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(std::string_view data, uint32_t crc) {
  uint64_t c = ~crc & 0xFFFFFFFFu;
  const char* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, static_cast<unsigned char>(*p++));
  return ~c32;
}
#endif
}  // namespace

uint32_t Crc32c(std::string_view data, uint32_t crc) {
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return Crc32cSse42(data, crc);
#endif
  return Crc32cPortable(data, crc);
}

std::string Hex(std::string_view bytes) { return absl::BytesToHexString(Av(bytes)); }

absl::StatusOr<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return absl::InvalidArgumentError("hex string has odd length");
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c)))
      return absl::InvalidArgumentError("hex string has a non-hex character");
  }
  return absl::HexStringToBytes(Av(hex));
}

std::string Base64(std::string_view bytes) { return absl::Base64Escape(Av(bytes)); }

absl::StatusOr<std::string> FromBase64(std::string_view b64) {
  std::string out;
  if (!absl::Base64Unescape(Av(b64), &out)) return absl::InvalidArgumentError("invalid base64");
  // absl accepts some non-canonical forms; insist on the canonical encoding.
  if (absl::Base64Escape(out) != b64) return absl::InvalidArgumentError("non-canonical base64");
  return out;
}

absl::StatusOr<std::string> SealAesGcm(const SecretBytes& key, std::string_view plaintext,
                                       std::string_view aad) {
  if (key.size() != kAes256KeySize)
    return absl::InvalidArgumentError(
        absl::StrCat("AES-256-GCM key must be 32 bytes, got ", key.size()));
  std::string nonce = RandomBytes(kGcmNonceSize);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  auto k = reinterpret_cast<const unsigned char*>(RevealSecret(key).data());
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, k,
                         reinterpret_cast<const unsigned char*>(nonce.data())) != 1)
    return absl::InternalError("AES-GCM init failed");
  int len = 0;
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1)
    return absl::InternalError("AES-GCM aad failed");
  std::string out = nonce;
  out.resize(kGcmNonceSize + plaintext.size() + kGcmTagSize);
  auto* ct = reinterpret_cast<unsigned char*>(out.data()) + kGcmNonceSize;
  if (EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1)
    return absl::InternalError("AES-GCM encrypt failed");
  int fin = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), ct + len, &fin) != 1)
    return absl::InternalError("AES-GCM final failed");
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagSize,
                          ct + plaintext.size()) != 1)
    return absl::InternalError("AES-GCM tag failed");
  return out;
}

absl::StatusOr<SecretBytes> OpenAesGcm(const SecretBytes& key, std::string_view sealed,
                                       std::string_view aad) {
  if (key.size() != kAes256KeySize)
    return absl::InvalidArgumentError(
        absl::StrCat("AES-256-GCM key must be 32 bytes, got ", key.size()));
  if (sealed.size() < kGcmNonceSize + kGcmTagSize)
    return absl::DataLossError("sealed data shorter than nonce and tag");
  const size_t ct_len = sealed.size() - kGcmNonceSize - kGcmTagSize;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  auto k = reinterpret_cast<const unsigned char*>(RevealSecret(key).data());
  auto* in = reinterpret_cast<const unsigned char*>(sealed.data());
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, k, in) != 1)
    return absl::InternalError("AES-GCM init failed");
  int len = 0;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1)
    return absl::InternalError("AES-GCM aad failed");
  std::string out(ct_len, '\0');
  if (EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                        in + kGcmNonceSize, static_cast<int>(ct_len)) != 1)
    return absl::DataLossError("AES-GCM decrypt failed");
  std::string tag(sealed.substr(kGcmNonceSize + ct_len));
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagSize, tag.data());
  int fin = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &fin) != 1)
    return absl::DataLossError("AES-GCM authentication failed (wrong key or altered data)");
  return SecretBytes(std::move(out));
}

// ---- Ed25519 ---------------------------------------------------------------------------

namespace {

// RFC 8032 §5.1.3: whether 32 bytes decode to a point of edwards25519 (y below p, x from
// the curve equation exists, and not x = 0 with the sign bit set).
bool DecodesToEd25519Point(std::string_view raw) {
  struct BnCtxFree { void operator()(BN_CTX* c) const { BN_CTX_free(c); } };
  struct BnFree { void operator()(BIGNUM* b) const { BN_free(b); } };
  std::unique_ptr<BN_CTX, BnCtxFree> ctx(BN_CTX_new());
  auto bn = [] { return std::unique_ptr<BIGNUM, BnFree>(BN_new()); };
  auto p = bn(), d = bn(), y = bn(), u = bn(), v = bn(), x2 = bn(), x = bn(), t = bn(), e = bn();
  if (!ctx || !p || !d || !y || !u || !v || !x2 || !x || !t || !e) return false;
  std::string le(raw);
  const bool sign = (static_cast<unsigned char>(le[31]) & 0x80) != 0;
  le[31] = static_cast<char>(static_cast<unsigned char>(le[31]) & 0x7F);
  bool ok = BN_lebin2bn(reinterpret_cast<const unsigned char*>(le.data()), 32, y.get()) != nullptr;
  // p = 2^255 - 19; d = -121665 / 121666 mod p.
  ok = ok && BN_set_word(p.get(), 1) && BN_lshift(p.get(), p.get(), 255) && BN_sub_word(p.get(), 19);
  if (!ok || BN_cmp(y.get(), p.get()) >= 0) return false;
  ok = BN_set_word(t.get(), 121666) && BN_mod_inverse(t.get(), t.get(), p.get(), ctx.get()) &&
       BN_set_word(d.get(), 121665) && BN_mod_mul(d.get(), d.get(), t.get(), p.get(), ctx.get()) &&
       BN_sub(d.get(), p.get(), d.get());
  // x2 = (y^2 - 1) / (d y^2 + 1)
  ok = ok && BN_mod_sqr(t.get(), y.get(), p.get(), ctx.get()) && BN_copy(u.get(), t.get()) &&
       BN_sub_word(u.get(), 1) && BN_mod(u.get(), u.get(), p.get(), ctx.get()) &&
       BN_mod_mul(v.get(), d.get(), t.get(), p.get(), ctx.get()) && BN_add_word(v.get(), 1) &&
       BN_mod(v.get(), v.get(), p.get(), ctx.get()) &&
       BN_mod_inverse(v.get(), v.get(), p.get(), ctx.get()) &&
       BN_mod_mul(x2.get(), u.get(), v.get(), p.get(), ctx.get());
  // x = x2^((p+3)/8); if x^2 != x2, x *= 2^((p-1)/4); then x^2 must be x2.
  ok = ok && BN_copy(e.get(), p.get()) && BN_add_word(e.get(), 3) && BN_rshift(e.get(), e.get(), 3) &&
       BN_mod_exp(x.get(), x2.get(), e.get(), p.get(), ctx.get()) &&
       BN_mod_sqr(t.get(), x.get(), p.get(), ctx.get());
  if (!ok) return false;
  if (BN_cmp(t.get(), x2.get()) != 0) {
    auto i = bn();
    ok = i && BN_copy(e.get(), p.get()) && BN_sub_word(e.get(), 1) && BN_rshift(e.get(), e.get(), 2) &&
         BN_set_word(t.get(), 2) && BN_mod_exp(i.get(), t.get(), e.get(), p.get(), ctx.get()) &&
         BN_mod_mul(x.get(), x.get(), i.get(), p.get(), ctx.get()) &&
         BN_mod_sqr(t.get(), x.get(), p.get(), ctx.get());
    if (!ok || BN_cmp(t.get(), x2.get()) != 0) return false;
  }
  return !(BN_is_zero(x.get()) && sign);
}

}  // namespace

absl::StatusOr<Ed25519PublicKey> Ed25519PublicKey::FromRaw(std::string_view raw) {
  if (raw.size() != kEd25519PublicKeySize)
    return absl::InvalidArgumentError(
        absl::StrCat("Ed25519 public key must be 32 bytes, got ", raw.size()));
  if (!DecodesToEd25519Point(raw))
    return absl::InvalidArgumentError("Ed25519 public key is not a point of the curve (RFC 8032 5.1.3)");
  return Ed25519PublicKey(std::string(raw));
}

absl::StatusOr<Ed25519PublicKey> Ed25519PublicKey::FromPem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Pkey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError("not a PEM public key");
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    return absl::InvalidArgumentError("PEM public key is not Ed25519");
  std::string raw(kEd25519PublicKeySize, '\0');
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(raw.data()), &len) != 1)
    return absl::InvalidArgumentError("cannot read Ed25519 public key");
  return Ed25519PublicKey(std::move(raw));
}

absl::StatusOr<Ed25519PublicKey> Ed25519PublicKey::LoadFile(const std::string& path) {
  LETHE_ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
  auto key = FromPem(pem);
  if (!key.ok()) return Annotate(key.status(), path);
  return key;
}

std::string Ed25519PublicKey::ToPem() const {
  Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                       reinterpret_cast<const unsigned char*>(raw_.data()),
                                       raw_.size()));
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::Status Ed25519PublicKey::SaveFile(const std::string& path) const {
  return WriteFileAtomic(path, ToPem(), 0644);
}

Ed25519PublicKey::Ed25519PublicKey(std::string raw)
    : raw_(std::move(raw)), key_id_(Hex(Sha256(raw_).substr(0, 8))) {}

bool Ed25519PublicKey::Verify(std::string_view message, std::string_view signature) const {
  if (signature.size() != kEd25519SignatureSize || raw_.size() != crypto_sign_PUBLICKEYBYTES)
    return false;
  if (!SodiumReady()) return false;
  return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(),
                                     reinterpret_cast<const unsigned char*>(raw_.data())) == 0;
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::Generate() {
  EVP_PKEY* raw = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1)
    return absl::InternalError("Ed25519 key generation failed");
  Pkey key(raw);
  std::string seed(32, '\0');
  size_t len = seed.size();
  EVP_PKEY_get_raw_private_key(key.get(), reinterpret_cast<unsigned char*>(seed.data()), &len);
  std::string pub(32, '\0');
  len = pub.size();
  EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(pub.data()), &len);
  return Ed25519PrivateKey(SecretBytes(std::move(seed)), Ed25519PublicKey(std::move(pub)));
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::FromPem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError("not a PEM private key");
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    return absl::InvalidArgumentError("PEM private key is not Ed25519");
  std::string seed(32, '\0');
  size_t len = seed.size();
  if (EVP_PKEY_get_raw_private_key(key.get(), reinterpret_cast<unsigned char*>(seed.data()), &len) != 1)
    return absl::InvalidArgumentError("cannot read Ed25519 private key");
  std::string pub(32, '\0');
  len = pub.size();
  EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(pub.data()), &len);
  return Ed25519PrivateKey(SecretBytes(std::move(seed)), Ed25519PublicKey(std::move(pub)));
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::LoadFile(const std::string& path) {
  LETHE_ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
  SecretBytes guarded(std::move(pem));  // wiped when we return
  auto key = FromPem(RevealSecret(guarded));
  if (!key.ok()) return Annotate(key.status(), path);
  return key;
}

SecretBytes Ed25519PrivateKey::ToPem() const {
  std::string_view seed = RevealSecret(seed_);
  Pkey key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                        reinterpret_cast<const unsigned char*>(seed.data()),
                                        seed.size()));
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  SecretBytes pem(std::string(data, static_cast<size_t>(n)));
  OPENSSL_cleanse(data, static_cast<size_t>(n));
  return pem;
}

absl::Status Ed25519PrivateKey::SaveFile(const std::string& path) const {
  return WriteFileAtomic(path, RevealSecret(ToPem()), 0600);
}

Ed25519PrivateKey::Ed25519PrivateKey(SecretBytes seed, Ed25519PublicKey pub)
    : seed_(std::move(seed)), public_key_(std::move(pub)) {
  (void)SodiumReady();
  std::string expanded(crypto_sign_SECRETKEYBYTES, '\0');
  unsigned char derived_pub[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_seed_keypair(derived_pub, reinterpret_cast<unsigned char*>(expanded.data()),
                           reinterpret_cast<const unsigned char*>(RevealSecret(seed_).data()));
  signing_key_ = SecretBytes(std::move(expanded));
}

std::string Ed25519PrivateKey::Sign(std::string_view message) const {
  std::string sig(kEd25519SignatureSize, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       reinterpret_cast<const unsigned char*>(RevealSecret(signing_key_).data()));
  return sig;
}

}  // namespace lethe::crypto
