// Purge actions beyond delete, in one domain and one transaction: anonymize, retain, and the
// foreign-key order of deletes.
#include <string>
#include <vector>

#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kLethectl = LETHE_BINARY_DIR "/cli/lethectl";
constexpr absl::Duration kWait = absl::Seconds(90);

std::string Q(Mesh& m, const std::string& db, const std::string& sql) {
  auto r = m.pg().Query(db, sql);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "";
}

const v1::TableProgress* FindTable(const v1::RequestView& v, const std::string& table) {
  for (const auto& d : v.domains())
    for (const auto& t : d.tables())
      if (t.table() == table) return &t;
  return nullptr;
}

TEST(Actions, MixedDomainDeletesAnonymizesAndRetainsInOneCommand) {
  Mesh::Options o;
  o.domains = {"crm"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());

  auto done = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::COMPLETED);
  ASSERT_EQ(done->domains_size(), 1);
  EXPECT_TRUE(done->domains(0).verified_zero_remaining());

  // The receipt shows all three actions.
  const auto* notes = FindTable(*done, "crm.notes");
  const auto* people = FindTable(*done, "crm.people");
  const auto* events = FindTable(*done, "crm.events");
  const auto* invoices = FindTable(*done, "crm.invoices");
  ASSERT_TRUE(notes && people && events && invoices);
  EXPECT_EQ(notes->action(), "delete");
  EXPECT_EQ(notes->rows_affected(), 2);
  EXPECT_EQ(people->rows_affected(), 1);
  EXPECT_EQ(events->action(), "anonymize");
  EXPECT_EQ(events->rows_affected(), 3);
  EXPECT_EQ(events->rows_remaining(), 0);
  EXPECT_THAT(events->columns(), ::testing::ElementsAre("user_id", "ip", "country"));
  EXPECT_EQ(invoices->action(), "retain");
  EXPECT_EQ(invoices->rows_withheld(), 2);
  EXPECT_EQ(invoices->basis(), "Tax records (Art. 17(3)(b))");
  EXPECT_EQ(invoices->retention_period_seconds(), 7 * 365 * 86400);

  // The database agrees: deleted, anonymized in place, retained untouched; Bob unchanged.
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.people WHERE email = '" + kAlice.email + "'"), "0");
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.notes WHERE person_email = '" + kAlice.email + "'"), "0");
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.events WHERE user_id = '" + kAlice.user_id + "'"), "0");
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.events WHERE ip IS NULL AND country = 'redacted' "
                           "AND user_id ~ '^[0-9a-f]{64}$'"), "3");
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.invoices WHERE email = '" + kAlice.email + "'"), "2");
  EXPECT_EQ(*mesh.Rows("crm", kBob), 1 + 2 + 3 + 2);
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.events WHERE user_id = '" + kBob.user_id +
                           "' AND ip IS NOT NULL AND country <> 'redacted'"), "3");

  // A tombstone for the person's key on the compacted topic, read back by an ordinary consumer.
  ASSERT_EQ(done->domains(0).tombstones_size(), 1);
  const auto& tomb = done->domains(0).tombstones(0);
  EXPECT_EQ(tomb.topic(), "mesh.crm.people");
  EXPECT_FALSE(tomb.config_read());  // the mock cluster does not answer DescribeConfigs
  auto records = ReadTopic(mesh.kafka_bootstrap(), "mesh.crm.people");
  ASSERT_TRUE(records.ok()) << records.status();
  bool found = false;
  for (const auto& r : *records) {
    if (r.partition == tomb.partition() && r.offset == tomb.offset()) {
      found = true;
      EXPECT_EQ(r.key, "person:" + kAlice.email);
      EXPECT_FALSE(r.value.has_value()) << "a tombstone has a null value, not an empty one";
    }
  }
  EXPECT_TRUE(found) << "no record at the receipt's partition and offset";

  // The CLI says it in words, and the ledger verifies with the mixed receipt in it.
  auto get = RunLethectl(mesh, {"request", "get", done->request_id()});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("crm.events anonymized 3 (user_id, ip, country)"));
  EXPECT_THAT(get.output, HasSubstr("crm.invoices withheld 2 under \"Tax records (Art. 17(3)(b))\" for 7y"));
  EXPECT_THAT(get.output, HasSubstr("tombstone mesh.crm.people["));
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
}

