// The ledger's write path, group commit: Append frames its entries into the queue and waits;
// the sync thread (SyncLoop) writes everything queued with one write, fdatasyncs it, publishes
// it to readers in order and wakes the appenders of that batch. Also the segment files it
// starts and seals as the log grows. Open, recovery and the readers are in ledger.cc.
#include <algorithm>
#include <array>
#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "ledger/ledger.h"
#include "ledger/prezeroer.h"
#include "ledger/record_format.h"
#include "spdlog/spdlog.h"

namespace lethe::ledger {

absl::Status Ledger::RollSegment(uint64_t first_seq) {
  prezeroer_->Detach();
  // A sealed segment ends with its last record: cut the zeros past it, and make it durable.
  absl::Status sealed = file_->Truncate(write_offset_);
  if (sealed.ok()) sealed = file_->SyncData();
  if (!sealed.ok()) return absl::UnavailableError("cannot seal the ledger segment: " + sealed.ToString());
  {
    std::lock_guard<std::mutex> l(mu_);
    LETHE_RETURN_IF_ERROR(StartSegment(first_seq));
  }
  prezeroer_->ZeroFrom(file_.get(), write_offset_);
  return absl::OkStatus();
}

absl::Status Ledger::StartSegment(uint64_t first_seq) {
  const std::string path = options_.dir + "/" + format::SegmentFileName(first_seq);
  // 0600: the ledger holds tokens and sealed data; only lethed (and its backups) read it.
  LETHE_ASSIGN_OR_RETURN(std::unique_ptr<File> file,
                   fs_.Open(path, FileSystem::OpenMode::kCreateExclusive, 0600));
  std::string header = format::EncodeSegmentHeader(first_seq);
  absl::Status st = file->WriteAt(0, header);
  if (st.ok()) st = file->SyncData();
  if (st.ok()) st = fs_.SyncDir(options_.dir);
  if (!st.ok()) {
    file.reset();
    (void)fs_.Remove(path);
    return absl::UnavailableError("cannot start a segment: " + st.ToString());
  }
  if (file_ != nullptr) retired_files_.push_back(std::move(file_));  // the sync thread may still be syncing it
  file_ = std::move(file);
  write_offset_ = header.size();
  segments_.push_back(path);
  write_segment_ = static_cast<uint32_t>(segments_.size() - 1);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AppendedEntry>> Ledger::Append(std::vector<v1::LedgerEntry> entries,
                                                          absl::Time now) {
  Ticket ticket;
  LETHE_ASSIGN_OR_RETURN(std::vector<AppendedEntry> out, Enqueue(std::move(entries), now, &ticket));
  LETHE_RETURN_IF_ERROR(WaitDurable(ticket));
  return out;
}

absl::StatusOr<std::vector<AppendedEntry>> Ledger::Enqueue(std::vector<v1::LedgerEntry> entries,
                                                           absl::Time now, Ticket* ticket) {
  std::vector<AppendedEntry> out(entries.size());
  if (entries.empty()) {
    *ticket = Tail();
    return out;
  }
  absl::InlinedVector<std::array<char, 32>, 4> leaves(entries.size());
  uint64_t end = 0;
  uint64_t batch = 0;
  {
    std::lock_guard<std::mutex> w(write_mu_);
    batch = batches_taken_;
    if (write_failed_)
      return absl::UnavailableError("ledger is read-only after a failed write; restart lethed");
    // Everything that can fail comes before anything shared changes.
    const int64_t ms = std::max(absl::ToUnixMillis(now), write_last_ms_);
    const char* prev = write_prev_hash_.data();
    for (size_t i = 0; i < entries.size(); ++i) {
      v1::LedgerEntry& e = entries[i];
      AppendedEntry& a = out[i];
      a.seq = write_next_seq_ + i;
      e.set_seq(a.seq);
      e.set_time_unix_ms(ms);
      e.set_batch_remaining(static_cast<uint32_t>(entries.size() - 1 - i));
      e.set_prev_hash(prev, leaves[i].size());
      if (!e.SerializeToString(&a.bytes)) return absl::InternalError("cannot serialize ledger entry");
      if (a.bytes.size() > format::kMaxPayload)
        return absl::InvalidArgumentError("ledger entry larger than 16 MiB");
      LeafHashInto(a.bytes, leaves[i].data());
      prev = leaves[i].data();
    }
    for (size_t i = 0; i < out.size(); ++i) {
      format::AppendRecord(&queued_, out[i].bytes);
      queued_lengths_.push_back(static_cast<uint32_t>(out[i].bytes.size()));
      queued_leaves_.append(leaves[i].data(), leaves[i].size());
      out[i].entry = std::move(entries[i]);
    }
    {
      // The tree runs ahead of the durable entries; readers only see the durable ones.
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& leaf : leaves) tree_.Append(std::string_view(leaf.data(), leaf.size()));
    }
    write_next_seq_ += out.size();
    write_prev_hash_ = leaves.back();
    write_last_ms_ = ms;
    end = write_next_seq_;
  }
  written_cv_.notify_one();
  *ticket = Ticket{end, batch};
  return out;
}

absl::Status Ledger::WaitDurable(const Ticket& ticket) const {
  // Woken by the sync of the ticket's own batch (or, after a failure, by every word).
  const std::atomic<uint32_t>& word = sync_generation_[ticket.batch % kSyncWords];
  uint32_t gen = word.load();
  while (durable_end_.load() < ticket.end) {
    if (sync_failed_.load())
      return absl::UnavailableError("ledger: a write or fdatasync failed; the ledger is read-only until restarted");
    word.wait(gen);
    gen = word.load();
  }
  return absl::OkStatus();
}

Ledger::Ticket Ledger::Tail() const {
  std::lock_guard<std::mutex> w(write_mu_);
  // Entries still in queued_ go with the next batch taken; once the queue is empty the last
  // of them went with the batch taken last.
  const uint64_t batch =
      queued_lengths_.empty() && batches_taken_ > 0 ? batches_taken_ - 1 : batches_taken_;
  return Ticket{write_next_seq_, batch};
}

void Ledger::SyncLoop() {
  // A batch taken from the queue. Two of them, whose buffers are swapped with queued_ and
  // reused, so that none is reallocated.
  struct Batch {
    std::string bytes;
    std::vector<uint32_t> lengths;
    std::string leaves;  // 32 bytes per entry, for the entry index once durable
    uint64_t first_seq = 0;
    std::atomic<uint32_t>* word = nullptr;
  };
  Batch cur, next;
  auto take = [&](Batch& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    b.first_seq = write_next_seq_ - queued_lengths_.size();
    b.bytes.clear();
    b.lengths.clear();
    b.leaves.clear();
    b.bytes.swap(queued_);
    b.lengths.swap(queued_lengths_);
    b.leaves.swap(queued_leaves_);
    b.word = &sync_generation_[batches_taken_ % kSyncWords];
    ++batches_taken_;
  };
  auto wake = [](Batch& b) {
    b.word->fetch_add(1);
    b.word->notify_all();
  };

  std::unique_lock<std::mutex> w(write_mu_);
  bool have = false;  // cur holds a batch taken while the previous one was acknowledged
  while (true) {
    if (!have) {
      written_cv_.wait(w, [&] { return !queued_lengths_.empty() || stop_sync_; });
      if (queued_lengths_.empty()) break;  // stopping, and nothing left to make durable
      take(cur);
    }
    have = false;
    if (write_failed_) {
      // Queued before an earlier write or sync failed: these entries chain on entries that
      // may not be on disk, and the file offset was not advanced past them. Never write them;
      // their appenders see sync_failed_.
      wake(cur);
      continue;
    }
    w.unlock();

    const uint64_t bytes = cur.bytes.size();
    absl::Status st;
    // Entries do not span segments.
    if (write_offset_ > format::kSegmentHeaderSize && write_offset_ + bytes > options_.max_segment_bytes)
      st = RollSegment(cur.first_seq);
    const uint64_t start = write_offset_;
    if (st.ok()) {
      prezeroer_->ClaimForWrite(start + bytes);
      // One write for the whole batch.
      st = file_->WriteAt(start, cur.bytes);
      if (!st.ok()) st = absl::UnavailableError("cannot append to the ledger: " + st.ToString());
    }
    if (st.ok()) {
      st = file_->SyncData();
      if (!st.ok()) st = absl::UnavailableError("cannot fdatasync the ledger: " + st.ToString());
    }
    if (!st.ok()) {
      // The queued appends chain on these entries; after a failed fdatasync the kernel may also
      // have dropped dirty pages. Refuse further writes until a restart re-reads the files,
      // which cuts whatever of this batch reached them.
      spdlog::error("ledger: {}; the ledger is read-only until restarted", st.ToString());
      prezeroer_->Stop();
      if (absl::Status cut = file_->Truncate(start); !cut.ok())
        spdlog::error("ledger: cannot cut the failed batch off the segment ({}); the next start "
                      "finds it past the last acknowledged record and cuts it",
                      cut.ToString());
      w.lock();
      write_failed_ = true;
      sync_failed_ = true;
      for (auto& g : sync_generation_) {
        g.fetch_add(1);
        g.notify_all();
      }
      if (options_.on_write_failure) {
        w.unlock();
        options_.on_write_failure(st);
        w.lock();
      }
      continue;
    }
    write_offset_ = start + bytes;
    syncs_.fetch_add(1, std::memory_order_relaxed);

    // Take the next batch before acknowledging this one, while none of this batch's
    // appenders, once woken, competes for the lock.
    w.lock();
    if (!queued_lengths_.empty()) {
      take(next);
      have = true;
    }
    w.unlock();

    const uint64_t end = cur.first_seq + cur.lengths.size();
    uint64_t uncovered = 0;
    {
      std::lock_guard<std::mutex> l(mu_);
      uint64_t off = start;
      for (size_t i = 0; i < cur.lengths.size(); ++i) {
        const uint32_t len = cur.lengths[i];
        index_->Append(std::string_view(cur.leaves).substr(i * 32, 32),
                       {write_segment_, len, off + format::kRecordHeaderSize});
        off += format::kRecordHeaderSize + len;
      }
      bytes_.fetch_add(off - start, std::memory_order_relaxed);
      tree_.Evict(end);
      std::lock_guard<std::mutex> cl(cp_note_mu_);
      uncovered = end - (has_checkpoint_ ? checkpoint_size_ : 0);
    }
    entries_written_.fetch_add(cur.lengths.size(), std::memory_order_relaxed);
    // A due checkpoint is signed before the batch is acknowledged, so that it is there when
    // the Append that crossed the threshold returns.
    if (uncovered >= options_.checkpoint_every) {
      if (absl::Status s = SignCheckpointNow(); !s.ok())
        spdlog::error("ledger: cannot write checkpoint: {}", s.ToString());
    }
    durable_end_.store(end);
    wake(cur);
    std::swap(cur, next);
    w.lock();
  }
}

uint64_t Ledger::pending() const {
  std::lock_guard<std::mutex> w(write_mu_);
  return write_next_seq_ - durable_end_.load();
}

}  // namespace lethe::ledger
