// The control plane's projections and planner, fed with ledger entries directly: the planner's
// scope and identity mapping, the policy registry's corruption checks, the consent store's
// views and the request store's deadlines.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/file_system.h"
#include "base/varint.h"
#include "controlplane/consent_store.h"
#include "controlplane/digest_table.h"
#include "controlplane/identity_vault.h"
#include "controlplane/planner.h"
#include "controlplane/policy_registry.h"
#include "controlplane/request_store.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "proto/envelope.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"

namespace lethe::controlplane {
namespace {
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kPolicy[] = R"(version: 1
name: unit
identities: [email, user_id, device_id]
purposes:
  - name: marketing
    description: x
    domains: [growth]
    erase_on_withdrawal: true
domains:
  - name: assessments
    postgres:
      tables:
        - {table: a.responses, key: user_id, identity: user_id, action: delete}
  - name: growth
    postgres:
      tables:
        - {table: g.contacts, key: email, identity: email, action: delete}
  - name: billing
    postgres:
      tables:
        - {table: b.invoices, key: customer_id, identity: user_id, action: delete}
        - {table: b.accounts, key: email, identity: email, action: delete}
  - name: devices
    kafka:
      topics:
        - {topic: mesh.devices, key: "{device_id}"}
)";

policies::Policy Sample() {
  auto p = policies::Policy::Parse(kPolicy, "unit");
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

std::vector<SubjectIdentity> Ids(std::vector<std::pair<std::string, std::string>> in) {
  std::vector<SubjectIdentity> out;
  for (auto& [t, v] : in) out.push_back(SubjectIdentity{t, SecretBytes(v)});
  return out;
}

std::vector<std::string> Domains(const std::vector<DomainPlan>& plans) {
  std::vector<std::string> out;
  for (const auto& p : plans) out.push_back(p.domain);
  return out;
}

TEST(Planner, EveryDomainIsATargetOrNeedsAnIdentityNeverLeftOut) {
  const policies::Policy p = Sample();
  ErasurePlan plan = PlanErasure(p, Ids({{"email", "a@example.com"}}));
  EXPECT_THAT(Domains(plan.targets), ElementsAre("growth"));
  ASSERT_EQ(plan.needs_identity.size(), 3u);
  EXPECT_EQ(plan.needs_identity[0].domain, "assessments");
  EXPECT_THAT(plan.needs_identity[0].identity_types, ElementsAre("user_id"));
  // billing has the email but not the user id its invoices are keyed by: its agent purges
  // every table or none, so it waits for the user id too.
  EXPECT_EQ(plan.needs_identity[1].domain, "billing");
  EXPECT_THAT(plan.needs_identity[1].identity_types, ElementsAre("user_id"));
  EXPECT_EQ(plan.needs_identity[2].domain, "devices");
  EXPECT_THAT(plan.needs_identity[2].identity_types, ElementsAre("device_id"));
  // Each target gets only the identity types it uses, and its section's hash.
  plan = PlanErasure(p, Ids({{"email", "a@example.com"}, {"user_id", "42"}, {"device_id", "d-1"}}));
  EXPECT_THAT(Domains(plan.targets), ElementsAre("assessments", "growth", "billing", "devices"));
  ASSERT_EQ(plan.targets[2].identities.size(), 2u);
  EXPECT_TRUE(plan.needs_identity.empty());
  ASSERT_EQ(plan.targets[0].identities.size(), 1u);
  EXPECT_EQ(plan.targets[0].identities[0].type, "user_id");
  EXPECT_EQ(plan.targets[0].domain_policy_hash, p.DomainHash("assessments"));
}

TEST(Planner, ScopeLimitsThePlanToTheNamedDomains) {
  const policies::Policy p = Sample();
  ErasurePlan plan = PlanErasure(p, Ids({{"email", "a@example.com"}}), {"growth"});
  EXPECT_THAT(Domains(plan.targets), ElementsAre("growth"));
  EXPECT_TRUE(plan.needs_identity.empty());
  plan = PlanErasure(p, Ids({{"email", "a@example.com"}}), {"assessments"});
  EXPECT_TRUE(plan.targets.empty());
  ASSERT_EQ(plan.needs_identity.size(), 1u);
  EXPECT_EQ(plan.needs_identity[0].domain, "assessments");
}

v1::LedgerEntry Activation(uint64_t n, const std::string& yaml, const std::string& hash) {
  v1::LedgerEntry e;
  auto* a = e.mutable_policy_activated();
  a->set_activation(n);
  a->set_policy_yaml(yaml);
  a->set_policy_hash(hash);
  a->set_source("unit");
  e.set_time_unix_ms(1000 * n);
  return e;
}

TEST(PolicyRegistry, ActivationsBuildTheHistoryAndCorruptionIsDataLoss) {
  const policies::Policy p = Sample();
  PolicyRegistry r;
  EXPECT_EQ(r.Active(), nullptr);
  ASSERT_OK(r.Apply(1, Activation(1, kPolicy, p.Hash())));
  ASSERT_NE(r.Active(), nullptr);
  EXPECT_EQ(r.Active()->Hash(), p.Hash());
  ASSERT_OK(r.Apply(5, Activation(2, kPolicy, p.Hash())));
  ASSERT_EQ(r.History().size(), 2u);
  EXPECT_EQ(r.ActiveRecord()->entry, 5u);

  absl::Status s = r.Apply(6, Activation(3, kPolicy, crypto::Sha256("x")));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("ledger entry 6"));
  s = r.Apply(7, Activation(5, kPolicy, p.Hash()));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  s = r.Apply(8, Activation(3, "version: 1\nname: broken\n", p.Hash()));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.History().size(), 2u);  // nothing half-applied
}

v1::LedgerEntry Consent(const std::string& token, const std::string& purpose,
                        v1::ConsentStatus status, const std::string& source) {
  v1::LedgerEntry e;
  auto* c = e.mutable_consent_changed();
  c->set_change_id(crypto::Hex(crypto::Sha256(source + purpose)).substr(0, 32));
  c->mutable_subject()->set_type("email");
  c->mutable_subject()->set_token(crypto::Sha256(token));
  c->set_purpose(purpose);
  c->set_status(status);
  c->set_source(source);
  return e;
}

