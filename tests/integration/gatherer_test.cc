// GatherSubject (agents/postgres_gatherer.h) on a real PostgreSQL: which rows an access
// request's part holds (every table of the domain, the table's comparison, each row once, no
// one else's), how each value is rendered, and that the part is the same bytes for the same
// data, whatever the session's settings, read in a read-only transaction that changes nothing.
#include "agents/postgres_gatherer.h"

#include <algorithm>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "policies/policy.h"
#include "tests/support/pg_cluster.h"

namespace lethe::agents {
namespace {

using ::nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPolicy[] = R"yaml(
version: 1
name: gather-test
identities: [email, user_id, customer_id]
domains:
  - name: shop
    postgres:
      tables:
        - table: shop.contacts
          key: email
          identity: email
          action: delete
          match: case_insensitive
        - table: shop.exact_contacts
          key: email
          identity: email
          action: delete
          match: exact
        - table: shop.measurements
          key: user_id
          identity: user_id
          action: delete
        - table: shop.events
          key: user_id
          identity: user_id
          action: anonymize
          set:
            user_id: hash
            ip: null
            country: redacted
        - table: shop.invoices
          key: customer_id
          identity: customer_id
          action: retain
          basis: "Tax records (Art. 17(3)(b))"
          period: 7y
        - table: people
          key: email
          identity: email
          action: delete
    kafka:
      topics:
        - topic: shop.people
          key: "person:{email}"
)yaml";

// Alice is the subject; Bob's rows sit beside hers in every table, each with values found
// nowhere in hers (kBobsValues).
constexpr char kData[] = R"sql(
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('cheerful', 'grumpy');
CREATE DOMAIN shop.instant AS timestamptz;
CREATE DOMAIN shop.moment AS shop.instant;  -- a domain over a domain over timestamptz
CREATE TABLE public.people (
  id int8 PRIMARY KEY, email text, name varchar(64), active bool, score float8,
  balance numeric(12,2), signed_up timestamptz, last_seen timestamp, birthday date,
  avatar bytea, prefs jsonb, ref uuid, tags text[], nickname text, grade char(5),
  mood shop.mood, every interval, seen shop.moment);
INSERT INTO public.people VALUES
  (9007199254740993, 'alice@example.com', 'Alice Ångström', true, 2.5, 1234.50,
   '2026-12-06 14:28:09.123456+05:45', '2026-12-06 08:43:09.5', '1990-02-03',
   (SELECT decode(string_agg(lpad(to_hex(i), 2, '0'), '' ORDER BY i), 'hex')
      FROM generate_series(0, 255) AS i),
   '{"theme": "dark", "n": [1, 2.5, {"x": null}]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '{vip,"two words"}', NULL, 'A', 'cheerful', '1 day 2 hours', '2026-07-01 12:00:00-07'),
  (2, 'alice.work@example.com', 'Alice at work', false, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, 'ally', NULL, NULL, NULL, NULL),
  (9007199254740995, 'bob@example.org', 'Bobbington', false, 31337.25, 98765.43,
   '2011-11-11 11:11:11+00', '2011-11-11 11:11:11', '1911-11-11', 'BOBBYTES',
   '{"bobkey": "bobvalue"}', 'b0b0b0b0-9c0b-4ef8-bb6d-6bb9bd380a11', '{bobtag}', 'bobby',
   'ZZZ', 'grumpy', '77 days', '2011-11-11 11:11:11+00');

CREATE TABLE shop.measurements (
  id int4 PRIMARY KEY, user_id int8, value float8, value4 float4, at timestamptz, day date,
  ts timestamp);
INSERT INTO shop.measurements VALUES
  (1, 1001, 1.5, 0.1, '2026-01-01 00:00:00+00', '2026-01-01', '2026-01-01 00:00:00'),
  (2, 1001, 'NaN', 'NaN', 'infinity', 'infinity', 'infinity'),
  (3, 1001, 'Infinity', 'Infinity', '-infinity', '-infinity', '-infinity'),
  (4, 1001, '-Infinity', '-Infinity', NULL, NULL, NULL),
  (5, 1001, 0, 0, '0044-03-15 12:00:00+00 BC', '0044-03-15 BC', '0044-03-15 12:00:00 BC'),
  (6, 77777777, 31337.25, 4.75, '2011-11-11 11:11:11+00', '1911-11-11', '2011-11-11 11:11:11');

CREATE TABLE shop.events (id int4 PRIMARY KEY, user_id int8, ip inet, country text, at timestamptz);
INSERT INTO shop.events VALUES
  (1, 1001, '192.0.2.1', 'NP', '2026-05-01 10:00:00+00'),
  (2, 1001, '192.0.2.2', 'NP', '2026-05-02 10:00:00+00'),
  (3, NULL, NULL, 'redacted', '2026-04-01 10:00:00+00'),
  (4, 77777777, '10.9.9.9', 'BB', '2011-11-11 11:11:11+00');

CREATE TABLE shop.invoices (id int4 PRIMARY KEY, customer_id text, amount numeric, issued date);
INSERT INTO shop.invoices VALUES
  (1, 'CUST-ALICE', 10.00, '2025-01-31'),
  (2, 'CUST-ALICE', 20.50, '2025-02-28'),
  (3, 'BOB-CUST-9', 99999.99, '1911-11-11');

CREATE TABLE shop.contacts (id int4 PRIMARY KEY, email text, note text);
INSERT INTO shop.contacts VALUES (1, 'Alice@Example.com', 'met at the fair'), (2, 'bob@example.org', 'bob row');
CREATE TABLE shop.exact_contacts (id int4 PRIMARY KEY, email text);
INSERT INTO shop.exact_contacts VALUES (1, 'Alice@Example.com'), (2, 'bob@example.org');
)sql";

// Text that occurs only in Bob's rows.
const std::vector<std::string> kBobsValues = {
    "bob@example.org", "Bobbington", "98765.43", "bobtag", "bobkey", "bobvalue", "2011-11-11",
    "1911-11-11", "77777777", "31337.25", "4.75", "b0b0b0b0", "BOB-CUST-9", "99999.99",
    "10.9.9.9", "bobby", "9007199254740995", "bob row", "\"BB\"", "ZZZ", "grumpy", "77 days"};

std::string AllBytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

OpenedIdentities Ids(const std::vector<std::pair<std::string, std::string>>& values) {
  OpenedIdentities ids;
  for (const auto& [type, value] : values) ids.Add(type, SecretBytes(value));
  return ids;
}

const json& TableOf(const json& part, const std::string& name) {
  for (const json& t : part.at("tables"))
    if (t.at("table") == name) return t;
  ADD_FAILURE() << "no table " << name << " in the part";
  static const json kNone = json::object();
  return kNone;
}

// The row of `table` whose column `column` is `value`.
const json& RowWith(const json& table, const std::string& column, const json& value) {
  for (const json& r : table.at("rows"))
    if (r.at(column) == value) return r;
  ADD_FAILURE() << "no row with " << column << " = " << value.dump() << " in " << table.at("table");
  static const json kNone = json::object();
  return kNone;
}

class GatherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::PgCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    pg_ = std::move(*cluster);
    ASSERT_TRUE(pg_->CreateDatabase("shop").ok());
    ASSERT_TRUE(pg_->Exec("shop", kData).ok());
    auto policy = policies::Policy::Parse(kPolicy, "gather-test.yaml");
    ASSERT_TRUE(policy.ok()) << policy.status();
    domain_ = *policy->FindDomain("shop");
    header_.request_id = "req-7";
    header_.command_id = "cmd-7-shop";
    header_.domain = "shop";
    header_.gathered_at = absl::FromCivil(absl::CivilSecond(2026, 12, 6, 8, 43, 9), absl::UTCTimeZone()) +
                          absl::Milliseconds(123);
    header_.salt = std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16);
    TopicKeys tk;
    tk.topic = "shop.people";
    tk.keys.emplace_back(std::string("person:alice@example.com"));
    topics_.push_back(std::move(tk));
  }

  // As the agent will call it: in a read-only REPEATABLE READ transaction of its own.
  GatheredPart Gather(pqxx::connection& c, const OpenedIdentities& ids) {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    GatheredPart part = GatherSubject(tx, domain_, ids, topics_, header_);
    tx.commit();
    return part;
  }
  GatheredPart Gather(const OpenedIdentities& ids) {
    pqxx::connection c(pg_->Dsn("shop"));
    return Gather(c, ids);
  }
  static std::string Text(const GatheredPart& p) { return std::string(RevealSecret(p.json)); }
  static json Parsed(const GatheredPart& p) { return json::parse(Text(p)); }

  std::unique_ptr<testing::PgCluster> pg_;
  policies::Domain domain_;
  PartHeader header_;
  std::vector<TopicKeys> topics_;
};

