// File I/O for every binary: the FileSystem seam and the durable whole-file helpers on top
// of it (WriteFileAtomic, WriteNewFile, ReadFile).
//
// Every change the ledger makes to its files (writes, syncs, truncations, creations, renames,
// removals and directory syncs) goes through a FileSystem, so that tests can put a fake below
// it that loses what no completed sync made durable, fails a sync, a write or a rename, or
// tears a write at any byte (tests/support/fault_fs.h). Reads of whole segments
// (ScanSegments) use the files directly: the fake keeps the real files as a crash would have
// left them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lethe {

// An open file. Not thread-safe for concurrent writes to overlapping ranges (the ledger never
// makes them); distinct calls may come from different threads.
class File {
 public:
  virtual ~File() = default;
  // Writes all of `data` at `offset` (resuming short writes). On failure some prefix of it
  // may have been written.
  virtual absl::Status WriteAt(uint64_t offset, std::string_view data) = 0;
  // Reads exactly `n` bytes at `offset`; kDataLoss if the file ends first.
  virtual absl::Status ReadAt(uint64_t offset, size_t n, char* out) const = 0;
  // fdatasync: what was written before it returns OK survives a power loss.
  virtual absl::Status SyncData() = 0;
  virtual absl::Status Truncate(uint64_t size) = 0;
  virtual absl::StatusOr<uint64_t> Size() const = 0;
  virtual const std::string& path() const = 0;
};

class FileSystem {
 public:
  enum class OpenMode {
    kWrite,            // an existing file, write only
    kReadWrite,        // an existing file, never followed as a symlink
    kCreateExclusive,  // a new file (fails if the name exists), never followed as a symlink
  };
  virtual ~FileSystem() = default;
  // `mode` is the permission of a created file (umask does not change it).
  virtual absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path, OpenMode how,
                                                     int mode = 0600) = 0;
  virtual absl::Status Remove(const std::string& path) = 0;
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // Truncates the file at `path` to `size` bytes and syncs it.
  virtual absl::Status TruncateFile(const std::string& path, uint64_t size) = 0;
  // fsync of a directory: creations, renames and removals in it before this survive a
  // power loss.
  virtual absl::Status SyncDir(const std::string& dir) = 0;

  // The real one (POSIX calls), shared by everyone.
  static FileSystem* Default();
};

// Replaces `path` with a file holding `data`, whole or not at all, durably: a temporary file
// with an unpredictable name in the same directory (created exclusively, written, synced),
// renamed over `path`, and the directory synced. A failure of any step is returned.
absl::Status WriteFileAtomic(FileSystem& fs, const std::string& path, std::string_view data,
                             int mode);
// The same on the real file system.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data, int mode);
// Creates `path`, which must not exist yet (kAlreadyExists otherwise; a symlink counts as
// existing), with `mode`, and makes it and its directory entry durable. For key files that
// must never be replaced.
absl::Status WriteNewFile(const std::string& path, std::string_view data, int mode);
// The whole file (kNotFound when it cannot be opened).
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace lethe
