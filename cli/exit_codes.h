// lethectl's exit codes: one meaning each, documented in `lethectl --help` and the README.
#pragma once

#include "absl/status/status.h"

namespace lethe::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,         // the operation failed: a FAILED request, a failed verification
  kExitUsage = 2,          // bad flags or arguments, or input refused as invalid
  kExitTimeout = 3,        // --wait, watch or a call ran out of time
  kExitNeedsOperator = 4,  // the request cannot progress until someone acts (printed)
  kExitNotFound = 5,       // no such request, key or file
  kExitUnreachable = 6,    // lethed could not be reached
  kExitPermission = 7,     // the caller's certificate may not do this
  kExitGaps = 8,           // the request ended DONE_WITH_GAPS: a sink keeps the subject's copy
};

// The exit code for a failed status: InvalidArgument is a usage error, NotFound, Unavailable,
// PermissionDenied and Unauthenticated, DeadlineExceeded have their own codes, anything else
// is a failure.
int ExitFor(absl::StatusCode code);

// The table printed by --help.
extern const char kExitCodesHelp[];

}  // namespace lethe::cli
