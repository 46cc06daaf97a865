// Unit tests for Ledger (ledger.h): appends, group commit and reopening; the segment format
// and its recovery rules (segment_reader.cc, record_format.h): torn tails at every cut point,
// corruption, chain forgery, segment rollover; checkpoint cadence; and the chain checks
// (chain_check.cc). Pre-zeroed space is prezero_test.cc's, checkpoints checkpoint_test.cc's.
//
// Every ledger lives in its own directory under temp_directory_path() with a random suffix,
// removed when the test ends. Damage is done to the files by hand, byte by byte, the way a
// crash or a disk would do it.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/checkpoint_history.h"
#include "ledger/entry_index.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/record_format.h"
#include "ledger/replay_worker.h"
#include "lethe/v1/ledger.pb.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/ledger_fixture.h"

namespace lethe::ledger {
namespace {

namespace fs = std::filesystem;
using ::lethe::testing::BaseName;
using ::lethe::testing::kNow;
using ::lethe::testing::kOrigin;
using ::lethe::testing::LedgerTest;
using ::lethe::testing::NewKey;
using ::lethe::testing::ReadBytes;
using ::lethe::testing::RecordPos;
using ::lethe::testing::RecordsIn;
using ::lethe::testing::SegmentFiles;
using ::lethe::testing::Snapshot;
using ::lethe::testing::TempDir;
using ::lethe::testing::TestEntry;
using ::lethe::testing::WriteBytes;
using ::testing::HasSubstr;

TEST_F(LedgerTest, NewLedgerStartsWithLogCreatedNamingOriginAndKey) {
  std::vector<uint64_t> replayed;
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view,
                                const v1::LedgerEntry& e) -> absl::Status {
    replayed.push_back(seq);
    EXPECT_TRUE(e.has_log_created());
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(auto ledger, Open(replay));
  EXPECT_EQ(replayed, std::vector<uint64_t>{0});
  ASSERT_EQ(ledger->size(), 1u);

  ASSERT_OK_AND_ASSIGN(std::string bytes, ledger->ReadEntry(0));
  v1::LedgerEntry e;
  ASSERT_TRUE(e.ParseFromString(bytes));
  EXPECT_EQ(e.seq(), 0u);
  EXPECT_EQ(e.prev_hash(), std::string(32, '\0'));
  ASSERT_TRUE(e.has_log_created());
  EXPECT_EQ(e.log_created().origin(), kOrigin);
  EXPECT_EQ(e.log_created().control_plane_public_key(), key_.public_key().raw());
  EXPECT_EQ(*ledger->Root(), LeafHash(bytes));

  ASSERT_OK_AND_ASSIGN(Checkpoint cp,
                       VerifyCheckpoint(ledger->LatestCheckpoint(), kOrigin, key_.public_key()));
  EXPECT_EQ(cp.size, 1u);
  EXPECT_EQ(cp.root, *ledger->Root());
  EXPECT_EQ(ReadBytes(CheckpointPath()), ledger->LatestCheckpoint());
  EXPECT_EQ(SegmentFiles(dir_.path()),
            std::vector<std::string>{dir_.File(format::SegmentFileName(0))});
  const std::string seg = ReadBytes(LastSegment());
  EXPECT_EQ(seg.substr(0, format::kSegmentHeaderSize), format::EncodeSegmentHeader(0));
}

TEST_F(LedgerTest, AppendChainsPrevHashAndReadEntryReturnsExactBytes) {
  ASSERT_OK_AND_ASSIGN(auto ledger, Open());
  std::vector<AppendedEntry> all;
  ASSERT_OK_AND_ASSIGN(auto batch1, ledger->Append({TestEntry(1), TestEntry(2), TestEntry(3)}, kNow));
  ASSERT_OK_AND_ASSIGN(auto batch2, ledger->Append({TestEntry(4)}, kNow + absl::Seconds(1)));
  ASSERT_OK_AND_ASSIGN(auto batch3, ledger->Append({TestEntry(5), TestEntry(6)}, kNow + absl::Seconds(2)));
  for (auto* b : {&batch1, &batch2, &batch3})
    for (auto& a : *b) all.push_back(a);
  ASSERT_EQ(all.size(), 6u);

  ASSERT_OK_AND_ASSIGN(std::string prev, ledger->ReadEntry(0));
  CompactRange tree;
  tree.Append(LeafHash(prev));
  for (size_t i = 0; i < all.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("appended #", i));
    const AppendedEntry& a = all[i];
    EXPECT_EQ(a.seq, i + 1);
    EXPECT_EQ(a.entry.seq(), a.seq);
    EXPECT_EQ(a.entry.prev_hash(), LeafHash(prev));
    ASSERT_OK_AND_ASSIGN(std::string stored, ledger->ReadEntry(a.seq));
    EXPECT_EQ(stored, a.bytes);
    // The stored bytes are exactly protobuf's serialization of the returned entry.
    EXPECT_EQ(stored, a.entry.SerializeAsString());
    v1::LedgerEntry parsed;
    ASSERT_TRUE(parsed.ParseFromString(stored));
    EXPECT_EQ(parsed.seq(), a.seq);
    EXPECT_EQ(parsed.prev_hash(), LeafHash(prev));
    EXPECT_EQ(parsed.request_submitted().request_id(), absl::StrCat("request-", i + 1));
    tree.Append(LeafHash(stored));
    prev = stored;
  }
  // Times are the ones given, except that an entry is never earlier than the one before it
  // (LogCreated has the real time of Open, later than kNow).
  v1::LedgerEntry created;
  ASSERT_TRUE(created.ParseFromString(ledger->ReadEntry(0).value()));
  const int64_t floor = created.time_unix_ms();
  EXPECT_EQ(all[0].entry.time_unix_ms(), std::max(floor, absl::ToUnixMillis(kNow)));
  EXPECT_EQ(all[5].entry.time_unix_ms(), std::max(floor, absl::ToUnixMillis(kNow + absl::Seconds(2))));
  EXPECT_EQ(ledger->size(), 7u);
  EXPECT_EQ(*ledger->Root(), tree.Root());

  EXPECT_EQ(ledger->ReadEntry(7).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ledger->ReadEntry(1000).status().code(), absl::StatusCode::kOutOfRange);

  ASSERT_OK_AND_ASSIGN(Checkpoint cp,
                       VerifyCheckpoint(ledger->LatestCheckpoint(), kOrigin, key_.public_key()));
  EXPECT_EQ(cp.size, 7u);
  EXPECT_EQ(cp.root, tree.Root());
}

TEST_F(LedgerTest, StoredBytesAreTheEntrysSerializationAndTimesNeverGoBack) {
  ASSERT_OK_AND_ASSIGN(auto ledger, Open());
  v1::LedgerEntry created;
  ASSERT_TRUE(created.ParseFromString(ledger->ReadEntry(0).value()));
  // A clock that went back (to the epoch, and before it): each entry gets the time of the
  // one before it, and batch_remaining 0 (a proto3 default, omitted on the wire) still
  // serializes exactly.
  ASSERT_OK_AND_ASSIGN(auto at_epoch, ledger->Append({TestEntry(1), TestEntry(2)}, absl::UnixEpoch()));
  ASSERT_OK_AND_ASSIGN(auto before_epoch, ledger->Append({TestEntry(3)}, absl::FromUnixMillis(-5)));
  for (auto* b : {&at_epoch, &before_epoch}) {
    for (const auto& a : *b) {
      EXPECT_EQ(a.bytes, a.entry.SerializeAsString()) << a.seq;
      ASSERT_OK_AND_ASSIGN(std::string stored, ledger->ReadEntry(a.seq));
      EXPECT_EQ(stored, a.bytes);
      EXPECT_EQ(a.entry.time_unix_ms(), created.time_unix_ms());
    }
  }
  // It holds across a reopen too.
  ledger.reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Open());
  ASSERT_OK_AND_ASSIGN(auto later, reopened->Append({TestEntry(4)}, absl::UnixEpoch()));
  EXPECT_EQ(later[0].entry.time_unix_ms(), created.time_unix_ms());
}

