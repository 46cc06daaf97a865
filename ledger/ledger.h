// The append-only ledger: hash-chained entries in segment files (format: record_format.h),
// also the leaves of an RFC 9162 Merkle tree, with signed C2SP checkpoints.
//
// Thread safety: all methods are safe to call concurrently. Concurrent appends are group
// committed: each Append frames its records into one queue buffer and adds their leaves to
// the tree (in log order, under a short lock) and waits; one sync thread writes everything
// queued with one pwrite, fdatasyncs, and makes it visible, so every append queued while a
// sync runs shares the next one. Each Append returns only after its own entries are
// durable, and readers (size, roots, proofs, checkpoints, ReadEntry) see durable entries
// only. A second thread keeps pre-zeroed space ahead of the writer (prezero_bytes).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/file_system.h"
#include "crypto/crypto.h"
#include "ledger/checkpoint.h"
#include "ledger/checkpoint_history.h"
#include "ledger/entry_index.h"
#include "ledger/merkle.h"
#include "lethe/v1/ledger.pb.h"

namespace lethe::ledger {

class Prezeroer;  // internal: prezeroer.h

// One record as found on disk.
struct ScannedRecord {
  uint64_t index = 0;         // position in the log (expected seq)
  std::string segment;        // file name
  uint64_t offset = 0;        // byte offset of the record header in the segment
  std::string_view payload;   // valid during the callback only
  uint32_t segment_version = 0;  // format version in the segment's header
};

// What follows the last whole record of the last segment.
// Ledger::checkpoint_lag: durable entries the latest checkpoint does not cover, and, while
// there are any, how long ago that checkpoint was signed (zero when it covers the whole log).
struct CheckpointLag {
  uint64_t uncovered = 0;
  absl::Duration age = absl::ZeroDuration();
};

struct TornTail {
  std::string segment;
  uint64_t offset = 0;  // where the records end (an incomplete or torn record starts here)
  uint64_t bytes = 0;   // how many bytes follow
  // All of them zero: space the writer had pre-zeroed (or a crash before data reached the
  // disk), no partial record. Otherwise part of an unacknowledged write.
  bool zeros = false;
  // Whole records of an incomplete batch at the end of the log (their entries are not in the
  // log): the tail starts with them. Set by Open and by verifiers, not by ScanSegments.
  uint64_t batch_entries = 0;
};

struct ScanResult {
  uint64_t records = 0;
  std::optional<TornTail> torn_tail;
  uint32_t last_version = 0;  // format version of the last segment (0: no readable header)
  std::string last_segment;   // name of the last segment file ("" when there is none)
};

// Checks the batch marks (LedgerEntry.batch_remaining) of consecutive entries: an entry after
// one with n > 0 must have n - 1, a batch must not span two segments, and an entry in a
// version 1 segment (written before batches were marked) must have none. complete() is the
// number of entries up to the end of the last complete batch: a log may end there only.
class BatchTracker {
 public:
  // The mark of entry `seq` (the next one), found in `segment` of format `version` (empty
  // and 0 when the caller reads entries without segments, e.g. from an export).
  absl::Status Next(uint64_t seq, uint32_t batch_remaining, std::string_view segment = {},
                    uint32_t version = 0);
  uint64_t complete() const { return complete_; }
  bool in_batch() const { return remaining_ > 0; }
  // At the end of the log, whose last segment file is `last_segment`: a batch left open in an
  // earlier (sealed) segment is corruption, not an unacknowledged write.
  absl::Status CheckEnd(std::string_view last_segment) const;

