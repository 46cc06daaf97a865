// Unit tests for lethe_ledger: the segment format and its recovery rules (ledger.cc,
// record_format.h), RFC 9162 Merkle hashing (merkle.cc), C2SP signed checkpoints
// (checkpoint.cc) and the independent Auditor (audit.cc).
//
// Every ledger lives in its own directory under temp_directory_path() with a random suffix,
// removed when the test ends. Damage is done to the files by hand, byte by byte, the way a
// crash or a disk would do it.
#include <signal.h>
#include <sys/resource.h>
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <thread>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "audit/auditor.h"
#include "audit/certificate.h"
#include "audit/hygiene.h"
#include "base/status.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/record_format.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/rfc6962.h"

namespace lethe::ledger {
namespace {

namespace fs = std::filesystem;
using ::lethe::testing::ReadBytes;
using ::lethe::testing::TempDir;
using ::lethe::testing::WriteBytes;
using ::testing::HasSubstr;
using ::testing::StartsWith;


constexpr char kOrigin[] = "ledger-test.example/log";
const absl::Time kNow = absl::FromUnixMillis(1'700'000'000'000);
constexpr char kEmDashSpace[] = "\xE2\x80\x94 ";  // U+2014 in UTF-8, then a space

// ---------------------------------------------------------------------------------------
// Helpers


crypto::Ed25519PrivateKey NewKey() { return crypto::Ed25519PrivateKey::Generate().value(); }



// Every file of a directory by name, with its bytes.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out[e.path().filename().string()] = ReadBytes(e.path().string());
  return out;
}

// Full paths of the segment files in `dir`, in order.
std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("seg-", 0) == 0) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string BaseName(const std::string& path) { return fs::path(path).filename().string(); }

// Where one record sits in a segment, found by walking the framing as record_format.h
// describes it (independently of ScanSegments).
struct RecordPos {
  uint64_t offset = 0;  // of the 8-byte record header
  uint32_t length = 0;  // of the payload
  uint64_t payload() const { return offset + format::kRecordHeaderSize; }
  uint64_t end() const { return payload() + length; }
};

std::vector<RecordPos> RecordsIn(const std::string& segment) {
  std::vector<RecordPos> out;
  uint64_t off = format::kSegmentHeaderSize;
  while (off + format::kRecordHeaderSize <= segment.size()) {
    const uint32_t len = format::GetU32(segment.data() + off);
    if (len == 0 || off + format::kRecordHeaderSize + len > segment.size()) break;
    out.push_back(RecordPos{off, len});
    off += format::kRecordHeaderSize + len;
  }
  return out;
}

// Where the records of a segment end (past its header when it holds none).
uint64_t RecordsEnd(const std::string& segment) {
  const auto recs = RecordsIn(segment);
  return recs.empty() ? uint64_t{format::kSegmentHeaderSize} : recs.back().end();
}

// An entry whose body the ledger stores without interpreting it; sizes vary with `i`.
v1::LedgerEntry TestEntry(int i) {
  v1::LedgerEntry e;
  auto* r = e.mutable_request_submitted();
  r->set_request_id(absl::StrCat("request-", i));
  r->set_kind(v1::RequestSubmitted::ERASURE);
  r->add_target_domains("d1");
  r->set_sealed(std::string(static_cast<size_t>(10 + 7 * (i % 5)), static_cast<char>('a' + i % 26)));
  return e;
}

std::string BigEndian32(uint32_t v) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
  return out;
}

// A C2SP signed note over arbitrary `text`, assembled by hand from the spec (not by
// SignCheckpoint), so that malformed bodies can carry a valid signature.
std::string SignNoteByHand(const std::string& text, const std::string& name,
                           const crypto::Ed25519PrivateKey& key) {
  const std::string sig = BigEndian32(NoteKeyId(name, key.public_key())) + key.Sign(text);
  return text + "\n" + kEmDashSpace + name + " " + crypto::Base64(sig) + "\n";
}

// ---------------------------------------------------------------------------------------
// Ledger

class LedgerTest : public ::testing::Test {
 protected:
  LedgerOptions Options() const {
    LedgerOptions o;
    o.dir = dir_.path();
    o.origin = kOrigin;
    o.signing_key = &key_;
    o.max_segment_bytes = max_segment_bytes_;
    // Deterministic: a checkpoint after every commit, no timer.
    o.checkpoint_every = 1;
    o.checkpoint_interval = absl::ZeroDuration();
    return o;
  }
  absl::StatusOr<std::unique_ptr<Ledger>> Open(const Ledger::ReplayFn& replay = nullptr) const {
    return Ledger::Open(Options(), replay);
  }
  std::string CheckpointPath() const { return dir_.File(Ledger::kCheckpointFile); }
  std::string LastSegment() const {
    auto segs = SegmentFiles(dir_.path());
    return segs.empty() ? std::string() : segs.back();
  }

  // Creates a ledger of `n` entries (LogCreated, then TestEntry(1..n-1), one Append each),
  // closes it and returns the bytes of every entry.
  std::vector<std::string> MakeLog(int n) {
    std::vector<std::string> bytes;
    auto ledger = Open();
    EXPECT_TRUE(ledger.ok()) << ledger.status();
    if (!ledger.ok()) return bytes;
    for (int i = 1; i < n; ++i) {
      auto a = (*ledger)->Append({TestEntry(i)}, kNow);
      EXPECT_TRUE(a.ok()) << a.status();
    }
    for (uint64_t s = 0; s < (*ledger)->size(); ++s) bytes.push_back((*ledger)->ReadEntry(s).value());
    EXPECT_EQ(bytes.size(), static_cast<size_t>(n));
    return bytes;
  }

  TempDir dir_;
  crypto::Ed25519PrivateKey key_ = NewKey();
  uint64_t max_segment_bytes_ = 64u << 20;
};

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
  EXPECT_EQ(ledger->Root(), LeafHash(bytes));

  ASSERT_OK_AND_ASSIGN(Checkpoint cp,
                       VerifyCheckpoint(ledger->LatestCheckpoint(), kOrigin, key_.public_key()));
  EXPECT_EQ(cp.size, 1u);
  EXPECT_EQ(cp.root, ledger->Root());
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
  EXPECT_EQ(ledger->Root(), tree.Root());

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
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
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
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
    ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);
    ASSERT_EQ(failures.size(), 32u);
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
    root = ledger->Root();
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
  EXPECT_EQ(ledger->Root(), root);
  EXPECT_EQ(ledger->LatestCheckpoint(), checkpoint);
  EXPECT_FALSE(ledger->torn_tail_cut().has_value());
  EXPECT_EQ(Snapshot(dir_.path()), files_before) << "opening a clean ledger changed its files";
  for (uint64_t s = 0; s < bytes.size(); ++s) EXPECT_EQ(ledger->ReadEntry(s).value(), bytes[s]);

  ASSERT_OK_AND_ASSIGN(auto more, ledger->Append({TestEntry(12)}, kNow));
  EXPECT_EQ(more[0].seq, bytes.size());
  EXPECT_EQ(more[0].entry.prev_hash(), LeafHash(bytes.back()));
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
  const std::string root = ledger->Root();
  ledger.reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Open());
  EXPECT_FALSE(reopened->torn_tail_cut().has_value());
  EXPECT_EQ(reopened->size(), 6u);
  EXPECT_EQ(reopened->Root(), root);
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

// ---------------------------------------------------------------------------------------
// Pre-zeroed space (LedgerOptions::prezero_bytes). The writer keeps zeros ahead of the last
// record of the last segment, so after a crash that segment may end in zeros, and a torn
// write there leaves unwritten (zero) sectors inside a record instead of a short file.

// A ledger of 6 entries whose last one (entry 5, about 2 KiB, so that it spans sectors) was
// being written when the process died: the checkpoint on disk covers 5 entries, and the
// segment continues with `prezeroed` zero bytes after the last record.
struct CrashedWrite {
  std::string segment;
  std::string data;  // the segment as written, without the zeros after it
  RecordPos last;
  std::vector<std::string> bytes;
};

class PrezeroTest : public LedgerTest {
 protected:
  CrashedWrite MakeCrashedWrite(uint64_t prezeroed) {
    CrashedWrite out;
    std::string checkpoint_before_last, history_before_last;
    {
      auto ledger = Open();
      EXPECT_TRUE(ledger.ok()) << ledger.status();
      if (!ledger.ok()) return out;
      for (int i = 1; i <= 4; ++i) EXPECT_TRUE((*ledger)->Append({TestEntry(i)}, kNow).ok());
      checkpoint_before_last = ReadBytes(CheckpointPath());
      history_before_last = ReadBytes(dir_.File(CheckpointHistory::kFileName));
      v1::LedgerEntry big = TestEntry(5);
      big.mutable_request_submitted()->set_sealed(std::string(2048, 'x'));
      EXPECT_TRUE((*ledger)->Append({big}, kNow).ok());
      for (uint64_t s = 0; s < (*ledger)->size(); ++s)
        out.bytes.push_back((*ledger)->ReadEntry(s).value());
    }
    WriteBytes(CheckpointPath(), checkpoint_before_last);
    WriteBytes(dir_.File(CheckpointHistory::kFileName), history_before_last);
    out.segment = LastSegment();
    out.data = ReadBytes(out.segment);
    const auto recs = RecordsIn(out.data);
    EXPECT_EQ(recs.size(), 6u);
    out.last = recs.back();
    EXPECT_EQ(out.last.end(), out.data.size());
    fs::resize_file(out.segment, out.data.size() + prezeroed);
    return out;
  }

