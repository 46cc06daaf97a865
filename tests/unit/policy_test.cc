#include "policies/policy.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lethe::policies {

void PrintTo(const Diagnostic& d, std::ostream* os) {
  *os << d.line << ":" << d.column << ": " << d.message;
}

namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

// A valid policy. Tests change single lines of it, so their expected positions can be read
// off these line numbers.
constexpr char kBase[] =
    "version: 1\n"                              //  1
    "name: test-mesh\n"                         //  2
    "identities: [email, user_id]\n"            //  3
    "purposes:\n"                               //  4
    "  - name: marketing\n"                     //  5
    "    description: Campaigns\n"              //  6
    "    domains: [growth]\n"                   //  7
    "    erase_on_withdrawal: true\n"           //  8
    "deadlines:\n"                              //  9
    "  erasure: 30d\n"                          // 10
    "  max_extension: 60d\n"                    // 11
    "domains:\n"                                // 12
    "  - name: assessments\n"                   // 13
    "    postgres:\n"                           // 14
    "      tables:\n"                           // 15
    "        - table: assessments.responses\n"  // 16
    "          key: user_id\n"                  // 17
    "          identity: user_id\n"             // 18
    "          action: delete\n"                // 19
    "  - name: growth\n"                        // 20
    "    postgres:\n"                           // 21
    "      tables:\n"                           // 22
    "        - table: growth.contacts\n"        // 23
    "          key: email\n"                    // 24
    "          identity: email\n"               // 25
    "          action: delete\n";               // 26

constexpr char kDeleteLine[] = "<delete this line>";

// kBase with the given 1-based lines replaced (a replacement may hold several lines) or,
// for kDeleteLine, removed.
std::string Edit(const std::map<int, std::string>& edits) {
  std::istringstream in(kBase);
  std::string out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto it = edits.find(number);
    if (it == edits.end()) {
      out += line + "\n";
    } else if (it->second != kDeleteLine) {
      out += it->second + "\n";
    }
  }
  for (const auto& [n, text] : edits) {
    if (n < 1 || n > number) ADD_FAILURE() << "kBase has no line " << n;
  }
  return out;
}

std::string Edit(int line, const std::string& text) { return Edit({{line, text}}); }

testing::Matcher<Diagnostic> Diag(int line, int column, const std::string& message) {
  return AllOf(Field("line", &Diagnostic::line, line), Field("column", &Diagnostic::column, column),
               Field("message", &Diagnostic::message, message));
}

Policy MustParse(const std::string& yaml) {
  absl::StatusOr<Policy> policy = Policy::Parse(yaml, "test.yaml");
  // gtest reports an exception thrown in a test body as that test's failure.
  if (!policy.ok()) throw std::runtime_error("policy did not parse: " + policy.status().ToString());
  return *std::move(policy);
}

// kBase with table growth.contacts (lines 23-26) anonymized: `set_lines` start at line 28.
std::string Anonymize(const std::string& set_lines) {
  return Edit(26, "          action: anonymize\n          set:\n" + set_lines);
}

// kBase with growth.contacts retained: basis on line 27, period on line 28.
std::string Retain(const std::string& basis, const std::string& period) {
  return Edit(
      26, "          action: retain\n          basis: " + basis + "\n          period: " + period);
}

// kBase with a kafka section for domain growth: `topics` start at line 29.
std::string WithKafka(const std::string& topics) {
  return std::string(kBase) + "    kafka:\n      topics:\n" + topics + "\n";
}

constexpr char kSamplePath[] = LETHE_SOURCE_DIR "/policies/sample.yaml";
constexpr char kFullExamplePath[] = LETHE_SOURCE_DIR "/policies/examples/full.yaml";

std::string ReadSource(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string ReadSample() { return ReadSource(kSamplePath); }

// ---------------------------------------------------------------------------------------
// Valid input

TEST(SamplePolicy, LoadsWithBothDomainsAndTheirTables) {
  absl::StatusOr<Policy> policy = Policy::LoadFile(LETHE_SOURCE_DIR "/policies/sample.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->version(), 1);
  EXPECT_EQ(policy->name(), "lethe-demo");
  EXPECT_EQ(policy->identities(), (std::vector<std::string>{"email", "user_id"}));
  EXPECT_TRUE(policy->HasIdentity("email"));
  EXPECT_FALSE(policy->HasIdentity("phone"));

  ASSERT_THAT(policy->purposes(), SizeIs(1));
  EXPECT_EQ(policy->purposes()[0].name, "marketing");
  EXPECT_EQ(policy->purposes()[0].domains, std::vector<std::string>{"growth"});
  EXPECT_TRUE(policy->purposes()[0].erase_on_withdrawal);
  EXPECT_EQ(policy->deadlines().erasure, absl::Hours(24 * 30));
  EXPECT_EQ(policy->deadlines().max_extension, absl::Hours(24 * 60));

  ASSERT_THAT(policy->domains(), SizeIs(2));
  const Domain* assessments = policy->FindDomain("assessments");
  ASSERT_NE(assessments, nullptr);
  ASSERT_THAT(assessments->tables, SizeIs(3));
  EXPECT_EQ(assessments->tables[0].QualifiedName(), "assessments.responses");
  EXPECT_EQ(assessments->tables[1].QualifiedName(), "assessments.scores");
  EXPECT_EQ(assessments->tables[2].QualifiedName(), "assessments.events");
  for (const Table& t : assessments->tables) {
    EXPECT_EQ(t.key_column, "user_id");
    EXPECT_EQ(t.identity, "user_id");
  }
  EXPECT_EQ(assessments->tables[0].action, TableAction::kDelete);
  EXPECT_EQ(assessments->tables[1].action, TableAction::kDelete);
  const Table& events = assessments->tables[2];
  EXPECT_EQ(events.action, TableAction::kAnonymize);
  ASSERT_THAT(events.set, SizeIs(3));
  EXPECT_EQ(events.set[0].column, "user_id");
  EXPECT_EQ(events.set[0].kind, ColumnRewrite::Kind::kHash);
  EXPECT_EQ(events.set[1].column, "ip");
  EXPECT_EQ(events.set[1].kind, ColumnRewrite::Kind::kNull);
  EXPECT_EQ(events.set[2].column, "city");
  EXPECT_EQ(events.set[2].kind, ColumnRewrite::Kind::kConstant);
  EXPECT_EQ(events.set[2].constant, "redacted");
  EXPECT_EQ(assessments->IdentityTypes(), std::vector<std::string>{"user_id"});

  const Domain* growth = policy->FindDomain("growth");
  ASSERT_NE(growth, nullptr);
  ASSERT_THAT(growth->tables, SizeIs(3));
  EXPECT_EQ(growth->tables[0].QualifiedName(), "growth.campaign_events");  // child first
  EXPECT_EQ(growth->tables[1].QualifiedName(), "growth.contacts");
  EXPECT_EQ(growth->tables[2].QualifiedName(), "growth.invoices");
  for (const Table& t : growth->tables) {
    EXPECT_EQ(t.key_column, "email");
    EXPECT_EQ(t.identity, "email");
  }
  EXPECT_EQ(growth->tables[0].action, TableAction::kDelete);
  EXPECT_EQ(growth->tables[1].action, TableAction::kDelete);
  EXPECT_EQ(growth->tables[2].action, TableAction::kRetain);
  EXPECT_EQ(growth->tables[2].basis, "Tax records (Art. 17(3)(b))");
  EXPECT_EQ(growth->tables[2].period, absl::Hours(24 * 365 * 7));
  EXPECT_EQ(growth->IdentityTypes(), std::vector<std::string>{"email"});
  ASSERT_THAT(growth->kafka_topics, SizeIs(1));
  EXPECT_EQ(growth->kafka_topics[0].topic, "mesh.growth.contacts");
  EXPECT_EQ(growth->kafka_topics[0].key_template, "{email}");
  EXPECT_EQ(growth->kafka_topics[0].identities, std::vector<std::string>{"email"});
  EXPECT_THAT(assessments->kafka_topics, IsEmpty());
  EXPECT_EQ(policy->FindDomain("billing"), nullptr);
}

TEST(SamplePolicy, ValidatesWithoutDiagnostics) {
  const std::string text = ReadSample();
  ASSERT_FALSE(text.empty());
  EXPECT_THAT(Policy::Validate(text), IsEmpty());
}

TEST(FullExample, ValidatesWithoutDiagnostics) {
  const std::string text = ReadSource(kFullExamplePath);
  ASSERT_FALSE(text.empty());
  EXPECT_THAT(Policy::Validate(text), IsEmpty());
}

TEST(FullExample, ExercisesEveryActionKafkaAndConsent) {
  absl::StatusOr<Policy> policy = Policy::LoadFile(kFullExamplePath);
  ASSERT_TRUE(policy.ok()) << policy.status();
  using Kind = ColumnRewrite::Kind;

  std::vector<TableAction> actions;
  std::vector<Kind> kinds;
  const Table* retained = nullptr;
  const KafkaTopic* two_identities = nullptr;
  bool kafka_only = false;
  for (const Domain& d : policy->domains()) {
    if (d.tables.empty() && !d.kafka_topics.empty()) kafka_only = true;
    for (const Table& t : d.tables) {
      actions.push_back(t.action);
      for (const ColumnRewrite& c : t.set) kinds.push_back(c.kind);
      if (t.action == TableAction::kRetain) retained = &t;
    }
    for (const KafkaTopic& k : d.kafka_topics) {
      if (k.identities.size() >= 2) two_identities = &k;
    }
  }
  EXPECT_THAT(actions, testing::IsSupersetOf(
                           {TableAction::kDelete, TableAction::kAnonymize, TableAction::kRetain}));
  EXPECT_THAT(kinds, testing::IsSupersetOf({Kind::kNull, Kind::kHash, Kind::kConstant}));
  ASSERT_NE(retained, nullptr);
  EXPECT_THAT(retained->basis, Not(IsEmpty()));
  EXPECT_EQ(retained->period, absl::Hours(7 * 365 * 24));
  ASSERT_NE(two_identities, nullptr);
  EXPECT_EQ(two_identities->BuildKey({{"customer_id", "c-7"}, {"email", "ann@example.com"}}),
            "customer:c-7:ann@example.com");
  EXPECT_TRUE(kafka_only);
  bool erases = false;
  for (const Purpose& p : policy->purposes()) erases = erases || p.erase_on_withdrawal;
  EXPECT_TRUE(erases);

  const Domain* assessments = policy->FindDomain("assessments");
  ASSERT_NE(assessments, nullptr);
  ASSERT_THAT(assessments->tables, SizeIs(3));
  const Table& events = assessments->tables[2];
  EXPECT_EQ(events.QualifiedName(), "analytics.events");
  std::vector<std::tuple<std::string, Kind, std::string>> set;
  for (const ColumnRewrite& c : events.set) set.emplace_back(c.column, c.kind, c.constant);
  EXPECT_THAT(set, ElementsAre(std::tuple("user_id", Kind::kHash, ""),
                               std::tuple("ip_address", Kind::kNull, ""),
                               std::tuple("user_agent", Kind::kNull, ""),
                               std::tuple("country", Kind::kConstant, "redacted")));
}

TEST(Parse, BasePolicyOfTheseTestsIsValid) {
  EXPECT_THAT(Policy::Validate(kBase), IsEmpty());
  Policy p = MustParse(kBase);
  EXPECT_EQ(p.domains()[1].tables[0].schema, "growth");
  EXPECT_EQ(p.domains()[1].tables[0].name, "contacts");
}

TEST(Parse, TableWithoutSchemaIsInPublic) {
  Policy p = MustParse(Edit(23, "        - table: contacts"));
  EXPECT_EQ(p.domains()[1].tables[0].schema, "public");
  EXPECT_EQ(p.domains()[1].tables[0].QualifiedName(), "public.contacts");
}

TEST(Parse, DeadlinesDefaultToThirtyAndSixtyDays) {
  Policy p = MustParse(Edit({{9, kDeleteLine}, {10, kDeleteLine}, {11, kDeleteLine}}));
  EXPECT_EQ(p.deadlines().erasure, absl::Hours(24 * 30));
  EXPECT_EQ(p.deadlines().max_extension, absl::Hours(24 * 60));
}

TEST(Parse, EraseOnWithdrawalDefaultsToFalseAndPurposesAreOptional) {
  Policy p = MustParse(Edit(8, kDeleteLine));
  ASSERT_THAT(p.purposes(), SizeIs(1));
  EXPECT_FALSE(p.purposes()[0].erase_on_withdrawal);
  EXPECT_EQ(p.purposes()[0].description, "Campaigns");

  Policy none = MustParse(Edit(
      {{4, kDeleteLine}, {5, kDeleteLine}, {6, kDeleteLine}, {7, kDeleteLine}, {8, kDeleteLine}}));
  EXPECT_THAT(none.purposes(), IsEmpty());
}

TEST(Parse, LongestAllowedNamesAreAccepted) {
  const std::string ident(63, 'x');
  const std::string domain(200, 'd');
  Policy p = MustParse(Edit({{7, "    domains: [" + domain + "]"},
                             {20, "  - name: " + domain},
                             {23, "        - table: " + ident + "." + ident},
                             {24, "          key: " + ident}}));
  EXPECT_EQ(p.domains()[1].name, domain);
  EXPECT_EQ(p.domains()[1].tables[0].key_column, ident);
}

TEST(Domain, IdentityTypesIncludeKafkaKeyTypesAfterTheTables) {
  Policy p =
      MustParse(WithKafka("        - topic: mesh.growth.people\n"
                          "          key: \"{user_id}/{email}\""));
  EXPECT_EQ(p.FindDomain("growth")->IdentityTypes(),
            (std::vector<std::string>{"email", "user_id"}));
  EXPECT_EQ(p.FindDomain("assessments")->IdentityTypes(), std::vector<std::string>{"user_id"});
}

TEST(Domain, IdentityTypesAreDistinctInFirstUseOrder) {
  Policy p = MustParse(Edit(26,
                            "          action: delete\n"
                            "        - table: growth.logins\n"
                            "          key: user_id\n"
                            "          identity: user_id\n"
                            "          action: delete\n"
                            "        - table: growth.optouts\n"
                            "          key: email\n"
                            "          identity: email\n"
                            "          action: delete"));
  EXPECT_EQ(p.FindDomain("growth")->IdentityTypes(),
            (std::vector<std::string>{"email", "user_id"}));
}

// ---------------------------------------------------------------------------------------
// Unknown keys: a typo must never turn a purge into a no-op.

TEST(UnknownKey, AtTopLevelSuggestsTheCloseKey) {
  EXPECT_THAT(
      Policy::Validate(Edit(2, "nmae: test-mesh")),
      ElementsAre(Diag(2, 1, "unknown key \"nmae\" at the top level (did you mean \"name\"?)")));
}

TEST(UnknownKey, AtTopLevelListsTheKnownKeys) {
  EXPECT_THAT(Policy::Validate(Edit(2, "name: test-mesh\nretention: forever")),
              ElementsAre(Diag(3, 1,
                               "unknown key \"retention\" at the top level (expected one of: "
                               "version, name, identities, purposes, deadlines, domains)")));
}

TEST(UnknownKey, InPurpose) {
  EXPECT_THAT(Policy::Validate(Edit(6, "    descripton: Campaigns")),
              ElementsAre(Diag(6, 5,
                               "unknown key \"descripton\" in purpose \"marketing\" (did you mean "
                               "\"description\"?)")));
}

TEST(UnknownKey, InDeadlines) {
  EXPECT_THAT(
      Policy::Validate(Edit(10, "  erasre: 30d")),
      ElementsAre(Diag(10, 3, "unknown key \"erasre\" in deadlines (did you mean \"erasure\"?)")));
}

TEST(UnknownKey, InDomain) {
  EXPECT_THAT(Policy::Validate(Edit(20, "  - name: growth\n    owner: growth-team")),
              ElementsAre(Diag(21, 5,
                               "unknown key \"owner\" in domain \"growth\" (expected one of: "
                               "name, postgres, kafka, s3)")));
}

TEST(UnknownKey, InPostgresSectionAlsoReportsTheMissingTables) {
  EXPECT_THAT(
      Policy::Validate(Edit(22, "      tabels:")),
      UnorderedElementsAre(
          Diag(22, 7,
               "unknown key \"tabels\" in domain \"growth\" (under postgres: did you mean "
               "\"tables\"?)"),
          Diag(22, 7,
               "postgres section of domain \"growth\" has no tables (expected tables: with a "
               "list of tables)")));
}

TEST(UnknownKey, InTable) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: delete\n          where: active")),
              ElementsAre(Diag(27, 11,
                               "unknown key \"where\" in table growth.contacts (expected one of: "
                               "table, key, identity, action, basis, period, set, match, vacuum)")));
}

