// Atomic batches (LedgerEntry.batch_remaining, ledger/FORMAT.md §1 and §5): the entries of
// one Append are all in the log or none are, whatever a crash or power loss leaves of their
// write; a checkpoint never ends inside a batch; and the marks, the segment header's
// reserved field and the segment names are checked by lethed and by both verifiers alike.
//
// A "power loss" here is the ledger's files copied while it is open, after the Append being
// cut returned, and then cut back (truncated, or zeroed to their old size as pre-zeroed
// space is) at a byte of the last batch: what the disk may hold of an unacknowledged write.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "audit/auditor.h"
#include "base/file_system.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/record_format.h"
#include "lethe/v1/ledger.pb.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"

namespace lethe::ledger {
namespace {

namespace fs = std::filesystem;
using ::lethe::testing::ReadBytes;
using ::lethe::testing::TempDir;
using ::lethe::testing::WriteBytes;
using ::testing::HasSubstr;

constexpr char kOrigin[] = "batch-test.example/log";
const absl::Time kNow = absl::FromUnixMillis(1'700'000'000'000);

const crypto::Ed25519PrivateKey& Key() {
  static const auto* key = new crypto::Ed25519PrivateKey(crypto::Ed25519PrivateKey::Generate().value());
  return *key;
}

LedgerOptions Options(const std::string& dir, uint64_t prezero = 0) {
  LedgerOptions o;
  o.dir = dir;
  o.origin = kOrigin;
  o.signing_key = &Key();
  o.checkpoint_every = uint64_t{1} << 40;  // only Open, Checkpoint() and Close sign
  o.checkpoint_interval = absl::ZeroDuration();
  o.prezero_bytes = prezero;
  return o;
}

// An entry that is valid anywhere in a log: an agent key enrolled for domain `tag` (each
// tag once). The Auditor's rules hold for it without any context.
v1::LedgerEntry Entry(const std::string& tag) {
  const auto key = crypto::Ed25519PrivateKey::Generate().value().public_key();
  v1::LedgerEntry e;
  e.mutable_agent_enrolled()->set_domain(tag);
  e.mutable_agent_enrolled()->set_public_key(key.raw());
  e.mutable_agent_enrolled()->set_key_id(key.KeyId());
  return e;
}

std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& f : fs::directory_iterator(dir))
    out[f.path().filename().string()] = ReadBytes(f.path().string());
  return out;
}

void Restore(const std::map<std::string, std::string>& files, const std::string& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& [name, bytes] : files) WriteBytes(dir + "/" + name, bytes);
}

struct Record {
  uint64_t offset = 0;  // of the header
  uint64_t end = 0;
  std::string payload;
};

std::vector<Record> Records(const std::string& dir) {
  std::vector<Record> out;
  auto scan = ScanSegments(dir, [&](const ScannedRecord& r) {
    out.push_back({r.offset, r.offset + format::kRecordHeaderSize + r.payload.size(),
                   std::string(r.payload)});
    return absl::OkStatus();
  });
  EXPECT_TRUE(scan.ok()) << scan.status();
  return out;
}

// Audits the files in `dir` (read only) against the checkpoint note.
absl::StatusOr<audit::AuditReport> Audit(const std::string& dir, const std::string& note) {
  audit::Auditor auditor(Key().public_key(), note, audit::AuditOptions{.accept_unauthenticated = true});
  absl::Status added;
  auto scan = ScanSegments(dir, [&](const ScannedRecord& r) {
    return auditor.Add(r.index, r.payload);
  });
  if (!scan.ok()) return scan.status();
  return auditor.Finish();
}

