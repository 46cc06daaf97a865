// The segment reader: lists a ledger directory's segment files and reads their records in
// order (ScanSegments), checking segment headers, record framing and CRCs, and telling a
// torn tail of the last segment (an incomplete record, unwritten sectors, zeros to the end)
// from corruption. Also StrayLedgerFiles. The chain checks of what it reads: chain_check.cc.
#include "ledger/segment_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "ledger/ledger.h"
#include "ledger/record_format.h"

namespace lethe::ledger {
namespace fs = std::filesystem;

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(absl::string_view(what.data(), what.size()), " ",
                                             path, ": ", std::strerror(errno)));
}

absl::StatusOr<std::vector<std::string>> ListSegments(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("seg-", 0) != 0) continue;
    // Anything named like a segment must be one: a reader that skipped it would skip entries.
    if (name.size() != 28 || name.substr(24) != ".log" ||
        !std::all_of(name.begin() + 4, name.begin() + 24, [](char c) { return c >= '0' && c <= '9'; }))
      return absl::DataLossError("ledger corrupt: " + Quote(name) + " in " + dir +
                                 " is named like a segment but not as one (seg-<20 digits>.log)");
    names.push_back(name);
  }
  if (ec) return absl::UnavailableError("cannot list ledger directory " + dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status Corrupt(const std::string& segment, uint64_t offset, uint64_t entry,
                     std::string_view what) {
  return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", entry, " at ", segment,
                                          " offset ", offset, ": ",
                                          absl::string_view(what.data(), what.size())));
}

absl::StatusOr<uint32_t> SegmentVersion(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open segment", path);
  char header[12];
  const ssize_t n = ::pread(fd, header, sizeof(header), 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof(header))) return Errno("cannot read segment header", path);
  return format::GetU32(header + 8);
}

namespace {

bool AllZero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

// Whether the record at [begin, end) of a segment overlaps a 512-byte sector of the file
// whose part from the record's start (or the sector's start) to the sector's end (or the
// file's end) is at least 8 bytes and reads as zeros: a sector the crash kept from being
// written (writers only write records over zeros). Bit rot does not zero whole runs. This is
// how etcd's WAL tells a torn write from corruption; the 8-byte minimum keeps a record that
// merely ends in a few legitimate zero bytes from passing as torn, except where those bytes
// begin a sector and end the file: a sector the crash lost from a write that extended it.
bool HasUnwrittenSector(std::string_view data, uint64_t begin, uint64_t end) {
  constexpr uint64_t kSector = 512, kMinPiece = 8;
  end = std::min<uint64_t>(end, data.size());
  for (uint64_t s = begin - begin % kSector; s < end; s += kSector) {
    // The piece runs on past the record's end to the end of the sector (or file): a record
    // whose last few bytes fall into a sector that was never written is torn as well, and
    // what follows it in that sector (the next record of the write, or pre-zeroed space)
    // was not written either.
    const uint64_t a = std::max(s, begin), b = std::min<uint64_t>(s + kSector, data.size());
    // Shorter pieces count only where the file ends inside a sector that the record runs
    // into: the write that extended the file lost its last sector.
    const bool at_file_end = a == s && b == data.size() && b > a;
    if ((b - a >= kMinPiece || at_file_end) && AllZero(data.substr(a, b - a))) return true;
  }
  return false;
}

// Whether the file's bytes from some point inside the record at [begin, end) to the end of
// the file are all zero, and either go on past the record's end (pre-zeroed space) or are at
// least 8: a write torn at that byte, of which nothing later reached the disk. Unlike the
// sector rule this holds for a tear at any byte, not only at a sector's edge. A damaged record
// passes as torn only if its own last bytes are zeros.
bool EndsInZeros(std::string_view data, uint64_t begin, uint64_t end) {
  constexpr uint64_t kMinPiece = 8;
  uint64_t z = data.size();
  while (z > begin && data[z - 1] == 0) --z;
  return z < std::min<uint64_t>(end, data.size()) &&
         (data.size() > end || data.size() - z >= kMinPiece);
}
}  // namespace

