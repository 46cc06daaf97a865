// Unit tests for the checkpoint history (ledger/checkpoint_history.h): its framing, recovery
// rules and reads, and how the Ledger keeps it: every checkpoint it signs is appended before
// the checkpoint file is replaced, and a log cut back below a kept checkpoint does not open.
//
// Damage is done to the files by hand, the way a crash, a disk or an attacker would do it.
#include <signal.h>
#include <sys/resource.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/checkpoint_history.h"
#include "ledger/ledger.h"
#include "ledger/record_format.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"

namespace lethe::ledger {
namespace {

namespace fs = std::filesystem;
using ::lethe::testing::ReadBytes;
using ::lethe::testing::TempDir;
using ::lethe::testing::WriteBytes;
using ::testing::HasSubstr;

constexpr char kOrigin[] = "history-test.example/log";
const absl::Time kNow = absl::FromUnixMillis(1'700'000'000'000);

crypto::Ed25519PrivateKey NewKey() { return crypto::Ed25519PrivateKey::Generate().value(); }

// The root a made-up log has at `size`.
std::string FakeRoot(uint64_t size) { return crypto::Sha256(absl::StrCat("root at ", size)); }

std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out[e.path().filename().string()] = ReadBytes(e.path().string());
  return out;
}

// Where one record sits in a history file, found by walking the framing by hand.
struct RecordPos {
  uint64_t offset;
  uint32_t length;
  uint64_t payload() const { return offset + 8; }
  uint64_t end() const { return offset + 8 + length; }
};
std::vector<RecordPos> Records(const std::string& file) {
  std::vector<RecordPos> out;
  for (uint64_t off = CheckpointHistory::kHeaderSize; off + 8 <= file.size();) {
    const uint32_t len = format::GetU32(file.data() + off);
    if (len == 0 || off + 8 + len > file.size()) break;
    out.push_back(RecordPos{off, len});
    off += 8 + len;
  }
  return out;
}

// Replaces record `i` of the history file with `note` (same length), with a valid CRC.
void ReplaceRecord(const std::string& path, size_t i, const std::string& note) {
  std::string file = ReadBytes(path);
  const RecordPos r = Records(file).at(i);
  ASSERT_EQ(note.size(), r.length) << "the replacement must keep the record's length";
  std::string framed;
  format::AppendRecord(&framed, note);
  file.replace(r.offset, framed.size(), framed);
  WriteBytes(path, file);
}

// ---------------------------------------------------------------------------------------
// The history file on its own, against a made-up log

class CheckpointHistoryTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<CheckpointHistory>> Open(uint64_t log_size = 1000) const {
    return CheckpointHistory::Open(dir_.path(), kOrigin, key_.public_key(), log_size, FakeRoot);
  }
  std::string Path() const { return dir_.File(CheckpointHistory::kFileName); }
  Checkpoint Cp(uint64_t size) const { return Checkpoint{kOrigin, size, FakeRoot(size)}; }
  std::string Note(uint64_t size) const { return SignCheckpoint(Cp(size), key_); }
  // A history file holding notes of these sizes, written at once (its header from Open).
  void WriteHistory(const std::vector<uint64_t>& sizes) {
    fs::remove(Path());
    {
      ASSERT_OK_AND_ASSIGN(auto h, Open());
    }
    std::string file = ReadBytes(Path()).substr(0, CheckpointHistory::kHeaderSize);
    for (uint64_t s : sizes) format::AppendRecord(&file, Note(s));
    WriteBytes(Path(), file);
  }
  std::vector<uint64_t> Sizes(const std::vector<CheckpointHistory::Entry>& entries) {
    std::vector<uint64_t> out;
    for (const auto& e : entries) out.push_back(e.size);
    return out;
  }

  TempDir dir_;
  crypto::Ed25519PrivateKey key_ = NewKey();
};

