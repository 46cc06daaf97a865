// `lethectl domain init` as an operator runs it, on a real PostgreSQL: the proposed section
// (children first, read back by the policy parser alone and merged into a policy), the
// agent's keys (0600, never replaced), the kustomize overlay (read as YAML, and rendered by
// kubectl kustomize with the tree's k8s/base/agent), the printed commands (run through a stub kubectl),
// drift after the schema changes (--check), a foreign key cycle refused; and lethe-agent
// reporting the same drift at start, in its log and its gauge. docs/onboarding.md.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "policies/policy.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/mesh.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const std::string kLethectl = LETHE_BINARY_DIR "/cli/lethectl";
// In the rows and in the connection string: neither may appear in any output or file.
constexpr char kRowValue[] = "dana.private@example.com";
constexpr char kPassword[] = "NeverShownPw42";

// Customers are the parent; orders reference them through an identity column (email), reviews
// through the parent's key column under another name (author); countries hold no identity.
constexpr char kShopSchema[] = R"sql(
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text);
CREATE TABLE shop.orders (id serial PRIMARY KEY, email text NOT NULL REFERENCES shop.customers(email), total int);
CREATE TABLE shop.reviews (id serial PRIMARY KEY, author text REFERENCES shop.customers(email), stars int);
CREATE TABLE shop.countries (code text PRIMARY KEY, name text);
INSERT INTO shop.customers (email, name) VALUES ('dana.private@example.com', 'Dana');
INSERT INTO shop.orders (email, total) VALUES ('dana.private@example.com', 12);
)sql";

constexpr char kPolicy[] = R"(# The mesh's policy: the onboarding adds domain shop to it.
version: 1
name: onboarding-test
identities:
  - {name: email, normalize: [trim, lowercase]}
  - user_id
domains:
  # an existing domain, which must come through unchanged
  - name: billing
    postgres:
      tables:
        - table: billing.invoices
          key: user_id
          identity: user_id
          action: delete
)";

constexpr char kApp[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers: [{name: app, image: shop:1}]
)";

// Prints each --from-file path it is given, failing on one that cannot be read.
constexpr char kStubKubectl[] = R"(#!/bin/sh
for a in "$@"; do
  case "$a" in
    --from-file=*) f="${a#--from-file=}"; [ -r "${f#*=}" ] || { echo "unreadable ${f#*=}"; exit 9; }; echo "file $f" ;;
  esac
done
echo "kubectl $*"
)";

// The first executable `name` on PATH, or "".
std::string OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    const std::string candidate = std::string(dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// The line of `output` that starts (after spaces) with `prefix`, without the spaces; "" if none.
std::string LineStartingWith(const std::string& output, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    const size_t start = line.find_first_not_of(' ');
    if (start != absl::string_view::npos && line.substr(start).rfind(prefix, 0) == 0)
      return std::string(line.substr(start));
  }
  return "";
}

