// The pre-zeroing thread (prezeroer.h): writes runs of zeros, a piece at a time, ahead of the
// last record of the last segment, and gives way to the sync thread whenever it writes or
// seals that segment.
#include "ledger/prezeroer.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "base/thread_name.h"
#include "spdlog/spdlog.h"

namespace lethe::ledger {
namespace {

// The first run of zeros in a segment, and the size of the run below which a write asks
// for the next one.
uint64_t FirstZeroRun(uint64_t prezero_bytes) { return std::min<uint64_t>(64u << 10, prezero_bytes); }

}  // namespace

Prezeroer::~Prezeroer() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void Prezeroer::Start() {
  if (max_run_ > 0) thread_ = NamedThread("ledger-zeroer", [this] { Loop(); });
}

void Prezeroer::ZeroFrom(File* file, uint64_t offset) {
  std::lock_guard<std::mutex> z(mu_);
  file_ = file;
  end_ = offset;
  run_ = 0;  // the first write asks for zeros: an idle ledger's files stay as they are
}

void Prezeroer::WaitForPause(std::unique_lock<std::mutex>& z) {
  ++waiters_;
  cv_.wait(z, [&] { return !busy_; });
  --waiters_;
}

void Prezeroer::Detach() {
  std::unique_lock<std::mutex> z(mu_);
  WaitForPause(z);
  file_ = nullptr;  // nothing more for the old segment
}

void Prezeroer::Stop() {
  std::unique_lock<std::mutex> z(mu_);
  stop_ = true;
  cv_.notify_all();
  WaitForPause(z);
}

void Prezeroer::Loop() {
  // A run is written and made durable a piece at a time, so that a batch's fdatasync, which
  // also waits for any zeros in flight, never waits for more than one piece. At 64 appenders
  // 256 KiB pieces gave a p99 ack of 1.1-1.2 ms against 1.9-2.3 ms for 1 MiB ones, at the
  // same rate.
  constexpr uint64_t kPiece = 256u << 10;
  static const std::string kZeros(kPiece, '\0');
  std::unique_lock<std::mutex> z(mu_);
  while (true) {
    cv_.wait(z, [&] { return wanted_ || stop_; });
    if (stop_) return;
    wanted_ = false;
    const uint64_t run = std::clamp(2 * run_, FirstZeroRun(max_run_), max_run_);
    const uint64_t run_end = std::min(end_ + run, segment_limit_);
    // Between pieces, give way to a writer waiting for the zeroing to pause.
    while (!stop_ && file_ != nullptr && end_ < run_end && waiters_ == 0) {
      File* const file = file_;
      const uint64_t from = end_;
      const uint64_t to = std::min(from + kPiece, run_end);
      busy_ = true;
      z.unlock();
      absl::Status st = file->WriteAt(from, std::string_view(kZeros).substr(0, to - from));
      if (st.ok()) st = file->SyncData();
      z.lock();
      busy_ = false;
      cv_.notify_all();
      if (!st.ok()) {
        // Appends work without it, at the cost of slower syncs; zeros already written are a
        // zero tail that the next write covers or Open removes.
        spdlog::warn("ledger: cannot pre-zero space in the last segment ({}); appends go on "
                     "without it", st.ToString());
        stop_ = true;
        break;
      }
      end_ = to;
    }
    run_ = run;
  }
}

void Prezeroer::ClaimForWrite(uint64_t end) {
  if (max_run_ == 0) return;
  std::unique_lock<std::mutex> z(mu_);
  if (end > end_) {
    // Past the zeros: let the piece being written there finish first (it may cover us); the
    // rest of the batch simply extends the file, and zeros resume after it.
    WaitForPause(z);
    end_ = std::max(end_, end);
  }
  if (!busy_ && !stop_ && end_ - end < std::max(run_, FirstZeroRun(max_run_))) {
    wanted_ = true;
    cv_.notify_all();
  }
}

}  // namespace lethe::ledger
