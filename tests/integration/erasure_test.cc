// End-to-end erasure on real components: gRPC, the Kafka protocol (embedded mock cluster),
// PostgreSQL, Ed25519 signatures and fsync'd ledger files.
#include <filesystem>
#include <fstream>

#include "base/file_system.h"
#include "controlplane/identity_vault.h"
#include "controlplane/receipt_intake.h"
#include "kafka/kafka.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "ledger/record_format.h"
#include "tests/support/files.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr absl::Duration kDone = absl::Seconds(90);

struct Located {
  std::string segment;
  uint64_t offset = 0;
  uint64_t size = 0;  // framed size
};

// Where each record of the ledger lies.
std::vector<Located> Records(const std::string& ledger_dir) {
  std::vector<Located> out;
  auto scan = ledger::ScanSegments(ledger_dir, [&](const ledger::ScannedRecord& r) {
    out.push_back({ledger_dir + "/" + r.segment, r.offset,
                   ledger::format::kRecordHeaderSize + r.payload.size()});
    return absl::OkStatus();
  });
  EXPECT_TRUE(scan.ok()) << scan.status();
  return out;
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c ^= 0x20;
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

class ErasureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = Mesh::Start();
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = std::move(*m);
    ASSERT_TRUE(mesh_->Plant(kAlice).ok());
    ASSERT_TRUE(mesh_->Plant(kBob).ok());
  }

  // Erases Alice and waits for completion.
  v1::RequestView EraseAlice() {
    auto view = mesh_->EraseAndWait(kAlice, kDone);
    EXPECT_TRUE(view.ok()) << view.status();
    return view.ok() ? *view : v1::RequestView();
  }

  std::unique_ptr<Mesh> mesh_;
};

TEST_F(ErasureTest, ErasesOnePersonFromThreeDomainsAndKeepsTheOther) {
  std::map<std::string, int64_t> bob_before;
  for (const auto& d : mesh_->domains()) {
    ASSERT_GT(*mesh_->Rows(d, kAlice), 0);
    bob_before[d] = *mesh_->Rows(d, kBob);
  }

  v1::RequestView view = EraseAlice();
  ASSERT_EQ(view.state(), v1::COMPLETED);
  ASSERT_EQ(view.domains_size(), 3);
  for (const auto& d : view.domains()) {
    EXPECT_EQ(d.state(), v1::DONE) << d.domain();
    EXPECT_TRUE(d.verified_zero_remaining()) << d.domain();
    EXPECT_GT(d.receipt_entry(), 0u);
    int64_t rows = 0;
    for (const auto& t : d.tables()) {
      rows += t.rows_affected();
      EXPECT_EQ(t.rows_remaining(), 0);
    }
    EXPECT_GT(rows, 0) << d.domain();
  }
  for (const auto& d : mesh_->domains()) {
    EXPECT_EQ(*mesh_->Rows(d, kAlice), 0) << d;
    EXPECT_EQ(*mesh_->Rows(d, kBob), bob_before[d]) << d;
  }

  // The auditor's view, offline from the files and through the server.
  CommandResult offline =
      Lethectl({"ledger", "verify", "--dir", mesh_->data_dir(), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(offline.exit_code, 0) << offline.output;
  EXPECT_THAT(offline.output, HasSubstr("receipts    3"));
  EXPECT_THAT(offline.output, HasSubstr("1 completed"));
  CommandResult online = RunLethectl(*mesh_, {"ledger", "verify", "--public-key",
                                   mesh_->lethed_pub()});
  EXPECT_EQ(online.exit_code, 0) << online.output;

  // The CLI shows the request per domain, in text and JSON.
  CommandResult get = RunLethectl(*mesh_, {"request", "get", view.request_id()});
  EXPECT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("COMPLETED"));
  EXPECT_THAT(get.output, HasSubstr("billing.invoices deleted 2"));
  CommandResult json = RunLethectl(*mesh_, {"-o", "json", "request", "list"});
  EXPECT_THAT(json.output, HasSubstr("\"state\": \"COMPLETED\""));
}

// While no request is in progress, and the receipts are read to the end, lethed's receipt
// consumer is paused: the embedded broker is asked for the topic's end offsets once a second
// instead of holding about 100 empty fetches a second. A receipt that comes then is still
// taken, and the next request starts the consumer again.
TEST(ReceiptIntakeIdle, PausedBetweenRequestsYetTakesALateReceiptAndTheNextRequest) {
  Mesh::Options options;
  options.lethed_options = [](controlplane::LethedOptions& o) { o.kafka_extra["statistics.interval.ms"] = "100"; };
  auto m = Mesh::Start(options);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  auto first = mesh.EraseAndWait(kAlice, kDone);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state(), v1::COMPLETED);

  controlplane::ReceiptIntake& intake = mesh.lethed().intake();
  ASSERT_TRUE(WaitFor([&] { return intake.idle(); }, absl::Seconds(30))) << "never paused";
  // Statistics come every 100 ms, delivered by the intake's polls, which while idle are its
  // looks: the first 10 may still count fetches made before the pause; the 20 after them (2 s
  // of the consumer's time) must count none.
  const kafka::ConsumerStats& stats = intake.consumer_stats();
  const uint64_t u0 = stats.updates();
  ASSERT_TRUE(WaitFor([&] { return stats.updates() >= u0 + 10; }, absl::Seconds(30)));
  const int64_t f0 = stats.fetch_requests();
  ASSERT_TRUE(WaitFor([&] { return stats.updates() >= u0 + 30; }, absl::Seconds(30)));
  EXPECT_EQ(stats.fetch_requests(), f0) << "unpaused, the 10 ms fetch wait makes about 200 in 2 s";
  EXPECT_TRUE(intake.idle());

  // A late receipt (here an agent's redelivery of one already recorded) is taken at a look.
  auto receipts = ReadTopic(mesh.kafka_bootstrap(), kafka::kReceiptTopic);
  ASSERT_TRUE(receipts.ok()) << receipts.status();
  ASSERT_FALSE(receipts->empty());
  // Taken means counted: as a duplicate, or refused since its request has ended.
  const controlplane::ReceiptCounters& counters = mesh.lethed().manager().receipt_counters();
  auto taken = [&] { return counters.duplicates.load() + counters.rejected.load(); };
  const uint64_t before = taken();
  auto producer = kafka::Producer::Create(mesh.kafka_bootstrap());
  ASSERT_TRUE(producer.ok()) << producer.status();
  const kafka::Message& again = receipts->front();
  ASSERT_TRUE((*producer)->ProduceSync(kafka::kReceiptTopic, again.key, *again.value, absl::Seconds(30)).ok());
  EXPECT_TRUE(WaitFor([&] { return taken() > before; }, absl::Seconds(30)))
      << "the redelivered receipt was not taken while idle";
  EXPECT_TRUE(WaitFor([&] { return intake.idle(); }, absl::Seconds(30))) << "not paused again";

  // The next request is answered as before.
  auto second = mesh.EraseAndWait(kBob, kDone);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->state(), v1::COMPLETED);
}