 private:
  uint64_t complete_ = 0;
  uint32_t remaining_ = 0;
  std::string segment_;  // of the open batch's first entry
};

// Reads every record of the ledger in `dir`, in order, checking framing and CRCs (not the
// chain: that is the caller's). A torn tail of the last segment is reported, not an error;
// any other damage is kDataLoss naming segment and offset. Read only.
absl::StatusOr<ScanResult> ScanSegments(
    const std::string& dir, const std::function<absl::Status(const ScannedRecord&)>& fn);

// Files in a ledger directory that lethed does not write there (FORMAT.md §5.1): anything but
// segments, "checkpoint", "checkpoint-history.log" and the temporary file of the atomic
// replacement of "checkpoint", by name, sorted. Segment-like names that are not valid fail like ScanSegments.
absl::StatusOr<std::vector<std::string>> StrayLedgerFiles(const std::string& dir);

// Checks one payload's place in the chain and returns its parsed entry and leaf hash.
// kDataLoss naming the entry when it does not parse, has the wrong seq or breaks the chain.
absl::Status CheckChainLink(const ScannedRecord& rec, std::string_view prev_hash,
                            v1::LedgerEntry* entry, std::string* leaf_hash);
// The same check without parsing the whole entry: it decodes only seq, prev_hash and
// batch_remaining (the last of each on the wire, as the protobuf parser takes them) and that
// a body is present, whose bytes it skips. For verifiers that need no body.
absl::Status CheckChainLinkFast(const ScannedRecord& rec, std::string_view prev_hash,
                                std::string* leaf_hash, uint32_t* batch_remaining);

struct LedgerOptions {
  std::string dir;                       // created if absent
  uint64_t max_segment_bytes = 64u << 20;
  std::string origin = kDefaultOrigin;   // checkpoint origin and note key name
  const crypto::Ed25519PrivateKey* signing_key = nullptr;  // signs checkpoints; required
  // A checkpoint is signed once this many entries are not yet covered by one...
  uint64_t checkpoint_every = 4096;
  // ...or when entries have waited this long (zero: no timer), on demand (Checkpoint()),
  // and when the ledger is closed.
  absl::Duration checkpoint_interval = absl::Seconds(1);
  // Largest run of zero bytes written (and made durable) ahead of the writer in the last
  // segment, so that the fdatasync acknowledging a batch overwrites allocated blocks and
  // need not update the file's size and block map: on ext4 that halves its latency. Runs
  // start at 64 KiB and double while the log keeps growing. 0 turns pre-zeroing off.
  uint64_t prezero_bytes = 8u << 20;
  // Every change to the ledger's files goes through it (file_system.h); nullptr: the real
  // one. Tests put a fault-injecting one here.
  FileSystem* file_system = nullptr;
  // Called once, on the ledger's writer thread, when a write or fdatasync fails: from then on
  // the ledger refuses appends (kUnavailable), since only a new Open re-reads the files and
  // cuts what of the failed batch reached them. Its owner should restart (lethed exits).
  std::function<void(const absl::Status&)> on_write_failure;
};

struct AppendedEntry {
  uint64_t seq = 0;
  std::string bytes;       // exact stored payload
  v1::LedgerEntry entry;   // as stored (seq, time, prev_hash filled in)
};

class Ledger {
 public:
  // Called for every stored entry during Open, in order, after its chain link is checked.
  using ReplayFn = std::function<absl::Status(uint64_t seq, std::string_view bytes,
                                              const v1::LedgerEntry& entry)>;

  // Opens (or creates) the ledger: replays every entry, checks the chain, cuts and logs a
  // torn tail, and checks that the stored checkpoint is signed by the key and matches the
  // tree. An empty ledger gets entry 0, LogCreated, naming the origin and the public key.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const LedgerOptions& options,
                                                      const ReplayFn& replay);
  ~Ledger();

  // Fills in seq, time (`now`, or the last entry's time if the clock went back), prev_hash
  // and batch_remaining of each entry (only their bodies and actors are read), appends
  // them contiguously, and returns them as stored once they are durable. On failure nothing
  // of this call is acknowledged and the files are as before.
  absl::StatusOr<std::vector<AppendedEntry>> Append(std::vector<v1::LedgerEntry> entries,
                                                    absl::Time now);

  // Append in two steps, for callers that order their own state by the log but must not
  // hold their lock through an fdatasync: Enqueue takes the next positions in the log (in
  // call order), queues the entries for the sync thread and returns them as they will be
  // stored, with the ticket to wait on; WaitDurable(ticket) returns once they are durable
  // (kUnavailable if they never will be). Until then they are not acknowledged, and the
  // caller must not let anyone outside the process see anything that depends on them.
  struct Ticket {
    uint64_t end = 0;    // entries below this index
    uint64_t batch = 0;  // the sync batch that covers them
  };
  absl::StatusOr<std::vector<AppendedEntry>> Enqueue(std::vector<v1::LedgerEntry> entries,
                                                     absl::Time now, Ticket* ticket);
  absl::Status WaitDurable(const Ticket& ticket) const;
  // The ticket of everything enqueued so far: WaitDurable(Tail()) is a barrier.
  Ticket Tail() const;