  // Zeroes [from, to) of the segment, as if those bytes never reached the disk.
  void Unwrite(const CrashedWrite& c, uint64_t from, uint64_t to) {
    std::string d = ReadBytes(c.segment);
    std::fill(d.begin() + static_cast<std::ptrdiff_t>(from), d.begin() + static_cast<std::ptrdiff_t>(to), '\0');
    WriteBytes(c.segment, d);
  }

  // Opens the crashed ledger and checks that exactly the last record was cut.
  void ExpectLastRecordCut(const CrashedWrite& c) {
    const uint64_t file_size = fs::file_size(c.segment);
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    ASSERT_TRUE(ledger->torn_tail_cut().has_value());
    EXPECT_EQ(ledger->torn_tail_cut()->segment, BaseName(c.segment));
    EXPECT_EQ(ledger->torn_tail_cut()->offset, c.last.offset);
    EXPECT_EQ(ledger->torn_tail_cut()->bytes, file_size - c.last.offset);
    EXPECT_FALSE(ledger->torn_tail_cut()->zeros);
    EXPECT_EQ(ledger->size(), 5u);
    EXPECT_EQ(ReadBytes(c.segment), c.data.substr(0, c.last.offset));
    for (uint64_t s = 0; s < 5; ++s) EXPECT_EQ(ledger->ReadEntry(s).value(), c.bytes[s]);
    ASSERT_OK_AND_ASSIGN(auto appended, ledger->Append({TestEntry(50)}, kNow));
    EXPECT_EQ(appended[0].seq, 5u);
    EXPECT_EQ(appended[0].entry.prev_hash(), LeafHash(c.bytes[4]));
  }
};

TEST_F(PrezeroTest, ZerosAfterTheLastRecordAreNotATornRecord) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  // Entry 5 reached the disk whole: nothing but the zeros goes.
  ASSERT_OK_AND_ASSIGN(auto ledger, Open());
  ASSERT_TRUE(ledger->torn_tail_cut().has_value());
  EXPECT_TRUE(ledger->torn_tail_cut()->zeros);
  EXPECT_EQ(ledger->torn_tail_cut()->offset, c.data.size());
  EXPECT_EQ(ledger->torn_tail_cut()->bytes, 64u << 10);
  EXPECT_EQ(ledger->size(), 6u);
  EXPECT_EQ(ReadBytes(c.segment), c.data);
}

TEST_F(PrezeroTest, RecordWhoseLaterSectorsWereNeverWrittenIsCut) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  // The record's first sector reached the disk, the following ones did not.
  const uint64_t next_sector = (c.last.offset / 512 + 1) * 512;
  ASSERT_LT(next_sector + 512, c.last.end());
  Unwrite(c, next_sector, c.last.end());
  ExpectLastRecordCut(c);
}

TEST_F(PrezeroTest, RecordWithOneUnwrittenSectorInTheMiddleIsCut) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  const uint64_t sector = (c.last.offset / 512 + 2) * 512;
  ASSERT_LE(sector + 512, c.last.end());
  Unwrite(c, sector, sector + 512);
  ExpectLastRecordCut(c);
}

TEST_F(PrezeroTest, WriteWhoseStartNeverReachedTheDiskIsCut) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  // Everything from the record header to the next sector boundary is zero, later bytes of
  // the same write are there: the header reads as the end of the records, and what follows
  // is an unacknowledged write.
  Unwrite(c, c.last.offset, (c.last.offset / 512 + 1) * 512);
  ExpectLastRecordCut(c);
}

TEST_F(PrezeroTest, FlippedBitInTheLastRecordIsStillCorruption) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  std::string d = ReadBytes(c.segment);
  d[c.last.payload() + 1000] ^= 0x10;
  WriteBytes(c.segment, d);
  const auto files = Snapshot(dir_.path());
  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("record checksum mismatch"));
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("entry 5 at"));
  EXPECT_EQ(Snapshot(dir_.path()), files);
}

// The write reached the disk up to a byte inside the record (1, 7 or 300 bytes before its
// end, mid-sector) and no further: zeros from there on, through the pre-zeroed space. A tear
// need not fall on a sector's edge.
TEST_F(PrezeroTest, ZerosFromTheLastByteOfTheLastRecordOnAreATear) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  ASSERT_NE((c.last.end() - 1) % 512, 0u);
  Unwrite(c, c.last.end() - 1, c.last.end());
  ExpectLastRecordCut(c);
}

TEST_F(PrezeroTest, ZerosFromSevenBytesBeforeTheLastRecordsEndOnAreATear) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  ASSERT_NE((c.last.end() - 7) % 512, 0u);
  Unwrite(c, c.last.end() - 7, c.last.end());
  ExpectLastRecordCut(c);
}

TEST_F(PrezeroTest, ZerosFromMidSectorInsideTheLastRecordOnAreATear) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  ASSERT_NE((c.last.end() - 300) % 512, 0u);
  Unwrite(c, c.last.end() - 300, c.last.end());
  ExpectLastRecordCut(c);
}

TEST_F(PrezeroTest, ZerosInsideTheLastRecordThatDoNotReachItsEndAreCorruption) {
  const CrashedWrite c = MakeCrashedWrite(64u << 10);
  // 7 zero bytes mid-record, its last bytes intact: no write was torn there.
  const uint64_t at = c.last.end() - 20;
  std::string d = ReadBytes(c.segment);
  const std::string before = d;
  std::fill(d.begin() + static_cast<std::ptrdiff_t>(at), d.begin() + static_cast<std::ptrdiff_t>(at + 7), '\0');
  ASSERT_NE(d, before);
  WriteBytes(c.segment, d);
  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
}

TEST_F(PrezeroTest, AnOpenLedgerKeepsZerosAheadAndItsFilesReopenAfterACrash) {
  LedgerOptions o = Options();
  o.prezero_bytes = 256u << 10;
  o.checkpoint_every = 1000;  // entries after the checkpoint, as after most crashes
  auto ledger = Ledger::Open(o, nullptr);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  const std::string segment = LastSegment();
  EXPECT_EQ(fs::file_size(segment), ReadBytes(segment).size());
  uint64_t records_end = 0;
  bool zeros_ahead = false;
  // Pre-zeroing runs in the background: append until zeros are there (bounded).
  for (int i = 1; i <= 2000 && !zeros_ahead; ++i) {
    ASSERT_OK((*ledger)->Append({TestEntry(i)}, kNow).status());
    const std::string d = ReadBytes(segment);
    records_end = RecordsEnd(d);
    zeros_ahead = d.size() > records_end;
  }
  ASSERT_TRUE(zeros_ahead) << "no zeros were written ahead of the records";
  const std::string data = ReadBytes(segment);
  EXPECT_EQ(data.find_first_not_of('\0', records_end), std::string::npos);
  const uint64_t size = (*ledger)->size();
  const std::string root = (*ledger)->Root();

  // What the disk holds if the process dies now: a copy of the files while the ledger is open.
  TempDir crashed;
  for (const auto& e : fs::directory_iterator(dir_.path()))
    fs::copy_file(e.path(), crashed.File(e.path().filename().string()));
  LedgerOptions co = o;
  co.dir = crashed.path();
  {
    ASSERT_OK_AND_ASSIGN(auto reopened, Ledger::Open(co, nullptr));
    ASSERT_TRUE(reopened->torn_tail_cut().has_value());
    EXPECT_TRUE(reopened->torn_tail_cut()->zeros);
    EXPECT_EQ(reopened->torn_tail_cut()->offset, records_end);
    EXPECT_EQ(reopened->size(), size);
    EXPECT_EQ(reopened->Root(), root);
  }

  // A clean close leaves no zeros behind.
  ledger->reset();
  EXPECT_EQ(fs::file_size(segment), RecordsIn(ReadBytes(segment)).back().end());
}

TEST_F(PrezeroTest, WhenZeroingFailsAppendsGoOnWithoutIt) {
  // A file-size limit of 32 KiB (SIGXFSZ ignored) from the start: the first run of zeros
  // (64 KiB) fails with EFBIG, and appends must go on, extending the file, up to the limit.
  struct sigaction ignore = {}, old_action = {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  rlimit old_limit = {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  constexpr uint64_t kLimit = 32u << 10;
  const rlimit limit = {static_cast<rlim_t>(kLimit), old_limit.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  struct Restore {
    rlimit l;
    struct sigaction a;
    ~Restore() {
      ::setrlimit(RLIMIT_FSIZE, &l);
      ::sigaction(SIGXFSZ, &a, nullptr);
    }
  } restore{old_limit, old_action};

  LedgerOptions o = Options();
  o.prezero_bytes = 64u << 10;
  auto ledger = Ledger::Open(o, nullptr);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  const std::string segment = LastSegment();
  std::vector<std::string> acked;
  auto append = [&] {
    v1::LedgerEntry e = TestEntry(static_cast<int>(acked.size()) + 1);
    e.mutable_request_submitted()->set_sealed(std::string(1000, 'z'));
    auto a = (*ledger)->Append({e}, kNow);
    if (a.ok()) acked.push_back(a->at(0).bytes);
    return a.status();
  };
  auto records_end = [&] { return RecordsEnd(ReadBytes(segment)); };
  absl::Status st;
  while (st.ok() && records_end() + 2048 < kLimit) st = append();
  EXPECT_TRUE(st.ok()) << "an append failed below the limit: " << st;
  EXPECT_GT(acked.size(), 20u);
  EXPECT_LE(fs::file_size(segment), kLimit);

  // With room again, appends go on past the limit.
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  for (int i = 0; i < 40; ++i) ASSERT_OK(append());
  EXPECT_GT(records_end(), kLimit);
  ledger->reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Ledger::Open(o, nullptr));
  ASSERT_EQ(reopened->size(), 1 + acked.size());
  for (size_t i = 0; i < acked.size(); ++i) EXPECT_EQ(reopened->ReadEntry(i + 1).value(), acked[i]);
}

TEST_F(PrezeroTest, SealedSegmentsEndWithTheirLastRecord) {
  max_segment_bytes_ = 8u << 10;
  LedgerOptions o = Options();
  o.prezero_bytes = 4u << 10;
  auto ledger = Ledger::Open(o, nullptr);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  for (int i = 1; i <= 300; ++i) ASSERT_OK((*ledger)->Append({TestEntry(i)}, kNow).status());
  const auto segments = SegmentFiles(dir_.path());
  ASSERT_GT(segments.size(), 3u);
  // Checked while the ledger is open: only the last segment may have zeros ahead.
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    const std::string d = ReadBytes(segments[i]);
    ASSERT_FALSE(RecordsIn(d).empty());
    EXPECT_EQ(RecordsIn(d).back().end(), d.size()) << BaseName(segments[i]);
  }
  const uint64_t size = (*ledger)->size();
  ledger->reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Ledger::Open(o, nullptr));
  EXPECT_FALSE(reopened->torn_tail_cut().has_value());
  EXPECT_EQ(reopened->size(), size);
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
  const std::string root = (*ledger)->Root();
  ledger->reset();
  // Reopening re-checks every chain link and the closing checkpoint.
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->size(), total);
  EXPECT_EQ((*reopened)->Root(), root);
}