// A segment file made by hand: `marks[i]` is entry i's batch_remaining.
struct Handmade {
  std::string bytes;
  std::string prev = std::string(32, '\0');
  MerkleTree tree;
};
std::string Header(uint32_t version, uint64_t first_seq, uint32_t reserved = 0) {
  std::string h(format::kMagic, sizeof(format::kMagic));
  format::PutU32(&h, version);
  format::PutU32(&h, 0);
  format::PutU64(&h, first_seq);
  format::PutU32(&h, reserved);
  format::PutU32(&h, crypto::Crc32c(h));
  return h;
}
void AddEntries(Handmade& m, uint64_t first_seq, const std::vector<uint32_t>& marks) {
  for (size_t i = 0; i < marks.size(); ++i) {
    v1::LedgerEntry e;
    if (first_seq + i == 0) {
      e.mutable_log_created()->set_origin(kOrigin);
      e.mutable_log_created()->set_control_plane_public_key(Key().public_key().raw());
    } else {
      e = Entry("d" + std::to_string(first_seq + i));
    }
    e.set_seq(first_seq + i);
    e.set_time_unix_ms(absl::ToUnixMillis(kNow));
    e.set_prev_hash(m.prev);
    e.set_batch_remaining(marks[i]);
    const std::string payload = e.SerializeAsString();
    format::AppendRecord(&m.bytes, payload);
    m.prev = LeafHash(payload);
    m.tree.Append(m.prev);
  }
}
std::string NoteAt(const MerkleTree& tree, uint64_t size) {
  return SignCheckpoint(Checkpoint{kOrigin, size, tree.Root(size)}, Key());
}

TEST(Batches, EachEntryCountsTheEntriesAfterItInItsBatch) {
  TempDir dir;
  {
    auto l = Ledger::Open(Options(dir.path()), nullptr);
    ASSERT_OK(l);
    auto three = (*l)->Append({Entry("a"), Entry("b"), Entry("c")}, kNow);
    ASSERT_OK(three);
    EXPECT_EQ((*three)[0].entry.batch_remaining(), 2u);
    EXPECT_EQ((*three)[1].entry.batch_remaining(), 1u);
    EXPECT_EQ((*three)[2].entry.batch_remaining(), 0u);
    ASSERT_OK((*l)->Append({Entry("d")}, kNow));
  }
  std::vector<uint32_t> marks;
  for (const Record& r : Records(dir.path())) {
    v1::LedgerEntry e;
    ASSERT_TRUE(e.ParseFromString(r.payload));
    marks.push_back(e.batch_remaining());
  }
  EXPECT_EQ(marks, (std::vector<uint32_t>{0, 2, 1, 0, 0}));
}

// The heart of it: the files as a power loss or a short write may leave them mid-batch
// reopen to the batch before, with nothing of the cut batch replayed; the offline Auditor,
// given the same files, reports the incomplete batch and verifies the rest; and the reopened
// ledger verifies. Truncated: the file cut at every record boundary of the batch and at every
// byte of its last record (a short write). Zeroed: any set of the 512-byte sectors the batch
// was written to never reached the disk (their part of the batch reads as the zeros it was
// written over), the rest did, in every combination.
class BatchCut : public ::testing::TestWithParam<bool> {};  // true: zeroed sectors