TEST(UnknownKey, DuplicateKeyIsAnErrorNotFirstWins) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: delete\n          action: anonymize")),
              ElementsAre(Diag(27, 11,
                               "duplicate key \"action\" in table growth.contacts (first at "
                               "line 26)")));
}

TEST(UnknownKey, YamlMergeKeyIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: delete\n          <<: {key: x}")),
              ElementsAre(Diag(27, 11,
                               "unknown key \"<<\" in table growth.contacts (YAML merge keys "
                               "are not supported)")));
}

// ---------------------------------------------------------------------------------------
// Version

TEST(Version, OtherVersionIsRejected) {
  EXPECT_THAT(
      Policy::Validate(Edit(1, "version: 2")),
      ElementsAre(Diag(1, 10, "unsupported policy version \"2\" (this build reads version 1)")));
}

TEST(Version, MissingVersionIsRejected) {
  EXPECT_THAT(
      Policy::Validate(Edit(1, kDeleteLine)),
      ElementsAre(Diag(1, 1, "missing required key \"version\" (this build reads version 1)")));
}

TEST(Version, NonScalarVersionIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(1, "version: [1]")),
              ElementsAre(Diag(1, 10, "version must be 1, got a list")));
}

// ---------------------------------------------------------------------------------------
// Identities

TEST(Identity, TableWithUndeclaredIdentityTypeIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(25, "          identity: phone")),
              ElementsAre(Diag(25, 21,
                               "table growth.contacts uses identity type \"phone\", which is "
                               "not listed in identities (listed: email, user_id)")));
}

TEST(Identity, MisspeltIdentityTypeGetsASuggestion) {
  EXPECT_THAT(Policy::Validate(Edit(25, "          identity: emial")),
              ElementsAre(Diag(25, 21,
                               "table growth.contacts uses identity type \"emial\", which is "
                               "not listed in identities (did you mean \"email\"?)")));
}

TEST(Identity, BadIdentityTypeNameIsRejected) {
  EXPECT_THAT(
      Policy::Validate(Edit({{3, "identities: [email, User-ID, user_id]"}})),
      ElementsAre(Diag(3, 21,
                       "bad identity type \"User-ID\": expected lowercase letters, digits and _ "
                       "([a-z0-9_]+)")));
}

TEST(Identity, DuplicateIdentityTypeIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(3, "identities: [email, user_id, email]")),
              ElementsAre(Diag(3, 30, "duplicate identity type \"email\"")));
}

TEST(Identity, AtLeastOneIdentityTypeIsRequired) {
  EXPECT_THAT(Policy::Validate(Edit(3, "identities: []")),
              ElementsAre(Diag(3, 13, "identities must list at least one identity type")));
  EXPECT_THAT(Policy::Validate(Edit(3, kDeleteLine)),
              ElementsAre(Diag(1, 1,
                               "missing required key \"identities\": the identity types a "
                               "request may carry, e.g. [email, user_id]")));
}

// ---------------------------------------------------------------------------------------
// Normalization and match

TEST(Normalize, AMapNamesTheStepsAndThePlainFormMeansNone) {
  const Policy p = MustParse(Edit(3,
                                  "identities:\n"
                                  "  - {name: email, normalize: [trim, lowercase]}\n"
                                  "  - name: user_id"));
  EXPECT_EQ(p.identities(), (std::vector<std::string>{"email", "user_id"}));
  EXPECT_THAT(p.Normalizers("email"), ElementsAre(Normalizer::kTrim, Normalizer::kLowercase));
  EXPECT_THAT(p.Normalizers("user_id"), IsEmpty());
  EXPECT_THAT(p.Normalizers("phone"), IsEmpty());
  EXPECT_EQ(p.Normalize("email", " \t Alice@Example.COM\r\n"), "alice@example.com");
  EXPECT_EQ(p.Normalize("user_id", " Alice "), " Alice ");  // no normalizers: exactly as received
  EXPECT_EQ(p.Normalize("email", " \v\f "), "");
  // Only ASCII letters change case, and only ASCII white space is trimmed.
  EXPECT_EQ(p.Normalize("email", "\xC3\x89MILE@X.FR\xC2\xA0"), "\xC3\x89mile@x.fr\xC2\xA0");
}

TEST(Normalize, StepsApplyInTheOrderWrittenOnlyToTheirOwnType) {
  const Policy p = MustParse(Edit(3,
                                  "identities:\n"
                                  "  - {name: email, normalize: [lowercase]}\n"
                                  "  - {name: user_id, normalize: [trim]}"));
  EXPECT_EQ(p.Normalize("email", " Bob@X "), " bob@x ");
  EXPECT_EQ(p.Normalize("user_id", " Bob@X "), "Bob@X");
}

TEST(Normalize, UnknownRepeatedAndMalformedStepsAreLineNumberedErrors) {
  EXPECT_THAT(Policy::Validate(Edit(3,
                                    "identities:\n"
                                    "  - {name: email, normalize: [trim, lowercsae]}\n"
                                    "  - user_id")),
              ElementsAre(Diag(4, 37,
                               "unknown normalizer \"lowercsae\" for identity type \"email\": "
                               "expected trim or lowercase (did you mean \"lowercase\"?)")));
  EXPECT_THAT(Policy::Validate(Edit(3,
                                    "identities:\n"
                                    "  - user_id\n"
                                    "  - name: email\n"
                                    "    normalize: [trim, trim]")),
              ElementsAre(Diag(6, 23, "normalizer \"trim\" twice for identity type \"email\"")));
  EXPECT_THAT(Policy::Validate(Edit(3,
                                    "identities:\n"
                                    "  - user_id\n"
                                    "  - {name: email, normalize: lowercase}")),
              ElementsAre(Diag(5, 30,
                               "normalize of identity type \"email\" must be a list of steps "
                               "(trim, lowercase), got \"lowercase\"")));
  EXPECT_THAT(Policy::Validate(Edit(3,
                                    "identities:\n"
                                    "  - user_id\n"
                                    "  - {normalize: [trim]}\n"
                                    "  - {name: email, normalise: [trim]}")),
              ElementsAre(Diag(5, 5, "identity type #2 is missing \"name\" (the identity type, e.g. email)"),
                          Diag(6, 19,
                               "unknown key \"normalise\" in identity type \"email\" (did you mean "
                               "\"normalize\"?)")));
}

TEST(Match, DefaultsFromTheIdentityTypeAndAWrittenMatchWins) {
  const std::string types =
      "identities:\n"
      "  - {name: email, normalize: [trim, lowercase]}\n"
      "  - {name: user_id, normalize: [trim]}";
  const Policy defaults = MustParse(Edit(3, types));
  EXPECT_EQ(defaults.FindDomain("growth")->tables[0].match, Match::kCaseInsensitive);
  EXPECT_EQ(defaults.FindDomain("assessments")->tables[0].match, Match::kExact);
  const Policy written = MustParse(Edit({{3, types},
                                         {19, "          action: delete\n          match: case_insensitive"},
                                         {26, "          action: delete\n          match: exact"}}));
  EXPECT_EQ(written.FindDomain("growth")->tables[0].match, Match::kExact);
  EXPECT_EQ(written.FindDomain("assessments")->tables[0].match, Match::kCaseInsensitive);
  // Without normalizers (the base policy) every table is exact.
  EXPECT_EQ(MustParse(kBase).FindDomain("growth")->tables[0].match, Match::kExact);
}

TEST(Match, UnknownComparisonIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: delete\n          match: case-insensitive")),
              ElementsAre(Diag(27, 18,
                               "unknown match \"case-insensitive\" for table growth.contacts: "
                               "expected exact or case_insensitive (did you mean "
                               "\"case_insensitive\"?)")));
}

TEST(Match, TheCanonicalFormHoldsOnlyWhatIsNotExact) {
  // A type written as a map without normalizers, and a table written `match: exact`, hash as
  // their plain forms: the meaning is the same.
  const Policy plain = MustParse(kBase);
  const Policy spelled = MustParse(Edit({{3, "identities:\n  - {name: email, normalize: []}\n  - name: user_id"},
                                         {26, "          action: delete\n          match: exact"}}));
  EXPECT_EQ(spelled.Hash(), plain.Hash());
  EXPECT_EQ(spelled.DomainHash("growth"), plain.DomainHash("growth"));
  // Lower-casing email changes the policy hash, and growth's section (its table now compares
  // case-insensitively), not assessments'.
  const Policy lowered =
      MustParse(Edit(3, "identities:\n  - {name: email, normalize: [lowercase]}\n  - user_id"));
  EXPECT_NE(lowered.Hash(), plain.Hash());
  EXPECT_NE(lowered.DomainHash("growth"), plain.DomainHash("growth"));
  EXPECT_EQ(lowered.DomainHash("assessments"), plain.DomainHash("assessments"));
  EXPECT_THAT(lowered.DomainCanonicalJson("growth"), HasSubstr("\"match\":\"case_insensitive\""));
}