TEST_F(LedgerTest, AFailedWriteLeavesTheLedgerAsItWasAndReadOnlyUntilReopened) {
  std::vector<std::string> acked;
  std::atomic<int> told{0};  // on_write_failure calls: its owner is told once, to restart
  absl::Status told_status;
  {
    ledger::LedgerOptions options = Options();
    options.on_write_failure = [&](const absl::Status& st) {
      if (told++ == 0) told_status = st;
    };
    ASSERT_OK_AND_ASSIGN(auto ledger, ledger::Ledger::Open(options, nullptr));
    for (int i = 1; i <= 3; ++i) {
      ASSERT_OK_AND_ASSIGN(auto a, ledger->Append({TestEntry(i)}, kNow));
      acked.push_back(a.at(0).bytes);
    }
    // A real write failure, without mocks: a file-size limit a few entries past the end makes
    // pwritev fail with EFBIG (SIGXFSZ ignored).
    struct sigaction ignore = {}, old_action = {};
    ignore.sa_handler = SIG_IGN;
    ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
    rlimit old_limit = {};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    const rlimit limit = {static_cast<rlim_t>(std::filesystem::file_size(LastSegment()) + 1500),
                          old_limit.rlim_max};
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
    // 32 appenders, so that appends are queued behind the batch that fails.
    std::mutex mu;
    std::map<uint64_t, std::string> by_seq;
    std::vector<absl::Status> failures;
    int finished = 0;  // appenders whose 100 entries all went in before the failure
    std::vector<std::thread> threads;
    for (int t = 0; t < 32; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 100; ++i) {
          auto a = ledger->Append({TestEntry(t * 1000 + i)}, kNow);
          std::lock_guard<std::mutex> l(mu);
          if (!a.ok()) {
            failures.push_back(a.status());
            return;
          }
          by_seq[a->at(0).seq] = a->at(0).bytes;
        }
        std::lock_guard<std::mutex> l(mu);
        ++finished;
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
    ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);
    // Every appender ends on the failure, unless all of its entries went in first: space the
    // segment had pre-zeroed before the limit was set takes writes without growing the file,
    // and under load one appender can finish there (seen once in 878 tests).
    ASSERT_GE(failures.size(), 1u);
    ASSERT_EQ(failures.size() + static_cast<size_t>(finished), 32u);
    for (const auto& f : failures) EXPECT_EQ(f.code(), absl::StatusCode::kUnavailable) << f;
    // Acknowledged entries are contiguous (the first concurrent batch may already be the one
    // that fails: then none of them is).
    for (const auto& [seq, bytes] : by_seq) {
      EXPECT_EQ(seq, acked.size() + 1);
      acked.push_back(bytes);
    }
    // Read-only from now on, even with room again: the next entry would chain on one that
    // was never written.
    EXPECT_EQ(ledger->Append({TestEntry(200)}, kNow).status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(ledger->size(), 1 + acked.size());
  }
  EXPECT_EQ(told.load(), 1);
  EXPECT_EQ(told_status.code(), absl::StatusCode::kUnavailable) << told_status;
  // Reopened: exactly the acknowledged entries, the chain intact, and writable again.
  ASSERT_OK_AND_ASSIGN(auto reopened, Open());
  ASSERT_EQ(reopened->size(), 1 + acked.size());
  for (size_t i = 0; i < acked.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string stored, reopened->ReadEntry(i + 1));
    EXPECT_EQ(stored, acked[i]);
  }
  ASSERT_OK(reopened->Append({TestEntry(300)}, kNow));
}

TEST_F(LedgerTest, ReopenReplaysEveryEntryInOrderWithIdenticalBytes) {
  std::vector<std::string> bytes;
  std::string root, checkpoint;
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i <= 9; ++i) ASSERT_OK(ledger->Append({TestEntry(i)}, kNow).status());
    ASSERT_OK(ledger->Append({TestEntry(10), TestEntry(11)}, kNow).status());
    for (uint64_t s = 0; s < ledger->size(); ++s) bytes.push_back(ledger->ReadEntry(s).value());
    root = *ledger->Root();
    checkpoint = ledger->LatestCheckpoint();
  }
  ASSERT_EQ(bytes.size(), 12u);
  const auto files_before = Snapshot(dir_.path());

  std::vector<uint64_t> seqs;
  std::vector<std::string> replayed;
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view b,
                                const v1::LedgerEntry& e) -> absl::Status {
    seqs.push_back(seq);
    replayed.emplace_back(b);
    EXPECT_EQ(e.seq(), seq);
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(auto ledger, Open(replay));
  std::vector<uint64_t> want(bytes.size());
  std::iota(want.begin(), want.end(), 0u);
  EXPECT_EQ(seqs, want);
  EXPECT_EQ(replayed, bytes);
  EXPECT_EQ(ledger->size(), bytes.size());
  EXPECT_EQ(*ledger->Root(), root);
  EXPECT_EQ(ledger->LatestCheckpoint(), checkpoint);
  EXPECT_FALSE(ledger->torn_tail_cut().has_value());
  EXPECT_EQ(Snapshot(dir_.path()), files_before) << "opening a clean ledger changed its files";
  for (uint64_t s = 0; s < bytes.size(); ++s) EXPECT_EQ(ledger->ReadEntry(s).value(), bytes[s]);

  ASSERT_OK_AND_ASSIGN(auto more, ledger->Append({TestEntry(12)}, kNow));
  EXPECT_EQ(more[0].seq, bytes.size());
  EXPECT_EQ(more[0].entry.prev_hash(), LeafHash(bytes.back()));
}

// bytes(): what the records take (header and entry), counted as they become durable and
// again at open; not the pre-zeroed space ahead of the writer.
TEST_F(LedgerTest, BytesCountEveryDurableRecordAndAgainAtOpen) {
  uint64_t bytes = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i <= 4; ++i) ASSERT_OK(ledger->Append({TestEntry(i)}, kNow).status());
    ASSERT_OK(ledger->Append({TestEntry(5), TestEntry(6)}, kNow).status());
    uint64_t want = 0;
    for (uint64_t s = 0; s < ledger->size(); ++s)
      want += format::kRecordHeaderSize + ledger->ReadEntry(s).value().size();
    bytes = ledger->bytes();
    EXPECT_EQ(bytes, want);
  }
  ASSERT_OK_AND_ASSIGN(auto ledger, Open());
  EXPECT_EQ(ledger->bytes(), bytes);
}