// `shift` pads the batch before, moving the cut batch's records across sector boundaries.
// Sets *ends_just_past_a_boundary when a record of the cut batch ends 1 to 7 bytes into a
// sector (so that its own part of a lost sector is too short to tell a tear by).
// *ends gets the file offsets where the batch's records end.
void CutEverywhere(bool zeroed, size_t shift, bool* ends_just_past_a_boundary,
                   std::vector<uint64_t>* ends) {
  SCOPED_TRACE(absl::StrCat("shift ", shift));
  TempDir work;
  const std::string live = work.File("live");
  std::map<std::string, std::string> files;
  uint64_t before = 0;
  constexpr size_t kBatch = 4;
  {
    auto l = Ledger::Open(Options(live, zeroed ? 64u << 10 : 0), nullptr);
    ASSERT_OK(l);
    ASSERT_OK((*l)->Append({Entry("first" + std::string(shift, '.')), Entry("second")}, kNow));
    before = (*l)->size();
    std::vector<v1::LedgerEntry> batch;
    // 300-odd bytes an entry: the batch spans four sectors (and starts inside the first).
    for (size_t i = 0; i < kBatch; ++i) batch.push_back(Entry(std::string(300 + 10 * i, 'x')));
    ASSERT_OK((*l)->Append(batch, kNow));
    files = Snapshot(live);  // acknowledged, but no checkpoint covers it: as at a power loss
  }
  const std::string note = files.at(Ledger::kCheckpointFile);
  auto cp = ParseCheckpointUnverified(note);
  ASSERT_OK(cp);
  ASSERT_LT(cp->size, before) << "the test needs the cut batch uncovered";
  Restore(files, live);
  const std::vector<Record> records = Records(live);
  ASSERT_EQ(records.size(), before + kBatch);
  const std::string segment = format::SegmentFileName(0);
  const std::string original = files.at(segment);

  const uint64_t batch_begin = records[before].offset, batch_end = records.back().end;
  ends->clear();
  for (size_t i = before; i < records.size(); ++i) {
    ends->push_back(records[i].end);
    if (records[i].end % 512 >= 1 && records[i].end % 512 < 8) *ends_just_past_a_boundary = true;
  }
  // Each case: the segment's bytes, and the first byte of the batch that is lost.
  std::vector<std::pair<std::string, uint64_t>> cases;
  if (zeroed) {
    constexpr uint64_t kSector = 512;
    const uint64_t first = batch_begin / kSector, last = (batch_end - 1) / kSector;
    const uint64_t sectors = last - first + 1;
    ASSERT_GE(sectors, 4u);
    for (uint64_t lost = 0; lost < (uint64_t{1} << sectors); ++lost) {
      std::string seg = original;
      uint64_t first_lost = batch_end;
      for (uint64_t i = 0; i < sectors; ++i) {
        if (!(lost >> i & 1)) continue;
        const uint64_t a = std::max(batch_begin, (first + i) * kSector);
        const uint64_t b = std::min(batch_end, (first + i + 1) * kSector);
        std::fill(seg.begin() + a, seg.begin() + b, '\0');
        first_lost = std::min(first_lost, a);
      }
      // With the file ending where the batch does (the write extended it), and with
      // pre-zeroed space after it.
      cases.emplace_back(seg.substr(0, batch_end), first_lost);
      cases.emplace_back(seg.substr(0, batch_end) + std::string(64 << 10, '\0'), first_lost);
    }
  } else {
    for (size_t i = before; i < records.size(); ++i)
      cases.emplace_back(original.substr(0, records[i].offset), records[i].offset);
    for (uint64_t b = records.back().offset + 1; b <= batch_end; ++b)
      cases.emplace_back(original.substr(0, b), b);
  }

  const std::string dir = work.File("cut");
  for (const auto& [bytes, cut] : cases) {
    SCOPED_TRACE(absl::StrCat("batch lost from byte ", cut, zeroed ? " (zeroed sectors)" : " (truncated)"));
    std::map<std::string, std::string> damaged = files;
    damaged[segment] = bytes;
    Restore(damaged, dir);
    const bool whole = cut == batch_end;
    const uint64_t expect = whole ? before + kBatch : before;
    size_t records_left = 0;
    for (size_t i = before; i < records.size(); ++i) records_left += records[i].end <= cut;

    // The offline verifier, before lethed touches the files.
    auto report = Audit(dir, note);
    ASSERT_OK(report);
    EXPECT_EQ(report->entries, expect);
    EXPECT_EQ(report->incomplete_batch_entries, whole ? 0 : records_left);
    auto structure = audit::VerifyStructure(dir, note, Key().public_key());
    ASSERT_OK(structure);
    EXPECT_EQ(structure->entries, expect);

    // lethed's open: the batch is in the log whole or not at all.
    std::vector<uint64_t> replayed;
    {
      auto l = Ledger::Open(Options(dir), [&](uint64_t seq, std::string_view, const v1::LedgerEntry& e) {
        EXPECT_EQ(e.seq(), seq);
        replayed.push_back(seq);
        return absl::OkStatus();
      });
      ASSERT_OK(l);
      EXPECT_EQ((*l)->size(), expect);
      ASSERT_EQ(replayed.size(), expect);
      EXPECT_EQ(replayed.back(), expect - 1);
      if (!whole && records_left > 0) {
        ASSERT_TRUE((*l)->torn_tail_cut().has_value());
        EXPECT_EQ((*l)->torn_tail_cut()->batch_entries, records_left);
        EXPECT_EQ((*l)->torn_tail_cut()->offset, records[before].offset);
      }
      // It goes on from there.
      ASSERT_OK((*l)->Append({Entry("after")}, kNow));
    }
    auto closing = lethe::ReadFile(dir + "/" + Ledger::kCheckpointFile);
    ASSERT_OK(closing);
    auto after = Audit(dir, *closing);
    ASSERT_OK(after);
    EXPECT_EQ(after->entries, expect + 1);
    EXPECT_EQ(after->incomplete_batch_entries, 0u);
  }
}