// ---------------------------------------------------------------------------------------
// Tables

TEST(Table, MissingKeyColumnIsRejectedNamingTheTable) {
  EXPECT_THAT(Policy::Validate(Edit(24, kDeleteLine)),
              ElementsAre(Diag(23, 11,
                               "table growth.contacts is missing \"key\" (the column that holds "
                               "the subject's identifier)")));
}

TEST(Table, MissingIdentityIsRejectedNamingTheTable) {
  EXPECT_THAT(Policy::Validate(Edit(25, kDeleteLine)),
              ElementsAre(Diag(23, 11,
                               "table growth.contacts is missing \"identity\" (the identity type "
                               "its key column holds: one of email, user_id)")));
}

TEST(Table, MissingActionIsRejectedNamingTheTable) {
  EXPECT_THAT(Policy::Validate(Edit(26, kDeleteLine)),
              ElementsAre(Diag(23, 11,
                               "table growth.contacts is missing \"action\" (expected delete, "
                               "anonymize or retain)")));
}

TEST(Table, MissingTableNameIsRejectedNamingTheEntry) {
  const std::string yaml = Edit({{23, "        -"}, {24, "          key: email"}});
  EXPECT_THAT(Policy::Validate(yaml),
              ElementsAre(Diag(24, 11,
                               "table #1 of domain \"growth\" is missing \"table\" (its "
                               "[schema.]name)")));
}

TEST(Table, UnknownActionIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: purge")),
              ElementsAre(Diag(26, 19,
                               "unknown action \"purge\" for table growth.contacts: expected "
                               "delete, anonymize or retain")));
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: anonymise")),
              ElementsAre(Diag(26, 19,
                               "unknown action \"anonymise\" for table growth.contacts: "
                               "expected delete, anonymize or retain (did you mean "
                               "\"anonymize\"?)")));
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: [delete]")),
              ElementsAre(Diag(26, 19,
                               "action of table growth.contacts must be delete, anonymize or "
                               "retain, got a list")));
}

TEST(Table, KeysOfOtherActionsAreRejected) {
  EXPECT_THAT(Policy::Validate(Edit(26,
                                    "          action: delete\n"
                                    "          set:\n"
                                    "            email: hash\n"
                                    "          basis: tax")),
              ElementsAre(Diag(27, 11,
                               "key \"set\" is only for action anonymize (table "
                               "growth.contacts)"),
                          Diag(29, 11,
                               "key \"basis\" is only for action retain (table "
                               "growth.contacts)")));
  EXPECT_THAT(Policy::Validate(Retain("tax", "7y\n          set:\n            email: hash")),
              ElementsAre(Diag(
                  29, 11, "key \"set\" is only for action anonymize (table growth.contacts)")));
  EXPECT_THAT(Policy::Validate(Anonymize("            email: hash\n          period: 1y")),
              ElementsAre(Diag(
                  29, 11, "key \"period\" is only for action retain (table growth.contacts)")));
  // With an unknown action, the error about it is the one that matters.
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: purge\n          basis: tax")),
              ElementsAre(Diag(26, 19,
                               "unknown action \"purge\" for table growth.contacts: expected "
                               "delete, anonymize or retain")));
}

TEST(Table, DuplicateTableInDomainIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(26,
                                    "          action: delete\n"
                                    "        - table: growth.contacts\n"
                                    "          key: email\n"
                                    "          identity: email\n"
                                    "          action: delete")),
              ElementsAre(Diag(27, 18,
                               "duplicate table growth.contacts in domain \"growth\" (first "
                               "listed at line 23)")));
}

TEST(Table, DefaultSchemaCountsForDuplicates) {
  EXPECT_THAT(Policy::Validate(Edit({{23, "        - table: contacts"},
                                     {26,
                                      "          action: delete\n"
                                      "        - table: public.contacts\n"
                                      "          key: email\n"
                                      "          identity: email\n"
                                      "          action: delete"}})),
              ElementsAre(Diag(27, 18,
                               "duplicate table public.contacts in domain \"growth\" (first "
                               "listed at line 23)")));
}

TEST(Table, SameTableInTwoDomainsIsAllowed) {
  EXPECT_THAT(Policy::Validate(Edit(23, "        - table: assessments.responses")), IsEmpty());
}

TEST(Table, SqlInTableNameIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(23, "        - table: users; drop table x")),
              ElementsAre(Diag(23, 18,
                               "bad table name \"users; drop table x\" in domain \"growth\": "
                               "expected [schema.]name, each part matching "
                               "[A-Za-z_][A-Za-z0-9_]* (at most 63 characters)")));
}

TEST(Table, UnsafeTableNamesAreRejected) {
  const std::vector<std::string> bad = {"a.b.c",
                                        "1users",
                                        "\"\"",
                                        "growth.",
                                        ".contacts",
                                        "growth.con-tacts",
                                        "growth.\"Contacts\"",
                                        std::string(64, 'x'),
                                        "growth." + std::string(64, 'x'),
                                        "gr owth.contacts",
                                        "[growth, contacts]"};
  for (const std::string& name : bad) {
    SCOPED_TRACE(name);
    std::vector<Diagnostic> d = Policy::Validate(Edit(23, "        - table: " + name));
    ASSERT_THAT(d, SizeIs(1));
    EXPECT_EQ(d[0].line, 23);
    EXPECT_EQ(d[0].column, 18);
    EXPECT_THAT(d[0].message, StartsWith("bad table name"));
  }
}

TEST(Table, UnsafeKeyColumnIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(24, "          key: \"email OR 1=1\"")),
              ElementsAre(Diag(24, 16,
                               "bad key column \"email OR 1=1\" for table growth.contacts: "
                               "expected a column name matching [A-Za-z_][A-Za-z0-9_]* (at most "
                               "63 characters)")));
  EXPECT_THAT(Policy::Validate(Edit(24, "          key: public.email")), SizeIs(1));
}

TEST(Table, EmptyTablesAreRejected) {
  EXPECT_THAT(
      Policy::Validate(Edit({{22, "      tables: []"},
                             {23, kDeleteLine},
                             {24, kDeleteLine},
                             {25, kDeleteLine},
                             {26, kDeleteLine}})),
      ElementsAre(Diag(22, 15, "tables in domain \"growth\" must list at least one table")));
  EXPECT_THAT(Policy::Validate(Edit({{22, "      tables:"},
                                     {23, kDeleteLine},
                                     {24, kDeleteLine},
                                     {25, kDeleteLine},
                                     {26, kDeleteLine}})),
              ElementsAre(Diag(22, 7,
                               "tables in domain \"growth\" must be a list of tables, got an "
                               "empty value")));
}

// ---------------------------------------------------------------------------------------
// anonymize

TEST(Anonymize, ParsesEveryKindOfValueInFileOrder) {
  Policy p =
      MustParse(Anonymize("            email: hash\n"
                          "            name: null\n"
                          "            phone: ~\n"
                          "            fax:\n"
                          "            country: \"redacted\"\n"
                          "            note: redacted\n"
                          "            age: 0\n"
                          "            opted_in: false\n"
                          "            quoted_hash: \"hash\"\n"
                          "            quoted_null: 'null'\n"
                          "            empty_text: \"\"\n"
                          "            tagged_null: !!null ''"));
  const Table& t = p.FindDomain("growth")->tables[0];
  EXPECT_EQ(t.action, TableAction::kAnonymize);
  using Kind = ColumnRewrite::Kind;
  std::vector<std::tuple<std::string, Kind, std::string>> got;
  for (const ColumnRewrite& c : t.set) got.emplace_back(c.column, c.kind, c.constant);
  EXPECT_THAT(got,
              ElementsAre(std::tuple("email", Kind::kHash, ""), std::tuple("name", Kind::kNull, ""),
                          std::tuple("phone", Kind::kNull, ""), std::tuple("fax", Kind::kNull, ""),
                          std::tuple("country", Kind::kConstant, "redacted"),
                          std::tuple("note", Kind::kConstant, "redacted"),
                          std::tuple("age", Kind::kConstant, "0"),
                          std::tuple("opted_in", Kind::kConstant, "false"),
                          std::tuple("quoted_hash", Kind::kConstant, "hash"),
                          std::tuple("quoted_null", Kind::kConstant, "null"),
                          std::tuple("empty_text", Kind::kConstant, ""),
                          std::tuple("tagged_null", Kind::kNull, "")));
  EXPECT_EQ(t.basis, "");
  EXPECT_EQ(t.period, absl::ZeroDuration());
  EXPECT_EQ(p.FindDomain("growth")->IdentityTypes(), std::vector<std::string>{"email"});
  EXPECT_STREQ(Table::ActionName(t.action), "anonymize");
  EXPECT_STREQ(ColumnRewrite::KindName(Kind::kConstant), "constant");
}

TEST(Anonymize, RequiresANonEmptySetMap) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: anonymize")),
              ElementsAre(Diag(23, 11,
                               "table growth.contacts has action anonymize but no \"set\" "
                               "(expected a map of column: null | hash | \"constant\")")));
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: anonymize\n          set: [email]")),
              ElementsAre(Diag(27, 16,
                               "set of table growth.contacts must be a map of column: null | "
                               "hash | \"constant\", got a list")));
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: anonymize\n          set:")),
              ElementsAre(Diag(27, 11,
                               "set of table growth.contacts must be a map of column: null | "
                               "hash | \"constant\", got an empty value")));
  EXPECT_THAT(
      Policy::Validate(Edit(26, "          action: anonymize\n          set: {}")),
      ElementsAre(Diag(27, 16, "set of table growth.contacts must list at least one column")));
}

TEST(Anonymize, MustRewriteTheKeyColumnToNullOrHash) {
  EXPECT_THAT(Policy::Validate(Anonymize("            name: null")),
              ElementsAre(Diag(27, 11,
                               "anonymize on table growth.contacts must rewrite its key column "
                               "\"email\" (to null or hash), or the rows stay keyed by the "
                               "person")));
  for (const std::string constant : {"\"nobody@example.com\"", "nobody", "\"hash\"", "0"}) {
    SCOPED_TRACE(constant);
    EXPECT_THAT(Policy::Validate(Anonymize("            email: " + constant)),
                ElementsAre(Diag(28, 20,
                                 "key column \"email\" of table growth.contacts must be set to "
                                 "null or hash, not a constant (every person's rows would "
                                 "share one key)")));
  }
  EXPECT_THAT(Policy::Validate(Anonymize("            email: null")), IsEmpty());
  EXPECT_THAT(Policy::Validate(Anonymize("            name: null\n            email: hash")),
              IsEmpty());
}

TEST(Anonymize, BadDuplicateAndNonScalarColumnsAreRejected) {
  EXPECT_THAT(
      Policy::Validate(Anonymize("            email: hash\n"           // 28
                                 "            \"ip address\": null\n"  // 29
                                 "            email: null\n"           // 30
                                 "            tags: [a, b]\n"          // 31
                                 "            [x]: null\n"             // 32
                                 "            note: \"a\\0b\"")),      // 33
      ElementsAre(Diag(29, 13,
                       "bad column \"ip address\" in set of table growth.contacts: expected a "
                       "column name matching [A-Za-z_][A-Za-z0-9_]* (at most 63 characters)"),
                  Diag(30, 13,
                       "duplicate column \"email\" in set of table growth.contacts (first at "
                       "line 28)"),
                  Diag(31, 19,
                       "value for column \"tags\" in set of table growth.contacts must be null, "
                       "hash or a \"constant\" string, got a list"),
                  Diag(32, 13,
                       "columns in set of table growth.contacts must be column names, got a "
                       "list"),
                  Diag(33, 19,
                       "constant for column \"note\" in set of table growth.contacts must not "
                       "contain a NUL character")));
  EXPECT_THAT(Policy::Validate(Anonymize("            email: hash\n            " +
                                         std::string(64, 'c') + ": null")),
              SizeIs(1));
  EXPECT_THAT(Policy::Validate(Anonymize("            email: hash\n            " +
                                         std::string(63, 'c') + ": null")),
              IsEmpty());
}

// ---------------------------------------------------------------------------------------
// retain

TEST(Retain, ParsesBasisAndPeriod) {
  Policy p = MustParse(Retain("\"Tax records (Art. 17(3)(b))\"", "7y"));
  const Table& t = p.FindDomain("growth")->tables[0];
  EXPECT_EQ(t.action, TableAction::kRetain);
  EXPECT_EQ(t.basis, "Tax records (Art. 17(3)(b))");
  EXPECT_EQ(t.period, absl::Hours(7 * 365 * 24));
  EXPECT_THAT(t.set, IsEmpty());
  EXPECT_STREQ(Table::ActionName(t.action), "retain");
}

