// Debian ships neither grpc/health/v1/health.proto nor the reflection .proto, so their few
// fields are written and read here by hand (protobuf wire format) through gRPC's generic stub:
//   HealthCheckRequest{service = 1}  ->  HealthCheckResponse{status = 1}
//   ServerReflectionRequest{list_services = 7}  ->  ServerReflectionResponse{
//     list_services_response = 6 {service = 1 {name = 1}}}
#include "cli/health.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "cli/exit_codes.h"
#include "lethe/v1/api.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace lethe::cli {
namespace {

constexpr int kDeadlineSeconds = 10;

std::string LengthDelimited(int number, const std::string& bytes) {
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

grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromBuffer(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  if (!b.Dump(&slices).ok()) return "";
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(kDeadlineSeconds);
}

// grpc.health.v1.Health/Check: SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN.
grpc::Status Check(grpc::GenericStub& stub, const std::string& service, std::string* status) {
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  const grpc::ByteBuffer request = ToBuffer(LengthDelimited(1, service));
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status s;
  call->Finish(&response, &s, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!s.ok()) return s;
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(FromBuffer(response)))
    return grpc::Status(grpc::StatusCode::INTERNAL, "health: the response does not parse");
  uint64_t v = 0;  // UNKNOWN unless said
  for (int i = 0; i < fields.field_count(); ++i)
    if (fields.field(i).number() == 1 && fields.field(i).type() == google::protobuf::UnknownField::TYPE_VARINT)
      v = fields.field(i).varint();
  static constexpr const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  *status = v < 4 ? kNames[v] : "UNKNOWN";
  return grpc::Status::OK;
}

// grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with list_services.
grpc::Status ListServices(grpc::GenericStub& stub, std::vector<std::string>* names) {
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  grpc::ByteBuffer response;
  bool got = false;
  call->StartCall(reinterpret_cast<void*>(1));
  if (cq.Next(&tag, &ok) && ok) {
    call->Write(ToBuffer(LengthDelimited(7, "")), reinterpret_cast<void*>(2));
    if (cq.Next(&tag, &ok) && ok) {
      call->Read(&response, reinterpret_cast<void*>(3));
      got = cq.Next(&tag, &ok) && ok;
    }
  }
  call->WritesDone(reinterpret_cast<void*>(4));
  (void)cq.Next(&tag, &ok);
  grpc::Status s;
  call->Finish(&s, reinterpret_cast<void*>(5));
  (void)cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!got) return s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "reflection: no response") : s;
  google::protobuf::UnknownFieldSet top;
  if (!top.ParseFromString(FromBuffer(response)))
    return grpc::Status(grpc::StatusCode::INTERNAL, "reflection: the response does not parse");
  for (int i = 0; i < top.field_count(); ++i) {
    if (top.field(i).number() != 6 || top.field(i).type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
      continue;
    google::protobuf::UnknownFieldSet list;
    if (!list.ParseFromString(top.field(i).length_delimited())) continue;
    for (int j = 0; j < list.field_count(); ++j) {
      if (list.field(j).type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) continue;
      google::protobuf::UnknownFieldSet service;
      if (!service.ParseFromString(list.field(j).length_delimited())) continue;
      for (int k = 0; k < service.field_count(); ++k)
        if (service.field(k).number() == 1 &&
            service.field(k).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
          names->push_back(service.field(k).length_delimited());
    }
  }
  std::sort(names->begin(), names->end());
  return grpc::Status::OK;
}

int Health(const Global& g) {
  grpc::GenericStub stub(Connect(g));
  const std::vector<std::string> services = {"",
                                             "liveness",
                                             v1::SubjectRequests::service_full_name(),
                                             v1::Policies::service_full_name(),
                                             v1::Consent::service_full_name(),
                                             v1::Agents::service_full_name(),
                                             v1::Ledger::service_full_name()};
  std::vector<std::pair<std::string, std::string>> statuses;
  for (const auto& name : services) {
    std::string status;
    grpc::Status s = Check(stub, name, &status);
    if (!s.ok()) return FailGrpc("health", s);
    statuses.emplace_back(name, status);
  }
  std::vector<std::string> listed;
  grpc::Status s = ListServices(stub, &listed);
  if (!s.ok()) return FailGrpc("health: server reflection", s);
  const std::string overall = statuses.front().second;
  if (g.json()) {
    nlohmann::json out = {{"addr", g.addr}, {"status", overall}, {"services", nlohmann::json::object()},
                          {"reflection", listed}};
    for (size_t i = 1; i < statuses.size(); ++i) out["services"][statuses[i].first] = statuses[i].second;
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "lethed at " << g.addr << ": " << overall << "\n";
    for (size_t i = 1; i < statuses.size(); ++i)
      std::cout << absl::StrFormat("  %-26s %s\n", statuses[i].first, statuses[i].second);
    std::cout << "services (server reflection):\n";
    for (const auto& n : listed) std::cout << "  " << n << "\n";
  }
  return overall == "SERVING" ? kExitOk : kExitFailed;
}

}  // namespace

void AddHealthCommands(CLI::App& app, Context& ctx) {
  auto* health = app.add_subcommand(
      "health",
      "lethed's grpc.health.v1 status per service (SERVING once its ledger is open, a Kafka broker "
      "answers and its topics are ready) and the services server reflection lists; exit 0 when "
      "SERVING, 1 when not");
  health->callback([&ctx] { ctx.rc = Health(ctx.g); });
  ctx.examples[health] = "lethectl --certs-dir audrey health";
}

}  // namespace lethe::cli