// checkpoint_lag(): entries not yet under a signed checkpoint, and how old that checkpoint is
// while there are any.
TEST_F(LedgerTest, CheckpointLagCountsUncoveredEntriesAndTheCheckpointsAge) {
  LedgerOptions o = Options();
  o.checkpoint_every = 1000;
  ASSERT_OK_AND_ASSIGN(auto ledger, Ledger::Open(o, nullptr));
  const absl::Time later = absl::Now() + absl::Hours(1);
  CheckpointLag lag = ledger->checkpoint_lag(later);
  EXPECT_EQ(lag.uncovered, 0u);  // Open signs one over the log
  EXPECT_EQ(lag.age, absl::ZeroDuration());
  for (int i = 1; i <= 3; ++i) ASSERT_OK(ledger->Append({TestEntry(i)}, kNow).status());
  lag = ledger->checkpoint_lag(later);
  EXPECT_EQ(lag.uncovered, 3u);
  EXPECT_GE(lag.age, absl::Minutes(59));
  ASSERT_OK(ledger->Checkpoint().status());
  lag = ledger->checkpoint_lag(later);
  EXPECT_EQ(lag.uncovered, 0u);
  EXPECT_EQ(lag.age, absl::ZeroDuration());
}

TEST_F(LedgerTest, ReplayErrorFailsOpen) {
  MakeLog(5);
  std::vector<uint64_t> seqs;
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view,
                                const v1::LedgerEntry&) -> absl::Status {
    seqs.push_back(seq);
    return seq == 2 ? absl::InternalError("replay refuses entry 2") : absl::OkStatus();
  };
  auto ledger = Open(replay);
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("replay refuses entry 2"));
  EXPECT_EQ(seqs, (std::vector<uint64_t>{0, 1, 2}));
}

// The replay callback runs on a thread of its own, fed in chunks of whole batches
// (ledger/replay_worker.h). A log of many chunks, written in batches of 7 so that chunk ends
// fall at batch ends, not every 256 entries.
class ReplayChunksTest : public LedgerTest {
 protected:
  static constexpr int kEntries = 3000;
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i < kEntries;) {
      std::vector<v1::LedgerEntry> batch;
      for (int k = 0; k < 7 && i < kEntries; ++k, ++i) batch.push_back(TestEntry(i));
      ASSERT_OK(ledger->Append(std::move(batch), kNow).status());
    }
    for (uint64_t s = 0; s < ledger->size(); ++s) bytes_.push_back(ledger->ReadEntry(s).value());
    ASSERT_EQ(bytes_.size(), static_cast<size_t>(kEntries));
  }
  std::vector<std::string> bytes_;
};

TEST_F(ReplayChunksTest, EveryEntryIsReplayedInLogOrderBeforeOpenReturns) {
  std::vector<uint64_t> seqs;
  size_t mismatched = 0;
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view b, const v1::LedgerEntry& e) -> absl::Status {
    seqs.push_back(seq);
    if (seq >= bytes_.size() || b != bytes_[seq] || e.seq() != seq) ++mismatched;
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(auto ledger, Open(replay));
  std::vector<uint64_t> want(bytes_.size());
  std::iota(want.begin(), want.end(), 0u);
  EXPECT_EQ(seqs, want);
  EXPECT_EQ(mismatched, 0u);
}

TEST_F(ReplayChunksTest, NothingAfterARefusedEntryIsReplayed) {
  std::vector<uint64_t> seqs;
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view, const v1::LedgerEntry&) -> absl::Status {
    seqs.push_back(seq);
    return seq == 1000 ? absl::InternalError("replay refuses entry 1000") : absl::OkStatus();
  };
  auto ledger = Open(replay);
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kInternal) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("replay refuses entry 1000"));
  std::vector<uint64_t> want(1001);
  std::iota(want.begin(), want.end(), 0u);
  EXPECT_EQ(seqs, want);
}

// The scan runs ahead of the replay: when the callback refuses an entry and the scan then
// finds damage further on, the refusal, the earlier of the two in the log, is what Open
// reports; with no refusal, the damage is.
TEST_F(ReplayChunksTest, ARefusalIsReportedBeforeDamageTheScanFoundLater) {
  const std::string segment = LastSegment();
  std::string data = ReadBytes(segment);
  const auto recs = RecordsIn(data);
  ASSERT_EQ(recs.size(), static_cast<size_t>(kEntries));
  data[recs[100].payload() + 2] ^= 0x01;  // fails the record's CRC, before the first chunk is handed over
  WriteBytes(segment, data);

  Ledger::ReplayFn refuse_early = [&](uint64_t seq, std::string_view, const v1::LedgerEntry&) -> absl::Status {
    return seq == 10 ? absl::InternalError("replay refuses entry 10") : absl::OkStatus();
  };
  auto refused = Open(refuse_early);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInternal) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("replay refuses entry 10"));

  uint64_t replayed = 0;
  Ledger::ReplayFn accept = [&](uint64_t, std::string_view, const v1::LedgerEntry&) -> absl::Status {
    ++replayed;
    return absl::OkStatus();
  };
  auto damaged = Open(accept);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << damaged.status();
  // Entry 100 is in the batch of entries 99 to 105 (batches of 7 from entry 1): the whole
  // batches before it, entries 0 to 98, are replayed, and nothing of its own batch.
  EXPECT_EQ(replayed, 99u);
  EXPECT_TRUE(ReadBytes(segment) == data) << "Open changed the damaged segment";
}

// A ledger whose Open fails signs nothing when it is destroyed (SignCheckpointNow refuses
// before the checkpoint history is open): a closing checkpoint would cover entries the replay
// refused, and change the files Open must leave as they were for inspection.
TEST_F(LedgerTest, AFailedOpenSignsNoClosingCheckpoint) {
  LedgerOptions o = Options();
  o.checkpoint_every = 1000;  // the entries below stay beyond the signed checkpoint
  TempDir copy;
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Ledger::Open(o, nullptr));
    for (int i = 1; i <= 5; ++i) ASSERT_OK(ledger->Append({TestEntry(i)}, kNow).status());
    // What a crash now would leave: the entries durable, the checkpoint at size 1.
    for (const auto& f : fs::directory_iterator(dir_.path())) fs::copy(f.path(), copy.path() / f.path().filename());
  }
  o.dir = copy.path();
  const auto files_before = Snapshot(copy.path());
  Ledger::ReplayFn refuse = [](uint64_t seq, std::string_view, const v1::LedgerEntry&) -> absl::Status {
    return seq == 4 ? absl::InternalError("replay refuses entry 4") : absl::OkStatus();
  };
  auto ledger = Ledger::Open(o, refuse);
  ASSERT_EQ(ledger.status().code(), absl::StatusCode::kInternal) << ledger.status();
  EXPECT_EQ(Snapshot(copy.path()), files_before) << "a failed Open changed the ledger's files";
}

std::vector<ReplayItem> Items(uint64_t first, uint64_t n) {
  std::vector<ReplayItem> out;
  for (uint64_t s = first; s < first + n; ++s) out.push_back(ReplayItem{s, absl::StrCat("entry ", s), {}});
  return out;
}

// The bound on waiting entries never blocks a chunk larger than itself for good: it goes in
// once nothing else waits.
TEST(ReplayWorker, AChunkLargerThanTheBoundIsTakenOnceNothingWaits) {
  std::vector<uint64_t> seqs;
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view, const v1::LedgerEntry&) {
    seqs.push_back(seq);
    return absl::OkStatus();
  };
  ReplayWorker worker(replay, 4);
  auto handed = std::async(std::launch::async, [&] {
    absl::Status st = worker.Hand(Items(0, 10));
    st.Update(worker.Hand(Items(10, 10)));
    return st;
  });
  if (handed.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "Hand never returned";
    worker.Finish().IgnoreError();  // which wakes it
  }
  ASSERT_OK(handed.get());
  ASSERT_OK(worker.Finish());
  std::vector<uint64_t> want(20);
  std::iota(want.begin(), want.end(), 0u);
  EXPECT_EQ(seqs, want);
}