// The packed indices the stores keep (base/varint.h) give back what was put in, for deltas of
// every varint length, including equal neighbours and the largest index.
TEST(PackedIndices, AscendingIndicesOfEveryWidthComeBackInOrder) {
  std::vector<uint64_t> want = {0, 0, 1, 127, 128, 16383, 16384, 1u << 21, uint64_t{1} << 35,
                                (uint64_t{1} << 56) + 3, ~uint64_t{0} - 1, ~uint64_t{0}};
  std::string packed;
  uint64_t last = 0;
  for (uint64_t v : want) {
    AppendAscending(packed, last, v);
    last = v;
  }
  EXPECT_EQ(UnpackAscending(packed), want);
  EXPECT_TRUE(UnpackAscending("").empty());
  // One byte for a small delta.
  std::string small;
  AppendAscending(small, 1000, 1100);
  EXPECT_EQ(small.size(), 1u);
  EXPECT_EQ(UnpackAscending(small), std::vector<uint64_t>{100});
}

// The descriptors of the unlinked scratch files this process holds in `dir`.
std::vector<int> ScratchDescriptors(const std::string& dir) {
  std::vector<int> found;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.rfind(dir + "/", 0) == 0 && target.find("(deleted)") != std::string::npos)
      found.push_back(std::stoi(fd.path().filename().string()));
  }
  return found;
}
int ScratchDescriptor(const std::string& dir) {
  const std::vector<int> fds = ScratchDescriptors(dir);
  EXPECT_EQ(fds.size(), 1u) << "scratch files in " << dir;
  return fds.size() == 1 ? fds[0] : -1;
}
// Gives every scratch file in `dir` the access mode `flags` (O_RDONLY: writes fail, O_WRONLY:
// reads fail, O_RDWR: both work again), in place, as a disk that stops working would.
void ReopenScratchFiles(const std::string& dir, int flags) {
  for (const int fd : ScratchDescriptors(dir)) {
    const int again = ::open(absl::StrCat("/proc/self/fd/", fd).c_str(), flags | O_CLOEXEC);
    ASSERT_GE(again, 0);
    ASSERT_EQ(::dup2(again, fd), fd);
    ::close(again);
  }
}

TEST(ConsentStore, CurrentStatePerPurposeHistoryAndWhatIsStillToPublish) {
  ConsentStore c;
  testing::TempDir dir;
  c.SetScratchDir(dir.path());
  // The log as the ledger would read it back, durable below `durable`.
  std::map<uint64_t, std::string> log;
  uint64_t durable = 0;
  c.SetEntryReader([&](uint64_t at) -> absl::StatusOr<std::string> {
    if (at >= durable || !log.count(at)) return absl::OutOfRangeError(absl::StrCat("entry ", at, " not durable"));
    return log.at(at);
  });
  auto apply = [&](uint64_t seq, const v1::LedgerEntry& e) {
    log[seq] = e.SerializeAsString();
    return c.Apply(seq, e);
  };
  ASSERT_OK(apply(10, Consent("alice", "marketing", v1::GRANTED, "form")));
  ASSERT_OK(apply(11, Consent("alice", "research", v1::GRANTED, "form")));
  ASSERT_OK(apply(12, Consent("bob", "marketing", v1::GRANTED, "import")));
  ASSERT_OK(apply(13, Consent("alice", "marketing", v1::WITHDRAWN, "unsubscribe")));
  const std::string alice = crypto::Sha256("alice");
  auto sources = [&]() {
    std::vector<std::string> out;
    auto h = c.History("email", alice);
    EXPECT_TRUE(h.ok()) << h.status();
    if (h.ok())
      for (const auto& r : *h) out.push_back(absl::StrCat(r.entry, " ", r.source));
    return out;
  };
  // Alice's superseded grant (10) is held until it is durable, then read back.
  EXPECT_EQ(c.held(), 4u);
  EXPECT_THAT(sources(), ElementsAre("10 form", "11 form", "13 unsubscribe"));
  durable = 10;
  c.MarkDurable(durable);
  EXPECT_EQ(c.held(), 4u);
  durable = 14;
  c.MarkDurable(durable);
  EXPECT_EQ(c.held(), 3u);
  EXPECT_EQ(c.size(), 4u);
  EXPECT_THAT(sources(), ElementsAre("10 form", "11 form", "13 unsubscribe"));
  // What the ledger hands back must be the change recorded there.
  log[10] = log[12];
  EXPECT_EQ(c.History("email", alice).status().code(), absl::StatusCode::kDataLoss);
  log[10] = Consent("alice", "marketing", v1::GRANTED, "form").SerializeAsString();
  auto current = c.Current("email", alice);
  ASSERT_EQ(current.size(), 2u);
  EXPECT_EQ(current[0].purpose, "marketing");
  EXPECT_EQ(current[0].status, v1::WITHDRAWN);
  EXPECT_EQ(current[1].purpose, "research");
  auto marketing = c.ByPurpose("marketing");
  ASSERT_EQ(marketing.size(), 2u);
  EXPECT_EQ(marketing[0].source, "import");       // bob's, older
  EXPECT_EQ(marketing[1].source, "unsubscribe");  // alice's latest
  EXPECT_EQ(marketing[1].TopicKey(), "email:" + crypto::Hex(alice) + ":marketing");
  // A publisher that got through entry 11 still owes bob's grant and alice's withdrawal,
  // and never alice's superseded grant.
  auto owed = c.CurrentAfter(11);
  ASSERT_EQ(owed.size(), 2u);
  EXPECT_EQ(owed[0].entry, 12u);
  EXPECT_EQ(owed[1].entry, 13u);
  EXPECT_EQ(c.CurrentAfter(0).size(), 3u);
  // Malformed changes are corruption.
  v1::LedgerEntry bad = Consent("carol", "marketing", v1::CONSENT_STATUS_UNSPECIFIED, "x");
  EXPECT_EQ(c.Apply(14, bad).code(), absl::StatusCode::kDataLoss);
  // The scratch file of histories must hold what the store wrote: once it is written out
  // (enough changes of others fill its buffer), alice's latest change (node 3) made to point
  // forward, at someone else's, is reported, not followed.
  durable = 14 + ScratchFile::kFlushBytes / 16;
  for (uint64_t seq = 14; seq < durable; ++seq)
    ASSERT_OK(apply(seq, Consent(absl::StrCat("filler-", seq), "research", v1::GRANTED, "form")));
  const int fd = ScratchDescriptor(dir.path());
  ASSERT_GE(fd, 0);
  const uint64_t ahead = 6;  // node 5, a later change of someone else
  ASSERT_EQ(::pwrite(fd, &ahead, 8, 3 * 16 + 8), 8);
  const absl::Status looped = c.History("email", alice).status();
  EXPECT_EQ(looped.code(), absl::StatusCode::kDataLoss) << looped;
  EXPECT_THAT(std::string(looped.message()), HasSubstr("consent histories"));
  const uint64_t before = 2;  // node 1 (entry 11), + 1
  ASSERT_EQ(::pwrite(fd, &before, 8, 3 * 16 + 8), 8);
  EXPECT_THAT(sources(), ElementsAre("10 form", "11 form", "13 unsubscribe"));
}

