#include "cli/zip_writer.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/status.h"
#include "base/utf8.h"

namespace lethe::cli {
namespace {

// APPNOTE 6.3.x, section 4.3.
constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndOfCentralDirectorySignature = 0x06054b50;
constexpr uint64_t kLocalHeaderBytes = 30;    // before the name
constexpr uint64_t kCentralHeaderBytes = 46;  // before the name
constexpr uint64_t kEndRecordBytes = 22;
constexpr uint16_t kVersionNeeded = 10;                 // 1.0: stored files
constexpr uint16_t kVersionMadeBy = (3 << 8) | 63;      // Unix, APPNOTE 6.3
constexpr uint32_t kExternalAttributes = 0100644u << 16;  // Unix mode: a regular file, rw-r--r--
constexpr uint16_t kFlagUtf8 = 1 << 11;
constexpr uint16_t kMethodStored = 0;

void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void Put32(std::string& out, uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

bool IsAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

absl::Status BadName(std::string_view name, std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("zip entry name \"", Quote(name, 32), "\": ", Av(problem)));
}

// Why `name` may not be an entry's name, or OK.
absl::Status CheckName(std::string_view name) {
  if (name.empty()) return BadName(name, "is empty");
  if (name.size() > ZipWriter::kMaxNameBytes)
    return BadName(name, absl::StrCat("longer than ", ZipWriter::kMaxNameBytes, " bytes"));
  if (name.find('\0') != std::string_view::npos) return BadName(name, "contains a NUL");
  if (name.find('\\') != std::string_view::npos) return BadName(name, "contains a backslash");
  if (name.front() == '/') return BadName(name, "starts with '/' (an absolute path)");
  if (name.back() == '/') return BadName(name, "ends with '/' (a directory, not a file)");
  size_t start = 0;
  while (true) {
    const size_t end = std::min(name.find('/', start), name.size());
    const std::string_view component = name.substr(start, end - start);
    if (component.empty()) return BadName(name, "has an empty path component");
    if (component == "..") return BadName(name, "has a '..' path component");
    if (component == ".") return BadName(name, "has a '.' path component");
    if (end == name.size()) break;
    start = end + 1;
  }
  if (!IsValidUtf8(name)) return BadName(name, "is not valid UTF-8");
  return absl::OkStatus();
}

absl::CivilSecond DosClamped(absl::Time t) {
  const absl::CivilSecond lo(1980, 1, 1, 0, 0, 0);
  const absl::CivilSecond hi(2107, 12, 31, 23, 59, 59);
  const absl::CivilSecond c = absl::ToCivilSecond(t, absl::UTCTimeZone());
  return std::clamp(c, lo, hi);
}

}  // namespace

uint16_t ZipWriter::DosDate(absl::Time t) {
  const absl::CivilSecond c = DosClamped(t);
  return static_cast<uint16_t>(((c.year() - 1980) << 9) | (c.month() << 5) | c.day());
}

uint16_t ZipWriter::DosTime(absl::Time t) {
  const absl::CivilSecond c = DosClamped(t);
  return static_cast<uint16_t>((c.hour() << 11) | (c.minute() << 5) | (c.second() / 2));
}

ZipWriter::ZipWriter(absl::Time mtime) : ZipWriter(mtime, Limits{}) {}

ZipWriter::ZipWriter(absl::Time mtime, Limits limits)
    : dos_date_(DosDate(mtime)),
      dos_time_(DosTime(mtime)),
      limits_{std::min(limits.max_archive_bytes, kMaxArchiveBytes),
              std::min(limits.max_entries, kMaxEntries)} {}

uint64_t ZipWriter::size() const { return local_.size() + central_.size() + kEndRecordBytes; }

absl::Status ZipWriter::Add(std::string_view name, std::string_view data) {
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  if (names_.contains(std::string(name))) return BadName(name, "already in the archive");
  if (names_.size() >= limits_.max_entries) {
    return BadName(name, absl::StrCat("the archive already holds ", limits_.max_entries, " entries",
                                      limits_.max_entries == kMaxEntries ? ", the most without ZIP64" : ""));
  }
  if (data.size() > kMaxEntryBytes) {
    return BadName(name, absl::StrCat("its ", data.size(), " bytes need ZIP64 (at most ",
                                      kMaxEntryBytes, " bytes an entry)"));
  }
  const uint64_t grown = size() + kLocalHeaderBytes + kCentralHeaderBytes + 2 * uint64_t{name.size()} +
                         uint64_t{data.size()};
  if (grown > limits_.max_archive_bytes) {
    const bool format = limits_.max_archive_bytes == kMaxArchiveBytes;
    return BadName(name, absl::StrCat("its ", data.size(), " bytes would make the archive ", grown,
                                      " bytes, more than ", limits_.max_archive_bytes,
                                      format ? " (ZIP64 is not written)" : ""));
  }

  // Every value below fits its field: the checks above bound the name, the data and the
  // archive (and so every offset in it).
  const uint16_t flags = IsAscii(name) ? 0 : kFlagUtf8;
  const auto* bytes = reinterpret_cast<const Bytef*>(data.data());
  const auto crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), bytes, static_cast<uInt>(data.size())));
  const auto data_size = static_cast<uint32_t>(data.size());
  const auto name_size = static_cast<uint16_t>(name.size());
  const auto offset = static_cast<uint32_t>(local_.size());

  local_.reserve(local_.size() + kLocalHeaderBytes + name.size() + data.size());
  Put32(local_, kLocalHeaderSignature);
  Put16(local_, kVersionNeeded);
  Put16(local_, flags);
  Put16(local_, kMethodStored);
  Put16(local_, dos_time_);
  Put16(local_, dos_date_);
  Put32(local_, crc);
  Put32(local_, data_size);  // compressed size: stored, so the same
  Put32(local_, data_size);
  Put16(local_, name_size);
  Put16(local_, 0);  // extra field length
  local_.append(name);
  local_.append(data);

  Put32(central_, kCentralHeaderSignature);
  Put16(central_, kVersionMadeBy);
  Put16(central_, kVersionNeeded);
  Put16(central_, flags);
  Put16(central_, kMethodStored);
  Put16(central_, dos_time_);
  Put16(central_, dos_date_);
  Put32(central_, crc);
  Put32(central_, data_size);
  Put32(central_, data_size);
  Put16(central_, name_size);
  Put16(central_, 0);  // extra field length
  Put16(central_, 0);  // file comment length
  Put16(central_, 0);  // disk number start
  Put16(central_, 0);  // internal file attributes
  Put32(central_, kExternalAttributes);
  Put32(central_, offset);  // of the local header
  central_.append(name);

  names_.emplace(name);
  return absl::OkStatus();
}

