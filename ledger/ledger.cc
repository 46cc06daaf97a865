// Ledger::Open and recovery (replaying the segments, checking the chain, the batches and the
// signed checkpoints, cutting what a crash left past the last complete batch), closing,
// checkpoint signing, and the readers of durable entries. The write path is group_commit.cc,
// the segment reader segment_reader.cc, the pre-zeroing thread prezeroer.cc.
#include "ledger/ledger.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/thread_name.h"
#include "ledger/prezeroer.h"
#include "ledger/replay_worker.h"
#include "ledger/record_format.h"
#include "ledger/segment_reader.h"
#include "spdlog/spdlog.h"

namespace lethe::ledger {
namespace fs = std::filesystem;

namespace {
// Entries are handed to the replay thread this many (whole batches) at a time, with at most
// kReplayPending waiting: a few MB of parsed entries, whatever the ledger's size.
constexpr size_t kReplayChunk = 256;
constexpr size_t kReplayPending = 8192;
}  // namespace

Ledger::Ledger(LedgerOptions options)
    : options_(std::move(options)),
      fs_(options_.file_system != nullptr ? *options_.file_system : *FileSystem::Default()),
      tree_(
          [this](uint64_t first, std::string* out) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            // Called by tree_'s readers, under mu_.
            return index_->ReadLeaves(first, MerkleTree::kTileLeaves, out);
          },
          /*cache_tiles=*/256,
          MerkleTree::UpperStore{
              [this](std::string_view nodes) ABSL_NO_THREAD_SAFETY_ANALYSIS { upper_nodes_->Append(nodes); },
              [this](uint64_t first, std::string* out) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                out->resize(MerkleTree::kTileLeaves * 32);
                return upper_nodes_->ReadAt(first * 32, out->size(), out->data());
              }}),
      prezeroer_(std::make_unique<Prezeroer>(options_.prezero_bytes, options_.max_segment_bytes)) {}

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const LedgerOptions& options,
                                                     const ReplayFn& replay) {
  if (options.signing_key == nullptr)
    return absl::InvalidArgumentError("ledger needs a signing key for checkpoints");
  if (!IsValidKeyName(options.origin))
    return absl::InvalidArgumentError(
        "ledger origin " + Quote(options.origin) +
        " is not a valid checkpoint key name: it must be UTF-8 without spaces or '+'");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return absl::UnavailableError("cannot create ledger directory " + options.dir);

  std::unique_ptr<Ledger> ledger(new Ledger(options));
  Ledger& l = *ledger;
  std::unique_lock<std::mutex> lock(l.mu_);
  LETHE_ASSIGN_OR_RETURN(l.index_, EntryIndex::Create(options.dir));
  LETHE_ASSIGN_OR_RETURN(l.upper_nodes_, ScratchFile::Create(options.dir, "the ledger's Merkle nodes in " + options.dir));

  // The stored checkpoint, if any, must be ours and must match the entries below it.
  std::optional<ledger::Checkpoint> stored_cp;
  const std::string cp_path = options.dir + "/" + kCheckpointFile;
  if (fs::exists(cp_path)) {
    LETHE_ASSIGN_OR_RETURN(std::string note, lethe::ReadFile(cp_path));
    auto cp = VerifyCheckpoint(note, options.origin, options.signing_key->public_key());
    if (!cp.ok())
      return absl::DataLossError("stored checkpoint does not verify: " +
                                 std::string(cp.status().message()));
    stored_cp = *cp;
    std::lock_guard<std::mutex> cl(l.cp_note_mu_);
    l.checkpoint_ = note;
    l.checkpoint_size_ = cp->size;
    l.checkpoint_root_ = cp->root;
    l.has_checkpoint_ = true;
    l.checkpoint_signed_at_ = absl::Now();  // not stored; Open signs one covering the log below
  }

  // Entries join the log a whole batch at a time: those of a batch still open are held back
  // (not replayed, not in the tree) until its last entry is read. An incomplete batch at the
  // end was never acknowledged, and is cut.
  struct Held {
    uint64_t seq;
    uint32_t segment;
    uint64_t offset;  // of the record header
    uint32_t length;
    std::string leaf;
    std::string bytes;  // with a replay callback only
    v1::LedgerEntry entry;
  };
  std::vector<Held> held;
  BatchTracker batches;
  bool checkpoint_in_batch = false;
  std::string last_hash(32, '\0');    // of the entry before the one being checked
  std::string batch_hash(32, '\0');   // of the last entry of the last complete batch
  std::string current_segment;
  // The callback runs on a thread of its own (replay_worker.h), fed whole batches in chunks.
  std::optional<ReplayWorker> worker;
  if (replay) worker.emplace(replay, kReplayPending);
  std::vector<ReplayItem> chunk;
  auto scan = ScanSegments(options.dir, [&](const ScannedRecord& rec) -> absl::Status {
    Held h{rec.index, 0, rec.offset, static_cast<uint32_t>(rec.payload.size()), {}, {}, {}};
    uint32_t batch_remaining = 0;
    // Without a replay callback nobody needs the parsed entry: check the link alone.
    if (replay) {
      LETHE_RETURN_IF_ERROR(CheckChainLink(rec, last_hash, &h.entry, &h.leaf));
      batch_remaining = h.entry.batch_remaining();
      h.bytes.assign(rec.payload.data(), rec.payload.size());
    } else {
      LETHE_RETURN_IF_ERROR(CheckChainLinkFast(rec, last_hash, &h.leaf, &batch_remaining));
    }
    LETHE_RETURN_IF_ERROR(batches.Next(rec.index, batch_remaining, rec.segment, rec.segment_version));
    if (rec.segment != current_segment) {
      current_segment = rec.segment;
      l.segments_.push_back(options.dir + "/" + rec.segment);
    }
    h.segment = static_cast<uint32_t>(l.segments_.size() - 1);
    last_hash = h.leaf;
    held.push_back(std::move(h));
    if (batch_remaining > 0) return absl::OkStatus();
    if (stored_cp && stored_cp->size > held.front().seq && stored_cp->size <= rec.index)
      checkpoint_in_batch = true;
    for (Held& e : held) {
      l.tree_.Append(e.leaf);
      l.index_->Append(e.leaf, {e.segment, e.length, e.offset + format::kRecordHeaderSize});
      l.bytes_.fetch_add(format::kRecordHeaderSize + e.length, std::memory_order_relaxed);
      if (worker) chunk.push_back(ReplayItem{e.seq, std::move(e.bytes), std::move(e.entry)});
    }
    l.tree_.Evict(l.index_->size());
    batch_hash = last_hash;
    held.clear();
    if (chunk.size() >= kReplayChunk) {
      LETHE_RETURN_IF_ERROR(worker->Hand(std::move(chunk)));
      chunk.clear();
    }
    return absl::OkStatus();
  });
  if (worker) {
    // What the scan checked before it stopped is replayed too, and a refused entry comes
    // before anything the scan found after it: the callback's error is the one reported, as
    // the first fault in log order.
    absl::Status replayed = worker->Hand(std::move(chunk));
    replayed.Update(worker->Finish());
    if (!replayed.ok()) return replayed;
  }
  if (!scan.ok()) return scan.status();

  // Segments that exist but hold no complete record (a fresh or torn one) are still ours.
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> names, ListSegments(options.dir));
  if (!names.empty() && (l.segments_.empty() ||
                         l.segments_.back() != options.dir + "/" + names.back())) {
    l.segments_.push_back(options.dir + "/" + names.back());
  }

  // Check the signed checkpoint before cutting anything: if it covers entries that are not
  // on disk, or the entries do not hash to its root, the damage is not a crash artefact and
  // the files must stay as they are for inspection. A checkpoint is only ever signed where a
  // batch ends, so one that covers part of an incomplete batch is not one either.
  if (stored_cp) {
    if (stored_cp->size > l.tree_.size())
      return absl::DataLossError(absl::StrCat(
          "ledger corrupt: the signed checkpoint covers ", stored_cp->size, " entries but only ",
          l.tree_.size(), " complete ones are on disk",
          held.empty() ? "" : absl::StrCat(" (and ", held.size(), " of an incomplete batch)"),
          " (acknowledged entries lost)"));
    LETHE_ASSIGN_OR_RETURN(const std::string root, l.tree_.RootAt(stored_cp->size));
    if (root != stored_cp->root)
      return absl::DataLossError(absl::StrCat(
          "ledger corrupt: the entries do not hash to the root of the signed checkpoint at size ",
          stored_cp->size, " (the log was rewritten)"));
    if (checkpoint_in_batch)
      return absl::DataLossError(absl::StrCat(
          "ledger corrupt: the signed checkpoint at size ", stored_cp->size,
          " ends inside a batch, where lethed never signs one"));
  }

  // Every checkpoint signed before, from the history, is checked the same way (a log cut back
  // below one of them is DATA_LOSS), also before anything is cut. The history lacks the
  // stored checkpoint only if a lethed that kept none wrote it: it is added.
  {
    auto history = CheckpointHistory::Open(options.dir, options.origin,
                                           options.signing_key->public_key(), l.tree_.size(),
                                           [&l](uint64_t size) ABSL_NO_THREAD_SAFETY_ANALYSIS { return l.tree_.RootAt(size); },
                                           l.fs_);
    if (!history.ok()) return history.status();
    l.history_ = std::move(*history);
    if (stored_cp && l.history_->last_size() < stored_cp->size) {
      std::lock_guard<std::mutex> cl(l.cp_note_mu_);
      LETHE_RETURN_IF_ERROR(l.history_->Append(*stored_cp, l.checkpoint_));
    }
  }

  std::optional<TornTail> cut = scan->torn_tail;
  if (!held.empty()) {
    // The incomplete batch's records come first in what is cut; they are all in the last
    // segment (BatchTracker refuses a batch that spans two), which must be the last one.
    const Held& first = held.front();
    const std::string& path = l.segments_[first.segment];
    LETHE_RETURN_IF_ERROR(batches.CheckEnd(names.back()));
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Errno("cannot stat segment", path);
    cut = TornTail{fs::path(path).filename().string(), first.offset,
                   static_cast<uint64_t>(st.st_size) - first.offset, false, held.size()};
  }
  if (cut) {
    const TornTail& t = *cut;
    const std::string path = options.dir + "/" + t.segment;
    if (t.offset == 0) {
      LETHE_RETURN_IF_ERROR(l.fs_.Remove(path));
      l.segments_.pop_back();
    } else {
      LETHE_RETURN_IF_ERROR(l.fs_.TruncateFile(path, t.offset));
    }
    LETHE_RETURN_IF_ERROR(l.fs_.SyncDir(options.dir));
    if (t.zeros) {
      spdlog::info("ledger: removed {} pre-zeroed bytes at the end of {} (offset {})", t.bytes,
                   t.segment, t.offset);
    } else if (t.batch_entries > 0) {
      spdlog::warn("ledger: cut an incomplete batch off {} at offset {} ({} entries from entry "
                   "{}, {} bytes in all of an unacknowledged write); the log now holds {} entries",
                   t.segment, t.offset, t.batch_entries, held.front().seq, t.bytes,
                   l.tree_.size());
    } else {
      spdlog::warn("ledger: cut torn tail of {} at offset {} ({} bytes of an unacknowledged "
                   "write); the log now holds {} entries",
                   t.segment, t.offset, t.bytes, l.tree_.size());
    }
    l.torn_tail_cut_ = t;
  }
  last_hash = batch_hash;
  // A ledger written before batches were marked goes on in a new segment of the current
  // version, so that a reader that does not know the marks refuses the entries that have them.
  while (!l.segments_.empty()) {
    LETHE_ASSIGN_OR_RETURN(uint32_t version, SegmentVersion(l.segments_.back()));
    if (version >= format::kVersion) break;
    bool holds_entries = false;
    if (l.index_->size() > 0) {
      LETHE_ASSIGN_OR_RETURN(const EntryIndex::Location last, l.index_->LocationOf(l.index_->size() - 1));
      holds_entries = last.segment + 1 == l.segments_.size();
    }
    if (!holds_entries) {
      // It holds no entry: start it again in the current version.
      const std::string path = l.segments_.back();
      LETHE_RETURN_IF_ERROR(l.fs_.Remove(path));
      LETHE_RETURN_IF_ERROR(l.fs_.SyncDir(options.dir));
      l.segments_.pop_back();
      continue;
    }
    LETHE_RETURN_IF_ERROR(l.StartSegment(l.tree_.size()));
    l.file_.reset();  // OpenSegmentForAppend opens it again
    break;
  }

  // Entry times never go back, even if the clock does: the next entry is no earlier than the
  // last one in the log.
  int64_t last_ms = 0;
  if (l.index_->size() > 0) {
    LETHE_ASSIGN_OR_RETURN(const EntryIndex::Location loc, l.index_->LocationOf(l.index_->size() - 1));
    const std::string& path = l.segments_[loc.segment];
    std::string bytes(loc.length, '\0');
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open segment", path);
    const ssize_t n = ::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(loc.offset));
    ::close(fd);
    v1::LedgerEntry last;
    if (n != static_cast<ssize_t>(bytes.size()) || !last.ParseFromString(bytes))
      return Errno("cannot read the last entry of", path);
    last_ms = last.time_unix_ms();
  }
  LETHE_RETURN_IF_ERROR(l.OpenSegmentForAppend());
  {
    std::lock_guard<std::mutex> w(l.write_mu_);
    l.write_last_ms_ = last_ms;
    l.write_next_seq_ = l.tree_.size();
    std::memcpy(l.write_prev_hash_.data(), last_hash.data(), l.write_prev_hash_.size());
    l.write_segment_ = static_cast<uint32_t>(l.segments_.size() - 1);
  }
  l.durable_end_ = l.tree_.size();
  const bool empty = l.tree_.size() == 0;
  lock.unlock();
  l.syncer_ = NamedThread("ledger-sync", [&l] { l.SyncLoop(); });
  l.prezeroer_->Start();
  if (empty) {
    // Entry 0 names the log and the key that signs its checkpoints and commands.
    v1::LedgerEntry created;
    created.mutable_log_created()->set_origin(options.origin);
    created.mutable_log_created()->set_control_plane_public_key(
        options.signing_key->public_key().raw());
    LETHE_ASSIGN_OR_RETURN(auto appended, l.Append({created}, absl::Now()));
    if (replay) LETHE_RETURN_IF_ERROR(replay(0, appended[0].bytes, appended[0].entry));
  }
  LETHE_RETURN_IF_ERROR(l.SignCheckpointNow());
  if (options.checkpoint_interval > absl::ZeroDuration())
    l.checkpointer_ = NamedThread("ledger-ckpt", [&l] { l.CheckpointLoop(); });
  return ledger;
}

