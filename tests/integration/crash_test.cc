// Crashes at the worst moments, with real processes and SIGKILL.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <filesystem>

#include "base/file_system.h"
#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "tests/support/health_client.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kLethed = LETHE_BINARY_DIR "/controlplane/lethed";
const std::string kAgent = LETHE_BINARY_DIR "/agents/lethe-agent";
const std::string kLethectl = LETHE_BINARY_DIR "/cli/lethectl";
constexpr absl::Duration kWait = absl::Seconds(90);

std::string ReadTrimmed(const std::string& path) {
  auto s = lethe::ReadFile(path);
  if (!s.ok()) return "";
  std::string out = *s;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// Starts lethed as a child process and waits until it serves; returns its address.
absl::StatusOr<std::unique_ptr<Subprocess>> SpawnLethed(Mesh& mesh, std::string* addr) {
  fs::remove(mesh.data_dir() + "/lethed.addr");
  fs::remove(mesh.data_dir() + "/kafka.bootstrap");
  fs::create_directories(mesh.data_dir());
  auto p = Subprocess::Spawn({kLethed, "--listen", "127.0.0.1:0", "--data-dir", mesh.data_dir(),
                              "--policy", mesh.policy_path(), "--signing-key", mesh.lethed_key(),
                              "--certs-dir", mesh.certs_dir(), "--embedded-kafka"},
                             mesh.work_dir() + "/lethed.log");
  if (!p.ok()) return p.status();
  if (!WaitFor([&] { return !ReadTrimmed(mesh.data_dir() + "/lethed.addr").empty(); },
               absl::Seconds(30)))
    return absl::DeadlineExceededError("lethed did not start: " + (*p)->Log());
  *addr = ReadTrimmed(mesh.data_dir() + "/lethed.addr");
  mesh.UseExternalLethed(*addr);
  return p;
}

CommandResult VerifyOffline(Mesh& mesh) {
  auto r = RunCommand({kLethectl, "ledger", "verify", "--dir", mesh.data_dir(), "--public-key",
                       mesh.lethed_pub()},
                      absl::Seconds(60));
  return r.ok() ? *r : CommandResult{-1, r.status().ToString()};
}

// A mesh with Alice and Bob planted whose lethed runs as a child process, every agent's key
// enrolled and no agent started.
struct ChildLethedMesh {
  std::unique_ptr<Mesh> mesh;
  std::unique_ptr<Subprocess> lethed;
  std::string addr;
};
absl::StatusOr<ChildLethedMesh> StartWithChildLethed() {
  Mesh::Options o;
  o.start_lethed = false;
  ChildLethedMesh c;
  LETHE_ASSIGN_OR_RETURN(c.mesh, Mesh::Start(o));
  LETHE_RETURN_IF_ERROR(c.mesh->Plant(kAlice));
  LETHE_RETURN_IF_ERROR(c.mesh->Plant(kBob));
  LETHE_ASSIGN_OR_RETURN(c.lethed, SpawnLethed(*c.mesh, &c.addr));
  for (const auto& d : c.mesh->domains()) LETHE_RETURN_IF_ERROR(c.mesh->EnrollAgent(d));
  return c;
}

TEST(Crash, LethedKilledAfterSubmitCompletesTheRequestAfterRestart) {
  auto started = StartWithChildLethed();
  ASSERT_TRUE(started.ok()) << started.status();
  Mesh& mesh = *started->mesh;
  std::string& addr = started->addr;
  auto* lethed = &started->lethed;
  auto id = mesh.Erase(kAlice);
  ASSERT_TRUE(id.ok()) << id.status();

  // RequestSubmitted is durable once Submit returned: SIGKILL now, before any agent runs.
  (*lethed)->Kill(SIGKILL);
  auto status = (*lethed)->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.ok());
  ASSERT_TRUE(WIFSIGNALED(*status));
  CommandResult mid = VerifyOffline(mesh);
  EXPECT_EQ(mid.exit_code, 0) << mid.output;
  EXPECT_THAT(mid.output, HasSubstr("1 in progress"));
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), 3);

  // A new lethed (and with it a new, empty embedded broker) re-publishes from the ledger.
  auto again = SpawnLethed(mesh, &addr);
  ASSERT_TRUE(again.ok()) << again.status();
  for (const auto& d : mesh.domains()) ASSERT_TRUE(mesh.StartAgent(d).ok());
  auto done = mesh.WaitDone(*id, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::COMPLETED) << (*again)->Log();
  for (const auto& d : mesh.domains()) {
    EXPECT_EQ(*mesh.Rows(d, kAlice), 0) << d;
    EXPECT_GT(*mesh.Rows(d, kBob), 0) << d;
  }
  for (const auto& d : mesh.domains()) mesh.StopAgent(d);
  (*again)->Kill(SIGTERM);
  ASSERT_TRUE((*again)->Wait(absl::Seconds(10)).ok());
  CommandResult end = VerifyOffline(mesh);
  EXPECT_EQ(end.exit_code, 0) << end.output;
  EXPECT_THAT(end.output, HasSubstr("1 completed"));
  EXPECT_THAT(end.output, HasSubstr("receipts    3"));
}

