// CommandVerifier (agents/command_verifier.h), in memory: one test per reason a command is
// refused (every Rejection value, and each way of reaching it), and the accept path. The
// commands are built, sealed and signed with the real functions, as lethed builds them
// (tests/fakes/signed_commands.h).
#include "agents/command_verifier.h"

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "base/clock.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "gtest/gtest.h"
#include "tests/fakes/signed_commands.h"
#include "tests/support/assertions.h"

namespace lethe::agents {
namespace {

using fakes::CommandSpec;
using fakes::MakeCommand;
using fakes::SignedWire;

// A protobuf encoding that no message parses: field 1, length 5, then only 2 bytes.
const std::string kTruncated("\x0a\x05" "ab", 4);

class CommandVerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(cp_key_, crypto::Ed25519PrivateKey::Generate());
    ASSERT_OK_AND_ASSIGN(other_cp_key_, crypto::Ed25519PrivateKey::Generate());
    ASSERT_OK_AND_ASSIGN(agent_key_, crypto::X25519PrivateKey::Generate());
    ASSERT_OK_AND_ASSIGN(other_agent_key_, crypto::X25519PrivateKey::Generate());
    verifier_ = std::make_unique<CommandVerifier>(cp_key_->public_key(), "shop", spec_.domain_policy_hash,
                                                  *agent_key_, clock_, absl::Minutes(5));
    clock_.Advance(absl::Minutes(1));  // one minute after spec_.issued_at
  }

  v1::DeleteCommand Command() const { return MakeCommand(spec_, agent_key_->public_key()); }
  std::string Wire(const v1::DeleteCommand& cmd) const { return SignedWire(cmd, *cp_key_); }
  std::string Wire() const { return Wire(Command()); }

  // Expects `wire` refused for `want`, and returns the result.
  VerifyResult ExpectRejected(const std::string& wire, Rejection want) const {
    VerifyResult r = verifier_->Verify(wire);
    EXPECT_FALSE(r.command.ok()) << "accepted";
    EXPECT_EQ(RejectionName(r.rejection), std::string(RejectionName(want)))
        << r.command.status().ToString();
    return r;
  }