Ledger::~Ledger() {
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> w(write_mu_);
      stop_sync_ = true;  // the sync thread drains what is pending first
    }
    written_cv_.notify_all();
    syncer_.join();
  }
  prezeroer_.reset();  // stops the pre-zeroing thread and waits for it
  // A clean close leaves no pre-zeroed space behind (an unclean one is tidied by Open).
  if (file_ != nullptr && !sync_failed_.load()) {
    if (absl::Status s = file_->Truncate(write_offset_); !s.ok())
      spdlog::warn("ledger: cannot remove pre-zeroed space: {}", s.ToString());
  }
  for (int fd : read_fds_)
    if (fd >= 0) ::close(fd);
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
  // A clean close leaves a checkpoint that covers every entry.
  if (absl::Status s = SignCheckpointNow(); !s.ok())
    spdlog::error("ledger: cannot write the closing checkpoint: {}", s.ToString());
}

void Ledger::CheckpointLoop() {
  std::unique_lock<std::mutex> l(stop_mu_);
  while (!stop_) {
    stop_cv_.wait_for(l, absl::ToChronoMilliseconds(options_.checkpoint_interval));
    if (stop_) break;
    l.unlock();
    if (absl::Status s = SignCheckpointNow(); !s.ok())
      spdlog::error("ledger: cannot write checkpoint: {}", s.ToString());
    l.lock();
  }
}

