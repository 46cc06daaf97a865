// The control plane's side of access requests, in memory and in a temp dir (no PostgreSQL, no
// Kafka): the AccessCommand and its part key, what AccessParts holds and refuses, which
// chunks and receipts RequestManager takes, the key kept past completion and destroyed on
// release or expiry.
#include <filesystem>
#include <string>
#include <vector>

#include "base/status.h"
#include "controlplane/access_parts.h"
#include "controlplane/request_manager.h"
#include "crypto/seal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/envelope.h"
#include "tests/fakes/control_plane.h"
#include "tests/support/envelopes.h"
#include "tests/support/files.h"

namespace lethe::controlplane {
namespace {

using ::lethe::testing::AgentKeyPair;
using ::lethe::testing::ControlPlane;
using ::lethe::testing::Identities;
using ::lethe::testing::OperatorActor;
using ::testing::HasSubstr;

v1::AccessPartChunk Chunk(const std::string& command, const std::string& data, uint32_t index, uint32_t count,
                          const std::string& digest) {
  v1::AccessPartChunk c;
  c.set_command_id(command);
  c.set_request_id("r1");
  c.set_domain("growth");
  c.set_sealed_sha256(digest);
  c.set_index(index);
  c.set_count(count);
  c.set_data(data);
  return c;
}

TEST(AccessParts, JoinsChunksInIndexOrderAndChecksTheirDigest) {
  testing::TempDir dir;
  auto parts = AccessParts::Open(dir.path()).value();
  const std::string whole = "0123456789abcdef";
  const std::string digest = crypto::Sha256(whole);
  ASSERT_TRUE(parts->AddChunk(Chunk("c1", whole.substr(8), 1, 2, digest)).ok());
  // Not whole yet.
  EXPECT_TRUE(absl::IsNotFound(parts->TakeSealed("c1", digest, 2).status()));
  ASSERT_TRUE(parts->AddChunk(Chunk("c1", whole.substr(0, 8), 0, 2, digest)).ok());
  // The receipt must name the same count.
  EXPECT_TRUE(absl::IsNotFound(parts->TakeSealed("c1", digest, 3).status()));
  auto taken = parts->TakeSealed("c1", digest, 2);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(*taken, whole);
  EXPECT_EQ(parts->held_bytes(), 0u);
  // Chunks that do not make the digest they carry.
  const std::string forged = crypto::Sha256("something else");
  ASSERT_TRUE(parts->AddChunk(Chunk("c2", whole, 0, 1, forged)).ok());
  EXPECT_TRUE(absl::IsDataLoss(parts->TakeSealed("c2", forged, 1).status()));
}

TEST(AccessParts, RefusesChunksThatContradictThemselvesOrPassTheLimits) {
  testing::TempDir dir;
  AccessPartLimits limits;
  limits.max_part_bytes = 10;
  limits.max_held_bytes = 15;
  limits.max_chunks = 4;
  auto parts = AccessParts::Open(dir.path(), limits).value();
  const std::string d = crypto::Sha256("x");
  EXPECT_TRUE(absl::IsInvalidArgument(parts->AddChunk(Chunk("c1", "a", 2, 2, d))));  // index past count
  EXPECT_TRUE(absl::IsInvalidArgument(parts->AddChunk(Chunk("c1", "a", 0, 0, d))));
  EXPECT_TRUE(absl::IsInvalidArgument(parts->AddChunk(Chunk("c1", "a", 0, 1, "short"))));
  EXPECT_TRUE(absl::IsResourceExhausted(parts->AddChunk(Chunk("c1", "a", 0, 5, d))));  // too many chunks
  ASSERT_TRUE(parts->AddChunk(Chunk("c1", "aaaaaa", 0, 2, d)).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(parts->AddChunk(Chunk("c1", "b", 1, 3, d))));  // another count
  EXPECT_TRUE(absl::IsResourceExhausted(parts->AddChunk(Chunk("c1", "bbbbb", 1, 2, d))));  // part over 10
  ASSERT_TRUE(parts->AddChunk(Chunk("c2", "cccccccc", 0, 2, d)).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(parts->AddChunk(Chunk("c3", "dd", 0, 1, d))));  // held over 15
  EXPECT_EQ(parts->held_bytes(), 14u);
  // A redelivered chunk replaces its copy instead of counting twice.
  ASSERT_TRUE(parts->AddChunk(Chunk("c2", "cccccccc", 0, 2, d)).ok());
  EXPECT_EQ(parts->held_bytes(), 14u);
  parts->Forget("c1");
  parts->Forget("c2");
  EXPECT_EQ(parts->held_bytes(), 0u);
}

TEST(AccessParts, StoresPartsUnderTheRequestKeyOnly) {
  testing::TempDir dir;
  auto parts = AccessParts::Open(dir.path()).value();
  const SecretBytes key(crypto::RandomBytes(32));
  const SecretBytes part(std::string(R"({"format":"lethe.access-part/1","email":"bob@example.com"})"));
  ASSERT_TRUE(parts->Store("r1", "growth", key, part).ok());
  auto bytes = ReadFile(dir.File("parts/r1/growth.part"));
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->find("bob@example.com"), std::string::npos) << "a part is stored encrypted";
  EXPECT_EQ(std::filesystem::status(dir.File("parts/r1/growth.part")).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto back = parts->Load("r1", "growth", key);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(RevealSecret(*back), RevealSecret(part));
  EXPECT_TRUE(absl::IsDataLoss(parts->Load("r1", "growth", SecretBytes(crypto::RandomBytes(32))).status()));
  // Bound to its request and domain: a file moved to another name does not open.
  std::filesystem::create_directories(dir.File("parts/r2"));
  std::filesystem::copy_file(dir.File("parts/r1/growth.part"), dir.File("parts/r2/growth.part"));
  EXPECT_TRUE(absl::IsDataLoss(parts->Load("r2", "growth", key).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(parts->Store("../r1", "growth", key, part)));
  EXPECT_TRUE(absl::IsInvalidArgument(parts->Store("r1", "../../vault", key, part)));
  ASSERT_TRUE(parts->Remove("r1").ok());
  EXPECT_FALSE(std::filesystem::exists(dir.File("parts/r1")));
}

class AccessManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cp_.ActivateSample();
    growth_ = cp_.Enroll("growth");
    assessments_ = cp_.Enroll("assessments");
    auto id = cp_.manager().Submit(v1::RequestSubmitted::ACCESS,
                                   Identities({{"email", "bob@example.com"}, {"user_id", "u-2"}}),
                                   "subject access request", OperatorActor());
    ASSERT_TRUE(id.ok()) << id.status();
    id_ = *id;
  }

