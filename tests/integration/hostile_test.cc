// Commands and receipts that must never take effect. Each hostile command is produced
// straight onto the agent's topic over the Kafka protocol; the agent must delete nothing
// and count the rejection.
#include "agents/command_verifier.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/seal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
using agents::Rejection;

constexpr absl::Duration kWait = absl::Seconds(60);

class HostileTest : public ::testing::Test {
 protected:
  // A suite set-up that fails must fail every test, not skip them (googletest skips the
  // tests of a suite whose SetUpTestSuite has a fatal failure): it records why, and SetUp
  // fails each test with it.
  static void SetUpTestSuite() { setup_ = Prepare(); }
  static absl::Status Prepare() {
    Mesh::Options o;
    o.domains = {"assessments", "growth"};
    LETHE_ASSIGN_OR_RETURN(auto m, Mesh::Start(o));
    mesh_ = m.release();
    LETHE_ASSIGN_OR_RETURN(auto key, crypto::Ed25519PrivateKey::LoadFile(mesh_->lethed_key()));
    lethed_key_ = new crypto::Ed25519PrivateKey(std::move(key));
    LETHE_ASSIGN_OR_RETURN(auto p, kafka::Producer::Create(mesh_->kafka_bootstrap()));
    producer_ = p.release();
    LETHE_RETURN_IF_ERROR(mesh_->Plant(kAlice));
    return mesh_->Plant(kBob);
  }
  void SetUp() override { ASSERT_TRUE(setup_.ok()) << "suite set-up failed: " << setup_; }
  static void TearDownTestSuite() {
    delete producer_;
    delete lethed_key_;
    delete mesh_;
  }

  // A command that the agent of `assessments` would obey, before any tampering.
  static v1::DeleteCommand ValidCommand(const Person& p) {
    auto policy = policies::Policy::LoadFile(mesh_->policy_path());
    v1::DeleteCommand c;
    c.set_command_id(crypto::Hex(crypto::RandomBytes(16)));
    c.set_request_id(crypto::Hex(crypto::RandomBytes(16)));
    c.set_domain("assessments");
    // Sealed to the agent's enrolled encryption key, as lethed seals them.
    v1::SealedIdentities ids;
    auto* id = ids.add_identities();
    id->set_type("user_id");
    id->set_value(p.user_id);
    auto recipient = crypto::X25519PublicKey::FromPem(lethe::ReadFile(mesh_->agent_pub("assessments")).value());
    c.set_sealed_identities(crypto::SealTo(recipient.value(), ids.SerializeAsString()));
    c.set_recipient_key_id(recipient->KeyId());
    c.set_domain_policy_hash(policy->DomainHash("assessments"));
    const absl::Time now = absl::Now();
    c.set_issued_at_unix_ms(absl::ToUnixMillis(now));
    c.set_not_after_unix_ms(absl::ToUnixMillis(now + absl::Hours(1)));
    c.set_nonce(crypto::RandomBytes(16));
    return c;
  }

  static std::string Wire(const v1::DeleteCommand& c, const crypto::Ed25519PrivateKey& key) {
    return proto::SignEnvelope(proto::kDeleteCommandType, c.SerializeAsString(), key).SerializeAsString();
  }

  // Produces `wire` to the assessments command topic and waits for the agent to count a
  // rejection of kind `r`; checks nothing was deleted.
  static void ExpectRejected(const std::string& wire, Rejection r) {
    agents::Agent& a = mesh_->agent("assessments");
    const uint64_t before = a.rejected(r);
    const uint64_t total_before = a.stats().rejected.load();
    const uint64_t purged_before = a.stats().purged.load();
    const int64_t alice = *mesh_->Rows("assessments", kAlice);
    const int64_t bob = *mesh_->Rows("assessments", kBob);
    ASSERT_TRUE(producer_->ProduceSync(kafka::CommandTopic("assessments"), std::nullopt, wire).ok());
    ASSERT_TRUE(WaitFor([&] { return a.rejected(r) == before + 1; }, kWait))
        << "no " << agents::RejectionName(r) << " rejection counted";
    EXPECT_EQ(a.stats().rejected.load(), total_before + 1);
    EXPECT_EQ(a.stats().purged.load(), purged_before);
    EXPECT_EQ(*mesh_->Rows("assessments", kAlice), alice);
    EXPECT_EQ(*mesh_->Rows("assessments", kBob), bob);
  }

  static Mesh* mesh_;
  static crypto::Ed25519PrivateKey* lethed_key_;
  static kafka::Producer* producer_;
  static absl::Status setup_;
};

Mesh* HostileTest::mesh_ = nullptr;
crypto::Ed25519PrivateKey* HostileTest::lethed_key_ = nullptr;
kafka::Producer* HostileTest::producer_ = nullptr;
absl::Status HostileTest::setup_;

TEST_F(HostileTest, CommandSignedWithAnotherKeyIsRejected) {
  auto forger = crypto::Ed25519PrivateKey::Generate();
  ExpectRejected(Wire(ValidCommand(kAlice), *forger), Rejection::kBadSignature);
}

TEST_F(HostileTest, CommandAlteredAfterSigningIsRejected) {
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(Wire(ValidCommand(kAlice), *lethed_key_)));
  v1::DeleteCommand c;
  ASSERT_TRUE(c.ParseFromString(env.body()));
  // Retarget the signed command at Bob: his identity, sealed to the agent like the original.
  c.set_sealed_identities(ValidCommand(kBob).sealed_identities());
  env.set_body(c.SerializeAsString());
  ExpectRejected(env.SerializeAsString(), Rejection::kBadSignature);
}

