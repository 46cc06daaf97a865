// A batch is all or nothing across any crash (ledger/FORMAT.md §2 and §5), for the batches
// that matter: a request and its commands, a consent withdrawal and the erasure it plans, and
// a request's last receipt with its completion (after which lethed destroys the request's
// key). The ledger of a real run is cut inside each such batch, as a power loss or a full disk
// can leave it before a checkpoint covers the batch: at every record boundary and at every
// byte of its last record. Each cut must reopen to the batch before it: the offline verifier
// agrees on the files as they are, lethed itself starts on them with no request left waiting
// for a command it will never issue, and `lethectl ledger verify` passes afterwards.
//
// This is the bug the issue reproduced: the withdrawal's first entry kept, its erasure lost,
// and the log failing verification for good ("consent change planned erasure ..., which the
// log does not hold").
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "audit/auditor.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/record_format.h"
#include "lethe/v1/ledger.pb.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/mesh.h"

namespace lethe::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr absl::Duration kDone = absl::Seconds(60);

struct Stored {
  std::string segment;  // file name
  uint64_t offset = 0;  // of the record header
  uint64_t end = 0;     // past the record
  v1::LedgerEntry entry;
};

std::vector<Stored> ReadLedger(const std::string& dir) {
  std::vector<Stored> out;
  auto scan = ledger::ScanSegments(dir, [&](const ledger::ScannedRecord& r) {
    Stored s{r.segment, r.offset, r.offset + ledger::format::kRecordHeaderSize + r.payload.size(), {}};
    if (!s.entry.ParseFromArray(r.payload.data(), static_cast<int>(r.payload.size())))
      return absl::DataLossError("entry does not parse");
    out.push_back(std::move(s));
    return absl::OkStatus();
  });
  EXPECT_TRUE(scan.ok()) << scan.status();
  return out;
}

struct Batch {
  std::string kind;
  size_t first = 0, last = 0;  // entry indices, inclusive
};

// The batches of each kind the issue names, found by their marks and contents.
std::vector<Batch> FindBatches(const std::vector<Stored>& log) {
  std::vector<Batch> out;
  std::map<std::string, bool> seen;
  for (size_t i = 0; i < log.size();) {
    const size_t last = i + log[i].entry.batch_remaining();
    if (last >= log.size()) break;
    bool commands = false, completion = false;
    for (size_t k = i; k <= last; ++k) {
      commands |= log[k].entry.has_command_issued();
      completion |= log[k].entry.has_request_completed();
    }
    const v1::LedgerEntry& head = log[i].entry;
    std::string kind;
    if (head.has_consent_changed() && !head.consent_changed().erasure_request_id().empty())
      kind = "consent withdrawal with its erasure";
    else if (head.has_request_submitted() && commands)
      kind = "submit with commands";
    else if (completion)
      kind = "completion";
    if (!kind.empty() && !seen[kind]) {
      seen[kind] = true;
      out.push_back({kind, i, last});
    }
    i = last + 1;
  }
  return out;
}

void CopyTree(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::create_directories(fs::path(to).parent_path());
  fs::copy(from, to, fs::copy_options::recursive);
}

