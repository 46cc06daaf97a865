// The ledger's checkpoint history: every checkpoint the ledger signs, in signing order, in one
// append-only file in the ledger directory, so that lethed can serve them to auditors, who
// keep them to catch a log cut back to an older checkpoint (ledger/FORMAT.md §4).
//
// File DIR/checkpoint-history.log, all integers little-endian:
//
//   header   "LETHECPH" (8 bytes)
//            version  u32 = 1
//            crc      u32       CRC-32C of the 12 bytes above
//   record*  length   u32       1 .. kMaxNote
//            crc      u32       CRC-32C of the 4 length bytes followed by the payload
//            payload  [length]  one C2SP signed checkpoint note, exactly as signed
//
// The records are framed as segment records are (record_format.h). Their tree sizes strictly
// increase. Each append is one write followed by fdatasync, and the ledger appends a
// checkpoint here before it replaces DIR/checkpoint with it, so the history holds every
// checkpoint the checkpoint file ever held (a crash in between leaves the history one ahead).
//
// Recovery on open: every note must verify under the ledger's key, be newer than the one
// before, cover no more entries than the log holds, and have the root the log has at its
// size; anything else is kDataLoss naming the record and its offset, and nothing is cut.
// Then the bytes past the last good record, the remains of an append a crash interrupted,
// are cut and logged, if they are a torn write: shorter than a record header or than the
// length (1 .. kMaxNote) their header declares, or at most one record long and holding a run
// of 8 zero bytes (a part of the write that never reached the disk: no record holds one,
// since a note holds no zero byte and a record header at most 7 in a row). Any other bad
// record is kDataLoss.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/file_system.h"
#include "crypto/crypto.h"
#include "ledger/checkpoint.h"

namespace lethe::ledger {

class CheckpointHistory {
 public:
  static constexpr char kFileName[] = "checkpoint-history.log";
  static constexpr size_t kHeaderSize = 16;
  // Largest note kept: lethed's own notes are a few hundred bytes.
  static constexpr uint32_t kMaxNote = 64u << 10;

  struct Entry {
    uint64_t size = 0;
    std::string note;
  };
  // The remains of an interrupted append that Open cut.
  struct CutTail {
    uint64_t offset = 0;
    uint64_t bytes = 0;
  };

  // Opens DIR/checkpoint-history.log, creating it (empty) if absent, and checks every record
  // as described above against `key` (key name `origin`), a log of `log_size` entries and
  // its roots (`root_at(size)` for size <= log_size, whose error is returned as it is).
  // kDataLoss on any other failure, before the
  // file is changed. Every change to the file goes through `fs`.
  static absl::StatusOr<std::unique_ptr<CheckpointHistory>> Open(
      const std::string& dir, const std::string& origin, const crypto::Ed25519PublicKey& key,
      uint64_t log_size, const std::function<absl::StatusOr<std::string>(uint64_t size)>& root_at,
      FileSystem& fs = *FileSystem::Default());
  ~CheckpointHistory();
  CheckpointHistory(const CheckpointHistory&) = delete;
  CheckpointHistory& operator=(const CheckpointHistory&) = delete;

  // Appends `note`, the signed note of `cp`, and makes it durable. A checkpoint of the last
  // one's size and root is there already: nothing is written. kFailedPrecondition for an
  // older size, or the same size with another root; kInvalidArgument for a note that is empty
  // or larger than kMaxNote. If the write or fdatasync fails the file is cut back to where it
  // was (kUnavailable); if even that fails, every later append is refused.
  absl::Status Append(const Checkpoint& cp, std::string_view note);

  // At most `max` checkpoints of at least `from_size` entries, oldest first, read from the
  // file (kDataLoss if a record no longer checks).
  absl::StatusOr<std::vector<Entry>> List(uint64_t from_size, size_t max) const;

  uint64_t count() const;
  // Size of the newest checkpoint held; 0 when empty.
  uint64_t last_size() const;
  const std::optional<CutTail>& torn_tail_cut() const { return cut_; }

 private:
  CheckpointHistory(std::string path, std::unique_ptr<File> file)
      : path_(std::move(path)), file_(std::move(file)) {}

  // Every kIndexEvery-th record's size and offset: a reader starts from the nearest one at
  // or below the size it wants, so memory stays small for a history of millions.
  static constexpr uint64_t kIndexEvery = 64;
  struct IndexPoint {
    uint64_t size;
    uint64_t offset;
  };

  const std::string path_;
  const std::unique_ptr<File> file_;
  mutable std::mutex mu_;
  uint64_t end_ ABSL_GUARDED_BY(mu_) = kHeaderSize;  // where the next record goes
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_size_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_root_ ABSL_GUARDED_BY(mu_);
  std::vector<IndexPoint> index_ ABSL_GUARDED_BY(mu_);
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<CutTail> cut_;
};

}  // namespace lethe::ledger
