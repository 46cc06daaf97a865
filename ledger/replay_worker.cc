#include "ledger/replay_worker.h"

#include <utility>

#include "base/thread_name.h"

namespace lethe::ledger {

ReplayWorker::ReplayWorker(const Ledger::ReplayFn& replay, size_t max_pending)
    : replay_(replay), max_pending_(max_pending) {
  thread_ = NamedThread("ledger-replay", [this] { Run(); });
}

ReplayWorker::~ReplayWorker() { Finish().IgnoreError(); }

absl::Status ReplayWorker::Hand(std::vector<ReplayItem> items) {
  if (items.empty()) return absl::OkStatus();
  std::vector<std::vector<ReplayItem>> replayed;  // freed here, below, outside the lock
  std::unique_lock<std::mutex> l(mu_);
  // A chunk larger than the bound still goes in once nothing else waits.
  cv_.wait(l, [&] { return !error_.ok() || closed_ || pending_ == 0 || pending_ + items.size() <= max_pending_; });
  replayed.swap(done_);
  if (!error_.ok()) return error_;
  if (closed_) return absl::FailedPreconditionError("ledger replay: entries handed over after its end");
  pending_ += items.size();
  queue_.push_back(std::move(items));
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status ReplayWorker::Finish() {
  {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> l(mu_);
  return error_;
}

void ReplayWorker::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return;  // closed, and everything handed over is done
    std::vector<ReplayItem> chunk = std::move(queue_.front());
    queue_.pop_front();
    l.unlock();
    absl::Status st;
    for (const ReplayItem& item : chunk) {
      st = replay_(item.seq, item.bytes, item.entry);
      if (!st.ok()) break;
    }
    l.lock();
    pending_ -= chunk.size();
    // Freed by the scan's thread, which allocated it, at its next Hand: a free from another
    // thread goes to the allocating thread's malloc arena, under its lock.
    done_.push_back(std::move(chunk));
    if (!st.ok()) {
      // Nothing after a refused entry is replayed: what is queued is dropped, and Hand
      // refuses more.
      error_ = std::move(st);
      for (const auto& c : queue_) pending_ -= c.size();
      queue_.clear();
      cv_.notify_all();
      return;
    }
    cv_.notify_all();
  }
}

}  // namespace lethe::ledger
