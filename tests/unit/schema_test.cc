// schema/ without a database: the children-first order and its cycle error, the heuristic of
// likely identity columns, the proposal built from a snapshot, its YAML (read back by the
// policy parser, alone and merged into a policy file), and drift. The same code on a real
// PostgreSQL, through lethectl and lethe-agent: tests/integration/domain_init_test.cc.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/file_system.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policies/policy.h"
#include "schema/drift.h"
#include "schema/proposal.h"
#include "schema/schema.h"
#include "tests/support/assertions.h"

namespace lethe::schema {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

ForeignKey Fk(std::string name, std::string table, std::string column, std::string references,
              std::string referenced_column) {
  return ForeignKey{std::move(name), std::move(table), {std::move(column)}, std::move(references),
                    {std::move(referenced_column)}};
}

Table T(std::string qualified, std::vector<std::string> columns) {
  const size_t dot = qualified.find('.');
  Table t{qualified.substr(0, dot), qualified.substr(dot + 1), {}};
  for (auto& c : columns) t.columns.push_back({std::move(c), "text"});
  return t;
}

policies::Policy MustParse(const std::string& yaml) {
  auto p = policies::Policy::Parse(yaml, "test.yaml");
  EXPECT_TRUE(p.ok()) << p.status() << "\n" << yaml;
  return std::move(p).value();
}

std::vector<std::string> TableNames(const Proposal& p) {
  std::vector<std::string> out;
  for (const auto& t : p.tables) out.push_back(t.table.QualifiedName());
  return out;
}

std::vector<std::string> TableNames(const policies::Domain& d) {
  std::vector<std::string> out;
  for (const auto& t : d.tables) out.push_back(t.QualifiedName());
  return out;
}

// ---- order ----

TEST(ChildrenFirst, EachTableComesBeforeTheTablesItReferencesAndARightOrderIsKept) {
  const std::vector<ForeignKey> fks = {Fk("c_p", "s.child", "p", "s.parent", "id"),
                                       Fk("g_c", "s.grandchild", "c", "s.child", "id")};
  ASSERT_OK_AND_ASSIGN(auto order, OrderChildrenFirst({"s.parent", "s.other", "s.child", "s.grandchild"}, fks));
  EXPECT_THAT(order, ElementsAre("s.grandchild", "s.child", "s.parent", "s.other"));
  ASSERT_OK_AND_ASSIGN(auto right, OrderChildrenFirst({"s.other", "s.grandchild", "s.child", "s.parent"}, fks));
  EXPECT_THAT(right, ElementsAre("s.other", "s.grandchild", "s.child", "s.parent"));
  ASSERT_OK_AND_ASSIGN(auto unrelated, OrderChildrenFirst({"s.b", "s.a", "s.c"}, fks));
  EXPECT_THAT(unrelated, ElementsAre("s.b", "s.a", "s.c"));
}

TEST(ChildrenFirst, ASelfReferenceAndKeysToTablesLeftOutAreNoConstraint) {
  const std::vector<ForeignKey> fks = {Fk("manager", "s.people", "manager", "s.people", "id"),
                                       Fk("out", "s.people", "org", "s.orgs", "id"),
                                       Fk("in", "s.notes", "person", "s.people", "id")};
  ASSERT_OK_AND_ASSIGN(auto order, OrderChildrenFirst({"s.people", "s.notes"}, fks));
  EXPECT_THAT(order, ElementsAre("s.notes", "s.people"));
}

TEST(ChildrenFirst, ACycleIsAnErrorNamingItsTablesAndConstraintsInOrder) {
  const std::vector<ForeignKey> fks = {Fk("a_to_b", "s.a", "b", "s.b", "id"), Fk("b_to_c", "s.b", "c", "s.c", "id"),
                                       Fk("c_to_a", "s.c", "a", "s.a", "id"),
                                       Fk("x_to_a", "s.x", "a", "s.a", "id")};
  auto order = OrderChildrenFirst({"s.x", "s.a", "s.b", "s.c", "s.free"}, fks);
  ASSERT_FALSE(order.ok());
  EXPECT_EQ(order.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string m(order.status().message());
  EXPECT_THAT(m, HasSubstr("foreign keys form a cycle between tables"));
  EXPECT_THAT(m, HasSubstr("s.a references s.b (foreign key a_to_b)"));
  EXPECT_THAT(m, HasSubstr("s.b references s.c (foreign key b_to_c)"));
  EXPECT_THAT(m, HasSubstr("s.c references s.a (foreign key c_to_a)"));
  EXPECT_THAT(m, Not(HasSubstr("s.free")));
  EXPECT_THAT(m, Not(HasSubstr("x_to_a")));

  auto two = OrderChildrenFirst({"s.a", "s.b"}, {Fk("ab", "s.a", "b", "s.b", "id"), Fk("ba", "s.b", "a", "s.a", "id")});
  ASSERT_FALSE(two.ok());
  EXPECT_THAT(std::string(two.status().message()), HasSubstr("between tables s."));
}

// ---- heuristic ----

TEST(Heuristic, KnownColumnNamesMapToPolicyIdentityTypesWhateverTheirCase) {
  EXPECT_EQ(LikelyIdentity("email")->type, "email");
  EXPECT_EQ(LikelyIdentity("Email_Address")->type, "email");
  EXPECT_EQ(LikelyIdentity("E_MAIL")->type, "email");
  EXPECT_EQ(LikelyIdentity("userid")->type, "user_id");
  EXPECT_EQ(LikelyIdentity("customer_id")->type, "customer_id");
  EXPECT_EQ(LikelyIdentity("phone_number")->type, "phone");
  EXPECT_EQ(LikelyIdentity("ssn")->type, "ssn");
  EXPECT_TRUE(LikelyIdentity("email")->keyable);
  ASSERT_TRUE(LikelyIdentity("ip").has_value());
  EXPECT_EQ(LikelyIdentity("ip_address")->type, "ip_address");
  EXPECT_FALSE(LikelyIdentity("ip")->keyable);  // shared by many people: never a key
  EXPECT_FALSE(LikelyIdentity("name").has_value());
  EXPECT_FALSE(LikelyIdentity("emails").has_value());
  EXPECT_FALSE(LikelyIdentity("account_id").has_value());
  // A policy's own type names count as identity column names.
  EXPECT_EQ(LikelyIdentity("Account_ID", {"email", "account_id"})->type, "account_id");
  // The table is compared lower-cased: every name in it must be lower case.
  for (const auto& e : kIdentityColumnNames) {
    SCOPED_TRACE(std::string(e.column));
    EXPECT_EQ(LikelyIdentity(e.column)->type, e.type);
  }
  EXPECT_LT(KeyPreference("user_id"), KeyPreference("email"));
  EXPECT_LT(KeyPreference("email"), KeyPreference("unknown_type"));
}

// ---- proposal ----

Snapshot Shop() {
  Snapshot db;
  db.tables = {T("shop.audit", {"id", "ip", "path"}),
               T("shop.contacts", {"id", "email", "name", "phone"}),
               T("shop.countries", {"code", "name"}),
               T("shop.items", {"id", "contact_id", "sku"}),
               T("shop.newsletter", {"email", "topic"}),
               T("shop.notes", {"id", "owner", "body"}),
               T("shop.orders", {"id", "email", "user_id", "total"}),
               T("shop.profiles", {"user_id", "bio"})};
  db.foreign_keys = {Fk("items_contact_id_fkey", "shop.items", "contact_id", "shop.contacts", "id"),
                     Fk("notes_owner_fkey", "shop.notes", "owner", "shop.contacts", "email"),
                     Fk("orders_email_fkey", "shop.orders", "email", "shop.contacts", "email")};
  return db;
}

TEST(Proposal, FromTheHeuristicTablesChildrenFirstWithFewIdentityTypesAndWhatIsLeftOut) {
  ASSERT_OK_AND_ASSIGN(Proposal p, Propose(Shop(), ProposalOptions{"shop", {}, nullptr}));
  // orders has email and user_id: email, which keys more tables, is chosen for it. The tables
  // that reference contacts come right before it.
  EXPECT_THAT(TableNames(p),
              ElementsAre("shop.orders", "shop.notes", "shop.contacts", "shop.newsletter", "shop.profiles"));
  EXPECT_THAT(p.identities, ElementsAre("email", "user_id"));
  for (const auto& t : p.tables) EXPECT_EQ(t.table.action, policies::TableAction::kDelete);
  EXPECT_EQ(p.tables[0].table.key_column, "email");
  EXPECT_EQ(p.tables[0].why, "column email looks like identity type email");
  EXPECT_THAT(p.tables[0].also, ElementsAre("user_id (user_id)"));
  EXPECT_THAT(p.tables[2].also, ElementsAre("phone (phone)"));
  EXPECT_EQ(p.tables[4].table.identity, "user_id");
  // notes references contacts' key column: it holds emails, whatever its name.
  EXPECT_EQ(p.tables[1].table.key_column, "owner");
  EXPECT_EQ(p.tables[1].table.identity, "email");
  EXPECT_EQ(p.tables[1].why, "references shop.contacts by foreign key notes_owner_fkey (owner)");
  // audit holds IP addresses only: left out, and said why.
  ASSERT_EQ(p.left_out.size(), 1u);
  EXPECT_EQ(p.left_out[0].table, "shop.audit");
  EXPECT_THAT(p.left_out[0].why, HasSubstr("shared by several people"));
  // items references contacts through a column that is no identity: a note.
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_THAT(p.notes[0], HasSubstr("shop.items references shop.contacts by foreign key items_contact_id_fkey"));
}

TEST(Proposal, ATableReferencingADeletedOneByItsKeyIsKeyedByThatColumn) {
  // user_id keys the most tables, orders among them; but orders references customers' key,
  // email: keyed by user_id, an order whose user_id is NULL would block the customer's delete.
  Snapshot db;
  db.tables = {T("s.customers", {"email"}), T("s.orders", {"id", "user_id", "email"}),
               T("s.profiles", {"user_id"}), T("s.sessions", {"user_id"})};
  db.foreign_keys = {Fk("orders_email_fkey", "s.orders", "email", "s.customers", "email")};
  ASSERT_OK_AND_ASSIGN(Proposal p, Propose(db, ProposalOptions{"s", {}, nullptr}));
  EXPECT_THAT(TableNames(p), ElementsAre("s.orders", "s.customers", "s.profiles", "s.sessions"));
  EXPECT_EQ(p.tables[0].table.key_column, "email");
  EXPECT_EQ(p.tables[0].table.identity, "email");
  EXPECT_EQ(p.tables[0].why, "references s.customers by foreign key orders_email_fkey (email)");
  EXPECT_THAT(p.tables[0].also, ElementsAre("user_id (user_id)"));
}

TEST(Proposal, APolicysIdentityTypesBoundItAndColumnsOfOtherTypesAreLeftOut) {
  const policies::Policy policy = MustParse(R"(version: 1
name: p
identities: [email]
domains:
  - name: other
    postgres:
      tables:
        - {table: x.y, key: email, identity: email, action: delete}
)");
  ASSERT_OK_AND_ASSIGN(Proposal p, Propose(Shop(), ProposalOptions{"shop", {}, &policy}));
  EXPECT_THAT(TableNames(p), ElementsAre("shop.orders", "shop.notes", "shop.contacts", "shop.newsletter"));
  EXPECT_THAT(p.identities, ElementsAre("email"));
  ASSERT_EQ(p.left_out.size(), 2u);
  EXPECT_EQ(p.left_out[1].table, "shop.profiles");
  EXPECT_THAT(p.left_out[1].why, HasSubstr("identity type user_id is not among the policy's identities (email)"));
  // Every column of a type the policy lacks is reported, in proposed tables too.
  std::vector<std::string> unmapped;
  for (const auto& c : p.unmapped) unmapped.push_back(c.table + "." + c.column + " " + c.identity);
  EXPECT_THAT(unmapped, ElementsAre("shop.audit.ip ip_address", "shop.contacts.phone phone",
                                    "shop.orders.user_id user_id", "shop.profiles.user_id user_id"));
  EXPECT_THAT(RenderSection(p, &policy, "mesh.yaml"),
              HasSubstr("# Likely identity columns of types the policy does not list (mesh.yaml):\n"
                        "#   shop.audit.ip (ip_address)\n#   shop.contacts.phone (phone)\n"));
}

TEST(Proposal, NamedTablesAreTakenAsGivenAndEachBadOneNamesItsFlag) {
  ProposalOptions o{"shop", {{"shop.contacts", "email", "email"}, {"shop.profiles", "user_id", "user_id"}}, nullptr};
  ASSERT_OK_AND_ASSIGN(Proposal p, Propose(Shop(), o));
  // The tables referencing a deleted one through an identity come along, children first.
  EXPECT_THAT(TableNames(p), ElementsAre("shop.notes", "shop.orders", "shop.contacts", "shop.profiles"));
  EXPECT_EQ(p.tables[2].why, "named by --table");
  ASSERT_EQ(p.left_out.size(), 2u);
  EXPECT_EQ(p.left_out[1].table, "shop.newsletter");
  EXPECT_EQ(p.left_out[1].why, "not named by --table");

  auto bad = [](ExplicitTable e, const policies::Policy* policy = nullptr) {
    auto p = Propose(Shop(), ProposalOptions{"shop", {e}, policy});
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << p.status();
    return std::string(p.status().message());
  };
  EXPECT_THAT(bad({"shop.nope", "email", "email"}), StartsWith("--table shop.nope: the database has no such table"));
  EXPECT_THAT(bad({"contacts", "email", "email"}), StartsWith("--table public.contacts"));
  EXPECT_THAT(bad({"shop.contacts", "mail", "email"}), StartsWith("--key \"mail\" (of --table shop.contacts)"));
  EXPECT_THAT(bad({"shop.contacts", "email", "E-mail"}), StartsWith("--identity \"E-mail\""));
  const policies::Policy policy = MustParse(
      "version: 1\nname: p\nidentities: [user_id]\ndomains:\n  - name: d\n    postgres:\n      tables:\n"
      "        - {table: a.b, key: c, identity: user_id, action: delete}\n");
  EXPECT_THAT(bad({"shop.contacts", "email", "email"}, &policy),
              StartsWith("--identity email (of --table shop.contacts): not an identity type of the policy (it has: user_id)"));
}

TEST(Proposal, ACycleAmongTheTablesIsAnError) {
  Snapshot db;
  db.tables = {T("s.a", {"email", "b_id"}), T("s.b", {"email", "a_id"})};
  db.foreign_keys = {Fk("a_b", "s.a", "b_id", "s.b", "id"), Fk("b_a", "s.b", "a_id", "s.a", "id")};
  auto p = Propose(db, ProposalOptions{"s", {}, nullptr});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("s.a references s.b (foreign key a_b)"));
}

TEST(Proposal, NothingToProposeIsAnErrorThatSaysWhatToDo) {
  Snapshot db;
  db.tables = {T("s.lookup", {"code", "label"})};
  auto p = Propose(db, ProposalOptions{"s", {}, nullptr});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("--table T --key COLUMN --identity TYPE"));
}

