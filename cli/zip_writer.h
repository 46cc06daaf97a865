// The two formats of `lethectl request export --format csv-zip`: a ZIP archive written in
// memory (one CSV file per table plus a manifest) and the CSV rows that go in it.
//
// ZipWriter writes PKWARE's APPNOTE 6.3.x format in its simplest form: every entry STORED
// (method 0, no compression), no encryption, no data descriptors, no extra fields, no
// comments, no ZIP64. An archive is, in order, each entry's local file header and its bytes
// (in the order they were added), the central directory (one header per entry, same order),
// and the end-of-central-directory record. Every field is little-endian. Version needed to
// extract is 1.0; "made by" says Unix, APPNOTE 6.3, and every entry is a regular file with
// mode 0644. A name that is not pure ASCII gets general purpose bit 11 (the name is UTF-8),
// and must be valid UTF-8. Every entry carries the same DOS timestamp, the one given to the
// constructor (UTC; DOS time has two-second steps and covers 1980 to 2107, and a time outside
// that is clamped to its ends), so that the same entries always make the same bytes.
//
// Add refuses a name that an extractor could turn into a path outside its directory, or that
// means different things to different readers: an empty name, a leading '/', a backslash, a
// NUL, an empty, "." or ".." path component (so no trailing '/' either: entries are files),
// a name that is not valid UTF-8, and a name already added. It refuses whatever would need
// ZIP64 too: an entry of 0xFFFFFFFF bytes or more, an archive that would reach 0xFFFFFFFF
// bytes, more than 65535 entries. A refused Add leaves the archive as it was. Finish itself
// cannot fail: whatever Add accepted fits.
//
// CsvField and CsvRow write RFC 4180 CSV: a field is quoted when it contains a comma, a double
// quote, CR or LF, or starts or ends with a space or a tab, and a double quote inside a quoted
// field is doubled; a row ends in CRLF. A null field (std::nullopt) is written empty and
// unquoted, an empty string as "" (quoted), so that a reader can tell SQL NULL from ''. A row
// of no fields is "\r\n", as is a row of one null field. Bytes are written as they are (UTF-8
// passes through; nothing is escaped or prefixed, so a value starting with '=' stays one: a
// spreadsheet opening the file may read it as a formula).
//
// Thread safety: CsvField and CsvRow are pure functions. A ZipWriter is not thread safe: its
// owner serialises calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace lethe::cli {

class ZipWriter {
 public:
  // What the format allows without ZIP64: 0xFFFFFFFF is the 32-bit fields' "see ZIP64" mark,
  // so an archive (and so every entry and offset in it) stays below it.
  static constexpr uint64_t kMaxArchiveBytes = 0xFFFFFFFEu;
  static constexpr uint64_t kMaxEntryBytes = 0xFFFFFFFEu;
  static constexpr size_t kMaxEntries = 0xFFFF;
  static constexpr size_t kMaxNameBytes = 0xFFFF;

  // Caps on one archive. Values above the format's limits are lowered to them; lower values
  // let a caller bound an archive's size (and let tests reach the caps without gigabytes).
  struct Limits {
    uint64_t max_archive_bytes = kMaxArchiveBytes;
    size_t max_entries = kMaxEntries;
  };

  // Every entry is stamped with `mtime` (see above).
  explicit ZipWriter(absl::Time mtime);
  ZipWriter(absl::Time mtime, Limits limits);
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;

  // Appends a file `name` holding `data`. InvalidArgument, naming the problem and the start of
  // the name, for a name refused above, a duplicate, or an entry that does not fit the limits;
  // the archive is then unchanged.
  absl::Status Add(std::string_view name, std::string_view data);

  // The archive of every entry added, in order (an empty archive is the 22-byte end record
  // alone). The writer is left empty, as if newly constructed with the same time and limits.
  std::string Finish();

  size_t entries() const { return names_.size(); }
  // The size Finish's archive would have now.
  uint64_t size() const;

  // The DOS date and time fields for `t` (UTC), clamped to 1980-01-01 00:00:00 ..
  // 2107-12-31 23:59:58; odd seconds are rounded down.
  static uint16_t DosDate(absl::Time t);
  static uint16_t DosTime(absl::Time t);

 private:
  const uint16_t dos_date_;
  const uint16_t dos_time_;
  const Limits limits_;
  std::string local_;    // local file headers and data, as they go into the archive
  std::string central_;  // the central directory so far
  std::unordered_set<std::string> names_;
};

// One CSV field: `value` as it is, or quoted with its quotes doubled (see above). An empty
// value is "" (quoted): only CsvRow writes a null.
std::string CsvField(std::string_view value);
// One CSV row: the fields comma-separated, a null empty and unquoted, then CRLF.
std::string CsvRow(const std::vector<std::optional<std::string>>& fields);

}  // namespace lethe::cli
