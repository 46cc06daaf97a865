// Trust at the root: mutual TLS with roles, the caller recorded from its certificate, agent
// key revocation and rotation, and the forged-completion attack, tried as an attacker would.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <prometheus/metric_family.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>

#include "base/file_system.h"
#include "crypto/seal.h"
#include "crypto/x509.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"
#include "lethe/v1/ledger.pb.h"
#include "proto/envelope.h"
#include "proto/wire_check.h"
#include "tests/support/assertions.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(60);

v1::SubmitRequest EraseRequest(const Person& p) {
  v1::SubmitRequest req;
  auto* e = req.add_identities();
  e->set_type("email");
  e->set_value(p.email);
  req.set_reason("test");
  return req;
}

grpc::Status Submit(const std::shared_ptr<grpc::Channel>& channel, const Person& p,
                    v1::SubmitResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return v1::SubjectRequests::NewStub(channel)->Submit(&ctx, EraseRequest(p), resp);
}

v1::LedgerEntry Entry(Mesh& mesh, uint64_t seq) {
  v1::LedgerEntry e;
  EXPECT_TRUE(e.ParseFromString(mesh.lethed().ledger().ReadEntry(seq).value()));
  return e;
}

// Produces to lethe.receipts a COMPLETED receipt for growth's command, signed by `signer`.
void SendCompletedReceipt(const Mesh& mesh, const std::string& command_id, const std::string& request_id,
                          const std::string& digest, const crypto::Ed25519PrivateKey& signer) {
  v1::Receipt r;
  r.set_command_id(command_id);
  r.set_request_id(request_id);
  r.set_domain("growth");
  r.set_command_digest(digest);
  r.set_outcome(v1::Receipt::COMPLETED);
  r.set_verified_zero_remaining(true);
  auto producer = kafka::Producer::Create(mesh.kafka_bootstrap());
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_TRUE((*producer)
                  ->ProduceSync(kafka::kReceiptTopic, std::nullopt,
                                proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), signer).SerializeAsString())
                  .ok());
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Mesh::Options o;
    o.domains = {"growth"};
    auto m = Mesh::Start(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = std::move(*m);
  }
  std::unique_ptr<Mesh> mesh_;
};

