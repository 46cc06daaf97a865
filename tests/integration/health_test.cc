// gRPC's standard services on lethed, called as any client would: grpc.health.v1.Health on
// the plaintext --health-listen port (what a kubelet's grpc: probe uses) and on the
// authenticated port, and server reflection (what grpcurl lists services with). Debian ships
// neither service's .proto, so the client here writes and reads their few fields by hand
// (protobuf wire format), through gRPC's generic stub.
#include <string>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/unknown_field_set.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fakes/fake_topic_admin.h"
#include "tests/support/assertions.h"
#include "tests/support/health_client.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {

using ::testing::IsSupersetOf;


TEST(Health, ThePlaintextPortAnswersProbesAndServesNothingElse) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.lethed_options = [](controlplane::LethedOptions& lo) { lo.health_listen = "127.0.0.1:0"; };
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  ASSERT_GT(mesh->lethed().health_port(), 0);
  auto plain = HealthChannel(mesh->lethed().health_port());
  grpc::Status error;
  EXPECT_EQ(Check(plain, "", &error), 1) << error.error_message();
  EXPECT_EQ(Check(plain, "lethe.v1.SubjectRequests", &error), 1) << error.error_message();
  EXPECT_EQ(Check(plain, "lethe.v1.Ledger", &error), 1) << error.error_message();
  EXPECT_EQ(Check(plain, "no.such.Service", &error), -1);
  EXPECT_EQ(error.error_code(), grpc::StatusCode::NOT_FOUND);
  // The plaintext port serves health alone: the API is not there.
  v1::ListRequestsResponse list;
  grpc::ClientContext ctx;
  grpc::Status s = v1::SubjectRequests::NewStub(plain)->List(&ctx, v1::ListRequestsRequest(), &list);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
  // On the authenticated port, health answers any role.
  EXPECT_EQ(Check(mesh->Channel("auditor"), "lethe.v1.Consent", &error), 1) << error.error_message();
  // Stopping: NOT_SERVING (or gone) from then on.
  mesh->lethed().Shutdown();
  const int after = Check(plain, "", &error);
  EXPECT_NE(after, 1);
}

// A mesh of one domain (growth) whose lethed the test starts itself.
absl::StatusOr<std::unique_ptr<Mesh>> MeshWithoutLethed() {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_lethed = false;
  o.start_agents = false;
  return Mesh::Start(o);
}

// The mesh's lethed options, on the Kafka cluster at `bootstrap` instead of the embedded
// broker, with a plaintext health port.
controlplane::LethedOptions OnCluster(const Mesh& mesh, const std::string& bootstrap) {
  controlplane::LethedOptions lo = mesh.LethedOptionsForTest();
  lo.embedded_kafka = false;
  lo.kafka_bootstrap = bootstrap;
  lo.health_listen = "127.0.0.1:0";
  return lo;
}

TEST(Health, NotServingWhileNoKafkaBrokerAnswers) {
  ASSERT_OK_AND_ASSIGN(auto mesh, MeshWithoutLethed());
  controlplane::LethedOptions lo = OnCluster(*mesh, "127.0.0.1:1");  // nothing listens there
  lo.health_interval = absl::Milliseconds(100);
  lo.kafka_admin_timeout = absl::Seconds(1);
  ASSERT_OK_AND_ASSIGN(auto lethed, controlplane::Lethed::Start(lo));
  auto plain = HealthChannel(lethed->health_port());
  grpc::Status error;
  EXPECT_EQ(Check(plain, "", &error), 2) << error.error_message();
  EXPECT_EQ(Check(plain, "lethe.v1.SubjectRequests", &error), 2) << error.error_message();
  // A liveness probe does not restart lethed for an outage of Kafka.
  EXPECT_EQ(Check(plain, "liveness", &error), 1) << error.error_message();
  // `lethectl health` says so, and exits 1.
  mesh->UseExternalLethed(absl::StrCat("127.0.0.1:", lethed->port()));
  auto cli = RunLethectl(*mesh, {"health"});
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_THAT(cli.output, ::testing::HasSubstr(": NOT_SERVING"));
  EXPECT_THAT(cli.output, ::testing::ContainsRegex("liveness +SERVING"));
}