std::string ZipWriter::Finish() {
  const auto count = static_cast<uint16_t>(names_.size());
  const auto central_offset = static_cast<uint32_t>(local_.size());
  const auto central_size = static_cast<uint32_t>(central_.size());
  std::string out = std::move(local_);
  out.reserve(out.size() + central_.size() + kEndRecordBytes);
  out.append(central_);
  Put32(out, kEndOfCentralDirectorySignature);
  Put16(out, 0);  // number of this disk
  Put16(out, 0);  // disk where the central directory starts
  Put16(out, count);  // entries on this disk
  Put16(out, count);  // entries in all
  Put32(out, central_size);
  Put32(out, central_offset);
  Put16(out, 0);  // comment length
  local_.clear();
  central_.clear();
  names_.clear();
  return out;
}

std::string CsvField(std::string_view value) {
  const bool quote = value.empty() || value.find_first_of(",\"\r\n") != std::string_view::npos ||
                     value.front() == ' ' || value.front() == '\t' || value.back() == ' ' ||
                     value.back() == '\t';
  if (!quote) return std::string(value);
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('"');
  for (char c : value) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string CsvRow(const std::vector<std::optional<std::string>>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out.push_back(',');
    if (fields[i].has_value()) out.append(CsvField(*fields[i]));
  }
  out.append("\r\n");
  return out;
}

}  // namespace lethe::cli