TEST(ReplayWorker, AfterARefusalNothingMoreIsReplayedAndHandReturnsTheError) {
  std::vector<uint64_t> seqs;
  std::promise<void> second_handed;
  std::shared_future<void> handed = second_handed.get_future().share();
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view, const v1::LedgerEntry&) {
    seqs.push_back(seq);
    if (seq != 5) return absl::OkStatus();
    handed.wait();  // refuses only once the second chunk is queued behind this one
    return absl::FailedPreconditionError("refused 5");
  };
  ReplayWorker worker(replay, 1000);
  ASSERT_OK(worker.Hand(Items(0, 8)));
  const absl::Status queued = worker.Hand(Items(8, 8));  // behind the chunk that fails
  second_handed.set_value();
  ASSERT_OK(queued);
  const absl::Status done = worker.Finish();
  EXPECT_EQ(done.code(), absl::StatusCode::kFailedPrecondition) << done;
  EXPECT_EQ(seqs, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
  const absl::Status more = worker.Hand(Items(16, 1));
  EXPECT_EQ(more, done) << "Hand after the refusal did not return it";
  EXPECT_EQ(seqs.size(), 6u);
}

// Where, inside the last record, the crash cut it.
enum class Cut { kOneHeaderByte, kHeaderShortByOne, kHeaderOnly, kHalfPayload, kPayloadShortByOne };

uint64_t CutLength(Cut cut, uint32_t payload) {
  switch (cut) {
    case Cut::kOneHeaderByte: return 1;
    case Cut::kHeaderShortByOne: return format::kRecordHeaderSize - 1;
    case Cut::kHeaderOnly: return format::kRecordHeaderSize;
    case Cut::kHalfPayload: return format::kRecordHeaderSize + payload / 2;
    case Cut::kPayloadShortByOne: return format::kRecordHeaderSize + payload - 1;
  }
  return 0;
}

class TornTailTest : public LedgerTest, public ::testing::WithParamInterface<Cut> {};

TEST_P(TornTailTest, TruncatedTrailingRecordIsCut) {
  std::vector<std::string> bytes;
  std::string checkpoint_before_last, history_before_last;
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i <= 4; ++i) ASSERT_OK(ledger->Append({TestEntry(i)}, kNow).status());
    checkpoint_before_last = ReadBytes(CheckpointPath());
    history_before_last = ReadBytes(dir_.File(CheckpointHistory::kFileName));
    ASSERT_OK(ledger->Append({TestEntry(5)}, kNow).status());
    for (uint64_t s = 0; s < ledger->size(); ++s) bytes.push_back(ledger->ReadEntry(s).value());
  }
  ASSERT_EQ(bytes.size(), 6u);
  const std::string segment = LastSegment();
  const std::string data = ReadBytes(segment);
  const auto recs = RecordsIn(data);
  ASSERT_EQ(recs.size(), 6u);
  const RecordPos last = recs.back();

  // The process died while writing entry 5: that append was never acknowledged, so the
  // checkpoint on disk is still the one signed for 5 entries, the last one in the history.
  WriteBytes(CheckpointPath(), checkpoint_before_last);
  WriteBytes(dir_.File(CheckpointHistory::kFileName), history_before_last);
  const uint64_t cut = last.offset + CutLength(GetParam(), last.length);
  fs::resize_file(segment, cut);

  std::vector<uint64_t> replayed;
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view,
                                const v1::LedgerEntry&) -> absl::Status {
    replayed.push_back(seq);
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(auto ledger, Open(replay));
  ASSERT_TRUE(ledger->torn_tail_cut().has_value());
  EXPECT_EQ(ledger->torn_tail_cut()->segment, BaseName(segment));
  EXPECT_EQ(ledger->torn_tail_cut()->offset, last.offset);
  EXPECT_EQ(ledger->torn_tail_cut()->bytes, cut - last.offset);
  EXPECT_EQ(ledger->size(), 5u);
  EXPECT_EQ(replayed.size(), 5u);
  EXPECT_EQ(fs::file_size(segment), last.offset);
  EXPECT_EQ(ReadBytes(segment), data.substr(0, last.offset));
  EXPECT_EQ(ledger->ReadEntry(5).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ledger->ReadEntry(4).value(), bytes[4]);

  // The next append takes the place of the lost entry, and the log reopens cleanly.
  ASSERT_OK_AND_ASSIGN(auto appended, ledger->Append({TestEntry(50)}, kNow));
  EXPECT_EQ(appended[0].seq, 5u);
  EXPECT_EQ(appended[0].entry.prev_hash(), LeafHash(bytes[4]));
  const std::string root = *ledger->Root();
  ledger.reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Open());
  EXPECT_FALSE(reopened->torn_tail_cut().has_value());
  EXPECT_EQ(reopened->size(), 6u);
  EXPECT_EQ(*reopened->Root(), root);
  EXPECT_EQ(reopened->ReadEntry(5).value(), appended[0].bytes);
}

INSTANTIATE_TEST_SUITE_P(CutPoints, TornTailTest,
                         ::testing::Values(Cut::kOneHeaderByte, Cut::kHeaderShortByOne,
                                           Cut::kHeaderOnly, Cut::kHalfPayload,
                                           Cut::kPayloadShortByOne));

// The same cut without a crash story: the checkpoint on disk was signed after the last
// record, so that record was acknowledged and losing it is DataLoss, not a torn tail.
TEST_F(LedgerTest, TruncatedRecordCoveredByCheckpointIsDataLossAndNotCut) {
  MakeLog(6);
  const std::string segment = LastSegment();
  const auto recs = RecordsIn(ReadBytes(segment));
  ASSERT_EQ(recs.size(), 6u);
  const uint64_t cut = recs.back().payload() + recs.back().length / 2;
  fs::resize_file(segment, cut);

  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("acknowledged entries lost"));
  EXPECT_EQ(fs::file_size(segment), cut);
}

TEST_F(LedgerTest, TrailingZeroBytesAreCutAsTornTail) {
  const auto bytes = MakeLog(5);
  const std::string segment = LastSegment();
  const std::string clean = ReadBytes(segment);
  const std::string checkpoint = ReadBytes(CheckpointPath());

  // More zeros than a record header, then fewer.
  for (uint64_t zeros : {100u, 3u}) {
    SCOPED_TRACE(absl::StrCat(zeros, " zero bytes"));
    const uint64_t size_before = fs::file_size(segment);
    fs::resize_file(segment, size_before + zeros);  // extends with zero bytes
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    ASSERT_TRUE(ledger->torn_tail_cut().has_value());
    EXPECT_EQ(ledger->torn_tail_cut()->segment, BaseName(segment));
    EXPECT_EQ(ledger->torn_tail_cut()->offset, size_before);
    EXPECT_EQ(ledger->torn_tail_cut()->bytes, zeros);
    EXPECT_EQ(fs::file_size(segment), size_before);
    EXPECT_EQ(ledger->size(), bytes.size());
    EXPECT_EQ(ReadBytes(segment).substr(0, clean.size()), clean);
    for (uint64_t s = 0; s < bytes.size(); ++s) EXPECT_EQ(ledger->ReadEntry(s).value(), bytes[s]);
  }
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    EXPECT_FALSE(ledger->torn_tail_cut().has_value());
    ASSERT_OK_AND_ASSIGN(auto appended, ledger->Append({TestEntry(9)}, kNow));
    EXPECT_EQ(appended[0].seq, bytes.size());
  }
  ASSERT_OK_AND_ASSIGN(auto ledger, Open());
  EXPECT_FALSE(ledger->torn_tail_cut().has_value());
  EXPECT_EQ(ledger->size(), bytes.size() + 1);
}