OpenedIdentities AliceIds() {
  return Ids({{"email", "alice@example.com"}, {"user_id", "1001"}, {"customer_id", "CUST-ALICE"}});
}

TEST_F(GatherTest, PartHoldsExactlyTheSubjectsRowsEachValueRenderedAsSpecified) {
  const GatheredPart p = Gather(AliceIds());
  const std::string text = Text(p);
  const json part = json::parse(text);

  // Canonical: sorted keys, no white space, UTF-8 unescaped.
  EXPECT_EQ(text, part.dump());
  EXPECT_THAT(text, HasSubstr("Alice \xC3\x85ngstr\xC3\xB6m"));

  // The header.
  EXPECT_EQ(part.at("format"), "lethe.access-part/1");
  EXPECT_EQ(part.at("request_id"), "req-7");
  EXPECT_EQ(part.at("command_id"), "cmd-7-shop");
  EXPECT_EQ(part.at("domain"), "shop");
  EXPECT_EQ(part.at("gathered_at"), "2026-12-06T08:43:09.123Z");
  EXPECT_EQ(part.at("salt"), "AAECAwQFBgcICQoLDA0ODw==");

  // Every table, policy order, whatever its action; the row counts.
  std::vector<std::string> names;
  for (const json& t : part.at("tables")) names.push_back(t.at("table"));
  EXPECT_THAT(names, ElementsAre("shop.contacts", "shop.exact_contacts", "shop.measurements",
                                 "shop.events", "shop.invoices", "public.people"));
  ASSERT_EQ(p.tables.size(), 6u);
  const std::vector<int64_t> counts = {1, 0, 5, 2, 2, 1};
  for (size_t i = 0; i < p.tables.size(); ++i) {
    EXPECT_EQ(p.tables[i].table, names[i]);
    EXPECT_EQ(p.tables[i].rows, counts[i]) << names[i];
    EXPECT_TRUE(p.tables[i].searched) << names[i];
    EXPECT_EQ(part["tables"][i].at("row_count"), counts[i]) << names[i];
    EXPECT_EQ(part["tables"][i].at("rows").size(), static_cast<size_t>(counts[i])) << names[i];
    EXPECT_EQ(part["tables"][i].at("searched"), true);
  }

  // None of Bob's data, anywhere.
  for (const std::string& v : kBobsValues) EXPECT_THAT(text, Not(HasSubstr(v))) << "Bob's " << v;
  EXPECT_THAT(text, Not(HasSubstr(crypto::Base64("BOBBYTES"))));

  // people: one value of each type.
  const json& people = TableOf(part, "public.people");
  EXPECT_EQ(people.at("action"), "delete");
  EXPECT_EQ(people.at("identity"), "email");
  EXPECT_EQ(people.at("key_column"), "email");
  EXPECT_EQ(people.at("match"), "exact");
  EXPECT_FALSE(people.contains("basis"));
  EXPECT_FALSE(people.contains("anonymized_columns"));
  std::vector<std::string> cols;
  for (const json& c : people.at("columns"))
    cols.push_back(c.at("name").get<std::string>() + ":" + c.at("type").get<std::string>() + ":" +
                   c.at("sql_type").get<std::string>());
  EXPECT_THAT(cols, ElementsAre("id:int8:bigint", "email:text:text", "name:varchar:character varying(64)",
                                "active:bool:boolean", "score:float8:double precision",
                                "balance:numeric:numeric(12,2)", "signed_up:timestamptz:timestamp with time zone",
                                "last_seen:timestamp:timestamp without time zone", "birthday:date:date",
                                "avatar:bytea:bytea", "prefs:jsonb:jsonb", "ref:uuid:uuid", "tags:_text:text[]",
                                "nickname:text:text", "grade:bpchar:character(5)", "mood:mood:shop.mood",
                                "every:interval:interval", "seen:moment:shop.moment"));
  ASSERT_EQ(people.at("rows").size(), 1u);
  const json& a = people["rows"][0];
  EXPECT_EQ(a.size(), 18u);
  EXPECT_TRUE(a.at("id").is_number_integer());
  EXPECT_EQ(a.at("id").get<int64_t>(), 9007199254740993);  // not through a double (…992)
  EXPECT_THAT(text, HasSubstr("\"id\":9007199254740993"));
  EXPECT_EQ(a.at("email"), "alice@example.com");
  EXPECT_EQ(a.at("name"), "Alice \xC3\x85ngstr\xC3\xB6m");
  EXPECT_EQ(a.at("active"), true);
  EXPECT_TRUE(a.at("score").is_number_float());
  EXPECT_EQ(a.at("score").get<double>(), 2.5);
  EXPECT_EQ(a.at("balance"), "1234.50");  // numeric: the exact text, as a string
  EXPECT_EQ(a.at("signed_up"), "2026-12-06T08:43:09.123456Z");
  EXPECT_EQ(a.at("last_seen"), "2026-12-06T08:43:09.500000");
  EXPECT_EQ(a.at("birthday"), "1990-02-03");
  EXPECT_EQ(a.at("avatar"), crypto::Base64(AllBytes()));
  auto avatar = crypto::FromBase64(a.at("avatar").get<std::string>());
  ASSERT_TRUE(avatar.ok());
  EXPECT_EQ(*avatar, AllBytes());
  EXPECT_TRUE(a.at("prefs").is_object());
  EXPECT_EQ(a.at("prefs"), json::parse(R"({"theme": "dark", "n": [1, 2.5, {"x": null}]})"));
  EXPECT_EQ(a.at("ref"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(a.at("tags"), "{vip,\"two words\"}");
  EXPECT_TRUE(a.at("nickname").is_null());
  EXPECT_EQ(a.at("grade"), "A    ");  // char(5)'s output, padded
  EXPECT_EQ(a.at("mood"), "cheerful");
  EXPECT_EQ(a.at("every"), "1 day 02:00:00");
  EXPECT_EQ(a.at("seen"), "2026-07-01T19:00:00.000000Z");  // a domain: by its base type
  EXPECT_TRUE(RowWith(TableOf(part, "shop.contacts"), "id", 1).at("id").is_number_integer());

  // measurements: floats, their non-finite values, infinite and BC dates and times.
  const json& m = TableOf(part, "shop.measurements");
  const json& m1 = RowWith(m, "id", 1);
  EXPECT_EQ(m1.at("user_id"), 1001);
  EXPECT_TRUE(m1.at("value").is_number_float());
  EXPECT_EQ(m1.at("value").get<double>(), 1.5);
  EXPECT_EQ(m1.at("value4").get<double>(), 0.1);  // float4's shortest text, not 0.100000001490116
  EXPECT_THAT(text, HasSubstr("\"value4\":0.1}"));
  EXPECT_EQ(m1.at("at"), "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(m1.at("day"), "2026-01-01");
  EXPECT_EQ(m1.at("ts"), "2026-01-01T00:00:00.000000");
  const json& m2 = RowWith(m, "id", 2);
  EXPECT_EQ(m2.at("value"), "NaN");
  EXPECT_EQ(m2.at("value4"), "NaN");
  EXPECT_EQ(m2.at("at"), "infinity");
  EXPECT_EQ(m2.at("day"), "infinity");
  EXPECT_EQ(m2.at("ts"), "infinity");
  const json& m3 = RowWith(m, "id", 3);
  EXPECT_EQ(m3.at("value"), "Infinity");
  EXPECT_EQ(m3.at("value4"), "Infinity");
  EXPECT_EQ(m3.at("at"), "-infinity");
  EXPECT_EQ(m3.at("day"), "-infinity");
  EXPECT_EQ(m3.at("ts"), "-infinity");
  const json& m4 = RowWith(m, "id", 4);
  EXPECT_EQ(m4.at("value"), "-Infinity");
  EXPECT_EQ(m4.at("value4"), "-Infinity");
  EXPECT_TRUE(m4.at("at").is_null());
  const json& m5 = RowWith(m, "id", 5);
  EXPECT_EQ(m5.at("value"), 0);
  EXPECT_EQ(m5.at("at"), "0044-03-15T12:00:00.000000Z BC");
  EXPECT_EQ(m5.at("day"), "0044-03-15 BC");
  EXPECT_EQ(m5.at("ts"), "0044-03-15T12:00:00.000000 BC");

  // events, anonymize: the rows still keyed by the identity, not the one already anonymized.
  const json& ev = TableOf(part, "shop.events");
  EXPECT_EQ(ev.at("action"), "anonymize");
  EXPECT_EQ(ev.at("match"), "exact");
  EXPECT_EQ(ev.at("anonymized_columns"), json::array({"user_id", "ip", "country"}));
  EXPECT_THAT(ev.at("note").get<std::string>(), HasSubstr("still keyed by the identity"));
  EXPECT_EQ(RowWith(ev, "id", 1).at("ip"), "192.0.2.1");
  EXPECT_EQ(RowWith(ev, "id", 2).at("at"), "2026-05-02T10:00:00.000000Z");
  EXPECT_THAT(text, Not(HasSubstr("redacted")));
  EXPECT_FALSE(ev.contains("basis"));

  // invoices, retain: the basis and the period.
  const json& inv = TableOf(part, "shop.invoices");
  EXPECT_EQ(inv.at("action"), "retain");
  EXPECT_EQ(inv.at("basis"), "Tax records (Art. 17(3)(b))");
  EXPECT_EQ(inv.at("retention_period_seconds"), int64_t{7} * 365 * 86400);
  EXPECT_EQ(RowWith(inv, "id", 1).at("amount"), "10.00");
  EXPECT_EQ(RowWith(inv, "id", 2).at("issued"), "2025-02-28");
  EXPECT_FALSE(inv.contains("anonymized_columns"));

  // The topics, as given.
  EXPECT_EQ(part.at("topics"), json::parse(R"([{"topic":"shop.people","keys":["person:alice@example.com"]}])"));

  // Each table's rows in the order of their canonical text.
  for (const json& t : part.at("tables")) {
    const json& rows = t.at("rows");
    for (size_t i = 1; i < rows.size(); ++i)
      EXPECT_LT(rows[i - 1].dump(), rows[i].dump()) << t.at("table");
  }
}

TEST_F(GatherTest, CaseInsensitiveMatchFindsOtherSpellingsExactDoesNot) {
  const json part = Parsed(Gather(Ids({{"email", "alice@example.com"}})));
  const json& ci = TableOf(part, "shop.contacts");
  ASSERT_EQ(ci.at("rows").size(), 1u);
  EXPECT_EQ(ci["rows"][0].at("email"), "Alice@Example.com");
  EXPECT_EQ(ci.at("match"), "case_insensitive");
  EXPECT_EQ(TableOf(part, "shop.exact_contacts").at("rows").size(), 0u);
  EXPECT_EQ(TableOf(part, "shop.exact_contacts").at("searched"), true);

  // The stored spelling itself, exactly, is found in the exact table.
  const json exact = Parsed(Gather(Ids({{"email", "Alice@Example.com"}})));
  ASSERT_EQ(TableOf(exact, "shop.exact_contacts").at("rows").size(), 1u);
  EXPECT_EQ(TableOf(exact, "shop.contacts").at("rows").size(), 1u);
}

TEST_F(GatherTest, TwoIdentitiesMatchingOneRowGiveItOnceAndDistinctRowsAreUnited) {
  // Both spellings match contacts' one row of Alice: it is there once.
  const GatheredPart p = Gather(Ids({{"email", "alice@example.com"}, {"email", "ALICE@EXAMPLE.COM"}}));
  const json part = Parsed(p);
  EXPECT_EQ(TableOf(part, "shop.contacts").at("rows").size(), 1u);
  EXPECT_EQ(p.tables[0].rows, 1);
  EXPECT_EQ(TableOf(part, "public.people").at("rows").size(), 1u);

  // The same value twice: once.
  const json twice = Parsed(Gather(Ids({{"email", "alice@example.com"}, {"email", "alice@example.com"}})));
  EXPECT_EQ(TableOf(twice, "public.people").at("rows").size(), 1u);
  EXPECT_EQ(TableOf(twice, "shop.contacts").at("rows").size(), 1u);

  // Two addresses of hers, two rows: the union.
  const json both = Parsed(Gather(Ids({{"email", "alice@example.com"}, {"email", "alice.work@example.com"}})));
  const json& people = TableOf(both, "public.people");
  ASSERT_EQ(people.at("rows").size(), 2u);
  EXPECT_EQ(RowWith(people, "id", 2).at("nickname"), "ally");
  EXPECT_EQ(RowWith(people, "id", 9007199254740993).at("email"), "alice@example.com");
}

TEST_F(GatherTest, TimestamptzIsUtcWhateverTheSessionSettings) {
  const std::string plain = Text(Gather(AliceIds()));

  pqxx::connection c(pg_->Dsn("shop"));
  {
    pqxx::nontransaction s(c);
    s.exec("SET TIME ZONE 'Asia/Kathmandu'");
    s.exec("SET DateStyle = 'SQL, DMY'");
    s.exec("SET extra_float_digits = -10");
    s.exec("SET bytea_output = 'escape'");
    // The session does see its own zone: the same instant, written +05:45.
    EXPECT_EQ(s.exec("SELECT to_char(signed_up, 'HH24:MI TZH:TZM') FROM public.people WHERE id = 9007199254740993")[0][0]
                  .as<std::string>(),
              "14:28 +05:45");
  }
  const GatheredPart odd = Gather(c, AliceIds());
  const json part = Parsed(odd);
  EXPECT_EQ(TableOf(part, "public.people")["rows"][0].at("signed_up"), "2026-12-06T08:43:09.123456Z");
  EXPECT_EQ(RowWith(TableOf(part, "shop.events"), "id", 1).at("at"), "2026-05-01T10:00:00.000000Z");
  EXPECT_EQ(RowWith(TableOf(part, "shop.measurements"), "id", 5).at("at"), "0044-03-15T12:00:00.000000Z BC");
  // And every other value the part renders from the database is the same too.
  EXPECT_EQ(Text(odd), plain);

  // GatherSubject changed none of the session's settings.
  pqxx::nontransaction s(c);
  EXPECT_EQ(s.exec("SELECT current_setting('TimeZone')")[0][0].as<std::string>(), "Asia/Kathmandu");
  EXPECT_EQ(s.exec("SELECT current_setting('DateStyle')")[0][0].as<std::string>(), "SQL, DMY");
}

TEST_F(GatherTest, SameDataAndHeaderGiveTheSameBytesWhateverTheRowOrder) {
  const std::string first = Text(Gather(AliceIds()));
  EXPECT_EQ(Text(Gather(AliceIds())), first);

  // Rewrite rows so that the server returns them in another order (an updated row moves to a
  // new place in the heap), values unchanged.
  const std::string order_sql =
      "SELECT string_agg(id::text, ',') FROM (SELECT id FROM shop.measurements) AS m";
  auto before = pg_->Query("shop", order_sql);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(pg_->Exec("shop", "UPDATE shop.measurements SET value = value WHERE id IN (1, 2, 3);"
                                 "UPDATE shop.events SET ip = ip WHERE id = 1").ok());
  auto after = pg_->Query("shop", order_sql);
  ASSERT_TRUE(after.ok());
  ASSERT_NE(*before, *after) << "the rows did not move; the test proves nothing";

  EXPECT_EQ(Text(Gather(AliceIds())), first);
}

TEST_F(GatherTest, AnIdentityOfAnotherTypeSelectsNothing) {
  // Her e-mail address, but given as a customer_id: the email tables are not searched, and
  // invoices (keyed by customer_id) holds no such customer.
  const GatheredPart p = Gather(Ids({{"customer_id", "alice@example.com"}}));
  const json part = Parsed(p);
  for (const json& t : part.at("tables")) {
    EXPECT_EQ(t.at("rows").size(), 0u) << t.at("table");
    EXPECT_EQ(t.at("row_count"), 0) << t.at("table");
    EXPECT_EQ(t.at("searched"), t.at("identity") == "customer_id") << t.at("table");
  }
  for (const GatheredTable& t : p.tables) EXPECT_EQ(t.rows, 0) << t.table;
  EXPECT_FALSE(p.tables.back().searched);
  EXPECT_THAT(Text(p), Not(HasSubstr("Alice \xC3\x85ngstr\xC3\xB6m")));
}

TEST_F(GatherTest, AnInjectionAttemptAsIdentityValueSelectsNothing) {
  const GatheredPart p = Gather(Ids({{"email", "x' OR '1'='1"},
                                     {"email", "alice@example.com' OR '1'='1"},
                                     {"email", "') OR true --"},
                                     {"customer_id", "CUST-ALICE' OR 'a'='a"},
                                     {"customer_id", "x\"; SELECT 1; --"}}));
  const json part = Parsed(p);
  for (const json& t : part.at("tables")) {
    EXPECT_EQ(t.at("rows").size(), 0u) << t.at("table");
  }
  for (const GatheredTable& t : p.tables) EXPECT_EQ(t.rows, 0) << t.table;
  EXPECT_TRUE(p.tables[0].searched);  // it was looked for, case-insensitively, and not found
}

TEST_F(GatherTest, RunsInAReadOnlyRepeatableReadTransactionAndChangesNothing) {
  const std::string fingerprint_sql =
      "SELECT md5(string_agg(r, '|' ORDER BY r)) FROM ("
      "  SELECT t::text AS r FROM public.people t UNION ALL SELECT t::text FROM shop.measurements t"
      "  UNION ALL SELECT t::text FROM shop.events t UNION ALL SELECT t::text FROM shop.invoices t"
      "  UNION ALL SELECT t::text FROM shop.contacts t UNION ALL SELECT t::text FROM shop.exact_contacts t"
      "  UNION ALL SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
      "    WHERE n.nspname IN ('shop', 'public', 'lethe_agent')) AS all_rows";
  auto before = pg_->Query("shop", fingerprint_sql);
  ASSERT_TRUE(before.ok()) << before.status();

  pqxx::connection c(pg_->Dsn("shop"));
  pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
  EXPECT_EQ(tx.exec("SHOW transaction_read_only")[0][0].as<std::string>(), "on");
  EXPECT_EQ(tx.exec("SHOW transaction_isolation")[0][0].as<std::string>(), "repeatable read");
  const GatheredPart p = GatherSubject(tx, domain_, AliceIds(), topics_, header_);
  EXPECT_EQ(p.tables[2].rows, 5);
  // The transaction really is read-only: a write in it fails.
  try {
    tx.exec("DELETE FROM public.people");
    ADD_FAILURE() << "a read-only transaction accepted a DELETE";
  } catch (const pqxx::sql_error& e) {
    EXPECT_EQ(e.sqlstate(), "25006");  // read_only_sql_transaction
  }
  tx.abort();

  auto after = pg_->Query("shop", fingerprint_sql);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, *before);
}

TEST_F(GatherTest, InvalidUtf8InTextIsReplacedNotThrown) {
  // A SQL_ASCII database stores bytes as given: Latin-1 "café" and a stray 0xff.
  ASSERT_TRUE(pg_->Exec("postgres", "CREATE DATABASE raw ENCODING 'SQL_ASCII' LC_COLLATE 'C' "
                                    "LC_CTYPE 'C' TEMPLATE template0").ok());
  ASSERT_TRUE(pg_->Exec("raw", "CREATE TABLE public.people (email text, name text);"
                               "INSERT INTO public.people VALUES ('alice@example.com', E'caf\\xe9 \\xff!')").ok());
  policies::Domain one;
  one.name = "shop";
  for (const policies::Table& t : domain_.tables)
    if (t.name == "people") one.tables.push_back(t);
  ASSERT_EQ(one.tables.size(), 1u);
  pqxx::connection c(pg_->Dsn("raw"));
  pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
  GatheredPart p;
  ASSERT_NO_THROW(p = GatherSubject(tx, one, Ids({{"email", "alice@example.com"}}), {}, header_));
  const json part = Parsed(p);  // valid UTF-8, or this throws
  EXPECT_EQ(TableOf(part, "public.people")["rows"][0].at("name"), "caf\xEF\xBF\xBD \xEF\xBF\xBD!");
  EXPECT_EQ(part.at("topics"), json::array());
}

TEST_F(GatherTest, DatabaseErrorsAreThrownAndAMismatchedHeaderRefused) {
  policies::Domain missing = domain_;
  missing.tables[0].name = "no_such_table";
  pqxx::connection c(pg_->Dsn("shop"));
  {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    EXPECT_THROW(GatherSubject(tx, missing, AliceIds(), topics_, header_), pqxx::undefined_table);
  }
  {
    // An identity value the key column's type cannot read (user_id is int8).
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    EXPECT_THROW(GatherSubject(tx, domain_, Ids({{"user_id", "not a number"}}), topics_, header_),
                 pqxx::data_exception);
  }
  {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    PartHeader other = header_;
    other.domain = "billing";
    EXPECT_THROW(GatherSubject(tx, domain_, AliceIds(), topics_, other), std::invalid_argument);
  }
}

}  // namespace
}  // namespace lethe::agents