TEST_F(CheckpointHistoryTest, AppendsAreKeptInOrderAndReadBackAfterReopening) {
  std::string file;
  {
    ASSERT_OK_AND_ASSIGN(auto h, Open());
    EXPECT_EQ(h->count(), 0u);
    EXPECT_EQ(ReadBytes(Path()).substr(0, 8), "LETHECPH");
    EXPECT_EQ(ReadBytes(Path()).size(), CheckpointHistory::kHeaderSize);
    for (uint64_t s : {1u, 2u, 5u, 9u}) ASSERT_OK(h->Append(Cp(s), Note(s)));
    file = ReadBytes(Path());
    // The same checkpoint again (a crash between the history and the checkpoint file makes
    // the ledger sign it twice): nothing is written.
    ASSERT_OK(h->Append(Cp(9), Note(9)));
    EXPECT_EQ(ReadBytes(Path()), file);
    EXPECT_EQ(h->count(), 4u);
    EXPECT_EQ(h->last_size(), 9u);
  }
  // The framing is the segments': u32 length, u32 CRC-32C, the note verbatim.
  const auto recs = Records(file);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(file.substr(recs[2].payload(), recs[2].length), Note(5));
  EXPECT_EQ(recs.back().end(), file.size());

  ASSERT_OK_AND_ASSIGN(auto h, Open());
  EXPECT_EQ(h->count(), 4u);
  EXPECT_FALSE(h->torn_tail_cut().has_value());
  EXPECT_EQ(ReadBytes(Path()), file) << "opening a clean history changed it";
  ASSERT_OK_AND_ASSIGN(auto all, h->List(0, 100));
  EXPECT_EQ(Sizes(all), (std::vector<uint64_t>{1, 2, 5, 9}));
  for (const auto& e : all) EXPECT_EQ(e.note, Note(e.size));
  ASSERT_OK_AND_ASSIGN(auto from3, h->List(3, 100));
  EXPECT_EQ(Sizes(from3), (std::vector<uint64_t>{5, 9}));
  ASSERT_OK_AND_ASSIGN(auto one, h->List(2, 1));
  EXPECT_EQ(Sizes(one), (std::vector<uint64_t>{2}));
  ASSERT_OK_AND_ASSIGN(auto none, h->List(10, 100));
  EXPECT_TRUE(none.empty());
}