// lethed's embedded broker lives and dies with lethed: a restarted lethed is a new, empty
// broker at a new address, written to DATA_DIR/kafka.bootstrap. Agents following that file
// (lethe-agent --kafka-bootstrap @FILE) reconnect by themselves and take the re-published and
// the new commands, without a restart.
TEST(Crash, AgentsFollowTheEmbeddedBrokerAcrossALethedKill) {
  auto bootstrap_file = std::make_shared<std::string>();
  Mesh::Options o;
  o.start_lethed = false;
  o.start_agents = false;
  o.agent_options = [bootstrap_file](agents::AgentOptions& ao) {
    ao.kafka_bootstrap_file = *bootstrap_file;
    ao.bootstrap_check_interval = absl::Milliseconds(200);
  };
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  *bootstrap_file = mesh.data_dir() + "/kafka.bootstrap";
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());

  std::string addr;
  auto lethed = SpawnLethed(mesh, &addr);
  ASSERT_TRUE(lethed.ok()) << lethed.status();
  for (const auto& d : mesh.domains()) ASSERT_TRUE(mesh.EnrollAgent(d).ok());
  for (const auto& d : mesh.domains()) ASSERT_TRUE(mesh.StartAgent(d).ok());
  const std::string first_broker = ReadTrimmed(*bootstrap_file);
  auto alice = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->state(), v1::COMPLETED);

  (*lethed)->Kill(SIGKILL);
  ASSERT_TRUE((*lethed)->Wait(absl::Seconds(10)).ok());
  auto again = SpawnLethed(mesh, &addr);
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_NE(ReadTrimmed(*bootstrap_file), first_broker) << "the restarted broker kept its address";

  // The same agents, never restarted, erase Bob through the new broker.
  auto bob = mesh.EraseAndWait(kBob, kWait);
  ASSERT_TRUE(bob.ok()) << bob.status();
  EXPECT_EQ(bob->state(), v1::COMPLETED) << (*again)->Log();
  for (const auto& d : mesh.domains()) {
    EXPECT_EQ(*mesh.Rows(d, kBob), 0) << d;
    EXPECT_GE(mesh.agent(d).reconnects(), 1u) << d;
  }
  for (const auto& d : mesh.domains()) mesh.StopAgent(d);
  (*again)->Kill(SIGTERM);
  ASSERT_TRUE((*again)->Wait(absl::Seconds(10)).ok());
  CommandResult end = VerifyOffline(mesh);
  EXPECT_EQ(end.exit_code, 0) << end.output;
  EXPECT_THAT(end.output, HasSubstr("2 completed"));
}