  // The verified body of the command lethed published for `domain`, and its part key.
  v1::AccessCommand Command(const std::string& domain, std::string* payload_type = nullptr) {
    auto wire = cp_.manager().CommandWire(cp_.CommandFor(id_, domain));
    EXPECT_TRUE(wire.ok()) << wire.status();
    v1::SignedEnvelope env;
    EXPECT_TRUE(env.ParseFromString(*wire));
    if (payload_type != nullptr) *payload_type = env.payload_type();
    v1::AccessCommand cmd;
    EXPECT_TRUE(cmd.ParseFromString(env.body()));
    return cmd;
  }

  // What an agent sends for `domain`: the part sealed to the command's part key, in chunks
  // signed by `signer`, and its receipt.
  struct Answer {
    std::vector<std::string> chunks;
    std::string receipt;
  };
  Answer AnswerFor(const std::string& domain, const crypto::Ed25519PrivateKey& signer, const std::string& part,
                   size_t chunk_bytes = 40) {
    const CommandRecord command = cp_.CommandFor(id_, domain);
    const auto recipient = crypto::X25519PublicKey::FromRaw(Command(domain).part_recipient_key()).value();
    const std::string sealed = crypto::SealTo(recipient, part);
    v1::Receipt r;
    r.set_command_id(command.command_id);
    r.set_request_id(id_);
    r.set_domain(domain);
    r.set_command_digest(command.digest);
    r.set_outcome(v1::Receipt::COMPLETED);
    r.set_part_sha256(crypto::Sha256(part));
    r.set_part_sealed_sha256(crypto::Sha256(sealed));
    r.set_part_size(part.size());
    const size_t count = (sealed.size() + chunk_bytes - 1) / chunk_bytes;
    r.set_part_chunks(static_cast<uint32_t>(count));
    Answer a;
    for (size_t i = 0; i < count; ++i) {
      v1::AccessPartChunk c;
      c.set_command_id(command.command_id);
      c.set_request_id(id_);
      c.set_domain(domain);
      c.set_sealed_sha256(r.part_sealed_sha256());
      c.set_index(static_cast<uint32_t>(i));
      c.set_count(static_cast<uint32_t>(count));
      c.set_data(sealed.substr(i * chunk_bytes, chunk_bytes));
      a.chunks.push_back(
          proto::SignEnvelope(proto::kAccessPartChunkType, c.SerializeAsString(), signer).SerializeAsString());
    }
    a.receipt = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), signer).SerializeAsString();
    return a;
  }
  absl::Status Send(const Answer& a) {
    for (const auto& c : a.chunks) LETHE_RETURN_IF_ERROR(cp_.manager().RecordReceipt(c));
    return cp_.manager().RecordReceipt(a.receipt);
  }
  v1::DomainState StateOf(const std::string& domain) {
    for (const auto& d : cp_.store().Get(id_)->domains)
      if (d.domain == domain) return d.state;
    return v1::DOMAIN_STATE_UNSPECIFIED;
  }
  static std::string PartOf(const std::string& domain) {
    return R"({"domain":")" + domain + R"(","format":"lethe.access-part/1","tables":[]})";
  }

  ControlPlane cp_;
  AgentKeyPair growth_, assessments_;
  std::string id_;
};