TEST_F(LedgerTest, OversizedEntryIsRejectedAndChangesNothing) {
  // No pre-zeroing: its thread extends the segment with zeros at its own pace, which would
  // show in the file snapshots below without any append having happened.
  LedgerOptions o = Options();
  o.prezero_bytes = 0;
  ASSERT_OK_AND_ASSIGN(auto ledger, Ledger::Open(o, nullptr));
  ASSERT_OK(ledger->Append({TestEntry(1), TestEntry(2)}, kNow).status());
  const uint64_t size = ledger->size();
  const std::string root = ledger->Root();
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
    EXPECT_EQ(ledger->Root(), root);
    EXPECT_EQ(ledger->LatestCheckpoint(), checkpoint);
    EXPECT_EQ(Snapshot(dir_.path()), files);
  }
  ASSERT_OK_AND_ASSIGN(auto a, ledger->Append({TestEntry(5)}, kNow));
  EXPECT_EQ(a[0].seq, size);
  ledger.reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Open());
  EXPECT_EQ(reopened->size(), size + 1);
}

// ---------------------------------------------------------------------------------------
// Merkle

// RFC 9162 §2.1.1 MTH, written out slowly: split at the largest power of two < n.
std::string ReferenceRoot(const std::vector<std::string>& leaves, size_t begin, size_t end) {
  const size_t n = end - begin;
  if (n == 0) return crypto::Sha256("");
  if (n == 1) return crypto::Sha256(std::string(1, '\x00') + leaves[begin]);
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return crypto::Sha256(std::string(1, '\x01') + ReferenceRoot(leaves, begin, begin + k) +
                        ReferenceRoot(leaves, begin + k, end));
}