// The broker fails: every broker of lethed's embedded cluster goes down while erasures are
// submitted, and comes back. Submissions are taken (the ledger is the outbox), lethed reports
// NOT_SERVING meanwhile, and once the broker is back every request completes with no operator
// action, each command purged exactly once (processed_commands), bystanders untouched.
TEST(Crash, ErasuresSubmittedWhileTheBrokerIsDownCompleteOnceItIsBack) {
  Mesh::Options o;
  o.lethed_options = [](controlplane::LethedOptions& lo) {
    lo.health_listen = "127.0.0.1:0";
    lo.health_interval = absl::Milliseconds(100);
  };
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  std::vector<Person> erased;
  for (int i = 0; i < 8; ++i)
    erased.push_back(Person{std::to_string(70000 + i), "outage" + std::to_string(i) + "@example.com"});
  for (const auto& p : erased) ASSERT_TRUE(mesh.Plant(p).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  std::map<std::string, int64_t> bob_before;
  for (const auto& d : mesh.domains()) bob_before[d] = *mesh.Rows(d, kBob);
  auto health = HealthChannel(mesh.lethed().health_port());
  grpc::Status error;
  ASSERT_TRUE(WaitFor([&] { return Check(health, "", &error) == 1; }, absl::Seconds(30)));

  ASSERT_TRUE(mesh.lethed().embedded_kafka()->SetBrokersUp(false).ok());
  ASSERT_TRUE(WaitFor([&] { return Check(health, "", &error) == 2; }, absl::Seconds(30)))
      << "lethed kept reporting SERVING with its broker down";
  std::vector<std::string> ids;
  for (const auto& p : erased) {
    auto id = mesh.Erase(p);
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  ASSERT_TRUE(mesh.lethed().embedded_kafka()->SetBrokersUp(true).ok());

  for (const auto& id : ids) {
    auto done = mesh.WaitDone(id, kWait);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(done->state(), v1::COMPLETED) << id;
  }
  EXPECT_TRUE(WaitFor([&] { return Check(health, "", &error) == 1; }, absl::Seconds(30)));
  for (const auto& d : mesh.domains()) {
    for (const auto& p : erased) EXPECT_EQ(*mesh.Rows(d, p), 0) << d;
    EXPECT_EQ(*mesh.Rows(d, kBob), bob_before[d]) << d << ": a bystander's rows changed";
    // Exactly once: one processed command per erasure, whatever was redelivered.
    auto processed = mesh.pg().Query(d, "SELECT count(*) FROM lethe_agent.processed_commands");
    ASSERT_TRUE(processed.ok()) << processed.status();
    EXPECT_EQ(*processed, std::to_string(erased.size())) << d;
  }
}

// Found by the chaos run (tests/chaos): after a failed ledger write (a full disk) lethed stayed
// up refusing every change "until restarted", with its liveness SERVING, so nothing restarted
// it and every request in progress stayed there. Now it stops with status 75; restarted, it
// has every acknowledged entry and serves.
TEST(Crash, LethedStopsWhenItsLedgerCannotBeWrittenAndARestartServesAgain) {
  auto started = StartWithChildLethed();
  ASSERT_TRUE(started.ok()) << started.status();
  Mesh& mesh = *started->mesh;
  std::string& addr = started->addr;
  auto* lethed = &started->lethed;
  auto alice = mesh.Erase(kAlice);
  ASSERT_TRUE(alice.ok()) << alice.status();

  // A full disk, for lethed alone: every write past a file's first byte fails with EFBIG.
  const struct rlimit full = {1, RLIM_INFINITY};
  ASSERT_EQ(::prlimit((*lethed)->pid(), RLIMIT_FSIZE, &full, nullptr), 0);
  // A consent change writes the ledger alone (a Submit first writes the request's key to the
  // vault, which fails on its own and leaves lethed serving).
  v1::ChangeConsentRequest change;
  change.mutable_identity()->set_type("email");
  change.mutable_identity()->set_value(kBob.email);
  change.set_purpose("marketing");
  change.set_status(v1::GRANTED);
  change.set_source("signup-form");
  v1::ConsentChangeView view;
  grpc::ClientContext ctx;
  const grpc::Status refused = mesh.Consent()->Change(&ctx, change, &view);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  auto status = (*lethed)->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.ok()) << "lethed kept running on a ledger it cannot write";
  ASSERT_TRUE(WIFEXITED(*status)) << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 75);
  // The acknowledged erasure is in the ledger, the refused change is not, and it verifies.
  CommandResult mid = VerifyOffline(mesh);
  EXPECT_EQ(mid.exit_code, 0) << mid.output;
  EXPECT_THAT(mid.output, HasSubstr("1 in progress"));

  // Restarted with room again: Alice's erasure completes and Bob's is taken.
  auto again = SpawnLethed(mesh, &addr);
  ASSERT_TRUE(again.ok()) << again.status();
  for (const auto& d : mesh.domains()) ASSERT_TRUE(mesh.StartAgent(d).ok());
  auto alice_done = mesh.WaitDone(*alice, kWait);
  ASSERT_TRUE(alice_done.ok()) << alice_done.status();
  EXPECT_EQ(alice_done->state(), v1::COMPLETED);
  auto bob_done = mesh.EraseAndWait(kBob, kWait);
  ASSERT_TRUE(bob_done.ok()) << bob_done.status();
  EXPECT_EQ(bob_done->state(), v1::COMPLETED);
  for (const auto& d : mesh.domains()) mesh.StopAgent(d);
  (*again)->Kill(SIGTERM);
  ASSERT_TRUE((*again)->Wait(absl::Seconds(10)).ok());
  EXPECT_EQ(VerifyOffline(mesh).exit_code, 0);
}