TEST_F(AccessManagerTest, CommandsAreAccessCommandsCarryingAPartKeyDerivedFromTheRequestKey) {
  std::string type;
  const v1::AccessCommand growth = Command("growth", &type);
  EXPECT_EQ(type, proto::kAccessCommandType) << "an access command must never read as a delete";
  ASSERT_EQ(growth.part_recipient_key().size(), crypto::kX25519KeySize);
  // One part key per request, the same for every domain.
  EXPECT_EQ(Command("assessments").part_recipient_key(), growth.part_recipient_key());
  auto r = cp_.store().Get(id_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->submitted.kind(), v1::RequestSubmitted::ACCESS);
  // Due after the policy's deadlines.access (30 days by default).
  EXPECT_EQ(r->due_unix_ms - r->submitted.received_unix_ms(), int64_t{30} * 86400 * 1000);
  // Another request, another part key.
  auto other = cp_.manager().Submit(v1::RequestSubmitted::ACCESS, Identities({{"email", "carol@example.com"}}),
                                    "", OperatorActor());
  ASSERT_TRUE(other.ok()) << other.status();
  auto wire = cp_.manager().CommandWire(cp_.CommandFor(*other, "growth"));
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(*wire));
  v1::AccessCommand cmd;
  ASSERT_TRUE(cmd.ParseFromString(env.body()));
  EXPECT_NE(cmd.part_recipient_key(), growth.part_recipient_key());
}

