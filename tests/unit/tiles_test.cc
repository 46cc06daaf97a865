// Unit tests for the C2SP tlog-tiles export of the ledger and its offline verifier
// (audit/tiles.h).
//
// Tile contents are checked against an independent reference: CompactRange roots over the
// leaf hashes of the matching entry ranges. Logs are either synthetic (a valid hash chain of
// LedgerEntry bytes built here, no Ledger) or written by a real Ledger in a temp dir. Every
// export lives in its own directory under temp_directory_path(), removed when the test ends;
// damage is done to the exported files by hand, byte by byte.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "audit/auditor.h"
#include "audit/tiles.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "nlohmann/json.hpp"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"

namespace lethe::ledger {
namespace {

namespace fs = std::filesystem;
using ::lethe::testing::ReadBytes;
using ::lethe::testing::TempDir;
using ::lethe::testing::WriteBytes;
using ::testing::AllOf;
using ::testing::HasSubstr;


constexpr char kOrigin[] = "tiles-test.example/log";
const absl::Time kNow = absl::FromUnixMillis(1'700'000'000'000);

// ---------------------------------------------------------------------------------------
// Helpers


crypto::Ed25519PrivateKey NewKey() { return crypto::Ed25519PrivateKey::Generate().value(); }



void FlipByte(const std::string& path, size_t offset) {
  std::string data = ReadBytes(path);
  ASSERT_LT(offset, data.size()) << path;
  data[offset] = static_cast<char>(data[offset] ^ 0x01);
  WriteBytes(path, data);
}

// Every regular file under `dir`, relative to it.
std::set<std::string> FilesUnder(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.insert(fs::relative(e.path(), dir).generic_string());
  return out;
}

std::string RootOf(const std::vector<std::string>& entries, uint64_t begin, uint64_t end) {
  CompactRange r;
  for (uint64_t i = begin; i < end; ++i) r.Append(LeafHash(entries[i]));
  return r.Root();
}

std::string CheckpointFor(const std::vector<std::string>& entries, uint64_t size,
                          const crypto::Ed25519PrivateKey& key) {
  return SignCheckpoint(Checkpoint{kOrigin, size, RootOf(entries, 0, size)}, key);
}

absl::Status Export(const std::string& dir, const std::vector<std::string>& entries, uint64_t size,
                    const std::string& note) {
  return audit::ExportTiles(dir, size, note, [&](uint64_t i) -> absl::StatusOr<std::string> {
    if (i >= entries.size()) return absl::OutOfRangeError(absl::StrCat("no entry ", i));
    return entries[i];
  });
}

std::string BigEndian16(size_t v) {
  return std::string{static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}

// Entries of an erasure log, after LogCreated.
constexpr char kTilesPolicy[] =
    "version: 1\nname: tiles\nidentities: [email]\n"
    "purposes:\n  - name: research\n    description: x\n    domains: [d1]\n"
    "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
    "          identity: email\n          action: delete\n";

v1::LedgerEntry WithActor(v1::LedgerEntry e, const char* role, const char* name) {
  e.mutable_actor()->set_role(role);
  e.mutable_actor()->set_name(name);
  return e;
}

v1::LedgerEntry Activated() {
  v1::LedgerEntry e;
  auto* pa = e.mutable_policy_activated();
  pa->set_activation(1);
  pa->set_format_version(1);
  pa->set_policy_yaml(kTilesPolicy);
  pa->set_policy_hash(policies::Policy::Parse(kTilesPolicy, "tiles").value().Hash());
  return WithActor(e, "admin", "root");
}

v1::LedgerEntry Enrolled(const std::string& domain, const crypto::Ed25519PublicKey& k) {
  v1::LedgerEntry e;
  e.mutable_actor()->set_role("admin");
  e.mutable_actor()->set_name("root");
  e.mutable_agent_enrolled()->set_domain(domain);
  e.mutable_agent_enrolled()->set_public_key(k.raw());
  e.mutable_agent_enrolled()->set_key_id(k.KeyId());
  return e;
}
// ~150 bytes once stored: an operator's consent grant.
v1::LedgerEntry Filler(uint64_t i) {
  v1::LedgerEntry e;
  auto* c = e.mutable_consent_changed();
  c->set_change_id(absl::StrCat("filler-", i));
  c->mutable_subject()->set_type("email");
  c->mutable_subject()->set_token(crypto::Sha256(absl::StrCat("token ", i)));
  c->set_purpose("research");
  c->set_status(v1::GRANTED);
  c->set_source(std::string(30, static_cast<char>('a' + i % 26)));
  static const std::string* hash = new std::string(policies::Policy::Parse(kTilesPolicy, "tiles").value().Hash());
  c->set_policy_hash(*hash);
  return WithActor(e, "operator", "olga");
}
std::vector<v1::LedgerEntry> ErasureFlow(const crypto::Ed25519PrivateKey& agent) {
  const std::string digest = crypto::Sha256("DeleteCommand body of c1");
  std::vector<v1::LedgerEntry> out;
  out.push_back(Activated());
  out.push_back(Enrolled("d1", agent.public_key()));
  {
    v1::LedgerEntry e;
    auto* r = e.mutable_request_submitted();
    r->set_request_id("r1");
    r->set_kind(v1::RequestSubmitted::ERASURE);
    auto* t = r->add_subject();
    t->set_type("email");
    t->set_token(crypto::Sha256("token"));
    r->add_target_domains("d1");
    r->set_policy_hash(Activated().policy_activated().policy_hash());
    r->set_sealed(crypto::RandomBytes(60));  // stands for the AES-GCM blob
    out.push_back(WithActor(e, "operator", "olga"));
  }
  {
    v1::LedgerEntry e;
    auto* c = e.mutable_command_issued();
    c->set_command_id("c1");
    c->set_request_id("r1");
    c->set_domain("d1");
    c->set_command_digest(digest);
    c->set_sealed_envelope(crypto::RandomBytes(120));
    c->set_domain_policy_hash(policies::Policy::Parse(kTilesPolicy, "tiles").value().DomainHash("d1"));
    out.push_back(e);
  }
  {
    v1::Receipt r;
    r.set_command_id("c1");
    r.set_request_id("r1");
    r.set_domain("d1");
    r.set_command_digest(digest);
    r.set_outcome(v1::Receipt::COMPLETED);
    r.set_verified_zero_remaining(true);
    r.set_completed_at_unix_ms(absl::ToUnixMillis(kNow));
    v1::LedgerEntry e;
    auto* rr = e.mutable_receipt_recorded();
    *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), agent);
    rr->set_command_id("c1");
    rr->set_request_id("r1");
    rr->set_domain("d1");
    out.push_back(e);
  }
  {
    v1::LedgerEntry e;
    e.mutable_request_completed()->set_request_id("r1");
    e.mutable_request_completed()->set_outcome(v1::RequestCompleted::COMPLETED);
    out.push_back(e);
  }
  return out;
}

// A valid log of `n` entries built without a Ledger: LogCreated for `key`, AgentEnrolled for
// `agent`, then fillers, chained by prev_hash. Every prefix passes the Auditor.
std::vector<std::string> SyntheticLog(uint64_t n, const crypto::Ed25519PrivateKey& key,
                                      const crypto::Ed25519PrivateKey& agent) {
  std::vector<std::string> out;
  out.reserve(n);
  std::string prev(32, '\0');
  for (uint64_t i = 0; i < n; ++i) {
    v1::LedgerEntry e;
    if (i == 0) {
      e.mutable_log_created()->set_origin(kOrigin);
      e.mutable_log_created()->set_control_plane_public_key(key.public_key().raw());
    } else if (i == 1) {
      e = Enrolled("d1", agent.public_key());
    } else if (i == 2) {
      e = Activated();  // the fillers are consent changes under it
    } else {
      e = Filler(i);
    }
    e.set_seq(i);
    e.set_time_unix_ms(absl::ToUnixMillis(kNow) + static_cast<int64_t>(i));
    e.set_prev_hash(prev);
    out.push_back(e.SerializeAsString());
    prev = LeafHash(out.back());
  }
  return out;
}

// One synthetic log of 70,000 entries shared by the tests (its prefixes are logs too).
struct SharedLog {
  crypto::Ed25519PrivateKey key = NewKey();
  crypto::Ed25519PrivateKey agent = NewKey();
  std::vector<std::string> entries = SyntheticLog(70000, key, agent);
};
const SharedLog& Shared() {
  static const SharedLog* log = new SharedLog();
  return *log;
}

// The expected tile files of the spec for a tree of `size` leaves (levels >= 0 and bundles).
std::set<std::string> SpecTileFiles(uint64_t size) {
  std::set<std::string> out;
  for (int l = 0; l < 8; ++l) {
    uint64_t n = size;
    for (int i = 0; i < l; ++i) n /= 256;
    for (uint64_t t = 0; t < n / 256; ++t) {
      out.insert(audit::TilePath(l, t, 0));
      if (l == 0) out.insert(audit::EntryBundlePath(t, 0));
    }
    if (n % 256) {
      out.insert(audit::TilePath(l, n / 256, static_cast<int>(n % 256)));
      if (l == 0) out.insert(audit::EntryBundlePath(n / 256, static_cast<int>(n % 256)));
    }
  }
  return out;
}

std::set<std::string> WithLetheFiles(std::set<std::string> files) {
  files.insert("checkpoint");
  files.insert("lethe/agents.json");
  files.insert("lethe/README.txt");
  return files;
}

// ---------------------------------------------------------------------------------------
// Paths

TEST(TilePath, SpecExamples) {
  EXPECT_EQ(audit::TilePath(0, 1234067, 0), "tile/0/x001/x234/067");
  EXPECT_EQ(audit::TilePath(0, 5, 0), "tile/0/005");
  EXPECT_EQ(audit::TilePath(0, 1000, 0), "tile/0/x001/000");
  EXPECT_EQ(audit::TilePath(0, 0, 0), "tile/0/000");
  EXPECT_EQ(audit::TilePath(0, 999, 0), "tile/0/999");
  EXPECT_EQ(audit::TilePath(0, 1000000, 0), "tile/0/x001/x000/000");
  EXPECT_EQ(audit::TilePath(0, 5, 17), "tile/0/005.p/17");
  EXPECT_EQ(audit::TilePath(0, 1234067, 17), "tile/0/x001/x234/067.p/17");
  EXPECT_EQ(audit::TilePath(1, 1, 17), "tile/1/001.p/17");
  EXPECT_EQ(audit::TilePath(2, 0, 1), "tile/2/000.p/1");
  EXPECT_EQ(audit::TilePath(63, 7, 255), "tile/63/007.p/255");
}

TEST(EntryBundlePath, SpecExamples) {
  EXPECT_EQ(audit::EntryBundlePath(1234067, 0), "tile/entries/x001/x234/067");
  EXPECT_EQ(audit::EntryBundlePath(5, 0), "tile/entries/005");
  EXPECT_EQ(audit::EntryBundlePath(1000, 0), "tile/entries/x001/000");
  EXPECT_EQ(audit::EntryBundlePath(273, 112), "tile/entries/273.p/112");
  EXPECT_EQ(audit::EntryBundlePath(1234067, 1), "tile/entries/x001/x234/067.p/1");
}

// ---------------------------------------------------------------------------------------
// Export layout and contents

TEST(ExportTiles, SeventyThousandEntriesMakeTheTilesOfTheSpec) {
  const SharedLog& log = Shared();
  TempDir tmp;
  const std::string dir = tmp.File("export");
  const std::string note = CheckpointFor(log.entries, 70000, log.key);
  ASSERT_OK(Export(dir, log.entries, 70000, note));

  // 273 full level-0 tiles, a partial of 112, one full level-1 tile, a partial level-1 tile
  // of 17, a partial level-2 tile of 1; bundles like level 0.
  std::set<std::string> want;
  for (uint64_t n = 0; n < 273; ++n) {
    want.insert(audit::TilePath(0, n, 0));
    want.insert(audit::EntryBundlePath(n, 0));
  }
  want.insert("tile/0/273.p/112");
  want.insert("tile/entries/273.p/112");
  want.insert("tile/1/000");
  want.insert("tile/1/001.p/17");
  want.insert("tile/2/000.p/1");
  EXPECT_EQ(want.size(), 2u * 274 + 3);
  EXPECT_EQ(want, SpecTileFiles(70000));
  EXPECT_EQ(FilesUnder(dir), WithLetheFiles(want));
  EXPECT_EQ(ReadBytes(dir + "/checkpoint"), note);

  // Every level-0 hash is the leaf hash of its entry; every bundle holds its entries.
  for (uint64_t n = 0; n <= 273; ++n) {
    const int w = n < 273 ? 0 : 112;
    const std::string tile = ReadBytes(dir + "/" + audit::TilePath(0, n, w));
    const std::string bundle = ReadBytes(dir + "/" + audit::EntryBundlePath(n, w));
    const uint64_t count = n < 273 ? 256 : 112;
    ASSERT_EQ(tile.size(), count * 32) << n;
    std::string want_tile, want_bundle;
    for (uint64_t i = n * 256; i < n * 256 + count; ++i) {
      want_tile += LeafHash(log.entries[i]);
      want_bundle += BigEndian16(log.entries[i].size()) + log.entries[i];
    }
    ASSERT_EQ(tile, want_tile) << "level-0 tile " << n;
    ASSERT_EQ(bundle, want_bundle) << "bundle " << n;
  }

  // Hash i of tile n at level l is MTH(D[(n*256+i)*256^l : (n*256+i+1)*256^l]).
  auto check_upper = [&](const std::string& path, int level, uint64_t n, uint64_t count) {
    const std::string tile = ReadBytes(dir + "/" + path);
    ASSERT_EQ(tile.size(), count * 32) << path;
    const uint64_t span = level == 1 ? 256 : 65536;
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t begin = (n * 256 + i) * span;
      EXPECT_EQ(tile.substr(i * 32, 32), RootOf(log.entries, begin, begin + span))
          << path << " hash " << i;
    }
  };
  check_upper("tile/1/000", 1, 0, 256);
  check_upper("tile/1/001.p/17", 1, 1, 17);
  check_upper("tile/2/000.p/1", 2, 0, 1);