class DomainInit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = PgCluster::Start();
    setup_ = pg.status();
    if (pg.ok()) pg_ = pg->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }
  void SetUp() override {
    ASSERT_OK(setup_);
    // A database of its own for each test, so that one's ALTERs never reach another.
    db_ = absl::StrCat("shop_", ::testing::UnitTest::GetInstance()->current_test_info()->line());
    ASSERT_OK(pg_->CreateDatabase(db_));
    ASSERT_OK(pg_->Exec(db_, kShopSchema));
    WriteBytes(dir_.File("policy.yaml"), kPolicy);
    auto key = crypto::Ed25519PrivateKey::Generate();
    ASSERT_OK(key);
    ASSERT_OK(key->public_key().SaveFile(dir_.File("lethed.pub")));
  }

  std::string Dsn() const { return pg_->Dsn(db_) + " password=" + kPassword; }

  // lethectl in the test's directory (relative paths as an operator types them).
  CommandResult Run(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), kLethectl);
    auto r = RunCommand(args, absl::Seconds(60), std::move(env), dir_.path());
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return CommandResult{-1, r.status().ToString()};
    EXPECT_THAT(r->output, Not(HasSubstr(kPassword)));
    EXPECT_THAT(r->output, Not(HasSubstr(kRowValue)));
    return *r;
  }

  CommandResult Init(const std::string& out, const std::string& policy = "policy.yaml") {
    std::vector<std::string> args = {"domain", "init", "shop", "--postgres", Dsn(), "--policy", policy,
                                     "--out", out, "--resource", "../../apps/shop", "--control-plane-key",
                                     "lethed.pub"};
    return Run(args);
  }

  // What python3's yaml reads from `file` (under the test's directory), as JSON.
  nlohmann::json Yaml(const std::string& file) {
    std::string why;
    const std::string py = FindPython3("yaml, json", &why);
    if (py.empty()) {
      ADD_FAILURE() << "no python3 with yaml:" << why;
      return nullptr;
    }
    auto r = RunCommand({py, "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
                         dir_.File(file)},
                        absl::Seconds(60));
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->output : r.status().ToString());
    return r.ok() && r->exit_code == 0 ? nlohmann::json::parse(r->output) : nlohmann::json();
  }

  static absl::Status setup_;
  static PgCluster* pg_;
  std::string db_;
  TempDir dir_;
};
absl::Status DomainInit::setup_;
PgCluster* DomainInit::pg_ = nullptr;