  ManualClock clock_{absl::FromUnixSeconds(1'700'000'000)};
  CommandSpec spec_;
  std::optional<crypto::Ed25519PrivateKey> cp_key_, other_cp_key_;
  std::optional<crypto::X25519PrivateKey> agent_key_, other_agent_key_;
  std::unique_ptr<CommandVerifier> verifier_;
};

TEST_F(CommandVerifierTest, AcceptsACommandAndOpensItsIdentitiesIntoSecrets) {
  spec_.identities = {{"email", "alice@example.com"}, {"user_id", "u-1001"}};
  const v1::DeleteCommand cmd = Command();
  const VerifyResult r = verifier_->Verify(Wire(cmd));
  ASSERT_OK(r.command.status());
  EXPECT_FALSE(r.authentic.has_value());
  EXPECT_EQ(r.command->command.command_id(), spec_.command_id);
  EXPECT_EQ(r.command->command.request_id(), spec_.request_id);
  EXPECT_EQ(r.command->digest, crypto::Sha256(cmd.SerializeAsString()));
  ASSERT_EQ(r.command->identities.identities().size(), 2u);
  EXPECT_EQ(r.command->identities.identities()[0].type, "email");
  EXPECT_EQ(RevealSecret(r.command->identities.identities()[0].value), "alice@example.com");
  EXPECT_EQ(r.command->identities.identities()[1].type, "user_id");
  EXPECT_EQ(RevealSecret(r.command->identities.identities()[1].value), "u-1001");
}

// An access command: the same fields under its own payload type, with the key to seal the part
// to. The verifier tells the two kinds apart by the signed payload type alone.
TEST_F(CommandVerifierTest, AnAccessCommandIsVerifiedAsOneAndNeverAsADelete) {
  spec_.identities = {{"email", "alice@example.com"}};
  v1::AccessCommand ac;
  ASSERT_TRUE(ac.ParseFromString(Command().SerializeAsString()));
  ASSERT_OK_AND_ASSIGN(auto part_key, crypto::X25519PrivateKey::Generate());
  ac.set_part_recipient_key(part_key.public_key().raw());
  const std::string body = ac.SerializeAsString();
  const VerifyResult r = verifier_->Verify(SignedWire(body, *cp_key_, proto::kAccessCommandType));
  ASSERT_OK(r.command.status());
  EXPECT_TRUE(r.command->access);
  EXPECT_EQ(r.command->part_recipient_key, part_key.public_key().raw());
  EXPECT_EQ(r.command->command.command_id(), spec_.command_id);
  EXPECT_EQ(r.command->digest, crypto::Sha256(body));
  EXPECT_EQ(RevealSecret(r.command->identities.identities()[0].value), "alice@example.com");
  // A delete stays a delete.
  const VerifyResult d = verifier_->Verify(Wire());
  ASSERT_OK(d.command.status());
  EXPECT_FALSE(d.command->access);
  // Without a part key (or with a malformed one) an access command is malformed.
  ac.clear_part_recipient_key();
  ExpectRejected(SignedWire(ac.SerializeAsString(), *cp_key_, proto::kAccessCommandType), Rejection::kMalformed);
  ac.set_part_recipient_key("short");
  ExpectRejected(SignedWire(ac.SerializeAsString(), *cp_key_, proto::kAccessCommandType), Rejection::kMalformed);
  // Signed as one type, presented as the other: the signature covers the type.
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(SignedWire(body, *cp_key_, proto::kAccessCommandType)));
  env.set_payload_type(proto::kDeleteCommandType);
  ExpectRejected(env.SerializeAsString(), Rejection::kBadSignature);
}

TEST_F(CommandVerifierTest, BadEnvelopeBytesAreMalformed) {
  const VerifyResult r = ExpectRejected(kTruncated, Rejection::kMalformed);
  EXPECT_FALSE(r.authentic.has_value());
  ExpectRejected("", Rejection::kMalformed);  // an empty value: a SignedEnvelope with no type
}

TEST_F(CommandVerifierTest, SignedCommandFollowedByTruncatedBytesIsMalformed) {
  // The parser stops at a truncated unknown field (15) with every signed field already read:
  // the envelope must be refused for failing to parse, not judged by what it read before.
  ExpectRejected(Wire() + std::string("\x7a\x05" "ab", 4), Rejection::kMalformed);
}

TEST_F(CommandVerifierTest, WrongPayloadTypeIsMalformed) {
  // A correctly signed Receipt envelope is not a command, even with a command's bytes inside.
  ExpectRejected(SignedWire(Command().SerializeAsString(), *cp_key_, proto::kReceiptType),
                 Rejection::kMalformed);
}

TEST_F(CommandVerifierTest, SignedBodyThatIsNotADeleteCommandIsMalformed) {
  ExpectRejected(SignedWire(kTruncated, *cp_key_), Rejection::kMalformed);
}

TEST_F(CommandVerifierTest, SignedByAnotherKeyIsABadSignature) {
  const VerifyResult r = ExpectRejected(SignedWire(Command(), *other_cp_key_), Rejection::kBadSignature);
  EXPECT_FALSE(r.authentic.has_value());
}

TEST_F(CommandVerifierTest, AnotherKeyClaimingOurKeyIdIsABadSignature) {
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(SignedWire(Command(), *other_cp_key_)));
  env.set_key_id(cp_key_->public_key().KeyId());
  ExpectRejected(env.SerializeAsString(), Rejection::kBadSignature);
}

TEST_F(CommandVerifierTest, AlteredAfterSigningIsABadSignature) {
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(Wire()));
  v1::DeleteCommand cmd;
  ASSERT_TRUE(cmd.ParseFromString(env.body()));
  cmd.set_not_after_unix_ms(cmd.not_after_unix_ms() + 86'400'000);  // a day more to act
  env.set_body(cmd.SerializeAsString());
  const VerifyResult r = ExpectRejected(env.SerializeAsString(), Rejection::kBadSignature);
  EXPECT_FALSE(r.authentic.has_value());
}

TEST_F(CommandVerifierTest, CommandForAnotherDomainIsRejected) {
  spec_.domain = "billing";
  const VerifyResult r = ExpectRejected(Wire(), Rejection::kWrongDomain);
  EXPECT_FALSE(r.authentic.has_value());
}

TEST_F(CommandVerifierTest, ExpiredCommandIsRejected) {
  clock_.Advance(absl::Hours(2));  // past issued_at + 1 h
  const VerifyResult r = ExpectRejected(Wire(), Rejection::kExpired);
  EXPECT_FALSE(r.authentic.has_value());
}

