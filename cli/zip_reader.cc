// ReadZip (zip_reader.h).
#include "cli/zip_reader.h"

#include <zlib.h>

#include <cstdint>
#include <set>

#include "absl/strings/str_cat.h"

namespace lethe::cli {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr size_t kEndSize = 22;
constexpr size_t kCentralSize = 46;
constexpr size_t kLocalSize = 30;

absl::Status Bad(const std::string& why) { return absl::InvalidArgumentError("zip: " + why); }

// Little-endian reads at `at`; the caller has checked that the bytes are there.
uint16_t U16(std::string_view s, size_t at) {
  return static_cast<uint16_t>(static_cast<unsigned char>(s[at]) | static_cast<unsigned char>(s[at + 1]) << 8);
}
uint32_t U32(std::string_view s, size_t at) { return U16(s, at) | static_cast<uint32_t>(U16(s, at + 2)) << 16; }

// Whether [at, at + n) lies inside s.
bool Inside(std::string_view s, uint64_t at, uint64_t n) { return at <= s.size() && n <= s.size() - at; }

}  // namespace

absl::StatusOr<std::vector<ZipEntry>> ReadZip(std::string_view a) {
  if (a.size() < kEndSize) return Bad("shorter than an end record");
  // The end record: the last one whose comment runs exactly to the end of the archive.
  size_t end = std::string_view::npos;
  const size_t lowest = a.size() > kEndSize + 0xFFFF ? a.size() - kEndSize - 0xFFFF : 0;
  for (size_t at = a.size() - kEndSize + 1; at-- > lowest;) {
    if (U32(a, at) == kEndSig && at + kEndSize + U16(a, at + 20) == a.size()) {
      end = at;
      break;
    }
  }
  if (end == std::string_view::npos) return Bad("no end of central directory record");
  if (U16(a, end + 4) != 0 || U16(a, end + 6) != 0) return Bad("a multi-disk archive");
  const uint16_t count = U16(a, end + 10);
  if (count != U16(a, end + 8)) return Bad("entry counts disagree");
  const uint32_t cd_size = U32(a, end + 12);
  const uint32_t cd_offset = U32(a, end + 16);
  if (!Inside(a, cd_offset, cd_size) || uint64_t{cd_offset} + cd_size > end)
    return Bad("the central directory lies outside the archive");
  std::vector<ZipEntry> out;
  std::set<std::string> names;
  uint64_t at = cd_offset;
  uint64_t data_end = 0;  // local headers and data lie before the central directory, in order
  for (uint16_t i = 0; i < count; ++i) {
    if (!Inside(a, at, kCentralSize) || at + kCentralSize > uint64_t{cd_offset} + cd_size)
      return Bad("a truncated central directory");
    if (U32(a, at) != kCentralSig) return Bad("a central directory entry without its signature");
    const uint16_t flags = U16(a, at + 8), method = U16(a, at + 10);
    const uint32_t crc = U32(a, at + 16), csize = U32(a, at + 20), usize = U32(a, at + 24);
    const uint16_t name_len = U16(a, at + 28), extra_len = U16(a, at + 30), comment_len = U16(a, at + 32);
    const uint16_t disk = U16(a, at + 34);
    const uint32_t local = U32(a, at + 42);
    if (method != 0) return Bad(absl::StrCat("entry ", i, " is compressed (method ", method, "); only stored entries are read"));
    if (flags & 0x0009) return Bad(absl::StrCat("entry ", i, " is encrypted or has a data descriptor"));
    if (disk != 0) return Bad("a multi-disk archive");
    if (csize != usize) return Bad(absl::StrCat("entry ", i, ": a stored entry whose sizes differ"));
    const uint64_t next = at + kCentralSize + name_len + extra_len + comment_len;
    if (!Inside(a, at + kCentralSize, uint64_t{name_len} + extra_len + comment_len) ||
        next > uint64_t{cd_offset} + cd_size)
      return Bad("a truncated central directory");
    ZipEntry e;
    e.name.assign(a.substr(at + kCentralSize, name_len));
    if (e.name.empty() || !names.insert(e.name).second) return Bad(absl::StrCat("entry ", i, ": empty or repeated name"));
    // Its local header: the same name, sizes and CRC, then the data.
    if (local < data_end || !Inside(a, local, kLocalSize) || U32(a, local) != kLocalSig)
      return Bad(absl::StrCat("entry ", i, ": no local header where the central directory says"));
    const uint16_t lname = U16(a, local + 26), lextra = U16(a, local + 28);
    const uint64_t data = uint64_t{local} + kLocalSize + lname + lextra;
    if (U16(a, local + 8) != method || U32(a, local + 14) != crc || U32(a, local + 18) != csize ||
        U32(a, local + 22) != usize || lname != name_len || !Inside(a, local + kLocalSize, lname) ||
        a.substr(local + kLocalSize, lname) != e.name)
      return Bad(absl::StrCat("entry ", i, ": its local header disagrees with the central directory"));
    if (!Inside(a, data, csize) || data + csize > cd_offset)
      return Bad(absl::StrCat("entry ", i, ": its data runs past the archive"));
    e.data.assign(a.substr(data, csize));
    if (crc32(0L, reinterpret_cast<const Bytef*>(e.data.data()), static_cast<uInt>(e.data.size())) != crc)
      return Bad(absl::StrCat("entry ", i, " (", e.name.substr(0, 40), "): its data does not match its CRC-32"));
    data_end = data + csize;
    out.push_back(std::move(e));
    at = next;
  }
  return out;
}

}  // namespace lethe::cli
