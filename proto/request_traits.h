// Force-included (-include) into the generated *.grpc.pb.cc files, where every gRPC method
// handler and stub of lethe.v1 is instantiated: explicit SerializationTraits for protobuf
// messages. They parse as gRPC's own traits do, but a request whose bytes do
// not parse is answered INVALID_ARGUMENT naming the field (a string field with invalid UTF-8,
// which proto3 refuses), where gRPC answers INTERNAL with an empty message. Nothing here
// runs before authorization: gRPC parses the message after the auth metadata processor.
#pragma once

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message_lite.h>
#include "proto/wire_check.h"

namespace lethe::proto::internal {

// Parses as gRPC's own traits do; on failure, says which field is at fault.
inline grpc::Status DeserializeMessage(grpc::ByteBuffer* buffer, grpc::protobuf::MessageLite* msg) {
  if (buffer == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "No payload");
  grpc::ByteBuffer copy(*buffer);  // shares the slices; kept to explain a failure
  grpc::Status s = grpc::GenericDeserialize<grpc::ProtoBufferReader, grpc::protobuf::MessageLite>(buffer, msg);
  if (s.ok()) return s;
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (copy.Dump(&slices).ok())
    for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  const google::protobuf::Descriptor* type =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(msg->GetTypeName());
  if (type == nullptr) return s;
  const absl::Status why = DescribeParseFailure(type, bytes);
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(why.message()));
}

}  // namespace lethe::proto::internal

// The generated handlers deserialize through SerializationTraits<MessageLite> ("reduced
// templating"), so that is the one to specialize.
template <>
class grpc::SerializationTraits<grpc::protobuf::MessageLite, void> {
 public:
  static grpc::Status Serialize(const grpc::protobuf::MessageLite& msg, grpc::ByteBuffer* bb,
                                bool* own_buffer) {
    return grpc::GenericSerialize<grpc::ProtoBufferWriter, grpc::protobuf::MessageLite>(msg, bb, own_buffer);
  }
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer, grpc::protobuf::MessageLite* msg) {
    return lethe::proto::internal::DeserializeMessage(buffer, msg);
  }
};