absl::StatusOr<std::vector<std::string>> StrayLedgerFiles(const std::string& dir) {
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> segments, ListSegments(dir));
  (void)segments;  // listed for its check of seg- names
  auto known = [](const std::string& name) {
    if (name == "checkpoint" || name == "checkpoint-history.log") return true;
    // A temporary file of lethe::WriteFileAtomic replacing the checkpoint: .tmp-<16 hex>.
    const std::string prefix = "checkpoint.tmp-";
    if (name.size() == prefix.size() + 16 && name.rfind(prefix, 0) == 0 &&
        std::all_of(name.begin() + prefix.size(), name.end(),
                    [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }))
      return true;
    return name.rfind("seg-", 0) == 0;  // valid, or ListSegments failed
  };
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (!known(name)) out.push_back(std::move(name));
  }
  if (ec) return absl::UnavailableError("cannot list ledger directory " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<ScanResult> ScanSegments(
    const std::string& dir, const std::function<absl::Status(const ScannedRecord&)>& fn) {
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> names, ListSegments(dir));
  ScanResult result;
  uint64_t index = 0;
  if (!names.empty()) result.last_segment = names.back();
  for (size_t i = 0; i < names.size(); ++i) {
    const bool last = i + 1 == names.size();
    const std::string& name = names[i];
    LETHE_ASSIGN_OR_RETURN(std::string data, lethe::ReadFile(dir + "/" + name));
    auto torn = [&](uint64_t off, bool zeros) -> absl::Status {
      if (!last) return Corrupt(name, off, index, "incomplete record in a sealed segment");
      result.torn_tail = TornTail{name, off, data.size() - off, zeros};
      return absl::OkStatus();
    };
    if (data.size() < format::kSegmentHeaderSize) {
      LETHE_RETURN_IF_ERROR(torn(0, AllZero(data)));
      break;
    }
    const char* h = data.data();
    if (std::memcmp(h, format::kMagic, sizeof(format::kMagic)) != 0)
      return Corrupt(name, 0, index, "bad segment magic");
    if (crypto::Crc32c(std::string_view(h, 28)) != format::GetU32(h + 28))
      return Corrupt(name, 0, index, "segment header checksum mismatch");
    const uint32_t version = format::GetU32(h + 8);
    if (version < format::kOldestVersion || version > format::kVersion)
      return Corrupt(name, 0, index, absl::StrCat("unsupported segment version ", version));
    if (format::GetU32(h + 12) != 0) return Corrupt(name, 0, index, "unknown segment flags");
    if (format::GetU32(h + 24) != 0)
      return Corrupt(name, 0, index, "reserved field of the segment header is not zero");
    if (format::SegmentFileName(format::GetU64(h + 16)) != name)
      return Corrupt(name, 0, index, absl::StrCat("the header says the segment starts at entry ",
                                                  format::GetU64(h + 16),
                                                  ", which its file name does not"));
    if (format::GetU64(h + 16) != index)
      return Corrupt(name, 0, index, absl::StrCat("segment starts at entry ",
                                                  format::GetU64(h + 16)));
    result.last_version = version;
    uint64_t off = format::kSegmentHeaderSize;
    while (off < data.size()) {
      const std::string_view rest = std::string_view(data).substr(off);
      if (last && AllZero(rest)) {
        LETHE_RETURN_IF_ERROR(torn(off, /*zeros=*/true));
        break;
      }
      // From here on, an incomplete record, or (last segment only) a header that was never
      // written, or a record with a sector that was never written, is an unacknowledged
      // write torn by a crash; anything else that fails a check is corruption.
      if (rest.size() < format::kRecordHeaderSize ||
          (last && AllZero(rest.substr(0, format::kRecordHeaderSize)))) {
        LETHE_RETURN_IF_ERROR(torn(off, false));
        break;
      }
      const uint32_t len = format::GetU32(rest.data());
      if (len > rest.size() - format::kRecordHeaderSize) {
        LETHE_RETURN_IF_ERROR(torn(off, false));
        break;
      }
      const std::string_view framed = rest.substr(0, format::kRecordHeaderSize + len);
      std::string problem;
      if (len == 0 || len > format::kMaxPayload) {
        problem = absl::StrCat("bad record length ", len);
      } else if (crypto::Crc32c(framed.substr(8), crypto::Crc32c(framed.substr(0, 4))) !=
                 format::GetU32(rest.data() + 4)) {
        problem = "record checksum mismatch";
      }
      if (!problem.empty()) {
        if (last && (HasUnwrittenSector(data, off, off + framed.size()) ||
                     EndsInZeros(data, off, off + framed.size()))) {
          LETHE_RETURN_IF_ERROR(torn(off, false));
          break;
        }
        return Corrupt(name, off, index, problem);
      }
      LETHE_RETURN_IF_ERROR(fn(ScannedRecord{index, name, off, framed.substr(8), version}));
      ++index;
      ++result.records;
      off += framed.size();
    }
    if (result.torn_tail) break;
  }
  return result;
}

}  // namespace lethe::ledger