class BatchCutTest : public ::testing::Test {
 protected:
  // The run every test cuts. A failure is recorded, not asserted: googletest skips the tests
  // of a suite whose SetUpTestSuite has a fatal failure, and a skip must never pass for a
  // result; SetUp fails each test with it instead.
  static void SetUpTestSuite() { setup_ = Run(); }
  void SetUp() override { ASSERT_TRUE(setup_.ok()) << "the run the tests cut failed: " << setup_; }
  static absl::Status Run() {
    LETHE_ASSIGN_OR_RETURN(auto m, Mesh::Start());
    mesh_ = m.release();
    Mesh& mesh = *mesh_;
    LETHE_RETURN_IF_ERROR(mesh.Plant(kAlice));
    LETHE_RETURN_IF_ERROR(mesh.Plant(kBob));
    // A consent grant and a withdrawal of an erase-on-withdrawal purpose: one batch of the
    // change, the erasure it plans and that erasure's command.
    for (const char* verb : {"grant", "withdraw"}) {
      auto r = RunLethectl(mesh, {"consent", verb, "--identity", "email=" + kAlice.email,
                                  "--purpose", "marketing", "--source", "preference-centre"});
      if (r.exit_code != 0) return absl::InternalError("consent " + std::string(verb) + ": " + r.output);
    }
    // An erasure across every domain: a request with three commands; its completion.
    LETHE_ASSIGN_OR_RETURN(auto done, mesh.EraseAndWait(kBob, kDone));
    if (done.state() != v1::COMPLETED) return absl::InternalError("Bob's erasure did not complete");
    const std::vector<controlplane::RequestRecord> listed = mesh.lethed().store().List().value();
    for (const auto& r : listed) {
      LETHE_ASSIGN_OR_RETURN(auto d, mesh.WaitDone(r.request_id, kDone));
      if (d.state() != v1::COMPLETED) return absl::InternalError("request " + r.request_id + " did not complete");
    }
    mesh.StopLethed();
    return absl::OkStatus();
  }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }

  static Mesh* mesh_;
  static absl::Status setup_;
};
Mesh* BatchCutTest::mesh_ = nullptr;
absl::Status BatchCutTest::setup_;