TEST_F(SecurityTest, PlaintextClientIsRefused) {
  const uint64_t size = mesh_->lethed().ledger().size();
  v1::SubmitResponse resp;
  grpc::Status s = Submit(grpc::CreateChannel(mesh_->addr(), grpc::InsecureChannelCredentials()), kAlice, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(mesh_->lethed().ledger().size(), size);
  // The CLI refuses to talk plaintext unless told to, and then lethed refuses it.
  auto cli = Lethectl({"--addr", mesh_->addr(), "request", "list"});
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  EXPECT_THAT(cli.output, HasSubstr("--certs-dir"));
  auto insecure = Lethectl({"--addr", mesh_->addr(), "--insecure", "request", "list"});
  EXPECT_EQ(insecure.exit_code, 6) << insecure.output;  // no lethed answers in plaintext
}

TEST_F(SecurityTest, CertificateFromAnotherCaIsRefused) {
  const std::string other = mesh_->work_dir() + "/other-ca";
  ASSERT_TRUE(crypto::CreateCa(other, "lethe.test").ok());
  ASSERT_TRUE(crypto::CreateClientCert(other, "operator", "mallory").ok());
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = lethe::ReadFile(mesh_->certs_dir() + "/ca.crt").value();  // trusts lethed
  o.pem_cert_chain = lethe::ReadFile(other + "/client.mallory.crt").value();
  o.pem_private_key = lethe::ReadFile(other + "/client.mallory.key").value();
  const uint64_t size = mesh_->lethed().ledger().size();
  v1::SubmitResponse resp;
  grpc::Status s = Submit(grpc::CreateChannel(mesh_->addr(), grpc::SslCredentials(o)), kAlice, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(mesh_->lethed().ledger().size(), size);
}

TEST_F(SecurityTest, EachRoleMayCallOnlyItsMethods) {
  const uint64_t size = mesh_->lethed().ledger().size();
  // An auditor cannot submit.
  v1::SubmitResponse resp;
  grpc::Status s = Submit(mesh_->Channel("auditor"), kAlice, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("/lethe.v1.SubjectRequests/Submit needs role operator"));
  EXPECT_THAT(s.error_message(), HasSubstr("role auditor"));
  // An admin cannot either.
  EXPECT_EQ(Submit(mesh_->Channel("admin"), kAlice, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // An operator can enroll no key and activate no policy, from the API or the CLI.
  {
    v1::EnrollAgentRequest req;
    req.set_domain("growth");
    req.set_public_key_pem(lethe::ReadFile(mesh_->agent_pub("growth")).value());
    v1::AgentView view;
    grpc::ClientContext ctx;
    s = v1::Agents::NewStub(mesh_->Channel("operator"))->Enroll(&ctx, req, &view);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr("/lethe.v1.Agents/Enroll needs role admin"));
  }
  // A huge value in a field is quoted only in part: the error stays small (a 1 MiB quote in
  // the status once stalled third-party clients).
  {
    v1::EnrollAgentRequest req;
    req.set_domain(std::string(1 << 20, 'd'));
    req.set_public_key_pem(lethe::ReadFile(mesh_->agent_pub("growth")).value());
    v1::AgentView view;
    grpc::ClientContext ctx;
    s = v1::Agents::NewStub(mesh_->Channel("admin"))->Enroll(&ctx, req, &view);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_LT(s.error_message().size(), 300u);
  }
  auto enroll = RunLethectlAs(*mesh_, "operator",
                              {"agent", "enroll", "--domain", "growth", "--public-key", mesh_->agent_pub("growth")});
  EXPECT_EQ(enroll.exit_code, 7);
  EXPECT_THAT(enroll.output, HasSubstr("PERMISSION_DENIED"));
  auto activate = RunLethectlAs(*mesh_, "operator", {"policy", "activate", mesh_->policy_path()});
  EXPECT_EQ(activate.exit_code, 7);
  EXPECT_THAT(activate.output, HasSubstr("needs role admin"));
  // An operator cannot read the ledger; an auditor can.
  EXPECT_EQ(RunLethectlAs(*mesh_, "operator", {"ledger", "checkpoint"}).exit_code, 7);
  EXPECT_EQ(RunLethectlAs(*mesh_, "auditor", {"ledger", "checkpoint"}).exit_code, 0);
  // Consent (and with it the keyed token of an identity) is an operator's only.
  auto show = RunLethectlAs(*mesh_, "auditor", {"consent", "show", "--identity", "email=" + kAlice.email});
  EXPECT_EQ(show.exit_code, 7);
  EXPECT_THAT(show.output, HasSubstr("/lethe.v1.Consent/Show needs role operator"));
  EXPECT_EQ(mesh_->lethed().ledger().size(), size) << "a refused call recorded something";
}

TEST_F(SecurityTest, EntriesRecordTheCallerFromItsCertificate) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(Submit(mesh_->Channel("operator"), kAlice, &resp).ok());
  const uint64_t entry = resp.request().submitted_entry();
  const v1::LedgerEntry e = Entry(*mesh_, entry);
  ASSERT_TRUE(e.has_request_submitted());
  EXPECT_EQ(e.actor().role(), "operator");
  EXPECT_EQ(e.actor().name(), "olga");
  EXPECT_EQ(e.actor().spiffe_id(), "spiffe://lethe.test/lethe/operator/olga");
  auto info = crypto::InspectCertificate(lethe::ReadFile(mesh_->client_cert("operator")).value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(e.actor().certificate_sha256(), info->sha256_hex);
  // The key enrolments were an admin's; the policy activation lethed's own (--policy).
  EXPECT_EQ(Entry(*mesh_, 1).actor().role(), "lethed");
  auto agents = RunLethectl(*mesh_, {"agent", "list"});
  EXPECT_THAT(agents.output, HasSubstr("admin root (certificate "));
  // Free text is the operator's: an auditor sees the request without the extension reason.
  auto extend = RunLethectl(*mesh_, {"request", "extend", resp.request_id(), "--by", "7d", "--reason",
                                     "waiting for the subject's reply"});
  ASSERT_EQ(extend.exit_code, 0) << extend.output;
  EXPECT_THAT(RunLethectlAs(*mesh_, "operator", {"request", "get", resp.request_id()}).output,
              HasSubstr("waiting for the subject's reply"));
  auto as_auditor = RunLethectlAs(*mesh_, "auditor", {"request", "get", resp.request_id()});
  EXPECT_EQ(as_auditor.exit_code, 0) << as_auditor.output;
  EXPECT_THAT(as_auditor.output, ::testing::Not(HasSubstr("waiting for the subject's reply")));
  // The auditor reports who did what.
  auto verify = RunLethectl(*mesh_, {"ledger", "verify", "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("enrolled for domain growth, by admin root"));
  EXPECT_THAT(verify.output, HasSubstr("policy activation 1"));
}

// An attacker with an operator's certificate (or none) tries to complete an erasure that never
// happened: enroll their own key for the domain, read the command off Kafka, sign a COMPLETED
// receipt for it.
TEST_F(SecurityTest, ForgedCompletionFailsAtLethed) {
  mesh_->StopAgent("growth");  // the real agent never answers
  ASSERT_TRUE(mesh_->Plant(kAlice).ok());
  v1::SubmitResponse resp;
  ASSERT_TRUE(Submit(mesh_->Channel("operator"), kAlice, &resp).ok());
  const std::string prefix = mesh_->work_dir() + "/attacker";
  ASSERT_TRUE(crypto::GenerateKeyFiles(prefix).ok());
  const std::string pub = prefix + ".pub";
  auto attacker = crypto::Ed25519PrivateKey::LoadFile(prefix + ".key").value();
  for (const char* role : {"operator", "auditor"}) {
    auto r = RunLethectlAs(*mesh_, role, {"agent", "enroll", "--domain", "growth", "--public-key", pub});
    EXPECT_EQ(r.exit_code, 7) << r.output;
    EXPECT_THAT(r.output, HasSubstr("PERMISSION_DENIED"));
  }
  // The command as it travels, and a receipt for exactly its bytes, signed by the attacker.
  ASSERT_OK(WaitForRecords(mesh_->kafka_bootstrap(), kafka::CommandTopic("growth"), 1, kWait));
  auto msgs = ReadTopic(mesh_->kafka_bootstrap(), kafka::CommandTopic("growth"));
  ASSERT_TRUE(msgs.ok() && !msgs->empty());
  v1::SignedEnvelope cmd;
  ASSERT_TRUE(cmd.ParseFromString(*msgs->back().value));
  v1::DeleteCommand parsed;
  ASSERT_TRUE(parsed.ParseFromString(cmd.body()));
  const auto& counters = mesh_->lethed().manager().receipt_counters();
  const uint64_t rejected = counters.rejected.load();
  SendCompletedReceipt(*mesh_, parsed.command_id(), parsed.request_id(), crypto::Sha256(cmd.body()), attacker);
  ASSERT_TRUE(WaitFor([&] { return counters.rejected.load() > rejected; }, kWait));
  EXPECT_EQ(mesh_->lethed().store().Get(resp.request_id())->state, v1::IN_PROGRESS);
  EXPECT_EQ(*mesh_->Rows("growth", kAlice), 3);
}

// Each check of lethed's receipt intake (RequestManager::RecordReceipt) on its own: a receipt
// for growth's open command that breaks exactly one of them is refused, counted, and changes
// nothing; then a receipt signed by a second key enrolled for growth is growth's answer. (The
// request erases by email only, so assessments, keyed by user_id, waits for an identity. A
// second open request, Bob's, is there to be named by a forgery.)
TEST(ReceiptIntake, EachForgeryIsRefusedAndASecondEnrolledKeyIsAccepted) {
  Mesh::Options o;
  o.domains = {"assessments", "growth"};
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  mesh.StopAgent("growth");  // growth's command stays open
  ASSERT_OK(mesh.Plant(kAlice));
  v1::SubmitResponse resp;
  ASSERT_TRUE(Submit(mesh.Channel("operator"), kAlice, &resp).ok());
  ASSERT_OK(WaitForRecords(mesh.kafka_bootstrap(), kafka::CommandTopic("growth"), 1, kWait));
  auto msgs = ReadTopic(mesh.kafka_bootstrap(), kafka::CommandTopic("growth"));
  ASSERT_TRUE(msgs.ok() && !msgs->empty());
  v1::SignedEnvelope cmd;
  ASSERT_TRUE(cmd.ParseFromString(*msgs->back().value));
  v1::DeleteCommand command;
  ASSERT_TRUE(command.ParseFromString(cmd.body()));
  const std::string digest = crypto::Sha256(cmd.body());
  auto growth_key = crypto::Ed25519PrivateKey::LoadFile(mesh.agent_key("growth")).value();
  auto assessments_key = crypto::Ed25519PrivateKey::LoadFile(mesh.agent_key("assessments")).value();
  auto attacker = crypto::Ed25519PrivateKey::Generate().value();
  v1::SubmitResponse bobs;
  ASSERT_TRUE(Submit(mesh.Channel("operator"), kBob, &bobs).ok());

  auto valid = [&] {
    v1::Receipt r;
    r.set_command_id(command.command_id());
    r.set_request_id(command.request_id());
    r.set_domain("growth");
    r.set_command_digest(digest);
    r.set_outcome(v1::Receipt::COMPLETED);
    r.set_verified_zero_remaining(true);
    return r;
  };
  auto producer = kafka::Producer::Create(mesh.kafka_bootstrap());
  ASSERT_OK(producer);
  // `key_id`, when set, replaces the signer's key id in the envelope.
  auto send = [&](const v1::Receipt& r, const crypto::Ed25519PrivateKey& signer,
                  const std::string& key_id = "") {
    v1::SignedEnvelope env = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), signer);
    if (!key_id.empty()) env.set_key_id(key_id);
    ASSERT_OK((*producer)->ProduceSync(kafka::kReceiptTopic, std::nullopt, env.SerializeAsString()));
  };
  struct Forgery {
    const char* what;
    std::function<v1::Receipt()> receipt;
    const crypto::Ed25519PrivateKey* signer;
    std::string key_id = {};  // the key id the envelope claims, when not the signer's
  };
  const std::vector<Forgery> forgeries = {
      {"signed by another domain's enrolled key", valid, &assessments_key},
      {"for other command bytes", [&] { auto r = valid(); r.set_command_digest(crypto::Sha256("other bytes")); return r; },
       &growth_key},
      {"naming another request", [&] { auto r = valid(); r.set_request_id(crypto::Hex(crypto::RandomBytes(16))); return r; },
       &growth_key},
      {"naming another domain than its command's", [&] { auto r = valid(); r.set_domain("assessments"); return r; },
       &assessments_key},
      {"COMPLETED without the zero-remaining check",
       [&] { auto r = valid(); r.set_verified_zero_remaining(false); return r; }, &growth_key},
      {"naming another open request than its command's",
       [&] { auto r = valid(); r.set_request_id(bobs.request_id()); return r; }, &growth_key},
      {"claiming growth's enrolled key, signed by another", valid, &attacker,
       growth_key.public_key().KeyId()},
  };
  const auto& counters = mesh.lethed().manager().receipt_counters();
  const uint64_t entries = mesh.lethed().ledger().size();
  for (const Forgery& f : forgeries) {
    SCOPED_TRACE(f.what);
    const uint64_t rejected = counters.rejected.load();
    send(f.receipt(), *f.signer, f.key_id);
    ASSERT_TRUE(WaitFor([&] { return counters.rejected.load() > rejected; }, kWait));
    EXPECT_EQ(counters.rejected.load(), rejected + 1);
    EXPECT_EQ(mesh.lethed().ledger().size(), entries);
    EXPECT_EQ(mesh.lethed().store().Get(resp.request_id())->state, v1::IN_PROGRESS);
    EXPECT_EQ(mesh.lethed().store().Get(bobs.request_id())->state, v1::IN_PROGRESS);
  }
  EXPECT_EQ(*mesh.Rows("growth", kAlice), 3);

  // A second key enrolled for growth (rotation without revocation): its receipt is growth's.
  const std::string prefix = mesh.work_dir() + "/growth-2";
  ASSERT_OK(crypto::GenerateKeyFiles(prefix));
  auto e = RunLethectl(mesh, {"agent", "enroll", "--domain", "growth", "--public-key", prefix + ".pub"});
  ASSERT_EQ(e.exit_code, 0) << e.output;
  auto second = crypto::Ed25519PrivateKey::LoadFile(prefix + ".key").value();
  const uint64_t recorded = counters.recorded.load();
  ledger::Ledger& ledger = mesh.lethed().ledger();
  ASSERT_OK(ledger.WaitDurable(ledger.Tail()));
  const uint64_t before = ledger.size();
  send(valid(), second);
  ASSERT_TRUE(WaitFor([&] { return counters.recorded.load() > recorded; }, kWait));
  // A receipt is counted once sequenced, before its sync; and the outbox may re-issue commands
  // meanwhile. What the receipt added is exactly one recorded receipt, signed by the new key.
  ASSERT_OK(ledger.WaitDurable(ledger.Tail()));
  int receipts = 0;
  for (uint64_t i = before; i < ledger.size(); ++i) {
    auto bytes = ledger.ReadEntry(i);
    ASSERT_OK(bytes);
    v1::LedgerEntry e;
    ASSERT_TRUE(e.ParseFromString(*bytes));
    if (!e.has_receipt_recorded()) continue;
    ++receipts;
    EXPECT_EQ(e.receipt_recorded().receipt().key_id(), second.public_key().KeyId());
  }
  EXPECT_EQ(receipts, 1);
  bool growth_done = false;
  const auto request = mesh.lethed().store().Get(resp.request_id());
  ASSERT_TRUE(request.ok()) << request.status();
  for (const auto& d : request->domains)
    if (d.domain == "growth") growth_done = d.state == v1::DONE && d.agent_key_id == second.public_key().KeyId();
  EXPECT_TRUE(growth_done) << "growth's answer is the second key's receipt";
}

TEST_F(SecurityTest, RevokedKeysReceiptsAreRefusedAndARotatedKeyTakesOver) {
  ASSERT_TRUE(mesh_->Plant(kAlice).ok());
  ASSERT_TRUE(mesh_->Plant(kBob).ok());
  // Before the rotation: a receipt by the old key, which must keep verifying.
  auto first = mesh_->EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state(), v1::COMPLETED);
  const auto old_key = crypto::Ed25519PrivateKey::LoadFile(mesh_->agent_key("growth")).value();
  const std::string old_id = old_key.public_key().KeyId();
  // Rotation: a second key for the domain, then the old one revoked.
  const std::string prefix = mesh_->work_dir() + "/keys/growth2";
  ASSERT_EQ(Lethectl({"keys", "generate", "--out", prefix}).exit_code, 0);
  EXPECT_EQ(Lethectl({"keys", "generate", "--out", prefix}).exit_code, 1) << "a key was overwritten";
  ASSERT_EQ(RunLethectl(*mesh_, {"agent", "enroll", "--domain", "growth", "--public-key", prefix + ".pub"}).exit_code, 0);
  auto revoke = RunLethectl(*mesh_, {"agent", "revoke", "--domain", "growth", "--key-id", old_id,
                                     "--reason", "host decommissioned"});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.output;
  auto list = RunLethectl(*mesh_, {"agent", "list"});
  EXPECT_THAT(list.output, HasSubstr("REVOKED"));
  EXPECT_THAT(list.output, HasSubstr("host decommissioned"));
  // Revoking twice is refused; so is enrolling the revoked key again.
  EXPECT_EQ(RunLethectl(*mesh_, {"agent", "revoke", "--domain", "growth", "--key-id", old_id}).exit_code, 1);
  EXPECT_EQ(RunLethectl(*mesh_, {"agent", "enroll", "--domain", "growth", "--public-key",
                                 mesh_->agent_pub("growth")}).exit_code, 1);
  // The agent still runs with the old key: Bob's command is sealed to the new key, so it
  // cannot open it; it says so in a REJECTED receipt, which lethed refuses because the old
  // key signed it after its revocation.
  const auto& counters = mesh_->lethed().manager().receipt_counters();
  const uint64_t rejected_before = counters.rejected.load();
  auto id = mesh_->Erase(kBob);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(WaitFor([&] { return counters.rejected.load() > rejected_before; }, kWait));
  EXPECT_EQ(*mesh_->Rows("growth", kBob), 3);
  const auto cmd = mesh_->lethed().store().Command(mesh_->lethed().store().Get(*id)->domains.at(0).command_id);
  ASSERT_TRUE(cmd.has_value());
  const uint64_t rejected = counters.rejected.load();
  SendCompletedReceipt(*mesh_, cmd->command_id, *id, cmd->digest, old_key);
  ASSERT_TRUE(WaitFor([&] { return counters.rejected.load() > rejected; }, kWait));
  EXPECT_EQ(mesh_->lethed().store().Get(*id)->state, v1::IN_PROGRESS);
  // The agent restarted with its new key opens the re-published command and completes.
  mesh_->StopAgent("growth");
  agents::AgentOptions o = mesh_->AgentOptionsFor("growth");
  o.key_path = prefix + ".key";
  auto a = agents::Agent::Create(o);
  ASSERT_TRUE(a.ok()) << a.status();
  (*a)->Start();
  auto done = mesh_->WaitDone(*id, kWait);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::COMPLETED);
  EXPECT_EQ(*mesh_->Rows("growth", kBob), 0);
  (*a)->Stop();
  // The old key's earlier receipt still verifies; the log audits clean.
  auto verify = RunLethectl(*mesh_, {"ledger", "verify", "--public-key", mesh_->lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("of domain growth revoked, by admin root"));
  CertifyAndVerify(*mesh_, first->request_id());
  // With every key of a domain revoked, nothing can be sealed to it: a new request is refused
  // naming the domain, and the ledger is unchanged.
  const std::string new_id = crypto::Ed25519PublicKey::LoadFile(prefix + ".pub")->KeyId();
  ASSERT_EQ(RunLethectl(*mesh_, {"agent", "revoke", "--domain", "growth", "--key-id", new_id}).exit_code, 0);
  const uint64_t size = mesh_->lethed().ledger().size();
  auto refused_submit = RunLethectl(*mesh_, {"request", "erase", "--identity", "email=" + kAlice.email});
  EXPECT_EQ(refused_submit.exit_code, 1);
  EXPECT_THAT(refused_submit.output, HasSubstr("domain growth has no enrolled agent key"));
  EXPECT_EQ(mesh_->lethed().ledger().size(), size);
}

// Commands are sealed to the agent: after erasures, a consent withdrawal and a re-sealed
// command, no byte sequence of any identity is on any lethe.* topic.
TEST(SealedCommands, NoKafkaTopicCarriesAnIdentityInClear) {
  Mesh::Options mo;
  mo.domains = {"assessments", "growth"};
  auto m = Mesh::Start(mo);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  auto done = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::COMPLETED);
  EXPECT_EQ(*mesh.Rows("growth", kAlice), 0);
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), 0);
  for (const char* verb : {"grant", "withdraw"}) {
    auto c = RunLethectl(mesh, {"consent", verb, "--identity", "email=" + kBob.email, "--purpose", "marketing",
                                "--source", "test"});
    ASSERT_EQ(c.exit_code, 0) << c.output;
  }
  ASSERT_TRUE(WaitFor([&] { return *mesh.Rows("growth", kBob) == 0; }, kWait));
  // Every command names the key its identities are sealed to: the agent's enrolled one.
  const std::string growth_key =
      crypto::X25519PublicKey::FromPem(lethe::ReadFile(mesh.agent_pub("growth")).value())->KeyId();
  int commands = 0;
  for (const std::string topic : {"lethe.commands.assessments", "lethe.commands.growth", "lethe.receipts",
                                   "lethe.consent"}) {
    auto msgs = ReadTopic(mesh.kafka_bootstrap(), topic);
    ASSERT_TRUE(msgs.ok()) << msgs.status();
    EXPECT_FALSE(msgs->empty()) << topic;
    for (const auto& msg : *msgs) {
      const std::string bytes = msg.key.value_or("") + msg.value.value_or("");
      for (const Person& p : {kAlice, kBob})
        for (const std::string& id : {p.email, p.user_id})
          EXPECT_EQ(bytes.find(id), std::string::npos) << topic << " carries an identity in clear";
      if (topic == "lethe.commands.growth") {
        v1::SignedEnvelope env;
        v1::DeleteCommand cmd;
        ASSERT_TRUE(env.ParseFromString(*msg.value) && cmd.ParseFromString(env.body()));
        EXPECT_EQ(cmd.recipient_key_id(), growth_key);
        EXPECT_FALSE(cmd.sealed_identities().empty());
        ++commands;
      }
    }
  }
  EXPECT_GE(commands, 2);
}

