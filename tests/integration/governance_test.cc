// Policy activation and drift, deadlines (overdue detection on an injected clock, extensions
// within the cap) and identity mapping (domains that need an identity the request lacks).
// Real PostgreSQL, embedded Kafka, lethed in process, lethectl as a child process.
#include <google/protobuf/util/json_util.h>

#include <prometheus/metric_family.h>

#include <atomic>
#include <thread>

#include "base/file_system.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/assertions.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(90);

const v1::DomainProgress* FindDomain(const v1::RequestView& v, const std::string& domain) {
  for (const auto& d : v.domains())
    if (d.domain() == domain) return &d;
  return nullptr;
}

absl::StatusOr<v1::RequestView> Get(Mesh& m, const std::string& id) {
  v1::GetRequestRequest req;
  req.set_request_id(id);
  v1::RequestView view;
  grpc::ClientContext ctx;
  grpc::Status s = m.Requests()->Get(&ctx, req, &view);
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return view;
}

grpc::Status Extend(Mesh& m, const std::string& id, absl::Duration by, const std::string& reason,
                    v1::RequestView* out = nullptr) {
  v1::ExtendRequest req;
  req.set_request_id(id);
  req.set_extension_seconds(absl::ToInt64Seconds(by));
  req.set_reason(reason);
  v1::RequestView view;
  grpc::ClientContext ctx;
  grpc::Status s = m.Requests()->Extend(&ctx, req, &view);
  if (out != nullptr) *out = view;
  return s;
}

absl::StatusOr<std::string> EraseOne(Mesh& m, const std::string& type, const std::string& value) {
  v1::SubmitRequest req;
  auto* e = req.add_identities();
  e->set_type(type);
  e->set_value(value);
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = m.Requests()->Submit(&ctx, req, &resp);
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return resp.request_id();
}

