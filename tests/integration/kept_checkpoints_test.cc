// Auditors' kept checkpoints against a live lethed: `ledger checkpoint --save DIR` keeps every
// checkpoint lethed signed (served from its checkpoint history), and `ledger verify --since
// DIR` catches what no verifier can see in a log on its own: that it was cut back to an
// older signed state (a rollback), online and offline. Saving never replaces a kept
// checkpoint, and refuses a fork.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/checkpoint_history.h"
#include "ledger/record_format.h"
#include "tests/support/files.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

class KeptCheckpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Mesh::Options o;
    o.domains = {"assessments", "growth"};
    auto m = Mesh::Start(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = std::move(*m);
    ASSERT_TRUE(mesh_->Plant(kAlice).ok());
    ASSERT_TRUE(mesh_->Plant(kBob).ok());
    auto done = mesh_->EraseAndWait(kAlice, absl::Seconds(90));
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_EQ(done->state(), v1::COMPLETED);
  }

  CommandResult Cli(std::vector<std::string> args) { return RunLethectl(*mesh_, args); }
  std::string Tmp(const std::string& name) { return mesh_->work_dir() + "/" + name; }
  std::string Pub() const { return mesh_->lethed_pub(); }
  CommandResult Save(const std::string& dir) {
    return Cli({"ledger", "checkpoint", "--fresh", "--save", dir, "--public-key", Pub()});
  }
  std::string LedgerDir() const { return mesh_->data_dir() + "/ledger"; }

  std::unique_ptr<Mesh> mesh_;
};

// The *.checkpoint files of a directory, by name.
std::vector<std::string> KeptFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".checkpoint") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string KeptName(uint64_t size) { return absl::StrFormat("%020d.checkpoint", size); }

// Overwrites, in place, the record of the checkpoint history file that holds `note` with
// `replacement` (of the same length), checksum and all: lethed serves it from then on.
void ReplaceHistoryNote(const std::string& path, const std::string& note, const std::string& replacement) {
  ASSERT_EQ(note.size(), replacement.size());
  const std::string file = ReadBytes(path);
  const size_t at = file.find(note);
  ASSERT_NE(at, std::string::npos);
  ASSERT_GE(at, ledger::CheckpointHistory::kHeaderSize + 8);
  std::string framed;
  ledger::format::AppendRecord(&framed, replacement);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at - 8));
  f.write(framed.data(), static_cast<std::streamsize>(framed.size()));
  f.close();
  ASSERT_TRUE(f.good());
}