TEST(Actions, KeyedHashIsStableWithinTheDomain) {
  Mesh::Options o;
  o.domains = {"crm"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  std::string first;
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(mesh.pg().Exec("crm", "INSERT INTO crm.events (user_id, kind) VALUES ('" + kAlice.user_id + "', 'r" +
                                          std::to_string(round) + "')").ok());
    auto done = mesh.EraseAndWait(kAlice, kWait);
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_EQ(done->state(), v1::COMPLETED);
    std::string h = Q(mesh, "crm", "SELECT user_id FROM crm.events WHERE kind = 'r" + std::to_string(round) + "'");
    ASSERT_EQ(h.size(), 64u);
    EXPECT_EQ(h.find(kAlice.user_id), std::string::npos);
    if (round == 0) first = h;
    else EXPECT_EQ(h, first);  // the same person maps to the same pseudonym in this domain
  }
}

TEST(Actions, ParentBeforeChildFailsWholeCommandAndDeletesNothing) {
  Mesh::Options o;
  o.domains = {"crm_badorder"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  const int64_t before = *mesh.Rows("crm_badorder", kAlice);
  auto done = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::FAILED);
  ASSERT_EQ(done->domains_size(), 1);
  EXPECT_EQ(done->domains(0).state(), v1::DOMAIN_FAILED);
  EXPECT_THAT(done->domains(0).error(), HasSubstr("foreign key"));
  EXPECT_EQ(*mesh.Rows("crm_badorder", kAlice), before);  // rolled back: nothing deleted
}

// The zero-remaining check is a query of its own (agents/recheck.h), not the purge's
// predicate run again: here a history trigger puts the subject's old rows back as the purge
// rewrites them, so the purge "succeeds" statement by statement, and only the re-check sees
// that the person is still there. The whole purge is rolled back and answered FAILED.
TEST(Actions, ZeroRemainingReCheckCatchesRowsPutBackAndRollsThePurgeBack) {
  Mesh::Options o;
  o.domains = {"crm"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  ASSERT_TRUE(mesh.pg().Exec("crm",
      "CREATE FUNCTION crm.keep_history() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "  INSERT INTO crm.events (user_id, ip, country, kind) "
      "  VALUES (OLD.user_id, OLD.ip, OLD.country, 'history'); RETURN NULL; END $$;"
      "CREATE TRIGGER keep_history AFTER UPDATE ON crm.events FOR EACH ROW "
      "  WHEN (OLD.kind <> 'history') EXECUTE FUNCTION crm.keep_history();").ok());
  const int64_t before = *mesh.Rows("crm", kAlice);

  auto done = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::FAILED);
  ASSERT_EQ(done->domains_size(), 1);
  EXPECT_EQ(done->domains(0).state(), v1::DOMAIN_FAILED);
  EXPECT_THAT(done->domains(0).error(), HasSubstr("remained"));
  EXPECT_FALSE(done->domains(0).verified_zero_remaining());
  // Rolled back as a whole: the deletes of the other tables too, and the trigger's copies.
  EXPECT_EQ(*mesh.Rows("crm", kAlice), before);
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.events WHERE kind = 'history'"), "0");
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
}

// A row keyed by the subject's identity in another spelling (case, surrounding spaces) is not
// the policy's exact match, so it stays; the receipt, `request get` and the certificate say
// so, instead of a bare "0 remaining".
TEST(Actions, NearMatchesAreLeftInPlaceAndReported) {
  Mesh::Options o;
  o.domains = {"crm"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.pg().Exec("crm", "INSERT INTO crm.people VALUES (' ALICE@Example.com', 'variant');"
                                       "INSERT INTO crm.events (user_id, kind) VALUES (' " + kAlice.user_id +
                                       " ', 'variant');").ok());

  auto done = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::COMPLETED);
  const auto* people = FindTable(*done, "crm.people");
  const auto* notes = FindTable(*done, "crm.notes");
  const auto* events = FindTable(*done, "crm.events");
  ASSERT_TRUE(people && notes && events);
  EXPECT_EQ(people->rows_affected(), 1);
  EXPECT_EQ(people->rows_remaining(), 0);
  EXPECT_EQ(people->rows_near_match(), 1);
  EXPECT_EQ(notes->rows_near_match(), 0);
  EXPECT_EQ(events->rows_near_match(), 1);
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.people WHERE name = 'variant'"), "1");

  auto get = RunLethectl(mesh, {"request", "get", done->request_id()});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("crm.people deleted 1 (WARNING: 1 near match(es) left in place"));
  auto cert = RunLethectl(mesh, {"request", "certificate", done->request_id(), "--out",
                                 mesh.work_dir() + "/near-cert.json", "--public-key", mesh.lethed_pub()});
  ASSERT_EQ(cert.exit_code, 0) << cert.output;
  EXPECT_THAT(cert.output, HasSubstr("crm.events anonymized 3 (user_id, ip, country) (WARNING: 1 near match(es)"));
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
}