  ASSERT_OK_AND_ASSIGN(audit::TilesReport report, audit::VerifyTiles(dir, log.key.public_key()));
  EXPECT_EQ(report.size, 70000u);
  EXPECT_EQ(report.full_tiles, 274u);    // 273 at level 0, 1 at level 1
  EXPECT_EQ(report.partial_tiles, 3u);   // one at each of levels 0, 1, 2
  EXPECT_EQ(report.bundles, 274u);
  EXPECT_EQ(report.root, RootOf(log.entries, 0, 70000));
  EXPECT_EQ(report.audit.entries, 70000u);
  EXPECT_EQ(report.audit.agents, 1u);
}

TEST(ExportTiles, TwoHundredFiftySixEntriesMakeOneFullTileAndALevelOnePartial) {
  const SharedLog& log = Shared();
  TempDir tmp;
  const std::string dir = tmp.File("export");
  ASSERT_OK(Export(dir, log.entries, 256, CheckpointFor(log.entries, 256, log.key)));
  const std::set<std::string> want = {"tile/0/000", "tile/entries/000", "tile/1/000.p/1"};
  EXPECT_EQ(want, SpecTileFiles(256));
  EXPECT_EQ(FilesUnder(dir), WithLetheFiles(want));
  EXPECT_EQ(ReadBytes(dir + "/tile/1/000.p/1"), RootOf(log.entries, 0, 256));
  ASSERT_OK(audit::VerifyTiles(dir, log.key.public_key()).status());
}