TEST_F(CheckpointHistoryTest, AppendRefusesAnOlderSizeAnotherRootOrABadNote) {
  ASSERT_OK_AND_ASSIGN(auto h, Open());
  ASSERT_OK(h->Append(Cp(5), Note(5)));
  const std::string file = ReadBytes(Path());
  const Checkpoint other{kOrigin, 5, crypto::Sha256("another history")};
  EXPECT_EQ(h->Append(other, SignCheckpoint(other, key_)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(h->Append(Cp(4), Note(4)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(h->Append(Cp(6), "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(h->Append(Cp(6), std::string(CheckpointHistory::kMaxNote + 1, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadBytes(Path()), file);
  EXPECT_EQ(h->count(), 1u);
}

TEST_F(CheckpointHistoryTest, ListFindsEverySizeAcrossIndexPoints) {
  // 150 records written at once, then 100 appended: index points come from Open and Append.
  std::vector<uint64_t> sizes;
  for (uint64_t i = 0; i < 150; ++i) sizes.push_back(3 * i + 1);
  WriteHistory(sizes);
  {
    ASSERT_OK_AND_ASSIGN(auto h, Open());
    ASSERT_EQ(h->count(), 150u);
    for (uint64_t i = 150; i < 250; ++i) {
      sizes.push_back(3 * i + 1);
      ASSERT_OK(h->Append(Cp(sizes.back()), Note(sizes.back())));
    }
  }
  for (int reopened = 0; reopened < 2; ++reopened) {
    ASSERT_OK_AND_ASSIGN(auto h, Open());
    for (uint64_t from = 0; from <= sizes.back() + 1; ++from) {
      std::vector<uint64_t> want;
      for (uint64_t s : sizes)
        if (s >= from && want.size() < 7) want.push_back(s);
      ASSERT_OK_AND_ASSIGN(auto got, h->List(from, 7));
      ASSERT_EQ(Sizes(got), want) << "from " << from;
    }
  }
}

// The remains of an interrupted append, after three good records.
struct TornCase {
  const char* name;
  std::function<std::string(const std::string& record)> tail;
};

TEST_F(CheckpointHistoryTest, TheRemainsOfAnInterruptedAppendAreCut) {
  const std::vector<TornCase> cases = {
      {"a few header bytes", [](const std::string& r) { return r.substr(0, 5); }},
      {"header and half the note", [](const std::string& r) { return r.substr(0, 8 + (r.size() - 8) / 2); }},
      {"all but the last byte", [](const std::string& r) { return r.substr(0, r.size() - 1); }},
      {"whole length, end never written",
       [](const std::string& r) { return r.substr(0, 40) + std::string(r.size() - 40, '\0'); }},
      {"start never written, the rest was",
       [](const std::string& r) { return std::string(16, '\0') + r.substr(16); }},
      {"only zeros", [](const std::string& r) { return std::string(r.size() + 100, '\0'); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    WriteHistory({1, 2, 3});
    const std::string good = ReadBytes(Path());
    std::string record;
    format::AppendRecord(&record, Note(4));
    WriteBytes(Path(), good + c.tail(record));
    ASSERT_OK_AND_ASSIGN(auto h, Open());
    EXPECT_EQ(h->count(), 3u);
    ASSERT_TRUE(h->torn_tail_cut().has_value());
    EXPECT_EQ(h->torn_tail_cut()->offset, good.size());
    EXPECT_EQ(h->torn_tail_cut()->bytes, c.tail(record).size());
    EXPECT_EQ(ReadBytes(Path()), good);
    ASSERT_OK(h->Append(Cp(4), Note(4)));
    EXPECT_EQ(ReadBytes(Path()), good + record);
  }
}

TEST_F(CheckpointHistoryTest, DamageThatNoCrashLeavesIsDataLossAndNothingIsCut) {
  // Enough records after the damaged one that they cannot be the remains of one append.
  std::vector<uint64_t> sizes;
  for (uint64_t i = 1; i <= 400; ++i) sizes.push_back(i);
  WriteHistory(sizes);
  const std::string good = ReadBytes(Path());
  const auto recs = Records(good);
  ASSERT_GT(good.size() - recs[1].offset, 8u + CheckpointHistory::kMaxNote);
  struct Damage {
    const char* name;
    uint64_t offset;
    std::string bytes;
    const char* message;
  };
  const std::vector<Damage> damages = {
      {"flipped bit in a middle record", recs[1].payload() + 30,
       std::string(1, static_cast<char>(good[recs[1].payload() + 30] ^ 0x04)), "record 1 at offset"},
      {"flipped bit in the last record", recs.back().payload() + 30,
       std::string(1, static_cast<char>(good[recs.back().payload() + 30] ^ 0x04)), "record 399 at offset"},
      {"zeroed run in a middle record", recs[1].payload() + 20, std::string(12, '\0'), "record 1 at offset"},
      {"bad length in a middle record", recs[1].offset + 2, std::string(1, '\x7f'), "bad record length"},
  };
  for (const auto& d : damages) {
    SCOPED_TRACE(d.name);
    std::string file = good;
    file.replace(d.offset, d.bytes.size(), d.bytes);
    WriteBytes(Path(), file);
    auto h = Open();
    EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss) << h.status();
    EXPECT_THAT(std::string(h.status().message()), HasSubstr(d.message));
    EXPECT_EQ(ReadBytes(Path()), file) << "a failed open changed the history";
  }
}

TEST_F(CheckpointHistoryTest, NotesThatDoNotMatchTheKeyOrTheLogAreDataLoss) {
  const auto stranger = NewKey();
  struct Bad {
    const char* name;
    std::vector<std::string> notes;
    uint64_t log_size;
    const char* message;
  };
  const std::vector<Bad> bads = {
      {"signed by another key", {Note(1), SignCheckpoint(Cp(2), stranger)}, 10, "does not verify"},
      {"larger than the log", {Note(1), Note(7)}, 6, "covers 7 entries but only 6 are on disk"},
      {"another root", {Note(1), SignCheckpoint({kOrigin, 2, FakeRoot(3)}, key_)}, 10, "rewritten"},
      {"the same size twice", {Note(2), Note(2)}, 10, "size 2 follows one of size 2"},
      {"an older size after a newer", {Note(5), Note(3)}, 10, "size 3 follows one of size 5"},
  };
  for (const auto& b : bads) {
    SCOPED_TRACE(b.name);
    WriteHistory({});
    std::string file = ReadBytes(Path());
    for (const auto& n : b.notes) format::AppendRecord(&file, n);
    // A torn tail after them stays too: nothing is cut when the history does not check.
    file += std::string(5, '\x11');
    WriteBytes(Path(), file);
    auto h = Open(b.log_size);
    EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss) << h.status();
    EXPECT_THAT(std::string(h.status().message()), HasSubstr(b.message));
    EXPECT_THAT(std::string(h.status().message()), HasSubstr("record 1 at offset"));
    EXPECT_EQ(ReadBytes(Path()), file);
  }
}

TEST_F(CheckpointHistoryTest, ABadOrShortHeaderIsDataLoss) {
  WriteHistory({1});
  const std::string good = ReadBytes(Path());
  for (size_t at : {0u, 8u, 12u}) {
    std::string file = good;
    file[at] ^= 1;
    WriteBytes(Path(), file);
    EXPECT_EQ(Open().status().code(), absl::StatusCode::kDataLoss) << "byte " << at;
  }
  WriteBytes(Path(), good.substr(0, 10));
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(CheckpointHistoryTest, ListReportsARecordDamagedAfterOpen) {
  ASSERT_OK_AND_ASSIGN(auto h, Open());
  for (uint64_t s : {1u, 2u, 3u}) ASSERT_OK(h->Append(Cp(s), Note(s)));
  const std::string good = ReadBytes(Path());
  const RecordPos second = Records(good).at(1);
  std::string flipped = good;
  flipped[second.payload() + 10] ^= 1;
  WriteBytes(Path(), flipped);
  auto listed = h->List(0, 10);
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kDataLoss) << listed.status();
  EXPECT_THAT(std::string(listed.status().message()), HasSubstr("record checksum mismatch"));
  // Framed correctly, but not a checkpoint.
  WriteBytes(Path(), good);
  ReplaceRecord(Path(), 1, std::string(second.length, 'x'));
  listed = h->List(0, 10);
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kDataLoss) << listed.status();
  WriteBytes(Path(), good);
  ASSERT_OK_AND_ASSIGN(auto all, h->List(0, 10));
  EXPECT_EQ(all.size(), 3u);
}

// Runs `fn` with a file-size limit of `limit` bytes, SIGXFSZ ignored (writes past it fail
// with EFBIG): a real write failure, without mocks.
void WithFileSizeLimit(uint64_t limit, const std::function<void()>& fn) {
  struct sigaction ignore = {}, old_action = {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  rlimit old_limit = {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const rlimit lower = {static_cast<rlim_t>(limit), old_limit.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lower), 0);
  fn();
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);
}

TEST_F(CheckpointHistoryTest, AFailedAppendLeavesTheFileAsItWas) {
  ASSERT_OK_AND_ASSIGN(auto h, Open());
  ASSERT_OK(h->Append(Cp(1), Note(1)));
  const std::string file = ReadBytes(Path());
  // Room for part of the next record only: the write fails half way.
  WithFileSizeLimit(file.size() + 20, [&] {
    EXPECT_EQ(h->Append(Cp(2), Note(2)).code(), absl::StatusCode::kUnavailable);
  });
  EXPECT_EQ(ReadBytes(Path()), file);
  EXPECT_EQ(h->count(), 1u);
  ASSERT_OK(h->Append(Cp(2), Note(2)));
  ASSERT_OK_AND_ASSIGN(auto all, h->List(0, 10));
  EXPECT_EQ(Sizes(all), (std::vector<uint64_t>{1, 2}));
  h.reset();
  ASSERT_OK_AND_ASSIGN(auto reopened, Open());
  EXPECT_EQ(reopened->count(), 2u);
}

// ---------------------------------------------------------------------------------------
// The Ledger and its history

class LedgerHistoryTest : public ::testing::Test {
 protected:
  LedgerOptions Options() const {
    LedgerOptions o;
    o.dir = dir_.path();
    o.origin = kOrigin;
    o.signing_key = &key_;
    o.checkpoint_every = 1;  // a checkpoint after every commit
    o.checkpoint_interval = absl::ZeroDuration();
    o.prezero_bytes = 0;
    return o;
  }
  absl::StatusOr<std::unique_ptr<Ledger>> Open() const { return Ledger::Open(Options(), nullptr); }
  std::string HistoryPath() const { return dir_.File(CheckpointHistory::kFileName); }
  std::string CheckpointPath() const { return dir_.File(Ledger::kCheckpointFile); }
  static v1::LedgerEntry Entry(int i) {
    v1::LedgerEntry e;
    e.mutable_request_submitted()->set_request_id(absl::StrCat("request-", i));
    return e;
  }
  // The sizes of the checkpoints the history holds, from the file.
  std::vector<uint64_t> HistorySizes() const {
    std::vector<uint64_t> out;
    const std::string file = ReadBytes(HistoryPath());
    for (const auto& r : Records(file)) {
      auto cp = VerifyCheckpoint(file.substr(r.payload(), r.length), kOrigin, key_.public_key());
      EXPECT_TRUE(cp.ok()) << cp.status();
      out.push_back(cp.ok() ? cp->size : 0);
    }
    return out;
  }

  TempDir dir_;
  crypto::Ed25519PrivateKey key_ = NewKey();
};

TEST_F(LedgerHistoryTest, EveryCheckpointSignedIsKeptAndTheLatestIsTheLast) {
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i <= 4; ++i) ASSERT_OK(ledger->Append({Entry(i)}, kNow));
    ASSERT_OK(ledger->Append({Entry(5), Entry(6)}, kNow));
    EXPECT_EQ(ledger->checkpoint_history().count(), 6u);
    ASSERT_OK_AND_ASSIGN(auto all, ledger->checkpoint_history().List(0, 100));
    ASSERT_EQ(all.size(), 6u);
    EXPECT_EQ(all.back().note, ledger->LatestCheckpoint());
    EXPECT_EQ(all.back().size, 7u);
  }
  EXPECT_EQ(HistorySizes(), (std::vector<uint64_t>{1, 2, 3, 4, 5, 7}));
  EXPECT_EQ(ReadBytes(CheckpointPath()),
            ReadBytes(HistoryPath()).substr(Records(ReadBytes(HistoryPath())).back().payload()));
  // Reopened and closed with nothing new: nothing added.
  const auto files = Snapshot(dir_.path());
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    EXPECT_EQ(ledger->checkpoint_history().count(), 6u);
  }
  EXPECT_EQ(Snapshot(dir_.path()), files);
}

TEST_F(LedgerHistoryTest, ALogCutBackBelowAKeptCheckpointIsDataLossOnOpen) {
  std::map<std::string, std::string> old_files;
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i <= 3; ++i) ASSERT_OK(ledger->Append({Entry(i)}, kNow));
    old_files = Snapshot(dir_.path());  // 4 entries, the checkpoint of 4
    for (int i = 4; i <= 6; ++i) ASSERT_OK(ledger->Append({Entry(i)}, kNow));
  }
  // Everything but the history goes back to the older copy: a consistent, older, signed log.
  for (const auto& [name, bytes] : old_files)
    if (name != CheckpointHistory::kFileName) WriteBytes(dir_.File(name), bytes);
  const auto files = Snapshot(dir_.path());
  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()),
              HasSubstr("covers 5 entries but only 4 are on disk (the log was cut back"));
  EXPECT_EQ(Snapshot(dir_.path()), files) << "a failed open changed the files";
  // With its history rolled back too, the older copy opens: only checkpoints kept elsewhere
  // (by auditors) tell the two apart.
  WriteBytes(HistoryPath(), old_files.at(CheckpointHistory::kFileName));
  ASSERT_OK_AND_ASSIGN(auto older, Open());
  EXPECT_EQ(older->size(), 4u);
}