TEST(Merkle, CompactRangeMatchesReferenceTreeForEverySize) {
  std::mt19937_64 rng(9162);
  std::vector<std::string> leaves;
  for (int i = 0; i < 300; ++i) {
    std::string leaf(rng() % 48, '\0');
    for (char& c : leaf) c = static_cast<char>(rng());
    leaves.push_back(std::move(leaf));
  }
  CompactRange range;
  EXPECT_EQ(range.size(), 0u);
  EXPECT_EQ(crypto::Hex(range.Root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(EmptyRoot(), crypto::Sha256(""));
  for (size_t n = 1; n <= leaves.size(); ++n) {
    range.Append(LeafHash(leaves[n - 1]));
    ASSERT_EQ(range.size(), n);
    ASSERT_EQ(crypto::Hex(range.Root()), crypto::Hex(ReferenceRoot(leaves, 0, n))) << "size " << n;
  }
}

TEST(Merkle, LeafAndNodeHashesAreDomainSeparated) {
  const std::string a = crypto::Sha256("a"), b = crypto::Sha256("b");
  EXPECT_EQ(LeafHash("abc"), crypto::Sha256(std::string("\x00", 1) + "abc"));
  EXPECT_EQ(NodeHash(a, b), crypto::Sha256("\x01" + a + b));
  EXPECT_NE(NodeHash(a, b), NodeHash(b, a));
  EXPECT_NE(LeafHash(a + b), NodeHash(a, b));
}

TEST(Merkle, Rfc6962KnownAnswerRoots) {
  // The leaves of the RFC 6962 / transparency-dev test tree. Roots for sizes 1-3 and 5-8 are
  // the happy-path roots of tests/testdata/rfc9162 (inclusion/, consistency/); size 4
  // comes from an independent reference implementation.
  const std::vector<std::string> leaves = ::lethe::testing::Rfc6962TestLeaves();
  const std::vector<std::string> roots = {
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
  };
  ASSERT_EQ(leaves[7].size(), 16u);
  CompactRange range;
  for (size_t i = 0; i < leaves.size(); ++i) {
    range.Append(LeafHash(leaves[i]));
    EXPECT_EQ(crypto::Hex(range.Root()), roots[i]) << "size " << i + 1;
  }
  EXPECT_EQ(crypto::Hex(range.Root()),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
}

// ---------------------------------------------------------------------------------------
// Checkpoint

// The example key of golang.org/x/mod/sumdb/note (note_test.go): skey
// "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", its seed
// wrapped here in PKCS#8. A published test key, not a secret.
constexpr char kPeterNeumannPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIIEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n"
    "-----END PRIVATE KEY-----\n";

TEST(Checkpoint, NoteKeyIdAndVerifierKeyMatchTheGoReference) {
  ASSERT_OK_AND_ASSIGN(auto key, crypto::Ed25519PrivateKey::FromPem(kPeterNeumannPem));
  EXPECT_EQ(NoteKeyId("PeterNeumann", key.public_key()), 0xc74f20a3u);
  EXPECT_EQ(VerifierKey("PeterNeumann", key.public_key()),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
  // Ed25519 is deterministic: the hand-built note must equal the published one byte for byte.
  const std::string text =
      "If you think cryptography is the answer to your problem,\n"
      "then you don't know what your problem is.\n";
  EXPECT_EQ(SignNoteByHand(text, "PeterNeumann", key),
            text + "\n" + kEmDashSpace +
                "PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
  // ... and SignCheckpoint signs exactly like that.
  const Checkpoint cp{"PeterNeumann", 8, crypto::Sha256("root")};
  EXPECT_EQ(SignCheckpoint(cp, key), SignNoteByHand(CheckpointBody(cp), "PeterNeumann", key));
}

TEST(Checkpoint, NoteKeyIdIsSha256OfNameNewlineTypeAndKey) {
  const auto key = NewKey();
  const std::string h = crypto::Sha256(std::string(kOrigin) + "\n" + "\x01" + key.public_key().raw());
  const uint32_t want = (static_cast<uint32_t>(static_cast<uint8_t>(h[0])) << 24) |
                        (static_cast<uint32_t>(static_cast<uint8_t>(h[1])) << 16) |
                        (static_cast<uint32_t>(static_cast<uint8_t>(h[2])) << 8) |
                        static_cast<uint32_t>(static_cast<uint8_t>(h[3]));
  EXPECT_EQ(NoteKeyId(kOrigin, key.public_key()), want);
}

TEST(Checkpoint, SignThenVerifyRoundTripsWithTheC2spShape) {
  const auto key = NewKey();
  const Checkpoint cp{kOrigin, 12345, crypto::Sha256("a root")};
  const std::string note = SignCheckpoint(cp, key);

  ASSERT_OK_AND_ASSIGN(Checkpoint got, VerifyCheckpoint(note, kOrigin, key.public_key()));
  EXPECT_EQ(got.origin, cp.origin);
  EXPECT_EQ(got.size, cp.size);
  EXPECT_EQ(got.root, cp.root);

  std::vector<std::string> lines = absl::StrSplit(note, '\n');
  ASSERT_EQ(lines.size(), 6u) << note;  // 3 text lines, blank, signature, "" after the last \n
  EXPECT_EQ(lines[0], kOrigin);
  EXPECT_EQ(lines[1], "12345");
  EXPECT_EQ(lines[2], crypto::Base64(cp.root));
  EXPECT_EQ(lines[3], "");
  EXPECT_EQ(lines[5], "");
  EXPECT_EQ(CheckpointBody(cp), lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n");
  const std::string prefix = std::string(kEmDashSpace) + kOrigin + " ";
  ASSERT_THAT(lines[4], StartsWith(prefix));
  ASSERT_OK_AND_ASSIGN(std::string sig, crypto::FromBase64(lines[4].substr(prefix.size())));
  ASSERT_EQ(sig.size(), 68u);
  EXPECT_EQ(sig.substr(0, 4), BigEndian32(NoteKeyId(kOrigin, key.public_key())));
  EXPECT_TRUE(key.public_key().Verify(CheckpointBody(cp), sig.substr(4)));
}

class CheckpointRejectTest : public ::testing::Test {
 protected:
  absl::StatusCode Verify(const std::string& note) const {
    return VerifyCheckpoint(note, kOrigin, key_.public_key()).status().code();
  }
  // A correctly signed note over hand-written body lines.
  std::string Signed(const std::string& size_line, const std::string& root_line) const {
    return SignNoteByHand(std::string(kOrigin) + "\n" + size_line + "\n" + root_line + "\n",
                          kOrigin, key_);
  }
  const crypto::Ed25519PrivateKey key_ = NewKey();
  const Checkpoint cp_{kOrigin, 42, crypto::Sha256("root")};
  const std::string note_ = SignCheckpoint(cp_, key_);
};

TEST_F(CheckpointRejectTest, ChangedSizeOrRootIsPermissionDenied) {
  ASSERT_EQ(Verify(note_), absl::StatusCode::kOk);
  std::string size_changed = note_;
  size_changed.replace(size_changed.find("\n42\n"), 4, "\n43\n");
  EXPECT_EQ(Verify(size_changed), absl::StatusCode::kPermissionDenied);

  const std::string old_root = crypto::Base64(cp_.root);
  std::string root_changed = note_;
  root_changed.replace(root_changed.find(old_root), old_root.size(),
                       crypto::Base64(crypto::Sha256("other root")));
  EXPECT_EQ(Verify(root_changed), absl::StatusCode::kPermissionDenied);
}

TEST_F(CheckpointRejectTest, SignatureByAnotherKeyIsPermissionDenied) {
  EXPECT_EQ(Verify(SignCheckpoint(cp_, NewKey())), absl::StatusCode::kPermissionDenied);
}

TEST_F(CheckpointRejectTest, SignatureOnlyUnderAnotherNameIsPermissionDenied) {
  const std::string body = CheckpointBody(cp_);
  EXPECT_EQ(Verify(SignNoteByHand(body, "someone.else/log", key_)),
            absl::StatusCode::kPermissionDenied);
  // Even with our key id and a valid signature by our key, the line must carry our name.
  const std::string sig = BigEndian32(NoteKeyId(kOrigin, key_.public_key())) + key_.Sign(body);
  EXPECT_EQ(Verify(body + "\n" + kEmDashSpace + "someone.else/log " + crypto::Base64(sig) + "\n"),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(CheckpointRejectTest, MissingBlankLineIsInvalidArgument) {
  std::string note = note_;
  note.erase(note.find("\n\n"), 1);
  auto got = VerifyCheckpoint(note, kOrigin, key_.public_key());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("blank line"));
}

TEST_F(CheckpointRejectTest, MalformedSizeIsInvalidArgument) {
  const std::string root = crypto::Base64(cp_.root);
  ASSERT_EQ(Verify(Signed("42", root)), absl::StatusCode::kOk);
  ASSERT_EQ(Verify(Signed("0", root)), absl::StatusCode::kOk);
  for (const char* size : {"", "4a", "0x2a", "-1", "042", "00", "+42", " 42", "42 ",
                           "18446744073709551616"}) {
    EXPECT_EQ(Verify(Signed(size, root)), absl::StatusCode::kInvalidArgument)
        << "size line \"" << size << "\"";
  }
}

TEST_F(CheckpointRejectTest, RootNotA32ByteHashIsInvalidArgument) {
  const std::string h = crypto::Sha256("root");
  for (const std::string& root :
       {crypto::Base64(h.substr(0, 31)), crypto::Base64(h + "x"), std::string("not base64!"),
        std::string()}) {
    EXPECT_EQ(Verify(Signed("42", root)), absl::StatusCode::kInvalidArgument)
        << "root line \"" << root << "\"";
  }
}

TEST_F(CheckpointRejectTest, UnknownExtraSignatureLineIsIgnored) {
  // A witness cosignature under another name, after and before ours; and a signature under
  // our name by another key (say, a retired one), whose key id is not ours.
  const auto witness = NewKey();
  const std::string body = CheckpointBody(cp_);
  const std::string their_line =
      SignNoteByHand(body, "witness.example/w1", witness).substr(body.size() + 1);
  const std::string retired_line = SignNoteByHand(body, kOrigin, NewKey()).substr(body.size() + 1);
  const std::string our_line = note_.substr(body.size() + 1);
  ASSERT_THAT(our_line, StartsWith(kEmDashSpace));
  for (const std::string& note : {note_ + their_line, body + "\n" + their_line + our_line,
                                  body + "\n" + retired_line + our_line}) {
    ASSERT_OK_AND_ASSIGN(Checkpoint got, VerifyCheckpoint(note, kOrigin, key_.public_key()));
    EXPECT_EQ(got.size, 42u);
    EXPECT_EQ(got.root, cp_.root);
  }
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

// Found by tests/fuzz/checkpoint_fuzz: an origin with a space parsed, and a checkpoint signed
// under it could never be verified (the signature line "— <name> <sig>" splits at the first
// space), not even by the ledger that wrote it, at its next open.
TEST(Checkpoint, OriginMustBeAKeyNameWithoutSpacesOrPlus) {
  for (const char* name : {"lethe.local/ledger", "example.com/log-1", "日志/ä", "a"}) {
    EXPECT_TRUE(IsValidKeyName(name)) << name;
  }
  for (const std::string& name :
       {std::string(""), std::string("my log"), std::string("a+b"), std::string("tab\there"),
        std::string("cr\r"), std::string("nbsp\xC2\xA0"), std::string("ideographic\xE3\x80\x80"),
        std::string("en\xE2\x80\x82space"), std::string("bad\xFFutf8"), std::string("cut\xE2\x80"),
        std::string("overlong\xC0\xAF"), std::string("surrogate\xED\xA0\x80")}) {
    EXPECT_FALSE(IsValidKeyName(name)) << name;
  }
  const auto key = NewKey();
  const std::string note = SignNoteByHand("my log\n1\n" + crypto::Base64(crypto::Sha256("r")) + "\n",
                                          "my", key);
  EXPECT_EQ(ParseCheckpointUnverified(note).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyCheckpoint(note, "my log", key.public_key()).status().code(),
            absl::StatusCode::kPermissionDenied);
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

TEST(Checkpoint, VerifierKeyIsNamePlusHexKeyIdPlusBase64TypedKey) {
  const auto key = NewKey();
  const std::string vkey = VerifierKey(kOrigin, key.public_key());
  const std::string prefix = std::string(kOrigin) + "+";
  ASSERT_THAT(vkey, StartsWith(prefix));
  const std::string rest = vkey.substr(prefix.size());
  ASSERT_GT(rest.size(), 9u);
  EXPECT_EQ(rest[8], '+');
  const std::string hex = rest.substr(0, 8);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << hex;
  ASSERT_OK_AND_ASSIGN(std::string id, crypto::FromHex(hex));
  EXPECT_EQ(id, BigEndian32(NoteKeyId(kOrigin, key.public_key())));
  EXPECT_EQ(rest.substr(9), crypto::Base64("\x01" + key.public_key().raw()));
}

// ---------------------------------------------------------------------------------------
// Auditor

// ---- policies, consent, deadlines and identity mapping in the audit ------------------------

constexpr char kAuditPolicy[] =
    "version: 1\nname: audit\nidentities: [email, user_id]\n"
    "purposes:\n  - name: marketing\n    description: x\n    domains: [d1]\n    erase_on_withdrawal: true\n"
    "deadlines:\n  erasure: 30d\n  max_extension: 60d\n"
    "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
    "          identity: email\n          action: delete\n";

v1::LedgerEntry Activated(uint64_t activation, const std::string& yaml, const std::string& hash) {
  v1::LedgerEntry e;
  auto* pa = e.mutable_policy_activated();
  pa->set_activation(activation);
  pa->set_format_version(1);
  pa->set_policy_yaml(yaml);
  pa->set_policy_hash(hash);
  pa->set_source("test");
  e.mutable_actor()->set_role("admin");
  e.mutable_actor()->set_name("root");
  return e;
}

std::string AuditPolicyHash() {
  auto p = policies::Policy::Parse(kAuditPolicy, "audit");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->Hash() : "";
}

// Two domains keyed by email.
constexpr char kAuditPolicy2Email[] =
    "version: 1\nname: audit2e\nidentities: [email, user_id]\n"
    "deadlines:\n  erasure: 30d\n  max_extension: 60d\n"
    "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
    "          identity: email\n          action: delete\n"
    "  - name: d2\n    postgres:\n      tables:\n        - table: v\n          key: email\n"
    "          identity: email\n          action: delete\n";

// Both domains, d2 keyed by user_id.
constexpr char kTwoDomainPolicy[] =
    "version: 1\nname: audit2\nidentities: [email, user_id]\n"
    "deadlines:\n  erasure: 30d\n  max_extension: 60d\n"
    "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
    "          identity: email\n          action: delete\n"
    "  - name: d2\n    postgres:\n      tables:\n        - table: u\n          key: user_id\n"
    "          identity: user_id\n          action: delete\n";

std::string PolicyHash(const char* yaml) {
  auto p = policies::Policy::Parse(yaml, "audit");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->Hash() : "";
}

// The domain hash a command for `domain` carries in these tests: its section in the policy
// the test activates. d1's section is the same in every audit policy; d2's is keyed by
// user_id (kTwoDomainPolicy) unless a test sets another.
std::string DomainHashIn(const std::string& domain, const char* yaml = nullptr);

std::string DomainHashIn(const std::string& domain, const char* yaml) {
  if (yaml == nullptr) yaml = domain == "d2" ? kTwoDomainPolicy : kAuditPolicy;
  auto p = policies::Policy::Parse(yaml, "audit");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->DomainHash(domain) : "";
}

v1::LedgerEntry Operator(v1::LedgerEntry e) {
  e.mutable_actor()->set_role("operator");
  e.mutable_actor()->set_name("olga");
  return e;
}

// What an auditor is handed: every entry's bytes, and the signed checkpoints.
struct WrittenLog {
  std::vector<std::string> bytes;
  std::vector<std::string> checkpoints;  // after each append: [i] covers i + 1 entries
  std::string root;
};

// Writes `entries` after entry 0 into a real Ledger signed by `key` (one Append each).
WrittenLog WriteLog(const crypto::Ed25519PrivateKey& key, const std::vector<v1::LedgerEntry>& entries) {
  WrittenLog out;
  TempDir dir;
  LedgerOptions o;
  o.dir = dir.path();
  o.origin = kOrigin;
  o.signing_key = &key;
  o.checkpoint_every = 1;  // one checkpoint per entry, for the prefix tests
  o.checkpoint_interval = absl::ZeroDuration();
  auto ledger = Ledger::Open(o, nullptr);
  EXPECT_TRUE(ledger.ok()) << ledger.status();
  if (!ledger.ok()) return out;
  out.checkpoints.push_back((*ledger)->LatestCheckpoint());
  for (const auto& e : entries) {
    auto a = (*ledger)->Append({e}, kNow);
    EXPECT_TRUE(a.ok()) << a.status();
    out.checkpoints.push_back((*ledger)->LatestCheckpoint());
  }
  for (uint64_t s = 0; s < (*ledger)->size(); ++s) out.bytes.push_back((*ledger)->ReadEntry(s).value());
  out.root = (*ledger)->Root();
  return out;
}

struct AuditOutcome {
  absl::Status status;
  std::optional<uint64_t> failed_entry;  // Add failed on it; nullopt: Finish's verdict
  std::optional<audit::AuditReport> report;
};

AuditOutcome Audit(const crypto::Ed25519PublicKey& key, const std::string& checkpoint,
                   const std::vector<std::string>& bytes) {
  audit::Auditor auditor(key, checkpoint);
  for (uint64_t s = 0; s < bytes.size(); ++s) {
    absl::Status st = auditor.Add(s, bytes[s]);
    if (!st.ok()) return {st, s, std::nullopt};
  }
  auto report = auditor.Finish();
  if (!report.ok()) return {report.status(), std::nullopt, std::nullopt};
  return {absl::OkStatus(), std::nullopt, *report};
}

class AuditorTest : public ::testing::Test {
 protected:
  static v1::LedgerEntry Enrolled(const std::string& domain, const crypto::Ed25519PublicKey& k) {
    v1::LedgerEntry e;
    e.mutable_actor()->set_role("admin");
    e.mutable_actor()->set_name("root");
    e.mutable_agent_enrolled()->set_domain(domain);
    e.mutable_agent_enrolled()->set_public_key(k.raw());
    e.mutable_agent_enrolled()->set_key_id(k.KeyId());
    return e;
  }
  // Planned with `policy_yaml` (kAuditPolicy by default), by an operator, with an email token.
  static v1::LedgerEntry Submitted(const std::string& request, const std::vector<std::string>& targets,
                                   const char* policy_yaml = kAuditPolicy) {
    v1::LedgerEntry e;
    auto* r = e.mutable_request_submitted();
    r->set_request_id(request);
    r->set_kind(v1::RequestSubmitted::ERASURE);
    auto* t = r->add_subject();
    t->set_type("email");
    t->set_token(crypto::Sha256("token"));
    for (const auto& d : targets) r->add_target_domains(d);
    r->set_policy_hash(PolicyHash(policy_yaml));
    r->set_sealed(crypto::RandomBytes(60));  // stands for the AES-GCM blob of the identities
    return Operator(e);
  }
  static v1::LedgerEntry Issued(const std::string& command, const std::string& request,
                                const std::string& domain, const std::string& digest,
                                const char* policy_yaml = nullptr) {
    v1::LedgerEntry e;
    auto* c = e.mutable_command_issued();
    c->set_command_id(command);
    c->set_request_id(request);
    c->set_domain(domain);
    c->set_command_digest(digest);
    c->set_sealed_envelope(crypto::RandomBytes(120));
    c->set_domain_policy_hash(DomainHashIn(domain, policy_yaml));
    return e;
  }
  static v1::LedgerEntry Recorded(const std::string& command, const std::string& request,
                                  const std::string& domain, const std::string& digest,
                                  v1::Receipt::Outcome outcome,
                                  const crypto::Ed25519PrivateKey& signer) {
    v1::Receipt r;
    r.set_command_id(command);
    r.set_request_id(request);
    r.set_domain(domain);
    r.set_command_digest(digest);
    r.set_outcome(outcome);
    r.set_verified_zero_remaining(outcome == v1::Receipt::COMPLETED);
    r.set_completed_at_unix_ms(absl::ToUnixMillis(kNow));
    v1::LedgerEntry e;
    auto* rr = e.mutable_receipt_recorded();
    *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), signer);
    rr->set_command_id(command);
    rr->set_request_id(request);
    rr->set_domain(domain);
    return e;
  }
  static v1::LedgerEntry Completed(const std::string& request, v1::RequestCompleted::Outcome o) {
    v1::LedgerEntry e;
    e.mutable_request_completed()->set_request_id(request);
    e.mutable_request_completed()->set_outcome(o);
    return e;
  }

  // Entries 1..6 of a one-domain erasure: activate the policy, enrol, submit, issue, receipt,
  // complete.
  std::vector<v1::LedgerEntry> Erasure(v1::Receipt::Outcome receipt_outcome,
                                       v1::RequestCompleted::Outcome completion,
                                       const crypto::Ed25519PrivateKey& receipt_signer,
                                       const std::string& receipt_digest) const {
    return {Activated(1, kAuditPolicy, AuditPolicyHash()), Enrolled("d1", agent_.public_key()),
            Submitted("r1", {"d1"}),
            Issued("c1", "r1", "d1", digest_),
            Recorded("c1", "r1", "d1", receipt_digest, receipt_outcome, receipt_signer),
            Completed("r1", completion)};
  }
  std::vector<v1::LedgerEntry> HappyErasure() const {
    return Erasure(v1::Receipt::COMPLETED, v1::RequestCompleted::COMPLETED, agent_, digest_);
  }

  static void ExpectDataLossAt(const AuditOutcome& out, uint64_t entry) {
    EXPECT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
    EXPECT_EQ(out.failed_entry, std::optional<uint64_t>(entry)) << out.status;
    EXPECT_THAT(std::string(out.status.message()), StartsWith(absl::StrCat("entry ", entry, ": ")));
  }

  const crypto::Ed25519PrivateKey key_ = NewKey();
  const crypto::Ed25519PrivateKey agent_ = NewKey();
  const std::string digest_ = crypto::Sha256("DeleteCommand body of c1");
};

TEST_F(AuditorTest, CompleteErasureLogPassesAudit) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  ASSERT_EQ(log.bytes.size(), 7u);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_TRUE(out.report.has_value());
  EXPECT_EQ(out.report->entries, 7u);
  EXPECT_EQ(out.report->agents, 1u);
  EXPECT_EQ(out.report->requests, 1u);
  EXPECT_EQ(out.report->requests_completed, 1u);
  EXPECT_EQ(out.report->requests_failed, 0u);
  EXPECT_EQ(out.report->commands, 1u);
  EXPECT_EQ(out.report->receipts, 1u);
  EXPECT_EQ(out.report->checkpoint_size, 7u);
  EXPECT_EQ(out.report->root, log.root);
  // Who activated the policy and who enrolled the key.
  ASSERT_EQ(out.report->governance.size(), 2u);
  EXPECT_EQ(out.report->governance[0].entry, 1u);
  EXPECT_EQ(out.report->governance[0].actor.role(), "admin");
  EXPECT_THAT(out.report->governance[1].what, HasSubstr("enrolled for domain d1"));
  EXPECT_EQ(out.report->unauthenticated, 0u);
  EXPECT_EQ(out.report->origin, kOrigin);
}

TEST_F(AuditorTest, FailedReceiptWithFailedCompletionPassesAudit) {
  const WrittenLog log = WriteLog(
      key_, Erasure(v1::Receipt::FAILED, v1::RequestCompleted::FAILED, agent_, digest_));
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_EQ(out.report->requests_failed, 1u);
  EXPECT_EQ(out.report->requests_completed, 0u);
}

TEST_F(AuditorTest, OlderCheckpointVerifiesItsPrefix) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints[4], log.bytes);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_EQ(out.report->checkpoint_size, 5u);
  EXPECT_EQ(out.report->entries, 7u);
}

TEST_F(AuditorTest, ReceiptSignedByKeyNotEnrolledIsDataLoss) {
  const auto stranger = NewKey();
  const WrittenLog log = WriteLog(
      key_, Erasure(v1::Receipt::COMPLETED, v1::RequestCompleted::COMPLETED, stranger, digest_));
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 5);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("not enrolled"));
}

TEST_F(AuditorTest, ReceiptByKeyEnrolledForAnotherDomainIsDataLoss) {
  const auto other_agent = NewKey();
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  entries.insert(entries.begin() + 2, Enrolled("d2", other_agent.public_key()));
  entries[5] = Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, other_agent);
  const WrittenLog log = WriteLog(key_, entries);
  ExpectDataLossAt(Audit(key_.public_key(), log.checkpoints.back(), log.bytes), 6);
}

TEST_F(AuditorTest, ReceiptForDifferentCommandBytesIsDataLoss) {
  const WrittenLog log =
      WriteLog(key_, Erasure(v1::Receipt::COMPLETED, v1::RequestCompleted::COMPLETED, agent_,
                             crypto::Sha256("some other command body")));
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 5);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("command bytes"));
}

