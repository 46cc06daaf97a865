#include "cli/json.h"

#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"

namespace lethe::cli {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

constexpr int64_t kMaxExact = int64_t{1} << 53;

bool Is64Bit(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64: return true;
    default: return false;
  }
}

// A 64-bit value as protobuf prints it (a string) made a number if a double holds it exactly.
void Number(nlohmann::json& v, const FieldDescriptor* f) {
  if (!v.is_string()) return;
  const std::string s = v.get<std::string>();
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
    int64_t n = 0;
    if (absl::SimpleAtoi(s, &n) && n <= kMaxExact && n >= -kMaxExact) v = n;
  } else {
    uint64_t n = 0;
    if (absl::SimpleAtoi(s, &n) && n <= static_cast<uint64_t>(kMaxExact)) v = n;
  }
}

void Fix(nlohmann::json& j, const Descriptor* d) {
  if (!j.is_object() || d->full_name().rfind("google.protobuf.", 0) == 0) return;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    auto it = j.find(f->name());
    if (it == j.end()) continue;
    nlohmann::json& v = *it;
    if (f->is_map()) {
      const FieldDescriptor* value = f->message_type()->FindFieldByName("value");
      if (!v.is_object()) continue;
      for (auto& [k, mv] : v.items()) {
        (void)k;
        if (value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) Fix(mv, value->message_type());
        else if (Is64Bit(value)) Number(mv, value);
      }
    } else if (f->is_repeated()) {
      if (!v.is_array()) continue;
      for (auto& e : v) {
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) Fix(e, f->message_type());
        else if (Is64Bit(f)) Number(e, f);
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Fix(v, f->message_type());
    } else if (Is64Bit(f)) {
      Number(v, f);
    }
  }
}

}  // namespace

nlohmann::json ToJsonValue(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(m, &text, opts);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  Fix(j, m.GetDescriptor());
  return j;
}

std::string ToJson(const google::protobuf::Message& m) { return ToJsonValue(m).dump(2) + "\n"; }

}  // namespace lethe::cli