TEST_F(LedgerHistoryTest, AHistoryNoteWithABadSignatureOrRootIsDataLossOnOpen) {
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i <= 3; ++i) ASSERT_OK(ledger->Append({Entry(i)}, kNow));
  }
  const std::string good = ReadBytes(HistoryPath());
  const std::string note2 = good.substr(Records(good)[1].payload(), Records(good)[1].length);
  ASSERT_OK_AND_ASSIGN(Checkpoint cp2, VerifyCheckpoint(note2, kOrigin, key_.public_key()));
  ReplaceRecord(HistoryPath(), 1, SignCheckpoint(cp2, NewKey()));
  auto ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("does not verify"));
  // Signed by the ledger's key, for entries that are not these.
  WriteBytes(HistoryPath(), good);
  ReplaceRecord(HistoryPath(), 1, SignCheckpoint({kOrigin, cp2.size, crypto::Sha256("other")}, key_));
  ledger = Open();
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << ledger.status();
  EXPECT_THAT(std::string(ledger.status().message()), HasSubstr("the log was rewritten"));
}

TEST_F(LedgerHistoryTest, AStoredCheckpointTheHistoryLacksIsAddedAtOpen) {
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i <= 3; ++i) ASSERT_OK(ledger->Append({Entry(i)}, kNow));
  }
  // A ledger written before the history existed.
  fs::remove(HistoryPath());
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    ASSERT_OK_AND_ASSIGN(auto all, ledger->checkpoint_history().List(0, 10));
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].note, ReadBytes(CheckpointPath()));
    EXPECT_EQ(all[0].size, 4u);
    ASSERT_OK(ledger->Append({Entry(4)}, kNow));
  }
  EXPECT_EQ(HistorySizes(), (std::vector<uint64_t>{4, 5}));
}

