// Unit tests for C2SP signed checkpoints (checkpoint.h): the note format against Go's
// golang.org/x/mod/sumdb/note reference key, key ids and verifier keys, origins that can name
// a key, and what VerifyCheckpoint rejects (CheckpointRejectTest).
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "tests/support/assertions.h"
#include "tests/support/ledger_fixture.h"

namespace lethe::ledger {
namespace {

using ::lethe::testing::kOrigin;
using ::lethe::testing::NewKey;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kEmDashSpace[] = "\xE2\x80\x94 ";  // U+2014 in UTF-8, then a space

std::string BigEndian32(uint32_t v) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
  return out;
}

// A C2SP signed note over arbitrary `text`, assembled by hand from the spec (not by
// SignCheckpoint), so that malformed bodies can carry a valid signature.
std::string SignNoteByHand(const std::string& text, const std::string& name,
                           const crypto::Ed25519PrivateKey& key) {
  const std::string sig = BigEndian32(NoteKeyId(name, key.public_key())) + key.Sign(text);
  return text + "\n" + kEmDashSpace + name + " " + crypto::Base64(sig) + "\n";
}

// The example key of golang.org/x/mod/sumdb/note (note_test.go): skey
// "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", its seed
// wrapped here in PKCS#8. A published test key, not a secret.
constexpr char kPeterNeumannPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIIEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n"
    "-----END PRIVATE KEY-----\n";

TEST(Checkpoint, NoteKeyIdAndVerifierKeyMatchTheGoReference) {
  ASSERT_OK_AND_ASSIGN(auto key, crypto::Ed25519PrivateKey::FromPem(kPeterNeumannPem));
  EXPECT_EQ(NoteKeyId("PeterNeumann", key.public_key()), 0xc74f20a3u);
  EXPECT_EQ(VerifierKey("PeterNeumann", key.public_key()),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
  // Ed25519 is deterministic: the hand-built note must equal the published one byte for byte.
  const std::string text =
      "If you think cryptography is the answer to your problem,\n"
      "then you don't know what your problem is.\n";
  EXPECT_EQ(SignNoteByHand(text, "PeterNeumann", key),
            text + "\n" + kEmDashSpace +
                "PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
  // ... and SignCheckpoint signs exactly like that.
  const Checkpoint cp{"PeterNeumann", 8, crypto::Sha256("root")};
  EXPECT_EQ(SignCheckpoint(cp, key), SignNoteByHand(CheckpointBody(cp), "PeterNeumann", key));
}

TEST(Checkpoint, NoteKeyIdIsSha256OfNameNewlineTypeAndKey) {
  const auto key = NewKey();
  const std::string h = crypto::Sha256(std::string(kOrigin) + "\n" + "\x01" + key.public_key().raw());
  const uint32_t want = (static_cast<uint32_t>(static_cast<uint8_t>(h[0])) << 24) |
                        (static_cast<uint32_t>(static_cast<uint8_t>(h[1])) << 16) |
                        (static_cast<uint32_t>(static_cast<uint8_t>(h[2])) << 8) |
                        static_cast<uint32_t>(static_cast<uint8_t>(h[3]));
  EXPECT_EQ(NoteKeyId(kOrigin, key.public_key()), want);
}

TEST(Checkpoint, SignThenVerifyRoundTripsWithTheC2spShape) {
  const auto key = NewKey();
  const Checkpoint cp{kOrigin, 12345, crypto::Sha256("a root")};
  const std::string note = SignCheckpoint(cp, key);

  ASSERT_OK_AND_ASSIGN(Checkpoint got, VerifyCheckpoint(note, kOrigin, key.public_key()));
  EXPECT_EQ(got.origin, cp.origin);
  EXPECT_EQ(got.size, cp.size);
  EXPECT_EQ(got.root, cp.root);

  std::vector<std::string> lines = absl::StrSplit(note, '\n');
  ASSERT_EQ(lines.size(), 6u) << note;  // 3 text lines, blank, signature, "" after the last \n
  EXPECT_EQ(lines[0], kOrigin);
  EXPECT_EQ(lines[1], "12345");
  EXPECT_EQ(lines[2], crypto::Base64(cp.root));
  EXPECT_EQ(lines[3], "");
  EXPECT_EQ(lines[5], "");
  EXPECT_EQ(CheckpointBody(cp), lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n");
  const std::string prefix = std::string(kEmDashSpace) + kOrigin + " ";
  ASSERT_THAT(lines[4], StartsWith(prefix));
  ASSERT_OK_AND_ASSIGN(std::string sig, crypto::FromBase64(lines[4].substr(prefix.size())));
  ASSERT_EQ(sig.size(), 68u);
  EXPECT_EQ(sig.substr(0, 4), BigEndian32(NoteKeyId(kOrigin, key.public_key())));
  EXPECT_TRUE(key.public_key().Verify(CheckpointBody(cp), sig.substr(4)));
}

class CheckpointRejectTest : public ::testing::Test {
 protected:
  absl::StatusCode Verify(const std::string& note) const {
    return VerifyCheckpoint(note, kOrigin, key_.public_key()).status().code();
  }
  // A correctly signed note over hand-written body lines.
  std::string Signed(const std::string& size_line, const std::string& root_line) const {
    return SignNoteByHand(std::string(kOrigin) + "\n" + size_line + "\n" + root_line + "\n",
                          kOrigin, key_);
  }
  const crypto::Ed25519PrivateKey key_ = NewKey();
  const Checkpoint cp_{kOrigin, 42, crypto::Sha256("root")};
  const std::string note_ = SignCheckpoint(cp_, key_);
};

TEST_F(CheckpointRejectTest, ChangedSizeOrRootIsPermissionDenied) {
  ASSERT_EQ(Verify(note_), absl::StatusCode::kOk);
  std::string size_changed = note_;
  size_changed.replace(size_changed.find("\n42\n"), 4, "\n43\n");
  EXPECT_EQ(Verify(size_changed), absl::StatusCode::kPermissionDenied);

  const std::string old_root = crypto::Base64(cp_.root);
  std::string root_changed = note_;
  root_changed.replace(root_changed.find(old_root), old_root.size(),
                       crypto::Base64(crypto::Sha256("other root")));
  EXPECT_EQ(Verify(root_changed), absl::StatusCode::kPermissionDenied);
}

TEST_F(CheckpointRejectTest, SignatureByAnotherKeyIsPermissionDenied) {
  EXPECT_EQ(Verify(SignCheckpoint(cp_, NewKey())), absl::StatusCode::kPermissionDenied);
}

TEST_F(CheckpointRejectTest, SignatureOnlyUnderAnotherNameIsPermissionDenied) {
  const std::string body = CheckpointBody(cp_);
  EXPECT_EQ(Verify(SignNoteByHand(body, "someone.else/log", key_)),
            absl::StatusCode::kPermissionDenied);
  // Even with our key id and a valid signature by our key, the line must carry our name.
  const std::string sig = BigEndian32(NoteKeyId(kOrigin, key_.public_key())) + key_.Sign(body);
  EXPECT_EQ(Verify(body + "\n" + kEmDashSpace + "someone.else/log " + crypto::Base64(sig) + "\n"),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(CheckpointRejectTest, MissingBlankLineIsInvalidArgument) {
  std::string note = note_;
  note.erase(note.find("\n\n"), 1);
  auto got = VerifyCheckpoint(note, kOrigin, key_.public_key());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("blank line"));
}

TEST_F(CheckpointRejectTest, MalformedSizeIsInvalidArgument) {
  const std::string root = crypto::Base64(cp_.root);
  ASSERT_EQ(Verify(Signed("42", root)), absl::StatusCode::kOk);
  ASSERT_EQ(Verify(Signed("0", root)), absl::StatusCode::kOk);
  for (const char* size : {"", "4a", "0x2a", "-1", "042", "00", "+42", " 42", "42 ",
                           "18446744073709551616"}) {
    EXPECT_EQ(Verify(Signed(size, root)), absl::StatusCode::kInvalidArgument)
        << "size line \"" << size << "\"";
  }
}

TEST_F(CheckpointRejectTest, RootNotA32ByteHashIsInvalidArgument) {
  const std::string h = crypto::Sha256("root");
  for (const std::string& root :
       {crypto::Base64(h.substr(0, 31)), crypto::Base64(h + "x"), std::string("not base64!"),
        std::string()}) {
    EXPECT_EQ(Verify(Signed("42", root)), absl::StatusCode::kInvalidArgument)
        << "root line \"" << root << "\"";
  }
}

TEST_F(CheckpointRejectTest, UnknownExtraSignatureLineIsIgnored) {
  // A witness cosignature under another name, after and before ours; and a signature under
  // our name by another key (say, a retired one), whose key id is not ours.
  const auto witness = NewKey();
  const std::string body = CheckpointBody(cp_);
  const std::string their_line =
      SignNoteByHand(body, "witness.example/w1", witness).substr(body.size() + 1);
  const std::string retired_line = SignNoteByHand(body, kOrigin, NewKey()).substr(body.size() + 1);
  const std::string our_line = note_.substr(body.size() + 1);
  ASSERT_THAT(our_line, StartsWith(kEmDashSpace));
  for (const std::string& note : {note_ + their_line, body + "\n" + their_line + our_line,
                                  body + "\n" + retired_line + our_line}) {
    ASSERT_OK_AND_ASSIGN(Checkpoint got, VerifyCheckpoint(note, kOrigin, key_.public_key()));
    EXPECT_EQ(got.size, 42u);
    EXPECT_EQ(got.root, cp_.root);
  }
}

// Found by tests/fuzz/checkpoint_fuzz: an origin with a space parsed, and a checkpoint signed
// under it could never be verified (the signature line "— <name> <sig>" splits at the first
// space), not even by the ledger that wrote it, at its next open.
TEST(Checkpoint, OriginMustBeAKeyNameWithoutSpacesOrPlus) {
  for (const char* name : {"lethe.local/ledger", "example.com/log-1", "日志/ä", "a"}) {
    EXPECT_TRUE(IsValidKeyName(name)) << name;
  }
  for (const std::string& name :
       {std::string(""), std::string("my log"), std::string("a+b"), std::string("tab\there"),
        std::string("cr\r"), std::string("nbsp\xC2\xA0"), std::string("ideographic\xE3\x80\x80"),
        std::string("en\xE2\x80\x82space"), std::string("bad\xFFutf8"), std::string("cut\xE2\x80"),
        std::string("overlong\xC0\xAF"), std::string("surrogate\xED\xA0\x80")}) {
    EXPECT_FALSE(IsValidKeyName(name)) << name;
  }
  const auto key = NewKey();
  const std::string note = SignNoteByHand("my log\n1\n" + crypto::Base64(crypto::Sha256("r")) + "\n",
                                          "my", key);
  EXPECT_EQ(ParseCheckpointUnverified(note).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyCheckpoint(note, "my log", key.public_key()).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(Checkpoint, VerifierKeyIsNamePlusHexKeyIdPlusBase64TypedKey) {
  const auto key = NewKey();
  const std::string vkey = VerifierKey(kOrigin, key.public_key());
  const std::string prefix = std::string(kOrigin) + "+";
  ASSERT_THAT(vkey, StartsWith(prefix));
  const std::string rest = vkey.substr(prefix.size());
  ASSERT_GT(rest.size(), 9u);
  EXPECT_EQ(rest[8], '+');
  const std::string hex = rest.substr(0, 8);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << hex;
  ASSERT_OK_AND_ASSIGN(std::string id, crypto::FromHex(hex));
  EXPECT_EQ(id, BigEndian32(NoteKeyId(kOrigin, key.public_key())));
  EXPECT_EQ(rest.substr(9), crypto::Base64("\x01" + key.public_key().raw()));
}

}  // namespace
}  // namespace lethe::ledger
