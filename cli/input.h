// Identities and reasons from a file or standard input, so that they stay off argv (which
// `ps`, /proc/PID/cmdline, shell history and auditd all see).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::cli {

// At most this much is read from a file or standard input.
inline constexpr size_t kMaxInputBytes = 64 << 10;

// The whole of FILE, or of standard input for "-"; kInvalidArgument naming `flag` when it
// cannot be read or is larger than kMaxInputBytes.
absl::StatusOr<std::string> ReadInput(const std::string& flag, const std::string& from);

// The TYPE=VALUE arguments of repeated --identity flags followed by those of
// --identities-from (one a line; blank lines and lines starting with # skipped; a trailing
// CR removed). Each must have a type and a value, and a value of "-" is refused: it is what a
// shell user writes meaning "standard input", never an identity.
absl::StatusOr<std::vector<std::string>> IdentityArgs(const std::vector<std::string>& flags,
                                                      const std::string& from);

// --reason TEXT or --reason-from FILE|- (not both): the text, without one trailing newline.
absl::StatusOr<std::string> ReasonText(const std::string& reason, const std::string& from);

}  // namespace lethe::cli