absl::Status Ledger::OpenSegmentForAppend() {
  if (segments_.empty()) {
    LETHE_RETURN_IF_ERROR(StartSegment(tree_.size()));
  } else {
    LETHE_ASSIGN_OR_RETURN(file_, fs_.Open(segments_.back(), FileSystem::OpenMode::kWrite));
    LETHE_ASSIGN_OR_RETURN(write_offset_, file_->Size());
  }
  prezeroer_->ZeroFrom(file_.get(), write_offset_);
  return absl::OkStatus();
}

absl::Status Ledger::SignCheckpointNow() {
  std::lock_guard<std::mutex> signing(cp_mu_);
  ledger::Checkpoint cp;
  cp.origin = options_.origin;
  {
    std::lock_guard<std::mutex> l(mu_);
    cp.size = index_->size();  // durable entries only: the tree may run ahead
    LETHE_ASSIGN_OR_RETURN(cp.root, tree_.RootAt(cp.size));
  }
  uint64_t prev_size = 0;
  std::string prev_root;
  bool has_prev = false;
  {
    std::lock_guard<std::mutex> l(cp_note_mu_);
    if (has_checkpoint_ && cp.size == checkpoint_size_) return absl::OkStatus();
    has_prev = has_checkpoint_;
    prev_size = checkpoint_size_;
    prev_root = checkpoint_root_;
  }
  // Never sign two checkpoints that are inconsistent: prove the new tree extends the one
  // last signed before signing it.
  if (has_prev && prev_size > 0) {
    if (cp.size < prev_size)
      return absl::InternalError(absl::StrCat("refusing to sign a checkpoint of size ", cp.size,
                                              " after one of size ", prev_size));
    std::vector<std::string> proof;
    {
      std::lock_guard<std::mutex> l(mu_);
      LETHE_ASSIGN_OR_RETURN(proof, tree_.ConsistencyProof(prev_size, cp.size));
    }
    if (absl::Status s = VerifyConsistency(prev_size, cp.size, proof, prev_root, cp.root); !s.ok())
      return absl::InternalError("refusing to sign an inconsistent checkpoint: " + s.ToString());
  }
  std::string note = SignCheckpoint(cp, *options_.signing_key);
  // The history first: it must hold every checkpoint the file ever holds. A crash between the
  // two leaves it one ahead; signing that size again appends nothing.
  if (history_ == nullptr) return absl::FailedPreconditionError("the ledger did not open");
  LETHE_RETURN_IF_ERROR(history_->Append(cp, note));
  LETHE_RETURN_IF_ERROR(WriteFileAtomic(fs_, options_.dir + "/" + kCheckpointFile, note, 0600));
  std::lock_guard<std::mutex> l(cp_note_mu_);
  checkpoint_ = std::move(note);
  checkpoint_size_ = cp.size;
  checkpoint_root_ = cp.root;
  checkpoint_signed_at_ = absl::Now();
  has_checkpoint_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> Ledger::Checkpoint() {
  LETHE_RETURN_IF_ERROR(SignCheckpointNow());
  return LatestCheckpoint();
}

uint64_t Ledger::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_->size();
}

