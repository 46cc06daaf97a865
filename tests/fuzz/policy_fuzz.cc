// Fuzz target: the policy parser (policies/policy.h), the input being a YAML file.
//
// Runs Policy::Parse and Policy::Validate on it and, when it parses, the canonical JSON and
// hashes of the policy and of each domain, and the erasure scope the planner derives. Checks that the two entry points agree (Parse
// succeeds exactly when Validate reports nothing), that hashes are 32 bytes, and that
// parsing is deterministic.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using lethe::fuzz::Violated;
  using lethe::policies::Policy;
  if (size > lethe::fuzz::kMaxInput) return -1;
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);

  auto policy = Policy::Parse(yaml, "fuzz.yaml");
  const std::vector<lethe::policies::Diagnostic> diagnostics = Policy::Validate(yaml);
  if (policy.ok() != diagnostics.empty()) {
    Violated("Parse and Validate disagree:",
             policy.ok() ? "Parse succeeded" : std::string(policy.status().message()));
  }
  if (!policy.ok()) {
    if (policy.status().code() != absl::StatusCode::kInvalidArgument) {
      Violated("Parse failed without kInvalidArgument:", policy.status().ToString());
    }
    return 0;
  }

  const std::string hash = policy->Hash();
  if (hash.size() != 32) Violated("policy hash is not 32 bytes");
  const std::string json = policy->CanonicalJson();
  if (json.empty() || json.front() != '{') Violated("canonical JSON is not an object", json);
  for (const lethe::policies::Domain& d : policy->domains()) {
    if (policy->DomainHash(d.name).size() != 32) Violated("domain hash is not 32 bytes", d.name);
    if (policy->DomainCanonicalJson(d.name).empty()) Violated("empty domain JSON", d.name);
    (void)d.IdentityTypes();
    for (const lethe::policies::KafkaTopic& t : d.kafka_topics) {
      std::map<std::string, std::string> values;
      for (const std::string& type : t.identities) values.try_emplace(type, "v");
      if (!t.BuildKey(values).has_value()) Violated("a parsed key template does not build", t.key_template);
    }
  }
  // The planner's scope: with every identity type no domain lacks one; with none, every
  // domain in scope lacks some.
  for (const auto& d : policy->ErasureScope(policy->identities())) {
    if (!d.missing_types.empty()) Violated("a domain lacks an identity type the policy declares", d.domain);
  }
  for (const auto& d : policy->ErasureScope({})) {
    if (d.missing_types.empty()) Violated("a domain needs no identity type", d.domain);
  }
  for (const lethe::policies::Purpose& p : policy->purposes()) (void)policy->ErasureScope({}, p.domains);

  auto again = Policy::Parse(yaml, "fuzz.yaml");
  if (!again.ok() || again->Hash() != hash) Violated("parsing is not deterministic");
  return 0;
}