double Metric(const controlplane::Lethed& d, const std::string& name) {
  for (const auto& f : d.metrics().Collect())
    if (f.name == name && !f.metric.empty()) return f.metric[0].gauge.value;
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

// ---- policy activation ---------------------------------------------------------------------

TEST(PolicyActivation, ActivateShowHistoryAndRestartKeepTheActivePolicy) {
  Mesh::Options o;
  o.domains = {"assessments", "growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;

  // lethed --policy recorded the first activation.
  auto shown = RunLethectl(mesh, {"-o", "json", "policy", "show"});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  v1::ShowPolicyResponse show;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(shown.output, &show).ok()) << shown.output;
  EXPECT_EQ(show.active().activation(), 1u);
  EXPECT_THAT(show.active().source(), HasSubstr("lethed --policy"));
  const auto v1_policy = policies::Policy::LoadFile(mesh.policy_path());
  ASSERT_OK(v1_policy);
  EXPECT_EQ(show.active().policy_hash(), crypto::Hex(v1_policy->Hash()));

  // A second version with a 10-day deadline.
  std::string v2 = MeshPolicy(o.domains);
  const std::string from = "erasure: 30d";
  v2.replace(v2.find(from), from.size(), "erasure: 10d");
  const std::string v2_path = mesh.work_dir() + "/policy-v2.yaml";
  ASSERT_OK(lethe::WriteFileAtomic(v2_path, v2, 0644));
  auto act = RunLethectl(mesh, {"policy", "activate", v2_path});
  ASSERT_EQ(act.exit_code, 0) << act.output;
  EXPECT_THAT(act.output, HasSubstr("activation 2"));
  auto v2_policy = policies::Policy::Parse(v2, "v2");
  ASSERT_OK(v2_policy);

  // New requests are planned with it and record its hash.
  auto id = mesh.Erase(kAlice);
  ASSERT_OK(id);
  auto view = Get(mesh, *id);
  ASSERT_OK(view);
  EXPECT_EQ(view->policy_hash(), crypto::Hex(v2_policy->Hash()));
  EXPECT_EQ(view->due_unix_ms() - view->received_unix_ms(), absl::ToInt64Milliseconds(absl::Hours(240)));

  // Activating it again changes nothing.
  const uint64_t size = mesh.lethed().ledger().size();
  auto again = RunLethectl(mesh, {"policy", "activate", v2_path});
  // Exit 0 and "unchanged", as `kubectl apply` says of an object that matches: a pipeline
  // may activate on every deploy.
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("unchanged: " + v2_path + " is the active policy (activation 2"));
  EXPECT_EQ(mesh.lethed().ledger().size(), size);
  auto again_json = RunLethectl(mesh, {"-o", "json", "policy", "activate", v2_path});
  EXPECT_EQ(again_json.exit_code, 0) << again_json.output;
  EXPECT_THAT(again_json.output, HasSubstr("\"unchanged\": true"));
  EXPECT_EQ(mesh.lethed().ledger().size(), size);
  // An invalid file is refused with line and column, and nothing is recorded.
  const std::string bad_path = mesh.work_dir() + "/bad.yaml";
  std::string bad = v2;
  bad.replace(bad.find("action: delete"), 14, "action: shred");
  ASSERT_OK(lethe::WriteFileAtomic(bad_path, bad, 0644));
  auto refused = RunLethectl(mesh, {"policy", "activate", bad_path});
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_THAT(refused.output, ::testing::ContainsRegex("bad\\.yaml:[0-9]+:[0-9]+: .*shred"));
  EXPECT_EQ(mesh.lethed().ledger().size(), size);

  // The text view shows the history.
  auto text = RunLethectl(mesh, {"policy", "show"});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr("activation 2"));
  EXPECT_THAT(text.output, HasSubstr("lethectl policy activate " + v2_path));
  EXPECT_THAT(text.output, HasSubstr(crypto::Hex(v1_policy->Hash()).substr(0, 16)));

  // Restarted without --policy, lethed runs on the ledger's active policy.
  mesh.StopLethed();
  {
    auto opts = mesh.LethedOptionsForTest();
    opts.policy_path.clear();
    auto d = controlplane::Lethed::Start(opts);
    ASSERT_OK(d);
    auto active = (*d)->projections().policies.ActiveRecord();
    ASSERT_TRUE(active.has_value());
    EXPECT_EQ(active->activation, 2u);
    EXPECT_EQ(active->hash, v2_policy->Hash());
  }
  // Restarted with --policy FILE, that file becomes active again (activation 3).
  ASSERT_OK(mesh.StartLethed());
  auto active = mesh.lethed().projections().policies.ActiveRecord();
  ASSERT_TRUE(active.has_value());
  EXPECT_EQ(active->activation, 3u);
  EXPECT_EQ(active->hash, v1_policy->Hash());

  // The auditor re-hashes every activated policy.
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("3 activation(s)"));
}