constexpr char kShopPolicy[] = R"yaml(version: 1
name: shop-mesh
identities:
  - {name: email, normalize: [trim, lowercase]}
  - user_id
domains:
  - name: shop
    postgres:
      tables:
        - table: shop.orders
          key: email
          identity: email
          action: retain
          basis: "Tax law: \"invoices\" (Art. 17(3)(b))"
          period: 7y
        - table: shop.contacts
          key: email
          identity: email
          action: anonymize
          match: exact
          set:
            email: hash
            name: "null"
    kafka:
      topics:
        - topic: mesh.shop.contacts
          key: "contact:{email}"
)yaml";

TEST(Proposal, ARerunKeepsTheSectionAsItWasAndAddsWhatTheDatabaseGained) {
  const policies::Policy policy = MustParse(kShopPolicy);
  Snapshot db;
  db.tables = {T("shop.contacts", {"email", "name"}), T("shop.orders", {"email", "total"})};
  ASSERT_OK_AND_ASSIGN(Proposal same, Propose(db, ProposalOptions{"shop", {}, &policy}));
  EXPECT_TRUE(same.kept_section);
  // Rendered and merged back, the section is the same section: the same hash.
  ASSERT_OK_AND_ASSIGN(std::string merged, MergeIntoPolicy(kShopPolicy, "shop.yaml", same));
  const policies::Policy again = MustParse(merged);
  EXPECT_EQ(again.DomainHash("shop"), policy.DomainHash("shop"));
  EXPECT_EQ(again.Hash(), policy.Hash());

  db.tables.push_back(T("shop.leads", {"id", "email"}));
  ASSERT_OK_AND_ASSIGN(Proposal grown, Propose(db, ProposalOptions{"shop", {}, &policy}));
  EXPECT_THAT(TableNames(grown), ElementsAre("shop.orders", "shop.contacts", "shop.leads"));
  EXPECT_EQ(grown.tables[0].table.action, policies::TableAction::kRetain);
  ASSERT_EQ(grown.kafka_topics.size(), 1u);
}