TEST_F(AccessManagerTest, AReceiptIsRecordedOnlyWithItsWholePartWhichIsStoredAndTheKeyOutlivesCompletion) {
  Answer growth = AnswerFor("growth", growth_.sign, PartOf("growth"));
  ASSERT_GE(growth.chunks.size(), 2u);
  // The receipt without its chunks: refused, nothing recorded.
  const uint64_t before = cp_.ledger().size();
  EXPECT_TRUE(absl::IsFailedPrecondition(cp_.manager().RecordReceipt(growth.receipt)));
  // With one chunk missing: refused too.
  for (size_t i = 1; i < growth.chunks.size(); ++i) ASSERT_TRUE(cp_.manager().RecordReceipt(growth.chunks[i]).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(cp_.manager().RecordReceipt(growth.receipt)));
  EXPECT_EQ(cp_.ledger().size(), before);
  EXPECT_EQ(StateOf("growth"), v1::PENDING);
  // Whole: recorded, and the part is stored.
  ASSERT_TRUE(Send(growth).ok());
  EXPECT_EQ(StateOf("growth"), v1::DONE);
  EXPECT_TRUE(std::filesystem::exists(cp_.dir().File("parts/" + id_ + "/growth.part")));
  ASSERT_TRUE(Send(AnswerFor("assessments", assessments_.sign, PartOf("assessments"))).ok());
  auto r = cp_.store().Get(id_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state, v1::COMPLETED);
  // The key outlives completion: it guards the package.
  EXPECT_TRUE(cp_.vault().HasRequestKey(id_));
  auto parts = cp_.manager().OpenParts(id_);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ(RevealSecret((*parts)[0].part), PartOf((*parts)[0].domain));
  // A restart keeps it too (Recover destroys only the keys of requests that hold nothing).
  ASSERT_TRUE(cp_.manager().Recover().ok());
  EXPECT_TRUE(cp_.vault().HasRequestKey(id_));
  // Released: recorded once, then the key and the parts are gone.
  const v1::Actor actor = OperatorActor();
  ASSERT_TRUE(cp_.manager().ReleasePackage(id_, v1::PackageReleased::EXPORTED, crypto::Sha256("package"), &actor).ok());
  EXPECT_FALSE(cp_.vault().HasRequestKey(id_));
  EXPECT_FALSE(std::filesystem::exists(cp_.dir().File("parts/" + id_)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      cp_.manager().ReleasePackage(id_, v1::PackageReleased::EXPIRED, "", nullptr)));
  auto opened = cp_.manager().OpenParts(id_);
  EXPECT_TRUE(absl::IsFailedPrecondition(opened.status()));
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("was exported at"));
}

TEST_F(AccessManagerTest, APartThatIsNotTheOneTheReceiptSignedIsRefused) {
  // Chunks of one part, a receipt naming another part's digest (and the chunks' sealed digest).
  Answer real = AnswerFor("growth", growth_.sign, PartOf("growth"));
  Answer other = AnswerFor("growth", growth_.sign, PartOf("growth") + " ");
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(other.receipt));
  v1::Receipt r;
  ASSERT_TRUE(r.ParseFromString(env.body()));
  v1::SignedEnvelope real_env;
  ASSERT_TRUE(real_env.ParseFromString(real.receipt));
  v1::Receipt real_r;
  ASSERT_TRUE(real_r.ParseFromString(real_env.body()));
  r.set_part_sealed_sha256(real_r.part_sealed_sha256());
  r.set_part_chunks(real_r.part_chunks());
  const std::string forged = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), growth_.sign).SerializeAsString();
  for (const auto& c : real.chunks) ASSERT_TRUE(cp_.manager().RecordReceipt(c).ok());
  absl::Status st = cp_.manager().RecordReceipt(forged);
  EXPECT_TRUE(absl::IsPermissionDenied(st)) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("does not match the digest"));
  EXPECT_EQ(StateOf("growth"), v1::PENDING);
  EXPECT_FALSE(std::filesystem::exists(cp_.dir().File("parts/" + id_ + "/growth.part")));
  // A part sealed to another key (not the request's part key) does not open.
  const auto stranger = crypto::X25519PrivateKey::Generate().value();
  const std::string part = PartOf("growth");
  const std::string sealed = crypto::SealTo(stranger.public_key(), part);
  const CommandRecord command = cp_.CommandFor(id_, "growth");
  v1::AccessPartChunk c;
  c.set_command_id(command.command_id);
  c.set_request_id(id_);
  c.set_domain("growth");
  c.set_sealed_sha256(crypto::Sha256(sealed));
  c.set_count(1);
  c.set_data(sealed);
  ASSERT_TRUE(cp_.manager()
                  .RecordReceipt(proto::SignEnvelope(proto::kAccessPartChunkType, c.SerializeAsString(), growth_.sign)
                                     .SerializeAsString())
                  .ok());
  real_r.set_part_sealed_sha256(crypto::Sha256(sealed));
  real_r.set_part_chunks(1);
  st = cp_.manager().RecordReceipt(
      proto::SignEnvelope(proto::kReceiptType, real_r.SerializeAsString(), growth_.sign).SerializeAsString());
  EXPECT_TRUE(absl::IsPermissionDenied(st)) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("not sealed to the request's part key"));
  // The real answer still goes through.
  ASSERT_TRUE(Send(real).ok());
  EXPECT_EQ(StateOf("growth"), v1::DONE);
}

