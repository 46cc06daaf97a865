// Faults below the ledger, injected through its FileSystem seam (base/file_system.h) by
// tests/support/fault_fs.h, which models what a power loss keeps: only what a completed
// fdatasync (or directory sync) made durable.
//
// - A power loss before any call of a workload (appends in batches, segment rolls,
//   checkpoints, the close) loses no acknowledged entry, and the ledger reopens.
// - A failed call (write, fdatasync, truncate, create, rename, directory sync) is never
//   acknowledged, leaves the ledger refusing appends until it is reopened, and a power loss
//   after it loses no acknowledged entry.
// - A write torn at any byte of a batch, the torn part on disk, reopens to the batch before.
//
// Run them many times: ctest --test-dir build -R ledger_fault_test --repeat until-fail:50
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "lethe/v1/ledger.pb.h"
#include "tests/support/assertions.h"
#include "tests/support/fault_fs.h"
#include "tests/support/files.h"
#include "tests/support/subprocess.h"

namespace lethe::ledger {
namespace {

using ::lethe::testing::FaultInjectionFileSystem;
using ::lethe::testing::TempDir;
using ::lethe::testing::WaitFor;
using ::testing::HasSubstr;
using Call = FaultInjectionFileSystem::Call;
using Kind = FaultInjectionFileSystem::Kind;

constexpr char kOrigin[] = "fault-test.example/log";
const absl::Time kNow = absl::FromUnixMillis(1'700'000'000'000);

const crypto::Ed25519PrivateKey& Key() {
  static const auto* key = new crypto::Ed25519PrivateKey(crypto::Ed25519PrivateKey::Generate().value());
  return *key;
}

// Fast to sync: tmpfs where there is one (the fake, not the disk, decides what is durable).
std::filesystem::path Scratch() {
  std::error_code ec;
  return std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm")
                                                       : std::filesystem::temp_directory_path();
}

// Small segments (a roll every few batches) and a checkpoint every 4 entries, so that a
// workload of a dozen batches crosses every kind of call.
LedgerOptions Options(const std::string& dir, FileSystem* fs, uint64_t prezero) {
  LedgerOptions o;
  o.dir = dir;
  o.origin = kOrigin;
  o.signing_key = &Key();
  o.max_segment_bytes = 900;
  o.checkpoint_every = 4;
  o.checkpoint_interval = absl::ZeroDuration();
  o.prezero_bytes = prezero;
  o.file_system = fs;
  return o;
}

v1::LedgerEntry Entry(const std::string& tag) {
  v1::LedgerEntry e;
  e.mutable_agent_enrolled()->set_domain(tag);
  e.mutable_agent_enrolled()->set_public_key(std::string(32, 'k'));
  e.mutable_agent_enrolled()->set_key_id("0123456789abcdef");
  return e;
}

std::vector<v1::LedgerEntry> Batch(int i) {
  std::vector<v1::LedgerEntry> batch;
  for (int j = 0; j <= i % 3; ++j) batch.push_back(Entry(absl::StrCat("domain-", i, "-", j)));
  return batch;
}

constexpr int kBatches = 12;

// What a run of the workload got acknowledged: the stored bytes of each entry, by seq.
struct Outcome {
  bool opened = false;
  std::vector<std::string> acked;  // acked[seq]: entries 0.. in order, all acknowledged
  int failed_appends = 0;
  bool appended_after_a_failure = false;
};

// Opens a ledger on `fs`, appends kBatches batches, and closes it.
Outcome RunWorkload(const std::string& dir, FileSystem* fs, uint64_t prezero) {
  Outcome out;
  auto l = Ledger::Open(Options(dir, fs, prezero), nullptr);
  if (!l.ok()) return out;
  out.opened = true;
  auto zero = (*l)->ReadEntry(0);
  EXPECT_OK(zero);
  if (zero.ok()) out.acked.push_back(*zero);
  for (int i = 0; i < kBatches; ++i) {
    auto appended = (*l)->Append(Batch(i), kNow);
    if (!appended.ok()) {
      EXPECT_TRUE(absl::IsUnavailable(appended.status())) << appended.status();
      ++out.failed_appends;
      continue;
    }
    if (out.failed_appends > 0) out.appended_after_a_failure = true;
    for (const AppendedEntry& e : *appended) {
      EXPECT_EQ(e.seq, out.acked.size());
      out.acked.push_back(e.bytes);
    }
  }
  return out;  // the ledger closes here: its closing checkpoint and truncation are calls too
}

// Reopens the ledger in `dir` on `fs`, and checks that it holds every entry acknowledged,
// byte for byte, and (on the real file system) takes appends again.
void ExpectReopensWithEveryAcknowledgedEntry(const std::string& dir, const Outcome& run,
                                             FileSystem* fs = nullptr) {
  auto l = Ledger::Open(Options(dir, fs, 0), nullptr);
  ASSERT_OK(l);
  ASSERT_GE((*l)->size(), run.acked.size()) << "acknowledged entries were lost";
  for (uint64_t seq = 0; seq < run.acked.size(); ++seq) {
    auto bytes = (*l)->ReadEntry(seq);
    ASSERT_OK(bytes);
    EXPECT_EQ(*bytes, run.acked[seq]) << "entry " << seq << " differs from what was acknowledged";
  }
  // Whatever else survived is whole batches of the workload, never more than was written.
  EXPECT_LE((*l)->size(), 1u + (kBatches / 3) * 6u);
  if (fs != nullptr) return;
  ASSERT_OK((*l)->Append({Entry("after")}, kNow));
  ASSERT_OK((*l)->Checkpoint());
}

// The calls a fault-free run makes: the number to cover.
std::vector<Call> CleanRun(uint64_t prezero) {
  TempDir dir(Scratch());
  FaultInjectionFileSystem fs;
  const Outcome run = RunWorkload(dir.File("ledger"), &fs, prezero);
  EXPECT_TRUE(run.opened);
  EXPECT_EQ(run.failed_appends, 0);
  return fs.calls();
}

class Faults : public ::testing::TestWithParam<uint64_t> {};  // pre-zeroed bytes

TEST_P(Faults, TheWorkloadCoversEveryKindOfCall) {
  const std::vector<Call> calls = CleanRun(GetParam());
  std::set<Kind> kinds;
  for (const Call& c : calls) kinds.insert(c.kind);
  EXPECT_EQ(kinds, (std::set<Kind>{Kind::kCreate, Kind::kWrite, Kind::kSync, Kind::kTruncate,
                                   Kind::kRename, Kind::kSyncDir}));
  EXPECT_GT(calls.size(), 60u);
}

TEST_P(Faults, APowerLossBeforeAnyCallLosesNoAcknowledgedEntry) {
  const uint64_t n = CleanRun(GetParam()).size();
  for (uint64_t at = 0; at <= n; ++at) {
    SCOPED_TRACE(absl::StrCat("power lost before call ", at, " of ", n));
    TempDir dir(Scratch());
    const std::string path = dir.File("ledger");
    FaultInjectionFileSystem fs;
    fs.Die(FaultInjectionFileSystem::At(at));
    const Outcome run = RunWorkload(path, &fs, GetParam());
    EXPECT_FALSE(run.appended_after_a_failure);
    fs.PowerLoss();
    ExpectReopensWithEveryAcknowledgedEntry(path, run);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST_P(Faults, AFailedCallIsNeverAcknowledgedAndAPowerLossAfterItLosesNothingAcknowledged) {
  const uint64_t n = CleanRun(GetParam()).size();
  for (uint64_t at = 0; at < n; ++at) {
    SCOPED_TRACE(absl::StrCat("call ", at, " of ", n, " fails"));
    TempDir dir(Scratch());
    const std::string path = dir.File("ledger");
    FaultInjectionFileSystem fs;
    fs.Fail(FaultInjectionFileSystem::At(at));
    const Outcome run = RunWorkload(path, &fs, GetParam());
    // Once an append has failed, the ledger takes none until it is reopened.
    EXPECT_FALSE(run.appended_after_a_failure);
    // A restart (on the fake, so that it knows what the restart makes durable), then a
    // power loss.
    fs.Heal();
    if (run.opened) ExpectReopensWithEveryAcknowledgedEntry(path, run, &fs);
    if (::testing::Test::HasFatalFailure()) return;
    fs.PowerLoss();
    ExpectReopensWithEveryAcknowledgedEntry(path, run);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(PrezeroOffAndOn, Faults, ::testing::Values(0, 4096),
                         [](const auto& info) { return info.param ? "Prezeroed" : "Plain"; });

bool IsSegment(const Call& c) {
  return std::filesystem::path(c.path).filename().string().rfind("seg-", 0) == 0;
}

TEST(FailedSync, IsNotAcknowledgedAndTheLedgerIsReadOnlyUntilReopened) {
  TempDir dir(Scratch());
  const std::string path = dir.File("ledger");
  FaultInjectionFileSystem fs;
  uint64_t before = 0;
  {
    auto l = Ledger::Open(Options(path, &fs, 0), nullptr);
    ASSERT_OK(l);
    ASSERT_OK((*l)->Append(Batch(1), kNow));
    before = (*l)->size();
    const uint64_t from = fs.call_count();
    fs.Fail([from](const Call& c) { return c.index >= from && c.kind == Kind::kSync && IsSegment(c); });
    auto failed = (*l)->Append(Batch(2), kNow);
    ASSERT_FALSE(failed.ok());
    EXPECT_TRUE(absl::IsUnavailable(failed.status())) << failed.status();
    EXPECT_THAT(failed.status().message(), HasSubstr("fdatasync"));
    EXPECT_EQ((*l)->size(), before) << "readers must not see entries that are not durable";
    EXPECT_EQ(fs.faults(), 1u);
    // The fault is gone, but a sync that failed may have lost pages that a later one would
    // not report: the ledger takes nothing more until it is reopened.
    fs.Heal();
    auto refused = (*l)->Append({Entry("later")}, kNow);
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(refused.status().message(), HasSubstr("read-only"));
    EXPECT_EQ(fs.faults(), 1u) << "the refused append must not reach the file system";
  }
  auto l = Ledger::Open(Options(path, nullptr, 0), nullptr);
  ASSERT_OK(l);
  EXPECT_EQ((*l)->size(), before) << "the failed batch must not come back";
  ASSERT_OK((*l)->Append({Entry("after restart")}, kNow));
}

// A batch queued while the one before it is being synced chains on that one: when its sync
// fails, the queued batch is never written nor acknowledged (it would be a chain with a hole
// once the failed batch is cut), and nothing more is taken until the ledger is reopened.
TEST(FailedSync, ABatchQueuedBehindAFailedOneIsNeverWrittenNorAcknowledged) {
  TempDir dir(Scratch());
  const std::string path = dir.File("ledger");
  FaultInjectionFileSystem fs;
  uint64_t before = 0;
  {
    auto l = Ledger::Open(Options(path, &fs, 0), nullptr);
    ASSERT_OK(l);
    Ledger& ledger = **l;
    ASSERT_OK(ledger.Append(Batch(1), kNow));
    before = ledger.size();
    ASSERT_EQ(ledger.pending(), 0u);
    const uint64_t from = fs.call_count();
    // The first segment fdatasync from here on fails, once; while it runs, a second batch
    // (2 entries) is queued behind the first (3 entries).
    std::atomic<int> syncs{0};
    fs.Fail([from, &syncs](const Call& c) {
      return c.index >= from && c.kind == Kind::kSync && IsSegment(c) && syncs.fetch_add(1) == 0;
    });
    std::thread second;
    absl::StatusOr<std::vector<AppendedEntry>> second_result = absl::UnknownError("not run");
    std::atomic<bool> armed{true};
    fs.OnCall([&](const Call& c) {
      if (c.kind != Kind::kSync || !IsSegment(c) || !armed.exchange(false)) return;
      second = std::thread([&] { second_result = ledger.Append(Batch(4), kNow); });
      EXPECT_TRUE(WaitFor([&] { return ledger.pending() == 5; }, absl::Seconds(30)))
          << "the second batch was not queued: pending " << ledger.pending();
    });
    auto first = ledger.Append(Batch(2), kNow);
    EXPECT_FALSE(first.ok());
    ASSERT_TRUE(second.joinable());
    second.join();
    EXPECT_FALSE(second_result.ok()) << "a batch chained on a failed one was acknowledged";
    EXPECT_EQ(ledger.size(), before);
    // Nothing of either batch was written after the failed sync.
    std::vector<Call> calls = fs.calls();
    bool after_failure = false;
    for (const Call& c : calls) {
      if (c.index >= from && c.kind == Kind::kSync && IsSegment(c)) {
        after_failure = true;
      } else if (after_failure) {
        EXPECT_FALSE(c.kind == Kind::kWrite && IsSegment(c) && !c.zeros)
            << "call " << c.index << " wrote " << c.bytes << " bytes after the failed sync";
      }
    }
    // A new append is refused before it is even queued.
    const uint64_t pending = ledger.pending();
    EXPECT_FALSE(ledger.Append({Entry("later")}, kNow).ok());
    EXPECT_EQ(ledger.pending(), pending) << "the refused append was queued";
    fs.OnCall(nullptr);
  }
  auto l = Ledger::Open(Options(path, nullptr, 0), nullptr);
  ASSERT_OK(l);
  EXPECT_EQ((*l)->size(), before);
  ASSERT_OK((*l)->Append({Entry("after restart")}, kNow));
}

// A write torn at each byte of a batch (the bytes before the tear on disk, none after), then
// a power loss: the ledger reopens to the entries before the batch, and cuts the rest. (Torn
// after its last byte, the write is whole: the batch is on disk, unacknowledged, and may
// be in the log.)
class TornWrite : public ::testing::TestWithParam<uint64_t> {};  // pre-zeroed bytes

TEST_P(TornWrite, AtEveryByteOfABatchReopensToTheBatchBefore) {
  const uint64_t prezero = GetParam();
  const auto batch = [] {
    std::vector<v1::LedgerEntry> b;
    for (int i = 0; i < 4; ++i) b.push_back(Entry(absl::StrCat("torn-", i)));
    return b;
  };
  // A clean run gives the batch's write: the last write to a segment that is not of zeros.
  uint64_t bytes = 0;
  {
    TempDir dir(Scratch());
    FaultInjectionFileSystem fs;
    auto l = Ledger::Open(Options(dir.File("ledger"), &fs, prezero), nullptr);
    ASSERT_OK(l);
    ASSERT_OK((*l)->Append(Batch(2), kNow));
    ASSERT_OK((*l)->Append(batch(), kNow));
    for (const Call& c : fs.calls())
      if (c.kind == Kind::kWrite && IsSegment(c) && !c.zeros) bytes = c.bytes;
  }
  ASSERT_GT(bytes, 400u);
  for (uint64_t keep = 0; keep < bytes; ++keep) {
    SCOPED_TRACE(absl::StrCat("torn after ", keep, " of ", bytes, " bytes"));
    TempDir dir(Scratch());
    const std::string path = dir.File("ledger");
    FaultInjectionFileSystem fs;
    std::vector<std::string> before;
    {
      auto l = Ledger::Open(Options(path, &fs, prezero), nullptr);
      ASSERT_OK(l);
      ASSERT_OK((*l)->Append(Batch(2), kNow));
      for (uint64_t seq = 0; seq < (*l)->size(); ++seq) before.push_back((*l)->ReadEntry(seq).value());
      const uint64_t from = fs.call_count();
      fs.Tear([from, bytes](const Call& c) {
        return c.index >= from && c.kind == Kind::kWrite && IsSegment(c) && !c.zeros && c.bytes == bytes;
      }, keep);
      auto torn = (*l)->Append(batch(), kNow);
      ASSERT_FALSE(torn.ok()) << "a torn write was acknowledged";
      EXPECT_EQ(fs.faults(), 1u);
    }
    fs.PowerLoss();
    auto l = Ledger::Open(Options(path, nullptr, 0), nullptr);
    ASSERT_OK(l);
    ASSERT_EQ((*l)->size(), before.size()) << "nothing of the torn batch may be in the log";
    for (uint64_t seq = 0; seq < before.size(); ++seq) EXPECT_EQ((*l)->ReadEntry(seq).value(), before[seq]);
    if (keep > 0) {
      ASSERT_TRUE((*l)->torn_tail_cut().has_value()) << "the torn part must be cut, not kept";
    }
    ASSERT_OK((*l)->Append({Entry("after")}, kNow));
  }
}

INSTANTIATE_TEST_SUITE_P(PrezeroOffAndOn, TornWrite, ::testing::Values(0, 4096),
                         [](const auto& info) { return info.param ? "Prezeroed" : "Plain"; });

}  // namespace
}  // namespace lethe::ledger
