// Consent: changes recorded in the ledger as tokens, shown and listed, published to the
// compacted topic lethe.consent, and a withdrawal of an erase_on_withdrawal purpose that
// erases the person in that purpose's domains only, end to end.
#include <google/protobuf/util/json_util.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/envelope.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(90);

grpc::Status Change(Mesh& m, const std::string& type, const std::string& value,
                    const std::string& purpose, v1::ConsentStatus status, const std::string& source,
                    v1::ConsentChangeView* out = nullptr) {
  v1::ChangeConsentRequest req;
  req.mutable_identity()->set_type(type);
  req.mutable_identity()->set_value(value);
  req.set_purpose(purpose);
  req.set_status(status);
  req.set_source(source);
  v1::ConsentChangeView resp;
  grpc::ClientContext ctx;
  grpc::Status s = m.Consent()->Change(&ctx, req, &resp);
  if (out != nullptr) *out = resp;
  return s;
}

// ledger/FORMAT.md §2.1: a source is free text in clear, so it may not look like anyone's
// identifier; lethed refuses it before anything is written, naming the field.
TEST(Consent, ASourceThatLooksLikeAnIdentifierIsRefusedAndNothingIsRecorded) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  const uint64_t entries = mesh.lethed().ledger().size();
  for (const std::string source : {"alice@example.com", "call +44 20 7946 0958", "crm id 73310042"}) {
    grpc::Status s = Change(mesh, "email", kAlice.email, "marketing", v1::GRANTED, source);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << source;
    EXPECT_THAT(s.error_message(), HasSubstr("source:"));
    EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr(source)));
  }
  EXPECT_EQ(mesh.lethed().ledger().size(), entries);
  ASSERT_TRUE(Change(mesh, "email", kAlice.email, "marketing", v1::GRANTED, "import 2026-12-04").ok());
  EXPECT_EQ(mesh.lethed().ledger().size(), entries + 1);
}

TEST(Consent, ChangesAreRecordedAsTokensShownAndListed) {
  Mesh::Options o;
  o.domains = {"assessments", "growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;

  // From the CLI: grant, then withdraw research (a purpose without erase_on_withdrawal).
  auto g1 = RunLethectl(mesh, {"consent", "grant", "--identity", "email=" + kAlice.email, "--purpose",
                       "marketing", "--source", "signup-form-v3"});
  ASSERT_EQ(g1.exit_code, 0) << g1.output;
  auto g2 = RunLethectl(mesh, {"consent", "grant", "--identity", "email=" + kAlice.email, "--purpose",
                       "research", "--source", "signup-form-v3"});
  ASSERT_EQ(g2.exit_code, 0) << g2.output;
  const uint64_t requests_before = mesh.lethed().store().List().value().size();
  auto w = RunLethectl(mesh, {"consent", "withdraw", "--identity", "email=" + kAlice.email, "--purpose",
                      "research", "--source", "preference-centre"});
  ASSERT_EQ(w.exit_code, 0) << w.output;
  EXPECT_THAT(w.output, Not(HasSubstr("erasure planned")));
  EXPECT_EQ(mesh.lethed().store().List().value().size(), requests_before);  // research erases nothing
  ASSERT_TRUE(Change(mesh, "email", kBob.email, "marketing", v1::GRANTED, "import-2026-11").ok());

  // show: current state per purpose and the full history, with times and sources.
  auto shown = RunLethectl(mesh, {"-o", "json", "consent", "show", "--identity", "email=" + kAlice.email});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  v1::ShowConsentResponse show;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(shown.output, &show).ok()) << shown.output;
  ASSERT_EQ(show.current_size(), 2);
  EXPECT_EQ(show.current(0).purpose(), "marketing");
  EXPECT_EQ(show.current(0).status(), v1::GRANTED);
  EXPECT_EQ(show.current(1).purpose(), "research");
  EXPECT_EQ(show.current(1).status(), v1::WITHDRAWN);
  EXPECT_EQ(show.current(1).source(), "preference-centre");
  ASSERT_EQ(show.history_size(), 3);
  EXPECT_EQ(show.history(1).source(), "signup-form-v3");
  EXPECT_GT(show.history(2).changed_unix_ms(), 0);
  EXPECT_LT(show.history(0).entry(), show.history(2).entry());
  auto text = RunLethectl(mesh, {"consent", "show", "--identity", "email=" + kAlice.email});
  EXPECT_THAT(text.output, HasSubstr("WITHDRAWN"));
  EXPECT_THAT(text.output, HasSubstr("preference-centre"));
  EXPECT_THAT(text.output, Not(HasSubstr(kAlice.email)));
  auto nobody = RunLethectl(mesh, {"consent", "show", "--identity", "email=nobody@example.com"});
  EXPECT_EQ(nobody.exit_code, 0);
  EXPECT_THAT(nobody.output, HasSubstr("no consent recorded"));

  // list: by purpose, JSON.
  auto listed = RunLethectl(mesh, {"consent", "list", "--purpose", "marketing", "-o", "json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  v1::ListConsentResponse list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(listed.output, &list).ok()) << listed.output;
  ASSERT_EQ(list.records_size(), 2);
  EXPECT_EQ(list.records(0).subject_token(), show.subject_token());
  EXPECT_EQ(list.records(1).source(), "import-2026-11");
  auto withdrawn = RunLethectl(mesh, {"consent", "list", "--purpose", "research", "--status", "withdrawn", "-o", "json"});
  ASSERT_EQ(withdrawn.exit_code, 0);
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(withdrawn.output, &list).ok());
  EXPECT_EQ(list.records_size(), 1);

  // The ledger holds tokens only, and the auditor accepts it.
  EXPECT_THAT(FilesContaining(mesh.data_dir() + "/ledger", kAlice.email), ::testing::IsEmpty());
  EXPECT_THAT(FilesContaining(mesh.data_dir() + "/ledger", kBob.email), ::testing::IsEmpty());
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--dir", mesh.data_dir(), "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("4 change(s)"));

  // Restarted, lethed rebuilds the same state from the ledger.
  mesh.StopLethed();
  ASSERT_OK(mesh.StartLethed());
  auto again = RunLethectl(mesh, {"-o", "json", "consent", "show", "--identity", "email=" + kAlice.email});
  v1::ShowConsentResponse show2;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(again.output, &show2).ok()) << again.output;
  EXPECT_EQ(show2.history_size(), 3);
  EXPECT_EQ(show2.current(1).status(), v1::WITHDRAWN);
}