// ---- YAML ----

TEST(Render, TheSectionSaysItIsAProposalAndReadsBackAsAPolicyDomain) {
  ASSERT_OK_AND_ASSIGN(Proposal p, Propose(Shop(), ProposalOptions{"shop", {}, nullptr}));
  const std::string section = RenderSection(p, nullptr, "");
  EXPECT_THAT(section, StartsWith("# PROPOSAL, to review before use: the policy section of domain shop"));
  EXPECT_THAT(section, HasSubstr("# the identity types it uses: email, user_id\n"));
  EXPECT_THAT(section, HasSubstr("# NOT COVERED"));
  EXPECT_THAT(section, HasSubstr("#   shop.audit: ip (ip_address): values of ip_address are shared"));
  EXPECT_THAT(section, HasSubstr("#   shop.items references shop.contacts"));
  const policies::Policy policy =
      MustParse("version: 1\nname: t\nidentities: [email, user_id]\ndomains:\n" + section);
  ASSERT_NE(policy.FindDomain("shop"), nullptr);
  EXPECT_THAT(TableNames(*policy.FindDomain("shop")),
              ElementsAre("shop.orders", "shop.notes", "shop.contacts", "shop.newsletter", "shop.profiles"));
  EXPECT_EQ(policy.FindDomain("shop")->tables[1].key_column, "owner");
}

