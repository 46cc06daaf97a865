#include "cli/json.h"

#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "yaml-cpp/yaml.h"

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

namespace {

bool LooksLikeAnotherType(const std::string& s) {
  if (s.empty()) return true;
  double d = 0;
  if (absl::SimpleAtod(s, &d)) return true;
  static const char* kWords[] = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"};
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* w : kWords)
    if (lower == w) return true;
  return false;
}

void Emit(YAML::Emitter& out, const nlohmann::json& j) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [k, v] : j.items()) {
      out << YAML::Key << k << YAML::Value;
      Emit(out, v);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& v : j) Emit(out, v);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (LooksLikeAnotherType(s)) out << YAML::DoubleQuoted;
    if (s.find('\n') != std::string::npos) out << YAML::Literal;
    out << s;
  } else if (j.is_boolean()) {
    out << j.get<bool>();
  } else if (j.is_number_integer()) {
    out << j.get<int64_t>();
  } else if (j.is_number_unsigned()) {
    out << j.get<uint64_t>();
  } else if (j.is_number_float()) {
    out << j.get<double>();
  } else {
    out << YAML::Null;
  }
}

}  // namespace

std::string JsonTextToYaml(const std::string& text) {
  // The documents, one after the other (a command prints one, `verify --dir --since` two):
  // operator>> reads one value and stops after it.
  std::vector<nlohmann::json> docs;
  std::istringstream in(text);
  while (true) {
    in >> std::ws;
    if (in.peek() == std::char_traits<char>::eof()) break;
    nlohmann::json j;
    try {
      in >> j;
    } catch (const nlohmann::json::exception&) {
      return text;
    }
    docs.push_back(std::move(j));
  }
  std::string out;
  for (size_t i = 0; i < docs.size(); ++i) {
    YAML::Emitter e;
    Emit(e, docs[i]);
    out += (i > 0 ? "---\n" : "") + std::string(e.c_str()) + "\n";
  }
  return out;
}

}  // namespace lethe::cli