TEST_F(SecurityTest, LethedRefusesToStartWithoutThePepperOnceTheLedgerHoldsTokens) {
  mesh_->StopLethed();
  const std::string pepper = mesh_->data_dir() + "/vault/pepper";
  ASSERT_TRUE(std::filesystem::remove(pepper));
  auto restarted = controlplane::Lethed::Start(mesh_->LethedOptionsForTest());
  ASSERT_FALSE(restarted.ok());
  EXPECT_EQ(restarted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(restarted.status().message()), HasSubstr(pepper + " is missing"));
  EXPECT_FALSE(std::filesystem::exists(pepper)) << "a new pepper was made";
}

TEST_F(SecurityTest, ListsComeInPagesWithOpaqueTokens) {
  std::set<std::string> submitted;
  for (int i = 0; i < 5; ++i) {
    v1::SubmitResponse resp;
    ASSERT_TRUE(Submit(mesh_->Channel("operator"), Person{std::to_string(1000 + i), "p" + std::to_string(i) + "@example.com"}, &resp).ok());
    submitted.insert(resp.request_id());
  }
  auto stub = mesh_->Requests();
  v1::ListRequestsRequest req;
  req.set_page_size(2);
  std::vector<int> sizes;
  std::set<std::string> seen;
  do {
    v1::ListRequestsResponse page;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->List(&ctx, req, &page).ok());
    sizes.push_back(page.requests_size());
    for (const auto& r : page.requests()) EXPECT_TRUE(seen.insert(r.request_id()).second) << "listed twice";
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  EXPECT_EQ(sizes, (std::vector<int>{2, 2, 1}));
  EXPECT_EQ(seen, submitted);
  // Tokens are checked; a negative size is refused.
  for (const auto& [size, token] : std::vector<std::pair<int, std::string>>{{2, "garbage"}, {2, "e"}, {-1, ""}}) {
    v1::ListRequestsRequest bad;
    bad.set_page_size(size);
    bad.set_page_token(token);
    v1::ListRequestsResponse page;
    grpc::ClientContext ctx;
    grpc::Status st = stub->List(&ctx, bad, &page);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << token;
    EXPECT_THAT(st.error_message(), ::testing::AnyOf(HasSubstr("page_token"), HasSubstr("page_size")));
  }
  // The CLI reads every page.
  auto list = RunLethectl(*mesh_, {"-o", "json", "request", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  for (const auto& id : submitted) EXPECT_THAT(list.output, HasSubstr(id));
  // Consent lists page the same way; an unknown status is refused like Consent.Change does.
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(RunLethectl(*mesh_, {"consent", "grant", "--identity", "email=c" + std::to_string(i) + "@example.com",
                                   "--purpose", "marketing", "--source", "test"}).exit_code, 0);
  auto consent = mesh_->Consent();
  v1::ListConsentRequest creq;
  creq.set_purpose("marketing");
  creq.set_page_size(2);
  v1::ListConsentResponse first;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(consent->List(&ctx, creq, &first).ok());
  }
  EXPECT_EQ(first.records_size(), 2);
  ASSERT_FALSE(first.next_page_token().empty());
  creq.set_page_token(first.next_page_token());
  v1::ListConsentResponse second;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(consent->List(&ctx, creq, &second).ok());
  }
  EXPECT_EQ(second.records_size(), 1);
  EXPECT_TRUE(second.next_page_token().empty());
  creq.clear_page_token();
  creq.set_status(static_cast<v1::ConsentStatus>(99));
  grpc::ClientContext ctx;
  EXPECT_EQ(consent->List(&ctx, creq, &second).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SecurityTest, InvalidUtf8IsInvalidArgumentNamingTheField) {
  const uint64_t size = mesh_->lethed().ledger().size();
  // Hand-made bytes, as a client in another language could send them: SubmitRequest with
  // identities[0] = {type: "email", value: 0xFF 0xFE}.
  const std::string bad = std::string("\x0a\x0b\x0a\x05" "email" "\x12\x02\xff\xfe", 13);
  grpc::GenericStub stub(mesh_->Channel("operator"));
  grpc::ClientContext ctx;
  grpc::Slice slice(bad);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::Status st;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  stub.UnaryCall(&ctx, "/lethe.v1.SubjectRequests/Submit", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> l(mu);
                   st = std::move(s);
                   done = true;
                   cv.notify_all();
                 });
  std::unique_lock<std::mutex> l(mu);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return done; }));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_EQ(st.error_message(), "identities[0].value: not valid UTF-8 (string fields must be UTF-8)");
  EXPECT_EQ(mesh_->lethed().ledger().size(), size);
  // Bytes that are no message at all.
  EXPECT_FALSE(proto::IsValidUtf8("\xc0\xaf"));  // overlong '/'
  EXPECT_FALSE(proto::IsValidUtf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_TRUE(proto::IsValidUtf8("caf\xc3\xa9 \xf0\x9f\x98\x80"));
  EXPECT_THAT(std::string(proto::DescribeParseFailure(v1::SubmitRequest::descriptor(), "\x0a\xff").message()),
              HasSubstr("does not parse as lethe.v1.SubmitRequest"));
}