TEST(Render, ScalarsYamlWouldReadAsAnotherTypeAreQuoted) {
  EXPECT_EQ(YamlScalar("growth.contacts"), "growth.contacts");
  EXPECT_EQ(YamlScalar("user_id"), "user_id");
  EXPECT_EQ(YamlScalar("null"), "\"null\"");
  EXPECT_EQ(YamlScalar("True"), "\"True\"");
  EXPECT_EQ(YamlScalar("1.5"), "\"1.5\"");
  EXPECT_EQ(YamlScalar("{email}"), "\"{email}\"");
  EXPECT_EQ(YamlScalar("a \"b\""), "\"a \\\"b\\\"\"");
  EXPECT_EQ(YamlScalar(""), "\"\"");
}

TEST(Merge, AddsTheDomainToTheFileKeepingEveryCommentAndTheOtherDomains) {
  auto sample = lethe::ReadFile(LETHE_SOURCE_DIR "/policies/sample.yaml");
  ASSERT_OK(sample);
  const policies::Policy before = MustParse(*sample);
  ASSERT_OK_AND_ASSIGN(Proposal p, Propose(Shop(), ProposalOptions{"shop", {}, &before}));
  ASSERT_OK_AND_ASSIGN(std::string merged, MergeIntoPolicy(*sample, "sample.yaml", p));
  const policies::Policy after = MustParse(merged);
  ASSERT_EQ(after.domains().size(), 3u);
  EXPECT_EQ(after.domains()[2].name, "shop");
  EXPECT_EQ(after.DomainHash("growth"), before.DomainHash("growth"));
  EXPECT_EQ(after.DomainHash("assessments"), before.DomainHash("assessments"));
  // Every line of the file is still there, in order, with the new item after the last domain.
  size_t at = 0;
  for (std::string_view rest = *sample; !rest.empty();) {
    const size_t nl = rest.find('\n');
    const std::string line(rest.substr(0, nl == std::string_view::npos ? rest.size() : nl + 1));
    rest.remove_prefix(line.size());
    at = merged.find(line, at);
    ASSERT_NE(at, std::string::npos) << "lost: " << line;
    at += line.size();
  }
  EXPECT_GT(merged.find("  - name: shop\n"), merged.find("key: \"{email}\""));
}

