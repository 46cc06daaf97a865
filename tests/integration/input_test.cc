// Bad input at the API, and an unreachable database at the agent.
#include "base/file_system.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

class BadInputTest : public ::testing::Test {
 protected:
  // A suite set-up that fails must fail every test, not skip them (googletest skips the
  // tests of a suite whose SetUpTestSuite has a fatal failure): it records why, and SetUp
  // fails each test with it.
  static void SetUpTestSuite() {
    Mesh::Options o;
    o.domains = {"assessments", "growth"};
    o.start_agents = false;
    auto m = Mesh::Start(o);
    setup_ = m.status();
    if (m.ok()) mesh_ = m->release();
  }
  static void TearDownTestSuite() { delete mesh_; }
  void SetUp() override { ASSERT_TRUE(setup_.ok()) << "suite set-up failed: " << setup_; }

  // Submits and expects `code` with a message naming `field`; the ledger must not grow and
  // the message must not echo the identity value.
  static void ExpectRejected(const v1::SubmitRequest& req, grpc::StatusCode code,
                             const std::string& field) {
    const uint64_t size = mesh_->lethed().ledger().size();
    grpc::ClientContext ctx;
    v1::SubmitResponse resp;
    grpc::Status s = mesh_->Requests()->Submit(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(field));
    for (const auto& id : req.identities()) {
      if (id.value().size() > 3) {
        EXPECT_THAT(s.error_message(), Not(HasSubstr(id.value())));
      }
    }
    EXPECT_EQ(mesh_->lethed().ledger().size(), size);
  }

  static v1::SubmitRequest With(const std::string& type, const std::string& value) {
    v1::SubmitRequest r;
    auto* id = r.add_identities();
    id->set_type(type);
    id->set_value(value);
    return r;
  }

  static Mesh* mesh_;
  static absl::Status setup_;
};
Mesh* BadInputTest::mesh_ = nullptr;
absl::Status BadInputTest::setup_;

TEST_F(BadInputTest, NoIdentityIsInvalidArgument) {
  ExpectRejected(v1::SubmitRequest(), grpc::StatusCode::INVALID_ARGUMENT, "identities");
}

TEST_F(BadInputTest, EmptyIdentityValueIsInvalidArgument) {
  ExpectRejected(With("email", ""), grpc::StatusCode::INVALID_ARGUMENT, "identities[0].value");
}

TEST_F(BadInputTest, EmptyIdentityTypeIsInvalidArgument) {
  ExpectRejected(With("", "alice@example.com"), grpc::StatusCode::INVALID_ARGUMENT,
                 "identities[0].type");
}

TEST_F(BadInputTest, UnknownIdentityTypeIsInvalidArgumentListingTheKnownOnes) {
  v1::SubmitRequest r = With("email", "alice@example.com");
  auto* extra = r.add_identities();
  extra->set_type("passport");
  extra->set_value("X1234567");
  ExpectRejected(r, grpc::StatusCode::INVALID_ARGUMENT, "identities[1].type");
  grpc::ClientContext ctx;
  v1::SubmitResponse resp;
  grpc::Status s = mesh_->Requests()->Submit(&ctx, r, &resp);
  EXPECT_THAT(s.error_message(), HasSubstr("email, user_id"));
}

TEST_F(BadInputTest, ValueOverOneKibibyteIsInvalidArgument) {
  ExpectRejected(With("email", std::string(1025, 'a') + "@example.com"),
                 grpc::StatusCode::INVALID_ARGUMENT, "identities[0].value");
  // Exactly 1 KiB is accepted.
  grpc::ClientContext ctx;
  v1::SubmitResponse resp;
  EXPECT_TRUE(mesh_->Requests()->Submit(&ctx, With("email", std::string(1024, 'b')), &resp).ok());
}

TEST_F(BadInputTest, UnknownRequestIdIsNotFoundAndMalformedIdIsInvalidArgument) {
  for (const auto& [id, code, text] :
       std::vector<std::tuple<std::string, grpc::StatusCode, std::string>>{
           {std::string(32, 'a'), grpc::StatusCode::NOT_FOUND, "request_id"},
           {"not-a-request", grpc::StatusCode::INVALID_ARGUMENT, "request_id"},
           {"", grpc::StatusCode::INVALID_ARGUMENT, "request_id"}}) {
    grpc::ClientContext ctx;
    v1::GetRequestRequest req;
    req.set_request_id(id);
    v1::RequestView view;
    grpc::Status s = mesh_->Requests()->Get(&ctx, req, &view);
    EXPECT_EQ(s.error_code(), code) << id;
    EXPECT_THAT(s.error_message(), HasSubstr(text));
  }
}

TEST_F(BadInputTest, EnrollingForAnUnknownDomainOrWithABadKeyIsInvalidArgument) {
  const uint64_t size = mesh_->lethed().ledger().size();
  v1::EnrollAgentRequest req;
  req.set_domain("nowhere");
  req.set_public_key_pem(*lethe::ReadFile(mesh_->agent_pub("growth")));
  grpc::ClientContext c1;
  v1::AgentView view;
  grpc::Status s = mesh_->Agents()->Enroll(&c1, req, &view);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("domain"));
  req.set_domain("growth");
  req.set_public_key_pem("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n");
  grpc::ClientContext c2;
  s = mesh_->Agents()->Enroll(&c2, req, &view);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("public_key_pem"));
  EXPECT_EQ(mesh_->lethed().ledger().size(), size);
}

TEST(AgentDatabaseOutage, NoReceiptAndNoCommittedOffsetUntilPostgresIsBack) {
  Mesh::Options o;
  o.domains = {"assessments"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.pg().Stop().ok());
  ASSERT_TRUE(mesh.StartAgent("assessments").ok());

  auto id = mesh.Erase(kAlice);
  ASSERT_TRUE(id.ok()) << id.status();
  agents::Agent& a = mesh.agent("assessments");
  // The agent keeps trying, backing off, and acknowledges nothing meanwhile.
  ASSERT_TRUE(WaitFor([&] { return a.stats().retries.load() >= 3; }, absl::Seconds(60)));
  EXPECT_EQ(a.stats().receipts_sent.load(), 0u);
  EXPECT_EQ(a.stats().purged.load(), 0u);
  auto committed = kafka::CommittedOffset(mesh.kafka_bootstrap(), "lethe-agent.assessments",
                                          kafka::CommandTopic("assessments"), 0);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_LT(*committed, 0) << "an offset was committed while the database was down";
  auto pending = mesh.lethed().store().Get(*id);
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(pending->state, v1::IN_PROGRESS);
  EXPECT_EQ(pending->domains[0].state, v1::PENDING);

  ASSERT_TRUE(mesh.pg().Restart().ok());
  auto done = mesh.WaitDone(*id, absl::Seconds(60));
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::COMPLETED);
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), 0);
  EXPECT_EQ(a.stats().purged.load(), 1u);
  committed = kafka::CommittedOffset(mesh.kafka_bootstrap(), "lethe-agent.assessments",
                                     kafka::CommandTopic("assessments"), 0);
  ASSERT_TRUE(committed.ok());
  // Past the command (or past a re-publication of it, if the outbox's retry came first).
  EXPECT_GE(*committed, 1);
}

}  // namespace
}  // namespace lethe::testing
