// Internal to the ledger (not part of its API; ledger.h is): the pre-zeroing thread, which
// keeps durable zeros ahead of the writer in the last segment (LedgerOptions::prezero_bytes),
// and the calls by which the ledger's sync thread stays clear of it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "base/file_system.h"

namespace lethe::ledger {

// A thread writes zeros past the end of the last segment and fdatasyncs them; the sync
// thread writes batches over them, so that the fdatasync acknowledging a batch overwrites
// allocated blocks. Neither ever writes where the other may be writing: the zeroing thread
// only starts at end_, and the sync thread waits for it before writing past end_. Runs start
// at 64 KiB (or max_run, if less) and double, up to max_run, while the log keeps growing.
class Prezeroer {
 public:
  // Runs of at most `max_run` bytes (0: no zeroing at all), never past file offset
  // `segment_limit` (LedgerOptions::max_segment_bytes).
  Prezeroer(uint64_t max_run, uint64_t segment_limit)
      : max_run_(max_run), segment_limit_(segment_limit) {}
  // Stops zeroing and waits for the thread to end.
  ~Prezeroer();
  Prezeroer(const Prezeroer&) = delete;
  Prezeroer& operator=(const Prezeroer&) = delete;

  // Starts the zeroing thread (none when max_run is 0).
  void Start();
  // Zeros go to `file` (the last segment) from `offset` on, once the first write there asks
  // for them: an idle ledger's files stay as they are.
  void ZeroFrom(File* file, uint64_t offset);
  // Makes the batch about to be written, ending at file offset `end`, safe from the zeroing
  // thread and asks for more zeros when few remain ahead. Sync thread only.
  void ClaimForWrite(uint64_t end);
  // Waits for a piece being written and zeros nothing more in the file: it is about to be
  // sealed (its zeros cut). ZeroFrom names the next one.
  void Detach();
  // Stops for good (waits for a piece in progress). Appends go on without zeros.
  void Stop();

 private:
  void Loop();
  // Waits until no piece of zeros is being written, asking the zeroing thread to pause
  // between pieces meanwhile.
  void WaitForPause(std::unique_lock<std::mutex>& z) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t max_run_;
  const uint64_t segment_limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  File* file_ ABSL_GUARDED_BY(mu_) = nullptr;  // the last segment
  uint64_t end_ ABSL_GUARDED_BY(mu_) = 0;      // file offset where durable zeros end
  uint64_t run_ ABSL_GUARDED_BY(mu_) = 0;      // size of the last run written
  bool wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;     // writing a piece at end_
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;       // threads waiting for !busy_
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace lethe::ledger