TEST(Retain, RequiresBasisAndPeriod) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: retain")),
              ElementsAre(Diag(23, 11,
                               "table growth.contacts has action retain but no \"basis\" (the "
                               "legal basis for keeping its rows, e.g. \"Tax records (Art. "
                               "17(3)(b))\")"),
                          Diag(23, 11,
                               "table growth.contacts has action retain but no \"period\" (how "
                               "long its rows are kept: <n>h, <n>d, <n>w or <n>y)")));
}

TEST(Retain, BasisMustBeNonEmptyTextOfAtMost500Characters) {
  const std::string empty =
      "basis of table growth.contacts must be a non-empty string (the legal basis)";
  EXPECT_THAT(Policy::Validate(Retain("\"\"", "7y")), ElementsAre(Diag(27, 18, empty)));
  EXPECT_THAT(Policy::Validate(Retain("\"  \"", "7y")), ElementsAre(Diag(27, 18, empty)));
  EXPECT_THAT(Policy::Validate(Retain("", "7y")),
              ElementsAre(Diag(27, 11, empty + ", got an empty value")));
  EXPECT_THAT(Policy::Validate(Retain("[tax]", "7y")),
              ElementsAre(Diag(27, 18, empty + ", got a list")));
  EXPECT_THAT(Policy::Validate(Retain(std::string(501, 'x'), "7y")),
              ElementsAre(Diag(27, 18,
                               "basis of table growth.contacts is too long: 501 characters (at "
                               "most 500)")));
  EXPECT_THAT(Policy::Validate(Retain(std::string(500, 'x'), "7y")), IsEmpty());
  std::string accented;
  for (int i = 0; i < 500; ++i) accented += "\xc3\xa9";  // é: 500 characters, 1000 bytes
  EXPECT_THAT(Policy::Validate(Retain(accented, "7y")), IsEmpty());
}

TEST(Retain, BadPeriodIsReportedWithTheField) {
  EXPECT_THAT(Policy::Validate(Retain("tax", "7 years")),
              ElementsAre(Diag(28, 19,
                               "bad duration \"7 years\" for period of table growth.contacts: "
                               "expected <n>h, <n>d, <n>w or <n>y")));
  EXPECT_THAT(Policy::Validate(Retain("tax", "{years: 7}")),
              ElementsAre(Diag(28, 19,
                               "bad duration for period of table growth.contacts: expected "
                               "<n>h, <n>d, <n>w or <n>y, got a map")));
  EXPECT_EQ(MustParse(Retain("tax", "36h")).FindDomain("growth")->tables[0].period,
            absl::Hours(36));
}

// ---------------------------------------------------------------------------------------
// Domains

TEST(DomainSection, DuplicateDomainIsRejected) {
  EXPECT_THAT(
      Policy::Validate(Edit({{7, "    domains: [assessments]"}, {20, "  - name: assessments"}})),
      ElementsAre(Diag(20, 11, "duplicate domain \"assessments\" (first defined at line 13)")));
}

TEST(DomainSection, BadDomainNameIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit({{7, "    domains: [Growth]"}, {20, "  - name: Growth"}})),
              ElementsAre(Diag(20, 11,
                               "bad domain name \"Growth\": expected lowercase letters, digits, "
                               "_ and - ([a-z0-9_-]+)")));
}

TEST(DomainSection, OverlongDomainNameIsRejected) {
  const std::string name(201, 'g');
  std::vector<Diagnostic> d =
      Policy::Validate(Edit({{7, "    domains: [" + name + "]"}, {20, "  - name: " + name}}));
  ASSERT_THAT(d, SizeIs(1));
  EXPECT_EQ(d[0].line, 20);
  EXPECT_THAT(d[0].message, HasSubstr("is too long: 201 characters (at most 200)"));
}

TEST(DomainSection, DomainWithNeitherPostgresNorKafkaIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit({{21, kDeleteLine},
                                     {22, kDeleteLine},
                                     {23, kDeleteLine},
                                     {24, kDeleteLine},
                                     {25, kDeleteLine},
                                     {26, kDeleteLine}})),
              ElementsAre(Diag(20, 5,
                               "domain \"growth\" has no postgres, kafka or s3 section "
                               "(expected postgres: with a list of tables, kafka: with a list "
                               "of topics, s3: with a list of buckets, or several)")));
}

TEST(DomainSection, DomainsThatAreNotAListAreReportedOnce) {
  // The purpose's reference to "growth" cannot be checked, and is not flagged as well.
  const std::string yaml =
      std::string(kBase).substr(0, std::string(kBase).find("domains:\n  -")) + "domains: growth\n";
  EXPECT_THAT(Policy::Validate(yaml),
              ElementsAre(Diag(12, 10, "domains must be a list of domains, got \"growth\"")));
}

TEST(DomainSection, ControlCharactersInValuesAreEscapedInMessages) {
  std::vector<Diagnostic> d = Policy::Validate(
      Edit({{7, "    domains: [\"gr\\nowth\"]"}, {20, "  - name: \"gr\\nowth\""}}));
  ASSERT_THAT(d, SizeIs(1));
  EXPECT_EQ(d[0].message,
            "bad domain name \"gr\\nowth\": expected lowercase letters, digits, _ and - "
            "([a-z0-9_-]+)");
}

// ---------------------------------------------------------------------------------------
// Kafka topics

TEST(Kafka, TopicsParseWithTheirKeyTemplates) {
  Policy p =
      MustParse(WithKafka("        - topic: mesh.growth.people\n"  // 29
                          "          key: \"{email}\"\n"
                          "        - topic: mesh.growth.by-user_V2\n"
                          "          key: \"user:{user_id}:{email}:{user_id}\""));
  const Domain* growth = p.FindDomain("growth");
  ASSERT_THAT(growth->kafka_topics, SizeIs(2));
  EXPECT_EQ(growth->kafka_topics[0].topic, "mesh.growth.people");
  EXPECT_EQ(growth->kafka_topics[0].key_template, "{email}");
  EXPECT_EQ(growth->kafka_topics[0].identities, std::vector<std::string>{"email"});
  EXPECT_EQ(growth->kafka_topics[1].topic, "mesh.growth.by-user_V2");
  EXPECT_EQ(growth->kafka_topics[1].key_template, "user:{user_id}:{email}:{user_id}");
  EXPECT_EQ(growth->kafka_topics[1].identities, (std::vector<std::string>{"user_id", "email"}));
  EXPECT_EQ(growth->IdentityTypes(), (std::vector<std::string>{"email", "user_id"}));
  EXPECT_THAT(p.FindDomain("assessments")->kafka_topics, IsEmpty());
}

TEST(Kafka, BuildKeyFillsThePlaceholders) {
  Policy p =
      MustParse(WithKafka("        - topic: mesh.growth.people\n"
                          "          key: \"{email}\"\n"
                          "        - topic: mesh.growth.users\n"
                          "          key: \"user:{user_id}:{email}:{user_id}\""));
  const KafkaTopic& single = p.FindDomain("growth")->kafka_topics[0];
  const KafkaTopic& multi = p.FindDomain("growth")->kafka_topics[1];
  const std::map<std::string, std::string> values = {
      {"email", "ann@example.com"}, {"user_id", "42"}, {"phone", "+15550100"}};
  EXPECT_EQ(single.BuildKey(values), "ann@example.com");
  EXPECT_EQ(multi.BuildKey(values), "user:42:ann@example.com:42");
  // A missing identity type gives no key at all, never a partial one.
  EXPECT_EQ(multi.BuildKey({{"user_id", "42"}}), std::nullopt);
  EXPECT_EQ(single.BuildKey({}), std::nullopt);
  // Values are inserted as they are, never expanded again.
  EXPECT_EQ(single.BuildKey({{"email", "{user_id}"}, {"user_id", "42"}}), "{user_id}");
  // A template Parse would reject builds no key.
  KafkaTopic bad{"t", "{email", {"email"}, {}};
  EXPECT_EQ(bad.BuildKey(values), std::nullopt);
}

TEST(Kafka, ADomainMayHaveKafkaTopicsOnly) {
  Policy p = MustParse(Edit({{21, "    kafka:"},
                             {22, "      topics:"},
                             {23, "        - topic: mesh.growth.people"},
                             {24, "          key: \"{user_id}\""},
                             {25, kDeleteLine},
                             {26, kDeleteLine}}));
  const Domain* growth = p.FindDomain("growth");
  ASSERT_NE(growth, nullptr);
  EXPECT_THAT(growth->tables, IsEmpty());
  ASSERT_THAT(growth->kafka_topics, SizeIs(1));
  EXPECT_EQ(growth->IdentityTypes(), std::vector<std::string>{"user_id"});
  EXPECT_EQ(p.DomainCanonicalJson("growth"),
            R"({"kafka_topics":[{"key":"{user_id}","topic":"mesh.growth.people"}],)"
            R"("name":"growth","postgres":{"tables":[]},"version":1})");
}

TEST(Kafka, UnknownIdentityTypeInKeyIsRejected) {
  EXPECT_THAT(Policy::Validate(WithKafka("        - topic: mesh.growth.people\n"
                                         "          key: \"{phone}-{phone}\"")),
              ElementsAre(Diag(30, 16,
                               "topic mesh.growth.people uses identity type \"phone\" in its key, "
                               "which is not listed in identities (listed: email, user_id)")));
  EXPECT_THAT(Policy::Validate(WithKafka("        - topic: mesh.growth.people\n"
                                         "          key: \"id:{emial}\"")),
              ElementsAre(Diag(30, 16,
                               "topic mesh.growth.people uses identity type \"emial\" in its key, "
                               "which is not listed in identities (did you mean \"email\"?)")));
}

TEST(Kafka, MalformedKeyTemplatesAreRejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"people", "it has no placeholder, so every person's key would be the same"},
      {"", "it has no placeholder, so every person's key would be the same"},
      {"{email", "\"{\" at offset 0 is never closed"},
      {"email}", "\"}\" at offset 5 closes no placeholder"},
      {"{{email}}", "\"{\" at offset 1 is inside a placeholder (placeholders do not nest)"},
      {"{email}{", "\"{\" at offset 7 is never closed"},
      {"x{}", "empty placeholder {} at offset 1"},
  };
  for (const auto& [key, why] : cases) {
    SCOPED_TRACE(key);
    EXPECT_THAT(
        Policy::Validate(WithKafka("        - topic: mesh.growth.people\n"
                                   "          key: \"" +
                                   key + "\"")),
        ElementsAre(Diag(30, 16,
                         "bad key template \"" + key + "\" for topic mesh.growth.people: " + why +
                             " (a template over identity types, e.g. \"{user_id}\")")));
  }
  EXPECT_THAT(Policy::Validate(WithKafka("        - topic: mesh.growth.people\n"
                                         "          key: [email]")),
              ElementsAre(Diag(30, 16,
                               "key of topic mesh.growth.people must be a string (a template "
                               "over identity types, e.g. \"{user_id}\"), got a list")));
}

TEST(Kafka, TopicNamesFollowKafkasRule) {
  EXPECT_THAT(Policy::Validate(WithKafka("        - topic: mesh growth\n"
                                         "          key: \"{email}\"")),
              ElementsAre(Diag(29, 18,
                               "bad topic name \"mesh growth\" in domain \"growth\": expected "
                               "[A-Za-z0-9._-]+ (at most 249 characters, and not \".\" or "
                               "\"..\")")));
  for (const std::string& name :
       {std::string("."), std::string(".."), std::string(250, 't'), std::string("mesh/growth"),
        std::string("m\xc3\xa9sh"), std::string("[a, b]"), std::string("\"\"")}) {
    SCOPED_TRACE(name);
    std::vector<Diagnostic> d =
        Policy::Validate(WithKafka("        - topic: " + name + "\n          key: \"{email}\""));
    ASSERT_THAT(d, SizeIs(1));
    EXPECT_EQ(d[0].line, 29);
    EXPECT_EQ(d[0].column, 18);
    EXPECT_THAT(d[0].message, StartsWith("bad topic name"));
  }
  for (const std::string& name :
       {std::string(249, 't'), std::string("..."), std::string("a"), std::string("A.b_c-9")}) {
    SCOPED_TRACE(name);
    EXPECT_THAT(
        Policy::Validate(WithKafka("        - topic: " + name + "\n          key: \"{email}\"")),
        IsEmpty());
  }
}

