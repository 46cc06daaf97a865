// A grpc.health.v1 client for tests, as a kubelet's grpc: probe is one: Debian ships no
// health .proto, so the few fields are written and read by hand (protobuf wire format),
// through gRPC's generic stub.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace lethe::testing {

// A length-delimited field `number` holding `bytes`.
inline std::string Field(int number, const std::string& bytes) {
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

inline grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

inline std::string Bytes(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A plaintext channel to a health port on loopback (lethed's or an agent's --health-listen).
inline std::shared_ptr<grpc::Channel> HealthChannel(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
}

// grpc.health.v1.Health/Check(HealthCheckRequest{service}): the status (1 SERVING, 2
// NOT_SERVING), or -1 with the call's error in *error.
inline int Check(const std::shared_ptr<grpc::Channel>& channel, const std::string& service, grpc::Status* error) {
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

}  // namespace lethe::testing
