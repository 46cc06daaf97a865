// DigestTable: a map from 128-bit digests (RequestLifecycle::IdDigest) to 64-bit values, on
// disk in a ScratchFile (base/scratch_file.h) instead of in memory. lethed keeps in it what it
// must remember of every request that ever ended: that its id and its commands' ids are spent,
// and where its story is. It is rebuilt from the ledger at every start, like all of lethed's
// state, so it is never made durable.
//
// Layout: 2^depth pages of 4 KiB. A key lives in the page its keyed hash (SipHash-2-4 under a
// key drawn at creation, so that ids chosen to collide cannot pile into one page) selects by
// its top `depth` bits. A page holds a count and up to kSlotsPerPage (key, value) slots. When
// the table would be more than half full, or a page overflows, it is rebuilt into a file of
// more pages in one sequential pass: a page splits into the pages that extend its hash prefix.
//
// A lookup of a key that was never put seldom reads the file: an in-memory filter of every key
// put (a split block Bloom filter, as Apache Parquet specifies for its column indexes: a key
// sets one bit in each 32-bit word of one 32-byte block) answers "absent" for all but about 0.5%
// of them, at kFilterBitsPerKey bits for each key the file has room for. Replaying a ledger asks
// this of every request and command id it meets, and almost none has ended before.
//
// Memory stays bounded: the last keys put (at most kMaxPending) are held in memory and written
// in one pass over the pages they fall in. If the file cannot be written (a full disk) they
// stay held and the write is tried again once kMaxPending more are held, so a put is never
// lost; reads see them.
//
// Not thread safe: its owner serialises calls.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/scratch_file.h"

namespace lethe::controlplane {

class DigestTable {
 public:
  static constexpr size_t kPageBytes = 4096;
  static constexpr size_t kSlotBytes = 24;  // key (16), value (8)
  static constexpr size_t kHeaderBytes = 8;  // "LDT1", then the count of slots used
  static constexpr size_t kSlotsPerPage = (kPageBytes - kHeaderBytes) / kSlotBytes;
  static constexpr size_t kMaxPending = 4096;
  static constexpr size_t kFilterBitsPerKey = 12;

  // An empty table whose file lives (unlinked) in `dir`; `what` names it in messages.
  static absl::StatusOr<std::unique_ptr<DigestTable>> Create(const std::string& dir, std::string what);

  // Adds `key` with `value`, or replaces its value. Never fails (see above).
  void Put(absl::uint128 key, uint64_t value);
  // The value of `key`, or nullopt; kUnavailable if the file cannot be read, kDataLoss if a
  // page read back is not one this table wrote.
  absl::StatusOr<std::optional<uint64_t>> Get(absl::uint128 key) const;
  // Keys written to the file, and keys held in memory (some of which may only replace the value
  // of a written one).
  uint64_t stored() const { return stored_; }
  // Writes the held keys out now; they stay held if that fails, and the failure is returned.
  absl::Status Flush();
  // For tests and metrics: pages in the file, keys held in memory, pages Get has read, bytes
  // of the filter.
  uint64_t pages() const { return uint64_t{1} << depth_; }
  size_t held() const { return pending_.size(); }
  uint64_t page_reads() const { return page_reads_; }
  size_t filter_bytes() const { return filter_.size() * sizeof(Block); }

 private:
  DigestTable(std::unique_ptr<ScratchFile> file, std::string dir, std::string what);
  // A key's keyed hash (SipHash-2-4 with 128-bit output): the top bits of `page` pick its page,
  // `filter` its block and bits in the filter.
  struct Hashes {
    uint64_t page, filter;
  };
  Hashes Hash(absl::uint128 key) const;
  // The filter's blocks; a table whose file has room for `keys` keys, held ones included.
  using Block = std::array<uint32_t, 8>;
  static std::vector<Block> FilterFor(uint64_t keys);
  static void AddTo(std::vector<Block>& filter, uint64_t hash);
  bool MayHold(uint64_t hash) const;
  // The held keys with their hashes, in page-hash order.
  struct Held {
    Hashes hash;
    absl::uint128 key;
    uint64_t value;
  };
  const std::vector<Held>& HeldByHash();  // in held_
  // Writes pending_ into pages of the current file.
  absl::Status WriteInPlace();
  // Moves the table and pending_ into a new file of 2^depth pages (or more if a page
  // overflows there too).
  absl::Status Rebuild(unsigned depth);

  std::unique_ptr<ScratchFile> file_;
  const std::string dir_, what_;
  std::array<unsigned char, 16> hash_key_;
  unsigned depth_ = 0;
  uint64_t stored_ = 0;  // keys in the file
  size_t flush_at_ = kMaxPending;  // held keys that make Put flush; more after a failed flush
  absl::flat_hash_map<absl::uint128, uint64_t> pending_;
  std::vector<Held> held_;  // HeldByHash's, reused
  std::vector<Block> filter_;  // every key put, in the file or held
  mutable uint64_t page_reads_ = 0;
};

}  // namespace lethe::controlplane