// `lethectl health`: the status of every service, and the list server reflection gives.
// lethe.v1.EmbeddedKafkaFaults (what tests/chaos drives): absent unless lethed runs with
// --embedded-kafka-faults; then for admins alone, and it really takes the broker down.
TEST(EmbeddedKafkaFaults, ServedOnlyWhenAskedForToAdminsAndItTakesTheBrokerDown) {
  {
    Mesh::Options o;
    o.domains = {"growth"};
    o.start_agents = false;
    ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
    v1::SetBrokerUpRequest down;
    v1::SetBrokerUpResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status s = v1::EmbeddedKafkaFaults::NewStub(mesh->Channel("admin"))->SetBrokerUp(&ctx, down, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
  }
  controlplane::LethedOptions refused;
  refused.embedded_kafka_faults = true;
  refused.kafka_bootstrap = "127.0.0.1:9";
  refused.data_dir = "/nonexistent";
  refused.signing_key_path = "/nonexistent";
  refused.insecure = true;
  auto no = controlplane::Lethed::Start(refused);
  ASSERT_FALSE(no.ok());
  EXPECT_THAT(no.status().message(), ::testing::HasSubstr("--embedded-kafka-faults needs --embedded-kafka"));

  Mesh::Options o;
  o.domains = {"growth"};
  o.lethed_options = [](controlplane::LethedOptions& lo) {
    lo.embedded_kafka_faults = true;
    lo.health_listen = "127.0.0.1:0";
    lo.health_interval = absl::Milliseconds(200);
  };
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  auto call = [&](const std::string& role, bool up) {
    v1::SetBrokerUpRequest req;
    req.set_up(up);
    v1::SetBrokerUpResponse resp;
    grpc::ClientContext ctx;
    return v1::EmbeddedKafkaFaults::NewStub(mesh->Channel(role))->SetBrokerUp(&ctx, req, &resp);
  };
  EXPECT_EQ(call("operator", false).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(call("auditor", false).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  auto plain = HealthChannel(mesh->lethed().health_port());
  grpc::Status error;
  ASSERT_TRUE(WaitFor([&] { return Check(plain, "", &error) == 1; }, absl::Seconds(30)));
  ASSERT_TRUE(call("admin", false).ok());
  EXPECT_TRUE(WaitFor([&] { return Check(plain, "", &error) == 2; }, absl::Seconds(30)))
      << "lethed still SERVING with its broker down";
  ASSERT_TRUE(call("admin", true).ok());
  EXPECT_TRUE(WaitFor([&] { return Check(plain, "", &error) == 1; }, absl::Seconds(30)));

  // Request errors: bounded input, named fields.
  auto push = [&](int api, std::vector<int> codes) {
    v1::PushRequestErrorsRequest req;
    req.set_api_key(api);
    for (int c : codes) req.add_error_codes(c);
    v1::PushRequestErrorsResponse resp;
    grpc::ClientContext ctx;
    return v1::EmbeddedKafkaFaults::NewStub(mesh->Channel("admin"))->PushRequestErrors(&ctx, req, &resp);
  };
  EXPECT_TRUE(push(0, {7, 7}).ok());
  // Leaders move among the cluster's three brokers, for lethed's own topics only.
  auto move = [&](const std::string& topic, int partition, int broker) {
    v1::MovePartitionLeaderRequest req;
    req.set_topic(topic);
    req.set_partition(partition);
    req.set_broker_id(broker);
    v1::MovePartitionLeaderResponse resp;
    grpc::ClientContext ctx;
    return v1::EmbeddedKafkaFaults::NewStub(mesh->Channel("admin"))->MovePartitionLeader(&ctx, req, &resp);
  };
  EXPECT_TRUE(move("lethe.commands.growth", 0, 3).ok());
  EXPECT_EQ(move("lethe.commands.nowhere", 0, 2).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(move("lethe.receipts", 1, 2).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(move("lethe.receipts", 0, 4).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // After all of it (the broker down and up, errors, moved leaders) an erasure goes through.
  ASSERT_TRUE(move("lethe.receipts", 0, 2).ok());
  ASSERT_TRUE(mesh->Plant(kAlice).ok());
  auto done = mesh->EraseAndWait(kAlice, absl::Seconds(90));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::COMPLETED);
  for (const auto& [api, codes, field] : std::vector<std::tuple<int, std::vector<int>, std::string>>{
           {99, {7}, "api_key"}, {0, {}, "error_codes"}, {0, {0}, "error_codes"}, {0, std::vector<int>(65, 7), "error_codes"}}) {
    const grpc::Status s = push(api, codes);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr(field));
  }
}

TEST(Health, LethectlPrintsEachServiceAndTheReflectionList) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  auto text = RunLethectlAs(*mesh, "auditor", {"health"});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_THAT(text.output, ::testing::HasSubstr(": SERVING"));
  EXPECT_THAT(text.output, ::testing::ContainsRegex("lethe\\.v1\\.Ledger +SERVING"));
  EXPECT_THAT(text.output, ::testing::HasSubstr("services (server reflection):"));
  EXPECT_THAT(text.output, ::testing::HasSubstr("  grpc.health.v1.Health\n"));
  auto json = RunLethectlAs(*mesh, "auditor", {"health", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  const nlohmann::json j = nlohmann::json::parse(json.output);
  EXPECT_EQ(j.at("status"), "SERVING");
  EXPECT_EQ(j.at("services").at("lethe.v1.SubjectRequests"), "SERVING");
  EXPECT_THAT(j.at("reflection").get<std::vector<std::string>>(),
              IsSupersetOf({"lethe.v1.SubjectRequests", "lethe.v1.Policies", "lethe.v1.Consent", "lethe.v1.Agents",
                            "lethe.v1.Ledger", "grpc.health.v1.Health"}));
}

TEST(Reflection, ListsEveryServiceToAnAuthenticatedClient) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  grpc::GenericStub stub(mesh->Channel("auditor"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  // ServerReflectionRequest{list_services: ""} (field 7).
  call->Write(Buffer(Field(7, "")), reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok) << "no reflection response";
  // ServerReflectionResponse.list_services_response (6) → ListServiceResponse.service (1) →
  // ServiceResponse.name (1).
  google::protobuf::UnknownFieldSet top;
  ASSERT_TRUE(top.ParseFromString(Bytes(response)));
  std::vector<std::string> names;
  for (int i = 0; i < top.field_count(); ++i) {
    if (top.field(i).number() != 6) continue;
    google::protobuf::UnknownFieldSet list;
    ASSERT_TRUE(list.ParseFromString(top.field(i).length_delimited()));
    for (int j = 0; j < list.field_count(); ++j) {
      google::protobuf::UnknownFieldSet service;
      ASSERT_TRUE(service.ParseFromString(list.field(j).length_delimited()));
      for (int k = 0; k < service.field_count(); ++k)
        if (service.field(k).number() == 1) names.push_back(service.field(k).length_delimited());
    }
  }
  EXPECT_THAT(names, IsSupersetOf({"lethe.v1.SubjectRequests", "lethe.v1.Policies", "lethe.v1.Consent",
                                   "lethe.v1.Agents", "lethe.v1.Ledger", "grpc.health.v1.Health"}));
  call->WritesDone(reinterpret_cast<void*>(4));
  (void)cq.Next(&tag, &ok);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  (void)cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// lethed on a real cluster creates the lethe.* topics through the Admin API (kafka/topics.h).
// The embedded broker answers Metadata but neither DescribeConfigs nor CreateTopics, so these
// tests point lethed at a broker of their own for everything else and give it a recording
// Admin client (tests/fakes/fake_topic_admin.h); the last test shows the real client against
// the broker that lacks the API.
struct ExternalBroker {
  std::unique_ptr<kafka::EmbeddedKafka> broker;
  std::shared_ptr<kafka::testing::RecordingTopicAdmin> admin =
      std::make_shared<kafka::testing::RecordingTopicAdmin>();
  void Apply(controlplane::LethedOptions& lo) const {
    lo.embedded_kafka = false;
    lo.kafka_bootstrap = broker->bootstrap();
    lo.health_listen = "127.0.0.1:0";
    lo.health_interval = absl::Milliseconds(100);
    auto a = admin;
    lo.topic_admin_factory = [a](const std::string&) {
      return std::make_unique<kafka::testing::SharedTopicAdmin>(a);
    };
  }
};

std::vector<std::string> Names(const std::vector<kafka::TopicSpec>& specs) {
  std::vector<std::string> out;
  for (const auto& s : specs) out.push_back(s.name);
  return out;
}

TEST(KafkaTopics, LethedCreatesItsTopicsAndThoseOfEachDomainActivatedLater) {
  auto ext = std::make_shared<ExternalBroker>();
  ASSERT_OK_AND_ASSIGN(ext->broker, kafka::EmbeddedKafka::Start(1));
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  o.lethed_options = [ext](controlplane::LethedOptions& lo) {
    ext->Apply(lo);
    lo.kafka_topics = {6, 3};
  };
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  EXPECT_THAT(Names(ext->admin->created),
              ::testing::ElementsAre("lethe.commands.growth", "lethe.receipts", "lethe.consent"));
  EXPECT_EQ(ext->admin->layout.partitions, 6);
  EXPECT_EQ(ext->admin->layout.replication_factor, 3);
  // The policy's erasure deadline (30d) plus its largest extension (60d).
  EXPECT_EQ(ext->admin->created[0].retention_ms, absl::ToInt64Milliseconds(absl::Hours(24 * 90)));
  EXPECT_EQ(ext->admin->created[2].cleanup_policy, "compact");
  auto plain = HealthChannel(mesh->lethed().health_port());
  grpc::Status error;
  EXPECT_EQ(Check(plain, "", &error), 1) << error.error_message();

  // A policy naming a new domain: its command topic is created when it is activated.
  const std::string v2 = mesh->work_dir() + "/policy-v2.yaml";
  ASSERT_OK(lethe::WriteFileAtomic(v2, MeshPolicy({"growth", "assessments"}), 0644));
  auto act = RunLethectl(*mesh, {"policy", "activate", v2});
  ASSERT_EQ(act.exit_code, 0) << act.output;
  EXPECT_THAT(Names(ext->admin->created), ::testing::Contains("lethe.commands.assessments"));
  EXPECT_EQ(ext->admin->created.size(), 4u);
}

TEST(KafkaTopics, AConsentTopicThatIsNotCompactedStopsLethedNamingIt) {
  auto ext = std::make_shared<ExternalBroker>();
  ASSERT_OK_AND_ASSIGN(ext->broker, kafka::EmbeddedKafka::Start(1));
  ext->admin->topics["lethe.consent"] = {"delete", 604800000};
  ASSERT_OK_AND_ASSIGN(auto mesh, MeshWithoutLethed());
  controlplane::LethedOptions lo = mesh->LethedOptionsForTest();
  ext->Apply(lo);
  auto lethed = controlplane::Lethed::Start(lo);
  ASSERT_FALSE(lethed.ok());
  EXPECT_EQ(lethed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(lethed.status().message(),
              ::testing::HasSubstr("kafka topic lethe.consent exists with cleanup.policy=delete; Lethe needs "
                                   "cleanup.policy=compact"));
  EXPECT_THAT(ext->admin->created, ::testing::IsEmpty());
}

TEST(KafkaTopics, NotServingUntilTheTopicsAreReady) {
  // A cluster whose Admin API does not answer (here: librdkafka's mock cluster, which lacks
  // CreateTopics): lethed starts, but reports NOT_SERVING while a broker answers.
  ASSERT_OK_AND_ASSIGN(auto broker, kafka::EmbeddedKafka::Start(1));
  ASSERT_OK_AND_ASSIGN(auto mesh, MeshWithoutLethed());
  controlplane::LethedOptions lo = OnCluster(*mesh, broker->bootstrap());
  lo.kafka_admin_timeout = absl::Seconds(1);
  ASSERT_OK_AND_ASSIGN(auto lethed, controlplane::Lethed::Start(lo));
  auto plain = HealthChannel(lethed->health_port());
  grpc::Status error;
  EXPECT_EQ(Check(plain, "", &error), 2) << error.error_message();
}

}  // namespace
}  // namespace lethe::testing