TEST(ExportTiles, RootFromTilesEqualsCompactRangeRootForManySizes) {
  const SharedLog& log = Shared();
  for (uint64_t size : {1, 2, 255, 256, 257, 511, 512, 65535, 65536, 65537, 70000}) {
    SCOPED_TRACE(absl::StrCat("size ", size));
    TempDir tmp;
    const std::string dir = tmp.File("export");
    ASSERT_OK(Export(dir, log.entries, size, CheckpointFor(log.entries, size, log.key)));
    EXPECT_EQ(FilesUnder(dir), WithLetheFiles(SpecTileFiles(size)));
    ASSERT_OK_AND_ASSIGN(audit::TilesReport report, audit::VerifyTiles(dir, log.key.public_key()));
    EXPECT_EQ(report.root, RootOf(log.entries, 0, size));
    EXPECT_EQ(report.audit.root, report.root);
    EXPECT_EQ(report.size, size);
    EXPECT_EQ(report.bundles, (size + 255) / 256);
  }
}

TEST(ExportTiles, EmptyTreeHasOnlyTheCheckpointAndLetheFiles) {
  const SharedLog& log = Shared();
  TempDir tmp;
  const std::string dir = tmp.File("export");
  ASSERT_OK(Export(dir, log.entries, 0, SignCheckpoint(Checkpoint{kOrigin, 0, EmptyRoot()}, log.key)));
  EXPECT_EQ(FilesUnder(dir), WithLetheFiles({}));
  ASSERT_OK_AND_ASSIGN(audit::TilesReport report, audit::VerifyTiles(dir, log.key.public_key()));
  EXPECT_EQ(report.size, 0u);
  EXPECT_EQ(report.root, EmptyRoot());
}

