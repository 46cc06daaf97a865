// The auditor's tools against a live lethed: checkpoints, inclusion and consistency proofs,
// the tlog-tiles export, erasure certificates, and the API's answers to bad ranges.
#include <filesystem>
#include <fstream>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "base/file_system.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "tests/support/files.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kLethectl = LETHE_BINARY_DIR "/cli/lethectl";

class AuditTest : public ::testing::Test {
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
    alice_request_ = done->request_id();
  }

  CommandResult Cli(std::vector<std::string> args) {
    return RunLethectl(*mesh_, args);
  }
  std::string Tmp(const std::string& name) { return mesh_->work_dir() + "/" + name; }

  std::unique_ptr<Mesh> mesh_;
  std::string alice_request_;
};

TEST_F(AuditTest, CheckpointProofAndVerifierKeyAreStandardAndVerify) {
  CommandResult cp = Cli({"ledger", "checkpoint", "--fresh", "--public-key", mesh_->lethed_pub(),
                          "--out", Tmp("cp")});
  ASSERT_EQ(cp.exit_code, 0) << cp.output;
  auto note = lethe::ReadFile(Tmp("cp"));
  ASSERT_TRUE(note.ok());
  auto key = crypto::Ed25519PublicKey::LoadFile(mesh_->lethed_pub());
  auto checkpoint = ledger::VerifyCheckpoint(*note, ledger::kDefaultOrigin, *key);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->size, mesh_->lethed().ledger().size());

  CommandResult vk = Cli({"ledger", "verifier-key"});
  EXPECT_EQ(vk.exit_code, 0);
  EXPECT_EQ(vk.output, ledger::VerifierKey(ledger::kDefaultOrigin, *key) + "\n");
  CommandResult vk_offline = Cli({"ledger", "verifier-key", "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(vk_offline.output, vk.output);
  EXPECT_THAT(vk.output, StartsWith(std::string(ledger::kDefaultOrigin) + "+"));

  // C2SP tlog-proof: header, index, proof hashes, blank line, checkpoint. Check it ourselves.
  const uint64_t index = 3;
  CommandResult proof = Cli({"ledger", "proof", "--entry", std::to_string(index), "--public-key",
                             mesh_->lethed_pub()});
  ASSERT_EQ(proof.exit_code, 0) << proof.output;
  ASSERT_THAT(proof.output, StartsWith("c2sp.org/tlog-proof@v1\nindex 3\n"));
  const size_t blank = proof.output.find("\n\n");
  std::vector<std::string> path;
  std::string lines = proof.output.substr(std::strlen("c2sp.org/tlog-proof@v1\nindex 3\n"),
                                          blank + 1 - std::strlen("c2sp.org/tlog-proof@v1\nindex 3\n"));
  for (size_t pos = 0; pos < lines.size();) {
    size_t nl = lines.find('\n', pos);
    path.push_back(*crypto::FromBase64(lines.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  auto proof_cp = ledger::VerifyCheckpoint(proof.output.substr(blank + 2), ledger::kDefaultOrigin, *key);
  ASSERT_TRUE(proof_cp.ok()) << proof_cp.status();
  auto entry = mesh_->lethed().ledger().ReadEntry(index);
  EXPECT_TRUE(ledger::VerifyInclusion(index, proof_cp->size, ledger::LeafHash(*entry), path,
                                      proof_cp->root).ok());
  // An entry beyond the log is a clear error.
  CommandResult beyond = Cli({"ledger", "proof", "--entry", "999999"});
  EXPECT_NE(beyond.exit_code, 0);
  EXPECT_THAT(beyond.output, HasSubstr("index"));
}

TEST_F(AuditTest, VerifySinceProvesGrowthAndCatchesARewrittenHistory) {
  ASSERT_EQ(Cli({"ledger", "checkpoint", "--fresh", "--out", Tmp("old")}).exit_code, 0);
  auto done = mesh_->EraseAndWait(kBob, absl::Seconds(90));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::COMPLETED);
  CommandResult ok = Cli({"ledger", "verify", "--since", Tmp("old"), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("extends the kept checkpoint"));

  // A checkpoint of another history, signed with lethed's own key (as a compromised or
  // misbehaving log would): same size as the kept one, different root.
  auto old_cp = ledger::ParseCheckpointUnverified(*lethe::ReadFile(Tmp("old")));
  auto key = crypto::Ed25519PrivateKey::LoadFile(mesh_->lethed_key());
  ledger::Checkpoint fork{old_cp->origin, old_cp->size, crypto::Sha256("another history")};
  ASSERT_TRUE(lethe::WriteFileAtomic(Tmp("fork"), ledger::SignCheckpoint(fork, *key), 0644).ok());
  CommandResult bad = Cli({"ledger", "verify", "--since", Tmp("fork"), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("does not extend"));
  // A kept checkpoint signed by someone else is refused outright.
  auto stranger = crypto::Ed25519PrivateKey::Generate();
  ASSERT_TRUE(lethe::WriteFileAtomic(Tmp("stranger"), ledger::SignCheckpoint(*old_cp, *stranger), 0644).ok());
  EXPECT_NE(Cli({"ledger", "verify", "--since", Tmp("stranger"), "--public-key", mesh_->lethed_pub()}).exit_code, 0);
}

TEST_F(AuditTest, ExportIsAVerifiableTlogTilesTreeWithoutPersonalData) {
  CommandResult ex = Cli({"ledger", "export", "--out", Tmp("export"), "--public-key", mesh_->lethed_pub()});
  ASSERT_EQ(ex.exit_code, 0) << ex.output;
  EXPECT_TRUE(fs::exists(Tmp("export/checkpoint")));
  EXPECT_TRUE(fs::exists(Tmp("export/tile/entries/000.p/" + std::to_string(mesh_->lethed().ledger().size()))));
  EXPECT_TRUE(fs::exists(Tmp("export/lethe/agents.json")));
  CommandResult v = Cli({"ledger", "verify", "--bundle", Tmp("export"), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr("receipts    2"));
  // No raw identity anywhere in what a regulator would receive.
  EXPECT_THAT(FilesContaining(Tmp("export"), kAlice.email), ::testing::IsEmpty());
  EXPECT_THAT(FilesContaining(Tmp("export"), kAlice.user_id), ::testing::IsEmpty());
  // A changed byte in a hash tile is caught, naming the file.
  const std::string tile = Tmp("export/tile/0/000.p/" + std::to_string(mesh_->lethed().ledger().size()));
  {
    std::fstream f(tile, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x5a');
  }
  CommandResult broken = Cli({"ledger", "verify", "--bundle", Tmp("export"), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_THAT(broken.output, HasSubstr("tile/"));
}

TEST_F(AuditTest, ErasureCertificateVerifiesOfflineAndDetectsTampering) {
  CommandResult c = Cli({"request", "certificate", alice_request_, "--out", Tmp("cert.json"),
                         "--public-key", mesh_->lethed_pub()});
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_THAT(c.output, HasSubstr("COMPLETED"));
  CommandResult v = RunCommand({kLethectl, "request", "certificate", "--verify", Tmp("cert.json"),
                                "--public-key", mesh_->lethed_pub()},
                               absl::Seconds(30)).value();
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr("certificate: VALID"));
  EXPECT_THAT(v.output, HasSubstr("assessments.responses"));
  EXPECT_THAT(v.output, HasSubstr("growth.contacts"));
  auto text = *lethe::ReadFile(Tmp("cert.json"));
  EXPECT_EQ(text.find(kAlice.email), std::string::npos);

  // Another key: invalid. A changed byte in any proven entry: invalid.
  auto other = crypto::Ed25519PrivateKey::Generate();
  ASSERT_TRUE(other->public_key().SaveFile(Tmp("other.pub")).ok());
  EXPECT_EQ(RunCommand({kLethectl, "request", "certificate", "--verify", Tmp("cert.json"),
                        "--public-key", Tmp("other.pub")}, absl::Seconds(30))->exit_code, 1);
  v1::ErasureCertificate cert;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(text, &cert).ok());
  for (int i = 0; i < cert.entries_size(); ++i) {
    v1::ErasureCertificate tampered = cert;
    std::string* bytes = tampered.mutable_entries(i)->mutable_entry();
    (*bytes)[bytes->size() / 2] ^= 1;
    std::string out;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(tampered, &out).ok());
    ASSERT_TRUE(lethe::WriteFileAtomic(Tmp("bad.json"), out, 0644).ok());
    CommandResult r = RunCommand({kLethectl, "request", "certificate", "--verify", Tmp("bad.json"),
                                  "--public-key", mesh_->lethed_pub()}, absl::Seconds(30)).value();
    EXPECT_EQ(r.exit_code, 1) << "entry " << i << " " << r.output;
  }
  // Dropping a receipt makes the certificate incomplete.
  v1::ErasureCertificate partial = cert;
  partial.mutable_entries()->erase(partial.mutable_entries()->end() - 2);
  std::string out;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(partial, &out).ok());
  ASSERT_TRUE(lethe::WriteFileAtomic(Tmp("partial.json"), out, 0644).ok());
  EXPECT_EQ(RunCommand({kLethectl, "request", "certificate", "--verify", Tmp("partial.json"),
                        "--public-key", mesh_->lethed_pub()}, absl::Seconds(30))->exit_code, 1);
}

TEST_F(AuditTest, BadRangesGetInvalidArgumentOrOutOfRange) {
  auto stub = mesh_->LedgerStub();
  const uint64_t size = mesh_->lethed().ledger().size();
  auto inclusion = [&](uint64_t index, uint64_t sz) {
    grpc::ClientContext ctx;
    v1::GetInclusionProofRequest r;
    r.set_index(index);
    r.set_size(sz);
    v1::InclusionProofView v;
    return stub->GetInclusionProof(&ctx, r, &v).error_code();
  };
  EXPECT_EQ(inclusion(0, size), grpc::StatusCode::OK);
  EXPECT_EQ(inclusion(size, size), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(inclusion(0, size + 1), grpc::StatusCode::OUT_OF_RANGE);
  auto consistency = [&](uint64_t from, uint64_t to) {
    grpc::ClientContext ctx;
    v1::GetConsistencyProofRequest r;
    r.set_from(from);
    r.set_to(to);
    v1::ConsistencyProofView v;
    return stub->GetConsistencyProof(&ctx, r, &v).error_code();
  };
  EXPECT_EQ(consistency(1, size), grpc::StatusCode::OK);
  EXPECT_EQ(consistency(0, size), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(consistency(3, 2), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(consistency(1, size + 5), grpc::StatusCode::OUT_OF_RANGE);
  auto entries = [&](uint64_t start, uint64_t end) {
    grpc::ClientContext ctx;
    v1::GetEntriesRequest r;
    r.set_start(start);
    r.set_end(end);
    auto reader = stub->GetEntries(&ctx, r);
    v1::RawEntry e;
    while (reader->Read(&e)) {
    }
    return reader->Finish().error_code();
  };
  EXPECT_EQ(entries(0, size), grpc::StatusCode::OK);
  EXPECT_EQ(entries(3, 2), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(entries(0, size + 1), grpc::StatusCode::OUT_OF_RANGE);
  grpc::ClientContext ctx;
  v1::GetCertificateRequest cr;
  cr.set_request_id(std::string(32, 'f'));
  v1::ErasureCertificate cert;
  EXPECT_EQ(stub->GetCertificate(&ctx, cr, &cert).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace lethe::testing
