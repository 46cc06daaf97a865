#include "ledger/entry_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "ledger/segment_reader.h"
#include "spdlog/spdlog.h"

namespace lethe::ledger {
namespace {

constexpr size_t kLeaf = 32;

// An unlinked file in `dir` that only this descriptor reaches.
absl::StatusOr<int> OpenScratch(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return Errno("cannot create the ledger's entry index in", dir);
  // No O_TMPFILE on this file system: create a file with an unpredictable name and remove it.
  std::string path = dir + "/.entry-index-XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return Errno("cannot create the ledger's entry index in", dir);
  if (::unlink(path.c_str()) != 0) {
    absl::Status s = Errno("cannot remove the ledger's scratch entry index", path);
    ::close(fd);
    return s;
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EntryIndex>> EntryIndex::Create(const std::string& dir) {
  LETHE_ASSIGN_OR_RETURN(const int fd, OpenScratch(dir));
  return std::unique_ptr<EntryIndex>(new EntryIndex(fd, dir));
}

EntryIndex::~EntryIndex() { ::close(fd_); }

void EntryIndex::Append(std::string_view leaf_hash, const Location& location) {
  char rec[kRecordSize];
  std::memcpy(rec, leaf_hash.data(), kLeaf);
  std::memcpy(rec + kLeaf, &location.segment, 4);
  std::memcpy(rec + kLeaf + 4, &location.length, 4);
  std::memcpy(rec + kLeaf + 8, &location.offset, 8);
  buffer_.append(rec, kRecordSize);
  ++size_;
  if (buffer_.size() >= kFlushBytes) Flush();
}

void EntryIndex::Flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::pwrite(fd_, buffer_.data() + done, buffer_.size() - done,
                               static_cast<off_t>(flushed_ * kRecordSize + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!flush_failed_)
        spdlog::error("ledger: cannot write the entry index in {} ({}); its last {} records "
                      "stay in memory and the write is tried again",
                      dir_, n < 0 ? std::strerror(errno) : "short write", size_ - flushed_);
      flush_failed_ = true;
      // Keep whole records only in the buffer: what was written of a partial one is rewritten.
      const size_t whole = done / kRecordSize * kRecordSize;
      buffer_.erase(0, whole);
      flushed_ += whole / kRecordSize;
      return;
    }
    done += static_cast<size_t>(n);
  }
  flushed_ = size_;
  buffer_.clear();
  flush_failed_ = false;
}

absl::Status EntryIndex::Read(uint64_t first, uint64_t count, char* dst) const {
  // From the file, the records below flushed_...
  if (first < flushed_) {
    const uint64_t from_file = std::min(count, flushed_ - first);
    size_t done = 0;
    const size_t want = from_file * kRecordSize;
    while (done < want) {
      const ssize_t n = ::pread(fd_, dst + done, want - done,
                                static_cast<off_t>(first * kRecordSize + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return absl::UnavailableError(absl::StrCat(
            "cannot read the ledger's entry index in ", dir_, ": ",
            n < 0 ? std::strerror(errno) : "short read"));
      done += static_cast<size_t>(n);
    }
    dst += want;
    first += from_file;
    count -= from_file;
  }
  // ...and the rest from the buffer.
  if (count > 0)
    std::memcpy(dst, buffer_.data() + (first - flushed_) * kRecordSize, count * kRecordSize);
  return absl::OkStatus();
}

absl::StatusOr<EntryIndex::Location> EntryIndex::LocationOf(uint64_t seq) const {
  if (seq >= size_)
    return absl::OutOfRangeError(
        absl::StrCat("entry ", seq, " is beyond the ", size_, " entries indexed"));
  char rec[kRecordSize];
  LETHE_RETURN_IF_ERROR(Read(seq, 1, rec));
  Location loc;
  std::memcpy(&loc.segment, rec + kLeaf, 4);
  std::memcpy(&loc.length, rec + kLeaf + 4, 4);
  std::memcpy(&loc.offset, rec + kLeaf + 8, 8);
  return loc;
}

absl::Status EntryIndex::ReadLeaves(uint64_t first, uint64_t count, std::string* out) const {
  if (first + count > size_ || first + count < first)
    return absl::OutOfRangeError(absl::StrCat("entries ", first, " to ", first + count - 1,
                                              " are beyond the ", size_, " entries indexed"));
  std::string recs(count * kRecordSize, '\0');
  LETHE_RETURN_IF_ERROR(Read(first, count, recs.data()));
  out->resize(count * kLeaf);
  for (uint64_t i = 0; i < count; ++i)
    std::memcpy(out->data() + i * kLeaf, recs.data() + i * kRecordSize, kLeaf);
  return absl::OkStatus();
}

}  // namespace lethe::ledger
