// Why a request's bytes did not parse: the path of the first string field holding invalid
// UTF-8 (proto3 refuses those), so that a client is told which field is wrong.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "base/utf8.h"

namespace google::protobuf {
class Descriptor;
}

namespace lethe::proto {

// Walks `bytes` as a serialized message of `type`, without allocating messages, at most 32
// levels deep. Returns INVALID_ARGUMENT naming the field ("identities[0].value: not valid
// UTF-8"), or, when no string field is at fault, INVALID_ARGUMENT saying the request does not
// parse as `type`.
absl::Status DescribeParseFailure(const google::protobuf::Descriptor* type, std::string_view bytes);

// Whether `s` is well-formed UTF-8 (base/utf8.h).
using ::lethe::IsValidUtf8;

}  // namespace lethe::proto
