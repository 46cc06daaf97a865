// lethectl's JSON output (-o json): a proto message as protobuf's JSON mapping with field
// names as in the .proto files, every field printed (zeros, falses and empty lists included),
// and 64-bit integers as JSON numbers where a double holds them exactly (|v| <= 2^53), as
// strings beyond. The schema of each command is its message in proto/lethe/v1 (docs/cli-json.md).
#pragma once

#include <string>

#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace lethe::cli {

nlohmann::json ToJsonValue(const google::protobuf::Message& m);
// Indented, with a trailing newline.
std::string ToJson(const google::protobuf::Message& m);

// -o yaml: the JSON documents a command printed (one or more, one after the other), each as a
// YAML document ("---" between them). Strings that YAML would read as another type ("123",
// "true", "null", "") are quoted. Text that is not JSON is returned as it is.
std::string JsonTextToYaml(const std::string& text);

}  // namespace lethe::cli