TEST_F(KeptCheckpointsTest, KeptCheckpointsCatchALogCutBackThatVerifiesOnItsOwn) {
  const std::string kept = Tmp("kept");
  auto key = crypto::Ed25519PublicKey::LoadFile(Pub());
  ASSERT_TRUE(key.ok());
  // Kept checkpoints are evidence only under a key the auditor pinned.
  EXPECT_EQ(Cli({"ledger", "checkpoint", "--save", kept}).exit_code, 2);

  // lethed's files after Alice's erasure, copied while it is stopped: what its host could put
  // back later. An export of the same log, too.
  mesh_->StopLethed();
  fs::create_directories(Tmp("older"));
  fs::copy(LedgerDir(), Tmp("older/ledger"), fs::copy_options::recursive);
  ASSERT_TRUE(mesh_->StartLethed().ok());
  ASSERT_EQ(Cli({"ledger", "export", "--out", Tmp("older-export"), "--public-key", Pub()}).exit_code, 0);
  ASSERT_EQ(ReadBytes(Tmp("older-export/checkpoint")), ReadBytes(Tmp("older/ledger/checkpoint")));

  // The first save keeps every checkpoint lethed signed, each under its size.
  CommandResult first = Save(kept);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto files1 = KeptFiles(kept);
  ASSERT_GE(files1.size(), 2u);
  EXPECT_THAT(first.output, HasSubstr(absl::StrCat(files1.size(), " new checkpoint(s) kept in ", kept)));
  auto served = mesh_->lethed().ledger().checkpoint_history().List(0, 100000);
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_EQ(served->size(), files1.size());
  for (size_t i = 0; i < files1.size(); ++i) {
    EXPECT_EQ(files1[i], KeptName((*served)[i].size));
    EXPECT_EQ(ReadBytes(kept + "/" + files1[i]), (*served)[i].note);
    EXPECT_TRUE(ledger::VerifyCheckpoint((*served)[i].note, ledger::kDefaultOrigin, *key).ok());
  }
  // Again with nothing new: nothing written.
  CommandResult again = Save(kept);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("0 new checkpoint(s)"));
  EXPECT_EQ(KeptFiles(kept), files1);

  // The log grows (Bob's request and its commands); the next save keeps what is new.
  ASSERT_TRUE(mesh_->Erase(kBob).ok());
  CommandResult second = Save(kept);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  const auto files2 = KeptFiles(kept);
  ASSERT_GT(files2.size(), files1.size());
  EXPECT_THAT(second.output, HasSubstr(absl::StrCat(files2.size() - files1.size(),
                                                    " new checkpoint(s) kept in ", kept,
                                                    " (1 already kept)")));
  // The log extends every kept checkpoint, through lethed and from the files.
  CommandResult online = Cli({"ledger", "verify", "--since", kept, "--public-key", Pub()});
  EXPECT_EQ(online.exit_code, 0) << online.output;
  EXPECT_THAT(online.output, HasSubstr(absl::StrCat("extends all ", files2.size(), " kept checkpoints")));
  CommandResult offline =
      Cli({"ledger", "verify", "--dir", mesh_->data_dir(), "--since", kept, "--public-key", Pub()});
  EXPECT_EQ(offline.exit_code, 0) << offline.output;
  EXPECT_THAT(offline.output, HasSubstr(absl::StrCat("extends all ", files2.size(), " kept checkpoints")));

  // The rollback: lethed's host puts the older copy of the ledger directory back, an older
  // log with its checkpoint files as they were, every one signed by lethed's key.
  const std::string newest = kept + "/" + files2.back();
  const uint64_t newest_size = std::stoull(files2.back().substr(0, 20));
  mesh_->StopLethed();
  fs::remove_all(LedgerDir());
  fs::copy(Tmp("older/ledger"), LedgerDir(), fs::copy_options::recursive);
  auto older = ledger::VerifyCheckpoint(ReadBytes(LedgerDir() + "/checkpoint"), ledger::kDefaultOrigin, *key);
  ASSERT_TRUE(older.ok());
  const std::string rollback = absl::StrCat(newest, ": rollback: the kept checkpoint covers ", newest_size,
                                            " entries but the log has only ", older->size);

  // On its own the older log verifies: chain, tree, signatures, checkpoint. Only the kept
  // checkpoints show it is not the log lethed had. (Offline: lethed is stopped.)
  CommandResult plain = Lethectl({"ledger", "verify", "--dir", mesh_->data_dir(), "--public-key", Pub()});
  EXPECT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_THAT(plain.output, HasSubstr("ledger verify: OK"));
  CommandResult caught =
      Lethectl({"ledger", "verify", "--dir", mesh_->data_dir(), "--since", kept, "--public-key", Pub()});
  EXPECT_EQ(caught.exit_code, 1) << caught.output;
  EXPECT_THAT(caught.output, HasSubstr("ledger verify --since: FAILED: " + rollback));
  // The export of the older log, the same.
  CommandResult bundle = Lethectl({"ledger", "verify", "--bundle", Tmp("older-export"), "--public-key", Pub()});
  EXPECT_EQ(bundle.exit_code, 0) << bundle.output;
  CommandResult bundle_caught =
      Lethectl({"ledger", "verify", "--bundle", Tmp("older-export"), "--since", kept, "--public-key", Pub()});
  EXPECT_EQ(bundle_caught.exit_code, 1) << bundle_caught.output;
  EXPECT_THAT(bundle_caught.output, HasSubstr(rollback));

  // lethed opens the older copy (its history is as old as its log) and serves it. Its own
  // verification passes; the kept checkpoints fail it, and no new one is kept.
  ASSERT_TRUE(mesh_->StartLethed().ok());
  CommandResult served_plain = Cli({"ledger", "verify", "--public-key", Pub()});
  EXPECT_EQ(served_plain.exit_code, 0) << served_plain.output;
  CommandResult served_caught = Cli({"ledger", "verify", "--since", kept, "--public-key", Pub()});
  EXPECT_EQ(served_caught.exit_code, 1) << served_caught.output;
  EXPECT_THAT(served_caught.output, HasSubstr(rollback));
  CommandResult refused = Save(kept);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr(absl::StrCat("rollback: the kept checkpoint ", newest, " covers ",
                                                     newest_size, " entries but lethed's latest only ",
                                                     older->size)));
  EXPECT_EQ(KeptFiles(kept), files2);
}