TEST(PolicyActivation, AgentOnAnOlderPolicyRefusesVisiblyUntilItRunsTheActiveOne) {
  Mesh::Options o;
  o.domains = {"assessments", "growth"};
  o.lethed_options = [](controlplane::LethedOptions& l) {
    l.outbox.first_retry = absl::Milliseconds(300);
    l.outbox.max_retry = absl::Seconds(2);
  };
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  ASSERT_OK(mesh.Plant(kAlice));

  // The new policy gives growth a compacted topic; the running growth agent does not know it.
  const std::string v2 = MeshPolicy(o.domains) +
                         "    kafka:\n      topics:\n        - topic: mesh.growth.people\n"
                         "          key: \"{email}\"\n";
  {
    v1::ActivatePolicyRequest req;
    req.set_yaml(v2);
    req.set_source_name("v2.yaml");
    v1::PolicyView resp;
    grpc::ClientContext ctx;
    grpc::Status s = mesh.Policies()->Activate(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  auto id = mesh.Erase(kAlice);
  ASSERT_OK(id);
  // The refusal reaches the request; growth keeps every row.
  v1::RequestView view;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = Get(mesh, *id);
        if (!v.ok()) return false;
        view = *v;
        const auto* g = FindDomain(view, "growth");
        const auto* a = FindDomain(view, "assessments");
        return g && a && a->state() == v1::DONE && !g->last_rejection().empty();
      },
      kWait))
      << view.DebugString();
  const auto* g = FindDomain(view, "growth");
  EXPECT_EQ(g->state(), v1::PENDING);
  EXPECT_THAT(g->last_rejection(), HasSubstr("policy drift"));
  EXPECT_EQ(view.state(), v1::IN_PROGRESS);
  EXPECT_EQ(*mesh.Rows("growth", kAlice), 3);
  EXPECT_GE(mesh.agent("growth").rejected(agents::Rejection::kPolicyDrift), 1u);
  auto text = RunLethectl(mesh, {"request", "get", *id});
  EXPECT_THAT(text.output, HasSubstr("the agent refused it: policy drift"));

  // Deploy the active policy to the agent: the re-published command now runs.
  ASSERT_OK(lethe::WriteFileAtomic(mesh.policy_path(), v2, 0644));
  mesh.StopAgent("growth");
  ASSERT_OK(mesh.StartAgent("growth"));
  auto done = mesh.WaitDone(*id, kWait);
  ASSERT_OK(done);
  EXPECT_EQ(done->state(), v1::COMPLETED);
  EXPECT_EQ(*mesh.Rows("growth", kAlice), 0);
  const auto* gd = FindDomain(*done, "growth");
  ASSERT_EQ(gd->tombstones_size(), 1);
  EXPECT_EQ(gd->tombstones(0).topic(), "mesh.growth.people");
}

// ---- deadlines -----------------------------------------------------------------------------

// Requests submitted while policies are being activated are each planned with the policy
// active where they land in the log, so the log keeps verifying.
TEST(PolicyActivation, SubmissionsRacingActivationsArePlannedWithThePolicyActiveInTheLog) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  const std::string a = MeshPolicy({"growth"});
  std::string b = a;
  b.replace(b.find("name: test-mesh"), 15, "name: test-mesh-b");
  std::atomic<bool> stop{false};
  std::atomic<int> submitted{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&, t] {
      auto stub = mesh.Requests();
      for (int i = 0; !stop && i < 40; ++i) {
        v1::SubmitRequest req;
        auto* id = req.add_identities();
        id->set_type("email");
        id->set_value("racer" + std::to_string(t) + "-" + std::to_string(i) + "@example.com");
        v1::SubmitResponse resp;
        grpc::ClientContext ctx;
        if (stub->Submit(&ctx, req, &resp).ok()) ++submitted;
      }
    });
  }
  auto policies = mesh.Policies();
  for (int i = 0; i < 12; ++i) {
    v1::ActivatePolicyRequest req;
    req.set_yaml(i % 2 == 0 ? b : a);
    v1::PolicyView view;
    grpc::ClientContext ctx;
    ASSERT_TRUE(policies->Activate(&ctx, req, &view).ok());
  }
  stop = true;
  for (auto& t : submitters) t.join();
  EXPECT_GT(submitted.load(), 0);
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("13 activation(s)"));
}