TEST(Kafka, DuplicateTopicInDomainIsRejected) {
  EXPECT_THAT(Policy::Validate(WithKafka("        - topic: mesh.growth.people\n"
                                         "          key: \"{email}\"\n"
                                         "        - topic: mesh.growth.people\n"
                                         "          key: \"{user_id}\"")),
              ElementsAre(Diag(31, 18,
                               "duplicate topic mesh.growth.people in domain \"growth\" (first "
                               "listed at line 29)")));
  // The same topic in two domains is allowed, as tables are.
  const std::string both = WithKafka("        - {topic: shared, key: \"{email}\"}");
  EXPECT_THAT(Policy::Validate(both.substr(0, both.find("  - name: growth")) +
                               "    kafka:\n      topics: [{topic: shared, key: \"{user_id}\"}]\n" +
                               both.substr(both.find("  - name: growth"))),
              IsEmpty());
}

TEST(Kafka, MissingFieldsAndUnknownKeysAreRejected) {
  EXPECT_THAT(Policy::Validate(WithKafka("        - topic: mesh.growth.people")),
              ElementsAre(Diag(29, 11,
                               "topic mesh.growth.people is missing \"key\" (a template over "
                               "identity types, e.g. \"{user_id}\")")));
  EXPECT_THAT(Policy::Validate(WithKafka("        - key: \"{email}\"")),
              ElementsAre(Diag(29, 11,
                               "topic #1 of domain \"growth\" is missing \"topic\" (the Kafka "
                               "topic's name)")));
  EXPECT_THAT(Policy::Validate(WithKafka("        - topic: mesh.growth.people\n"
                                         "          key: \"{email}\"\n"
                                         "          partitions: 3")),
              ElementsAre(Diag(31, 11,
                               "unknown key \"partitions\" in topic mesh.growth.people "
                               "(expected one of: topic, key, sinks)")));
  EXPECT_THAT(Policy::Validate(WithKafka("        - mesh.growth.people")),
              ElementsAre(Diag(29, 11,
                               "topic #1 of domain \"growth\" must be a map with topic and key, "
                               "got \"mesh.growth.people\"")));
  EXPECT_THAT(Policy::Validate(std::string(kBase) + "    kafka:\n"
                                                    "      topcis:\n"
                                                    "        - topic: mesh.growth.people\n"
                                                    "          key: \"{email}\"\n"),
              UnorderedElementsAre(
                  Diag(28, 7,
                       "unknown key \"topcis\" in domain \"growth\" (under kafka: did you mean "
                       "\"topics\"?)"),
                  Diag(28, 7,
                       "kafka section of domain \"growth\" has no topics (expected topics: with "
                       "a list of topics)")));
  EXPECT_THAT(
      Policy::Validate(std::string(kBase) + "    kafak:\n"
                                            "      topics: [{topic: t, key: \"{email}\"}]\n"),
      ElementsAre(Diag(27, 5,
                       "unknown key \"kafak\" in domain \"growth\" (did you mean "
                       "\"kafka\"?)")));
}

TEST(Kafka, SectionShapesAreChecked) {
  EXPECT_THAT(Policy::Validate(std::string(kBase) + "    kafka: [mesh.growth.people]\n"),
              ElementsAre(Diag(27, 12,
                               "kafka in domain \"growth\" must be a map with topics, got a "
                               "list")));
  EXPECT_THAT(
      Policy::Validate(std::string(kBase) + "    kafka:\n      topics: []\n"),
      ElementsAre(Diag(28, 15, "topics in domain \"growth\" must list at least one topic")));
  EXPECT_THAT(Policy::Validate(std::string(kBase) + "    kafka:\n      topics: people\n"),
              ElementsAre(Diag(28, 15,
                               "topics in domain \"growth\" must be a list of topics, got "
                               "\"people\"")));
}

// ---------------------------------------------------------------------------------------
// Purposes

TEST(PurposeSection, UnknownDomainIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(7, "    domains: [growth, billing]")),
              ElementsAre(Diag(7, 23,
                               "purpose \"marketing\" names unknown domain \"billing\" (defined "
                               "domains: assessments, growth)")));
  EXPECT_THAT(Policy::Validate(Edit(7, "    domains: [growht]")),
              ElementsAre(Diag(7, 15,
                               "purpose \"marketing\" names unknown domain \"growht\" (did you "
                               "mean \"growth\"?)")));
}

TEST(PurposeSection, EraseOnWithdrawalMustBeABoolean) {
  EXPECT_THAT(Policy::Validate(Edit(8, "    erase_on_withdrawal: maybe")),
              ElementsAre(Diag(8, 26,
                               "erase_on_withdrawal in purpose \"marketing\" must be true or "
                               "false, got \"maybe\"")));
}

TEST(PurposeSection, EraseOnWithdrawalWithNoDomainsIsRejected) {
  EXPECT_THAT(Policy::Validate(Edit(7, "    domains: []")),
              ElementsAre(Diag(8, 26,
                               "purpose \"marketing\" has erase_on_withdrawal: true but lists no "
                               "domains, so withdrawing consent would erase nothing")));
}

TEST(PurposeSection, DuplicateAndBadPurposeNamesAreRejected) {
  EXPECT_THAT(
      Policy::Validate(Edit(8,
                            "    erase_on_withdrawal: true\n"
                            "  - name: marketing\n"
                            "    domains: []")),
      ElementsAre(Diag(9, 11, "duplicate purpose \"marketing\" (first defined at line 5)")));
  EXPECT_THAT(Policy::Validate(Edit(5, "  - name: Marketing Emails")),
              ElementsAre(Diag(5, 11,
                               "bad purpose name \"Marketing Emails\": expected lowercase "
                               "letters, digits, _ and - ([a-z0-9_-]+)")));
}

// ---------------------------------------------------------------------------------------
// Durations

TEST(Duration, BadDeadlineIsReportedWithTheField) {
  EXPECT_THAT(Policy::Validate(Edit(10, "  erasure: 30 days")),
              ElementsAre(Diag(10, 12,
                               "bad duration \"30 days\" for deadlines.erasure: expected <n>h, "
                               "<n>d, <n>w or <n>y")));
  EXPECT_THAT(Policy::Validate(Edit(11, "  max_extension: {days: 60}")),
              ElementsAre(Diag(11, 18,
                               "bad duration for deadlines.max_extension: expected <n>h, <n>d, "
                               "<n>w or <n>y, got a map")));
}

TEST(Duration, AcceptsHoursDaysWeeksAndYears) {
  EXPECT_EQ(*ParsePolicyDuration("1h"), absl::Hours(1));
  EXPECT_EQ(*ParsePolicyDuration("30d"), absl::Hours(30 * 24));
  EXPECT_EQ(*ParsePolicyDuration("2w"), absl::Hours(14 * 24));
  EXPECT_EQ(*ParsePolicyDuration("1y"), absl::Hours(365 * 24));
  EXPECT_EQ(*ParsePolicyDuration("7y"), absl::Hours(7 * 365 * 24));
  EXPECT_EQ(*ParsePolicyDuration("1000000h"), absl::Hours(1000000));
}

TEST(Duration, RejectsEverythingElse) {
  for (const char* text : {"30 days", "0d", "-1d", "5m", "", "d", "30", "1.5d", " 30d", "30d ",
                           "30D", "+30d", "30dd", "1e3d", "0x10d", "٣d"}) {
    SCOPED_TRACE(text);
    absl::StatusOr<absl::Duration> d = ParsePolicyDuration(text);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(d.status().message()),
                HasSubstr(": expected <n>h, <n>d, <n>w or <n>y"));
  }
  EXPECT_EQ(ParsePolicyDuration("30 days").status().message(),
            "bad duration \"30 days\": expected <n>h, <n>d, <n>w or <n>y");
}

TEST(Duration, RejectsNumbersTooLargeToMean) {
  for (const char* text : {"1000001h", "99999999999999999999999999y"}) {
    SCOPED_TRACE(text);
    absl::StatusOr<absl::Duration> d = ParsePolicyDuration(text);
    ASSERT_FALSE(d.ok());
    EXPECT_THAT(std::string(d.status().message()), HasSubstr("too large"));
  }
}

TEST(Duration, DeadlinesAreReadInto) {
  Policy p = MustParse(Edit({{10, "  erasure: 2w"}, {11, "  max_extension: 1y"}}));
  EXPECT_EQ(p.deadlines().erasure, absl::Hours(14 * 24));
  EXPECT_EQ(p.deadlines().max_extension, absl::Hours(365 * 24));
}

// Access deadlines: defaults when absent, and absent from the canonical JSON unless written, so
// that a policy from before access requests keeps its hash.
TEST(Duration, AccessDeadlinesDefaultAndAppearInTheHashOnlyWhenWritten) {
  const Policy before = MustParse(kBase);
  EXPECT_EQ(before.deadlines().access, absl::Hours(30 * 24));
  EXPECT_EQ(before.deadlines().access_retention, absl::Hours(30 * 24));
  EXPECT_THAT(before.CanonicalJson(), Not(HasSubstr("access")));
  const Policy written = MustParse(Edit({{11, "  max_extension: 60d\n  access: 2w\n  access_retention: 7d"}}));
  EXPECT_EQ(written.deadlines().access, absl::Hours(14 * 24));
  EXPECT_EQ(written.deadlines().access_retention, absl::Hours(7 * 24));
  EXPECT_THAT(written.CanonicalJson(),
              HasSubstr(R"("deadlines":{"access":1209600,"access_retention":604800,"erasure":2592000,)"));
  EXPECT_NE(written.Hash(), before.Hash());
  // Written with their default values, they are still part of what was activated.
  const Policy defaults = MustParse(Edit({{11, "  max_extension: 60d\n  access: 30d"}}));
  EXPECT_NE(defaults.Hash(), before.Hash());
  auto bad = Policy::Parse(Edit({{11, "  max_extension: 60d\n  access: soon"}}), "p.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("deadlines.access"));
}

// ---------------------------------------------------------------------------------------
// Reporting

TEST(Report, EveryProblemInAFileIsReportedInFileOrder) {
  const std::string yaml = Edit({{1, "version: 2"},
                                 {10, "  erasure: 30 days"},
                                 {19, "          action: purge"},
                                 {25, "          identity: phone"}});
  EXPECT_THAT(
      Policy::Validate(yaml),
      ElementsAre(
          Diag(1, 10, "unsupported policy version \"2\" (this build reads version 1)"),
          Diag(10, 12,
               "bad duration \"30 days\" for deadlines.erasure: expected <n>h, <n>d, <n>w or "
               "<n>y"),
          Diag(19, 19,
               "unknown action \"purge\" for table assessments.responses: expected delete, "
               "anonymize or retain"),
          Diag(25, 21,
               "table growth.contacts uses identity type \"phone\", which is not listed in "
               "identities (listed: email, user_id)")));

  absl::StatusOr<Policy> p = Policy::Parse(yaml, "policy.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(),
            "policy.yaml:1:10: unsupported policy version \"2\" (this build reads version 1)\n"
            "policy.yaml:10:12: bad duration \"30 days\" for deadlines.erasure: expected <n>h, "
            "<n>d, <n>w or <n>y\n"
            "policy.yaml:19:19: unknown action \"purge\" for table assessments.responses: "
            "expected delete, anonymize or retain\n"
            "policy.yaml:25:21: table growth.contacts uses identity type \"phone\", which is not "
            "listed in identities (listed: email, user_id)");
}

TEST(Report, DiagnosticToStringNamesSourceLineAndColumn) {
  EXPECT_EQ((Diagnostic{3, 7, "oops"}).ToString("p.yaml"), "p.yaml:3:7: oops");
  EXPECT_EQ((Diagnostic{0, 0, "oops"}).ToString("p.yaml"), "p.yaml: oops");
}

TEST(Report, LoadFileNamesThePathInDiagnostics) {
  const std::string path =
      testing::TempDir() + "/policy_test_" + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream out(path);
    out << Edit(1, "version: 3");
  }
  absl::StatusOr<Policy> p = Policy::LoadFile(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(),
            path + ":1:10: unsupported policy version \"3\" (this build reads version 1)");
}