TEST(LethedStart, RefusesToStartWithoutCertificatesUnlessInsecure) {
  Mesh::Options mo;
  mo.domains = {"growth"};
  mo.start_lethed = false;
  auto m = Mesh::Start(mo);
  ASSERT_TRUE(m.ok()) << m.status();
  controlplane::LethedOptions o = (*m)->LethedOptionsForTest();
  o.certs_dir.clear();
  auto none = controlplane::Lethed::Start(o);
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("--certs-dir"));
  // A missing server key is named.
  o = (*m)->LethedOptionsForTest();
  std::filesystem::remove(o.certs_dir + "/server.key");
  auto missing = controlplane::Lethed::Start(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("server.key"));
  EXPECT_FALSE(std::filesystem::exists(o.data_dir + "/ledger")) << "started writing before failing";
  // --insecure starts, says so in its metrics, and records callers as unauthenticated.
  o.certs_dir.clear();
  o.insecure = true;
  auto insecure = controlplane::Lethed::Start(o);
  ASSERT_TRUE(insecure.ok()) << insecure.status();
  bool flagged = false;
  for (const auto& f : (*insecure)->metrics().Collect())
    if (f.name == "lethe_insecure_transport") flagged = f.metric.at(0).gauge.value == 1.0;
  EXPECT_TRUE(flagged);
}

TEST_F(SecurityTest, OnlyTls13IsServed) {
  auto tls12 = RunCommand({"/bin/sh", "-c", "openssl s_client -connect " + mesh_->addr() + " -tls1_2 </dev/null"},
                          absl::Seconds(20));
  ASSERT_TRUE(tls12.ok()) << tls12.status();
  EXPECT_NE(tls12->exit_code, 0) << tls12->output;
  // lethed drops the connection without a single byte of handshake.
  EXPECT_THAT(tls12->output, HasSubstr("SSL handshake has read 0 bytes"));
  auto tls13 = RunCommand({"/bin/sh", "-c", "openssl s_client -connect " + mesh_->addr() + " -tls1_3 </dev/null"},
                          absl::Seconds(20));
  ASSERT_TRUE(tls13.ok()) << tls13.status();
  EXPECT_THAT(tls13->output, HasSubstr("New, TLSv1.3"));
}

}  // namespace
}  // namespace lethe::testing