TEST_F(AuditorTest, CompletionBeforeReceiptFromEveryTargetIsDataLoss) {
  const auto agent2 = NewKey();
  const std::string digest2 = crypto::Sha256("DeleteCommand body of c2");
  const WrittenLog log = WriteLog(
      key_, {Activated(1, kAuditPolicy2Email, PolicyHash(kAuditPolicy2Email)),
             Enrolled("d1", agent_.public_key()), Enrolled("d2", agent2.public_key()),
             Submitted("r1", {"d1", "d2"}, kAuditPolicy2Email), Issued("c1", "r1", "d1", digest_),
             Issued("c2", "r1", "d2", digest2, kAuditPolicy2Email),
             Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, agent_),
             Completed("r1", v1::RequestCompleted::COMPLETED)});
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 8);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("d2"));
}

TEST_F(AuditorTest, CompletedOutcomeDespiteFailedReceiptIsDataLoss) {
  const WrittenLog log = WriteLog(
      key_, Erasure(v1::Receipt::FAILED, v1::RequestCompleted::COMPLETED, agent_, digest_));
  ExpectDataLossAt(Audit(key_.public_key(), log.checkpoints.back(), log.bytes), 6);
}

TEST_F(AuditorTest, FlippedPrevHashByteIsDataLossAtThatEntry) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  std::vector<std::string> bytes = log.bytes;
  v1::LedgerEntry e;
  ASSERT_TRUE(e.ParseFromString(bytes[3]));
  const size_t at = bytes[3].find(e.prev_hash());
  ASSERT_NE(at, std::string::npos);
  bytes[3][at + 7] ^= 0x04;
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), bytes);
  ExpectDataLossAt(out, 3);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("chain"));
}