TEST_F(LedgerHistoryTest, ACrashBetweenTheHistoryAndTheCheckpointFileLeavesTheHistoryAhead) {
  std::string older_checkpoint;
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    for (int i = 1; i <= 3; ++i) ASSERT_OK(ledger->Append({Entry(i)}, kNow));
    older_checkpoint = ReadBytes(CheckpointPath());
    ASSERT_OK(ledger->Append({Entry(4)}, kNow));
  }
  // The checkpoint of 5 reached the history; the process died before the rename.
  WriteBytes(CheckpointPath(), older_checkpoint);
  const std::string history = ReadBytes(HistoryPath());
  {
    ASSERT_OK_AND_ASSIGN(auto ledger, Open());
    EXPECT_EQ(ledger->checkpoint_history().count(), 5u);
  }
  EXPECT_EQ(ReadBytes(HistoryPath()), history) << "the checkpoint signed again was added twice";
  EXPECT_EQ(ReadBytes(CheckpointPath()), history.substr(Records(history).back().payload()));
}

TEST_F(LedgerHistoryTest, TheHistoryIsWrittenBeforeTheCheckpointFile) {
  LedgerOptions o = Options();
  o.checkpoint_every = 1000;  // checkpoints on demand only
  ASSERT_OK_AND_ASSIGN(auto ledger, Ledger::Open(o, nullptr));
  for (int i = 1; i <= 3; ++i) ASSERT_OK(ledger->Append({Entry(i)}, kNow));
  const std::string checkpoint = ReadBytes(CheckpointPath());
  const std::string history = ReadBytes(HistoryPath());
  // Too little room to append to the history, enough for a new checkpoint file.
  const uint64_t limit = history.size() + 20;
  ASSERT_LT(checkpoint.size() + 10, limit);
  WithFileSizeLimit(limit, [&] { EXPECT_FALSE(ledger->Checkpoint().ok()); });
  EXPECT_EQ(ReadBytes(CheckpointPath()), checkpoint) << "the checkpoint file holds one the history lacks";
  EXPECT_EQ(ReadBytes(HistoryPath()), history);
  ASSERT_OK_AND_ASSIGN(std::string note, ledger->Checkpoint());
  EXPECT_EQ(ReadBytes(CheckpointPath()), note);
  EXPECT_EQ(ReadBytes(HistoryPath()).substr(history.size() + 8), note);
}

}  // namespace
}  // namespace lethe::ledger
