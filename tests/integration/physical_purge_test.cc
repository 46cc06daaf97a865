// Proof of physical purge on a real PostgreSQL (agents/vacuum_watch.h): a purge leaves the
// subject's bytes in the table's heap file; the watch's PHYSICALLY_PURGED receipt comes only
// after a vacuum that could remove them (after the commit, after every snapshot that could
// still see them, and after a vacuum running at the baseline), and for `full_after_purge`
// the bytes are then gone from the table's files. Also: the rate limit of the agent's own
// VACUUMs, that the backlog a vacuum releases is signed a bounded number at a time, and that
// what is pending or unsent survives a restart.
#include "agents/vacuum_watch.h"

#include <fstream>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "agents/postgres_purger.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/support/pg_cluster.h"

namespace lethe::agents {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::PgCluster;

constexpr char kPolicy[] = R"yaml(
version: 1
name: physical-test
identities: [email]
domains:
  - name: growth
    postgres:
      tables:
        - table: growth.contacts
          key: email
          identity: email
          action: delete
          vacuum: full_after_purge
        - table: growth.visits
          key: email
          identity: email
          action: delete
        - table: growth.profiles
          key: email
          identity: email
          action: anonymize
          set:
            email: null
          vacuum: after_purge
)yaml";

// Every table holds a row of each subject, between other people's rows.
constexpr char kData[] = R"sql(
CREATE SCHEMA growth;
CREATE TABLE growth.contacts (id serial PRIMARY KEY, email text, note text);
CREATE TABLE growth.visits (id serial PRIMARY KEY, email text, page text);
CREATE TABLE growth.profiles (id serial PRIMARY KEY, email text, bio text);
INSERT INTO growth.contacts (email, note) SELECT 'someone' || g || '@example.org', 'n' FROM generate_series(1, 50) g;
INSERT INTO growth.contacts (email, note) VALUES ('alice.physical@example.com', 'alice-contact-note'),
                                                 ('bob.physical@example.com', 'bob-contact-note');
INSERT INTO growth.contacts (email, note) SELECT 'other' || g || '@example.org', 'n' FROM generate_series(1, 50) g;
INSERT INTO growth.visits (email, page) SELECT 'someone' || g || '@example.org', '/' FROM generate_series(1, 20) g;
INSERT INTO growth.visits (email, page) VALUES ('alice.physical@example.com', '/alice'),
                                               ('bob.physical@example.com', '/bob');
INSERT INTO growth.profiles (email, bio) VALUES ('alice.physical@example.com', 'alice-bio'),
                                                ('bob.physical@example.com', 'bob-bio'),
                                                ('carol@example.org', 'carol-bio');
)sql";

class PhysicalPurgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = PgCluster::Start();
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
    ASSERT_TRUE(cluster_->CreateDatabase("growth").ok());
    ASSERT_TRUE(cluster_->Exec("growth", kData).ok());
    auto p = policies::Policy::Parse(kPolicy, "physical-test.yaml");
    ASSERT_TRUE(p.ok()) << p.status();
    policy_ = std::make_unique<policies::Policy>(std::move(*p));
    auto k = crypto::Ed25519PrivateKey::Generate();
    ASSERT_TRUE(k.ok());
    key_ = std::make_unique<crypto::Ed25519PrivateKey>(std::move(*k));
    purger_ = std::make_unique<PostgresPurger>(Dsn(), *Domain(), *key_, clock_);
    ASSERT_TRUE(purger_->EnsureSchema().ok());
  }

  std::string Dsn() const { return cluster_->Dsn("growth"); }
  const policies::Domain* Domain() const { return policy_->FindDomain("growth"); }

  std::unique_ptr<VacuumWatch> Watch(absl::Duration min_interval = absl::ZeroDuration()) {
    VacuumWatchOptions o;
    o.min_interval = min_interval;
    return std::make_unique<VacuumWatch>(Dsn(), *Domain(), *key_, clock_, o);
  }

  // Purges `email` as the command `id` would, and returns its COMPLETED receipt.
  v1::Receipt Purge(const std::string& email, const std::string& id) {
    VerifiedCommand vc;
    vc.command.set_command_id(id);
    vc.command.set_request_id("r" + id);
    vc.command.set_domain("growth");
    vc.digest = crypto::Sha256(id);
    vc.identities.Add("email", SecretBytes(email));
    auto r = purger_->Purge(vc);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return v1::Receipt();
    EXPECT_EQ(r->receipt.outcome(), v1::Receipt::COMPLETED) << r->receipt.error();
    return r->receipt;
  }

  // The bytes of `relation`'s main fork, after a checkpoint wrote every page out.
  std::string RelationFile(const std::string& relation, std::string* path_out = nullptr) {
    EXPECT_TRUE(cluster_->Exec("growth", "CHECKPOINT").ok());
    auto rel = cluster_->Query("growth", "SELECT pg_relation_filepath('" + relation + "')");
    EXPECT_TRUE(rel.ok()) << rel.status();
    const std::string path = cluster_->data_dir() + "/" + *rel;
    if (path_out != nullptr) *path_out = path;
    return ReadAll(path);
  }
  static std::string ReadAll(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  // The receipts the watch has stored and not sent, verified under the agent's key.
  std::vector<v1::Receipt> Unsent(VacuumWatch& w) {
    auto ready = w.Unsent();
    EXPECT_TRUE(ready.ok()) << ready.status();
    std::vector<v1::Receipt> out;
    for (const auto& r : *ready) {
      v1::SignedEnvelope env;
      EXPECT_TRUE(env.ParseFromString(r.wire));
      auto body = proto::VerifyEnvelope(env, proto::kReceiptType, key_->public_key());
      EXPECT_TRUE(body.ok()) << body.status();
      v1::Receipt receipt;
      EXPECT_TRUE(receipt.ParseFromString(*body));
      EXPECT_EQ(receipt.command_id(), r.command_id);
      out.push_back(receipt);
    }
    return out;
  }

  ManualClock clock_;
  std::unique_ptr<PgCluster> cluster_;
  std::unique_ptr<policies::Policy> policy_;
  std::unique_ptr<crypto::Ed25519PrivateKey> key_;
  std::unique_ptr<PostgresPurger> purger_;
};

TEST_F(PhysicalPurgeTest, TheHeapFileHoldsTheDeletedRowUntilTheVacuumFullAndNotAfter) {
  std::string before_path;
  ASSERT_THAT(RelationFile("growth.contacts", &before_path), HasSubstr("alice-contact-note"));
  auto watch = Watch();
  const v1::Receipt completed = Purge("alice.physical@example.com", "c1");
  // Logically erased: no query finds her. Physically present: the heap file still holds her row.
  EXPECT_EQ(*cluster_->Query("growth", "SELECT count(*) FROM growth.contacts WHERE note = 'alice-contact-note'"), "0");
  EXPECT_THAT(RelationFile("growth.contacts"), HasSubstr("alice-contact-note"));
  EXPECT_THAT(RelationFile("growth.contacts"), HasSubstr("alice.physical@example.com"));

  auto pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->vacuums_run, 2) << "VACUUM FULL of contacts and VACUUM of profiles";

  std::string after_path;
  const std::string after = RelationFile("growth.contacts", &after_path);
  EXPECT_NE(after_path, before_path) << "VACUUM FULL wrote the table into a new file";
  EXPECT_THAT(after, Not(HasSubstr("alice-contact-note")));
  EXPECT_THAT(after, Not(HasSubstr("alice.physical@example.com")));
  EXPECT_THAT(after, HasSubstr("bob-contact-note")) << "the file is the table's, with everyone else";
  EXPECT_THAT(ReadAll(before_path), Not(HasSubstr("alice-contact-note"))) << "the old file is gone or emptied";
  // Its primary key index was rebuilt too (it holds no email, but it is part of the table).
  EXPECT_THAT(RelationFile("growth.contacts_pkey"), Not(HasSubstr("alice")));

  // visits waits for a vacuum it can see (no vacuum key): the receipt waits with it.
  EXPECT_EQ(pass->pending, 1);
  EXPECT_TRUE(Unsent(*watch).empty());
  ASSERT_TRUE(cluster_->Exec("growth", "VACUUM growth.visits").ok());
  pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->receipts, 1);
  const std::vector<v1::Receipt> receipts = Unsent(*watch);
  ASSERT_EQ(receipts.size(), 1u);
  const v1::Receipt& r = receipts[0];
  EXPECT_EQ(r.outcome(), v1::Receipt::PHYSICALLY_PURGED);
  EXPECT_EQ(r.command_id(), "c1");
  EXPECT_EQ(r.command_digest(), completed.command_digest());
  ASSERT_EQ(r.tables_size(), 3);
  EXPECT_EQ(r.tables(0).table(), "growth.contacts");
  EXPECT_EQ(r.tables(0).vacuum(), "vacuum full");
  EXPECT_EQ(r.tables(1).table(), "growth.visits");
  EXPECT_EQ(r.tables(1).vacuum(), "observed");
  EXPECT_EQ(r.tables(2).table(), "growth.profiles");
  EXPECT_EQ(r.tables(2).action(), "anonymize");
  EXPECT_EQ(r.tables(2).vacuum(), "vacuum");
  for (const auto& t : r.tables()) EXPECT_GE(t.vacuumed_unix_ms(), completed.completed_at_unix_ms());
  EXPECT_GE(r.completed_at_unix_ms(), r.physically_gone_by_unix_ms());
}