TEST_P(BatchCut, EveryCutInsideTheLastBatchReopensToTheBatchBefore) {
  const bool zeroed = GetParam();
  bool ends_just_past_a_boundary = false;
  std::vector<uint64_t> ends;
  CutEverywhere(zeroed, 0, &ends_just_past_a_boundary, &ends);
  if (HasFatalFailure() || !zeroed) return;  // truncation cuts at every byte already
  // Lost sectors again, with the batch moved so that each of its records in turn ends 1, 4
  // or 7 bytes into a sector.
  const std::vector<uint64_t> at_shift_0 = ends;
  for (uint64_t end : at_shift_0) {
    for (uint64_t past : {1, 4, 7}) {
      CutEverywhere(zeroed, (512 + past - end % 512) % 512, &ends_just_past_a_boundary, &ends);
      if (HasFatalFailure()) return;
    }
  }
  if (zeroed) {
    EXPECT_TRUE(ends_just_past_a_boundary) << "no case tried the hardest tear";
  }
}

INSTANTIATE_TEST_SUITE_P(PowerLoss, BatchCut, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Zeroed" : "Truncated"; });

TEST(Batches, ACheckpointEndingInsideABatchIsRefusedByLethedAndBothVerifiers) {
  TempDir dir;
  Handmade m;
  m.bytes = Header(format::kVersion, 0);
  AddEntries(m, 0, {0, 2, 1, 0});
  WriteBytes(dir.File(format::SegmentFileName(0)), m.bytes);
  const std::string inside = NoteAt(m.tree, 3);  // entries 0..2: entry 2 says 1 more follows
  WriteBytes(dir.File(Ledger::kCheckpointFile), inside);

  auto report = Audit(dir.path(), inside);
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(std::string(report.status().message()), HasSubstr("ends inside a batch"));
  auto structure = audit::VerifyStructure(dir.path(), inside, Key().public_key());
  ASSERT_FALSE(structure.ok());
  EXPECT_THAT(std::string(structure.status().message()), HasSubstr("ends inside a batch"));
  // lethed never signed such a checkpoint; the log is not one it wrote.
  const auto files = Snapshot(dir.path());
  auto l = Ledger::Open(Options(dir.path()), nullptr);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Snapshot(dir.path()), files) << "nothing may be cut under a signed checkpoint";

  // The same checkpoint one entry later, where the batch ends, is fine.
  const std::string at_end = NoteAt(m.tree, 4);
  ASSERT_OK(Audit(dir.path(), at_end));
  ASSERT_OK(audit::VerifyStructure(dir.path(), at_end, Key().public_key()));
}

TEST(Batches, ABrokenBatchIsCorruptionNotACrash) {
  struct Case {
    const char* name;
    std::vector<uint32_t> marks;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"a mark that skips", {0, 3, 1, 0}, "breaks its batch"},
      {"a mark that does not count down", {0, 1, 1, 0}, "breaks its batch"},
      {"a batch that ends early", {0, 2, 0, 0}, "breaks its batch"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    Handmade m;
    m.bytes = Header(format::kVersion, 0);
    AddEntries(m, 0, c.marks);
    WriteBytes(dir.File(format::SegmentFileName(0)), m.bytes);
    const std::string note = NoteAt(m.tree, 1);
    WriteBytes(dir.File(Ledger::kCheckpointFile), note);
    auto l = Ledger::Open(Options(dir.path()), nullptr);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(l.status().message()), HasSubstr(c.says));
    auto report = Audit(dir.path(), note);
    ASSERT_FALSE(report.ok());
    EXPECT_THAT(std::string(report.status().message()), HasSubstr(c.says));
    EXPECT_FALSE(audit::VerifyStructure(dir.path(), note, Key().public_key()).ok());
  }
}

