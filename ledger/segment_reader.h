// Internal to the ledger (not part of its API; ledger.h is): the helpers of the segment
// reader (segment_reader.cc) that the chain checks and Ledger::Open share. ScanSegments and
// StrayLedgerFiles themselves are declared in ledger.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lethe::ledger {

// kUnavailable for a failed system call on `path`, with errno's text.
absl::Status Errno(std::string_view what, const std::string& path);

// The names of the segment files in `dir`, sorted; kDataLoss for a name that starts like a
// segment's (seg-) but is not one.
absl::StatusOr<std::vector<std::string>> ListSegments(const std::string& dir);

// kDataLoss naming the entry, its segment and offset.
absl::Status Corrupt(const std::string& segment, uint64_t offset, uint64_t entry,
                     std::string_view what);

// The format version in a segment's header (checked by ScanSegments already).
absl::StatusOr<uint32_t> SegmentVersion(const std::string& path);

}  // namespace lethe::ledger
