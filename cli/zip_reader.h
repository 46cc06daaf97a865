// ReadZip: the entries of a ZIP archive as ZipWriter (zip_writer.h) writes them — stored (no
// compression), no ZIP64, no encryption — for `request export --verify` of a csv-zip package.
//
// The archive is outside bytes, read with every bound checked: the end record is looked for
// in the last 64 KiB + 22 bytes only; every offset and length must stay inside the archive;
// the central directory and each local header must agree on name, sizes and CRC-32; the data
// must have that CRC-32. Anything else (another method, a data descriptor, a multi-disk
// archive, a truncated or overlapping entry) is kInvalidArgument naming the problem.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::cli {

struct ZipEntry {
  std::string name;
  std::string data;
};

// In central-directory order. At most kMaxReadEntries entries.
inline constexpr size_t kMaxReadEntries = 65535;
absl::StatusOr<std::vector<ZipEntry>> ReadZip(std::string_view archive);

}  // namespace lethe::cli