TEST_F(LedgerTest, TornSegmentHeaderIsRemoved) {
  const auto bytes = MakeLog(3);
  // A crash while a new segment was being started: only part of its header exists.
  const std::string partial = dir_.File(format::SegmentFileName(bytes.size()));
  WriteBytes(partial, format::EncodeSegmentHeader(bytes.size()).substr(0, 10));

  ASSERT_OK_AND_ASSIGN(auto ledger, Open());
  ASSERT_TRUE(ledger->torn_tail_cut().has_value());
  EXPECT_EQ(ledger->torn_tail_cut()->segment, BaseName(partial));
  EXPECT_EQ(ledger->torn_tail_cut()->offset, 0u);
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_EQ(ledger->size(), bytes.size());
  ASSERT_OK_AND_ASSIGN(auto appended, ledger->Append({TestEntry(7)}, kNow));
  EXPECT_EQ(appended[0].seq, bytes.size());
  EXPECT_EQ(ledger->ReadEntry(bytes.size()).value(), appended[0].bytes);
  ledger.reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Open());
  EXPECT_EQ(reopened->size(), bytes.size() + 1);
}

TEST_F(LedgerTest, ChecksumMismatchInMiddleEntryIsDataLoss) {
  MakeLog(6);
  const std::string segment = LastSegment();
  std::string data = ReadBytes(segment);
  const auto recs = RecordsIn(data);
  ASSERT_EQ(recs.size(), 6u);
  data[recs[3].payload() + recs[3].length / 2] ^= 0x20;
  WriteBytes(segment, data);
  const auto files = Snapshot(dir_.path());

  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  const std::string msg(ledger.status().message());
  EXPECT_THAT(msg, HasSubstr("entry 3 at"));
  EXPECT_THAT(msg, HasSubstr(BaseName(segment)));
  EXPECT_THAT(msg, HasSubstr(absl::StrCat("offset ", recs[3].offset)));
  EXPECT_EQ(Snapshot(dir_.path()), files) << "a failed open changed the files";
}

TEST_F(LedgerTest, RecordChecksumFieldMismatchIsDataLoss) {
  MakeLog(6);
  const std::string segment = LastSegment();
  const std::string clean = ReadBytes(segment);
  const auto recs = RecordsIn(clean);
  ASSERT_EQ(recs.size(), 6u);
  // A middle record, and the last one: a complete record with a bad CRC is never a torn tail.
  for (size_t victim : {size_t{3}, size_t{5}}) {
    SCOPED_TRACE(absl::StrCat("entry ", victim));
    std::string data = clean;
    data[recs[victim].offset + 4] ^= 0x01;  // first byte of the crc field
    WriteBytes(segment, data);
    auto ledger = Open();
    EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
    EXPECT_THAT(std::string(ledger.status().message()),
                HasSubstr(absl::StrCat("entry ", victim, " at")));
    EXPECT_THAT(std::string(ledger.status().message()),
                HasSubstr(absl::StrCat("offset ", recs[victim].offset)));
    EXPECT_EQ(ReadBytes(segment), data) << "a failed open changed the segment";
  }
  WriteBytes(segment, clean);
  ASSERT_OK(Open().status());
}

TEST_F(LedgerTest, BadSegmentMagicIsDataLoss) {
  MakeLog(3);
  const std::string segment = LastSegment();
  std::string data = ReadBytes(segment);
  data[2] ^= 0x01;
  WriteBytes(segment, data);
  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("magic"));
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr(BaseName(segment)));
  EXPECT_EQ(ReadBytes(segment), data);
}

TEST_F(LedgerTest, SegmentHeaderChecksumMismatchIsDataLoss) {
  MakeLog(3);
  const std::string segment = LastSegment();
  std::string data = ReadBytes(segment);
  data[16] ^= 0x01;  // first_seq, covered by the header CRC
  WriteBytes(segment, data);
  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("checksum"));
}

// A bit flip in the length field of an acknowledged record makes it look longer than the
// file: it must be reported as DataLoss (the signed checkpoint covers it), and the damaged
// records must be left on disk for inspection, not cut as if they were a torn tail.
TEST_F(LedgerTest, CorruptLengthOfAcknowledgedRecordIsDataLossAndNothingIsCut) {
  MakeLog(6);
  const std::string segment = LastSegment();
  std::string data = ReadBytes(segment);
  const auto recs = RecordsIn(data);
  ASSERT_EQ(recs.size(), 6u);
  data[recs[3].offset + 3] ^= 0x01;  // high byte of the length: +16 MiB
  WriteBytes(segment, data);

  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("acknowledged entries lost"));
  EXPECT_EQ(fs::file_size(segment), data.size()) << "Open cut acknowledged records before failing";
  EXPECT_TRUE(ReadBytes(segment) == data) << "Open changed the damaged segment";
}

TEST_F(LedgerTest, ValidChecksumRecordWithWrongPrevHashIsDataLoss) {
  const auto bytes = MakeLog(6);
  const std::string segment = LastSegment();
  std::string data = ReadBytes(segment);
  const auto recs = RecordsIn(data);
  ASSERT_EQ(recs.size(), 6u);

  v1::LedgerEntry forged;
  ASSERT_TRUE(forged.ParseFromString(bytes[3]));
  std::string prev = forged.prev_hash();
  prev[0] ^= 0x01;
  forged.set_prev_hash(prev);
  std::string payload;
  ASSERT_TRUE(forged.SerializeToString(&payload));
  ASSERT_EQ(payload.size(), bytes[3].size());
  std::string framed;
  format::AppendRecord(&framed, payload);
  data.replace(recs[3].offset, framed.size(), framed);
  WriteBytes(segment, data);

  // The framing is intact: only the chain can catch this.
  uint64_t scanned = 0;
  auto scan = ScanSegments(dir_.path(), [&](const ScannedRecord&) -> absl::Status {
    ++scanned;
    return absl::OkStatus();
  });
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scanned, 6u);

  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("chain"));
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("entry 3 at"));
}

TEST_F(LedgerTest, ValidChecksumRecordWithWrongSeqIsDataLoss) {
  const auto bytes = MakeLog(6);
  const std::string segment = LastSegment();
  std::string data = ReadBytes(segment);
  const auto recs = RecordsIn(data);
  ASSERT_EQ(recs.size(), 6u);
  v1::LedgerEntry forged;
  ASSERT_TRUE(forged.ParseFromString(bytes[3]));
  forged.set_seq(4);
  std::string payload;
  ASSERT_TRUE(forged.SerializeToString(&payload));
  ASSERT_EQ(payload.size(), bytes[3].size());
  std::string framed;
  format::AppendRecord(&framed, payload);
  data.replace(recs[3].offset, framed.size(), framed);
  WriteBytes(segment, data);

  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("entry 3 at"));
}

TEST_F(LedgerTest, CheckpointSignedByAnotherKeyIsDataLoss) {
  MakeLog(4);
  ASSERT_OK_AND_ASSIGN(Checkpoint cp, ParseCheckpointUnverified(ReadBytes(CheckpointPath())));
  EXPECT_EQ(cp.size, 4u);
  WriteBytes(CheckpointPath(), SignCheckpoint(cp, NewKey()));
  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("checkpoint does not verify"));
}