// The store replays only a story the lifecycle rule accepts (audit/request_lifecycle.h): these
// build one, with the sample policy active and each request planned as the policy says.
v1::LedgerEntry Activation() {
  v1::LedgerEntry e;
  auto* a = e.mutable_policy_activated();
  a->set_activation(1);
  a->set_policy_yaml(kPolicy);
  a->set_policy_hash(Sample().Hash());
  return e;
}

// A 32-byte identity token standing for `name`.
std::string Token(std::string_view name) { return crypto::Sha256(name); }

v1::LedgerEntry Submitted(const std::string& id, std::vector<std::pair<std::string, std::string>> subject,
                          absl::Time received) {
  const policies::Policy policy = Sample();
  v1::LedgerEntry e;
  auto* s = e.mutable_request_submitted();
  s->set_kind(v1::RequestSubmitted::ERASURE);
  s->set_request_id(id);
  s->set_policy_hash(policy.Hash());
  std::vector<std::string> types;
  for (const auto& [type, name] : subject) {
    auto* t = s->add_subject();
    t->set_type(type);
    t->set_token(Token(name));
    types.push_back(type);
  }
  for (const auto& d : policy.ErasureScope(types, {})) {
    if (d.missing_types.empty()) {
      s->add_target_domains(d.domain);
    } else {
      auto* need = s->add_needs_identity();
      need->set_domain(d.domain);
      for (const auto& t : d.missing_types) need->add_identity_types(t);
    }
  }
  s->set_received_unix_ms(absl::ToUnixMillis(received));
  s->set_due_unix_ms(absl::ToUnixMillis(received + absl::Hours(24 * 30)));
  return e;
}

TEST(RequestStore, ExtensionsMoveTheDueDateAndOverdueFollowsTheClock) {
  RequestStore store;
  ASSERT_OK(store.Apply(1, Activation()));
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  ASSERT_OK(store.Apply(3, Submitted("r1", {{"email", "alice@example.org"}}, t0)));
  auto r = store.Get("r1");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_GE(r->domains.size(), 2u);
  EXPECT_EQ(r->domains.front().state, v1::PENDING);
  EXPECT_EQ(r->domains.back().state, v1::NEEDS_IDENTITY);
  EXPECT_FALSE(r->Overdue(t0 + absl::Hours(24 * 30)));
  EXPECT_TRUE(r->Overdue(t0 + absl::Hours(24 * 30) + absl::Milliseconds(1)));

  v1::LedgerEntry ext;
  ext.mutable_deadline_extended()->set_request_id("r1");
  ext.mutable_deadline_extended()->set_extension_seconds(10 * 86400);
  ext.mutable_deadline_extended()->set_new_due_unix_ms(absl::ToUnixMillis(t0 + absl::Hours(24 * 40)));
  ASSERT_OK(store.Apply(4, ext));
  r = store.Get("r1");
  EXPECT_FALSE(r->Overdue(t0 + absl::Hours(24 * 35)));
  EXPECT_TRUE(r->Overdue(t0 + absl::Hours(24 * 40) + absl::Milliseconds(1)));
  // The waiting domain keeps it from being answered; the extension is part of its evidence.
  EXPECT_TRUE(store.AnsweredButOpen().empty());
  EXPECT_THAT(store.EvidenceEntries("r1").value(), ElementsAre(3u, 4u));
  // An addition for a domain that was not waiting contradicts the log.
  v1::LedgerEntry add;
  add.mutable_identities_added()->set_request_id("r1");
  add.mutable_identities_added()->add_target_domains("growth");
  EXPECT_EQ(store.Apply(5, add).code(), absl::StatusCode::kDataLoss);
  // So does an extension whose new due date is not the old one plus the extension, which the
  // auditor rejects too: the store holds the same rule.
  v1::LedgerEntry bad = ext;
  bad.mutable_deadline_extended()->set_new_due_unix_ms(absl::ToUnixMillis(t0 + absl::Hours(24 * 45)));
  EXPECT_EQ(store.Apply(5, bad).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store.Get("r1")->due_unix_ms, absl::ToUnixMillis(t0 + absl::Hours(24 * 40)));
}