uint64_t Ledger::tree_nodes_held() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tree_.NodesHeld();
}

absl::StatusOr<std::string> Ledger::Root() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tree_.RootAt(index_->size());
}

absl::StatusOr<std::string> Ledger::RootAt(uint64_t size) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (size > index_->size())
    return absl::OutOfRangeError(absl::StrCat("size ", size, " is beyond the log size ", index_->size()));
  return tree_.RootAt(size);
}

absl::StatusOr<std::vector<std::string>> Ledger::InclusionProof(uint64_t index, uint64_t size) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (index < size && size > index_->size())
    return absl::OutOfRangeError(absl::StrCat("inclusion proof: tree size ", size,
                                              " is beyond the log size ", index_->size()));
  return tree_.InclusionProof(index, size);
}

absl::StatusOr<std::vector<std::string>> Ledger::ConsistencyProof(uint64_t size1,
                                                                  uint64_t size2) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (size1 != 0 && size1 <= size2 && size2 > index_->size())
    return absl::OutOfRangeError(absl::StrCat("consistency proof: size2 ", size2,
                                              " is beyond the log size ", index_->size()));
  return tree_.ConsistencyProof(size1, size2);
}

std::string Ledger::LatestCheckpoint() const {
  std::lock_guard<std::mutex> lock(cp_note_mu_);
  return checkpoint_;
}