TEST(Deadlines, OverdueIsDetectedOnTheInjectedClockAndExtensionsAreCapped) {
  auto clock = std::make_shared<ManualClock>(absl::Now());
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;  // nobody answers
  o.lethed_options = [clock](controlplane::LethedOptions& l) { l.clock = clock.get(); };
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  auto& d = mesh.lethed();

  auto id = mesh.Erase(kAlice);
  ASSERT_OK(id);
  ASSERT_TRUE(WaitFor([&] { return Get(mesh, *id)->domains(0).attempts() >= 1; }, kWait));
  EXPECT_FALSE(Get(mesh, *id)->overdue());
  EXPECT_EQ(Metric(d, "lethe_requests_overdue"), 0);

  // One day before the due date: not overdue. One day after: overdue.
  clock->Advance(absl::Hours(24 * 29));
  EXPECT_FALSE(Get(mesh, *id)->overdue());
  clock->Advance(absl::Hours(24 * 2));
  auto late = Get(mesh, *id);
  ASSERT_OK(late);
  EXPECT_TRUE(late->overdue());
  EXPECT_EQ(late->state(), v1::IN_PROGRESS);
  EXPECT_EQ(Metric(d, "lethe_requests_overdue"), 1);
  {
    v1::ListRequestsRequest req;
    req.set_overdue(true);
    v1::ListRequestsResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(mesh.Requests()->List(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.requests_size(), 1);
    EXPECT_EQ(resp.requests(0).request_id(), *id);
  }
  auto listed = RunLethectl(mesh, {"request", "list", "--overdue"});
  EXPECT_EQ(listed.exit_code, 0);
  EXPECT_THAT(listed.output, HasSubstr(*id));
  EXPECT_THAT(listed.output, HasSubstr("OVERDUE"));

  // Past the deadline the command is no longer re-published: two full outbox passes later
  // (the clock is far beyond every retry time) the attempts have not moved.
  const int attempts = late->domains(0).attempts();
  const uint64_t passes = d.outbox().passes();
  ASSERT_TRUE(WaitFor([&] { return d.outbox().passes() >= passes + 2; }, kWait));
  EXPECT_EQ(Get(mesh, *id)->domains(0).attempts(), attempts);

  // An extension with a reason moves the due date; publishing resumes (with a fresh command,
  // since the first one expired meanwhile).
  const std::string old_command = late->domains(0).command_id();
  v1::RequestView extended;
  grpc::Status s = Extend(mesh, *id, absl::Hours(24 * 10), "archive restore needed", &extended);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(extended.overdue());
  EXPECT_EQ(extended.due_unix_ms(), late->due_unix_ms() + absl::ToInt64Milliseconds(absl::Hours(240)));
  ASSERT_EQ(extended.extensions_size(), 1);
  EXPECT_EQ(extended.extensions(0).reason(), "archive restore needed");
  EXPECT_EQ(Metric(d, "lethe_requests_overdue"), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = Get(mesh, *id);
        return v.ok() && v->domains(0).command_id() != old_command && v->domains(0).attempts() >= 1;
      },
      kWait));

  // The cap: 10d + 51d > 60d. Bad input changes nothing.
  const uint64_t size = d.ledger().size();
  s = Extend(mesh, *id, absl::Hours(24 * 51), "more");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("extension_seconds"));
  EXPECT_THAT(s.error_message(), HasSubstr("max_extension"));
  s = Extend(mesh, *id, absl::Hours(24), "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("reason"));
  s = Extend(mesh, *id, absl::ZeroDuration(), "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Extend(mesh, std::string(32, 'a'), absl::Hours(24), "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(d.ledger().size(), size);
  // Up to the cap exactly is fine, from the CLI too.
  auto cli = RunLethectl(mesh, {"request", "extend", *id, "--by", "50d", "--reason", "legal review"});
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  auto over = RunLethectl(mesh, {"request", "extend", *id, "--by", "1d", "--reason", "again"});
  EXPECT_EQ(over.exit_code, 2) << over.output;

  // Past the extended date it is overdue again; the auditor checks the cap offline.
  clock->Advance(absl::Hours(24 * 61));
  EXPECT_TRUE(Get(mesh, *id)->overdue());
  EXPECT_EQ(Metric(d, "lethe_requests_overdue"), 1);
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("extensions  2"));
}

TEST(Deadlines, ExtensionReasonIsShreddedWithTheRequest) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  ASSERT_OK(mesh.Plant(kAlice));
  auto id = mesh.Erase(kAlice);
  ASSERT_OK(id);
  ASSERT_TRUE(Extend(mesh, *id, absl::Hours(24 * 7), "complex request: 3 archives").ok());
  ASSERT_OK(mesh.StartAgent("growth"));
  auto done = mesh.WaitDone(*id, kWait);
  ASSERT_OK(done);
  EXPECT_EQ(done->state(), v1::COMPLETED);
  ASSERT_EQ(done->extensions_size(), 1);
  EXPECT_TRUE(done->extensions(0).reason_shredded());
  EXPECT_EQ(done->extensions(0).reason(), "");
  // The certificate carries the extension and verifies offline.
  auto v = CertifyAndVerify(mesh, *id);
  EXPECT_THAT(v.output, HasSubstr("after 1 extension(s)"));
}