TEST_F(HostileTest, ExpiredCommandIsRejected) {
  v1::DeleteCommand c = ValidCommand(kAlice);
  c.set_issued_at_unix_ms(absl::ToUnixMillis(absl::Now() - absl::Hours(2)));
  c.set_not_after_unix_ms(absl::ToUnixMillis(absl::Now() - absl::Minutes(1)));
  ExpectRejected(Wire(c, *lethed_key_), Rejection::kExpired);
}

TEST_F(HostileTest, CommandForAnotherDomainIsRejected) {
  v1::DeleteCommand c = ValidCommand(kAlice);
  c.set_domain("growth");
  ExpectRejected(Wire(c, *lethed_key_), Rejection::kWrongDomain);
}

TEST_F(HostileTest, CommandPlannedWithAnotherPolicyIsRejectedAsDrift) {
  v1::DeleteCommand c = ValidCommand(kAlice);
  c.set_domain_policy_hash(crypto::Sha256("some other policy"));
  ExpectRejected(Wire(c, *lethed_key_), Rejection::kPolicyDrift);
}

TEST_F(HostileTest, GarbageIsRejectedAsMalformed) {
  ExpectRejected("\x0a\x05hello not an envelope", Rejection::kMalformed);
}

TEST_F(HostileTest, ReplayOfACompletedCommandDoesNotPurgeRowsInsertedSince) {
  auto done = mesh_->EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::COMPLETED);
  std::string command_id;
  for (const auto& d : done->domains())
    if (d.domain() == "assessments") command_id = d.command_id();
  ASSERT_EQ(*mesh_->Rows("assessments", kAlice), 0);

  // Capture the exact command lethed published, as an attacker on the topic could.
  auto records = ReadTopic(mesh_->kafka_bootstrap(), kafka::CommandTopic("assessments"));
  ASSERT_TRUE(records.ok()) << records.status();
  std::string captured;
  for (const auto& r : *records) {
    v1::SignedEnvelope env;
    v1::DeleteCommand c;
    if (r.value && env.ParseFromString(*r.value) && c.ParseFromString(env.body()) &&
        c.command_id() == command_id)
      captured = *r.value;
  }
  ASSERT_FALSE(captured.empty()) << "lethed's command not found on the topic";

  // Alice comes back (say, a new sign-up). Replaying the old command must not touch her.
  ASSERT_TRUE(mesh_->Plant(kAlice).ok());
  const int64_t rows = *mesh_->Rows("assessments", kAlice);
  ASSERT_GT(rows, 0);
  agents::Agent& a = mesh_->agent("assessments");
  const uint64_t replayed = a.stats().replayed.load();
  const uint64_t purged = a.stats().purged.load();
  const uint64_t duplicates = mesh_->lethed().manager().receipt_counters().duplicates.load();
  const uint64_t size = mesh_->lethed().ledger().size();
  ASSERT_TRUE(producer_->ProduceSync(kafka::CommandTopic("assessments"), std::nullopt, captured).ok());
  ASSERT_TRUE(WaitFor([&] { return a.stats().replayed.load() == replayed + 1; }, kWait));
  EXPECT_EQ(a.stats().purged.load(), purged);
  EXPECT_EQ(*mesh_->Rows("assessments", kAlice), rows);
  // The re-sent receipt is recognised by lethed as one it already holds.
  ASSERT_TRUE(WaitFor(
      [&] {
        return mesh_->lethed().manager().receipt_counters().duplicates.load() == duplicates + 1;
      },
      kWait));
  EXPECT_EQ(mesh_->lethed().ledger().size(), size);
}

TEST_F(HostileTest, ForgedReceiptIsRejectedByLethedAndNotRecorded) {
  // A request the growth agent has not answered yet: stop it first.
  mesh_->StopAgent("growth");
  v1::SubmitRequest req;
  auto* e = req.add_identities();
  e->set_type("email");
  e->set_value(kBob.email);
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(mesh_->Requests()->Submit(&ctx, req, &resp).ok());
  // growth is keyed by email; the other domains wait for an identity they are keyed by.
  int growth = -1;
  for (int i = 0; i < resp.request().domains_size(); ++i)
    if (resp.request().domains(i).domain() == "growth") growth = i;
  ASSERT_GE(growth, 0);
  const auto& d = resp.request().domains(growth);
  ASSERT_EQ(d.state(), v1::PENDING);

  v1::Receipt forged;
  forged.set_command_id(d.command_id());
  forged.set_request_id(resp.request_id());
  forged.set_domain("growth");
  forged.set_outcome(v1::Receipt::COMPLETED);
  forged.set_verified_zero_remaining(true);
  auto fake_agent = crypto::Ed25519PrivateKey::Generate();
  const auto& counters = mesh_->lethed().manager().receipt_counters();
  const uint64_t rejected = counters.rejected.load();
  const uint64_t size = mesh_->lethed().ledger().size();
  ASSERT_TRUE(producer_
                  ->ProduceSync(kafka::kReceiptTopic, std::nullopt,
                                proto::SignEnvelope(proto::kReceiptType, forged.SerializeAsString(), *fake_agent)
                                    .SerializeAsString())
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return counters.rejected.load() == rejected + 1; }, kWait));
  EXPECT_EQ(mesh_->lethed().ledger().size(), size);
  auto view = mesh_->lethed().store().Get(resp.request_id());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->state, v1::IN_PROGRESS);
  EXPECT_EQ(*mesh_->Rows("growth", kBob), 3);
  ASSERT_TRUE(mesh_->StartAgent("growth").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = mesh_->lethed().store().Get(resp.request_id());
        for (const auto& dr : r->domains)
          if (dr.domain == "growth") return dr.state == v1::DONE;
        return false;
      },
      kWait));
  EXPECT_EQ(*mesh_->Rows("growth", kBob), 0);
}

}  // namespace
}  // namespace lethe::testing