TEST_F(AuditorTest, AnyFlippedByteIsDataLoss) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  const uint64_t last = log.bytes.size() - 1;
  // A middle entry (caught by it or the chain link after it) and the last one (caught by it
  // or by the checkpoint's root).
  for (uint64_t victim : {uint64_t{2}, last}) {
    for (size_t pos = 0; pos < log.bytes[victim].size(); ++pos) {
      SCOPED_TRACE(absl::StrCat("entry ", victim, " byte ", pos));
      std::vector<std::string> bytes = log.bytes;
      bytes[victim][pos] ^= 0x01;
      const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), bytes);
      ASSERT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
      if (out.failed_entry) {
        EXPECT_TRUE(*out.failed_entry == victim || *out.failed_entry == victim + 1)
            << out.status;
        EXPECT_THAT(std::string(out.status.message()),
                    StartsWith(absl::StrCat("entry ", *out.failed_entry, ": ")));
      } else {
        EXPECT_EQ(victim, last) << out.status;
      }
    }
  }
}

TEST_F(AuditorTest, LogCreatedForAnotherKeyIsDataLoss) {
  // The log was created for `other`, and a checkpoint over those very entries is signed by
  // key_, so only entry 0 gives it away.
  const auto other = NewKey();
  const WrittenLog log = WriteLog(other, HappyErasure());
  ASSERT_OK_AND_ASSIGN(Checkpoint cp, ParseCheckpointUnverified(log.checkpoints.back()));
  const std::string resigned = SignCheckpoint(cp, key_);
  ExpectDataLossAt(Audit(key_.public_key(), resigned, log.bytes), 0);
}

TEST_F(AuditorTest, CheckpointSignedByAnotherKeyIsPermissionDenied) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  ASSERT_OK_AND_ASSIGN(Checkpoint cp, ParseCheckpointUnverified(log.checkpoints.back()));
  const AuditOutcome out = Audit(key_.public_key(), SignCheckpoint(cp, NewKey()), log.bytes);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kPermissionDenied) << out.status;
  EXPECT_FALSE(out.failed_entry.has_value()) << "every entry is fine; Finish must refuse";
}

TEST_F(AuditorTest, CheckpointCoveringMoreEntriesThanFedIsDataLoss) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  std::vector<std::string> fewer(log.bytes.begin(), log.bytes.end() - 1);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), fewer);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
  EXPECT_FALSE(out.failed_entry.has_value());
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("covers 7"));
}

TEST_F(AuditorTest, CheckpointOverOtherEntriesIsDataLoss) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  const std::string forged = SignCheckpoint({kOrigin, 7, crypto::Sha256("other")}, key_);
  const AuditOutcome out = Audit(key_.public_key(), forged, log.bytes);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
  EXPECT_FALSE(out.failed_entry.has_value());
}


v1::LedgerEntry Extended(const std::string& request, int64_t seconds, int64_t new_due) {
  v1::LedgerEntry e;
  auto* x = e.mutable_deadline_extended();
  x->set_request_id(request);
  x->set_extension_seconds(seconds);
  x->set_new_due_unix_ms(new_due);
  x->set_sealed_reason(crypto::RandomBytes(44));
  return Operator(e);
}

v1::LedgerEntry ConsentWithdrawn(const std::string& change, const std::string& request,
                                 v1::ConsentStatus status = v1::WITHDRAWN) {
  v1::LedgerEntry e;
  auto* c = e.mutable_consent_changed();
  c->set_change_id(change);
  c->mutable_subject()->set_type("email");
  c->mutable_subject()->set_token(crypto::Sha256("token"));
  c->set_purpose("marketing");
  c->set_status(status);
  c->set_source("test");
  c->set_erasure_request_id(request);
  c->set_policy_hash(AuditPolicyHash());
  return Operator(e);
}

TEST_F(AuditorTest, ActivatedPolicyMustHashToItsRecordedHash) {
  const std::string hash = AuditPolicyHash();
  auto good = WriteLog(key_, {Activated(1, kAuditPolicy, hash)});
  const AuditOutcome ok = Audit(key_.public_key(), good.checkpoints.back(), good.bytes);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.report->policy_activations, 1u);
  auto bad = WriteLog(key_, {Activated(1, kAuditPolicy, crypto::Sha256("another policy"))});
  ExpectDataLossAt(Audit(key_.public_key(), bad.checkpoints.back(), bad.bytes), 1);
  auto skipped = WriteLog(key_, {Activated(1, kAuditPolicy, hash), Activated(3, kAuditPolicy, hash)});
  ExpectDataLossAt(Audit(key_.public_key(), skipped.checkpoints.back(), skipped.bytes), 2);
}

TEST_F(AuditorTest, ExtensionsBeyondTheActivePolicysCapAreDataLoss) {
  const std::string hash = AuditPolicyHash();
  v1::LedgerEntry submitted = Submitted("r1", {"d1"});
  submitted.mutable_request_submitted()->set_due_unix_ms(1000);
  constexpr int64_t kDay = 86400;
  auto within = WriteLog(key_, {Activated(1, kAuditPolicy, hash), submitted, Issued("c1", "r1", "d1", digest_),
                                Extended("r1", 20 * kDay, 1000 + 20 * kDay * 1000),
                                Extended("r1", 40 * kDay, 1000 + 60 * kDay * 1000)});
  const AuditOutcome ok = Audit(key_.public_key(), within.checkpoints.back(), within.bytes);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.report->extensions, 2u);
  auto beyond = WriteLog(key_, {Activated(1, kAuditPolicy, hash), submitted, Issued("c1", "r1", "d1", digest_),
                                Extended("r1", 20 * kDay, 1000 + 20 * kDay * 1000),
                                Extended("r1", 41 * kDay, 1000 + 61 * kDay * 1000)});
  const AuditOutcome out = Audit(key_.public_key(), beyond.checkpoints.back(), beyond.bytes);
  ExpectDataLossAt(out, 5);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("max_extension"));
  auto wrong_due = WriteLog(key_, {Activated(1, kAuditPolicy, hash), submitted, Extended("r1", kDay, 5)});
  ExpectDataLossAt(Audit(key_.public_key(), wrong_due.checkpoints.back(), wrong_due.bytes), 3);
}

TEST_F(AuditorTest, CompletionWhileADomainNeedsAnIdentityIsDataLossUntilOneIsAdded) {
  v1::LedgerEntry submitted = Submitted("r1", {"d1"}, kTwoDomainPolicy);
  auto* need = submitted.mutable_request_submitted()->add_needs_identity();
  need->set_domain("d2");
  need->add_identity_types("user_id");
  const auto agent2 = NewKey();
  const std::string digest2 = crypto::Sha256("DeleteCommand body of c2");
  const v1::LedgerEntry activated = Activated(1, kTwoDomainPolicy, PolicyHash(kTwoDomainPolicy));
  std::vector<v1::LedgerEntry> early = {
      activated, Enrolled("d1", agent_.public_key()), submitted, Issued("c1", "r1", "d1", digest_),
      Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, agent_),
      Completed("r1", v1::RequestCompleted::COMPLETED)};
  const WrittenLog log = WriteLog(key_, early);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 6);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("d2 still needed an identity"));

  v1::LedgerEntry added;
  added = Operator(added);
  added.mutable_identities_added()->set_request_id("r1");
  auto* t = added.mutable_identities_added()->add_subject();
  t->set_type("user_id");
  t->set_token(crypto::Sha256("user token"));
  added.mutable_identities_added()->add_target_domains("d2");
  added.mutable_identities_added()->set_sealed(crypto::RandomBytes(48));
  std::vector<v1::LedgerEntry> resolved = early;
  resolved.pop_back();
  resolved.insert(resolved.begin() + 2, Enrolled("d2", agent2.public_key()));
  resolved.push_back(added);
  resolved.push_back(Issued("c2", "r1", "d2", digest2));
  resolved.push_back(Recorded("c2", "r1", "d2", digest2, v1::Receipt::COMPLETED, agent2));
  resolved.push_back(Completed("r1", v1::RequestCompleted::COMPLETED));
  const WrittenLog ok_log = WriteLog(key_, resolved);
  const AuditOutcome ok = Audit(key_.public_key(), ok_log.checkpoints.back(), ok_log.bytes);
  EXPECT_TRUE(ok.status.ok()) << ok.status;
  // A command for the waiting domain before any identity was added is outside the plan.
  std::vector<v1::LedgerEntry> premature = {activated, Enrolled("d1", agent_.public_key()), submitted,
                                            Issued("c2", "r1", "d2", digest2)};
  const WrittenLog bad = WriteLog(key_, premature);
  ExpectDataLossAt(Audit(key_.public_key(), bad.checkpoints.back(), bad.bytes), 4);
}