TEST(Consent, BadInputIsRefusedNamingTheFieldAndNothingIsRecorded) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  const uint64_t size = mesh.lethed().ledger().size();
  struct Case {
    std::string type, value, purpose;
    v1::ConsentStatus status;
    std::string source, field;
  };
  const std::vector<Case> cases = {
      {"email", kAlice.email, "telepathy", v1::GRANTED, "form", "purpose"},
      {"email", kAlice.email, "", v1::GRANTED, "form", "purpose"},
      {"phone", "123", "marketing", v1::GRANTED, "form", "identity.type"},
      {"email", "", "marketing", v1::GRANTED, "form", "identity.value"},
      {"email", kAlice.email, "marketing", v1::CONSENT_STATUS_UNSPECIFIED, "form", "status"},
      {"email", kAlice.email, "marketing", v1::GRANTED, "", "source"},
      {"email", kAlice.email, "marketing", v1::GRANTED, std::string(300, 's'), "source"},
      {"email", kAlice.email, "marketing", v1::GRANTED, "line\nbreak", "source"},
  };
  for (const auto& c : cases) {
    grpc::Status s = Change(mesh, c.type, c.value, c.purpose, c.status, c.source);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), ::testing::StartsWith(c.field)) << s.error_message();
    EXPECT_THAT(s.error_message(), Not(HasSubstr(kAlice.email)));
  }
  EXPECT_EQ(mesh.lethed().ledger().size(), size);
  auto cli = RunLethectl(mesh, {"consent", "grant", "--identity", "email", "--purpose", "marketing",
                        "--source", "x"});
  EXPECT_EQ(cli.exit_code, 2);
  EXPECT_THAT(cli.output, HasSubstr("TYPE=VALUE"));
}