TEST_F(ErasureTest, DataDirHoldsNoIdentifierOfTheErasedPerson) {
  ASSERT_EQ(EraseAlice().state(), v1::COMPLETED);
  EXPECT_THAT(FilesContaining(mesh_->data_dir(), kAlice.email), ::testing::IsEmpty());
  EXPECT_THAT(FilesContaining(mesh_->data_dir(), kAlice.user_id), ::testing::IsEmpty());
  // The request key was destroyed: every slot of the key store is zeros again.
  auto slots = lethe::ReadFile(mesh_->data_dir() + "/vault/" + controlplane::IdentityVault::kKeysFile);
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_FALSE(slots->empty());
  EXPECT_EQ(slots->find_first_not_of('\0'), std::string::npos);
}

TEST_F(ErasureTest, WaitFlagFollowsProgressAndExitsZeroOnCompletion) {
  CommandResult r = RunLethectl(*mesh_, {"request", "erase", "--identity",
                              "email=" + kAlice.email, "--identity", "user_id=" + kAlice.user_id,
                              "--wait", "--timeout", "90s"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("COMPLETED"));
  EXPECT_THAT(r.output, HasSubstr("growth"));
  EXPECT_THAT(r.output, HasSubstr("0 remaining verified"));
}

TEST_F(ErasureTest, WaitTimesOutWithNonZeroExitWhenNoAgentAnswers) {
  // Both identities, so that every domain is a target and only billing's silence (its agent
  // is stopped) keeps the request open; once the agent is back, the request completes.
  mesh_->StopAgent("billing");
  CommandResult r = RunLethectl(*mesh_, {"request", "erase", "--identity", "email=" + kAlice.email,
                                         "--identity", "user_id=" + kAlice.user_id, "--wait",
                                         "--timeout", "2s"});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("timed out"));
  const auto requests = mesh_->lethed().store().List().value();
  ASSERT_EQ(requests.size(), 1u);
  const std::string id = requests[0].request_id;
  // Every other domain answers; billing's command stays open while its agent is away.
  ASSERT_TRUE(WaitFor([&] {
    const auto r = mesh_->lethed().store().Get(id);
    for (const auto& d : r->domains)
      if (d.domain != "billing" && d.state != v1::DONE) return false;
    return true;
  }, kDone));
  const auto waiting = mesh_->lethed().store().Get(id);
  for (const auto& d : waiting->domains) {
    if (d.domain == "billing") {
      EXPECT_EQ(d.state, v1::PENDING);
    }
  }
  ASSERT_TRUE(mesh_->StartAgent("billing").ok());
  auto done = mesh_->WaitDone(id, kDone);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::COMPLETED);
}