  // Signs a checkpoint for the current size now (unless the latest already covers it) and
  // returns the latest checkpoint note.
  absl::StatusOr<std::string> Checkpoint();

  uint64_t size() const;
  // Root of the durable entries. Like every reader of the tree and ReadEntry, it may read
  // back part of the tree (merkle.h, entry_index.h): kDataLoss if that no longer checks.
  absl::StatusOr<std::string> Root() const;
  // Root of the first `size` entries; kOutOfRange beyond size().
  absl::StatusOr<std::string> RootAt(uint64_t size) const;
  // RFC 9162 proofs over the entries (see MerkleTree for the argument rules).
  absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size) const;
  absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t size1, uint64_t size2) const;
  // Latest signed checkpoint note (it may lag the log by up to checkpoint_every entries or
  // checkpoint_interval).
  std::string LatestCheckpoint() const;
  // Every checkpoint signed, oldest first (DIR/checkpoint-history.log, checkpoint_history.h):
  // it holds the latest one too. Checked against the entries at open.
  const CheckpointHistory& checkpoint_history() const { return *history_; }
  // Exact bytes of entry `seq`; kOutOfRange when seq >= size(), kDataLoss when the bytes on
  // disk no longer hash to the entry's leaf. Each segment is read through a descriptor kept
  // open until the ledger closes: a file renamed over a segment meanwhile is not read.
  absl::StatusOr<std::string> ReadEntry(uint64_t seq) const;
  // Exact bytes of entries `seqs` (strictly ascending), each checked as ReadEntry checks it.
  // Neighbours are read together: the index records of entries at most kIndexGap apart in one
  // read, and entries whose bytes lie at most kReadGap apart in a segment in one pread of up
  // to kMaxRead bytes. What a page of ended requests reads back.
  static constexpr uint64_t kIndexGap = 64;
  static constexpr uint64_t kReadGap = 4096;
  static constexpr uint64_t kMaxRead = 1 << 20;
  absl::StatusOr<std::vector<std::string>> ReadEntries(absl::Span<const uint64_t> seqs) const;
  const std::string& origin() const { return options_.origin; }
  // Commits (fdatasync calls) and entries written since open.
  uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }
  uint64_t entries_written() const { return entries_written_.load(std::memory_order_relaxed); }
  // Bytes of the durable entries' records (framing and payload) across every segment: what
  // the log holds, without the pre-zeroed space ahead of the writer.
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // How far the latest signed checkpoint lags the durable log (checkpoint_every and
  // checkpoint_interval bound it while the ledger is healthy).
  CheckpointLag checkpoint_lag(absl::Time now) const;
  const std::optional<TornTail>& torn_tail_cut() const { return torn_tail_cut_; }
  // Hashes of the Merkle tree held in memory (MerkleTree::NodesHeld): about 2 per
  // MerkleTree::kTileLeaves durable entries, plus those of entries not yet durable.
  uint64_t tree_nodes_held() const;
  // Entries taken in by Append but not durable: waiting for their sync, or never to be
  // (after a failed write, until the ledger is reopened).
  uint64_t pending() const;

  static constexpr char kCheckpointFile[] = "checkpoint";

 private:
  explicit Ledger(LedgerOptions options);
  absl::Status OpenSegmentForAppend() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StartSegment(uint64_t first_seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The sync thread: writes and fdatasyncs what was queued, then publishes it in order.
  void SyncLoop();
  // Rolls to a new segment starting at first_seq, cutting the old one's zero tail. Sync thread.
  absl::Status RollSegment(uint64_t first_seq);
  // Signs and stores a checkpoint for the current size if it is newer than the latest.
  absl::Status SignCheckpointNow();
  void CheckpointLoop();

  const LedgerOptions options_;
  FileSystem& fs_;
  mutable std::mutex mu_;
  std::vector<std::string> segments_ ABSL_GUARDED_BY(mu_);  // full paths
  // The durable entries' leaf hashes and locations, in a scratch file (entry_index.h): its
  // size() is the number of durable entries. The tree keeps its lower levels for the entries
  // not yet durable, and for the last incomplete tile, only; it reads the rest back from here.
  std::unique_ptr<EntryIndex> index_ ABSL_GUARDED_BY(mu_);
  MerkleTree tree_ ABSL_GUARDED_BY(mu_);
  // The Merkle tree's level-6 nodes of the groups of 4,096 entries it evicted (MerkleTree::UpperStore).
  std::unique_ptr<ScratchFile> upper_nodes_ ABSL_GUARDED_BY(mu_);
  // ReadEntry's read-only descriptor of each segment (-1 until first read), closed at close.
  mutable std::vector<int> read_fds_ ABSL_GUARDED_BY(mu_);

  // Write side, serialised by write_mu_ (taken before mu_ when both are needed). Append
  // frames its records straight into queued_ and their leaves into tree_, which thus runs
  // ahead of what is durable; readers see the first durable_end_ entries only.
  mutable std::mutex write_mu_;
  bool write_failed_ ABSL_GUARDED_BY(write_mu_) = false;  // a write or sync could not be undone
  uint64_t write_next_seq_ ABSL_GUARDED_BY(write_mu_) = 0;
  int64_t write_last_ms_ ABSL_GUARDED_BY(write_mu_) = 0;  // time of the last entry appended
  std::array<char, 32> write_prev_hash_ ABSL_GUARDED_BY(write_mu_) = {};
  std::string queued_ ABSL_GUARDED_BY(write_mu_);              // framed records, in order
  std::vector<uint32_t> queued_lengths_ ABSL_GUARDED_BY(write_mu_);  // their payload lengths
  std::string queued_leaves_ ABSL_GUARDED_BY(write_mu_);  // their leaf hashes, 32 bytes each
  // The file being appended to: touched by the sync thread only (and Open, StartSegment).
  std::unique_ptr<File> file_;
  uint32_t write_segment_ = 0;                 // its index in segments_
  uint64_t write_offset_ = 0;
  std::vector<std::unique_ptr<File>> retired_files_;  // earlier segments, closed at shutdown
  std::condition_variable written_cv_;         // queued_ grew, or stopping
  bool stop_sync_ ABSL_GUARDED_BY(write_mu_) = false;
  std::thread syncer_;
  // Published by the sync thread: entries below durable_end_ are durable and visible.
  std::atomic<uint64_t> durable_end_{0};
  std::atomic<uint64_t> bytes_{0};  // bytes()
  // Batches the sync thread has taken from queued_; an append joins batch number
  // batches_taken_ (the next one taken).
  uint64_t batches_taken_ ABSL_GUARDED_BY(write_mu_) = 0;
  // Bumped (and notified) when a batch is durable: word b % kSyncWords for batch b, so that
  // a sync wakes only the appenders of its own batch, not those already queued for the next
  // ones (which would go back to sleep: at 64 appenders that thundering herd cost a fifth of
  // the throughput). 32 bits: libstdc++ waits on those with a plain futex; wrap-around is
  // harmless, waiters only compare for a change.
  static constexpr int kSyncWords = 4;
  std::atomic<uint32_t> sync_generation_[kSyncWords] = {0, 0, 0, 0};
  std::atomic<bool> sync_failed_{false};

  // Pre-zeroing (options_.prezero_bytes): a thread keeps durable zeros ahead of file_, the
  // last segment, which the sync thread writes batches over (prezeroer.h).
  std::unique_ptr<Prezeroer> prezeroer_;

  std::mutex cp_mu_;  // serialises signing; never held while waiting for mu_ to be released
  mutable std::mutex cp_note_mu_;
  std::string checkpoint_ ABSL_GUARDED_BY(cp_note_mu_);
  uint64_t checkpoint_size_ ABSL_GUARDED_BY(cp_note_mu_) = 0;
  std::string checkpoint_root_ ABSL_GUARDED_BY(cp_note_mu_);
  bool has_checkpoint_ ABSL_GUARDED_BY(cp_note_mu_) = false;
  absl::Time checkpoint_signed_at_ ABSL_GUARDED_BY(cp_note_mu_);
  // Set by Open before anything is signed; SignCheckpointNow appends to it before it writes
  // the checkpoint file.
  std::unique_ptr<CheckpointHistory> history_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread checkpointer_;
  std::optional<TornTail> torn_tail_cut_;
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> entries_written_{0};
};

}  // namespace lethe::ledger