TEST(ExportTiles, RefusesANonEmptyDirectory) {
  const SharedLog& log = Shared();
  TempDir tmp;
  WriteBytes(tmp.File("something"), "x");
  const absl::Status st = Export(tmp.path(), log.entries, 5, CheckpointFor(log.entries, 5, log.key));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_EQ(FilesUnder(tmp.path()), std::set<std::string>{"something"});
  // An existing empty directory is fine.
  fs::create_directories(tmp.File("empty"));
  ASSERT_OK(Export(tmp.File("empty"), log.entries, 5, CheckpointFor(log.entries, 5, log.key)));
}

TEST(ExportTiles, CheckpointOfAnotherSizeIsInvalidArgument) {
  const SharedLog& log = Shared();
  TempDir tmp;
  const absl::Status st = Export(tmp.File("export"), log.entries, 6, CheckpointFor(log.entries, 5, log.key));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_FALSE(fs::exists(tmp.File("export")));
}

TEST(ExportTiles, CheckpointOverOtherEntriesFailsWithoutWritingACheckpoint) {
  const SharedLog& log = Shared();
  TempDir tmp;
  const std::string dir = tmp.File("export");
  const std::string note = SignCheckpoint(Checkpoint{kOrigin, 300, RootOf(log.entries, 1, 301)}, log.key);
  const absl::Status st = Export(dir, log.entries, 300, note);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_THAT(std::string(st.message()), AllOf(HasSubstr("not the Merkle root"), HasSubstr("incomplete")));
  EXPECT_FALSE(fs::exists(dir + "/checkpoint"));
}

