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
#include "tests/support/assertions.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {

using ::testing::IsSupersetOf;

// A length-delimited field `number` holding `bytes`.
std::string Field(int number, const std::string& bytes) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream s(&out);
    google::protobuf::io::CodedOutputStream c(&s);
    c.WriteTag(static_cast<uint32_t>(number << 3 | 2));
    c.WriteVarint32(static_cast<uint32_t>(bytes.size()));
    c.WriteString(bytes);
  }
  return out;
}

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Bytes(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// grpc.health.v1.Health/Check(HealthCheckRequest{service}): the status (1 SERVING, 2
// NOT_SERVING), or -1 with the call's error in *error.
int Check(const std::shared_ptr<grpc::Channel>& channel, const std::string& service, grpc::Status* error) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  const grpc::ByteBuffer request = Buffer(Field(1, service));
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> l(mu);
                   status = s;
                   done = true;
                   cv.notify_all();
                 });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  if (!status.ok()) {
    *error = status;
    return -1;
  }
  google::protobuf::UnknownFieldSet fields;
  EXPECT_TRUE(fields.ParseFromString(Bytes(response)));
  for (int i = 0; i < fields.field_count(); ++i)
    if (fields.field(i).number() == 1) return static_cast<int>(fields.field(i).varint());
  return 0;  // the default: UNKNOWN
}

TEST(Health, ThePlaintextPortAnswersProbesAndServesNothingElse) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.lethed_options = [](controlplane::LethedOptions& lo) { lo.health_listen = "127.0.0.1:0"; };
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  ASSERT_GT(mesh->lethed().health_port(), 0);
  auto plain = grpc::CreateChannel(absl::StrCat("127.0.0.1:", mesh->lethed().health_port()),
                                   grpc::InsecureChannelCredentials());
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

TEST(Health, NotServingWhileNoKafkaBrokerAnswers) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_lethed = false;
  o.start_agents = false;
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  controlplane::LethedOptions lo = mesh->LethedOptionsForTest();
  lo.embedded_kafka = false;
  lo.kafka_bootstrap = "127.0.0.1:1";  // nothing listens there
  lo.health_listen = "127.0.0.1:0";
  lo.health_interval = absl::Milliseconds(100);
  ASSERT_OK_AND_ASSIGN(auto lethed, controlplane::Lethed::Start(lo));
  auto plain = grpc::CreateChannel(absl::StrCat("127.0.0.1:", lethed->health_port()),
                                   grpc::InsecureChannelCredentials());
  grpc::Status error;
  EXPECT_EQ(Check(plain, "", &error), 2) << error.error_message();
  EXPECT_EQ(Check(plain, "lethe.v1.SubjectRequests", &error), 2) << error.error_message();
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

}  // namespace
}  // namespace lethe::testing
