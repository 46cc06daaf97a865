// ScratchFile: state derived from the ledger at every start, kept on disk instead of in memory
// so that a process's memory does not grow with what it has recorded.
//
// The file is created unlinked (O_TMPFILE, or created and removed at once where the file
// system lacks it) in a given directory: nothing else can open it, it disappears with the
// process, and whoever owns it rebuilds it at start. Put it on the data's own file system, not
// on a tmpfs, or it is memory after all.
//
// Appends land in a small buffer that is written out once it holds kFlushBytes, so that a
// replay of millions of records makes few system calls. If the file cannot be written (a full
// disk), the bytes stay in the buffer and the write is tried again at the next append; an
// append never fails and is never lost. Reads and in-place writes see the buffer too.
//
// Not thread safe: its owner serialises calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lethe {

class ScratchFile {
 public:
  static constexpr size_t kFlushBytes = 64 * 1024;

  // How a file is written: kAppends buffers appends (its buffer's room taken at creation, so
  // that memory does not grow afterwards); kDirect writes each append at once (WriteNow) and
  // holds no buffer, for files written in large pieces or in place.
  enum class Mode { kAppends, kDirect };
  // Where scratch files go when their owner is given no directory: $TMPDIR, else /tmp.
  static std::string DefaultDir();
  // A new, empty file in `dir`; `what` names it in messages ("the ledger's entry index").
  static absl::StatusOr<std::unique_ptr<ScratchFile>> Create(const std::string& dir, std::string what,
                                                             Mode mode = Mode::kAppends);
  ~ScratchFile();
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  // Bytes appended, buffered ones included.
  uint64_t size() const { return flushed_ + buffer_.size(); }
  // Appends `bytes` at size() and returns where they start (kAppends).
  uint64_t Append(std::string_view bytes);
  // Writes `bytes` at size() now, past anything buffered (kDirect).
  absl::Status WriteNow(std::string_view bytes);
  // Writes all of `bytes` at `offset`; offset + bytes.size() <= size().
  absl::Status WriteAt(uint64_t offset, std::string_view bytes);
  // Reads [offset, offset + n) into dst; kOutOfRange past size(), kUnavailable if the file
  // cannot be read.
  absl::Status ReadAt(uint64_t offset, size_t n, char* dst) const;
  // Writes the buffer out now (an append does when it is full, and logs a failure). Leaves it
  // buffered on failure, and says why.
  absl::Status Flush();

  const std::string& what() const { return what_; }

 private:
  ScratchFile(int fd, std::string what, Mode mode);
  absl::Status PwriteAll(uint64_t offset, std::string_view bytes);

  const int fd_;
  const std::string what_;
  uint64_t flushed_ = 0;  // bytes in the file; the rest are in buffer_
  std::string buffer_;
  bool flush_failed_ = false;  // an append's flush failed: logged once until one succeeds
};

}  // namespace lethe
