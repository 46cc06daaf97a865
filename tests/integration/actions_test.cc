// Purge actions beyond delete, in one domain and one transaction: anonymize, retain, and the
// foreign-key order of deletes.
#include <string>
#include <vector>

#include <prometheus/text_serializer.h>

#include "agents/postgres_purger.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "crypto/seal.h"
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
  EXPECT_GT(tomb.appended_unix_ms(), 0);
  EXPECT_EQ(tomb.physically_gone_by_unix_ms(), 0) << "without the topic's configuration there is no bound";
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
  EXPECT_THAT(get.output, HasSubstr("no bound on physical purge: the topic's configuration could not be read"));
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
}

TEST(Sinks, ASinkThatKeepsTheCopyMakesTheRequestDoneWithGaps) {
  Mesh::Options o;
  o.domains = {"crm_sinks"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());

  // lethectl request erase --wait ends with exit code 8 and says what keeps the copy.
  auto erase = RunLethectl(mesh, {"request", "erase", "--identity", "email=" + kAlice.email, "--identity",
                                  "user_id=" + kAlice.user_id, "--wait", "--timeout", "90s"});
  EXPECT_EQ(erase.exit_code, 8) << erase.output;
  EXPECT_THAT(erase.output, HasSubstr("DONE_WITH_GAPS"));
  grpc::ClientContext ctx;
  v1::ListRequestsResponse list;
  ASSERT_TRUE(mesh.Requests()->List(&ctx, v1::ListRequestsRequest(), &list).ok());
  ASSERT_EQ(list.requests_size(), 1);
  const v1::RequestView& done = list.requests(0);
  EXPECT_EQ(done.state(), v1::DONE_WITH_GAPS);
  ASSERT_EQ(done.domains_size(), 1);
  ASSERT_EQ(done.domains(0).sinks_size(), 3);
  EXPECT_EQ(done.domains(0).sinks(1).covered_by(), "table crm.people");
  EXPECT_EQ(*mesh.Rows("crm_sinks", kAlice), 0) << "everything Lethe reaches is erased";
  // The embedded broker answers no DescribeConfigs: the topic has no bound, a physical gap.
  EXPECT_EQ(done.physical_state(), v1::PHYSICAL_UNBOUNDED);
  EXPECT_EQ(done.domains(0).physical_state(), v1::PHYSICAL_UNBOUNDED);
  EXPECT_THAT(done.domains(0).physical_reason(), HasSubstr("topic mesh.crm.people (its settings could not be read"));

  auto get = RunLethectl(mesh, {"request", "get", done.request_id()});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("DONE_WITH_GAPS"));
  EXPECT_THAT(get.output, HasSubstr("sink people-search (elasticsearch) of topic mesh.crm.people: deletes on the tombstone"));
  EXPECT_THAT(get.output, HasSubstr("sink people-jdbc (jdbc) of topic mesh.crm.people: erased by the domain's table crm.people"));
  EXPECT_THAT(get.output, HasSubstr("sink people-archive (s3) of topic mesh.crm.people: GAP"));

  // The ledger says so, the auditor re-derives it from the signed receipt, and the certificate
  // carries it.
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("1 done with gaps"));
  const std::string cert = mesh.work_dir() + "/gaps.cert.json";
  auto made = RunLethectl(mesh, {"request", "certificate", done.request_id(), "--out", cert, "--public-key",
                                 mesh.lethed_pub()});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto checked = RunLethectl(mesh, {"request", "certificate", "--verify", cert, "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_THAT(checked.output, HasSubstr("DONE_WITH_GAPS"));
  EXPECT_THAT(checked.output, HasSubstr("people-archive (s3) of topic mesh.crm.people: GAP"));

  // And the metric an operator alerts on.
  const std::string text = prometheus::TextSerializer().Serialize(mesh.lethed().metrics().Collect());
  EXPECT_THAT(text, HasSubstr("lethe_requests{state=\"done_with_gaps\"} 1"));
}

// The second receipt: once the agent has vacuumed the tables its purge left Alice's dead rows
// in, its PHYSICALLY_PURGED receipt is recorded after the request completed; `request get`
// and the certificate show both times, and both verifiers accept the ledger, before and after
// lethed replays it.
TEST(Physical, TheSecondReceiptProvesTheVacuumAndTheCertificateCarriesBoth) {
  Mesh::Options o;
  o.domains = {"crm_vacuum"};
  o.agent_options = [](agents::AgentOptions& a) {
    a.vacuum.poll = absl::Milliseconds(50);
    a.vacuum.min_interval = absl::ZeroDuration();
  };
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  auto done = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::COMPLETED);
  auto physical = [&]() -> absl::StatusOr<v1::RequestView> {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      grpc::ClientContext ctx;
      v1::GetRequestRequest req;
      req.set_request_id(done->request_id());
      v1::RequestView v;
      if (grpc::Status s = mesh.Requests()->Get(&ctx, req, &v); !s.ok()) return absl::UnavailableError(s.error_message());
      if (v.physical_state() != v1::PHYSICAL_PENDING) return v;
      absl::SleepFor(absl::Milliseconds(50));  // the agent's watch polls PostgreSQL's statistics
    }
    return absl::DeadlineExceededError("no PHYSICALLY_PURGED receipt");
  };
  auto view = physical();
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->physical_state(), v1::PHYSICAL_BOUNDED);
  ASSERT_EQ(view->domains_size(), 1);
  const v1::DomainProgress& d = view->domains(0);
  EXPECT_EQ(d.physical_state(), v1::PHYSICAL_BOUNDED);
  EXPECT_GT(d.logically_erased_unix_ms(), 0);
  EXPECT_GE(d.physically_gone_by_unix_ms(), d.logically_erased_unix_ms());
  EXPECT_EQ(view->physically_gone_by_unix_ms(), d.physically_gone_by_unix_ms());
  ASSERT_EQ(d.vacuumed_tables_size(), 2);
  EXPECT_EQ(d.vacuumed_tables(0).table(), "crm.notes");
  EXPECT_EQ(d.vacuumed_tables(0).vacuum(), "vacuum");
  EXPECT_EQ(d.vacuumed_tables(1).table(), "crm.people");
  EXPECT_EQ(d.vacuumed_tables(1).vacuum(), "vacuum full");
  EXPECT_GT(d.physical_receipt_entry(), view->completed_entry()) << "recorded after the request completed";

  auto get = RunLethectl(mesh, {"request", "get", done->request_id()});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("logically erased "));
  EXPECT_THAT(get.output, HasSubstr(", physically gone by "));
  EXPECT_THAT(get.output, HasSubstr("PHYSICALLY_PURGED receipt entry " + std::to_string(d.physical_receipt_entry())));
  EXPECT_THAT(get.output, HasSubstr("crm.people: vacuum full at "));

  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  const std::string cert = mesh.work_dir() + "/physical.cert.json";
  auto made = RunLethectl(mesh, {"request", "certificate", done->request_id(), "--out", cert, "--public-key",
                                 mesh.lethed_pub()});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto checked = RunLethectl(mesh, {"request", "certificate", "--verify", cert, "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_THAT(checked.output, HasSubstr(", physically gone by "));
  EXPECT_THAT(checked.output, HasSubstr("PHYSICALLY_PURGED receipt entry"));
  EXPECT_THAT(checked.output, HasSubstr("physical purge: every erased byte gone by "));

  // lethed replays the receipt that came after the completion, and shows the same.
  mesh.StopLethed();
  ASSERT_TRUE(mesh.StartLethed().ok());
  auto again = physical();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->physical_state(), v1::PHYSICAL_BOUNDED);
  EXPECT_EQ(again->domains(0).physical_receipt_entry(), d.physical_receipt_entry());
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

// With email normalized [trim, lowercase] by the policy, a request for " ALICE@Example.com "
// is recorded, tokenized and sent as "alice@example.com", and the crm tables (whose match
// defaults to case_insensitive) lose the rows stored in any case; a row that differs by
// surrounding spaces is still only a near match.
TEST(Actions, NormalizedIdentitiesMatchMixedCaseRows) {
  Mesh::Options o;
  o.domains = {"crm", "growth"};
  o.identities = "[{name: email, normalize: [trim, lowercase]}, user_id]";
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  ASSERT_TRUE(mesh.pg().Exec("crm",
      "INSERT INTO crm.people VALUES ('Alice@Example.COM', 'cased'), (' alice@example.com', 'spaced');"
      "INSERT INTO crm.notes (person_email, note) VALUES ('Alice@Example.COM', 'cased');"
      "INSERT INTO crm.invoices (email, cents) VALUES ('ALICE@EXAMPLE.COM', 7);").ok());

  // Consent given under one spelling is the same person's under another.
  {
    v1::ChangeConsentRequest req;
    req.mutable_identity()->set_type("email");
    req.mutable_identity()->set_value("Alice@Example.COM");
    req.set_purpose("marketing");
    req.set_status(v1::GRANTED);
    req.set_source("signup-form");
    v1::ConsentChangeView resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(mesh.Consent()->Change(&ctx, req, &resp).ok());
    v1::ShowConsentRequest show;
    show.mutable_identity()->set_type("email");
    show.mutable_identity()->set_value(" alice@example.com\t");
    v1::ShowConsentResponse shown;
    grpc::ClientContext ctx2;
    ASSERT_TRUE(mesh.Consent()->Show(&ctx2, show, &shown).ok());
    EXPECT_EQ(shown.subject_token(), resp.change().subject_token());
    ASSERT_EQ(shown.current_size(), 1);
    EXPECT_EQ(shown.current(0).status(), v1::GRANTED);
  }

  v1::SubmitRequest req = Mesh::ErasureOf(kAlice);
  req.mutable_identities(0)->set_value(" ALICE@Example.com ");
  v1::SubmitResponse resp;
  {
    grpc::ClientContext ctx;
    grpc::Status s = mesh.Requests()->Submit(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  auto done = mesh.WaitDone(resp.request_id(), kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::COMPLETED) << done->DebugString();
  const auto* people = FindTable(*done, "crm.people");
  const auto* notes = FindTable(*done, "crm.notes");
  const auto* invoices = FindTable(*done, "crm.invoices");
  const auto* contacts = FindTable(*done, "growth.contacts");
  ASSERT_TRUE(people && notes && invoices && contacts);
  EXPECT_EQ(notes->rows_affected(), 3);
  EXPECT_EQ(people->rows_affected(), 2);
  EXPECT_EQ(people->rows_remaining(), 0);
  EXPECT_EQ(people->rows_near_match(), 1);  // ' alice@example.com'
  EXPECT_EQ(invoices->rows_withheld(), 3);
  EXPECT_EQ(contacts->rows_affected(), 1);
  EXPECT_EQ(Q(mesh, "crm", "SELECT string_agg(name, ',' ORDER BY name) FROM crm.people"), "someone,spaced");
  EXPECT_EQ(*mesh.Rows("crm", kBob), 1 + 2 + 3 + 2);
  // The tombstone's key is built from the normalized value.
  ASSERT_EQ(done->domains_size(), 2);
  for (const auto& d : done->domains())
    for (const auto& t : d.tombstones())
      if (t.topic() == "mesh.crm.people") {
        auto records = ReadTopic(mesh.kafka_bootstrap(), "mesh.crm.people");
        ASSERT_TRUE(records.ok()) << records.status();
        bool found = false;
        for (const auto& r : *records)
          if (r.partition == t.partition() && r.offset == t.offset())
            found = r.key == "person:alice@example.com";
        EXPECT_TRUE(found);
      }

  // The ledger verifies with the normalized request in it.
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;

  // The zero-remaining re-check compares as the table does: a trigger that puts the person
  // back in capitals is caught (not merely reported as a near match) and the purge rolled back.
  const Person carol{"44120093", "carol@example.com"};
  ASSERT_TRUE(mesh.Plant(carol).ok());
  ASSERT_TRUE(mesh.pg().Exec("crm",
      "CREATE FUNCTION crm.shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "  INSERT INTO crm.people VALUES (upper(OLD.email), 'ghost'); RETURN NULL; END $$;"
      "CREATE TRIGGER shout AFTER DELETE ON crm.people FOR EACH ROW "
      "  WHEN (OLD.name <> 'ghost') EXECUTE FUNCTION crm.shout();").ok());
  const int64_t carol_before = *mesh.Rows("crm", carol);
  auto ghost = mesh.EraseAndWait(carol, kWait);
  ASSERT_TRUE(ghost.ok()) << ghost.status();
  EXPECT_EQ(ghost->state(), v1::FAILED);
  for (const auto& d : ghost->domains()) {
    if (d.domain() == "crm") {
      EXPECT_THAT(d.error(), HasSubstr("remained"));
    }
  }
  EXPECT_EQ(*mesh.Rows("crm", carol), carol_before);
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM crm.people WHERE name = 'ghost'"), "0");

  // A value that is only white space is nothing once trimmed: refused, naming the field.
  v1::SubmitRequest blank = Mesh::ErasureOf(kBob);
  blank.mutable_identities(0)->set_value(" \t ");
  grpc::ClientContext ctx;
  grpc::Status s = mesh.Requests()->Submit(&ctx, blank, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("identities[0].value: empty once normalized"));
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

// An agent's batch: several verified commands in one PostgreSQL transaction
// (PostgresPurger::PurgeAll), each answered as if it ran alone.
class PurgeBatch : public ::testing::Test {
 protected:
  void SetUp() override {
    Mesh::Options o;
    o.domains = {"crm"};
    auto m = Mesh::Start(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = std::move(*m);
    mesh_->StopAgent("crm");  // this test is crm's only purger
    auto policy = policies::Policy::LoadFile(mesh_->policy_path());
    ASSERT_TRUE(policy.ok()) << policy.status();
    domain_ = *policy->FindDomain("crm");
    for (const Person& p : {kAlice, kBob, kCarol}) ASSERT_TRUE(mesh_->Plant(p).ok());
  }

  agents::PostgresPurger Purger() {
    return agents::PostgresPurger(mesh_->pg().Dsn("crm"), domain_, key_, clock_,
                                  [this](const std::string& topic, const std::string&) -> absl::StatusOr<v1::TombstoneResult> {
                                    if (tombstones_left_-- == 0) return absl::UnavailableError("broker down");
                                    v1::TombstoneResult t;
                                    t.set_topic(topic);
                                    t.set_offset(next_offset_++);
                                    return t;
                                  });
  }

  // A verified command for `p` (the purger reads only these fields); `with_user_id` false
  // leaves out the identity crm.events is keyed by.
  agents::VerifiedCommand Command(const std::string& id, const Person& p, bool with_user_id = true) {
    agents::VerifiedCommand vc;
    vc.command.set_command_id(id);
    vc.command.set_request_id("req-" + id);
    vc.command.set_domain("crm");
    vc.digest = crypto::Sha256(id);
    vc.identities.Add("email", SecretBytes(p.email));
    if (with_user_id) vc.identities.Add("user_id", SecretBytes(p.user_id));
    return vc;
  }

  std::string Processed(const std::string& sql_where) {
    auto r = mesh_->pg().Query("crm", "SELECT count(*) FROM lethe_agent.processed_commands WHERE " + sql_where);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : "";
  }

  static inline const Person kCarol{"44120093", "carol@example.com"};
  std::unique_ptr<Mesh> mesh_;
  policies::Domain domain_;
  crypto::Ed25519PrivateKey key_ = crypto::Ed25519PrivateKey::Generate().value();
  ManualClock clock_{absl::FromUnixSeconds(1798000000)};
  int tombstones_left_ = 1000;
  int64_t next_offset_ = 0;
};

// Two people erased, a redelivery of the first command inside the same batch, and a command
// that cannot be carried out (no user_id for crm.events): the first two COMPLETED with
// nothing of their subjects left, the redelivery answered with the very receipt stored, the
// last FAILED with nothing of its subject changed, each receipt signed and stored once.
TEST_F(PurgeBatch, EachCommandIsAnsweredAsIfItRanAloneAndAFailingOneChangesNothing) {
  agents::PostgresPurger purger = Purger();
  const agents::VerifiedCommand a = Command("cmd-a", kAlice), b = Command("cmd-b", kBob),
                                c = Command("cmd-c", kCarol, /*with_user_id=*/false);
  const int64_t carol_before = *mesh_->Rows("crm", kCarol);
  auto results = purger.PurgeAll({&a, &b, &a, &c});
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(results[0]->receipt.outcome(), v1::Receipt::COMPLETED);
  EXPECT_TRUE(results[0]->receipt.verified_zero_remaining());
  EXPECT_FALSE(results[0]->replayed);
  EXPECT_EQ(results[1]->receipt.outcome(), v1::Receipt::COMPLETED);
  EXPECT_EQ(results[1]->receipt.command_id(), "cmd-b");
  EXPECT_TRUE(results[2]->replayed);
  EXPECT_EQ(results[2]->receipt_wire, results[0]->receipt_wire);
  EXPECT_EQ(results[3]->receipt.outcome(), v1::Receipt::FAILED);
  EXPECT_THAT(results[3]->receipt.error(), HasSubstr("no user_id"));
  for (int i : {0, 1, 3}) {
    v1::SignedEnvelope env;
    ASSERT_TRUE(env.ParseFromString(results[i]->receipt_wire));
    auto body = proto::VerifyEnvelope(env, proto::kReceiptType, key_.public_key());
    ASSERT_TRUE(body.ok()) << body.status();
    v1::Receipt signed_receipt;
    ASSERT_TRUE(signed_receipt.ParseFromString(*body));
    EXPECT_EQ(signed_receipt.command_id(), results[i]->receipt.command_id());
    EXPECT_EQ(signed_receipt.request_id(), "req-" + results[i]->receipt.command_id());
  }
  // Only the retained invoices are left of Alice and Bob; Carol is untouched.
  EXPECT_EQ(*mesh_->Rows("crm", kAlice), 2);
  EXPECT_EQ(*mesh_->Rows("crm", kBob), 2);
  EXPECT_EQ(*mesh_->Rows("crm", kCarol), carol_before);
  EXPECT_EQ(Processed("outcome = 'COMPLETED' AND command_id IN ('cmd-a', 'cmd-b')"), "2");
  EXPECT_EQ(Processed("outcome = 'FAILED' AND command_id = 'cmd-c'"), "1");
  EXPECT_EQ(Processed("true"), "3");
  // Redelivered in a later batch, every command answers with its stored receipt.
  auto again = purger.PurgeAll({&c, &b});
  ASSERT_EQ(again.size(), 2u);
  ASSERT_TRUE(again[0].ok() && again[1].ok());
  EXPECT_TRUE(again[0]->replayed && again[1]->replayed);
  EXPECT_EQ(again[0]->receipt_wire, results[3]->receipt_wire);
  EXPECT_EQ(again[1]->receipt_wire, results[1]->receipt_wire);
}

// A failure that is not a command's own (here the broker refuses the second command's
// tombstone) rolls the whole batch back: the first command's purge is not kept, nothing is
// recorded as processed, and the error comes back for a retry, which then completes both.
TEST_F(PurgeBatch, ATransientFailureKeepsNothingOfTheBatch) {
  agents::PostgresPurger purger = Purger();
  const agents::VerifiedCommand a = Command("cmd-a", kAlice), b = Command("cmd-b", kBob);
  const int64_t alice_before = *mesh_->Rows("crm", kAlice);
  tombstones_left_ = 1;  // crm has one topic: Alice's tombstone goes out, Bob's does not
  auto results = purger.PurgeAll({&a, &b});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(*mesh_->Rows("crm", kAlice), alice_before);
  EXPECT_EQ(Processed("true"), "0");

  tombstones_left_ = 1000;
  auto retried = purger.PurgeAll({&a, &b});
  ASSERT_EQ(retried.size(), 2u);
  for (const auto& r : retried) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->receipt.outcome(), v1::Receipt::COMPLETED);
    EXPECT_EQ(r->receipt.tombstones_size(), 1);
  }
  EXPECT_EQ(*mesh_->Rows("crm", kAlice), 2);
  EXPECT_EQ(Processed("outcome = 'COMPLETED'"), "2");
}

// An access command inside a batch: it gathers alone, in its place, seeing the erasures
// before it; the erasures on each side of it still share a transaction each (processed_at is
// a transaction's start, so the rows of one transaction carry the same). Found by the chaos
// run: one access command made its whole batch run one transaction per erasure, and the
// agents fell behind.
TEST_F(PurgeBatch, AnAccessCommandGathersInItsPlaceAndTheErasuresAroundItShareTransactions) {
  const Person dave{"66120045", "dave@example.com"};
  ASSERT_TRUE(mesh_->Plant(dave).ok());
  agents::PostgresPurger purger = Purger();
  const agents::VerifiedCommand a = Command("cmd-a", kAlice), b = Command("cmd-b", kBob),
                                c = Command("cmd-c", kCarol), d = Command("cmd-d", dave);
  agents::VerifiedCommand access = Command("cmd-x", kAlice);
  access.access = true;
  auto part_key = crypto::X25519PrivateKey::Generate();
  ASSERT_TRUE(part_key.ok());
  access.part_recipient_key = part_key->public_key().raw();
  auto results = purger.PurgeAll({&a, &b, &access, &c, &d});
  ASSERT_EQ(results.size(), 5u);
  for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.status();
  for (size_t i : {0u, 1u, 3u, 4u}) EXPECT_EQ(results[i]->receipt.outcome(), v1::Receipt::COMPLETED) << i;
  // Alice was erased before the gather: nothing of her is left but her retained invoices.
  const v1::Receipt& gathered = results[2]->receipt;
  ASSERT_EQ(gathered.tables_size(), 4);
  for (const auto& t : gathered.tables())
    EXPECT_EQ(t.rows_exported(), t.table() == "crm.invoices" ? 2 : 0) << t.table();
  EXPECT_EQ(Processed("command_id = 'cmd-x'"), "0");  // a gather records nothing
  auto when = [&](const std::string& ids) {
    auto r = mesh_->pg().Query("crm", "SELECT count(DISTINCT processed_at) FROM lethe_agent.processed_commands "
                                      "WHERE command_id IN (" + ids + ")");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : "";
  };
  EXPECT_EQ(when("'cmd-a', 'cmd-b'"), "1");
  EXPECT_EQ(when("'cmd-c', 'cmd-d'"), "1");
  EXPECT_EQ(when("'cmd-a', 'cmd-b', 'cmd-c', 'cmd-d'"), "2");
}

}  // namespace
}  // namespace lethe::testing