TEST(Merge, ReplacesTheDomainsItemAndLeavesTheCommentsAroundIt) {
  const std::string policy_text = R"(version: 1
name: m
identities: [email]
domains:
  # the shop
  - name: shop
    postgres:
      tables:
        - {table: shop.old, key: email, identity: email, action: delete}

  # the other one
  - name: other
    postgres:
      tables:
        - {table: x.y, key: email, identity: email, action: delete}
# trailing comment of the domains

deadlines:
  erasure: 30d
)";
  const policies::Policy policy = MustParse(policy_text);
  Snapshot db;
  db.tables = {T("shop.contacts", {"email"}), T("shop.old", {"email"})};
  ASSERT_OK_AND_ASSIGN(Proposal p, Propose(db, ProposalOptions{"shop", {}, &policy}));
  ASSERT_OK_AND_ASSIGN(std::string merged, MergeIntoPolicy(policy_text, "m.yaml", p));
  const policies::Policy after = MustParse(merged);
  EXPECT_THAT(TableNames(*after.FindDomain("shop")), ElementsAre("shop.old", "shop.contacts"));
  EXPECT_EQ(after.DomainHash("other"), policy.DomainHash("other"));
  EXPECT_THAT(merged, HasSubstr("  # the shop\n  - name: shop\n"));
  EXPECT_THAT(merged, HasSubstr("\n\n  # the other one\n  - name: other\n"));

  // Appending after the last item keeps the comment that belongs to what follows.
  ASSERT_OK_AND_ASSIGN(Proposal fresh, Propose(db, ProposalOptions{"fresh", {}, &policy}));
  ASSERT_OK_AND_ASSIGN(std::string appended, MergeIntoPolicy(policy_text, "m.yaml", fresh));
  EXPECT_THAT(appended, HasSubstr("identity: email, action: delete}\n\n  - name: fresh\n"));
  EXPECT_THAT(appended, HasSubstr("# trailing comment of the domains\n\ndeadlines:\n"));
  EXPECT_EQ(MustParse(appended).domains().size(), 3u);
}

