// Unit tests for pre-zeroed space (LedgerOptions::prezero_bytes, prezeroer.h). The writer
// keeps zeros ahead of the last record of the last segment, so after a crash that segment may
// end in zeros, and a torn write there leaves unwritten (zero) sectors inside a record
// instead of a short file: the segment reader must cut those, and only those.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint_history.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "lethe/v1/ledger.pb.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/ledger_fixture.h"

namespace lethe::ledger {
namespace {

namespace fs = std::filesystem;
using ::lethe::testing::BaseName;
using ::lethe::testing::kNow;
using ::lethe::testing::LedgerTest;
using ::lethe::testing::ReadBytes;
using ::lethe::testing::RecordPos;
using ::lethe::testing::RecordsEnd;
using ::lethe::testing::RecordsIn;
using ::lethe::testing::SegmentFiles;
using ::lethe::testing::Snapshot;
using ::lethe::testing::TempDir;
using ::lethe::testing::TestEntry;
using ::lethe::testing::WriteBytes;
using ::testing::HasSubstr;

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
  const std::string root = *(*ledger)->Root();

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
    EXPECT_EQ(*reopened->Root(), root);
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

}  // namespace
}  // namespace lethe::ledger
