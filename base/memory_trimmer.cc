#include "base/memory_trimmer.h"

#include <malloc.h>

#include "base/thread_name.h"

namespace lethe {

MemoryTrimmer::MemoryTrimmer(absl::Duration interval) {
  if (interval > absl::ZeroDuration())
    thread_ = NamedThread("memory-trimmer", [this, interval] { Loop(interval); });
}

MemoryTrimmer::~MemoryTrimmer() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool MemoryTrimmer::TrimNow() { return ::malloc_trim(0) != 0; }

void MemoryTrimmer::Loop(absl::Duration interval) {
  std::unique_lock<std::mutex> l(mu_);
  while (!cv_.wait_for(l, absl::ToChronoNanoseconds(interval), [this] { return stop_; })) {
    l.unlock();
    TrimNow();
    trims_.fetch_add(1);
    l.lock();
  }
}

}  // namespace lethe