TEST_F(KeptCheckpointsTest, SavingNeverReplacesAKeptCheckpointAndRefusesAFork) {
  const std::string kept = Tmp("kept");
  auto lethed_key = crypto::Ed25519PrivateKey::LoadFile(mesh_->lethed_key());
  auto stranger = crypto::Ed25519PrivateKey::Generate();
  ASSERT_TRUE(lethed_key.ok() && stranger.ok());
  CommandResult first = Save(kept);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto files = KeptFiles(kept);
  const std::string largest = kept + "/" + files.back();
  const std::string honest = ReadBytes(largest);
  auto cp = ledger::ParseCheckpointUnverified(honest);
  ASSERT_TRUE(cp.ok());

  // A note of another history, signed by lethed's key, kept under the same size (as two
  // auditors comparing what they kept would find it): a fork. Refused, naming both, and the
  // kept file stays.
  const ledger::Checkpoint other{cp->origin, cp->size, crypto::Sha256("another history")};
  const std::string forged = ledger::SignCheckpoint(other, *lethed_key);
  WriteBytes(largest, forged);
  CommandResult fork = Save(kept);
  EXPECT_EQ(fork.exit_code, 1) << fork.output;
  EXPECT_THAT(fork.output, HasSubstr(absl::StrCat("FORK: ", largest, " keeps a checkpoint of ", cp->size,
                                                  " entries with root ", crypto::Base64(other.root),
                                                  ", and lethed now serves one of the same size with root ",
                                                  crypto::Base64(cp->root))));
  EXPECT_THAT(fork.output, HasSubstr(honest));
  EXPECT_EQ(ReadBytes(largest), forged);
  EXPECT_EQ(KeptFiles(kept), files);
  // Verification against it fails too, naming the file, through lethed and offline.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"ledger", "verify", "--since", kept, "--public-key", Pub()},
           {"ledger", "verify", "--dir", mesh_->data_dir(), "--since", kept, "--public-key", Pub()}}) {
    CommandResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_THAT(r.output, HasSubstr(largest + ": the log does not extend the kept checkpoint"));
  }
  // A kept checkpoint lethed's key did not sign: refused, and the file stays.
  const std::string unsigned_note = ledger::SignCheckpoint(*cp, *stranger);
  WriteBytes(largest, unsigned_note);
  CommandResult strange = Save(kept);
  EXPECT_EQ(strange.exit_code, 1) << strange.output;
  EXPECT_THAT(strange.output, HasSubstr("the kept checkpoint " + largest));
  EXPECT_THAT(strange.output, HasSubstr("no signature by key"));
  EXPECT_EQ(ReadBytes(largest), unsigned_note);
  // A checkpoint of another log (another origin) signed by the same key is no evidence about
  // this one, even with this log's root: refused, online and offline.
  WriteBytes(largest, honest);
  uint64_t unkept = cp->size - 1;  // a size none of the kept checkpoints has
  while (fs::exists(kept + "/" + KeptName(unkept))) --unkept;
  ASSERT_GT(unkept, 0u);
  const std::string other_log = kept + "/" + KeptName(unkept);
  auto root_then = mesh_->lethed().ledger().RootAt(unkept);
  ASSERT_TRUE(root_then.ok());
  WriteBytes(other_log, ledger::SignCheckpoint({"other.example/log", unkept, *root_then}, *lethed_key));
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"ledger", "verify", "--since", kept, "--public-key", Pub()},
           {"ledger", "verify", "--dir", mesh_->data_dir(), "--since", kept, "--public-key", Pub()}}) {
    CommandResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_THAT(r.output, HasSubstr(other_log + ": not a checkpoint of lethe.local/ledger signed by"));
  }
  fs::remove(other_log);
  // Put back, the same checkpoint again is fine.
  WriteBytes(largest, honest);
  CommandResult same = Save(kept);
  EXPECT_EQ(same.exit_code, 0) << same.output;
  EXPECT_THAT(same.output, HasSubstr("0 new checkpoint(s)"));

  // Bob's erasure, with a checkpoint signed half way: lethed's history now holds checkpoints
  // between the largest kept and the latest.
  auto bob = mesh_->Erase(kBob);
  ASSERT_TRUE(bob.ok()) << bob.status();
  ASSERT_TRUE(mesh_->lethed().ledger().Checkpoint().ok());
  auto done = mesh_->WaitDone(*bob, absl::Seconds(90));
  ASSERT_TRUE(done.ok() && done->state() == v1::COMPLETED);
  auto newer = mesh_->lethed().ledger().checkpoint_history().List(cp->size + 1, 1000);
  ASSERT_TRUE(newer.ok() && !newer->empty());
  const ledger::CheckpointHistory::Entry middle = newer->front();
  ASSERT_LT(middle.size, mesh_->lethed().ledger().size());

  // A kept checkpoint of a size lethed never signed, for entries the log does not hold: the
  // log no longer extends it, and nothing newer is kept.
  ASSERT_GT(middle.size, cp->size + 1);
  const std::string never = kept + "/" + KeptName(cp->size + 1);
  WriteBytes(never, ledger::SignCheckpoint({cp->origin, cp->size + 1, crypto::Sha256("x")}, *lethed_key));
  CommandResult diverged = Save(kept);
  EXPECT_EQ(diverged.exit_code, 1) << diverged.output;
  EXPECT_THAT(diverged.output, HasSubstr("the log no longer extends the kept checkpoint " + never));
  EXPECT_EQ(KeptFiles(kept).size(), files.size() + 1);
  fs::remove(never);

  // lethed serving, from its history, a note its key did not sign, or one of another history:
  // refused, nothing kept.
  const std::string history = LedgerDir() + "/" + ledger::CheckpointHistory::kFileName;
  auto middle_cp = ledger::ParseCheckpointUnverified(middle.note);
  ASSERT_TRUE(middle_cp.ok());
  const std::string by_stranger = ledger::SignCheckpoint(*middle_cp, *stranger);
  ReplaceHistoryNote(history, middle.note, by_stranger);
  CommandResult bad_signature = Save(kept);
  EXPECT_EQ(bad_signature.exit_code, 1) << bad_signature.output;
  EXPECT_THAT(bad_signature.output,
              HasSubstr(absl::StrCat("lethed serves a checkpoint (size ", middle.size, ") that does not verify")));
  const std::string of_another_history =
      ledger::SignCheckpoint({middle_cp->origin, middle.size, crypto::Sha256("y")}, *lethed_key);
  ReplaceHistoryNote(history, by_stranger, of_another_history);
  CommandResult inconsistent = Save(kept);
  EXPECT_EQ(inconsistent.exit_code, 1) << inconsistent.output;
  EXPECT_THAT(inconsistent.output, HasSubstr(absl::StrCat("lethed's checkpoint of ", middle.size,
                                                          " entries is not consistent with its latest")));
  EXPECT_EQ(KeptFiles(kept), files);
  ReplaceHistoryNote(history, of_another_history, middle.note);
  CommandResult grown = Save(kept);
  EXPECT_EQ(grown.exit_code, 0) << grown.output;
  EXPECT_GT(KeptFiles(kept).size(), files.size());

  // An empty directory is no evidence: verifying against it fails.
  fs::create_directories(Tmp("empty"));
  CommandResult empty = Cli({"ledger", "verify", "--since", Tmp("empty"), "--public-key", Pub()});
  EXPECT_NE(empty.exit_code, 0) << empty.output;
  EXPECT_THAT(empty.output, HasSubstr("no kept checkpoints"));
}