// The index behind SubjectRequests.FindOpen: a request is found by each token of its subject,
// those added later too, until it completes.
TEST(RequestStore, OpenRequestsAreFoundByTokenUntilTheyCompleteAndAreCompactedOnceDurable) {
  RequestStore store;
  ASSERT_OK(store.Apply(1, Activation()));
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  // A user_id alone reaches the domains keyed by it; the rest wait for an e-mail or device id.
  ASSERT_OK(store.Apply(2, Submitted("r1", {{"user_id", "u-a"}}, t0)));
  ASSERT_OK(store.Apply(3, Submitted("r2", {{"user_id", "u-a"}}, t0)));
  ASSERT_OK(store.Apply(4, Submitted("r3", {{"user_id", "u-b"}}, t0)));
  EXPECT_THAT(store.OpenWithToken("user_id", Token("u-a")), ElementsAre("r1", "r2"));
  EXPECT_THAT(store.OpenWithToken("email", Token("u-a")), ElementsAre());  // the type is part of it
  const auto r1 = store.Get("r1");
  ASSERT_TRUE(r1.ok()) << r1.status();
  v1::LedgerEntry add;
  add.mutable_identities_added()->set_request_id("r1");
  for (const auto& d : r1->domains)
    if (d.state == v1::NEEDS_IDENTITY && d.needed_types == std::vector<std::string>{"email"})
      add.mutable_identities_added()->add_target_domains(d.domain);
  ASSERT_GT(add.identities_added().target_domains_size(), 0);
  auto* t = add.mutable_identities_added()->add_subject();
  t->set_type("email");
  t->set_token(Token("a@example.org"));
  ASSERT_OK(store.Apply(5, add));
  EXPECT_THAT(store.OpenWithToken("email", Token("a@example.org")), ElementsAre("r1"));
  // A completion before every domain answered contradicts the log: refused, nothing changes.
  v1::LedgerEntry done;
  done.mutable_request_completed()->set_request_id("r1");
  done.mutable_request_completed()->set_outcome(v1::RequestCompleted::COMPLETED);
  EXPECT_EQ(store.Apply(6, done).code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.OpenWithToken("user_id", Token("u-a")), ElementsAre("r1", "r2"));

  // r4 carries every identity type, so every domain is a target. Each is sent a command and
  // answers with a receipt signed by its enrolled key; the completion takes r4 out of the index.
  auto agent = crypto::Ed25519PrivateKey::Generate();
  ASSERT_OK(agent);
  uint64_t seq = 6;
  for (const char* domain : {"assessments", "growth", "billing", "devices"}) {
    v1::LedgerEntry e;
    auto* a = e.mutable_agent_enrolled();
    a->set_domain(domain);
    a->set_public_key(agent->public_key().raw());
    a->set_key_id(agent->public_key().KeyId());
    ASSERT_OK(store.Apply(seq++, e));
  }
  // r4's entries, as the ledger would hand them back once r4 is compacted.
  std::map<uint64_t, std::string> log;
  auto apply = [&](const v1::LedgerEntry& e) {
    log[seq] = e.SerializeAsString();
    return store.Apply(seq++, e);
  };
  ASSERT_OK(apply(Submitted("r4", {{"user_id", "u-c"}, {"email", "c@example.org"}, {"device_id", "dev-c"}}, t0)));
  const auto r4 = store.Get("r4");
  ASSERT_TRUE(r4.ok()) << r4.status();
  EXPECT_THAT(store.OpenWithToken("user_id", Token("u-c")), ElementsAre("r4"));
  const policies::Policy policy = Sample();
  for (const auto& d : r4->domains) {
    ASSERT_EQ(d.state, v1::PENDING) << d.domain;
    v1::LedgerEntry issued;
    auto* c = issued.mutable_command_issued();
    c->set_command_id("c-" + d.domain);
    c->set_request_id("r4");
    c->set_domain(d.domain);
    c->set_command_digest(crypto::Sha256(d.domain));
    c->set_domain_policy_hash(policy.DomainHash(d.domain));
    ASSERT_OK(apply(issued));
    v1::Receipt receipt;
    receipt.set_command_id(c->command_id());
    receipt.set_request_id("r4");
    receipt.set_domain(d.domain);
    receipt.set_command_digest(c->command_digest());
    receipt.set_outcome(v1::Receipt::COMPLETED);
    receipt.set_verified_zero_remaining(true);
    v1::LedgerEntry recorded;
    auto* rr = recorded.mutable_receipt_recorded();
    *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, receipt.SerializeAsString(), *agent);
    rr->set_command_id(c->command_id());
    rr->set_request_id("r4");
    rr->set_domain(d.domain);
    ASSERT_OK(apply(recorded));
    // The same receipt again is no news, and the rule says so.
    EXPECT_EQ(store.CheckReceipt(*rr, false, nullptr).code(), absl::StatusCode::kAlreadyExists);
  }
  v1::LedgerEntry completed;
  completed.mutable_request_completed()->set_request_id("r4");
  completed.mutable_request_completed()->set_outcome(v1::RequestCompleted::COMPLETED);
  const uint64_t completed_at = seq;
  ASSERT_OK(apply(completed));
  EXPECT_EQ(store.Get("r4")->state, v1::COMPLETED);
  // Compacted to its ledger indices only once its completion is durable (below `end`), and
  // then read back: the reader serves durable entries only.
  uint64_t durable = 0;
  store.SetEntryReader([&](uint64_t at) -> absl::StatusOr<std::string> {
    if (at >= durable || !log.count(at)) return absl::OutOfRangeError(absl::StrCat("entry ", at, " not durable"));
    return log.at(at);
  });
  const std::string whole = ToView(*store.Get("r4"), store, t0).DebugString();
  durable = completed_at;
  store.MarkDurable(durable);
  EXPECT_EQ(store.held().compacted, 0u);
  ASSERT_OK(store.Get("r4").status());
  durable = completed_at + 1;
  store.MarkDurable(durable);
  EXPECT_EQ(store.held().compacted, 1u);
  auto read_back = store.Get("r4");
  ASSERT_OK(read_back.status());
  EXPECT_EQ(ToView(*read_back, store, t0).DebugString(), whole);
  EXPECT_THAT(store.OpenWithToken("user_id", Token("u-c")), ElementsAre());
  EXPECT_THAT(store.OpenWithToken("email", Token("c@example.org")), ElementsAre());
  // The metrics' tally, kept from the open requests alone, agrees with the full list.
  for (const absl::Time at : {t0, t0 + absl::Hours(24 * 365)}) {
    uint64_t open = 0, waiting = 0, overdue = 0;
    const std::vector<RequestRecord> listed = store.List().value();
    for (const auto& r : listed) {
      if (r.state != v1::IN_PROGRESS) continue;
      ++open;
      overdue += r.Overdue(at) ? 1 : 0;
      for (const auto& d : r.domains) waiting += d.state == v1::NEEDS_IDENTITY ? 1 : 0;
    }
    const RequestStore::Tally tally = store.Count(at);
    EXPECT_EQ(tally.in_progress, open);
    EXPECT_EQ(tally.completed, 1u);
    EXPECT_EQ(tally.failed, 0u);
    EXPECT_EQ(tally.overdue, overdue);
    EXPECT_EQ(tally.domains_needing_identity, waiting);
    EXPECT_GT(waiting, 0u);
    EXPECT_THAT(store.Pending(at, absl::ZeroDuration()), ::testing::Each(::testing::Field(
        &PendingCommand::command, ::testing::Field(&CommandRecord::request_id, ::testing::Ne("r4")))));
  }
  EXPECT_EQ(store.Count(t0).overdue, 0u);
  EXPECT_GT(store.Count(t0 + absl::Hours(24 * 365)).overdue, 0u);
}