TEST(ExportTiles, EntryTooLargeForABundleIsFailedPreconditionNamingIt) {
  const SharedLog& log = Shared();
  std::vector<std::string> entries(log.entries.begin(), log.entries.begin() + 10);
  v1::LedgerEntry big = Filler(7);
  big.mutable_request_submitted()->set_sealed(std::string(70000, 'z'));
  entries[7] = big.SerializeAsString();  // the chain does not matter: export stops here
  TempDir tmp;
  const absl::Status st = Export(tmp.File("export"), entries, 10, CheckpointFor(entries, 10, log.key));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_THAT(std::string(st.message()), AllOf(HasSubstr("entry 7 is"), HasSubstr("65535")));
  EXPECT_FALSE(fs::exists(tmp.File("export/checkpoint")));
}

TEST(ExportTiles, EntryThatIsNotALedgerEntryIsDataLoss) {
  const SharedLog& log = Shared();
  std::vector<std::string> entries(log.entries.begin(), log.entries.begin() + 4);
  entries[2] = std::string("\xff\xff\xff", 3);
  TempDir tmp;
  const absl::Status st = Export(tmp.File("export"), entries, 4, CheckpointFor(entries, 4, log.key));
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("entry 2"));
}

TEST(ExportTiles, ReaderErrorIsPassedOnNamingTheEntry) {
  const SharedLog& log = Shared();
  TempDir tmp;
  const absl::Status st = audit::ExportTiles(tmp.File("export"), 3, CheckpointFor(log.entries, 3, log.key),
                                      [&](uint64_t i) -> absl::StatusOr<std::string> {
                                        if (i == 2) return absl::UnavailableError("disk gone");
                                        return log.entries[i];
                                      });
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_THAT(std::string(st.message()), AllOf(HasSubstr("entry 2"), HasSubstr("disk gone")));
}