TEST(Merge, DomainsWrittenAsAFlowListAreNotEditedButNamed) {
  const std::string flow =
      "version: 1\nname: f\nidentities: [email]\n"
      "domains: [{name: other, postgres: {tables: [{table: x.y, key: email, identity: email, action: delete}]}}]\n";
  const policies::Policy policy = MustParse(flow);
  Snapshot db;
  db.tables = {T("s.c", {"email"})};
  ASSERT_OK_AND_ASSIGN(Proposal p, Propose(db, ProposalOptions{"s", {}, &policy}));
  auto merged = MergeIntoPolicy(flow, "f.yaml", p);
  EXPECT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(merged.status().message()), StartsWith("domains in f.yaml: not a block list"));
}

// ---- drift ----

TEST(Drift, UncoveredTablesWithIdentityColumnsAndColumnsAnAnonymizeLeavesAreReported) {
  const policies::Policy policy = MustParse(R"(version: 1
name: d
identities: [email, account_id]
domains:
  - name: shop
    postgres:
      tables:
        - table: shop.events
          key: email
          identity: email
          action: anonymize
          set: {email: hash, ip: null}
        - {table: shop.contacts, key: email, identity: email, action: delete}
        - {table: shop.invoices, key: email, identity: email, action: retain, basis: tax, period: 7y}
        - {table: shop.gone, key: email, identity: email, action: delete}
        - {table: shop.renamed, key: email, identity: email, action: delete}
)");
  Snapshot db;
  db.tables = {T("shop.contacts", {"email", "phone"}),             // deleted whole: covered
               T("shop.countries", {"code"}),                      // no identity: not drift
               T("shop.events", {"email", "ip", "user_id", "x"}),  // user_id stays: column drift
               T("shop.invoices", {"email", "phone"}),             // retained whole: covered
               T("shop.leads", {"id", "Email", "account_id"}),    // not in the section: table drift
               T("shop.logins", {"at", "ip"}),                     // no key a section could use: not drift
               T("shop.renamed", {"mail"})};
  const DriftReport r = ComputeDrift(db, policy, *policy.FindDomain("shop"));
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_EQ(r.tables[0].table, "shop.leads");
  ASSERT_EQ(r.tables[0].columns.size(), 2u);
  EXPECT_EQ(r.tables[0].columns[0].column, "Email");
  EXPECT_EQ(r.tables[0].columns[1].identity, "account_id");  // the policy's own type name
  ASSERT_EQ(r.columns.size(), 1u);
  EXPECT_EQ(r.columns[0].table, "shop.events");
  EXPECT_EQ(r.columns[0].column, "user_id");
  ASSERT_EQ(r.missing.size(), 2u);
  EXPECT_EQ(r.missing[0].table, "shop.gone");
  EXPECT_EQ(r.missing[0].column, "");
  EXPECT_EQ(r.missing[1].column, "email");
  EXPECT_FALSE(r.empty());

  const std::vector<std::string> lines = DescribeDrift(r, "shop");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "table shop.leads is not in the policy section of domain shop and holds likely identity "
                      "columns Email (email), account_id (account_id)");
  EXPECT_EQ(lines[1], "column user_id of table shop.events likely holds user_id and the section of domain shop "
                      "anonymizes the table without rewriting it");
  EXPECT_EQ(lines[2], "table shop.gone is in the policy section of domain shop but not in the database");
  EXPECT_EQ(lines[3], "table shop.renamed has no column email, which the policy section of domain shop names");

  // A section that covers it all: no drift.
  Snapshot covered;
  covered.tables = {T("shop.contacts", {"email", "phone"}), T("shop.events", {"email", "ip"}),
                    T("shop.invoices", {"email"}), T("shop.gone", {"email"}), T("shop.renamed", {"email"})};
  EXPECT_TRUE(ComputeDrift(covered, policy, *policy.FindDomain("shop")).empty());
}

}  // namespace
}  // namespace lethe::schema