TEST(Report, UnreadableFileIsNotFoundNamingThePath) {
  absl::StatusOr<Policy> p = Policy::LoadFile("/nonexistent/lethe/policy.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("/nonexistent/lethe/policy.yaml"));

  absl::StatusOr<Policy> dir = Policy::LoadFile(testing::TempDir());
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------------------
// Malformed input: a diagnostic, never a crash or an exception.

TEST(MalformedYaml, UnbalancedBracketIsADiagnostic) {
  std::vector<Diagnostic> d = Policy::Validate(Edit(7, "    domains: [growth"));
  ASSERT_THAT(d, SizeIs(1));
  EXPECT_THAT(d[0].message, StartsWith("malformed YAML: "));
  EXPECT_GE(d[0].line, 7);

  d = Policy::Validate("version: 1\nidentities: {email: [x}\n");
  ASSERT_THAT(d, SizeIs(1));
  EXPECT_THAT(d[0].message, StartsWith("malformed YAML: "));
  EXPECT_GE(d[0].line, 2);

  absl::StatusOr<Policy> p = Policy::Parse("a: [", "bad.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), StartsWith("bad.yaml:"));
}

TEST(MalformedYaml, DocumentsThatAreNotAPolicyMapAreDiagnostics) {
  EXPECT_THAT(Policy::Validate(""),
              ElementsAre(Diag(0, 0,
                               "policy is empty: expected a YAML map with version, identities "
                               "and domains")));
  EXPECT_THAT(Policy::Validate("# nothing but a comment\n"), SizeIs(1));
  EXPECT_THAT(Policy::Validate("just some text\n"),
              ElementsAre(Diag(1, 1,
                               "a policy must be a YAML map with version, name, identities, "
                               "purposes, deadlines and domains, got \"just some text\"")));
  EXPECT_THAT(Policy::Validate("- version: 1\n"), SizeIs(1));
  EXPECT_THAT(Policy::Validate(std::string(kBase) + "---\nversion: 1\n"),
              ElementsAre(Diag(27, 1,
                               "the file holds 2 YAML documents (separated by ---); a policy "
                               "is exactly one")));
  EXPECT_THAT(Policy::Validate("version: 1\n\tidentities: [email]\n"), Not(IsEmpty()));
  EXPECT_THAT(Policy::Validate(std::string("version: 1\0\n", 12)), Not(IsEmpty()));
}

// yaml-cpp 0.7's LoadAll never returns on these (jbeder/yaml-cpp#1040); reading them must
// still end, with a diagnostic at the stray comma.
TEST(MalformedYaml, StrayCommaAtBlockLevelIsADiagnosticNotAHang) {
  EXPECT_THAT(Policy::Validate(","), ElementsAre(Diag(1, 1, "malformed YAML: unexpected \",\"")));
  EXPECT_THAT(Policy::Validate("# comment\n, version: 1\n"),
              ElementsAre(Diag(2, 1, "malformed YAML: unexpected \",\"")));
  EXPECT_THAT(Policy::Validate(std::string(kBase) + "---\n,\n"),
              ElementsAre(Diag(28, 1, "malformed YAML: unexpected \",\"")));
}

TEST(MalformedYaml, DeepNestingIsADiagnostic) {
  std::string deep = "version: 1\nname: " + std::string(100000, '[') + "\n";
  std::vector<Diagnostic> d;
  EXPECT_NO_THROW(d = Policy::Validate(deep));
  EXPECT_THAT(d, Not(IsEmpty()));
}

TEST(MalformedYaml, TruncatedAndMutatedPoliciesNeverThrow) {
  for (const char* path : {kSamplePath, kFullExamplePath}) {
    SCOPED_TRACE(path);
    const std::string base = ReadSource(path);
    ASSERT_FALSE(base.empty());
    // Every prefix, except those ending inside a comment after its '#': they hold the same
    // tokens as the prefix ending at the '#', and skipping them keeps the test fast.
    bool in_comment = false, in_quote = false;
    char quote = 0, prev = '\n';
    for (size_t n = 0; n <= base.size(); ++n) {
      if (!in_comment) {
        EXPECT_NO_THROW(Policy::Validate(base.substr(0, n))) << "prefix of " << n << " bytes";
      }
      if (n == base.size()) break;
      const char c = base[n];
      if (c == '\n') {
        in_comment = in_quote = false;
      } else if (!in_comment && in_quote && c == quote) {
        in_quote = false;
      } else if (!in_comment && !in_quote && (c == '"' || c == '\'')) {
        in_quote = true;
        quote = c;
      } else if (!in_comment && !in_quote && c == '#' && (prev == ' ' || prev == '\n' || prev == '\t')) {
        in_comment = true;
      }
      prev = c;
    }
    std::mt19937 random(20240601);  // fixed seed: the same inputs on every run
    const std::string alphabet = "[]{}:,-?&*!|>'\"#%@` \n\t.0aZ\xff\x80";
    for (int i = 0; i < 2000; ++i) {
      std::string mutated = base;
      const int edits = 1 + static_cast<int>(random() % 4);
      for (int e = 0; e < edits; ++e) {
        mutated[random() % mutated.size()] = alphabet[random() % alphabet.size()];
      }
      absl::StatusOr<Policy> p = absl::InternalError("not run");
      EXPECT_NO_THROW(p = Policy::Parse(mutated, "fuzz.yaml")) << mutated;
      if (p.ok()) {
        EXPECT_THAT(p->CanonicalJson(), StartsWith("{"));  // a valid policy serialises
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Anchors and aliases: refused from the parser's events, before any node tree is built.

constexpr char kNoAnchors[] =
    " is not allowed in a policy (YAML anchors and aliases are rejected: write each value "
    "out)";

TEST(AnchorsAndAliases, AnAnchorIsRejectedNamingLineAndColumn) {
  EXPECT_THAT(Policy::Validate(Edit(3, "identities: &ids [email, user_id]")),
              ElementsAre(Diag(3, 13, std::string("YAML anchor \"&ids\"") + kNoAnchors)));

  absl::StatusOr<Policy> p = Policy::Parse(Edit(3, "identities: &ids [email, user_id]"), "a.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(), std::string("a.yaml:3:13: YAML anchor \"&ids\"") + kNoAnchors);

  // On a map, an empty value, a scalar, an item of a flow list and a key: each is an anchor.
  EXPECT_THAT(Policy::Validate(Edit(9, "deadlines: &d")),
              ElementsAre(Diag(9, 12, std::string("YAML anchor \"&d\"") + kNoAnchors)));
  EXPECT_THAT(Policy::Validate(Edit(2, "name: &n")),
              ElementsAre(Diag(2, 7, std::string("YAML anchor \"&n\"") + kNoAnchors)));
  EXPECT_THAT(Policy::Validate(Edit(19, "          action: &act delete")),
              ElementsAre(Diag(19, 19, std::string("YAML anchor \"&act\"") + kNoAnchors)));
  EXPECT_THAT(Policy::Validate(Edit(7, "    domains: [&g growth]")),
              ElementsAre(Diag(7, 15, std::string("YAML anchor \"&g\"") + kNoAnchors)));
  EXPECT_THAT(Policy::Validate(Edit(2, "&k name: test-mesh")),
              ElementsAre(Diag(2, 1, std::string("YAML anchor \"&k\"") + kNoAnchors)));
}

TEST(AnchorsAndAliases, AnAliasIsRejectedNamingLineAndColumn) {
  // Its anchor is reported too: both are refused.
  EXPECT_THAT(Policy::Validate(Edit({{3, "identities: &ids [email, user_id]"},
                                     {5, "  - name: &m marketing"},
                                     {7, "    domains: *ids"},
                                     {20, "  - name: *m"}})),
              ElementsAre(Diag(3, 13, std::string("YAML anchor \"&ids\"") + kNoAnchors),
                          Diag(7, 14, std::string("YAML alias \"*ids\"") + kNoAnchors)));
  // An alias of an anchor that does not exist is refused as an alias, not as broken YAML.
  EXPECT_THAT(Policy::Validate(Edit(7, "    domains: *nowhere")),
              ElementsAre(Diag(7, 14, std::string("YAML alias \"*nowhere\"") + kNoAnchors)));
  EXPECT_THAT(Policy::Validate(Edit(7, "    domains: [growth, *nowhere]")),
              ElementsAre(Diag(7, 23, std::string("YAML alias \"*nowhere\"") + kNoAnchors)));
  // In a second document too (the first is the one that would be built).
  EXPECT_THAT(Policy::Validate(std::string(kBase) + "---\nx: &x 1\ny: *x\n"),
              ElementsAre(Diag(27, 1,
                               "the file holds 2 YAML documents (separated by ---); a policy "
                               "is exactly one"),
                          Diag(28, 4, std::string("YAML anchor \"&x\"") + kNoAnchors),
                          Diag(29, 4, std::string("YAML alias \"*x\"") + kNoAnchors)));
}

// The "billion laughs" attack: each line lists its predecessor ten times, so about 8 KB of
// text stands for 10^86 scalars, and the last one is the policy's identities. Only its
// first anchor and first alias are reported: nothing else of the document is looked at.
TEST(AnchorsAndAliases, BillionLaughsIsRejectedUnread) {
  std::string yaml = "version: 1\nlol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  int last = 0;
  for (int i = 1; yaml.size() < 8000; ++i) {
    const std::string prev = "*lol" + std::to_string(i - 1);
    yaml += "lol" + std::to_string(i) + ": &lol" + std::to_string(i) + " [" + prev;
    for (int j = 1; j < 10; ++j) yaml += ", " + prev;
    yaml += "]\n";
    last = i;
  }
  yaml += "identities: *lol" + std::to_string(last) + "\n";
  ASSERT_GE(last, 85);
  ASSERT_GE(yaml.size(), 8000u);
  ASSERT_LE(yaml.size(), 8300u);
  EXPECT_THAT(Policy::Validate(yaml),
              ElementsAre(Diag(2, 7, std::string("YAML anchor \"&lol0\"") + kNoAnchors),
                          Diag(3, 14, std::string("YAML alias \"*lol0\"") + kNoAnchors)));
  absl::StatusOr<Policy> p = Policy::Parse(yaml, "laughs.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()),
              StartsWith("laughs.yaml:2:7: YAML anchor \"&lol0\""));
}

// ---------------------------------------------------------------------------------------
// Canonical form and hashes

TEST(Hash, CanonicalJsonIsSortedCompactAndInSeconds) {
  Policy p = MustParse(
      "version: 1\n"
      "name: mini\n"
      "identities: [email]\n"
      "domains:\n"
      "  - name: d\n"
      "    postgres:\n"
      "      tables:\n"
      "        - {table: t, key: email, identity: email, action: delete}\n");
  EXPECT_EQ(p.CanonicalJson(),
            R"({"deadlines":{"erasure":2592000,"max_extension":5184000},)"
            R"("domains":[{"name":"d","postgres":{"tables":[{"action":"delete",)"
            R"("identity":"email","key":"email","table":"public.t"}]}}],)"
            R"("identities":["email"],"name":"mini","purposes":[],"version":1})");
  EXPECT_EQ(p.DomainCanonicalJson("d"),
            R"({"name":"d","postgres":{"tables":[{"action":"delete","identity":"email",)"
            R"("key":"email","table":"public.t"}]},"version":1})");
  EXPECT_EQ(p.Hash(), crypto::Sha256(p.CanonicalJson()));
  EXPECT_EQ(p.Hash().size(), crypto::kSha256Size);
  EXPECT_EQ(p.DomainHash("d"), crypto::Sha256(p.DomainCanonicalJson("d")));
}

TEST(Hash, PurposesAppearInCanonicalJson) {
  Policy p = MustParse(kBase);
  EXPECT_THAT(p.CanonicalJson(),
              HasSubstr(R"("purposes":[{"description":"Campaigns","domains":["growth"],)"
                        R"("erase_on_withdrawal":true,"name":"marketing"}])"));
}

TEST(Hash, UnknownDomainGivesEmptyStrings) {
  Policy p = MustParse(kBase);
  EXPECT_EQ(p.DomainCanonicalJson("billing"), "");
  EXPECT_EQ(p.DomainHash("billing"), "");
}

TEST(Hash, ReformattingReorderingAndCommentsDoNotChangeTheHash) {
  const std::string reformatted =
      "# The same policy as kBase, written differently.\n"
      "domains:\n"
      "  - postgres: {tables: [{action: delete, identity: user_id, key: user_id,\n"
      "                         table: assessments.responses}]}\n"
      "    name: \"assessments\"\n"
      "  - name: growth      # comment\n"
      "    postgres:\n"
      "        tables:\n"
      "        -   identity: 'email'\n"
      "            table: growth.contacts\n"
      "            action: delete\n"
      "            key: email\n"
      "deadlines: {max_extension: 60d, erasure: 720h}   # 720h is 30d\n"
      "purposes:\n"
      "  - erase_on_withdrawal: True\n"
      "    domains:\n"
      "      - growth\n"
      "    description: \"Campaigns\"\n"
      "    name: marketing\n"
      "\n"
      "identities:\n"
      "  - email\n"
      "  - user_id\n"
      "name: 'test-mesh'\n"
      "version: 1\n";
  Policy a = MustParse(kBase);
  Policy b = MustParse(reformatted);
  EXPECT_EQ(a.CanonicalJson(), b.CanonicalJson());
  EXPECT_EQ(a.Hash(), b.Hash());
  EXPECT_EQ(a.DomainHash("growth"), b.DomainHash("growth"));
  EXPECT_EQ(a.DomainHash("assessments"), b.DomainHash("assessments"));
}

TEST(Hash, ChangingATableChangesItsDomainHashOnly) {
  Policy a = MustParse(kBase);
  Policy b = MustParse(Edit(24, "          key: contact_email"));
  EXPECT_NE(a.Hash(), b.Hash());
  EXPECT_NE(a.DomainHash("growth"), b.DomainHash("growth"));
  EXPECT_EQ(a.DomainHash("assessments"), b.DomainHash("assessments"));
  EXPECT_EQ(a.DomainHash("assessments").size(), crypto::kSha256Size);
}

TEST(Hash, TableOrderIsPartOfTheHash) {
  Policy a = MustParse(Edit(26,
                            "          action: delete\n"
                            "        - table: growth.events\n"
                            "          key: email\n"
                            "          identity: email\n"
                            "          action: delete"));
  Policy b = MustParse(Edit(22,
                            "      tables:\n"
                            "        - table: growth.events\n"
                            "          key: email\n"
                            "          identity: email\n"
                            "          action: delete"));
  EXPECT_NE(a.DomainHash("growth"), b.DomainHash("growth"));
}

TEST(Hash, PolicyWideChangesLeaveDomainHashesAlone) {
  Policy a = MustParse(kBase);
  Policy b = MustParse(Edit({{2, "name: other"}, {6, "    description: Other"}}));
  EXPECT_NE(a.Hash(), b.Hash());
  EXPECT_EQ(a.DomainHash("growth"), b.DomainHash("growth"));
  EXPECT_EQ(a.DomainHash("assessments"), b.DomainHash("assessments"));
}

TEST(Hash, CanonicalJsonOfAnonymizeRetainAndKafka) {
  Policy p = MustParse(
      "version: 1\n"
      "name: mini\n"
      "identities: [email]\n"
      "domains:\n"
      "  - name: d\n"
      "    postgres:\n"
      "      tables:\n"
      "        - {table: a, key: email, identity: email, action: anonymize,\n"
      "           set: {email: hash, ip: null, country: \"x\"}}\n"
      "        - {table: r, key: email, identity: email, action: retain, basis: Tax,\n"
      "           period: 1d}\n"
      "    kafka:\n"
      "      topics:\n"
      "        - {topic: t, key: \"e:{email}\"}\n");
  // set is sorted by column: it is a YAML map, and key order never changes a hash.
  EXPECT_EQ(p.DomainCanonicalJson("d"),
            R"({"kafka_topics":[{"key":"e:{email}","topic":"t"}],"name":"d",)"
            R"("postgres":{"tables":[{"action":"anonymize","identity":"email","key":"email",)"
            R"("set":[{"column":"country","kind":"constant","value":"x"},)"
            R"({"column":"email","kind":"hash"},{"column":"ip","kind":"null"}],)"
            R"("table":"public.a"},{"action":"retain","basis":"Tax","identity":"email",)"
            R"("key":"email","period_seconds":86400,"table":"public.r"}]},"version":1})");
  // The model keeps the file's order.
  const Table& a = p.FindDomain("d")->tables[0];
  ASSERT_THAT(a.set, SizeIs(3));
  EXPECT_EQ(a.set[0].column, "email");
  EXPECT_EQ(a.set[2].column, "country");
}

TEST(Hash, AnonymizeChangesChangeItsDomainHashOnly) {
  auto anonymize = [](const std::string& email, const std::string& second) {
    return MustParse(Anonymize("            email: " + email + "\n            " + second));
  };
  Policy a = anonymize("hash", "ip: null");
  for (const Policy& other : {anonymize("null", "ip: null"), anonymize("hash", "ip: \"0.0.0.0\""),
                              anonymize("hash", "ip: hash"), anonymize("hash", "ip_address: null"),
                              MustParse(Anonymize("            email: hash"))}) {
    EXPECT_NE(a.DomainHash("growth"), other.DomainHash("growth"));
    EXPECT_NE(a.Hash(), other.Hash());
    EXPECT_EQ(a.DomainHash("assessments"), other.DomainHash("assessments"));
  }
  EXPECT_NE(anonymize("hash", "ip: \"0.0.0.0\"").DomainHash("growth"),
            anonymize("hash", "ip: \"0.0.0.1\"").DomainHash("growth"));
  // The order of the columns in set: is the order of keys in a map: not part of the hash.
  Policy reordered = MustParse(Anonymize("            ip: null\n            email: hash"));
  EXPECT_EQ(a.DomainHash("growth"), reordered.DomainHash("growth"));
  EXPECT_EQ(a.Hash(), reordered.Hash());
}

TEST(Hash, RetainChangesChangeItsDomainHashOnly) {
  Policy a = MustParse(Retain("\"Tax records\"", "7y"));
  for (const Policy& other :
       {MustParse(Retain("\"Tax records.\"", "7y")), MustParse(Retain("\"Tax records\"", "6y"))}) {
    EXPECT_NE(a.DomainHash("growth"), other.DomainHash("growth"));
    EXPECT_EQ(a.DomainHash("assessments"), other.DomainHash("assessments"));
  }
  // The same basis, unquoted, and the same period in other units (2555 days): the same hash.
  EXPECT_EQ(a.DomainHash("growth"), MustParse(Retain("Tax records", "365w")).DomainHash("growth"));
}

TEST(Hash, KafkaChangesChangeItsDomainHashOnly) {
  Policy none = MustParse(kBase);
  Policy a = MustParse(WithKafka("        - {topic: people, key: \"{email}\"}"));
  for (const Policy& other :
       {MustParse(WithKafka("        - {topic: people, key: \"e:{email}\"}")),
        MustParse(WithKafka("        - {topic: persons, key: \"{email}\"}")), none}) {
    EXPECT_NE(a.DomainHash("growth"), other.DomainHash("growth"));
    EXPECT_EQ(a.DomainHash("assessments"), other.DomainHash("assessments"));
  }
}

// ---------------------------------------------------------------------------------------
// Published test vectors: tests/testdata/policy_hash (its README lists the files), specified
// in ledger/FORMAT.md section 9. An auditor's own implementation is checked against them, so
// any change of canonical bytes or hashes, for any vector, must fail here: existing ledgers
// record these hashes.

std::filesystem::path HashVectorDir() {
  return std::filesystem::path(LETHE_SOURCE_DIR) / "tests" / "testdata" / "policy_hash";
}

// A file's exact bytes; a missing or unreadable file fails the test (and gives "").
std::string ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    return "";
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Hash, PublishedVectorsAreReproducedByteForByte) {
  std::vector<std::string> names;  // NAME of every NAME.yaml
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(HashVectorDir())) {
    if (!e.is_regular_file()) continue;
    const std::string file = e.path().filename().string();
    files.insert(file);
    if (file.size() > 5 && file.ends_with(".yaml")) {
      names.push_back(file.substr(0, file.size() - 5));
    }
  }
  std::sort(names.begin(), names.end());
  // The vectors FORMAT.md and the README promise; more may be added.
  EXPECT_THAT(names, testing::IsSupersetOf(
                         {"minimal", "sample", "full-example", "features", "yaml-forms", "normalized"}));

  std::set<std::string> used = {"README", ".gitattributes"};
  // NAME.canonical.json is `canonical` exactly, and NAME.sha256 the hex of `hash` and a newline.
  auto check = [&used](const std::string& stem, const std::string& canonical,
                       const std::string& hash) {
    SCOPED_TRACE(stem);
    used.insert(stem + ".canonical.json");
    used.insert(stem + ".sha256");
    const std::string want = ReadBytes(HashVectorDir() / (stem + ".canonical.json"));
    const std::string want_hex = ReadBytes(HashVectorDir() / (stem + ".sha256"));
    EXPECT_EQ(canonical, want);
    EXPECT_EQ(crypto::Hex(hash) + "\n", want_hex);
    // The two files agree with each other, whatever the code does.
    EXPECT_EQ(crypto::Hex(crypto::Sha256(want)) + "\n", want_hex);
  };
  for (const std::string& name : names) {
    SCOPED_TRACE(name + ".yaml");
    used.insert(name + ".yaml");
    absl::StatusOr<Policy> policy =
        Policy::Parse(ReadBytes(HashVectorDir() / (name + ".yaml")), name + ".yaml");
    ASSERT_TRUE(policy.ok()) << policy.status();
    check(name, policy->CanonicalJson(), policy->Hash());
    for (const Domain& d : policy->domains()) {
      check(name + ".domain-" + d.name, policy->DomainCanonicalJson(d.name),
            policy->DomainHash(d.name));
    }
  }
  // A file no vector uses (say, of a domain since removed) would be a vector nobody checks.
  for (const std::string& file : files) {
    EXPECT_TRUE(used.contains(file))
        << "tests/testdata/policy_hash/" << file << " belongs to no policy vector";
  }
}

TEST(Hash, FormatMdInlineVectorIsTheMinimalVector) {
  const std::string doc =
      ReadBytes(std::filesystem::path(LETHE_SOURCE_DIR) / "ledger" / "FORMAT.md");
  const size_t at = doc.find("\n## 9. Policy hash: the canonical policy form\n");
  ASSERT_NE(at, std::string::npos) << "ledger/FORMAT.md has no section 9";
  const std::string section = doc.substr(at);
  auto bytes = [](const std::string& file) { return ReadBytes(HashVectorDir() / file); };
  auto hex = [&bytes](const std::string& file) {  // without the newline
    std::string s = bytes(file);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  };
  EXPECT_THAT(section, HasSubstr("```yaml\n" + bytes("minimal.yaml") + "```\n"));
  EXPECT_THAT(section, HasSubstr("```\n" + bytes("minimal.canonical.json") + "\n```\n"));
  EXPECT_THAT(section, HasSubstr("`" + hex("minimal.sha256") + "`"));
  EXPECT_THAT(section,
              HasSubstr("```\n" + bytes("minimal.domain-shop.canonical.json") + "\n```\n"));
  EXPECT_THAT(section, HasSubstr("`" + hex("minimal.domain-shop.sha256") + "`"));
}

}  // namespace
}  // namespace lethe::policies

namespace lethe::policies {
namespace {

// kBase with an s3 section for domain growth: its buckets start at line 30.
std::string WithS3(const std::string& buckets, const std::string& head = "      region: eu-west-1\n") {
  return std::string(kBase) + "    s3:\n" + head + "      buckets:\n" + buckets;
}

constexpr char kTwoBuckets[] =
    "        - bucket: growth-exports\n"     // 30
    "          objects: \"users/{user_id}/\"\n"
    "          action: delete\n"
    "        - bucket: growth-events\n"      // 33
    "          jsonl: \"events/\"\n"
    "          field: email\n"
    "          identity: email\n"
    "          action: delete\n"
    "        - bucket: billing.archive\n"    // 38
    "          objects: \"invoices/{email}/{user_id}/\"\n"
    "          action: retain\n"
    "          basis: Tax records\n"
    "          period: 7y\n";

TEST(S3Section, ParsesEveryEntryInFileOrder) {
  const Policy p = MustParse(WithS3(kTwoBuckets, "      endpoint: http://127.0.0.1:4568/\n      region: eu-west-1\n"));
  const Domain* growth = p.FindDomain("growth");
  ASSERT_NE(growth, nullptr);
  EXPECT_EQ(growth->s3.endpoint, "http://127.0.0.1:4568") << "the trailing / is not part of it";
  EXPECT_EQ(growth->s3.region, "eu-west-1");
  ASSERT_EQ(growth->s3.buckets.size(), 3u);
  const S3Bucket& exports = growth->s3.buckets[0];
  EXPECT_EQ(exports.kind, S3Bucket::Kind::kObjects);
  EXPECT_EQ(exports.prefix, "users/{user_id}/");
  EXPECT_THAT(exports.identities, ElementsAre("user_id"));
  const S3Bucket& events = growth->s3.buckets[1];
  EXPECT_EQ(events.kind, S3Bucket::Kind::kJsonl);
  EXPECT_EQ(events.prefix, "events/");
  EXPECT_EQ(events.field, "email");
  EXPECT_EQ(events.identity, "email");
  EXPECT_EQ(events.match, Match::kExact);
  const S3Bucket& archive = growth->s3.buckets[2];
  EXPECT_EQ(archive.action, TableAction::kRetain);
  EXPECT_EQ(archive.period, absl::Hours(24 * 365 * 7));
  EXPECT_THAT(archive.identities, ElementsAre("email", "user_id"));
  // The planner's identity types: tables first, then the buckets'.
  EXPECT_THAT(growth->IdentityTypes(), ElementsAre("email", "user_id"));
  EXPECT_THAT(p.ErasureScope({"email"}, {"growth"}),
              ElementsAre(AllOf(Field(&Policy::DomainInScope::domain, "growth"),
                                Field(&Policy::DomainInScope::missing_types, ElementsAre("user_id")))));
}

TEST(S3Section, IsInTheDomainHashAndADomainWithoutOneKeepsItsHash) {
  const Policy without = MustParse(kBase);
  const Policy with = MustParse(WithS3(kTwoBuckets));
  EXPECT_EQ(without.DomainHash("assessments"), with.DomainHash("assessments"));
  EXPECT_NE(without.DomainHash("growth"), with.DomainHash("growth"));
  EXPECT_THAT(with.DomainCanonicalJson("growth"),
              HasSubstr("\"s3\":{\"buckets\":[{\"action\":\"delete\",\"bucket\":\"growth-exports\","
                        "\"objects\":\"users/{user_id}/\"},{\"action\":\"delete\",\"bucket\":\"growth-events\","
                        "\"field\":\"email\",\"identity\":\"email\",\"jsonl\":\"events/\"},{\"action\":\"retain\","
                        "\"basis\":\"Tax records\",\"bucket\":\"billing.archive\",\"objects\":"
                        "\"invoices/{email}/{user_id}/\",\"period_seconds\":220752000}],\"region\":\"eu-west-1\"}"));
  const Policy elsewhere = MustParse(WithS3(kTwoBuckets, "      endpoint: https://s3.example.net\n      region: eu-west-1\n"));
  EXPECT_NE(elsewhere.DomainHash("growth"), with.DomainHash("growth")) << "the endpoint is part of the section";
}

TEST(S3Section, ADomainMayHaveOnlyAnS3Section) {
  const std::string yaml = Edit({{21, "    s3:\n      region: eu-west-1\n      buckets:\n"
                                      "        - bucket: growth-exports\n          objects: \"u/{email}/\"\n"
                                      "          action: delete"},
                                 {22, kDeleteLine}, {23, kDeleteLine}, {24, kDeleteLine}, {25, kDeleteLine},
                                 {26, kDeleteLine}});
  const Policy p = MustParse(yaml);
  EXPECT_TRUE(p.FindDomain("growth")->tables.empty());
  EXPECT_EQ(p.FindDomain("growth")->s3.buckets.size(), 1u);
}

std::vector<std::string> Messages(const std::string& yaml) {
  std::vector<std::string> out;
  for (const Diagnostic& d : Policy::Validate(yaml)) out.push_back(d.message);
  return out;
}

TEST(S3Section, BadEntriesAreNamedWithWhatIsExpected) {
  const std::string entry = "        - bucket: growth-exports\n";
  EXPECT_THAT(Messages(WithS3("        - bucket: Bad_Bucket\n          objects: \"u/{email}/\"\n          action: delete\n")),
              ElementsAre(HasSubstr("bad bucket name \"Bad_Bucket\"")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"users/{user_id}\"\n          action: delete\n")),
              ElementsAre(HasSubstr("ends with a placeholder")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"users/all/\"\n          action: delete\n")),
              ElementsAre(HasSubstr("it has no placeholder")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{phone}/\"\n          action: delete\n")),
              ElementsAre(HasSubstr("uses identity type \"phone\" in its key prefix")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          jsonl: \"e/\"\n          action: delete\n")),
              ElementsAre(HasSubstr("has both objects and jsonl")));
  EXPECT_THAT(Messages(WithS3(entry + "          action: delete\n")), ElementsAre(HasSubstr("has neither objects")));
  EXPECT_THAT(Messages(WithS3(entry + "          jsonl: \"e/\"\n          action: delete\n")),
              ElementsAre(HasSubstr("no \"field\""), HasSubstr("no \"identity\"")));
  EXPECT_THAT(Messages(WithS3(entry + "          jsonl: \"e/{email}/\"\n          field: email\n          identity: email\n"
                                      "          action: delete\n")),
              ElementsAre(HasSubstr("holds a brace")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          field: email\n          action: delete\n")),
              ElementsAre(HasSubstr("key \"field\" is only for jsonl buckets")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          action: anonymize\n")),
              ElementsAre(HasSubstr("cannot be anonymized in place")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          action: retain\n")),
              ElementsAre(HasSubstr("no \"basis\""), HasSubstr("no \"period\"")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          action: delete\n          period: 7y\n")),
              ElementsAre(HasSubstr("key \"period\" is only for action retain")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          action: delete\n" + entry +
                              "          objects: \"u/{email}/\"\n          action: delete\n")),
              ElementsAre(HasSubstr("duplicate entry for bucket \"growth-exports\"")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          action: delete\n", "")),
              ElementsAre(HasSubstr("has no region")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          action: delete\n",
                              "      endpoint: ftp://host/path\n      region: eu-west-1\n")),
              ElementsAre(HasSubstr("bad endpoint \"ftp://host/path\"")));
  EXPECT_THAT(Messages(WithS3(entry + "          objects: \"u/{email}/\"\n          action: delete\n",
                              "      region: eu-west-1\n      credentials: x\n")),
              ElementsAre(HasSubstr("credentials")));
  EXPECT_THAT(Messages(WithS3("")), ElementsAre(HasSubstr("buckets in domain \"growth\" must be a list")));
}

}  // namespace
}  // namespace lethe::policies

namespace lethe::policies {
namespace {

// kBase with a kafka section for growth whose topic lists `sinks` (starting at line 31), and
// an s3 section naming bucket growth-exports.
std::string WithSinks(const std::string& sinks) {
  return std::string(kBase) +
         "    kafka:\n      topics:\n        - topic: mesh.growth.contacts\n          key: \"{email}\"\n"
         "          sinks:\n" +
         sinks +
         "    s3:\n      region: eu-west-1\n      buckets:\n        - bucket: growth-exports\n"
         "          objects: \"u/{email}/\"\n          action: delete\n";
}

TEST(Sinks, ParseWithWhatErasesEachCopy) {
  const Policy p = MustParse(WithSinks(
      "            - {name: contacts-es, kind: elasticsearch, deletes_on_tombstone: true}\n"
      "            - {name: contacts-archive, kind: s3, deletes_on_tombstone: false, covered_by: {s3_bucket: growth-exports}}\n"
      "            - {name: contacts-jdbc, kind: jdbc, deletes_on_tombstone: false, covered_by: {table: growth.contacts}}\n"
      "            - {name: contacts-warehouse, kind: other, deletes_on_tombstone: false}\n"));
  const auto& sinks = p.FindDomain("growth")->kafka_topics[0].sinks;
  ASSERT_EQ(sinks.size(), 4u);
  EXPECT_EQ(sinks[0].kind, Sink::Kind::kElasticsearch);
  EXPECT_FALSE(sinks[0].Gap());
  EXPECT_EQ(sinks[1].covered_by_bucket, "growth-exports");
  EXPECT_FALSE(sinks[1].Gap());
  EXPECT_EQ(sinks[2].covered_by_table, "growth.contacts");
  EXPECT_FALSE(sinks[2].Gap());
  EXPECT_TRUE(sinks[3].Gap());
  EXPECT_THAT(p.DomainCanonicalJson("growth"),
              HasSubstr("{\"key\":\"{email}\",\"sinks\":[{\"deletes_on_tombstone\":true,\"kind\":\"elasticsearch\","
                        "\"name\":\"contacts-es\"},{\"covered_by\":{\"s3_bucket\":\"growth-exports\"},"
                        "\"deletes_on_tombstone\":false,\"kind\":\"s3\",\"name\":\"contacts-archive\"},"
                        "{\"covered_by\":{\"table\":\"growth.contacts\"},\"deletes_on_tombstone\":false,\"kind\":"
                        "\"jdbc\",\"name\":\"contacts-jdbc\"},{\"deletes_on_tombstone\":false,\"kind\":\"other\","
                        "\"name\":\"contacts-warehouse\"}],\"topic\":\"mesh.growth.contacts\"}"));
  // A topic without sinks keeps the form (and the hash) it had before sinks existed.
  EXPECT_THAT(MustParse(WithKafka("        - topic: t1\n          key: \"{email}\"")).DomainCanonicalJson("growth"),
              HasSubstr("{\"key\":\"{email}\",\"topic\":\"t1\"}"));
}

TEST(Sinks, ACoveredByMustNameOneOfTheDomainsOwnBucketsOrTables) {
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: s3, deletes_on_tombstone: false, covered_by: {s3_bucket: other-bucket}}\n")),
              ElementsAre(HasSubstr("names S3 bucket \"other-bucket\", which is not in the s3 section of domain \"growth\"")));
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: jdbc, deletes_on_tombstone: false, covered_by: {table: growth.nope}}\n")),
              ElementsAre(HasSubstr("names table growth.nope, which is not in the postgres section")));
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: jdbc, deletes_on_tombstone: true, covered_by: {table: growth.contacts}}\n")),
              ElementsAre(HasSubstr("is for a sink that does not delete on tombstones")));
  EXPECT_THAT(Messages(Retain("x", "7y") + "    kafka:\n      topics:\n        - topic: t\n          key: \"{email}\"\n"
                       "          sinks:\n            - {name: a, kind: jdbc, deletes_on_tombstone: false, "
                       "covered_by: {table: growth.contacts}}\n"),
              ElementsAre(HasSubstr("whose action in domain \"growth\" is retain")));
  EXPECT_THAT(Messages(WithSinks("")), ElementsAre(HasSubstr("sinks of topic mesh.growth.contacts of domain \"growth\" must be a list")));
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: s3, deletes_on_tombstone: false, covered_by: {s3_bucket: growth-exports, table: growth.contacts}}\n")),
              ElementsAre(HasSubstr("exactly one of s3_bucket and table")));
}

