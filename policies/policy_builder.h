// Internal to lethe_policy: the YAML reader behind Policy::Parse and Policy::Validate.
// Nothing outside policies/ includes this header.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "policies/policy.h"

namespace lethe::policies::internal {

// Reads and validates one policy document. Appends every problem found to *diagnostics
// (sorted by position, position-less ones first) and returns a Policy only when there were
// none. Never throws: yaml-cpp's exceptions are caught here and become diagnostics.
std::optional<Policy> BuildPolicy(std::string_view yaml, std::vector<Diagnostic>* diagnostics);

// ParsePolicyDuration with the field named in the error message:
//   bad duration "30 days" for deadlines.erasure: expected <n>h, <n>d, <n>w or <n>y
// With an empty `field` the " for <field>" part is left out.
absl::StatusOr<absl::Duration> ParseDurationFor(std::string_view text, std::string_view field);

}  // namespace lethe::policies::internal