TEST_F(AuditorTest, ConsentWithdrawalAndItsErasureMustNameEachOther) {
  v1::LedgerEntry planned = Submitted("r1", {"d1"});
  planned.mutable_request_submitted()->set_consent_change_id("ch1");
  planned.mutable_request_submitted()->set_scope_purpose("marketing");
  planned.clear_actor();  // caused by the consent change before it
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy, AuditPolicyHash());
  auto linked = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "r1"), planned,
                                Issued("c1", "r1", "d1", digest_)});
  const AuditOutcome ok = Audit(key_.public_key(), linked.checkpoints.back(), linked.bytes);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.report->consent_changes, 1u);
  // The planned erasure is missing from the log.
  auto missing = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "r1")});
  const AuditOutcome out = Audit(key_.public_key(), missing.checkpoints.back(), missing.bytes);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("does not hold"));
  // A request claiming a consent change that planned another request.
  auto other = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "r9"), planned});
  ExpectDataLossAt(Audit(key_.public_key(), other.checkpoints.back(), other.bytes), 3);
  // A grant never plans an erasure.
  auto grant = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "r1", v1::GRANTED)});
  ExpectDataLossAt(Audit(key_.public_key(), grant.checkpoints.back(), grant.bytes), 2);
}

// ---- who did it, revoked keys and the plan ----------------------------------------------------

TEST_F(AuditorTest, KeyEnrolledWithoutAnAuthenticatedAdminFailsUnlessAccepted) {
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  entries[1].clear_actor();  // as lethed --insecure (or before mTLS) wrote it
  const WrittenLog log = WriteLog(key_, entries);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("no authenticated caller"));
  audit::Auditor lenient(key_.public_key(), log.checkpoints.back(), audit::AuditOptions{.accept_unauthenticated = true});
  for (uint64_t i = 0; i < log.bytes.size(); ++i) ASSERT_TRUE(lenient.Add(i, log.bytes[i]).ok());
  auto report = lenient.Finish();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->unauthenticated, 1u);
}

TEST_F(AuditorTest, KeyEnrolledByAnOperatorIsDataLoss) {
  // The forged-completion attack: a non-admin enrols their own key for a domain.
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  entries[1] = Operator(entries[1]);
  const WrittenLog log = WriteLog(key_, entries);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("only admin may"));
}

TEST_F(AuditorTest, ReceiptByARevokedKeyIsDataLossButEarlierOnesVerify) {
  v1::LedgerEntry revoked;
  revoked.mutable_agent_key_revoked()->set_domain("d1");
  revoked.mutable_agent_key_revoked()->set_key_id(agent_.public_key().KeyId());
  revoked.mutable_actor()->set_role("admin");
  revoked.mutable_actor()->set_name("root");
  std::vector<v1::LedgerEntry> before = HappyErasure();
  before.push_back(revoked);  // after the receipt: it still verifies
  const WrittenLog ok_log = WriteLog(key_, before);
  const AuditOutcome ok = Audit(key_.public_key(), ok_log.checkpoints.back(), ok_log.bytes);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.report->key_revocations, 1u);
  std::vector<v1::LedgerEntry> after = HappyErasure();
  after.insert(after.begin() + 4, revoked);  // before the receipt
  const WrittenLog bad = WriteLog(key_, after);
  const AuditOutcome out = Audit(key_.public_key(), bad.checkpoints.back(), bad.bytes);
  ExpectDataLossAt(out, 6);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("revoked"));
}

TEST_F(AuditorTest, APlanThatDropsOrAddsADomainIsDataLoss) {
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy2Email, PolicyHash(kAuditPolicy2Email));
  // d2 is in scope (keyed by email, which the request carries) but the plan leaves it out.
  const WrittenLog dropped = WriteLog(key_, {activated, Submitted("r1", {"d1"}, kAuditPolicy2Email)});
  const AuditOutcome out = Audit(key_.public_key(), dropped.checkpoints.back(), dropped.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("r1: plan drops domain d2"));
  // A domain the policy does not have.
  const WrittenLog added = WriteLog(
      key_, {Activated(1, kAuditPolicy, AuditPolicyHash()), Submitted("r1", {"d1", "d9"})});
  const AuditOutcome out2 = Audit(key_.public_key(), added.checkpoints.back(), added.bytes);
  ExpectDataLossAt(out2, 2);
  EXPECT_THAT(std::string(out2.status.message()), HasSubstr("plan adds domain d9"));
  // Planned with a policy that is not the active one.
  const WrittenLog stale = WriteLog(key_, {activated, Submitted("r1", {"d1"}, kAuditPolicy)});
  const AuditOutcome out3 = Audit(key_.public_key(), stale.checkpoints.back(), stale.bytes);
  ExpectDataLossAt(out3, 2);
  EXPECT_THAT(std::string(out3.status.message()), HasSubstr("not the active policy"));
  // A target that never got a command.
  const WrittenLog silent = WriteLog(key_, {Activated(1, kAuditPolicy, AuditPolicyHash()), Submitted("r1", {"d1"})});
  const AuditOutcome out4 = Audit(key_.public_key(), silent.checkpoints.back(), silent.bytes);
  EXPECT_EQ(out4.status.code(), absl::StatusCode::kDataLoss) << out4.status;
  EXPECT_THAT(std::string(out4.status.message()), HasSubstr("no command was issued"));
}

// An erasure certificate whose plan left a domain out fails --verify, naming both.
TEST_F(AuditorTest, CertificateOfAPlanThatDropsADomainFailsVerification) {
  const auto agent2 = NewKey();
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy2Email, PolicyHash(kAuditPolicy2Email));
  const std::vector<v1::LedgerEntry> entries = {
      activated, Enrolled("d1", agent_.public_key()), Submitted("r1", {"d1"}, kAuditPolicy2Email),
      Issued("c1", "r1", "d1", digest_), Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, agent_),
      Completed("r1", v1::RequestCompleted::COMPLETED)};
  TempDir dir;
  LedgerOptions o;
  o.dir = dir.path();
  o.origin = kOrigin;
  o.signing_key = &key_;
  auto ledger = Ledger::Open(o, nullptr);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  for (const auto& e : entries) ASSERT_TRUE((*ledger)->Append({e}, kNow).ok());
  auto note = (*ledger)->Checkpoint();
  ASSERT_TRUE(note.ok()) << note.status();
  v1::ErasureCertificate cert;
  cert.set_format("lethe.erasure-certificate/v1");
  cert.set_request_id("r1");
  cert.set_checkpoint(*note);
  for (uint64_t i = 1; i <= entries.size(); ++i) {
    auto* pe = cert.add_entries();
    pe->set_index(i);
    pe->set_entry((*ledger)->ReadEntry(i).value());
    const std::vector<std::string> proof = (*ledger)->InclusionProof(i, entries.size() + 1).value();
    for (const auto& h : proof) pe->add_proof(h);
  }
  auto report = audit::VerifyCertificate(cert, key_.public_key());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kDataLoss) << report.status();
  EXPECT_THAT(std::string(report.status().message()), HasSubstr("r1: plan drops domain d2"));
  // Without the policy's activation the plan cannot be checked: the certificate is incomplete.
  cert.mutable_entries()->DeleteSubrange(0, 1);
  EXPECT_EQ(audit::VerifyCertificate(cert, key_.public_key()).status().code(), absl::StatusCode::kInvalidArgument);
}


// ---- rules added with the verifier verdicts (FORMAT.md §2.1, §5.3, §7) ------------------------

// Entries chained by hand, with the times given: Ledger::Append never writes a time earlier
// than the entry before, so a log that has one can only be made this way.
WrittenLog ChainByHand(const crypto::Ed25519PrivateKey& key, std::vector<v1::LedgerEntry> entries,
                       const std::vector<int64_t>& times) {
  WrittenLog out;
  MerkleTree tree;
  std::string prev(32, '\0');
  v1::LedgerEntry created;
  created.mutable_log_created()->set_origin(kOrigin);
  created.mutable_log_created()->set_control_plane_public_key(key.public_key().raw());
  entries.insert(entries.begin(), created);
  for (size_t i = 0; i < entries.size(); ++i) {
    v1::LedgerEntry& e = entries[i];
    e.set_seq(i);
    e.set_time_unix_ms(i == 0 ? 0 : times.at(i - 1));
    e.set_prev_hash(prev);
    out.bytes.push_back(e.SerializeAsString());
    prev = LeafHash(out.bytes.back());
    tree.Append(prev);
  }
  out.checkpoints.push_back(SignCheckpoint(Checkpoint{kOrigin, tree.size(), tree.Root()}, key));
  out.root = tree.Root();
  return out;
}

TEST_F(AuditorTest, AnEntryEarlierThanTheOneBeforeItIsDataLoss) {
  const std::vector<v1::LedgerEntry> entries = {Activated(1, kAuditPolicy, AuditPolicyHash()),
                                                Enrolled("d1", agent_.public_key())};
  const WrittenLog in_order = ChainByHand(key_, entries, {1000, 1000});
  ASSERT_OK(Audit(key_.public_key(), in_order.checkpoints.back(), in_order.bytes).status);
  const WrittenLog back = ChainByHand(key_, entries, {1000, 999});
  const AuditOutcome out = Audit(key_.public_key(), back.checkpoints.back(), back.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("before the time of the entry before it"));
}