TEST_F(CommandVerifierTest, CommandIsExpiredAtItsNotAfterInstant) {
  clock_.Advance(spec_.ttl - absl::Minutes(1));  // now == not_after exactly
  ExpectRejected(Wire(), Rejection::kExpired);
}

TEST_F(CommandVerifierTest, CommandIssuedBeyondTheClockSkewIsRejectedAsExpired) {
  spec_.issued_at = clock_.Now() + absl::Minutes(5) + absl::Milliseconds(1);
  ExpectRejected(Wire(), Rejection::kExpired);
}

TEST_F(CommandVerifierTest, CommandIssuedWithinTheClockSkewIsAccepted) {
  spec_.issued_at = clock_.Now() + absl::Minutes(5);
  EXPECT_OK(verifier_->Verify(Wire()).command.status());
}

TEST_F(CommandVerifierTest, CommandPlannedWithAnotherPolicyIsDriftAndAuthentic) {
  spec_.domain_policy_hash = std::string(32, '\x22');
  const v1::DeleteCommand cmd = Command();
  const VerifyResult r = ExpectRejected(Wire(cmd), Rejection::kPolicyDrift);
  // Authentic: the agent answers it with a signed REJECTED receipt naming the command.
  ASSERT_TRUE(r.authentic.has_value());
  EXPECT_EQ(r.authentic->command.command_id(), spec_.command_id);
  EXPECT_EQ(r.authentic->digest, crypto::Sha256(cmd.SerializeAsString()));
  EXPECT_TRUE(r.authentic->identities.identities().empty()) << "drift is decided before the identities are opened";
}

TEST_F(CommandVerifierTest, CommandSealedToAnotherAgentKeyIsNotForThisKey) {
  const VerifyResult r = ExpectRejected(Wire(MakeCommand(spec_, other_agent_key_->public_key())),
                                        Rejection::kNotForThisKey);
  ASSERT_TRUE(r.authentic.has_value());
  EXPECT_EQ(r.authentic->command.command_id(), spec_.command_id);
  EXPECT_TRUE(r.authentic->identities.identities().empty());
  EXPECT_NE(r.command.status().message().find(other_agent_key_->public_key().KeyId().substr(0, 16)),
            std::string::npos)
      << r.command.status().ToString();
}

TEST_F(CommandVerifierTest, IdentitiesThatDoNotOpenAreNotForThisKey) {
  // Named for this agent's key, but sealed to another: the box does not open.
  v1::DeleteCommand cmd = MakeCommand(spec_, other_agent_key_->public_key());
  cmd.set_recipient_key_id(agent_key_->public_key().KeyId());
  const VerifyResult r = ExpectRejected(Wire(cmd), Rejection::kNotForThisKey);
  ASSERT_TRUE(r.authentic.has_value());
  EXPECT_TRUE(r.authentic->identities.identities().empty());
}

TEST_F(CommandVerifierTest, SealedIdentitiesThatDoNotParseAreNotForThisKey) {
  v1::DeleteCommand cmd = Command();
  cmd.set_sealed_identities(crypto::SealTo(agent_key_->public_key(), kTruncated));
  const VerifyResult r = ExpectRejected(Wire(cmd), Rejection::kNotForThisKey);
  EXPECT_TRUE(r.authentic.has_value());
}

TEST_F(CommandVerifierTest, CommandWithNoIdentitiesIsNotForThisKey) {
  spec_.identities.clear();
  const VerifyResult r = ExpectRejected(Wire(), Rejection::kNotForThisKey);
  ASSERT_TRUE(r.authentic.has_value());
  EXPECT_TRUE(r.authentic->identities.identities().empty());
}

TEST_F(CommandVerifierTest, EveryRejectionHasItsOwnName) {
  std::set<std::string> names;
  for (Rejection r : {Rejection::kMalformed, Rejection::kBadSignature, Rejection::kWrongDomain,
                      Rejection::kExpired, Rejection::kPolicyDrift, Rejection::kNotForThisKey})
    names.insert(RejectionName(r));
  EXPECT_EQ(names.size(), 6u);
  EXPECT_EQ(names.count("unknown"), 0u);
}

}  // namespace
}  // namespace lethe::agents