TEST_F(DomainInit, WritesAReviewableSectionTheAgentsKeysAndTheSidecarOverlayAndPrintsWhatToRun) {
  const std::string out = "k8s/domains/shop";
  auto r = Init(out);
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // The section: a proposal, children first, that reads back as a domain of a policy.
  const std::string section = ReadBytes(dir_.File(out + "/policy-section.yaml"));
  EXPECT_THAT(section, StartsWith("# PROPOSAL, to review before use"));
  EXPECT_THAT(section, HasSubstr("the identity types it uses: email\n"));
  auto alone = policies::Policy::Parse(
      "version: 1\nname: t\nidentities:\n  - {name: email, normalize: [trim, lowercase]}\ndomains:\n" + section,
      "wrapped");
  ASSERT_OK(alone);
  std::vector<std::string> order;
  for (const auto& t : alone->FindDomain("shop")->tables) order.push_back(t.QualifiedName());
  EXPECT_THAT(order, ElementsAre("shop.orders", "shop.reviews", "shop.customers"));
  EXPECT_EQ(alone->FindDomain("shop")->tables[1].key_column, "author");
  EXPECT_EQ(alone->FindDomain("shop")->tables[1].identity, "email");
  // The policy with it: valid, the other domain as it was, the comments kept.
  auto before = policies::Policy::LoadFile(dir_.File("policy.yaml"));
  auto merged = policies::Policy::LoadFile(dir_.File(out + "/policy.yaml"));
  ASSERT_OK(before);
  ASSERT_OK(merged);
  EXPECT_EQ(merged->DomainHash("billing"), before->DomainHash("billing"));
  EXPECT_EQ(merged->DomainHash("shop"), alone->DomainHash("shop"));
  EXPECT_THAT(ReadBytes(dir_.File(out + "/policy.yaml")), HasSubstr("  # an existing domain, which must come through unchanged\n"));

  // The keys: a signing and a sealing key, private to their owner, the public ones beside.
  struct stat st {};
  ASSERT_EQ(::stat(dir_.File(out + "/agent.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto signing = crypto::Ed25519PrivateKey::LoadFile(dir_.File(out + "/agent.key"));
  ASSERT_OK(signing);
  ASSERT_OK(crypto::X25519PrivateKey::LoadFile(dir_.File(out + "/agent.key")));
  const std::string pub = ReadBytes(dir_.File(out + "/agent.pub"));
  ASSERT_OK(crypto::X25519PublicKey::FromPem(pub));
  EXPECT_THAT(r.output, HasSubstr("Ed25519 signing key " + signing->public_key().KeyId()));
  EXPECT_THAT(ReadBytes(dir_.File(out + "/.gitignore")), HasSubstr("\nagent.key\n"));

  // The printed commands, exactly, with the files' paths.
  EXPECT_EQ(LineStartingWith(r.output, "kubectl -n shop create secret generic lethe-agent-key"),
            "kubectl -n shop create secret generic lethe-agent-key --from-file=agent.key=k8s/domains/shop/agent.key "
            "--from-file=lethed.pub=lethed.pub");
  EXPECT_THAT(LineStartingWith(r.output, "kubectl -n shop create secret generic lethe-agent-postgres"),
              ::testing::StartsWith("kubectl -n shop create secret generic lethe-agent-postgres --from-file=dsn=AGENT-DSN-FILE"));
  EXPECT_EQ(LineStartingWith(r.output, "lethectl agent enroll"),
            "lethectl agent enroll --domain shop --public-key k8s/domains/shop/agent.pub");
  const std::string activate = LineStartingWith(r.output, "lethectl policy activate");
  EXPECT_EQ(activate, "lethectl policy activate k8s/domains/shop/policy.yaml");
  EXPECT_EQ(LineStartingWith(r.output, "kubectl apply -k"), "kubectl apply -k k8s/domains/shop");
  // ... which run as printed: the secret through a stub kubectl that reads each file, the
  // activation's file through `policy validate`.
  WriteBytes(dir_.File("bin/kubectl"), kStubKubectl);
  fs::permissions(dir_.File("bin/kubectl"), fs::perms::owner_all);
  auto secret = RunCommand({"/bin/sh", "-c", LineStartingWith(r.output, "kubectl -n shop create secret generic lethe-agent-key")}, absl::Seconds(30),
                           {"PATH=" + dir_.File("bin") + ":/usr/bin:/bin"}, dir_.path());
  ASSERT_OK(secret);
  EXPECT_EQ(secret->exit_code, 0) << secret->output;
  EXPECT_THAT(secret->output, HasSubstr("file agent.key=k8s/domains/shop/agent.key\nfile lethed.pub=lethed.pub\n"));
  auto validate = Run({"policy", "validate", "k8s/domains/shop/policy.yaml"});
  EXPECT_EQ(validate.exit_code, 0) << validate.output;

  // The overlay, as YAML: the Deployment's manifests, the label component, then the agent's.
  const nlohmann::json k = Yaml(out + "/kustomization.yaml");
  EXPECT_EQ(k["kind"], "Kustomization");
  EXPECT_EQ(k["resources"], nlohmann::json::array({"../../apps/shop"}));
  EXPECT_EQ(k["components"], nlohmann::json::array({"domain-label", "../../base/agent"}));
  // The settings the sidecar reads (k8s/base/agent): the default brokers, the dev overlay's.
  EXPECT_EQ(k["configMapGenerator"][0]["name"], "lethe-agent-settings");
  EXPECT_EQ(k["configMapGenerator"][0]["literals"][0], "kafka-bootstrap=kafka.lethe.svc.cluster.local:9092");
  const nlohmann::json label = Yaml(out + "/domain-label/kustomization.yaml");
  EXPECT_EQ(label["kind"], "Component");
  EXPECT_EQ(label["patches"][0]["path"], "agent-patch.yaml");
  EXPECT_EQ(label["patches"][0]["target"]["name"], "shop");
  const nlohmann::json patch = Yaml(out + "/domain-label/agent-patch.yaml");
  EXPECT_EQ(patch["kind"], "Deployment");
  EXPECT_EQ(patch["metadata"]["labels"]["lethe.dev/domain"], "shop");
  const std::string readme = ReadBytes(dir_.File(out + "/README.txt"));
  EXPECT_THAT(readme, HasSubstr("Secret lethe-agent-key"));
  EXPECT_THAT(readme, HasSubstr("Secret lethe-agent-postgres"));
  EXPECT_THAT(readme, HasSubstr("    lethed.pub "));
  EXPECT_THAT(readme, HasSubstr("ConfigMap lethe-policy"));

  // Rendered by kubectl kustomize with the tree's k8s/base/agent: the label must be on the
  // Deployment before the agent's component looks, and the objects the sidecar reads named as
  // the component names them.
  WriteBytes(dir_.File("k8s/apps/shop/kustomization.yaml"), "resources: [deployment.yaml]\n");
  WriteBytes(dir_.File("k8s/apps/shop/deployment.yaml"), kApp);
  const fs::path real = fs::path(LETHE_SOURCE_DIR) / "k8s/base/agent";
  ASSERT_TRUE(fs::is_directory(real)) << real;
  fs::create_directories(dir_.File("k8s/base"));
  fs::copy(real, dir_.File("k8s/base/agent"), fs::copy_options::recursive);
  const std::string kubectl = OnPath("kubectl");
  ASSERT_FALSE(kubectl.empty()) << "kubectl is not on PATH (k8s_render needs it too)";
  auto rendered = RunCommand({kubectl, "kustomize", out}, absl::Seconds(60), {}, dir_.path());
  ASSERT_OK(rendered);
  ASSERT_EQ(rendered->exit_code, 0) << rendered->output;
  EXPECT_THAT(rendered->output, HasSubstr("lethe.dev/domain: shop"));
  EXPECT_THAT(rendered->output, HasSubstr("initContainers:"));
  EXPECT_THAT(rendered->output, HasSubstr("restartPolicy: Always"));
  EXPECT_THAT(rendered->output, HasSubstr("secretName: lethe-agent-key"));
  EXPECT_THAT(rendered->output, ::testing::ContainsRegex("kafka-bootstrap: kafka.lethe.svc.cluster.local:9092"));

  // Nothing it wrote holds a value from the rows or the password of the connection string.
  EXPECT_THAT(FilesContaining(dir_.path(), kRowValue), ::testing::IsEmpty());
  EXPECT_THAT(FilesContaining(dir_.path(), kPassword), ::testing::IsEmpty());
}

TEST_F(DomainInit, NeverReplacesAKeyAndNamesTheFile) {
  // Keys are compared by digest, so that a failure never prints one.
  auto digest = [&](const std::string& file) { return crypto::Hex(crypto::Sha256(ReadBytes(dir_.File(file)))); };
  ASSERT_EQ(Init("out").exit_code, 0);
  const std::string key = digest("out/agent.key");
  auto again = Init("out");
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_THAT(again.output, HasSubstr("out/agent.key exists; domain init never replaces a key"));
  EXPECT_THAT(again.output, HasSubstr("--check"));
  EXPECT_EQ(digest("out/agent.key"), key);

  // A directory holding only a key pair made earlier: refused as well, and nothing written.
  fs::create_directories(dir_.File("keys-only"));
  ASSERT_OK(crypto::GenerateKeyFiles(dir_.File("keys-only/agent")));
  const std::string earlier = digest("keys-only/agent.key");
  auto keys_only = Init("keys-only");
  EXPECT_EQ(keys_only.exit_code, 1) << keys_only.output;
  EXPECT_THAT(keys_only.output, HasSubstr("keys-only/agent.key exists; domain init never replaces a key"));
  EXPECT_EQ(digest("keys-only/agent.key"), earlier);
  EXPECT_FALSE(fs::exists(dir_.File("keys-only/policy-section.yaml")));
}

TEST_F(DomainInit, ASchemaChangeIsReportedAsDriftByCheckAndByARerun) {
  ASSERT_EQ(Init("v1").exit_code, 0);
  auto listing = [&] {
    std::vector<std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir_.path())) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
  };
  const std::vector<std::string> files = listing();
  auto clean = Run({"domain", "init", "shop", "--postgres", Dsn(), "--policy", "v1/policy.yaml", "--check"});
  EXPECT_EQ(clean.exit_code, 0) << clean.output;
  EXPECT_THAT(clean.output, HasSubstr("no drift: domain shop of v1/policy.yaml covers every table"));

  ASSERT_OK(pg_->Exec(db_, "CREATE TABLE shop.leads (id serial PRIMARY KEY, email text, source text);"
                           "INSERT INTO shop.leads (email) VALUES ('dana.private@example.com');"
                           "ALTER TABLE shop.customers ADD COLUMN phone text;"));  // deleted with the row
  auto drift = Run({"domain", "init", "shop", "--postgres", Dsn(), "--policy", "v1/policy.yaml", "--check"});
  EXPECT_EQ(drift.exit_code, 1) << drift.output;
  EXPECT_THAT(drift.output, HasSubstr("table shop.leads is not in the policy section of domain shop and holds "
                                      "likely identity column email (email)"));
  EXPECT_THAT(drift.output, Not(HasSubstr("phone")));

  auto json = Run({"domain", "init", "shop", "--postgres", Dsn(), "--policy", "v1/policy.yaml", "--check", "-o", "json"});
  EXPECT_EQ(json.exit_code, 1) << json.output;
  const auto j = nlohmann::json::parse(json.output);
  EXPECT_EQ(j["drift_found"], true);
  EXPECT_EQ(listing(), files);  // --check writes nothing
  ASSERT_EQ(j["drift"]["tables"].size(), 1u) << json.output;
  EXPECT_EQ(j["drift"]["tables"][0]["table"], "shop.leads");
  EXPECT_EQ(j["drift"]["tables"][0]["columns"][0]["identity"], "email");

  // A rerun into a new directory reports the same drift and proposes the section with the
  // new table, the reviewed tables kept as they were.
  auto rerun = Init("v2", "v1/policy.yaml");
  EXPECT_EQ(rerun.exit_code, 0) << rerun.output;
  EXPECT_THAT(rerun.output, HasSubstr("table shop.leads is not in the policy section of domain shop"));
  auto v2 = policies::Policy::LoadFile(dir_.File("v2/policy.yaml"));
  ASSERT_OK(v2);
  std::vector<std::string> order;
  for (const auto& t : v2->FindDomain("shop")->tables) order.push_back(t.QualifiedName());
  EXPECT_THAT(order, ElementsAre("shop.orders", "shop.reviews", "shop.customers", "shop.leads"));
  auto covered = Run({"domain", "init", "shop", "--postgres", Dsn(), "--policy", "v2/policy.yaml", "--check"});
  EXPECT_EQ(covered.exit_code, 0) << covered.output;

  // A table the connecting role holds no privilege on is drift all the same (as the agent's
  // role, which nobody grants a table the team just added).
  ASSERT_OK(pg_->Exec(db_, "CREATE ROLE agent_" + db_ + " LOGIN;"
                           "CREATE TABLE shop.hidden (id serial PRIMARY KEY, user_id text);"
                           "REVOKE ALL ON SCHEMA shop FROM PUBLIC;"));
  auto unprivileged = Run({"domain", "init", "shop", "--postgres", pg_->Dsn(db_) + " user=agent_" + db_,
                           "--policy", "v2/policy.yaml", "--check"});
  EXPECT_EQ(unprivileged.exit_code, 1) << unprivileged.output;
  EXPECT_THAT(unprivileged.output, HasSubstr("table shop.hidden is not in the policy section of domain shop and "
                                             "holds likely identity column user_id (user_id)"));
}

TEST_F(DomainInit, AForeignKeyCycleIsRefusedNamingTheTablesAndNothingIsWritten) {
  ASSERT_OK(pg_->Exec(db_, "CREATE TABLE shop.a (id int PRIMARY KEY, email text, b_id int);"
                           "CREATE TABLE shop.b (id int PRIMARY KEY, email text, a_id int REFERENCES shop.a(id));"
                           "ALTER TABLE shop.a ADD CONSTRAINT a_points_to_b FOREIGN KEY (b_id) REFERENCES shop.b(id);"));
  auto r = Init("cycle");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("foreign keys form a cycle between tables"));
  EXPECT_THAT(r.output, HasSubstr("shop.a references shop.b (foreign key a_points_to_b)"));
  EXPECT_THAT(r.output, HasSubstr("shop.b references shop.a (foreign key b_a_id_fkey)"));
  EXPECT_FALSE(fs::exists(dir_.File("cycle")));
}