TEST(Batches, ABatchNeverSpansTwoSegments) {
  TempDir dir;
  Handmade m;
  m.bytes = Header(format::kVersion, 0);
  AddEntries(m, 0, {0, 1});
  WriteBytes(dir.File(format::SegmentFileName(0)), m.bytes);
  m.bytes = Header(format::kVersion, 2);
  AddEntries(m, 2, {0});
  WriteBytes(dir.File(format::SegmentFileName(2)), m.bytes);
  const std::string note = NoteAt(m.tree, 1);
  WriteBytes(dir.File(Ledger::kCheckpointFile), note);
  auto l = Ledger::Open(Options(dir.path()), nullptr);
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()), HasSubstr("never spans two segments"));
  auto structure = audit::VerifyStructure(dir.path(), note, Key().public_key());
  ASSERT_FALSE(structure.ok());
  EXPECT_THAT(std::string(structure.status().message()), HasSubstr("never spans two segments"));
}

TEST(Batches, AnIncompleteBatchInASealedSegmentIsCorruption) {
  // Entry 1 opens a batch that the end of segment 0 cuts short, and segment 2 goes on: no
  // crash leaves that, since a batch is written to one segment.
  TempDir dir;
  Handmade m;
  m.bytes = Header(format::kVersion, 0);
  AddEntries(m, 0, {0, 1});
  const std::string first = m.bytes;
  WriteBytes(dir.File(format::SegmentFileName(0)), first);
  WriteBytes(dir.File(format::SegmentFileName(2)), Header(format::kVersion, 2));
  const std::string note = NoteAt(m.tree, 1);
  WriteBytes(dir.File(Ledger::kCheckpointFile), note);
  auto structure = audit::VerifyStructure(dir.path(), note, Key().public_key());
  ASSERT_FALSE(structure.ok());
  EXPECT_THAT(std::string(structure.status().message()), HasSubstr("sealed segment"));
  auto l = Ledger::Open(Options(dir.path()), nullptr);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(l.status().message()), HasSubstr("sealed segment"));
}

TEST(SegmentVersions, AVersionOneLedgerIsReadAndGoesOnInANewSegment) {
  TempDir dir;
  Handmade m;
  m.bytes = Header(1, 0);
  AddEntries(m, 0, {0, 0, 0});
  WriteBytes(dir.File(format::SegmentFileName(0)), m.bytes);
  WriteBytes(dir.File(Ledger::kCheckpointFile), NoteAt(m.tree, 3));
  {
    auto l = Ledger::Open(Options(dir.path()), nullptr);
    ASSERT_OK(l);
    EXPECT_EQ((*l)->size(), 3u);
    ASSERT_OK((*l)->Append({Entry("x"), Entry("y")}, kNow));
  }
  // The old segment is as it was; the marked entries are in a version 2 segment.
  EXPECT_EQ(ReadBytes(dir.File(format::SegmentFileName(0))), m.bytes);
  const std::string second = ReadBytes(dir.File(format::SegmentFileName(3)));
  ASSERT_GE(second.size(), format::kSegmentHeaderSize);
  EXPECT_EQ(format::GetU32(second.data() + 8), 2u);
  auto note = lethe::ReadFile(dir.File(Ledger::kCheckpointFile));
  ASSERT_OK(note);
  auto report = Audit(dir.path(), *note);
  ASSERT_OK(report);
  EXPECT_EQ(report->entries, 5u);
  auto reopened = Ledger::Open(Options(dir.path()), nullptr);
  ASSERT_OK(reopened);
  EXPECT_EQ((*reopened)->size(), 5u);
}