// ---- identity mapping ----------------------------------------------------------------------

TEST(IdentityMapping, DomainWithoutItsIdentityTypeWaitsAndIsNeverReportedComplete) {
  Mesh::Options o;
  o.domains = {"assessments", "growth", "billing"};
  auto m = Mesh::Start(o);
  ASSERT_OK(m);
  Mesh& mesh = **m;
  ASSERT_OK(mesh.Plant(kAlice));
  ASSERT_OK(mesh.Plant(kBob));

  // Only the email: growth can act; assessments (keyed by user_id) cannot, nor can billing,
  // whose invoices are keyed by user_id (its accounts by email).
  auto id = EraseOne(mesh, "email", kAlice.email);
  ASSERT_OK(id);
  v1::RequestView view;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = Get(mesh, *id);
        if (!v.ok()) return false;
        view = *v;
        return FindDomain(view, "growth")->state() == v1::DONE;
      },
      kWait));
  const auto* a = FindDomain(view, "assessments");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->state(), v1::NEEDS_IDENTITY);
  EXPECT_THAT(a->needed_identity_types(), ::testing::ElementsAre("user_id"));
  EXPECT_TRUE(a->command_id().empty());
  const auto* b = FindDomain(view, "billing");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->state(), v1::NEEDS_IDENTITY);
  EXPECT_THAT(b->needed_identity_types(), ::testing::ElementsAre("user_id"));
  EXPECT_EQ(view.state(), v1::IN_PROGRESS);
  EXPECT_EQ(Metric(mesh.lethed(), "lethe_domains_needing_identity"), 2);
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), 3);
  EXPECT_EQ(*mesh.Rows("billing", kAlice), 3);  // nothing half-purged
  auto text = RunLethectl(mesh, {"request", "get", *id});
  EXPECT_THAT(text.output, HasSubstr("NEEDS_IDENTITY"));
  EXPECT_THAT(text.output, HasSubstr("keyed by user_id"));
  // The request does not complete: a receipt-driven completion check leaves it open.
  ASSERT_OK(mesh.lethed().manager().Recover());
  EXPECT_EQ(Get(mesh, *id)->state(), v1::IN_PROGRESS);

  // An identity no waiting domain uses is refused, and nothing is recorded.
  const uint64_t size = mesh.lethed().ledger().size();
  {
    v1::AddIdentitiesRequest req;
    req.set_request_id(*id);
    auto* e = req.add_identities();
    e->set_type("email");
    e->set_value("alice.other@example.com");
    v1::RequestView resp;
    grpc::ClientContext ctx;
    grpc::Status s = mesh.Requests()->AddIdentities(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    EXPECT_THAT(s.error_message(), Not(HasSubstr("alice")));
  }
  EXPECT_EQ(mesh.lethed().ledger().size(), size);

  // The missing identity, added from the CLI: assessments and billing act, the request
  // completes.
  auto add = RunLethectl(mesh, {"request", "add-identity", *id, "--identity", "user_id=" + kAlice.user_id});
  ASSERT_EQ(add.exit_code, 0) << add.output;
  auto done = mesh.WaitDone(*id, kWait);
  ASSERT_OK(done);
  EXPECT_EQ(done->state(), v1::COMPLETED);
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), 0);
  EXPECT_EQ(*mesh.Rows("billing", kAlice), 0);
  EXPECT_EQ(*mesh.Rows("billing", kBob), 3);
  EXPECT_THAT(done->identity_types(), ::testing::ElementsAre("email", "user_id"));

  // The auditor accepts the story, and the certificate covers both domains.
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--dir", mesh.data_dir(), "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  auto v = CertifyAndVerify(mesh, *id);
  EXPECT_THAT(v.output, HasSubstr("assessments"));
  EXPECT_THAT(v.output, HasSubstr("growth"));
}

}  // namespace
}  // namespace lethe::testing
