// MemoryTrimmer: hands the memory allocator's free pages back to the kernel, now and then.
//
// glibc's malloc keeps what a program frees in its arenas (one per thread that ever met
// contention, up to eight per core) for the next allocation. In a server whose live heap
// is flat, the pages those free chunks span stay resident and, as the arenas fragment
// under many threads (gRPC's pollers, librdkafka's brokers), slowly grow in number: a
// resident size that creeps although nothing is kept. malloc_trim(0) returns the whole
// free pages of every arena (madvise(MADV_DONTNEED)), so that what is resident follows the
// live heap. It costs a walk of the arenas' free lists: microseconds for a heap of a few
// MB, run once a minute off every request's path.
//
// Thread safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "absl/time/time.h"

namespace lethe {

class MemoryTrimmer {
 public:
  // Trims every `interval` on a thread of its own until destroyed; never when the interval
  // is not positive.
  explicit MemoryTrimmer(absl::Duration interval);
  ~MemoryTrimmer();
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  // One trim now, on the caller's thread: true when the allocator released memory.
  static bool TrimNow();
  // Trims done by the thread so far.
  uint64_t trims() const { return trims_.load(); }

 private:
  void Loop(absl::Duration interval);

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<uint64_t> trims_{0};
  std::thread thread_;
};

}  // namespace lethe