TEST(Consent, WithdrawalOfAnErasingPurposeErasesInThatPurposesDomainsOnly) {
  Mesh::Options o;
  o.domains = {"assessments", "growth"};
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  ASSERT_OK(mesh.Plant(kAlice));
  ASSERT_OK(mesh.Plant(kBob));
  const int64_t assessments_rows = *mesh.Rows("assessments", kAlice);

  ASSERT_TRUE(Change(mesh, "email", kAlice.email, "marketing", v1::GRANTED, "signup-form-v3").ok());
  auto w = RunLethectl(mesh, {"consent", "withdraw", "--identity", "email=" + kAlice.email, "--purpose",
                      "marketing", "--source", "unsubscribe-link"});
  ASSERT_EQ(w.exit_code, 0) << w.output;
  EXPECT_THAT(w.output, HasSubstr("erasure planned"));
  auto history = mesh.lethed().projections().consent.ByPurpose("marketing");
  ASSERT_EQ(history.size(), 1u);
  const auto change = history[0];
  ASSERT_FALSE(change.erasure_request_id.empty());
  const std::string id = change.erasure_request_id;

  auto done = mesh.WaitDone(id, kWait);
  ASSERT_OK(done);
  EXPECT_EQ(done->state(), v1::COMPLETED);
  // Scoped to marketing's domains: growth only.
  ASSERT_EQ(done->domains_size(), 1);
  EXPECT_EQ(done->domains(0).domain(), "growth");
  EXPECT_EQ(done->scope_purpose(), "marketing");
  EXPECT_EQ(done->consent_change_id(), change.change_id);
  EXPECT_EQ(done->consent_entry(), change.entry);
  EXPECT_EQ(*mesh.Rows("growth", kAlice), 0);
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), assessments_rows);
  EXPECT_EQ(*mesh.Rows("growth", kBob), 3);
  auto get = RunLethectl(mesh, {"request", "get", id});
  EXPECT_THAT(get.output, HasSubstr("planned by consent withdrawal for purpose marketing"));
  EXPECT_THAT(get.output, HasSubstr("ledger entry " + std::to_string(change.entry)));

  // The certificate includes the consent change and verifies offline.
  auto v = CertifyAndVerify(mesh, id);
  EXPECT_THAT(v.output, HasSubstr("the domains of purpose marketing"));

  // Withdrawing again plans nothing new; granting and withdrawing again does.
  const size_t requests = mesh.lethed().store().List().value().size();
  ASSERT_TRUE(Change(mesh, "email", kAlice.email, "marketing", v1::WITHDRAWN, "second-click").ok());
  EXPECT_EQ(mesh.lethed().store().List().value().size(), requests);
  ASSERT_TRUE(Change(mesh, "email", kAlice.email, "marketing", v1::GRANTED, "re-signup").ok());
  v1::ConsentChangeView again;
  ASSERT_TRUE(Change(mesh, "email", kAlice.email, "marketing", v1::WITHDRAWN, "unsubscribe", &again).ok());
  EXPECT_FALSE(again.change().erasure_request_id().empty());
  EXPECT_EQ(mesh.lethed().store().List().value().size(), requests + 1);
  auto audit = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

TEST(Consent, CurrentStateIsPublishedSignedToTheCompactedConsentTopic) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  v1::ConsentChangeView a1, a2, b1;
  ASSERT_TRUE(Change(mesh, "email", kAlice.email, "marketing", v1::GRANTED, "form", &a1).ok());
  ASSERT_TRUE(Change(mesh, "email", kAlice.email, "marketing", v1::WITHDRAWN, "unsubscribe", &a2).ok());
  ASSERT_TRUE(Change(mesh, "email", kBob.email, "marketing", v1::GRANTED, "form", &b1).ok());
  auto& publisher = mesh.lethed().consent_publisher();
  ASSERT_TRUE(WaitFor([&] { return publisher.published_through() >= b1.change().entry(); }, kWait));

  auto records = ReadTopic(mesh.kafka_bootstrap(), kafka::kConsentTopic);
  ASSERT_OK(records);
  auto key = crypto::Ed25519PublicKey::LoadFile(mesh.lethed_pub());
  ASSERT_OK(key);
  std::map<std::string, v1::ConsentState> latest;
  for (const auto& r : *records) {
    ASSERT_TRUE(r.key.has_value() && r.value.has_value());
    EXPECT_THAT(*r.key, Not(HasSubstr("@")));
    EXPECT_THAT(*r.value, Not(HasSubstr(kAlice.email)));
    v1::SignedEnvelope env;
    ASSERT_TRUE(env.ParseFromString(*r.value));
    auto body = proto::VerifyEnvelope(env, proto::kConsentStateType, *key);
    ASSERT_OK(body);
    v1::ConsentState st;
    ASSERT_TRUE(st.ParseFromString(*body));
    EXPECT_EQ(*r.key, "email:" + crypto::Hex(st.subject_token()) + ":" + st.purpose());
    latest[*r.key] = st;
  }
  // Keyed by subject token and purpose: compaction leaves one current state per key.
  ASSERT_EQ(latest.size(), 2u);
  const std::string alice_key = "email:" + a2.change().subject_token() + ":marketing";
  ASSERT_TRUE(latest.count(alice_key));
  EXPECT_EQ(latest[alice_key].status(), v1::WITHDRAWN);
  EXPECT_EQ(latest[alice_key].source(), "unsubscribe");
  EXPECT_EQ(latest[alice_key].ledger_entry(), a2.change().entry());
  EXPECT_EQ(latest["email:" + b1.change().subject_token() + ":marketing"].status(), v1::GRANTED);
}

}  // namespace
}  // namespace lethe::testing