TEST_F(AccessManagerTest, ChunksAreTakenOnlyFromTheDomainsOwnKeyForItsOwnAccessCommand) {
  Answer growth = AnswerFor("growth", growth_.sign, PartOf("growth"));
  // Signed by another domain's enrolled key.
  Answer by_other = AnswerFor("growth", assessments_.sign, PartOf("growth"));
  EXPECT_TRUE(absl::IsPermissionDenied(cp_.manager().RecordReceipt(by_other.chunks[0])));
  // Signed by a key nobody enrolled.
  AgentKeyPair stranger;
  Answer unknown = AnswerFor("growth", stranger.sign, PartOf("growth"));
  EXPECT_TRUE(absl::IsPermissionDenied(cp_.manager().RecordReceipt(unknown.chunks[0])));
  // Its signature broken.
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(growth.chunks[0]));
  std::string sig = env.signature();
  sig[0] ^= 1;
  env.set_signature(sig);
  EXPECT_TRUE(absl::IsPermissionDenied(cp_.manager().RecordReceipt(env.SerializeAsString())));
  EXPECT_EQ(cp_.parts().held_bytes(), 0u);
  // For an erasure's command: no erasure takes a part.
  auto erasure = cp_.manager().SubmitErasure(Identities({{"email", "dan@example.com"}}), "", OperatorActor());
  ASSERT_TRUE(erasure.ok()) << erasure.status();
  v1::AccessPartChunk c;
  c.set_command_id(cp_.CommandFor(*erasure, "growth").command_id);
  c.set_request_id(*erasure);
  c.set_domain("growth");
  c.set_sealed_sha256(crypto::Sha256("x"));
  c.set_count(1);
  c.set_data("x");
  EXPECT_TRUE(absl::IsPermissionDenied(cp_.manager().RecordReceipt(
      proto::SignEnvelope(proto::kAccessPartChunkType, c.SerializeAsString(), growth_.sign).SerializeAsString())));
  EXPECT_EQ(cp_.parts().held_bytes(), 0u);
  // The real ones are held.
  ASSERT_TRUE(cp_.manager().RecordReceipt(growth.chunks[0]).ok());
  EXPECT_GT(cp_.parts().held_bytes(), 0u);
}

TEST_F(AccessManagerTest, AnAccessReceiptThatReportsAPurgeIsRefused) {
  Answer growth = AnswerFor("growth", growth_.sign, PartOf("growth"));
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(growth.receipt));
  v1::Receipt r;
  ASSERT_TRUE(r.ParseFromString(env.body()));
  auto* t = r.add_tables();
  t->set_table("growth.contacts");
  t->set_rows_affected(1);
  for (const auto& c : growth.chunks) ASSERT_TRUE(cp_.manager().RecordReceipt(c).ok());
  absl::Status st = cp_.manager().RecordReceipt(
      proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), growth_.sign).SerializeAsString());
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("access receipt reports rows changed"));
  EXPECT_EQ(StateOf("growth"), v1::PENDING);
}