TEST_F(BatchCutTest, EveryCutOfEveryBatchKindReopensToAVerifiableLogWithNoStuckRequest) {
  ASSERT_NE(mesh_, nullptr);
  const std::string data = mesh_->data_dir();
  const std::vector<Stored> log = ReadLedger(data + "/ledger");
  const std::vector<Batch> batches = FindBatches(log);
  std::vector<std::string> kinds;
  for (const Batch& b : batches) kinds.push_back(b.kind);
  ASSERT_THAT(kinds, ::testing::UnorderedElementsAre("consent withdrawal with its erasure",
                                                     "submit with commands", "completion"));
  auto key = crypto::Ed25519PrivateKey::LoadFile(mesh_->lethed_key());
  ASSERT_OK(key);
  auto origin = ledger::ParseCheckpointUnverified(
      *lethe::ReadFile(data + "/ledger/" + ledger::Ledger::kCheckpointFile));
  ASSERT_OK(origin);
  ledger::MerkleTree tree;
  for (size_t i = 0; i < log.size(); ++i) tree.Append(ledger::LeafHash(log[i].entry.SerializeAsString()));

  // The cuts are many and each reopen syncs files: on tmpfs where there is one (the files'
  // bytes are what matters here; durability has its own tests), else next to the mesh.
  std::optional<TempDir> shm;
  if (fs::is_directory("/dev/shm") && access("/dev/shm", W_OK) == 0) shm.emplace("/dev/shm");
  const std::string work = shm ? shm->path() : mesh_->work_dir() + "/cuts";
  int restarts = 0, cuts = 0;
  for (const Batch& b : batches) {
    SCOPED_TRACE(b.kind);
    const std::string segment = log[b.first].segment;
    ASSERT_EQ(log[b.last].segment, segment);
    // Every record boundary inside the batch, every byte of its last record, and its end.
    std::vector<uint64_t> positions;
    for (size_t k = b.first; k <= b.last; ++k) positions.push_back(log[k].offset);
    for (uint64_t p = log[b.last].offset + 1; p <= log[b.last].end; ++p) positions.push_back(p);
    // lethed's state as it was just before the batch: signed up to the entry before it.
    const std::string note =
        ledger::SignCheckpoint(ledger::Checkpoint{origin->origin, b.first, tree.Root(b.first)}, *key);

    for (uint64_t p : positions) {
      SCOPED_TRACE(absl::StrCat("cut at byte ", p, " of ", segment));
      ++cuts;
      const std::string dir = work + "/data";
      const std::string ledger_dir = dir + "/ledger";
      CopyTree(data + "/ledger", ledger_dir);  // the rest of the data dir only for lethed
      fs::resize_file(ledger_dir + "/" + segment, p);
      for (const auto& f : fs::directory_iterator(ledger_dir)) {
        const std::string name = f.path().filename().string();
        if (name.rfind("seg-", 0) == 0 && name > segment) fs::remove(f.path());
      }
      // The history would hold later checkpoints only after the batch was covered.
      fs::remove(ledger_dir + "/checkpoint-history.log");
      ASSERT_TRUE(lethe::WriteFileAtomic(ledger_dir + "/" + ledger::Ledger::kCheckpointFile, note, 0600).ok());
      const bool whole = p == log[b.last].end;
      const uint64_t expect = whole ? b.last + 1 : b.first;

      // The offline verifier on the files as the crash left them.
      audit::Auditor auditor(key->public_key(), note);
      auto scan = ledger::ScanSegments(ledger_dir, [&](const ledger::ScannedRecord& r) {
        return auditor.Add(r.index, r.payload);
      });
      ASSERT_OK(scan);
      auto report = auditor.Finish();
      ASSERT_OK(report);
      EXPECT_EQ(report->entries, expect);

      // lethed's ledger reopens to the batch before (or after) it.
      {
        ledger::LedgerOptions o;
        o.dir = ledger_dir;
        o.origin = origin->origin;
        o.signing_key = &*key;
        o.checkpoint_interval = absl::ZeroDuration();
        auto l = ledger::Ledger::Open(o, nullptr);
        ASSERT_OK(l);
        EXPECT_EQ((*l)->size(), expect);
      }
      // At each record boundary lethed itself starts on the cut files (a torn record in
      // between reopens as the boundary before it, as the Open above shows): no request is
      // left with a domain that has neither a command nor a wait for an identity, none with
      // every receipt stays open, and the log verifies with lethectl afterwards.
      const bool boundary = std::any_of(log.begin() + b.first, log.begin() + b.last + 1,
                                        [&](const Stored& s) { return s.offset == p; });
      if (!boundary) continue;
      // Start again from the untouched cut: the Open above already cut and re-signed it.
      CopyTree(data, dir);
      fs::resize_file(ledger_dir + "/" + segment, p);
      fs::remove(ledger_dir + "/checkpoint-history.log");
      ASSERT_TRUE(lethe::WriteFileAtomic(ledger_dir + "/" + ledger::Ledger::kCheckpointFile, note, 0600).ok());
      ++restarts;
      {
        controlplane::LethedOptions o = mesh_->LethedOptionsForTest();
        o.data_dir = dir;
        auto lethed = controlplane::Lethed::Start(o);
        ASSERT_OK(lethed);
        // A request whose every receipt survived the cut is completed again at start: the log
        // may have grown by such completions and by nothing else. (There can be several: when
        // the agents answered two requests close together, both completions may follow the
        // cut, whatever kind of batch it is in.)
        ASSERT_GE((*lethed)->ledger().size(), expect);
        ASSERT_OK((*lethed)->ledger().WaitDurable((*lethed)->ledger().Tail()));
        for (uint64_t i = expect; i < (*lethed)->ledger().size(); ++i) {
          auto bytes = (*lethed)->ledger().ReadEntry(i);
          ASSERT_OK(bytes);
          v1::LedgerEntry added;
          ASSERT_TRUE(added.ParseFromString(*bytes));
          EXPECT_TRUE(added.has_request_completed()) << "entry " << i << " appended at start is not a completion";
        }
        const std::vector<controlplane::RequestRecord> listed = (*lethed)->store().List().value();
        for (const auto& r : listed) {
          bool answered = true;
          for (const auto& d : r.domains) answered &= d.receipt.has_value();
          EXPECT_FALSE(answered && r.state == v1::IN_PROGRESS)
              << "request " << r.request_id << " has every receipt but is not completed";
          for (const auto& d : r.domains) {
            const bool waits_for_identity = !d.needed_types.empty();
            EXPECT_TRUE(!d.command_id.empty() || waits_for_identity || r.state != v1::IN_PROGRESS)
                << "request " << r.request_id << " is stuck: domain " << d.domain
                << " has no command and waits for nothing";
          }
        }
      }
      CommandResult v = Lethectl({"ledger", "verify", "--dir", dir, "--public-key", mesh_->lethed_pub()});
      EXPECT_EQ(v.exit_code, 0) << v.output;
      EXPECT_THAT(v.output, HasSubstr("ledger verify: OK"));
    }
  }
  std::cout << "cut " << batches.size() << " batches at " << cuts << " places; lethed restarted on "
            << restarts << " of them\n";
}