TEST_F(DomainInit, BadInputNamesItsFlagAndNeverEchoesTheConnectionString) {
  auto bad_dsn = Run({"domain", "init", "shop", "--postgres", std::string("password ") + kPassword, "--out", "x"});
  EXPECT_EQ(bad_dsn.exit_code, 2) << bad_dsn.output;
  EXPECT_THAT(bad_dsn.output, HasSubstr("--postgres: not a libpq connection string (not shown"));
  auto down = Run({"domain", "init", "shop", "--postgres",
                   "host=/nonexistent port=1 dbname=x user=postgres password=" + std::string(kPassword), "--out", "x"});
  EXPECT_EQ(down.exit_code, 1) << down.output;
  EXPECT_THAT(down.output, HasSubstr("--postgres: cannot connect to PostgreSQL"));
  auto key = Run({"domain", "init", "shop", "--postgres", Dsn(), "--table", "shop.customers", "--key", "mail",
                  "--identity", "email", "--out", "x"});
  EXPECT_EQ(key.exit_code, 2) << key.output;
  EXPECT_THAT(key.output, HasSubstr("--key \"mail\" (of --table shop.customers): the table has no such column"));
  auto check = Run({"domain", "init", "shop", "--postgres", Dsn(), "--check"});
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_FALSE(fs::exists(dir_.File("x")));
}