TEST_F(LedgerTest, CheckpointOverOtherEntriesIsDataLoss) {
  MakeLog(4);
  // Signed by the right key, but for a tree these entries do not hash to.
  for (uint64_t size : {4u, 2u}) {
    SCOPED_TRACE(absl::StrCat("checkpoint size ", size));
    WriteBytes(CheckpointPath(), SignCheckpoint({kOrigin, size, crypto::Sha256("other")}, key_));
    auto ledger = Open();
    EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
    EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("root"));
  }
}

TEST_F(LedgerTest, LogShorterThanCheckpointIsDataLoss) {
  MakeLog(5);
  const std::string segment = LastSegment();
  const auto recs = RecordsIn(ReadBytes(segment));
  ASSERT_EQ(recs.size(), 5u);
  // Cut at record boundaries: whole acknowledged records vanish, nothing looks torn.
  for (size_t keep : {size_t{4}, size_t{2}}) {
    SCOPED_TRACE(absl::StrCat("keeping ", keep, " entries"));
    fs::resize_file(segment, recs[keep].offset);
    auto ledger = Open();
    EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
    EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("acknowledged entries lost"));
    EXPECT_EQ(fs::file_size(segment), recs[keep].offset);
  }
}

TEST_F(LedgerTest, SegmentsRollOverAndSeqsContinue) {
  max_segment_bytes_ = 512;
  std::vector<std::string> bytes;
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i < 40; ++i) ASSERT_OK(ledger->Append({TestEntry(i)}, kNow).status());
    for (uint64_t s = 0; s < ledger->size(); ++s) bytes.push_back(ledger->ReadEntry(s).value());
  }
  ASSERT_EQ(bytes.size(), 40u);
  const auto segments = SegmentFiles(dir_.path());
  ASSERT_GE(segments.size(), 3u);

  // Walk the files: names, headers and seqs agree, and seqs run on across segments.
  uint64_t next = 0;
  std::vector<uint64_t> first_seqs;
  for (const auto& path : segments) {
    SCOPED_TRACE(path);
    const std::string data = ReadBytes(path);
    EXPECT_LE(data.size(), 512u);
    EXPECT_EQ(BaseName(path), format::SegmentFileName(next));
    ASSERT_GE(data.size(), format::kSegmentHeaderSize);
    EXPECT_EQ(data.substr(0, format::kSegmentHeaderSize), format::EncodeSegmentHeader(next));
    first_seqs.push_back(next);
    const auto recs = RecordsIn(data);
    ASSERT_FALSE(recs.empty());
    EXPECT_EQ(recs.back().end(), data.size());
    for (const auto& r : recs) {
      v1::LedgerEntry e;
      ASSERT_TRUE(e.ParseFromString(data.substr(r.payload(), r.length)));
      EXPECT_EQ(e.seq(), next);
      EXPECT_EQ(data.substr(r.payload(), r.length), bytes[next]);
      ++next;
    }
  }
  EXPECT_EQ(next, bytes.size());

  uint64_t replayed = 0;
  Ledger::ReplayFn replay = [&](uint64_t seq, std::string_view b,
                                const v1::LedgerEntry&) -> absl::Status {
    EXPECT_EQ(b, bytes[seq]);
    ++replayed;
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(auto ledger, Open(replay));
  EXPECT_EQ(replayed, bytes.size());
  EXPECT_EQ(ledger->size(), bytes.size());
  // First and last entry of every segment.
  for (size_t i = 0; i < first_seqs.size(); ++i) {
    const uint64_t first = first_seqs[i];
    const uint64_t last = i + 1 < first_seqs.size() ? first_seqs[i + 1] - 1 : bytes.size() - 1;
    EXPECT_EQ(ledger->ReadEntry(first).value(), bytes[first]);
    EXPECT_EQ(ledger->ReadEntry(last).value(), bytes[last]);
  }
  // Appends after reopening go on from the last seq, into the last or a new segment.
  for (int i = 40; i < 50; ++i) {
    ASSERT_OK_AND_ASSIGN(auto a, ledger->Append({TestEntry(i)}, kNow));
    EXPECT_EQ(a[0].seq, static_cast<uint64_t>(i));
    EXPECT_EQ(ledger->ReadEntry(a[0].seq).value(), a[0].bytes);
  }
  EXPECT_EQ(ledger->ReadEntry(first_seqs[1]).value(), bytes[first_seqs[1]]);
}

// Changes the last byte of the record whose payload is `payload` in the segments of `dir`, as
// a disk or a hand might; false if no record holds it.
bool FlipLastPayloadByte(const std::string& dir, const std::string& payload) {
  bool changed = false;
  for (const std::string& seg : SegmentFiles(dir)) {
    std::string data = ReadBytes(seg);
    for (const RecordPos& r : RecordsIn(data)) {
      if (data.substr(r.payload(), r.length) != payload) continue;
      data[r.end() - 1] ^= 0x01;
      WriteBytes(seg, data);
      changed = true;
    }
  }
  return changed;
}

// The durable entries' leaf hashes and locations leave memory (entry_index.h, and
// MerkleTree::Evict): entries, roots and proofs of old entries, across segments and tiles,
// are read back the same, before and after a reopen (which also checks every checkpoint
// signed against the roots read back), and an old entry changed on disk is still caught.
TEST_F(LedgerTest, OldEntriesLeaveMemoryAndAreReadBackCheckedAndProvedAsBefore) {
  max_segment_bytes_ = 4096;
  constexpr uint64_t kEntries = 400;
  std::vector<std::string> bytes;
  MerkleTree tree;
  auto check = [&](const Ledger& ledger) {
    ASSERT_EQ(ledger.size(), kEntries);
    for (uint64_t s = 0; s < kEntries; ++s) {
      ASSERT_OK_AND_ASSIGN(const std::string b, ledger.ReadEntry(s));
      ASSERT_EQ(b, bytes[s]) << "entry " << s;
    }
    for (uint64_t n : {1u, 63u, 64u, 65u, 200u, 399u, 400u}) {
      ASSERT_OK_AND_ASSIGN(const std::string root, ledger.RootAt(n));
      EXPECT_EQ(root, tree.Root(n)) << "size " << n;
      for (uint64_t i : {uint64_t{0}, n / 3, n - 1}) {
        ASSERT_OK_AND_ASSIGN(auto proof, ledger.InclusionProof(i, n));
        EXPECT_EQ(proof, *tree.InclusionProof(i, n)) << i << " in " << n;
      }
      ASSERT_OK_AND_ASSIGN(auto proof, ledger.ConsistencyProof(n, kEntries));
      EXPECT_EQ(proof, *tree.ConsistencyProof(n, kEntries)) << n;
    }
    // About two hashes per 64 entries, and those of the last incomplete tile.
    EXPECT_LE(ledger.tree_nodes_held(), 2 * (kEntries / 64) + 2 * (kEntries % 64));
  };
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    bytes.push_back(ledger->ReadEntry(0).value());
    for (int i = 1; bytes.size() < kEntries; ++i) {
      std::vector<v1::LedgerEntry> batch;
      for (int k = 0; k < 1 + i % 7 && bytes.size() + batch.size() < kEntries; ++k)
        batch.push_back(TestEntry(static_cast<int>(bytes.size() + batch.size())));
      ASSERT_OK_AND_ASSIGN(auto appended, ledger->Append(std::move(batch), kNow));
      for (const AppendedEntry& a : appended) bytes.push_back(a.bytes);
    }
    for (const std::string& b : bytes) tree.Append(LeafHash(b));
    ASSERT_GE(SegmentFiles(dir_.path()).size(), 5u);
    check(*ledger);
  }
  ASSERT_OK_AND_ASSIGN(auto ledger, Open());
  check(*ledger);
  if (HasFatalFailure()) return;

  // Entry 10, long out of memory: one byte of its payload changed in its segment.
  ASSERT_TRUE(FlipLastPayloadByte(dir_.path(), bytes[10]));
  const absl::Status s = ledger->ReadEntry(10).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(s.message(), HasSubstr("entry 10"));
  EXPECT_THAT(s.message(), HasSubstr("no longer hashes to its leaf"));
  ASSERT_OK_AND_ASSIGN(const std::string other, ledger->ReadEntry(11));
  EXPECT_EQ(other, bytes[11]);
}

