// base/memory_trimmer.h: a trim hands freed heap pages back to the kernel, and the trimmer's
// thread trims at its interval.
#include "base/memory_trimmer.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace lethe {
namespace {

// This process's anonymous resident memory (heap, stacks), in KB.
int64_t RssAnonKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stoll(line.substr(8));
  ADD_FAILURE() << "no RssAnon in /proc/self/status";
  return -1;
}

TEST(MemoryTrimmer, TrimNowReturnsFreedPagesBelowTheTopOfTheHeap) {
  // 32 MB in 64 KB blocks (below malloc's mmap threshold, so on the heap), each written so
  // that its pages are resident; then all freed but the last, which pins the top of the heap
  // so that free() itself cannot give the space back.
  constexpr size_t kBlock = 64 << 10, kBlocks = 512;
  std::vector<char*> blocks;
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks.push_back(static_cast<char*>(std::malloc(kBlock)));
    ASSERT_NE(blocks.back(), nullptr);
    std::memset(blocks.back(), static_cast<int>(i), kBlock);
  }
  for (size_t i = 0; i + 1 < kBlocks; ++i) std::free(blocks[i]);
  const int64_t before = RssAnonKb();
  EXPECT_TRUE(MemoryTrimmer::TrimNow());
  const int64_t after = RssAnonKb();
  std::free(blocks.back());
  // Nearly all of the 32 MB freed is no longer resident.
  EXPECT_LT(after, before - 24 * 1024) << "before " << before << " KB, after " << after << " KB";
}

TEST(MemoryTrimmer, ItsThreadTrimsAtItsInterval) {
  MemoryTrimmer trimmer(absl::Milliseconds(1));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (trimmer.trims() < 3 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_GE(trimmer.trims(), 3u);
}

TEST(MemoryTrimmer, WithoutAPositiveIntervalItHasNoThread) {
  const MemoryTrimmer never(absl::ZeroDuration());
  EXPECT_EQ(never.trims(), 0u);  // and its destructor returns at once: nothing to join
}

}  // namespace
}  // namespace lethe