absl::StatusOr<std::string> Ledger::ReadEntry(uint64_t seq) const {
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> one, ReadEntries(absl::MakeConstSpan(&seq, 1)));
  return std::move(one.front());
}

absl::StatusOr<std::vector<std::string>> Ledger::ReadEntries(absl::Span<const uint64_t> seqs) const {
  struct Want {
    EntryIndex::Location loc;
    std::string leaf;
    int fd = -1;
    size_t path = 0;  // in paths
  };
  std::vector<Want> want(seqs.size());
  std::vector<std::string> paths;  // of the segments read (ascending with the entries), for messages
  for (size_t i = 1; i < seqs.size(); ++i)
    if (seqs[i] <= seqs[i - 1])
      return absl::InvalidArgumentError(absl::StrCat("ledger read: entries must ascend, and entry ", seqs[i],
                                                     " follows entry ", seqs[i - 1]));
  // Run by run of entries close together: their index records in one read, under the lock
  // (taken per run, so that a long read does not hold up the writer's durable appends).
  for (size_t i = 0; i < seqs.size();) {
    size_t j = i + 1;
    while (j < seqs.size() && seqs[j] - seqs[j - 1] <= kIndexGap) ++j;
    const uint64_t first = seqs[i];
    std::lock_guard<std::mutex> lock(mu_);
    if (const uint64_t size = index_->size(); seqs[j - 1] >= size)
      return absl::OutOfRangeError(absl::StrCat(
          "entry ", *std::lower_bound(seqs.begin() + i, seqs.begin() + j, size), " is beyond the log size ", size));
    LETHE_ASSIGN_OR_RETURN(const std::vector<EntryIndex::Location> locs,
                           index_->LocationsOf(first, seqs[j - 1] - first + 1));
    for (; i < j; ++i) {
      const EntryIndex::Location& loc = want[i].loc = locs[seqs[i] - first];
      if (loc.segment >= segments_.size())
        return absl::DataLossError(absl::StrCat("ledger corrupt: the index places entry ", seqs[i], " in segment ",
                                                loc.segment, " of ", segments_.size()));
      if (i == 0 || loc.segment != want[i - 1].loc.segment) paths.push_back(segments_[loc.segment]);
      want[i].path = paths.size() - 1;
      // One descriptor per segment, opened on first read and kept until the ledger closes
      // (segments are never removed while it is open), so that reading a request back costs
      // no open and close per entry.
      if (read_fds_.size() <= loc.segment) read_fds_.resize(loc.segment + 1, -1);
      if (read_fds_[loc.segment] < 0) {
        read_fds_[loc.segment] = ::open(paths.back().c_str(), O_RDONLY | O_CLOEXEC);
        if (read_fds_[loc.segment] < 0) return Errno("cannot open segment", paths.back());
      }
      want[i].fd = read_fds_[loc.segment];
      // Checked against the tree's nodes in memory if it is read back.
      LETHE_ASSIGN_OR_RETURN(want[i].leaf, tree_.Leaf(seqs[i]));
    }
  }
  std::vector<std::string> out(seqs.size());
  std::string span;
  for (size_t i = 0; i < seqs.size();) {
    // Entries whose bytes lie close together in one segment, in one read.
    const uint64_t start = want[i].loc.offset;
    uint64_t end = start + want[i].loc.length;
    size_t j = i + 1;
    for (; j < seqs.size(); ++j) {
      const EntryIndex::Location& next = want[j].loc;
      if (next.segment != want[i].loc.segment || next.offset < end || next.offset - end > kReadGap ||
          next.offset + next.length - start > kMaxRead)
        break;
      end = next.offset + next.length;
    }
    span.resize(end - start);
    const ssize_t n = ::pread(want[i].fd, span.data(), span.size(), static_cast<off_t>(start));
    if (n != static_cast<ssize_t>(span.size())) return Errno("cannot read segment", paths[want[i].path]);
    for (; i < j; ++i) {
      out[i] = span.substr(want[i].loc.offset - start, want[i].loc.length);
      // The bytes the tree holds the hash of, or the file changed under the log.
      if (LeafHash(out[i]) != want[i].leaf)
        return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", seqs[i], " in ", paths[want[i].path],
                                                " no longer hashes to its leaf in the Merkle tree"));
    }
  }
  return out;
}

CheckpointLag Ledger::checkpoint_lag(absl::Time now) const {
  const uint64_t durable = durable_end_.load();
  std::lock_guard<std::mutex> l(cp_note_mu_);
  CheckpointLag lag;
  if (!has_checkpoint_) {
    lag.uncovered = durable;
    return lag;
  }
  lag.uncovered = durable > checkpoint_size_ ? durable - checkpoint_size_ : 0;
  if (lag.uncovered > 0) lag.age = std::max(absl::ZeroDuration(), now - checkpoint_signed_at_);
  return lag;
}

}  // namespace lethe::ledger