// ReadEntries reads neighbours together (index records, and entries close together in a
// segment, in one read each) and returns each entry's exact bytes, across segments and index
// runs; each entry is still checked against its leaf, one changed on disk is reported by its
// index even inside a shared read, and seqs that do not ascend or pass the end are refused.
TEST_F(LedgerTest, ReadEntriesReadsNeighboursTogetherAndChecksEachAgainstItsLeaf) {
  max_segment_bytes_ = 4096;
  constexpr uint64_t kEntries = 600;
  ASSERT_OK_AND_ASSIGN(auto ledger, Open());
  std::vector<std::string> bytes = {ledger->ReadEntry(0).value()};
  while (bytes.size() < kEntries) {
    std::vector<v1::LedgerEntry> batch;
    for (int k = 0; k < 5 && bytes.size() + batch.size() < kEntries; ++k)
      batch.push_back(TestEntry(static_cast<int>(bytes.size() + batch.size())));
    ASSERT_OK_AND_ASSIGN(auto appended, ledger->Append(std::move(batch), kNow));
    for (const AppendedEntry& a : appended) bytes.push_back(a.bytes);
  }
  ASSERT_GE(SegmentFiles(dir_.path()).size(), 5u);
  auto expect_read = [&](const std::vector<uint64_t>& seqs) {
    ASSERT_OK_AND_ASSIGN(const std::vector<std::string> got, ledger->ReadEntries(seqs));
    ASSERT_EQ(got.size(), seqs.size());
    for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(got[i], bytes[seqs[i]]) << "entry " << seqs[i];
  };
  std::vector<uint64_t> every(kEntries);
  std::iota(every.begin(), every.end(), 0u);
  expect_read(every);
  // Gaps within a run, across runs (more than kIndexGap apart) and across segments.
  std::vector<uint64_t> scattered = {0, 1, 3, 7, 8, 70, 71};
  for (uint64_t seq = 200; seq < 273; ++seq) scattered.push_back(seq);  // one run longer than kIndexGap
  scattered.push_back(kEntries - 1);
  expect_read(scattered);
  expect_read({});
  expect_read({kEntries - 1});

  EXPECT_EQ(ledger->ReadEntries({5, 5}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger->ReadEntries({6, 5}).status().code(), absl::StatusCode::kInvalidArgument);
  const absl::Status beyond = ledger->ReadEntries({5, kEntries - 2, kEntries, kEntries + 1}).status();
  EXPECT_EQ(beyond.code(), absl::StatusCode::kOutOfRange) << beyond;
  EXPECT_THAT(beyond.message(), HasSubstr(absl::StrCat("entry ", kEntries, " is beyond")));

  // Entry 300: the last byte of its payload changed in its segment.
  ASSERT_TRUE(FlipLastPayloadByte(dir_.path(), bytes[300]));
  const absl::Status s = ledger->ReadEntries({298, 299, 300, 301, 302}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(s.message(), HasSubstr("entry 300 "));
  EXPECT_THAT(s.message(), HasSubstr("no longer hashes to its leaf"));
  expect_read({298, 299, 301, 302});  // read in one piece with entry 300's bytes, which are not returned
}

// The entry index's scratch file (entry_index.h) is invisible in the directory, and a write
// to it that fails (a file-size limit here, as a full disk would) loses nothing: the records
// stay in memory and reach the file once a write succeeds again.
TEST(EntryIndex, RecordsSurviveAFailedWriteAndTheFileIsNeverSeen) {
  lethe::testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto index, EntryIndex::Create(dir.path()));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  auto leaf = [](uint64_t i) { return std::string(32, static_cast<char>('a' + i % 26)) ; };
  auto loc = [](uint64_t i) {
    return EntryIndex::Location{static_cast<uint32_t>(i / 100), static_cast<uint32_t>(i % 977),
                                i * 1000003};
  };
  auto check = [&](uint64_t n) {
    ASSERT_EQ(index->size(), n);
    for (uint64_t i = 0; i < n; i += 7) {
      ASSERT_OK_AND_ASSIGN(const EntryIndex::Location l, index->LocationOf(i));
      EXPECT_EQ(l.segment, loc(i).segment);
      EXPECT_EQ(l.length, loc(i).length);
      EXPECT_EQ(l.offset, loc(i).offset) << i;
    }
    std::string leaves;
    ASSERT_OK(index->ReadLeaves(n - 70, 70, &leaves));
    for (uint64_t i = 0; i < 70; ++i) ASSERT_EQ(leaves.substr(i * 32, 32), leaf(n - 70 + i));
  };
  const uint64_t per_flush = EntryIndex::kFlushBytes / EntryIndex::kRecordSize;
  uint64_t n = 0;
  for (; n < 2 * per_flush + 5; ++n) index->Append(leaf(n), loc(n));
  check(n);

  struct sigaction ignore = {}, old_action = {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  rlimit old_limit = {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const rlimit limit = {static_cast<rlim_t>(2 * EntryIndex::kFlushBytes + 100), old_limit.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  for (; n < 5 * per_flush; ++n) index->Append(leaf(n), loc(n));
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);
  check(n);
  for (; n < 6 * per_flush + 3; ++n) index->Append(leaf(n), loc(n));
  check(n);
  EXPECT_EQ(index->LocationOf(n).status().code(), absl::StatusCode::kOutOfRange);
  std::string out;
  EXPECT_EQ(index->ReadLeaves(n - 1, 2, &out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST_F(LedgerTest, IncompleteRecordInSealedSegmentIsDataLoss) {
  max_segment_bytes_ = 512;
  MakeLog(20);
  const auto segments = SegmentFiles(dir_.path());
  ASSERT_GE(segments.size(), 2u);
  const auto recs = RecordsIn(ReadBytes(segments[0]));
  ASSERT_FALSE(recs.empty());
  fs::resize_file(segments[0], recs.back().offset + 5);
  const auto files = Snapshot(dir_.path());

  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr(BaseName(segments[0])));
  EXPECT_THAT(std::string(ledger.status().message()),
              HasSubstr(absl::StrCat("entry ", recs.size() - 1, " at")));
  EXPECT_EQ(Snapshot(dir_.path()), files);
}

TEST_F(LedgerTest, CheckpointsFollowTheEntryCountOnDemandAndOnClose) {
  LedgerOptions o = Options();
  o.checkpoint_every = 3;
  auto ledger = Ledger::Open(o, nullptr);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  auto size_of = [&](const std::string& note) {
    auto cp = VerifyCheckpoint(note, kOrigin, key_.public_key());
    EXPECT_TRUE(cp.ok()) << cp.status();
    return cp.ok() ? cp->size : ~0ull;
  };
  EXPECT_EQ(size_of((*ledger)->LatestCheckpoint()), 1u);  // signed at open
  ASSERT_TRUE((*ledger)->Append({TestEntry(1)}, kNow).ok());
  ASSERT_TRUE((*ledger)->Append({TestEntry(2)}, kNow).ok());
  EXPECT_EQ(size_of((*ledger)->LatestCheckpoint()), 1u);  // 2 uncovered < 3
  ASSERT_TRUE((*ledger)->Append({TestEntry(3)}, kNow).ok());
  EXPECT_EQ(size_of((*ledger)->LatestCheckpoint()), 4u);  // 3 uncovered: signed
  ASSERT_TRUE((*ledger)->Append({TestEntry(4)}, kNow).ok());
  auto fresh = (*ledger)->Checkpoint();
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(size_of(*fresh), 5u);
  EXPECT_EQ(ReadBytes(CheckpointPath()), *fresh);
  ASSERT_TRUE((*ledger)->Append({TestEntry(5)}, kNow).ok());
  ledger->reset();  // a clean close covers everything
  EXPECT_EQ(size_of(ReadBytes(CheckpointPath())), 6u);
}

TEST_F(LedgerTest, CheckpointTimerCoversEntriesWithoutFurtherAppends) {
  LedgerOptions o = Options();
  o.checkpoint_every = 1000;
  o.checkpoint_interval = absl::Milliseconds(20);
  auto ledger = Ledger::Open(o, nullptr);
  ASSERT_TRUE(ledger.ok());
  ASSERT_TRUE((*ledger)->Append({TestEntry(1), TestEntry(2)}, kNow).ok());
  bool covered = false;
  for (int i = 0; i < 500 && !covered; ++i) {  // waits on the condition, up to 5 s
    auto cp = VerifyCheckpoint((*ledger)->LatestCheckpoint(), kOrigin, key_.public_key());
    covered = cp.ok() && cp->size == 3;
    if (!covered) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(covered);
}

TEST_F(LedgerTest, ConcurrentAppendsAreGroupCommittedInOneConsistentChain) {
  auto ledger = Open();
  ASSERT_TRUE(ledger.ok());
  constexpr int kThreads = 16, kPerThread = 100;
  std::vector<std::vector<AppendedEntry>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto a = (*ledger)->Append({TestEntry(t * 1000 + i), TestEntry(t * 1000 + i + 500)}, kNow);
        ASSERT_TRUE(a.ok()) << a.status();
        ASSERT_EQ(a->size(), 2u);
        EXPECT_EQ((*a)[1].seq, (*a)[0].seq + 1);  // one call's entries stay together
        for (auto& e : *a) got[t].push_back(std::move(e));
      }
    });
  }
  for (auto& th : threads) th.join();
  const uint64_t total = 1 + 2ull * kThreads * kPerThread;
  ASSERT_EQ((*ledger)->size(), total);
  std::vector<bool> seen(total, false);
  for (const auto& v : got) {
    for (const auto& a : v) {
      ASSERT_LT(a.seq, total);
      EXPECT_FALSE(seen[a.seq]);
      seen[a.seq] = true;
      EXPECT_EQ(*(*ledger)->ReadEntry(a.seq), a.bytes);  // acknowledged bytes are what is stored
    }
  }
  const std::string root = *(*ledger)->Root();
  ledger->reset();
  // Reopening re-checks every chain link and the closing checkpoint.
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->size(), total);
  EXPECT_EQ(*(*reopened)->Root(), root);
}

TEST_F(LedgerTest, OversizedEntryIsRejectedAndChangesNothing) {
  // No pre-zeroing: its thread extends the segment with zeros at its own pace, which would
  // show in the file snapshots below without any append having happened.
  LedgerOptions o = Options();
  o.prezero_bytes = 0;
  ASSERT_OK_AND_ASSIGN(auto ledger, Ledger::Open(o, nullptr));
  ASSERT_OK(ledger->Append({TestEntry(1), TestEntry(2)}, kNow).status());
  const uint64_t size = ledger->size();
  const std::string root = *ledger->Root();
  const std::string checkpoint = ledger->LatestCheckpoint();
  const auto files = Snapshot(dir_.path());

  v1::LedgerEntry big = TestEntry(3);
  big.mutable_request_submitted()->set_sealed(std::string(format::kMaxPayload + 1, 'x'));
  // Alone, and after a small entry of the same batch: the batch is all or nothing.
  for (auto batch : {std::vector<v1::LedgerEntry>{big},
                     std::vector<v1::LedgerEntry>{TestEntry(4), big}}) {
    auto r = ledger->Append(std::move(batch), kNow);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_EQ(ledger->size(), size);
    EXPECT_EQ(*ledger->Root(), root);
    EXPECT_EQ(ledger->LatestCheckpoint(), checkpoint);
    EXPECT_EQ(Snapshot(dir_.path()), files);
  }
  ASSERT_OK_AND_ASSIGN(auto a, ledger->Append({TestEntry(5)}, kNow));
  EXPECT_EQ(a[0].seq, size);
  ledger.reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Open());
  EXPECT_EQ(reopened->size(), size + 1);
}