// ---------------------------------------------------------------------------------------
// A real Ledger: export, verify, then damage one file at a time.

class RealLedgerTilesTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kEntries = 300;  // tile/0/000, tile/0/001.p/44, tile/1/000.p/1

  void SetUp() override {
    LedgerOptions o;
    o.dir = tmp_.File("ledger");
    o.origin = kOrigin;
    o.signing_key = &key_;
    ASSERT_OK_AND_ASSIGN(auto ledger, Ledger::Open(o, nullptr));
    for (auto& e : ErasureFlow(agent_)) ASSERT_OK(ledger->Append({e}, kNow).status());
    std::vector<v1::LedgerEntry> fillers;
    for (uint64_t i = ledger->size(); i < kEntries; ++i) fillers.push_back(Filler(i));
    ASSERT_OK(ledger->Append(std::move(fillers), kNow).status());
    ASSERT_EQ(ledger->size(), kEntries);
    for (uint64_t s = 0; s < kEntries; ++s) {
      ASSERT_OK_AND_ASSIGN(std::string b, ledger->ReadEntry(s));
      entries_.push_back(std::move(b));
    }
    ledger_root_ = *ledger->Root();
    ASSERT_OK(audit::ExportTiles(dir_, kEntries, CheckpointFor(entries_, kEntries, key_),
                          [&](uint64_t i) { return ledger->ReadEntry(i); }));
  }

  absl::Status Verify() const { return audit::VerifyTiles(dir_, key_.public_key()).status(); }
  std::string File(std::string_view rel) const { return dir_ + "/" + std::string(rel); }

  void ExpectDataLossNaming(const std::vector<std::string>& parts) const {
    const absl::Status st = Verify();
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    for (const auto& p : parts) EXPECT_THAT(std::string(st.message()), HasSubstr(p));
  }

  TempDir tmp_;
  const std::string dir_ = tmp_.File("export");
  const crypto::Ed25519PrivateKey key_ = NewKey();
  const crypto::Ed25519PrivateKey agent_ = NewKey();
  std::vector<std::string> entries_;
  std::string ledger_root_;
};

TEST_F(RealLedgerTilesTest, ExportVerifiesWithOnlyThePublicKey) {
  EXPECT_EQ(FilesUnder(dir_), WithLetheFiles({"tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1",
                                              "tile/entries/000", "tile/entries/001.p/44"}));
  ASSERT_OK_AND_ASSIGN(audit::TilesReport report, audit::VerifyTiles(dir_, key_.public_key()));
  EXPECT_EQ(report.size, kEntries);
  EXPECT_EQ(report.full_tiles, 1u);
  EXPECT_EQ(report.partial_tiles, 2u);
  EXPECT_EQ(report.bundles, 2u);
  EXPECT_EQ(report.root, ledger_root_);
  EXPECT_EQ(report.audit.entries, kEntries);
  EXPECT_EQ(report.audit.origin, kOrigin);
  EXPECT_EQ(report.audit.agents, 1u);
  EXPECT_EQ(report.audit.receipts, 1u);
  EXPECT_EQ(report.audit.requests_completed, 1u);
  EXPECT_EQ(report.audit.requests, 1u);
  EXPECT_EQ(report.audit.consent_changes, kEntries - 7);
  ASSERT_OK(audit::VerifyTiles(dir_ + "/", key_.public_key()).status());

  const nlohmann::json agents = nlohmann::json::parse(ReadBytes(File("lethe/agents.json")));
  ASSERT_EQ(agents["agents"].size(), 1u);
  const auto& a = agents["agents"][0];
  EXPECT_EQ(a["entry"], 2);
  EXPECT_EQ(a["domain"], "d1");
  EXPECT_EQ(a["key_id"], agent_.public_key().KeyId());
  EXPECT_EQ(a["public_key"], crypto::Base64(agent_.public_key().raw()));
  EXPECT_EQ(a["public_key_pem"], agent_.public_key().ToPem());
  EXPECT_EQ(agents["tree_size"], kEntries);

  const std::string readme = ReadBytes(File("lethe/README.txt"));
  EXPECT_THAT(readme, AllOf(HasSubstr("tlog-tiles"), HasSubstr(kOrigin), HasSubstr("300 entries"),
                            HasSubstr(VerifierKey(kOrigin, key_.public_key()))));
}