TEST(Sinks, BadEntriesAreNamed) {
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: elastic, deletes_on_tombstone: true}\n")),
              ElementsAre(HasSubstr("unknown kind \"elastic\"")));
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: jdbc, deletes_on_tombstone: yes}\n")),
              ElementsAre(HasSubstr("must be true or false, got \"yes\"")));
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: jdbc}\n")),
              ElementsAre(HasSubstr("is missing \"deletes_on_tombstone\"")));
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: jdbc, deletes_on_tombstone: true}\n"
                                 "            - {name: a, kind: s3, deletes_on_tombstone: true}\n")),
              ElementsAre(HasSubstr("duplicate sink a")));
  EXPECT_THAT(Messages(WithSinks("            - {name: \"a b\", kind: jdbc, deletes_on_tombstone: true}\n")),
              ElementsAre(HasSubstr("bad sink name \"a b\"")));
  EXPECT_THAT(Messages(WithSinks("            - {name: a, kind: jdbc, deletes_on_tombstone: true, delete: true}\n")),
              ElementsAre(HasSubstr("unknown key \"delete\"")));
}

}  // namespace
}  // namespace lethe::policies

namespace lethe::policies {
namespace {

// Line 26 is growth.contacts' "action: delete".
TEST(Vacuum, EachValueIsReadAndIsInTheDomainHashOnlyWhereWritten) {
  const Policy plain = MustParse(kBase);
  const Policy after = MustParse(Edit(26, "          action: delete\n          vacuum: after_purge"));
  const Policy full = MustParse(Edit(26, "          action: delete\n          vacuum: full_after_purge"));
  EXPECT_EQ(plain.FindDomain("growth")->tables[0].vacuum, Table::Vacuum::kWatch);
  EXPECT_EQ(after.FindDomain("growth")->tables[0].vacuum, Table::Vacuum::kAfterPurge);
  EXPECT_EQ(full.FindDomain("growth")->tables[0].vacuum, Table::Vacuum::kFullAfterPurge);
  EXPECT_THAT(plain.DomainCanonicalJson("growth"), Not(HasSubstr("vacuum")));
  EXPECT_THAT(after.DomainCanonicalJson("growth"), HasSubstr("\"vacuum\":\"after_purge\""));
  EXPECT_NE(plain.DomainHash("growth"), after.DomainHash("growth")) << "the agent's behaviour changed";
  EXPECT_NE(after.DomainHash("growth"), full.DomainHash("growth"));
  EXPECT_EQ(plain.DomainHash("assessments"), after.DomainHash("assessments"));
}

TEST(Vacuum, AnUnknownValueIsRefusedWithTheCloseWord) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: delete\n          vacuum: after-purge")),
              ElementsAre(Diag(27, 19,
                               "unknown vacuum \"after-purge\" for table growth.contacts: expected \"after_purge\" "
                               "or \"full_after_purge\" (did you mean \"after_purge\"?)")));
}

TEST(Vacuum, ARetainTableHasNothingToVacuum) {
  EXPECT_THAT(Policy::Validate(Edit(26, "          action: retain\n          basis: Tax law\n          period: 7y\n"
                                        "          vacuum: after_purge")),
              ElementsAre(Diag(29, 11,
                               "key \"vacuum\" is only for actions delete and anonymize (table growth.contacts keeps "
                               "its rows: a purge leaves nothing to vacuum)")));
}

}  // namespace
}  // namespace lethe::policies