TEST_F(LedgerTest, OriginThatCannotNameAKeyIsRefusedAtOpen) {
  for (const char* origin : {"my log", "a+b", ""}) {
    LedgerOptions o = Options();
    o.origin = origin;
    auto ledger = Ledger::Open(o, nullptr);
    ASSERT_FALSE(ledger.ok()) << origin;
    EXPECT_EQ(ledger.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("not a valid checkpoint key name"));
  }
  EXPECT_TRUE(SegmentFiles(dir_.path()).empty());  // nothing written
}

// An entry whose fields are out of the usual order (body before prev_hash, seq given twice)
// is valid protobuf: the fast chain check must read it as CheckChainLink's parser does, or
// `ledger verify` would refuse a log the Auditor and a replaying Open accept (found with
// tests/fuzz/segment_fuzz's invariants).
TEST(ChainLink, FastCheckAgreesWithTheParserOnFieldOrder) {
  const std::string prev = LeafHash("entry 4");
  v1::LedgerEntry body, head, tail;
  body.mutable_request_completed()->set_request_id("r");
  head.set_seq(4);
  tail.set_seq(5);
  tail.set_prev_hash(prev);
  // Serialized messages concatenate to their merge: the last seq and prev_hash win.
  const std::vector<std::pair<std::string, bool>> cases = {
      {body.SerializeAsString() + tail.SerializeAsString(), true},  // body before prev_hash
      {head.SerializeAsString() + body.SerializeAsString() + tail.SerializeAsString(), true},
      {tail.SerializeAsString() + body.SerializeAsString() + head.SerializeAsString(), false},
  };
  for (const auto& [payload, valid] : cases) {
    const ScannedRecord rec{5, "seg-00000000000000000000.log", 32, payload};
    v1::LedgerEntry entry;
    std::string full_leaf, fast_leaf;
    const absl::Status full = CheckChainLink(rec, prev, &entry, &full_leaf);
    uint32_t batch_remaining = 0;
    const absl::Status fast = CheckChainLinkFast(rec, prev, &fast_leaf, &batch_remaining);
    EXPECT_EQ(full.ok(), valid) << full;
    EXPECT_EQ(fast.ok(), valid) << fast;
    if (valid) {
      EXPECT_EQ(fast_leaf, full_leaf);
    }
  }
}

}  // namespace
}  // namespace lethe::ledger