TEST_F(RealLedgerTilesTest, FlippedByteInEntryBundleIsDataLossNamingBundleAndEntry) {
  const std::string path = File("tile/entries/001.p/44");
  FlipByte(path, ReadBytes(path).size() - 1);  // last byte of entry 299
  ExpectDataLossNaming({"tile/entries/001.p/44", "entry 299", "tile/0/001.p/44"});
}

TEST_F(RealLedgerTilesTest, FlippedLengthPrefixInEntryBundleIsDataLoss) {
  FlipByte(File("tile/entries/000"), 1);
  ExpectDataLossNaming({"tile/entries/000", "entry 0"});
}

TEST_F(RealLedgerTilesTest, FlippedByteInFullLevelZeroTileIsDataLossNamingIt) {
  FlipByte(File("tile/0/000"), 100);
  ExpectDataLossNaming({"tile/0/000: does not hash to hash 0 of tile/1/000.p/1"});
}

TEST_F(RealLedgerTilesTest, FlippedByteInPartialLevelZeroTileIsDataLossNamingIt) {
  FlipByte(File("tile/0/001.p/44"), 5);
  ExpectDataLossNaming({"tile/0/001.p/44", "checkpoint's root"});
}

TEST_F(RealLedgerTilesTest, FlippedByteInLevelOneTileIsDataLossNamingIt) {
  FlipByte(File("tile/1/000.p/1"), 31);
  ExpectDataLossNaming({"tile/1/000.p/1", "checkpoint's root"});
}

TEST_F(RealLedgerTilesTest, TruncatedTileIsDataLossNamingIt) {
  const std::string data = ReadBytes(File("tile/0/000"));
  WriteBytes(File("tile/0/000"), data.substr(0, data.size() - 1));
  ExpectDataLossNaming({"tile/0/000", "8191 bytes"});
}

TEST_F(RealLedgerTilesTest, DeletedTileIsDataLossNamingIt) {
  fs::remove(File("tile/0/000"));
  ExpectDataLossNaming({"missing tile/0/000"});
}

TEST_F(RealLedgerTilesTest, DeletedBundleIsDataLossNamingIt) {
  fs::remove(File("tile/entries/001.p/44"));
  ExpectDataLossNaming({"missing tile/entries/001.p/44"});
}

TEST_F(RealLedgerTilesTest, StrayTileIsDataLossNamingIt) {
  WriteBytes(File("tile/0/002"), ReadBytes(File("tile/0/000")));
  ExpectDataLossNaming({"unexpected tile/0/002"});
}

TEST_F(RealLedgerTilesTest, StrayFullTileNextToThePartialIsDataLoss) {
  WriteBytes(File("tile/1/000"), std::string(8192, 'x'));
  ExpectDataLossNaming({"unexpected tile/1/000"});
}

TEST_F(RealLedgerTilesTest, StrayBundleInADeeperDirectoryIsDataLoss) {
  WriteBytes(File("tile/entries/x001/000"), "junk");
  ExpectDataLossNaming({"tile/entries/x001/000"});
}

TEST_F(RealLedgerTilesTest, CheckpointSignedByAnotherKeyIsPermissionDenied) {
  WriteBytes(File("checkpoint"), CheckpointFor(entries_, kEntries, NewKey()));
  const absl::Status st = Verify();
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("checkpoint"));
}

TEST_F(RealLedgerTilesTest, CheckpointWhoseSizeDisagreesWithTheTilesIsDataLoss) {
  WriteBytes(File("checkpoint"), CheckpointFor(entries_, kEntries - 1, key_));
  ExpectDataLossNaming({"299 entries", "missing tile/0/001.p/43", "tile/entries/001.p/43",
                        "unexpected tile/0/001.p/44"});
}