// The reproduction, end to end: the withdrawal batch cut after its first record.
// Before batches were marked, lethed kept the withdrawal, dropped its erasure and signed a
// checkpoint over that, and no verifier ever accepted the log again.
TEST_F(BatchCutTest, AWithdrawalCutAfterItsFirstRecordLosesTheWholeWithdrawal) {
  ASSERT_NE(mesh_, nullptr);
  const std::string data = mesh_->data_dir();
  const std::vector<Stored> log = ReadLedger(data + "/ledger");
  const std::vector<Batch> batches = FindBatches(log);
  auto it = std::find_if(batches.begin(), batches.end(),
                         [](const Batch& b) { return b.kind == "consent withdrawal with its erasure"; });
  ASSERT_NE(it, batches.end());
  auto key = crypto::Ed25519PrivateKey::LoadFile(mesh_->lethed_key());
  ASSERT_OK(key);
  ledger::MerkleTree tree;
  for (size_t i = 0; i < it->first; ++i) tree.Append(ledger::LeafHash(log[i].entry.SerializeAsString()));
  auto cp = ledger::ParseCheckpointUnverified(
      *lethe::ReadFile(data + "/ledger/" + ledger::Ledger::kCheckpointFile));
  ASSERT_OK(cp);

  const std::string dir = mesh_->work_dir() + "/withdrawal-cut";
  CopyTree(data, dir);
  const std::string ledger_dir = dir + "/ledger";
  // Zeros from the second record on: the sectors of the write past the first never reached
  // the disk (the file keeps its size, as with pre-zeroed space).
  const std::string seg = ledger_dir + "/" + log[it->first].segment;
  std::string bytes = *lethe::ReadFile(seg);
  std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(log[it->first + 1].offset), bytes.end(), '\0');
  ASSERT_TRUE(lethe::WriteFileAtomic(seg, bytes, 0600).ok());
  fs::remove(ledger_dir + "/checkpoint-history.log");
  ASSERT_TRUE(lethe::WriteFileAtomic(
                  ledger_dir + "/" + ledger::Ledger::kCheckpointFile,
                  ledger::SignCheckpoint(ledger::Checkpoint{cp->origin, it->first, tree.Root()}, *key), 0600)
                  .ok());

  CommandResult before = Lethectl({"ledger", "verify", "--dir", dir, "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(before.exit_code, 0) << before.output;
  EXPECT_THAT(before.output, HasSubstr("the log ends inside a batch: 1 entry"));
  {
    controlplane::LethedOptions o = mesh_->LethedOptionsForTest();
    o.data_dir = dir;
    auto lethed = controlplane::Lethed::Start(o);
    ASSERT_OK(lethed);
    EXPECT_EQ((*lethed)->ledger().size(), it->first);
    ASSERT_TRUE((*lethed)->ledger().torn_tail_cut().has_value());
    EXPECT_EQ((*lethed)->ledger().torn_tail_cut()->batch_entries, 1u);
    // The grant is there; the withdrawal is gone with its erasure.
    auto changes = (*lethed)->projections().consent.ByPurpose("marketing");
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].status, v1::GRANTED);
    EXPECT_TRUE(changes[0].erasure_request_id.empty());
  }
  CommandResult after = Lethectl({"ledger", "verify", "--dir", dir, "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(after.exit_code, 0) << after.output;
  EXPECT_THAT(after.output, ::testing::Not(HasSubstr("ends inside a batch")));
}

}  // namespace
}  // namespace lethe::testing