TEST(SegmentVersions, AVersionOneSegmentWithoutEntriesIsStartedAgainAsVersionTwo) {
  TempDir dir;
  Handmade m;
  m.bytes = Header(1, 0);
  AddEntries(m, 0, {0, 0});
  WriteBytes(dir.File(format::SegmentFileName(0)), m.bytes);
  WriteBytes(dir.File(format::SegmentFileName(2)), Header(1, 2));  // rolled, nothing written
  WriteBytes(dir.File(Ledger::kCheckpointFile), NoteAt(m.tree, 2));
  {
    auto l = Ledger::Open(Options(dir.path()), nullptr);
    ASSERT_OK(l);
    ASSERT_OK((*l)->Append({Entry("x"), Entry("y")}, kNow));
  }
  const std::string second = ReadBytes(dir.File(format::SegmentFileName(2)));
  ASSERT_GE(second.size(), format::kSegmentHeaderSize);
  EXPECT_EQ(format::GetU32(second.data() + 8), 2u);
  auto reopened = Ledger::Open(Options(dir.path()), nullptr);
  ASSERT_OK(reopened);
  EXPECT_EQ((*reopened)->size(), 4u);
}

TEST(SegmentVersions, ABatchMarkInAVersionOneSegmentIsCorruption) {
  TempDir dir;
  Handmade m;
  m.bytes = Header(1, 0);
  AddEntries(m, 0, {0, 1, 0});
  WriteBytes(dir.File(format::SegmentFileName(0)), m.bytes);
  const std::string note = NoteAt(m.tree, 3);
  WriteBytes(dir.File(Ledger::kCheckpointFile), note);
  auto l = Ledger::Open(Options(dir.path()), nullptr);
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()), HasSubstr("version 1 segment"));
  EXPECT_FALSE(audit::VerifyStructure(dir.path(), note, Key().public_key()).ok());
}

TEST(SegmentHeader, ReservedFieldNameAndVersionAreChecked) {
  struct Case {
    const char* name;
    std::string file;
    std::string header;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"reserved not zero", format::SegmentFileName(0), Header(2, 0, 7), "reserved"},
      {"name not the header's", format::SegmentFileName(5), Header(2, 0), "file name"},
      {"version from the future", format::SegmentFileName(0), Header(3, 0), "unsupported segment version 3"},
      {"version 0", format::SegmentFileName(0), Header(0, 0), "unsupported segment version 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    Handmade m;
    m.bytes = c.header;
    AddEntries(m, 0, {0, 0});
    WriteBytes(dir.File(c.file), m.bytes);
    const std::string note = NoteAt(m.tree, 2);
    WriteBytes(dir.File(Ledger::kCheckpointFile), note);
    auto l = Ledger::Open(Options(dir.path()), nullptr);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(l.status().message()), HasSubstr(c.says));
    auto structure = audit::VerifyStructure(dir.path(), note, Key().public_key());
    ASSERT_FALSE(structure.ok());
    EXPECT_THAT(std::string(structure.status().message()), HasSubstr(c.says));
  }
}

TEST(SegmentHeader, AFileNamedLikeASegmentMustBeOne) {
  for (const std::string stray : {"seg-1.log", "seg-0000000000000000000x.log", "seg-00000000000000000001.log.bak"}) {
    SCOPED_TRACE(stray);
    TempDir dir;
    {
      auto l = Ledger::Open(Options(dir.path()), nullptr);
      ASSERT_OK(l);
    }
    WriteBytes(dir.File(stray), "entries a reader would skip");
    auto l = Ledger::Open(Options(dir.path()), nullptr);
    ASSERT_FALSE(l.ok());
    EXPECT_THAT(std::string(l.status().message()), HasSubstr("named like a segment"));
    auto note = lethe::ReadFile(dir.File(Ledger::kCheckpointFile));
    ASSERT_OK(note);
    EXPECT_FALSE(audit::VerifyStructure(dir.path(), *note, Key().public_key()).ok());
  }
}

}  // namespace
}  // namespace lethe::ledger