// Extensions as for an erasure: within max_extension, each with a reason; the package's expiry
// follows the extended due date.
TEST_F(AccessManagerTest, AnAccessRequestIsExtendedAsAnErasureIsAndItsPackageExpiresLater) {
  ASSERT_TRUE(cp_.manager().Extend(id_, absl::Hours(24 * 14), "identity check", OperatorActor()).ok());
  EXPECT_FALSE(cp_.manager().Extend(id_, absl::Hours(24 * 50), "too long", OperatorActor()).ok());
  ASSERT_TRUE(Send(AnswerFor("growth", growth_.sign, PartOf("growth"))).ok());
  ASSERT_TRUE(Send(AnswerFor("assessments", assessments_.sign, PartOf("assessments"))).ok());
  ASSERT_EQ(cp_.store().Get(id_)->state, v1::COMPLETED);
  // 30 days, plus 14 of extension, plus 30 of retention.
  cp_.clock().Advance(absl::Hours(24 * 74) - absl::Minutes(1));
  ASSERT_TRUE(cp_.manager().ReleaseExpired().ok());
  EXPECT_TRUE(cp_.vault().HasRequestKey(id_));
  cp_.clock().Advance(absl::Minutes(2));
  ASSERT_TRUE(cp_.manager().ReleaseExpired().ok());
  EXPECT_FALSE(cp_.vault().HasRequestKey(id_));
}

TEST_F(AccessManagerTest, AnUnexportedPackageExpiresAtItsDueDatePlusRetention) {
  ASSERT_TRUE(Send(AnswerFor("growth", growth_.sign, PartOf("growth"))).ok());
  ASSERT_TRUE(Send(AnswerFor("assessments", assessments_.sign, PartOf("assessments"))).ok());
  ASSERT_EQ(cp_.store().Get(id_)->state, v1::COMPLETED);
  cp_.clock().Advance(absl::Hours(24 * 60) - absl::Minutes(1));
  ASSERT_TRUE(cp_.manager().ReleaseExpired().ok());
  EXPECT_TRUE(cp_.vault().HasRequestKey(id_));
  cp_.clock().Advance(absl::Minutes(2));
  ASSERT_TRUE(cp_.manager().ReleaseExpired().ok());
  EXPECT_FALSE(cp_.vault().HasRequestKey(id_));
  auto r = cp_.store().Get(id_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->released_reason, v1::PackageReleased::EXPIRED);
  const v1::LedgerEntry last = cp_.Entry(cp_.ledger().size() - 1);
  ASSERT_TRUE(last.has_package_released());
  EXPECT_FALSE(last.has_actor()) << "an expiry is lethed's own act";
}

TEST_F(AccessManagerTest, AnErasureStillDestroysItsKeyAtCompletion) {
  auto erasure = cp_.manager().SubmitErasure(Identities({{"email", "dan@example.com"}}), "", OperatorActor());
  ASSERT_TRUE(erasure.ok()) << erasure.status();
  ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(cp_.CommandFor(*erasure, "growth"), growth_.sign)).ok());
  auto r = cp_.store().Get(*erasure);
  ASSERT_TRUE(r.ok());
  // assessments waits for a user_id; growth answered. Add it and answer.
  ASSERT_TRUE(cp_.manager().AddIdentities(*erasure, Identities({{"user_id", "u-4"}}), OperatorActor()).ok());
  ASSERT_TRUE(cp_.manager()
                  .RecordReceipt(ControlPlane::ReceiptWire(cp_.CommandFor(*erasure, "assessments"), assessments_.sign))
                  .ok());
  ASSERT_EQ(cp_.store().Get(*erasure)->state, v1::COMPLETED);
  EXPECT_FALSE(cp_.vault().HasRequestKey(*erasure));
  EXPECT_TRUE(absl::IsFailedPrecondition(cp_.manager().OpenParts(*erasure).status()));
}

}  // namespace
}  // namespace lethe::controlplane
