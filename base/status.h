// Error propagation helpers for absl::Status / absl::StatusOr.
// Debian's Abseil (20220623) ships no status_macros.h, so the project defines its own, once.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define LETHE_STATUS_CONCAT_INNER_(a, b) a##b
#define LETHE_STATUS_CONCAT_(a, b) LETHE_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define LETHE_RETURN_IF_ERROR(expr)                                \
  do {                                                       \
    ::absl::Status lethe_status_ = (expr);                   \
    if (!lethe_status_.ok()) return lethe_status_;           \
  } while (0)

// `LETHE_ASSIGN_OR_RETURN(auto x, StatusOrExpr())` binds the value or returns the error.
#define LETHE_ASSIGN_OR_RETURN(lhs, rexpr) \
  LETHE_ASSIGN_OR_RETURN_IMPL_(LETHE_STATUS_CONCAT_(lethe_statusor_, __LINE__), lhs, rexpr)
#define LETHE_ASSIGN_OR_RETURN_IMPL_(var, lhs, rexpr) \
  auto var = (rexpr);                                 \
  if (!var.ok()) return std::move(var).status();      \
  lhs = std::move(var).value()

namespace lethe {

// Debian's Abseil does not alias absl::string_view to std::string_view; convert at the
// boundary with this.
inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Prefixes a status message with context, keeping its code.
inline absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), std::string(context) + ": " + std::string(s.message()));
}

// At most `max` bytes of an outside value, for an error or log message: control and non-ASCII
// bytes become '?', and "..." marks a cut. Never use it on personal data or key material:
// those are described, not quoted.
inline std::string Quote(std::string_view value, size_t max = 40) {
  std::string out;
  for (char c : value.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  if (value.size() > max) out += "...";
  return out;
}

}  // namespace lethe