// Found by tests/fuzz/tiles_fuzz (a signed checkpoint of 2^40 entries over a directory
// holding nothing else): the list of expected files was built from the signed size alone,
// until memory ran out. Now the files are counted first.
TEST_F(RealLedgerTilesTest, CheckpointOfAHugeSizeIsDataLossWithoutListingItsFiles) {
  const uint64_t huge = uint64_t{1} << 40;
  WriteBytes(File("checkpoint"), SignCheckpoint(Checkpoint{kOrigin, huge, crypto::Sha256("r")}, key_));
  ExpectDataLossNaming({"files do not match a tree of 1099511627776 entries",
                        "it has 8606777605 files, the directory holds "});
}

TEST_F(RealLedgerTilesTest, CheckpointOverOtherEntriesIsDataLoss) {
  WriteBytes(File("checkpoint"),
             SignCheckpoint(Checkpoint{kOrigin, kEntries, RootOf(entries_, 0, kEntries - 1)}, key_));
  ExpectDataLossNaming({"checkpoint's root"});
}

TEST_F(RealLedgerTilesTest, AgentsJsonEditedToAnotherKeyIsDataLoss) {
  nlohmann::json agents = nlohmann::json::parse(ReadBytes(File("lethe/agents.json")));
  const crypto::Ed25519PublicKey other = NewKey().public_key();
  agents["agents"][0]["public_key"] = crypto::Base64(other.raw());
  agents["agents"][0]["key_id"] = other.KeyId();
  agents["agents"][0]["public_key_pem"] = other.ToPem();
  WriteBytes(File("lethe/agents.json"), agents.dump(2));
  ExpectDataLossNaming({"lethe/agents.json", "agent 0", "entry 2"});
}

TEST_F(RealLedgerTilesTest, AgentsJsonWithAnExtraAgentIsDataLoss) {
  nlohmann::json agents = nlohmann::json::parse(ReadBytes(File("lethe/agents.json")));
  agents["agents"].push_back(agents["agents"][0]);
  WriteBytes(File("lethe/agents.json"), agents.dump());
  ExpectDataLossNaming({"lethe/agents.json", "lists 2 agents"});
}

TEST_F(RealLedgerTilesTest, AgentsJsonReformattedStillVerifies) {
  const nlohmann::json agents = nlohmann::json::parse(ReadBytes(File("lethe/agents.json")));
  WriteBytes(File("lethe/agents.json"), agents.dump());
  ASSERT_OK(Verify());
}

TEST_F(RealLedgerTilesTest, ConsistentlyRewrittenEntryFailsTheAudit) {
  // Rewrite entry 4 (the CommandIssued) and every hash above it, then re-sign the checkpoint
  // with lethed's key: the tiles agree, the chain does not.
  std::vector<std::string> forged = entries_;
  v1::LedgerEntry e;
  ASSERT_TRUE(e.ParseFromString(forged[4]));
  ASSERT_TRUE(e.has_command_issued());
  e.mutable_command_issued()->set_command_digest(crypto::Sha256("other command"));
  forged[4] = e.SerializeAsString();
  TempDir other;
  const std::string dir = other.File("export");
  ASSERT_OK(Export(dir, forged, kEntries, CheckpointFor(forged, kEntries, key_)));
  const absl::Status st = audit::VerifyTiles(dir, key_.public_key()).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()), AllOf(HasSubstr("tile/entries/000"), HasSubstr("entry 5")));
}

// A full level-1 tile needs 65,536 entries: the synthetic log.
TEST(VerifyTiles, FlippedByteInFullLevelOneTileIsDataLossNamingIt) {
  const SharedLog& log = Shared();
  TempDir tmp;
  const std::string dir = tmp.File("export");
  ASSERT_OK(Export(dir, log.entries, 70000, CheckpointFor(log.entries, 70000, log.key)));
  FlipByte(dir + "/tile/1/000", 32 * 7 + 3);
  const absl::Status st = audit::VerifyTiles(dir, log.key.public_key()).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("tile/1/000: does not hash to hash 0 of tile/2/000.p/1"));
}

}  // namespace
}  // namespace lethe::ledger