TEST(Crash, AgentKilledAfterPurgeCommitPurgesOnceAndRecordsOneReceipt) {
  Mesh::Options o;
  o.domains = {"assessments", "growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  ASSERT_TRUE(mesh.StartAgent("growth").ok());

  // This agent dies by SIGKILL right after its purge transaction commits.
  auto doomed = Subprocess::Spawn(
      {kAgent, "--domain", "assessments", "--postgres", mesh.pg().Dsn("assessments"), "--policy",
       mesh.policy_path(), "--key", mesh.agent_key("assessments"), "--control-plane-key",
       mesh.lethed_pub(), "--kafka-bootstrap", "@" + mesh.data_dir() + "/kafka.bootstrap",
       "--kafka-fetch-wait", "10ms"},
      mesh.work_dir() + "/agent-assessments.log", {"LETHE_FAILPOINT=agent-after-purge-commit"});
  ASSERT_TRUE(doomed.ok()) << doomed.status();
  auto id = mesh.Erase(kAlice);
  ASSERT_TRUE(id.ok()) << id.status();
  auto status = (*doomed)->Wait(kWait);
  ASSERT_TRUE(status.ok()) << (*doomed)->Log();
  ASSERT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << (*doomed)->Log();

  // The purge is committed, but no receipt went out.
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), 0);
  EXPECT_EQ(*mesh.pg().Query("assessments", "SELECT count(*) FROM lethe_agent.processed_commands"), "1");
  auto mid = mesh.lethed().store().Get(*id);
  ASSERT_TRUE(mid.ok()) << mid.status();
  EXPECT_EQ(mid->state, v1::IN_PROGRESS);
  EXPECT_EQ(mid->domains[0].domain, "assessments");
  EXPECT_EQ(mid->domains[0].state, v1::PENDING);

  // Rows inserted for the same person meanwhile must survive the redelivery.
  ASSERT_TRUE(mesh.pg().Exec("assessments",
                             "INSERT INTO assessments.scores VALUES ('" + kAlice.user_id + "', 'later', 1)").ok());

  // The restarted agent gets the command again, finds it processed, and re-sends the receipt.
  ASSERT_TRUE(mesh.StartAgent("assessments").ok());
  auto done = mesh.WaitDone(*id, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::COMPLETED);
  agents::Agent& a = mesh.agent("assessments");
  // At least one replay; more when the outbox re-published the unanswered command meanwhile
  // (its first retry is after 15 s). Every delivery is answered from the stored receipt.
  EXPECT_GE(a.stats().replayed.load(), 1u);
  EXPECT_EQ(a.stats().purged.load(), 0u);
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), 1);  // only the row inserted after the purge
  EXPECT_EQ(*mesh.pg().Query("assessments", "SELECT count(*) FROM lethe_agent.processed_commands"), "1");
  EXPECT_GT(*mesh.Rows("assessments", kBob), 0);

  // Exactly one ReceiptRecorded for the domain in the ledger.
  int receipts = 0;
  for (uint64_t i = 0; i < mesh.lethed().ledger().size(); ++i) {
    v1::LedgerEntry e;
    ASSERT_TRUE(e.ParseFromString(*mesh.lethed().ledger().ReadEntry(i)));
    if (e.has_receipt_recorded() && e.receipt_recorded().domain() == "assessments") ++receipts;
  }
  EXPECT_EQ(receipts, 1);
  for (const auto& d : done->domains()) {
    if (d.domain() != "assessments") continue;
    ASSERT_EQ(d.tables_size(), 2);
    EXPECT_EQ(d.tables(0).rows_affected() + d.tables(1).rows_affected(), 3);
  }
}

}  // namespace
}  // namespace lethe::testing