TEST_F(PhysicalPurgeTest, AVacuumThatAnOlderSnapshotHeldBackDoesNotCount) {
  // A reader whose snapshot predates the purge: no vacuum may remove rows it can still see.
  pqxx::connection reader(Dsn());
  pqxx::work old(reader, "old");
  old.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
  EXPECT_EQ(old.exec("SELECT count(*) FROM growth.visits")[0][0].as<int>(), 22);
  auto watch = Watch();
  Purge("alice.physical@example.com", "c2");
  auto pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->baselined, 0) << "the old snapshot holds the horizon back";
  EXPECT_EQ(pass->vacuums_run, 0) << "an agent VACUUM now would keep the rows as recently dead";
  // A vacuum while the snapshot lives keeps the dead rows: it must not be taken for the one.
  ASSERT_TRUE(cluster_->Exec("growth", "VACUUM growth.visits").ok());
  pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->vacuumed, 0);
  EXPECT_EQ(pass->pending, 3);
  EXPECT_EQ(old.exec("SELECT count(*) FROM growth.visits")[0][0].as<int>(), 22) << "the reader still sees her";
  old.commit();
  // Now the baseline, and the agent's own vacuums of contacts and profiles; visits waits.
  pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->baselined, 3);
  EXPECT_EQ(pass->vacuums_run, 2);
  EXPECT_EQ(pass->pending, 1);
  ASSERT_TRUE(cluster_->Exec("growth", "VACUUM growth.visits").ok());
  pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->receipts, 1);
}

TEST_F(PhysicalPurgeTest, TheAgentsOwnVacuumIsRateLimitedPerTableAndCoversEveryPurgeBeforeIt) {
  auto watch = Watch(absl::Hours(1));
  Purge("alice.physical@example.com", "c3");
  auto pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->vacuums_run, 2);
  Purge("bob.physical@example.com", "c4");
  pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->vacuums_run, 0) << "within the hour after the last VACUUM of each table";
  // A plain VACUUM by someone else does not stand for the VACUUM FULL contacts asks for.
  ASSERT_TRUE(cluster_->Exec("growth", "VACUUM growth.contacts").ok());
  pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->vacuumed, 0);
  clock_.Advance(absl::Hours(1));
  pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->vacuums_run, 2);
  // visits waits for someone's vacuum; one covers both purges.
  ASSERT_TRUE(cluster_->Exec("growth", "VACUUM growth.visits").ok());
  pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->receipts, 2);
  EXPECT_EQ(Unsent(*watch).size(), 2u);
}

TEST_F(PhysicalPurgeTest, TheBacklogOneVacuumReleasesIsSignedABoundedNumberAtATime) {
  VacuumWatchOptions o;
  o.min_interval = absl::ZeroDuration();
  o.receipts_per_query = 2;
  VacuumWatch watch(Dsn(), *Domain(), *key_, clock_, o);
  for (int i = 1; i <= 5; ++i) Purge("someone" + std::to_string(i) + "@example.org", "b" + std::to_string(i));
  auto pass = watch.Pass();  // baselines; the VACUUM FULL of contacts; visits waits for a vacuum
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->receipts, 0);
  ASSERT_TRUE(cluster_->Exec("growth", "VACUUM growth.visits").ok());
  pass = watch.Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->receipts, 5) << "every command the vacuum released, in one pass";
  EXPECT_EQ(pass->receipt_queries, 3) << "2 + 2 + 1 commands";
  std::set<std::string> ids;
  for (const v1::Receipt& r : Unsent(watch)) {
    EXPECT_EQ(r.outcome(), v1::Receipt::PHYSICALLY_PURGED);
    EXPECT_EQ(r.tables_size(), 2) << r.command_id() << ": contacts and visits";
    ids.insert(r.command_id());
  }
  EXPECT_EQ(ids, (std::set<std::string>{"b1", "b2", "b3", "b4", "b5"}));
  pass = watch.Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->receipts, 0) << "each receipt is signed once";
}

