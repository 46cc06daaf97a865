#include "base/file_system.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "crypto/x509.h"

#include <sys/stat.h>

#include <filesystem>

#include "gtest/gtest.h"

namespace lethe::crypto {
namespace {

TEST(Sha256, KnownAnswer) {
  EXPECT_EQ(Hex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Parts({"a", "bc"}), Sha256("abc"));
}

TEST(HmacSha256, Rfc4231Case2) {
  EXPECT_EQ(Hex(HmacSha256(SecretBytes("Jefe"), "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Crc32c, KnownAnswer) {
  // RFC 3720 B.4: 32 bytes of zeros.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), Crc32c("123456789"));
}

TEST(Encoding, HexAndBase64RoundTripAndRejectGarbage) {
  EXPECT_EQ(*FromHex(Hex("\x01\xff")), "\x01\xff");
  EXPECT_FALSE(FromHex("abc").ok());
  EXPECT_FALSE(FromHex("zz").ok());
  EXPECT_EQ(*FromBase64(Base64("hello")), "hello");
  EXPECT_FALSE(FromBase64("!!!").ok());
}

TEST(AesGcm, SealOpenAndDetectTampering) {
  SecretBytes key = RandomSecret(32);
  auto sealed = SealAesGcm(key, "secret payload", "aad");
  ASSERT_TRUE(sealed.ok());
  auto opened = OpenAesGcm(key, *sealed, "aad");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(RevealSecret(*opened), "secret payload");

  std::string flipped = *sealed;
  flipped[15] ^= 1;
  EXPECT_EQ(OpenAesGcm(key, flipped, "aad").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenAesGcm(key, *sealed, "other").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenAesGcm(RandomSecret(32), *sealed, "aad").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(SealAesGcm(RandomSecret(16), "x", "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Ed25519, SignVerifyAndRejectForgeries) {
  auto key = Ed25519PrivateKey::Generate();
  ASSERT_TRUE(key.ok());
  std::string sig = key->Sign("message");
  EXPECT_TRUE(key->public_key().Verify("message", sig));
  EXPECT_FALSE(key->public_key().Verify("messagE", sig));
  sig[0] ^= 1;
  EXPECT_FALSE(key->public_key().Verify("message", sig));
  auto other = Ed25519PrivateKey::Generate();
  EXPECT_FALSE(other->public_key().Verify("message", key->Sign("message")));
  EXPECT_EQ(key->public_key().KeyId().size(), 16u);
}

TEST(Ed25519, PemFilesRoundTripWithPrivateMode) {
  auto dir = std::filesystem::temp_directory_path() / ("lethe-crypto-" + Hex(RandomBytes(6)));
  std::filesystem::create_directories(dir);
  auto key = Ed25519PrivateKey::Generate();
  ASSERT_TRUE(key->SaveFile((dir / "k.key").string()).ok());
  ASSERT_TRUE(key->public_key().SaveFile((dir / "k.pub").string()).ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto loaded = Ed25519PrivateKey::LoadFile((dir / "k.key").string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto pub = Ed25519PublicKey::LoadFile((dir / "k.pub").string());
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_EQ(pub->raw(), key->public_key().raw());
  EXPECT_TRUE(pub->Verify("x", loaded->Sign("x")));

  // A public key is not a private key, and the error names the file, not its contents.
  auto wrong = Ed25519PrivateKey::LoadFile((dir / "k.pub").string());
  EXPECT_FALSE(wrong.ok());
  EXPECT_NE(std::string(wrong.status().message()).find("k.pub"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(SecretBytes, PrintsOnlyItsLength) {
  std::ostringstream os;
  os << SecretBytes("alice@example.com");
  EXPECT_EQ(os.str(), "<secret:17 bytes>");
}

}  // namespace
}  // namespace lethe::crypto

namespace lethe::crypto {
namespace {
TEST(Crc32c, AllLengthsAndSplitsAgreeWithTheBitwiseDefinition) {
  // A bit-at-a-time reference, straight from the polynomial 0x82F63B78 (reflected).
  auto reference = [](std::string_view d) {
    uint32_t c = 0xFFFFFFFFu;
    for (unsigned char b : d) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
  };
  std::string data = RandomBytes(300);
  for (size_t n = 0; n <= data.size(); ++n) {
    std::string_view d(data.data(), n);
    ASSERT_EQ(Crc32c(d), reference(d)) << n;
    ASSERT_EQ(Crc32c(d.substr(n / 3), Crc32c(d.substr(0, n / 3))), reference(d)) << n;
  }
}
// ---- sealing, certificates, key files ------------------------------------------------------

std::string TempPath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("lethe-crypto-" + Hex(RandomBytes(6)));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

TEST(Seal, OnlyTheRecipientOpensAndAnyChangeIsRefused) {
  auto alice = X25519PrivateKey::Generate().value();
  auto mallory = X25519PrivateKey::Generate().value();
  const std::string box = SealTo(alice.public_key(), "user_id=73310042");
  EXPECT_EQ(box.size(), 16 + kSealOverhead);
  EXPECT_EQ(box.find("73310042"), std::string::npos);
  EXPECT_NE(SealTo(alice.public_key(), "user_id=73310042"), box) << "sealing must be randomised";
  auto opened = alice.Open(box);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(RevealSecret(*opened), "user_id=73310042");
  EXPECT_EQ(mallory.Open(box).status().code(), absl::StatusCode::kDataLoss);
  for (size_t i = 0; i < box.size(); ++i) {
    std::string bad = box;
    bad[i] ^= 0x01;
    EXPECT_FALSE(alice.Open(bad).ok()) << "byte " << i;
  }
  EXPECT_FALSE(alice.Open(box.substr(0, 10)).ok());
}

TEST(KeyFiles, GenerateWritesBothKeysAndNeverOverwrites) {
  const std::string prefix = TempPath("agent");
  auto id = GenerateKeyFiles(prefix);
  ASSERT_TRUE(id.ok()) << id.status();
  struct stat st {};
  ASSERT_EQ(::stat((prefix + ".key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The Ed25519 loaders and the X25519 loaders each find their key in the same files.
  auto sign = Ed25519PrivateKey::LoadFile(prefix + ".key");
  ASSERT_TRUE(sign.ok()) << sign.status();
  EXPECT_EQ(sign->public_key().KeyId(), *id);
  EXPECT_EQ(Ed25519PublicKey::LoadFile(prefix + ".pub")->KeyId(), *id);
  auto enc = X25519PrivateKey::LoadFile(prefix + ".key");
  ASSERT_TRUE(enc.ok()) << enc.status();
  auto enc_pub = X25519PublicKey::FromPem(ReadFile(prefix + ".pub").value());
  ASSERT_TRUE(enc_pub.ok());
  EXPECT_EQ(enc_pub->raw(), enc->public_key().raw());
  const std::string before = ReadFile(prefix + ".key").value();
  EXPECT_EQ(GenerateKeyFiles(prefix).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFile(prefix + ".key").value(), before);
  // A file with only an Ed25519 key has no sealing key, and says which file.
  const std::string old = TempPath("old.key");
  ASSERT_TRUE(sign->SaveFile(old).ok());
  auto none = X25519PrivateKey::LoadFile(old);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(none.status().message()).find(old), std::string::npos);
}

TEST(Files, WriteNewFileRefusesAnExistingFileOrSymlink) {
  const std::string path = TempPath("new");
  ASSERT_TRUE(WriteNewFile(path, "one", 0600).ok());
  EXPECT_EQ(WriteNewFile(path, "two", 0600).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFile(path).value(), "one");
  const std::string link = TempPath("link");
  const std::string target = TempPath("target");
  std::filesystem::create_symlink(target, link);
  EXPECT_EQ(WriteNewFile(link, "x", 0600).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(std::filesystem::exists(target)) << "followed the symlink";
  // WriteFileAtomic replaces a symlink at the destination with a file; the target is untouched.
  ASSERT_TRUE(WriteFileAtomic(link, "y", 0600).ok());
  EXPECT_FALSE(std::filesystem::is_symlink(link));
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST(Certificates, SpiffeIdsAndTheCaFiles) {
  auto id = ParseSpiffeId("spiffe://example.org/lethe/operator/olga");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->trust_domain, "example.org");
  EXPECT_EQ(id->role, "operator");
  EXPECT_EQ(id->name, "olga");
  for (const char* bad : {"spiffe://example.org/other/operator/olga", "https://example.org/lethe/a/b",
                          "spiffe://Example.org/lethe/operator/olga", "spiffe://example.org/lethe/operator",
                          "spiffe://example.org/lethe/operator/olga/x", "spiffe://example.org/lethe/Op/olga"})
    EXPECT_FALSE(ParseSpiffeId(bad).ok()) << bad;
  // A long value is quoted only in part.
  auto long_one = ParseSpiffeId("spiffe://" + std::string(5000, 'a'));
  EXPECT_LT(long_one.status().message().size(), 200u);
  const std::string dir = std::filesystem::path(TempPath("x")).parent_path().string() + "/certs";
  ASSERT_TRUE(CreateCa(dir, "example.org").ok());
  EXPECT_EQ(CreateCa(dir, "example.org").code(), absl::StatusCode::kAlreadyExists) << "the CA key was replaced";
  ASSERT_TRUE(CreateClientCert(dir, "auditor", "audrey").ok());
  EXPECT_FALSE(CreateClientCert(dir, "root", "x").ok()) << "an unknown role";
  EXPECT_FALSE(CreateServerCert(dir, {"not a host!"}).ok());
  auto info = InspectCertificate(ReadFile(dir + "/client.audrey.crt").value());
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->uri_sans.size(), 1u);
  EXPECT_EQ(info->uri_sans[0], "spiffe://example.org/lethe/auditor/audrey");
  EXPECT_EQ(info->sha256_hex.size(), 64u);
  EXPECT_EQ(TrustDomainOfCa(ReadFile(dir + "/ca.crt").value()).value(), "example.org");
}
}  // namespace
}  // namespace lethe::crypto
