// What the ledger knows of each durable entry, its leaf hash and where its payload lies, kept
// in a scratch file instead of in memory, so that lethed's memory does not grow with the log.
//
// The file is a ScratchFile (base/scratch_file.h) in the ledger's directory: nothing else can
// open it, it disappears with the process, and it is rebuilt from the segments at every open.
// It is therefore never trusted: the Merkle tree checks every leaf hash read back against the nodes it keeps in
// memory (MerkleTree::Evict), and a wrong location reads bytes that do not hash to the leaf
// (Ledger::ReadEntry). Records are 48 bytes: leaf hash, segment, length, offset.
//
// The last records appended stay in a small buffer until it fills (kFlushBytes), so that a
// replay of millions of entries makes few system calls. If the file cannot be written (a
// full disk), they stay in the buffer and the write is tried again at the next append; they
// are never lost.
//
// Not thread safe: the ledger calls it under its lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/scratch_file.h"

namespace lethe::ledger {

class EntryIndex {
 public:
  struct Location {
    uint32_t segment = 0;  // index into the ledger's segment list
    uint32_t length = 0;   // of the payload
    uint64_t offset = 0;   // of the payload in the segment file
  };
  static constexpr size_t kRecordSize = 48;
  static constexpr size_t kFlushBytes = ScratchFile::kFlushBytes;

  // A new, empty index whose file lives (unlinked) in `dir`.
  static absl::StatusOr<std::unique_ptr<EntryIndex>> Create(const std::string& dir);
  EntryIndex(const EntryIndex&) = delete;
  EntryIndex& operator=(const EntryIndex&) = delete;

  // Adds entry size(): its 32-byte leaf hash and location. Never fails: see above.
  void Append(std::string_view leaf_hash, const Location& location);
  uint64_t size() const { return file_->size() / kRecordSize; }

  // Location of entry `seq`; kOutOfRange unless seq < size(), kUnavailable if the file
  // cannot be read.
  absl::StatusOr<Location> LocationOf(uint64_t seq) const;
  // Locations of entries [first, first + count), in one read.
  absl::StatusOr<std::vector<Location>> LocationsOf(uint64_t first, uint64_t count) const;
  // The leaf hashes of entries [first, first + count), 32 bytes each, into `out`.
  absl::Status ReadLeaves(uint64_t first, uint64_t count, std::string* out) const;

 private:
  explicit EntryIndex(std::unique_ptr<ScratchFile> file) : file_(std::move(file)) {}

  std::unique_ptr<ScratchFile> file_;
};

}  // namespace lethe::ledger