// lethe-agent at start: the same drift, as warnings naming table and column (never a value)
// and as lethe_agent_schema_drift{kind}.
TEST(AgentSchemaDrift, IsLoggedAndExportedAtStart) {
  Mesh::Options o;
  o.domains = {"crm"};
  o.start_agents = false;
  auto mesh = Mesh::Start(o);
  ASSERT_OK(mesh);
  Mesh& m = **mesh;
  ASSERT_OK(m.pg().Exec("crm", "CREATE TABLE crm.leads (id serial PRIMARY KEY, email text);"
                               "INSERT INTO crm.leads (email) VALUES ('dana.private@example.com');"
                               "ALTER TABLE crm.events ADD COLUMN phone text;"  // anonymized, left in place
                               "ALTER TABLE crm.people ADD COLUMN ssn text;"));  // deleted with the row

  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  agents::AgentOptions options = m.AgentOptionsFor("crm");
  options.metrics = std::make_shared<prometheus::Registry>();
  auto agent = agents::Agent::Create(options);
  spdlog::default_logger()->sinks().pop_back();
  ASSERT_OK(agent);

  const std::string text = log.str();
  EXPECT_THAT(text, HasSubstr("schema drift: table crm.leads is not in the policy section of domain crm and holds "
                              "likely identity column email (email)"));
  EXPECT_THAT(text, HasSubstr("schema drift: column phone of table crm.events likely holds phone"));
  EXPECT_THAT(text, Not(HasSubstr("ssn")));
  EXPECT_THAT(text, Not(HasSubstr(kRowValue)));
  std::map<std::string, double> gauge;
  for (const auto& family : options.metrics->Collect())
    if (family.name == "lethe_agent_schema_drift")
      for (const auto& metric : family.metric)
        for (const auto& label : metric.label)
          if (label.name == "kind") gauge[label.value] = metric.gauge.value;
  EXPECT_EQ(gauge["table"], 1);
  EXPECT_EQ(gauge["column"], 1);
}

}  // namespace
}  // namespace lethe::testing