// lethed checks a receipt before recording it and again when the recorded entry is applied;
// the second check may reuse the first signature verdict only for the very same bytes under
// the very same key. A different signature, body or signer is verified afresh.
TEST(RequestStore, AReceiptsSignatureVerdictIsReusedOnlyForTheSameBytesAndKey) {
  RequestStore store;
  ASSERT_OK(store.Apply(1, Activation()));
  auto agent = crypto::Ed25519PrivateKey::Generate();
  auto other = crypto::Ed25519PrivateKey::Generate();
  ASSERT_OK(agent);
  ASSERT_OK(other);
  uint64_t seq = 2;
  for (const auto* key : {&*agent, &*other}) {
    v1::LedgerEntry e;
    e.mutable_agent_enrolled()->set_domain("assessments");
    e.mutable_agent_enrolled()->set_public_key(key->public_key().raw());
    e.mutable_agent_enrolled()->set_key_id(key->public_key().KeyId());
    ASSERT_OK(store.Apply(seq++, e));
  }
  ASSERT_OK(store.Apply(seq++, Submitted("r1", {{"user_id", "u-a"}}, absl::FromUnixSeconds(1'800'000'000))));
  v1::LedgerEntry issued;
  auto* c = issued.mutable_command_issued();
  c->set_command_id("c1");
  c->set_request_id("r1");
  c->set_domain("assessments");
  c->set_command_digest(crypto::Sha256("c1"));
  c->set_domain_policy_hash(Sample().DomainHash("assessments"));
  ASSERT_OK(store.Apply(seq++, issued));
  v1::Receipt receipt;
  receipt.set_command_id("c1");
  receipt.set_request_id("r1");
  receipt.set_domain("assessments");
  receipt.set_command_digest(c->command_digest());
  receipt.set_outcome(v1::Receipt::COMPLETED);
  receipt.set_verified_zero_remaining(true);
  v1::ReceiptRecorded rr;
  *rr.mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, receipt.SerializeAsString(), *agent);
  rr.set_command_id("c1");
  rr.set_request_id("r1");
  rr.set_domain("assessments");
  // The intake verifies before it takes the writer lock: a forgery does not verify; the
  // genuine envelope does, and CheckReceipt may reuse that verdict for the same bytes and key.
  v1::SignedEnvelope bad = rr.receipt();
  std::string bad_sig = bad.signature();
  bad_sig[3] = static_cast<char>(bad_sig[3] ^ 0x01);
  bad.set_signature(bad_sig);
  EXPECT_EQ(audit::RequestLifecycle::VerifyReceiptEnvelope(bad, agent->public_key()).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(audit::RequestLifecycle::VerifyReceiptEnvelope(rr.receipt(), other->public_key()).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto verified = audit::RequestLifecycle::VerifyReceiptEnvelope(rr.receipt(), agent->public_key());
  ASSERT_OK(verified);
  EXPECT_EQ(verified->body(), rr.receipt().body());
  store.RememberVerifiedReceipt(*verified);
  ASSERT_OK(store.CheckReceipt(rr, false, nullptr));  // verified: the verdict is remembered

  v1::ReceiptRecorded forged = rr;  // same body and signer, another signature
  std::string sig = forged.receipt().signature();
  sig[5] = static_cast<char>(sig[5] ^ 0x01);
  forged.mutable_receipt()->set_signature(sig);
  EXPECT_EQ(store.CheckReceipt(forged, false, nullptr).code(), absl::StatusCode::kPermissionDenied);
  forged = rr;  // same signature, another body
  receipt.set_outcome(v1::Receipt::FAILED);
  forged.mutable_receipt()->set_body(receipt.SerializeAsString());
  EXPECT_EQ(store.CheckReceipt(forged, false, nullptr).code(), absl::StatusCode::kPermissionDenied);
  forged = rr;  // same bytes, claimed by the other enrolled key of the domain
  forged.mutable_receipt()->set_key_id(other->public_key().KeyId());
  EXPECT_EQ(store.CheckReceipt(forged, false, nullptr).code(), absl::StatusCode::kPermissionDenied);

  v1::LedgerEntry recorded;
  *recorded.mutable_receipt_recorded() = rr;
  ASSERT_OK(store.Apply(seq++, recorded));  // the genuine one still records
  EXPECT_EQ(store.CheckReceipt(rr, false, nullptr).code(), absl::StatusCode::kAlreadyExists);
}

TEST(KafkaConfig, PropertiesFilePassesSettingsThroughAndNamesBadLines) {
  const std::string dir = ::testing::TempDir();
  const std::string good = dir + "/kafka-good.properties";
  ASSERT_TRUE(lethe::WriteFileAtomic(good,
                                      "# TLS and SASL to the cluster\n"
                                      "security.protocol = SASL_SSL\n"
                                      "\n"
                                      "sasl.mechanism=SCRAM-SHA-512\n"
                                      "sasl.password=s3cr=t\n",
                                      0600)
                  .ok());
  auto cfg = kafka::LoadConfigFile(good);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->size(), 3u);
  EXPECT_EQ(cfg->at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(cfg->at("sasl.password"), "s3cr=t") << "only the first '=' separates";
  const std::string bad = dir + "/kafka-bad.properties";
  ASSERT_TRUE(lethe::WriteFileAtomic(bad, "security.protocol=SSL\nno equals sign here\n", 0600).ok());
  auto err = kafka::LoadConfigFile(bad);
  EXPECT_EQ(err.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(err.status().message()), ::testing::HasSubstr(bad + ":2:"));
  const std::string own = dir + "/kafka-own.properties";
  ASSERT_TRUE(lethe::WriteFileAtomic(own, "bootstrap.servers=elsewhere:9092\n", 0600).ok());
  EXPECT_FALSE(kafka::LoadConfigFile(own).ok()) << "lethe sets bootstrap.servers itself";
  // librdkafka gets the settings: one it does not know is refused, and a secret value is
  // never repeated in the error.
  auto producer = kafka::Producer::Create("127.0.0.1:1", {{"sasl.password", "hunter2"}, {"no.such.setting", "hunter2"}});
  ASSERT_FALSE(producer.ok());
  EXPECT_THAT(std::string(producer.status().message()), ::testing::HasSubstr("no.such.setting"));
  EXPECT_THAT(std::string(producer.status().message()), ::testing::Not(::testing::HasSubstr("hunter2")));
}

// The request keys' slot file (identity_vault.h): what is written, kept, destroyed and
// refused, read back through a second open as lethed's next start would.
class VaultTest : public ::testing::Test {
 protected:
  std::unique_ptr<IdentityVault> Open() {
    auto v = IdentityVault::Open(dir_.path(), /*may_create_pepper=*/true);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? std::move(*v) : nullptr;
  }
  std::string SlotFile() const { return dir_.path() + "/" + IdentityVault::kKeysFile; }
  std::string Bytes() const { return lethe::ReadFile(SlotFile()).value_or(""); }
  testing::TempDir dir_;
};

TEST_F(VaultTest, KeysOutliveAReopenAndADestroyedKeyIsZerosOnDisk) {
  std::string alice_key, bob_key;
  {
    auto v = Open();
    alice_key = std::string(RevealSecret(v->CreateRequestKey("req-alice").value()));
    bob_key = std::string(RevealSecret(v->CreateRequestKey("req-bob").value()));
    ASSERT_NE(Bytes().find(alice_key), std::string::npos);
    ASSERT_OK(v->DestroyRequestKey("req-alice"));
    EXPECT_EQ(v->RequestKey("req-alice").status().code(), absl::StatusCode::kNotFound);
    EXPECT_OK(v->DestroyRequestKey("req-alice"));  // idempotent
  }
  EXPECT_EQ(Bytes().find(alice_key), std::string::npos) << "the destroyed key is still in the file";
  auto v = Open();
  EXPECT_FALSE(v->HasRequestKey("req-alice"));
  ASSERT_TRUE(v->HasRequestKey("req-bob"));
  EXPECT_EQ(RevealSecret(v->RequestKey("req-bob").value()), bob_key);
  EXPECT_THAT(v->StoredRequestKeys().value(), ::testing::ElementsAre("req-bob"));
  EXPECT_EQ(v->CreateRequestKey(std::string(65, 'r')).status().code(), absl::StatusCode::kInvalidArgument);
}

// Nothing is created or removed per request: a destroyed key's slot is used again, and the
// file stays the size the most keys held at once needed.
TEST_F(VaultTest, SlotsAreUsedAgainAndTheFileDoesNotGrowWithRequestsThatEnded) {
  auto v = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 1500; ++i) ids.push_back("req-" + std::to_string(i));
  for (const auto& id : ids) ASSERT_OK(v->CreateRequestKey(id).status());
  const size_t size = Bytes().size();
  EXPECT_EQ(size % IdentityVault::kSlotSize, 0u);
  EXPECT_GE(size, 1500 * IdentityVault::kSlotSize);
  for (int round = 0; round < 3; ++round) {
    ASSERT_OK(v->DestroyRequestKeys(ids));
    for (auto& id : ids) id += "x";
    for (const auto& id : ids) ASSERT_OK(v->CreateRequestKey(id).status());
  }
  EXPECT_EQ(Bytes().size(), size);
  EXPECT_EQ(Open()->StoredRequestKeys().value().size(), 1500u);
}

// A slot that no longer checks is reported, naming the file and the slot, never skipped: the
// request whose key it held could not be opened again.
TEST_F(VaultTest, ASlotThatDoesNotCheckStopsTheOpenNamingIt) {
  {
    auto v = Open();
    ASSERT_OK(v->CreateRequestKey("req-alice").status());
    ASSERT_OK(v->CreateRequestKey("req-bob").status());
  }
  std::string bytes = Bytes();
  bytes[IdentityVault::kSlotSize + 80] ^= 0x01;  // a bit of the second slot's key
  ASSERT_OK(lethe::WriteFileAtomic(SlotFile(), bytes, 0600));
  auto v = IdentityVault::Open(dir_.path(), true);
  ASSERT_EQ(v.status().code(), absl::StatusCode::kDataLoss) << v.status();
  EXPECT_THAT(std::string(v.status().message()), ::testing::HasSubstr("key slot 1 does not check"));
  EXPECT_THAT(std::string(v.status().message()), ::testing::HasSubstr(IdentityVault::kKeysFile));
}

// Keys of earlier versions, one file each under DIR/keys/, move into slots at open; their
// files, and a temporary file an interrupted write left, are gone afterwards.
TEST_F(VaultTest, KeyFilesOfEarlierVersionsMoveIntoSlots) {
  Open();  // the pepper
  const std::string keys = dir_.path() + "/keys";
  std::filesystem::create_directories(keys);
  const std::string old_key(32, 'k');
  ASSERT_OK(lethe::WriteFileAtomic(keys + "/req-old.key", old_key, 0600));
  ASSERT_OK(lethe::WriteFileAtomic(keys + "/req-half.key.tmp-abcdef", std::string(32, 't'), 0600));
  auto v = Open();
  ASSERT_TRUE(v->HasRequestKey("req-old"));
  EXPECT_EQ(RevealSecret(v->RequestKey("req-old").value()), old_key);
  EXPECT_THAT(v->StoredRequestKeys().value(), ::testing::ElementsAre("req-old"));
  EXPECT_FALSE(std::filesystem::exists(keys)) << "the old key files are removed";
  EXPECT_EQ(RevealSecret(Open()->RequestKey("req-old").value()), old_key);
}

// DigestTable (digest_table.h): every key put comes back with its last value, through the
// rebuilds that grow the file and the writes in place between them; a key never put is absent;
// memory holds at most kMaxPending keys; and the file is never seen in the directory.
TEST(DigestTable, EveryKeyComesBackWithItsLastValueThroughEveryRebuild) {
  testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto table, DigestTable::Create(dir.path(), "a test table"));
  auto key = [](uint64_t i) { return audit::RequestLifecycle::IdDigest(absl::StrCat("id-", i)); };
  constexpr uint64_t kKeys = 60'000;
  std::vector<uint64_t> want(kKeys);
  int growths = 0;
  for (uint64_t i = 0, pages = table->pages(); i < kKeys; ++i) {
    table->Put(key(i), want[i] = i * 3 + 1);
    if (i % 97 == 0) table->Put(key(i / 2), want[i / 2] = 1'000'000 + i);  // a new value for an old key
    ASSERT_LE(table->held(), DigestTable::kMaxPending);
    if (table->pages() != pages) ++growths, pages = table->pages();
  }
  EXPECT_GE(growths, 4);
  ASSERT_OK(table->Flush());
  EXPECT_EQ(table->held(), 0u);
  EXPECT_EQ(table->stored(), kKeys);
  EXPECT_LE(kKeys, table->pages() * DigestTable::kSlotsPerPage / 2) << "at most half full";
  for (uint64_t i = 0; i < kKeys; ++i) {
    ASSERT_OK_AND_ASSIGN(const std::optional<uint64_t> v, table->Get(key(i)));
    ASSERT_EQ(v, std::optional<uint64_t>(want[i])) << i;
  }
  EXPECT_EQ(table->page_reads(), kKeys) << "a key that is there is read from its page";
  // A key never put is absent, and its filter answers so without reading the file for all but
  // about 0.5% of them (the bound allows for chance).
  constexpr uint64_t kAbsent = 20'000;
  for (uint64_t i = kKeys; i < kKeys + kAbsent; ++i) {
    ASSERT_OK_AND_ASSIGN(const std::optional<uint64_t> v, table->Get(key(i)));
    ASSERT_FALSE(v.has_value()) << i;
  }
  EXPECT_LE(table->page_reads() - kKeys, kAbsent / 100) << "absent keys that read a page";
  EXPECT_LE(table->filter_bytes() * 8,
            (table->pages() * DigestTable::kSlotsPerPage / 2 + DigestTable::kMaxPending) *
                    DigestTable::kFilterBitsPerKey + 256)
      << "the filter is sized by the file's room, not by the keys looked up";
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

// A write that fails (a file-size limit here, as a full disk would) loses nothing: the keys
// stay held, reads see them, and they reach the file once a write succeeds again. A page that
// is not one the table wrote is reported, never read as an answer.
TEST(DigestTable, KeysSurviveAFailedWriteAndAForeignPageIsDataLoss) {
  testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto table, DigestTable::Create(dir.path(), "a test table"));
  auto key = [](uint64_t i) { return audit::RequestLifecycle::IdDigest(absl::StrCat("k", i)); };
  uint64_t n = 0;
  for (; n < 3 * DigestTable::kMaxPending; ++n) table->Put(key(n), n);
  ASSERT_OK(table->Flush());
  const uint64_t pages = table->pages();

  struct sigaction ignore = {}, old_action = {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  rlimit old_limit = {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const rlimit limit = {static_cast<rlim_t>(pages * DigestTable::kPageBytes), old_limit.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  // Enough keys that the table must grow into a new file, which the limit stops.
  for (; n < 12 * DigestTable::kMaxPending; ++n) table->Put(key(n), n);
  const absl::Status failed = table->Flush();
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable) << failed;
  EXPECT_THAT(std::string(failed.message()), HasSubstr("a test table"));
  EXPECT_EQ(table->pages(), pages);
  EXPECT_GT(table->held(), DigestTable::kMaxPending);
  for (uint64_t i = 0; i < n; i += 13) ASSERT_EQ(table->Get(key(i)).value(), std::optional<uint64_t>(i)) << i;
  table->Put(key(n), n);  // the write is tried again, and now succeeds
  ++n;
  ASSERT_OK(table->Flush());
  EXPECT_GT(table->pages(), pages);
  EXPECT_EQ(table->stored(), n);
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(table->Get(key(i)).value(), std::optional<uint64_t>(i)) << i;

  // A file that cannot be read is an error of its own kind, never "absent", for a key that may
  // be there; a key that the filter rules out needs no read.
  ReopenScratchFiles(dir.path(), O_WRONLY);
  const absl::Status unread = table->Get(key(0)).status();
  EXPECT_EQ(unread.code(), absl::StatusCode::kUnavailable) << unread;
  EXPECT_THAT(std::string(unread.message()), HasSubstr("a test table"));
  uint64_t absent_answered = 0;
  for (uint64_t i = n; i < n + 1000; ++i) {
    const absl::StatusOr<std::optional<uint64_t>> v = table->Get(key(i));
    if (v.ok()) {
      EXPECT_FALSE(v->has_value()) << i;
      ++absent_answered;
    }
  }
  EXPECT_GE(absent_answered, 980u);
  ReopenScratchFiles(dir.path(), O_RDWR);

  const int fd = ScratchDescriptor(dir.path());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "XXXX", 4, 0), 4);  // page 0's header
  uint64_t in_page_0 = 0;
  absl::Status s;
  for (uint64_t i = 0; i < n && s.ok(); ++i, ++in_page_0) s = table->Get(key(i)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s << " after " << in_page_0 << " reads";
  EXPECT_THAT(std::string(s.message()), HasSubstr("a test table: page 0 is not one lethed wrote"));
}

// Ended requests leave memory for the store's scratch files: what a list or a get shows of
// them is what it showed while they were held whole, in submission order across pages that mix
// open and ended requests; their ids and their commands' ids stay spent; and a scratch file
// that cannot be written or read loses nothing and answers nothing false.
TEST(RequestStore, EndedRequestsLiveInScratchFilesAndStaySpent) {
  testing::TempDir dir;
  RequestStore store;
  store.SetScratchDir(dir.path());
  std::map<uint64_t, std::string> log;
  uint64_t seq = 1;
  auto apply = [&](const v1::LedgerEntry& e) {
    log[seq] = e.SerializeAsString();
    return store.Apply(seq++, e);
  };
  store.SetEntryReader([&](uint64_t at) -> absl::StatusOr<std::string> {
    if (!log.count(at)) return absl::NotFoundError(absl::StrCat("entry ", at));
    return log.at(at);
  });
  ASSERT_OK(apply(Activation()));
  auto agent = crypto::Ed25519PrivateKey::Generate();
  ASSERT_OK(agent);
  const policies::Policy policy = Sample();
  for (const auto& d : policy.domains()) {
    v1::LedgerEntry e;
    e.mutable_agent_enrolled()->set_domain(d.name);
    e.mutable_agent_enrolled()->set_public_key(agent->public_key().raw());
    e.mutable_agent_enrolled()->set_key_id(agent->public_key().KeyId());
    ASSERT_OK(apply(e));
  }
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  // Every fifth request stays open; the others get a command and a receipt from each target.
  constexpr int kRequests = 60;
  std::vector<v1::CommandIssued> spent;
  for (int i = 0; i < kRequests; ++i) {
    const std::string id = absl::StrCat("req-", i);
    ASSERT_OK(apply(Submitted(id, {{"user_id", id}, {"email", id + "@example.org"}, {"device_id", id}}, t0)));
    if (i % 5 == 0) continue;
    ASSERT_OK_AND_ASSIGN(const RequestRecord open, store.Get(id));
    for (const auto& d : open.domains) {
      v1::LedgerEntry issued;
      auto* c = issued.mutable_command_issued();
      c->set_command_id(absl::StrCat(id, "/", d.domain));
      c->set_request_id(id);
      c->set_domain(d.domain);
      c->set_command_digest(crypto::Sha256(c->command_id()));
      c->set_domain_policy_hash(policy.DomainHash(d.domain));
      ASSERT_OK(apply(issued));
      spent.push_back(*c);
      v1::Receipt receipt;
      receipt.set_command_id(c->command_id());
      receipt.set_request_id(id);
      receipt.set_domain(d.domain);
      receipt.set_command_digest(c->command_digest());
      receipt.set_outcome(i % 7 == 0 ? v1::Receipt::FAILED : v1::Receipt::COMPLETED);
      receipt.set_verified_zero_remaining(receipt.outcome() == v1::Receipt::COMPLETED);
      v1::LedgerEntry recorded;
      auto* rr = recorded.mutable_receipt_recorded();
      *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, receipt.SerializeAsString(), *agent);
      rr->set_command_id(c->command_id());
      rr->set_request_id(id);
      rr->set_domain(d.domain);
      ASSERT_OK(apply(recorded));
    }
    v1::LedgerEntry completed;
    completed.mutable_request_completed()->set_request_id(id);
    completed.mutable_request_completed()->set_outcome(i % 7 == 0 ? v1::RequestCompleted::FAILED
                                                                  : v1::RequestCompleted::COMPLETED);
    ASSERT_OK(apply(completed));
  }
  auto views = [&](size_t page_size) {
    std::vector<std::string> out;
    uint64_t after = 0;
    for (bool more = true; more;) {
      auto page = store.ListPage(after, page_size, std::nullopt, &more);
      EXPECT_OK(page.status());
      if (!page.ok() || page->empty()) break;
      for (const auto& r : *page)
        if (out.size() < kRequests) out.push_back(ToView(r, store, t0).DebugString());
      after = page->back().submitted_entry;
      more = more && out.size() < kRequests;
    }
    return out;
  };
  const std::vector<std::string> whole = views(1000);
  ASSERT_EQ(whole.size(), static_cast<size_t>(kRequests));
  // Enough requests after them that their places in the list are written out to the file.
  const uint64_t ended_before = seq;
  for (size_t i = 0; i < ScratchFile::kFlushBytes / 24 + 1; ++i)
    ASSERT_OK(apply(Submitted(absl::StrCat("later-", i), {{"user_id", "later"}}, t0)));
  // A file that cannot be written keeps the ended requests whole, and shown as before, until
  // it can.
  ReopenScratchFiles(dir.path(), O_RDONLY);
  store.MarkDurable(ended_before);
  EXPECT_EQ(store.held().compacted, 0u);
  EXPECT_EQ(views(1000), whole);
  ReopenScratchFiles(dir.path(), O_RDWR);
  store.MarkDurable(seq);
  const size_t later = ScratchFile::kFlushBytes / 24 + 1;
  EXPECT_EQ(store.held().whole, kRequests / 5 + later);
  EXPECT_EQ(store.held().compacted, static_cast<size_t>(kRequests - kRequests / 5));
  EXPECT_EQ(views(7), whole);
  EXPECT_EQ(views(1), whole);
  // A file that cannot be read is an error of its own kind, never an answer: not "no such
  // request", nor a contradiction in the ledger.
  ReopenScratchFiles(dir.path(), O_WRONLY);
  const absl::Status unread = store.Get("req-1").status();
  EXPECT_EQ(unread.code(), absl::StatusCode::kUnavailable) << unread;
  EXPECT_THAT(std::string(unread.message()), HasSubstr("lethed's request list"));
  // (The ended-id tables answer the same way: DigestTable.KeysSurviveAFailedWriteAndAForeignPageIsDataLoss.)
  ReopenScratchFiles(dir.path(), O_RDWR);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_OK_AND_ASSIGN(const RequestRecord r, store.Get(absl::StrCat("req-", i)));
    EXPECT_EQ(ToView(r, store, t0).DebugString(), whole[i]) << i;
  }
  EXPECT_EQ(store.Get("req-x").status().code(), absl::StatusCode::kNotFound);

  // Spent: an ended request's id submitted again, its command ids issued again, and a receipt
  // for one of its commands.
  const auto again = apply(Submitted("req-1", {{"user_id", "req-1"}}, t0));
  EXPECT_EQ(again.code(), absl::StatusCode::kDataLoss) << again;
  EXPECT_THAT(std::string(again.message()), HasSubstr("request id submitted twice"));
  v1::LedgerEntry reissued;
  *reissued.mutable_command_issued() = spent.front();
  reissued.mutable_command_issued()->set_request_id("req-0");  // open, and the domain is its target
  const auto twice = apply(reissued);
  EXPECT_EQ(twice.code(), absl::StatusCode::kDataLoss) << twice;
  EXPECT_THAT(std::string(twice.message()), HasSubstr("command id issued twice"));
  v1::ReceiptRecorded late;
  late.set_command_id(spent.back().command_id());
  late.set_request_id(spent.back().request_id());
  late.set_domain(spent.back().domain());
  EXPECT_EQ(store.CheckReceipt(late, false, nullptr).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "scratch files are never seen";
}

}  // namespace
}  // namespace lethe::controlplane
