// What the ledger's unit tests share: a test origin, time and key, the LedgerTest fixture
// (a ledger in a fresh directory, deterministic checkpoints) and readers of segment files
// that walk the framing by hand, independently of ScanSegments.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "ledger/record_format.h"
#include "lethe/v1/ledger.pb.h"
#include "tests/support/files.h"

namespace lethe::testing {

inline constexpr char kOrigin[] = "ledger-test.example/log";
inline const absl::Time kNow = absl::FromUnixMillis(1'700'000'000'000);

inline crypto::Ed25519PrivateKey NewKey() { return crypto::Ed25519PrivateKey::Generate().value(); }

// Every file of a directory by name, with its bytes.
inline std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out[e.path().filename().string()] = ReadBytes(e.path().string());
  return out;
}

// Full paths of the segment files in `dir`, in order.
inline std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("seg-", 0) == 0) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::string BaseName(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// Where one record sits in a segment, found by walking the framing as record_format.h
// describes it (independently of ScanSegments).
struct RecordPos {
  uint64_t offset = 0;  // of the 8-byte record header
  uint32_t length = 0;  // of the payload
  uint64_t payload() const { return offset + ledger::format::kRecordHeaderSize; }
  uint64_t end() const { return payload() + length; }
};

inline std::vector<RecordPos> RecordsIn(const std::string& segment) {
  std::vector<RecordPos> out;
  uint64_t off = ledger::format::kSegmentHeaderSize;
  while (off + ledger::format::kRecordHeaderSize <= segment.size()) {
    const uint32_t len = ledger::format::GetU32(segment.data() + off);
    if (len == 0 || off + ledger::format::kRecordHeaderSize + len > segment.size()) break;
    out.push_back(RecordPos{off, len});
    off += ledger::format::kRecordHeaderSize + len;
  }
  return out;
}

// Where the records of a segment end (past its header when it holds none).
inline uint64_t RecordsEnd(const std::string& segment) {
  const auto recs = RecordsIn(segment);
  return recs.empty() ? uint64_t{ledger::format::kSegmentHeaderSize} : recs.back().end();
}

// An entry whose body the ledger stores without interpreting it; sizes vary with `i`.
inline v1::LedgerEntry TestEntry(int i) {
  v1::LedgerEntry e;
  auto* r = e.mutable_request_submitted();
  r->set_request_id(absl::StrCat("request-", i));
  r->set_kind(v1::RequestSubmitted::ERASURE);
  r->add_target_domains("d1");
  r->set_sealed(std::string(static_cast<size_t>(10 + 7 * (i % 5)), static_cast<char>('a' + i % 26)));
  return e;
}

// A ledger in its own directory, removed when the test ends, signing with a key of its own.
class LedgerTest : public ::testing::Test {
 protected:
  ledger::LedgerOptions Options() const {
    ledger::LedgerOptions o;
    o.dir = dir_.path();
    o.origin = kOrigin;
    o.signing_key = &key_;
    o.max_segment_bytes = max_segment_bytes_;
    // Deterministic: a checkpoint after every commit, no timer.
    o.checkpoint_every = 1;
    o.checkpoint_interval = absl::ZeroDuration();
    return o;
  }
  absl::StatusOr<std::unique_ptr<ledger::Ledger>> Open(
      const ledger::Ledger::ReplayFn& replay = nullptr) const {
    return ledger::Ledger::Open(Options(), replay);
  }
  std::string CheckpointPath() const { return dir_.File(ledger::Ledger::kCheckpointFile); }
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

}  // namespace lethe::testing
