#include "cli/exit_codes.h"

namespace lethe::cli {

int ExitFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return kExitUsage;
    case absl::StatusCode::kDeadlineExceeded: return kExitTimeout;
    case absl::StatusCode::kNotFound: return kExitNotFound;
    case absl::StatusCode::kUnavailable: return kExitUnreachable;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated: return kExitPermission;
    default: return kExitFailed;
  }
}

const char kExitCodesHelp[] =
    "Exit codes:\n"
    "  0  ok\n"
    "  1  the operation failed (a FAILED request, a failed verification, a refused change)\n"
    "  2  usage error (bad flags, arguments or input)\n"
    "  3  timeout (--wait, watch)\n"
    "  4  needs an operator: the request cannot progress until someone acts (printed)\n"
    "  5  not found\n"
    "  6  lethed unreachable\n"
    "  7  permission denied (the role in your certificate may not do this)\n"
    "  8  the request ended DONE_WITH_GAPS: erased where Lethe reaches, but a sink keeps a copy\n";

}  // namespace lethe::cli