TEST_F(AuditorTest, FreeTextThatLooksLikeAnIdentifierIsDataLoss) {
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy, AuditPolicyHash());
  auto grant = [](const std::string& source) {
    v1::LedgerEntry e = ConsentWithdrawn("ch1", "", v1::GRANTED);
    e.mutable_consent_changed()->set_source(source);
    return e;
  };
  for (const std::string ok : {"signup-form-v3", "import 2026-12-04", "batch 123456", "crm/eu-1"}) {
    const WrittenLog log = WriteLog(key_, {activated, grant(ok)});
    SCOPED_TRACE(ok);
    EXPECT_OK(Audit(key_.public_key(), log.checkpoints.back(), log.bytes).status);
  }
  for (const std::string bad : {"alice@example.com", "call +44 20 7946 0958", "user 73310042",
                                "(555) 555-0100", "line\nbreak"}) {
    const WrittenLog log = WriteLog(key_, {activated, grant(bad)});
    const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
    ExpectDataLossAt(out, 2);
    EXPECT_THAT(std::string(out.status.message()), HasSubstr("ConsentChanged.source"));
  }
  // The same rule for a revocation's reason (and a receipt's error: audit_rules_test T13).
  v1::LedgerEntry revoked;
  revoked.mutable_actor()->set_role("admin");
  revoked.mutable_agent_key_revoked()->set_domain("d1");
  revoked.mutable_agent_key_revoked()->set_key_id(agent_.public_key().KeyId());
  revoked.mutable_agent_key_revoked()->set_reason("laptop of bob@example.com stolen");
  const WrittenLog rev = WriteLog(key_, {activated, Enrolled("d1", agent_.public_key()), revoked});
  ExpectDataLossAt(Audit(key_.public_key(), rev.checkpoints.back(), rev.bytes), 3);
}

TEST_F(AuditorTest, ASealedFieldThatIsNotCiphertextIsDataLoss) {
  v1::LedgerEntry plain = Submitted("r1", {"d1"});
  plain.mutable_request_submitted()->set_sealed("alice@example.com, user 73310042, in clear");
  const WrittenLog log = WriteLog(key_, {Activated(1, kAuditPolicy, AuditPolicyHash()), plain});
  AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("RequestSubmitted.sealed is not a sealed envelope"));
  v1::LedgerEntry empty = Submitted("r1", {"d1"});
  empty.mutable_request_submitted()->clear_sealed();
  const WrittenLog log2 = WriteLog(key_, {Activated(1, kAuditPolicy, AuditPolicyHash()), empty});
  ExpectDataLossAt(Audit(key_.public_key(), log2.checkpoints.back(), log2.bytes), 2);
  std::vector<v1::LedgerEntry> cmd = HappyErasure();
  cmd[3].mutable_command_issued()->set_sealed_envelope("identities: alice@example.com (not sealed)");
  const WrittenLog log3 = WriteLog(key_, cmd);
  ExpectDataLossAt(Audit(key_.public_key(), log3.checkpoints.back(), log3.bytes), 4);
}

TEST_F(AuditorTest, UnknownFieldsFailUnlessAllowed) {
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  // Field 99 of RequestSubmitted: a later lethed's, or a smuggled identifier.
  entries[2].mutable_request_submitted()->GetReflection()->MutableUnknownFields(
      entries[2].mutable_request_submitted())->AddLengthDelimited(99, "alice@example.com");
  const WrittenLog log = WriteLog(key_, entries);
  const AuditOutcome strict = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(strict, 3);
  EXPECT_THAT(std::string(strict.status.message()), HasSubstr("request_submitted.#99"));
  audit::Auditor lenient(key_.public_key(), log.checkpoints.back(), audit::AuditOptions{.allow_unknown_fields = true});
  for (uint64_t i = 0; i < log.bytes.size(); ++i) ASSERT_OK(lenient.Add(i, log.bytes[i]));
  ASSERT_OK_AND_ASSIGN(audit::AuditReport report, lenient.Finish());
  EXPECT_EQ(report.unknown_field_entries, 1u);
}

TEST_F(AuditorTest, ConsentRulesFollowTheActivePolicy) {
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy, AuditPolicyHash());
  v1::LedgerEntry planned = Submitted("r1", {"d1"});
  planned.mutable_request_submitted()->set_consent_change_id("ch1");
  planned.mutable_request_submitted()->set_scope_purpose("marketing");
  planned.clear_actor();
  // marketing erases on withdrawal: a first withdrawal that plans nothing fails...
  const WrittenLog unplanned = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "")});
  const AuditOutcome out = Audit(key_.public_key(), unplanned.checkpoints.back(), unplanned.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("planned no erasure"));
  // ...a second one in a row plans nothing, and must not.
  const std::vector<v1::LedgerEntry> twice = {activated, ConsentWithdrawn("ch1", "r1"), planned,
                                              Issued("c1", "r1", "d1", digest_),
                                              ConsentWithdrawn("ch2", "")};
  const WrittenLog ok = WriteLog(key_, twice);
  EXPECT_OK(Audit(key_.public_key(), ok.checkpoints.back(), ok.bytes).status);
  std::vector<v1::LedgerEntry> replanned = twice;
  replanned.back() = ConsentWithdrawn("ch2", "r2");
  const WrittenLog bad = WriteLog(key_, replanned);
  ExpectDataLossAt(Audit(key_.public_key(), bad.checkpoints.back(), bad.bytes), 5);
  // A change recorded under another policy than the active one, or for an undeclared purpose.
  v1::LedgerEntry stale = ConsentWithdrawn("ch1", "", v1::GRANTED);
  stale.mutable_consent_changed()->set_policy_hash(crypto::Sha256("an older policy"));
  const WrittenLog s = WriteLog(key_, {activated, stale});
  ExpectDataLossAt(Audit(key_.public_key(), s.checkpoints.back(), s.bytes), 2);
  v1::LedgerEntry undeclared = ConsentWithdrawn("ch1", "", v1::GRANTED);
  undeclared.mutable_consent_changed()->set_purpose("profiling");
  const WrittenLog u = WriteLog(key_, {activated, undeclared});
  ExpectDataLossAt(Audit(key_.public_key(), u.checkpoints.back(), u.bytes), 2);
}

TEST_F(AuditorTest, ACommandMustCarryTheActivePolicysDomainHash) {
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  entries[3].mutable_command_issued()->set_domain_policy_hash(crypto::Sha256("another section"));
  const WrittenLog log = WriteLog(key_, entries);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 4);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("domain_policy_hash"));
}

TEST_F(AuditorTest, OneReceiptPerDomainDecidesItsOutcome) {
  // A re-issued command (c2) for the same domain: the receipt of either may come first and
  // decides the outcome; a second receipt for the domain is never recorded.
  const std::string digest2 = crypto::Sha256("DeleteCommand body of c2");
  std::vector<v1::LedgerEntry> entries = {
      Activated(1, kAuditPolicy, AuditPolicyHash()), Enrolled("d1", agent_.public_key()),
      Submitted("r1", {"d1"}), Issued("c1", "r1", "d1", digest_), Issued("c2", "r1", "d1", digest2),
      Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, agent_),
      Completed("r1", v1::RequestCompleted::COMPLETED)};
  const WrittenLog ok = WriteLog(key_, entries);
  EXPECT_OK(Audit(key_.public_key(), ok.checkpoints.back(), ok.bytes).status);
  entries.insert(entries.end() - 1, Recorded("c2", "r1", "d1", digest2, v1::Receipt::FAILED, agent_));
  const WrittenLog two = WriteLog(key_, entries);
  const AuditOutcome out = Audit(key_.public_key(), two.checkpoints.back(), two.bytes);
  ExpectDataLossAt(out, 7);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("second receipt from domain d1"));
}

TEST(Hygiene, FreeTextAndSealedRules) {
  EXPECT_EQ(audit::FreeTextProblem("signup-form-v3", 100), "");
  EXPECT_EQ(audit::FreeTextProblem("2026-12-04 import", 100), "");
  EXPECT_EQ(audit::FreeTextProblem("batch 123456 of 2026", 100), "");
  EXPECT_EQ(audit::FreeTextProblem("größe über 10 Zeilen", 100), "");
  EXPECT_THAT(audit::FreeTextProblem("x@y", 100), HasSubstr("'@'"));
  EXPECT_THAT(audit::FreeTextProblem("1234567", 100), HasSubstr("7 or more digits"));
  EXPECT_THAT(audit::FreeTextProblem("+1 (555) 010-9999", 100), HasSubstr("7 or more digits"));
  EXPECT_THAT(audit::FreeTextProblem("20261204", 100), HasSubstr("7 or more digits"));
  EXPECT_THAT(audit::FreeTextProblem("2026-12-044", 100), HasSubstr("7 or more digits"));
  EXPECT_EQ(audit::FreeTextProblem("12-34-5 6", 100), "");  // 6 digits joined by single separators
  EXPECT_THAT(audit::FreeTextProblem("12-34-56 7", 100), HasSubstr("7 or more digits"));
  EXPECT_EQ(audit::FreeTextProblem("12--34--56--78", 100), "");  // two separators end a run
  EXPECT_THAT(audit::FreeTextProblem("tab\there", 100), HasSubstr("control character"));
  EXPECT_THAT(audit::FreeTextProblem(std::string("\xC3\x28", 2), 100), HasSubstr("UTF-8"));
  EXPECT_THAT(audit::FreeTextProblem(std::string("\xC2\x85", 2), 100), HasSubstr("UTF-8"));  // C1 NEL
  EXPECT_THAT(audit::FreeTextProblem(std::string(101, 'a'), 100), HasSubstr("longer than 100"));
  EXPECT_EQ(audit::SealedProblem(crypto::RandomBytes(28)), "");
  EXPECT_THAT(audit::SealedProblem(crypto::RandomBytes(27)), HasSubstr("shorter"));
  EXPECT_THAT(audit::SealedProblem(std::string(64, 'a')), HasSubstr("plain text"));
}

}  // namespace
}  // namespace lethe::ledger