// ListCheckpoints serves the whole history in pages of at most 1000, from a size on, to
// auditors and admins only.
TEST(ListCheckpoints, ServesTheHistoryInBoundedPagesToAuditors) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  // More checkpoints than one page may hold, appended straight to lethed's ledger.
  ledger::Ledger& l = mesh.lethed().ledger();
  for (int i = 0; i < 1050; ++i) {
    v1::LedgerEntry e;
    e.mutable_request_submitted()->set_request_id(absl::StrCat("filler-", i));
    ASSERT_TRUE(l.Append({e}, absl::Now()).ok());
    ASSERT_TRUE(l.Checkpoint().ok());
  }
  auto all = l.checkpoint_history().List(0, 100000);
  ASSERT_TRUE(all.ok());
  ASSERT_GT(all->size(), 1050u);

  auto stub = v1::Ledger::NewStub(mesh.Channel("auditor"));
  auto list = [&](uint64_t from, int32_t page_size, const std::string& token, v1::ListCheckpointsResponse* resp) {
    grpc::ClientContext ctx;
    v1::ListCheckpointsRequest req;
    req.set_from_size(from);
    req.set_page_size(page_size);
    req.set_page_token(token);
    return stub->ListCheckpoints(&ctx, req, resp);
  };
  v1::ListCheckpointsResponse big, dflt;
  ASSERT_TRUE(list(0, 100000, "", &big).ok());
  EXPECT_EQ(big.checkpoints_size(), 1000);
  EXPECT_FALSE(big.next_page_token().empty());
  ASSERT_TRUE(list(0, 0, "", &dflt).ok());
  EXPECT_EQ(dflt.checkpoints_size(), 100);
  // Page by page, from a size on: every checkpoint of at least that size, once, in order.
  const uint64_t from = (*all)[37].size;
  std::vector<std::string> paged;
  std::string token;
  int pages = 0;
  do {
    v1::ListCheckpointsResponse resp;
    ASSERT_TRUE(list(from, 300, token, &resp).ok());
    EXPECT_LE(resp.checkpoints_size(), 300);
    for (const auto& c : resp.checkpoints()) {
      EXPECT_EQ(ledger::ParseCheckpointUnverified(c.checkpoint())->size, c.size());
      paged.push_back(c.checkpoint());
    }
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 100);
  std::vector<std::string> want;
  for (size_t i = 37; i < all->size(); ++i) want.push_back((*all)[i].note);
  EXPECT_EQ(paged, want);
  EXPECT_EQ(pages, static_cast<int>((want.size() + 299) / 300));
  // Bad paging input names the field.
  v1::ListCheckpointsResponse bad;
  grpc::Status negative = list(0, -1, "", &bad);
  EXPECT_EQ(negative.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(negative.error_message(), HasSubstr("page_size"));
  grpc::Status garbage = list(0, 10, "not-a-token", &bad);
  EXPECT_EQ(garbage.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(garbage.error_message(), HasSubstr("page_token"));
  // A token past the largest size there can be ends the list (it does not wrap to the start).
  v1::ListCheckpointsResponse past;
  ASSERT_TRUE(list(0, 10, "e18446744073709551615", &past).ok());
  EXPECT_EQ(past.checkpoints_size(), 0);
  EXPECT_TRUE(past.next_page_token().empty());
  // The same role as GetCheckpoint: auditors and admins, not operators.
  for (const char* role : {"admin", "operator"}) {
    grpc::ClientContext ctx;
    v1::ListCheckpointsRequest req;
    v1::ListCheckpointsResponse resp;
    grpc::Status s = v1::Ledger::NewStub(mesh.Channel(role))->ListCheckpoints(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), std::string(role) == "admin" ? grpc::StatusCode::OK
                                                           : grpc::StatusCode::PERMISSION_DENIED)
        << role << ": " << s.error_message();
  }
}

}  // namespace
}  // namespace lethe::testing
