#include "proto/wire_check.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/utf8.h"

namespace lethe::proto {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

constexpr int kMaxDepth = 32;

// The path of the first string field with invalid UTF-8 under `type`, if any. `ok` turns
// false when the bytes are not a well-formed message at all.
std::optional<std::string> Find(const Descriptor* type, std::string_view bytes, const std::string& prefix,
                                int depth, bool* ok) {
  if (depth > kMaxDepth) {
    *ok = false;
    return std::nullopt;
  }
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  std::map<int, int> seen;  // field number -> occurrences so far (repeated index)
  while (true) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const auto wire_type = WireFormatLite::GetTagWireType(tag);
    const FieldDescriptor* f = type->FindFieldByNumber(number);
    if (wire_type != WireFormatLite::WIRETYPE_LENGTH_DELIMITED || f == nullptr) {
      if (!WireFormatLite::SkipField(&in, tag)) {
        *ok = false;
        return std::nullopt;
      }
      continue;
    }
    uint32_t len = 0;
    std::string payload;
    if (!in.ReadVarint32(&len) || !in.ReadString(&payload, static_cast<int>(len))) {
      *ok = false;
      return std::nullopt;
    }
    const int index = seen[number]++;
    std::string path = prefix.empty() ? f->name() : prefix + "." + f->name();
    if (f->is_repeated()) absl::StrAppend(&path, "[", index, "]");
    if (f->type() == FieldDescriptor::TYPE_STRING && !IsValidUtf8(payload)) return path;
    if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (auto inner = Find(f->message_type(), payload, path, depth + 1, ok)) return inner;
      if (!*ok) return std::nullopt;
    }
  }
  if (!in.ConsumedEntireMessage()) *ok = false;
  return std::nullopt;
}

}  // namespace

absl::Status DescribeParseFailure(const Descriptor* type, std::string_view bytes) {
  bool ok = true;
  if (auto path = Find(type, bytes, "", 0, &ok); path)
    return absl::InvalidArgumentError(*path + ": not valid UTF-8 (string fields must be UTF-8)");
  return absl::InvalidArgumentError("request does not parse as " + type->full_name());
}

}  // namespace lethe::proto