TEST(Actions, KeyedHashIsWrittenInEachColumnsOwnType) {
  Mesh::Options o;
  o.domains = {"analytics"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  auto done = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::COMPLETED) << done->DebugString();
  EXPECT_EQ(*mesh.Rows("analytics", kAlice), 0);
  EXPECT_EQ(*mesh.Rows("analytics", kBob), 2);
  // Alice's two rows: the same user id hashes to the same non-negative bigint (stable within
  // the domain); the uuid, varchar(12), bytea and smallint columns hold hashes of their type.
  EXPECT_EQ(Q(mesh, "analytics",
              "SELECT count(DISTINCT user_id) || ' ' || bool_and(user_id >= 0) || ' ' || "
              "bool_and(length(short_code) = 12) || ' ' || bool_and(length(raw) = 32) || ' ' || "
              "bool_and(small >= 0) || ' ' || bool_and(device IS NOT NULL) || ' ' || "
              "count(DISTINCT device) FROM analytics.sessions WHERE ip IS NULL"),
            "1 true true true true true 2");
  EXPECT_EQ(Q(mesh, "analytics",
              "SELECT count(*) FROM analytics.sessions WHERE ip IS NULL AND (user_id::text = '" +
                  kAlice.user_id + "' OR short_code LIKE '%" + kAlice.user_id + "%')"),
            "0");
  // The hash is keyed with the domain's secret: each rewritten bytea is SHA-256 of the
  // secret (as hex text) followed by the old value as text (bytea's text form, \x and hex),
  // and not the plain SHA-256 of the old value, which anyone could recompute from a guess
  // (an 8-digit user id is 10^8 guesses).
  const std::string secret =
      Q(mesh, "analytics", "SELECT encode(value, 'hex') FROM lethe_agent.settings WHERE name = 'anonymization_key'");
  ASSERT_EQ(secret.size(), 64u);
  EXPECT_NE(secret, std::string(64, '0'));
  const std::string hashed =
      Q(mesh, "analytics", "SELECT string_agg(encode(raw, 'hex'), ' ' ORDER BY id) FROM analytics.sessions WHERE ip IS NULL");
  std::vector<std::string> keyed, plain;
  for (const std::string& old : {"r-" + kAlice.user_id, "q-" + kAlice.user_id}) {
    const std::string as_text = "\\x" + crypto::Hex(old);
    keyed.push_back(crypto::Hex(crypto::Sha256(secret + as_text)));
    plain.push_back(crypto::Hex(crypto::Sha256(as_text)));
    EXPECT_THAT(hashed, Not(HasSubstr(crypto::Hex(crypto::Sha256(old)))));
    EXPECT_THAT(hashed, Not(HasSubstr(plain.back())));
  }
  EXPECT_EQ(hashed, keyed[0] + " " + keyed[1]);
  // Bob's rows are untouched.
  EXPECT_EQ(Q(mesh, "analytics",
              "SELECT count(*) FROM analytics.sessions WHERE user_id = " + kBob.user_id +
                  " AND short_code = 'c-" + kBob.user_id + "' AND small = 7 AND ip = '10.0.0.1'"),
            "1");
}

TEST(Actions, KeyedHashIntoATypeThatCannotHoldOneFailsNamingTheColumnAndChangesNothing) {
  Mesh::Options o;
  o.domains = {"analytics_dates"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  auto done = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::FAILED);
  EXPECT_THAT(done->domains(0).error(),
              HasSubstr("column day of analytics.visits has type date, which cannot hold a keyed hash"));
  EXPECT_EQ(*mesh.Rows("analytics_dates", kAlice), 1);
  EXPECT_EQ(Q(mesh, "analytics_dates", "SELECT day FROM analytics.visits"), "2026-11-01");
}

}  // namespace
}  // namespace lethe::testing
