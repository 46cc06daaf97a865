#include "crypto/crypto.h"

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
}  // namespace
}  // namespace lethe::crypto