TEST_F(ErasureTest, FlippedByteInAnEntryFailsVerificationNamingThatEntry) {
  ASSERT_EQ(EraseAlice().state(), v1::COMPLETED);
  mesh_->StopLethed();
  const std::string dir = mesh_->data_dir() + "/ledger";
  auto records = Records(dir);
  ASSERT_GT(records.size(), 6u);
  const Located& victim = records[4];
  FlipByte(victim.segment, victim.offset + victim.size / 2 + 4);

  CommandResult r =
      Lethectl({"ledger", "verify", "--dir", mesh_->data_dir(), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("FAILED"));
  EXPECT_THAT(r.output, HasSubstr("entry 4"));
  // lethed refuses to open a corrupt ledger rather than skipping the entry.
  auto restarted = controlplane::Lethed::Start(mesh_->LethedOptionsForTest());
  ASSERT_FALSE(restarted.ok());
  EXPECT_EQ(restarted.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(restarted.status().message()), HasSubstr("entry 4"));
}

TEST_F(ErasureTest, TornTailFromACrashedWriteIsCutAndVerificationPasses) {
  ASSERT_EQ(EraseAlice().state(), v1::COMPLETED);
  const uint64_t entries = mesh_->lethed().ledger().size();
  mesh_->StopLethed();
  const std::string dir = mesh_->data_dir() + "/ledger";
  auto records = Records(dir);
  ASSERT_EQ(records.size(), entries);
  // A crash in the middle of writing the next record leaves part of it at the end.
  const Located& last = records.back();
  std::string framed(last.size, '\0');
  {
    std::ifstream in(last.segment, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(last.offset));
    in.read(framed.data(), static_cast<std::streamsize>(framed.size()));
  }
  const uint64_t file_size = fs::file_size(last.segment);
  {
    std::ofstream out(last.segment, std::ios::binary | std::ios::app);
    out.write(framed.data(), static_cast<std::streamsize>(framed.size() / 2));
  }

  // Before lethed starts, the offline verifier reports the torn tail and verifies the rest.
  CommandResult before =
      Lethectl({"ledger", "verify", "--dir", mesh_->data_dir(), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(before.exit_code, 0) << before.output;
  EXPECT_THAT(before.output, HasSubstr("torn tail"));

  ASSERT_TRUE(mesh_->StartLethed().ok());
  const auto& cut = mesh_->lethed().ledger().torn_tail_cut();
  ASSERT_TRUE(cut.has_value());
  EXPECT_EQ(cut->offset, file_size);
  EXPECT_EQ(mesh_->lethed().ledger().size(), entries);
  EXPECT_EQ(fs::file_size(last.segment), file_size);
  CommandResult after =
      Lethectl({"ledger", "verify", "--dir", mesh_->data_dir(), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(after.exit_code, 0) << after.output;
  EXPECT_THAT(after.output, ::testing::Not(HasSubstr("torn tail")));
  // The reopened ledger still works.
  ASSERT_TRUE(mesh_->Plant(kAlice).ok());
}

TEST_F(ErasureTest, CuttingAnAcknowledgedEntryIsDataLossNotATornTail) {
  // The last record is covered by a signed checkpoint: losing it is not a crash artefact
  // but the loss of an acknowledged entry, and lethed must say so.
  ASSERT_EQ(EraseAlice().state(), v1::COMPLETED);
  mesh_->StopLethed();
  auto records = Records(mesh_->data_dir() + "/ledger");
  const Located& last = records.back();
  fs::resize_file(last.segment, last.offset + last.size / 2);

  auto restarted = controlplane::Lethed::Start(mesh_->LethedOptionsForTest());
  ASSERT_FALSE(restarted.ok());
  EXPECT_EQ(restarted.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(restarted.status().message()), HasSubstr("acknowledged entries lost"));
  CommandResult r =
      Lethectl({"ledger", "verify", "--dir", mesh_->data_dir(), "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("checkpoint covers"));
}

TEST_F(ErasureTest, StateIsRebuiltFromTheLedgerAfterRestart) {
  v1::RequestView done = EraseAlice();
  ASSERT_EQ(done.state(), v1::COMPLETED);
  mesh_->StopLethed();
  ASSERT_TRUE(mesh_->StartLethed().ok());
  grpc::ClientContext ctx;
  v1::GetRequestRequest req;
  req.set_request_id(done.request_id());
  v1::RequestView again;
  ASSERT_TRUE(mesh_->Requests()->Get(&ctx, req, &again).ok());
  EXPECT_EQ(again.state(), v1::COMPLETED);
  ASSERT_EQ(again.domains_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(again.domains(i).receipt_entry(), done.domains(i).receipt_entry());
    EXPECT_EQ(again.domains(i).tables_size(), done.domains(i).tables_size());
  }
}

}  // namespace
}  // namespace lethe::testing