TEST_F(PhysicalPurgeTest, WhatIsPendingOrUnsentSurvivesACrashAndIsSentOnce) {
  Purge("alice.physical@example.com", "c5");
  ASSERT_TRUE(cluster_->Exec("growth", "VACUUM growth.visits").ok());  // before the baseline: not the one
  {
    auto first = Watch();
    auto pass = first->Pass();
    ASSERT_TRUE(pass.ok()) << pass.status();
    EXPECT_EQ(pass->pending, 1);
  }
  // A crash: PostgreSQL starts again with its statistics reset, the counts below the baseline.
  ASSERT_TRUE(cluster_->Stop(/*immediate=*/true).ok());
  ASSERT_TRUE(cluster_->Restart().ok());
  auto second = Watch();
  auto pass = second->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->pending, 1) << "a new baseline after the reset";
  ASSERT_TRUE(cluster_->Exec("growth", "VACUUM growth.visits").ok());
  pass = second->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->receipts, 1);
  auto ready = second->Unsent();
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->size(), 1u);
  auto third = Watch();
  EXPECT_EQ(Unsent(*third).size(), 1u) << "stored, so a restart sends it";
  ASSERT_TRUE(third->MarkSent({(*ready)[0].command_id}).ok());
  EXPECT_TRUE(Unsent(*third).empty());
  EXPECT_TRUE(Unsent(*second).empty());
}

// An agent whose role owns no table and cannot see other sessions: it proves nothing until
// granted pg_read_all_stats; then it runs no VACUUM it would have to skip (PostgreSQL skips a
// table its caller does not own, with a mere warning), takes a vacuum it sees for
// after_purge, and leaves full_after_purge pending.
TEST_F(PhysicalPurgeTest, ARoleThatOwnsNoTableVacuumsNothingAndProvesOnlyWhatItSees) {
  ASSERT_TRUE(cluster_->Exec("growth",
                             "CREATE ROLE agent LOGIN; GRANT USAGE ON SCHEMA growth, lethe_agent TO agent; "
                             "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA growth, lethe_agent TO agent")
                  .ok());
  Purge("alice.physical@example.com", "c7");
  std::string dsn = Dsn();
  dsn.replace(dsn.find("user=postgres"), 13, "user=agent");
  VacuumWatchOptions o;
  o.min_interval = absl::ZeroDuration();
  VacuumWatch watch(dsn, *Domain(), *key_, clock_, o);
  auto pass = watch.Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->baselined, 0) << "without pg_read_all_stats no horizon can be proven";
  EXPECT_EQ(pass->pending, 3);
  ASSERT_TRUE(cluster_->Exec("growth", "GRANT pg_read_all_stats TO agent").ok());
  pass = watch.Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->baselined, 3);
  EXPECT_EQ(pass->vacuums_run, 0) << "it owns neither contacts nor profiles";
  EXPECT_EQ(pass->pending, 3);
  // The owner vacuums every table: visits and profiles are proven, contacts waits for a FULL.
  for (const char* table : {"growth.visits", "growth.profiles", "growth.contacts"})
    ASSERT_TRUE(cluster_->Exec("growth", std::string("VACUUM ") + table).ok());
  pass = watch.Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->vacuumed, 2);
  EXPECT_EQ(pass->pending, 1);
  EXPECT_EQ(pass->receipts, 0);
}

TEST_F(PhysicalPurgeTest, APurgeThatChangedNoRowAwaitsNoVacuum) {
  Purge("nobody@example.com", "c6");
  auto watch = Watch();
  auto pass = watch->Pass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->pending, 0);
  EXPECT_EQ(pass->vacuums_run, 0);
  EXPECT_TRUE(Unsent(*watch).empty());
}

}  // namespace
}  // namespace lethe::agents
