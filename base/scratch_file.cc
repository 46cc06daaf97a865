#include "base/scratch_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "spdlog/spdlog.h"

namespace lethe {
namespace {

absl::Status Errno(const std::string& what, const std::string& where) {
  return absl::UnavailableError(absl::StrCat(what, " ", where, ": ", std::strerror(errno)));
}

// An unlinked file in `dir` that only this descriptor reaches.
absl::StatusOr<int> OpenUnlinked(const std::string& dir, const std::string& what) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return Errno(absl::StrCat("cannot create ", what, " in"), dir);
  // No O_TMPFILE on this file system: create a file with an unpredictable name and remove it.
  std::string path = dir + "/.scratch-XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("cannot create ", what, " in"), dir);
  if (::unlink(path.c_str()) != 0) {
    absl::Status s = Errno(absl::StrCat("cannot remove ", what), path);
    ::close(fd);
    return s;
  }
  return fd;
}

}  // namespace

std::string ScratchFile::DefaultDir() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

absl::StatusOr<std::unique_ptr<ScratchFile>> ScratchFile::Create(const std::string& dir, std::string what,
                                                                 Mode mode) {
  absl::StatusOr<int> fd = OpenUnlinked(dir, what);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<ScratchFile>(new ScratchFile(*fd, std::move(what), mode));
}

ScratchFile::ScratchFile(int fd, std::string what, Mode mode) : fd_(fd), what_(std::move(what)) {
  if (mode == Mode::kDirect) return;
  // The buffer's whole room, written once now, so that memory does not grow afterwards.
  buffer_.resize(kFlushBytes + kFlushBytes / 4);
  buffer_.clear();
}

absl::Status ScratchFile::WriteNow(std::string_view bytes) {
  LETHE_RETURN_IF_ERROR(Flush());
  LETHE_RETURN_IF_ERROR(PwriteAll(flushed_, bytes));
  flushed_ += bytes.size();
  return absl::OkStatus();
}

ScratchFile::~ScratchFile() { ::close(fd_); }

uint64_t ScratchFile::Append(std::string_view bytes) {
  const uint64_t at = size();
  buffer_.append(bytes);
  if (buffer_.size() >= kFlushBytes) {
    if (absl::Status s = Flush(); !s.ok() && !flush_failed_)
      spdlog::error("{}; its last {} bytes stay in memory and the write is tried again", std::string(s.message()),
                    buffer_.size());
    flush_failed_ = !buffer_.empty();  // logged once until a flush succeeds again
  }
  return at;
}

absl::Status ScratchFile::PwriteAll(uint64_t offset, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return absl::UnavailableError(absl::StrCat("cannot write ", what_, ": ",
                                                 n < 0 ? std::strerror(errno) : "short write"));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ScratchFile::Flush() {
  if (buffer_.empty()) return absl::OkStatus();
  LETHE_RETURN_IF_ERROR(PwriteAll(flushed_, buffer_));  // a partial write is written again whole
  flushed_ += buffer_.size();
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status ScratchFile::WriteAt(uint64_t offset, std::string_view bytes) {
  if (offset > size() || bytes.size() > size() - offset)
    return absl::OutOfRangeError(absl::StrCat("write past the end of ", what_));
  // The part in the file, then the part in the buffer.
  if (offset < flushed_) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), flushed_ - offset));
    if (absl::Status s = PwriteAll(offset, bytes.substr(0, n)); !s.ok()) return s;
    bytes.remove_prefix(n);
    offset += n;
  }
  if (!bytes.empty()) std::memcpy(buffer_.data() + (offset - flushed_), bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::Status ScratchFile::ReadAt(uint64_t offset, size_t n, char* dst) const {
  if (offset > size() || n > size() - offset)
    return absl::OutOfRangeError(absl::StrCat("read past the end of ", what_));
  if (offset < flushed_) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(n, flushed_ - offset));
    size_t done = 0;
    while (done < want) {
      const ssize_t r = ::pread(fd_, dst + done, want - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        return absl::UnavailableError(absl::StrCat("cannot read ", what_, ": ",
                                                   r < 0 ? std::strerror(errno) : "short read"));
      done += static_cast<size_t>(r);
    }
    dst += want;
    offset += want;
    n -= want;
  }
  if (n > 0) std::memcpy(dst, buffer_.data() + (offset - flushed_), n);
  return absl::OkStatus();
}

}  // namespace lethe
