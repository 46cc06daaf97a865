// What operators watch: the metrics both binaries export against the Grafana dashboard that
// queries them (k8s/monitoring/dashboard.json), the agent's health port that a kubelet's
// startup probe asks, and the json log format.
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>

#include "base/file_system.h"
#include "base/log_format.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "spdlog/details/log_msg.h"
#include "spdlog/formatter.h"
#include "tests/support/assertions.h"
#include "tests/support/health_client.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace lethe::testing {
namespace {

using ::testing::HasSubstr;

// Every series name a scrape would show: a family's name, and for histograms the
// _bucket, _sum and _count series.
void AddSeries(const std::vector<prometheus::MetricFamily>& families, std::set<std::string>& out) {
  for (const auto& f : families) {
    out.insert(f.name);
    if (f.type == prometheus::MetricType::Histogram) {
      out.insert(f.name + "_bucket");
      out.insert(f.name + "_sum");
      out.insert(f.name + "_count");
    }
  }
}

// The metric names in a PromQL expression: lethe_ identifiers (every metric of ours starts so;
// label names and functions never do).
std::set<std::string> MetricsIn(const std::string& expr) {
  std::set<std::string> out;
  static const std::regex kName("\\blethe_[a-z0-9_]+\\b");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kName); it != std::sregex_iterator(); ++it)
    out.insert(it->str());
  return out;
}

std::set<std::string> DashboardMetrics() {
  auto text = lethe::ReadFile(std::string(LETHE_SOURCE_DIR) + "/k8s/monitoring/dashboard.json");
  EXPECT_TRUE(text.ok()) << text.status();
  const nlohmann::json dash = nlohmann::json::parse(*text);
  std::set<std::string> out;
  for (const auto& p : dash.at("panels")) {
    if (!p.contains("targets")) continue;
    for (const auto& t : p.at("targets"))
      for (const auto& m : MetricsIn(t.at("expr").get<std::string>())) out.insert(m);
  }
  return out;
}

TEST(Dashboard, EveryMetricItQueriesIsExported) {
  auto registry = std::make_shared<prometheus::Registry>();
  Mesh::Options o;
  o.domains = {"growth", "assessments"};
  o.agent_options = [registry](agents::AgentOptions& ao) { ao.metrics = registry; };
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  ASSERT_OK(mesh->Plant(kAlice));
  ASSERT_OK_AND_ASSIGN(auto done, mesh->EraseAndWait(kAlice, absl::Seconds(60)));
  ASSERT_EQ(done.state(), v1::COMPLETED);

  std::set<std::string> exported;
  AddSeries(mesh->lethed().metrics().Collect(), exported);
  AddSeries(registry->Collect(), exported);
  const std::set<std::string> queried = DashboardMetrics();
  ASSERT_GE(queried.size(), 15u);
  for (const auto& m : queried) EXPECT_TRUE(exported.count(m)) << "the dashboard queries " << m << ", which neither binary exports";

  // What the issue asks the binaries to export, each on the dashboard.
  for (const char* m : {"lethe_requests", "lethe_requests_overdue", "lethe_receipt_latency_seconds_bucket",
                        "lethe_agent_purge_transaction_seconds_bucket", "lethe_agent_command_rejections_total",
                        "lethe_receipts_total", "lethe_ledger_entries", "lethe_ledger_bytes",
                        "lethe_checkpoint_age_seconds", "lethe_kafka_consumer_lag",
                        "lethe_agent_kafka_consumer_lag"})
    EXPECT_TRUE(queried.count(m)) << m << " is not on the dashboard";

  // The erasure was observed: one receipt latency per domain, one transaction per agent.
  const std::string text = prometheus::TextSerializer().Serialize(mesh->lethed().metrics().Collect());
  EXPECT_THAT(text, HasSubstr("lethe_receipt_latency_seconds_count{kind=\"erasure\"} 2"));
  const std::string agents = prometheus::TextSerializer().Serialize(registry->Collect());
  EXPECT_THAT(agents, ::testing::ContainsRegex("lethe_agent_purge_transaction_seconds_count\\{domain=\"growth\"\\} [1-9]"));
  EXPECT_THAT(text, ::testing::ContainsRegex("lethe_ledger_bytes [1-9][0-9]*"));
}

TEST(Metrics, RejectionsAreCountedByReason) {
  auto registry = std::make_shared<prometheus::Registry>();
  Mesh::Options o;
  o.domains = {"growth"};
  o.agent_options = [registry](agents::AgentOptions& ao) { ao.metrics = registry; };
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  // Garbage on the domain's command topic: not a signed envelope.
  ASSERT_OK_AND_ASSIGN(auto producer, kafka::Producer::Create(mesh->kafka_bootstrap()));
  ASSERT_OK(producer->ProduceSync(kafka::CommandTopic("growth"), std::nullopt, std::string("not a command")));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string text;
  while (absl::Now() < deadline) {
    text = prometheus::TextSerializer().Serialize(registry->Collect());
    if (std::regex_search(text, std::regex("lethe_agent_command_rejections_total\\{[^}]*\\} 1"))) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_THAT(text, ::testing::ContainsRegex(
                        "lethe_agent_command_rejections_total\\{domain=\"growth\",reason=\"[a-z_]+\"\\} 1"));
  // The other reasons are there from zero.
  EXPECT_THAT(text, ::testing::ContainsRegex(
                        "lethe_agent_command_rejections_total\\{domain=\"growth\",reason=\"[a-z_]+\"\\} 0"));
}

// The agent's --health-listen port: what a kubelet's startup probe asks. NOT_SERVING until the
// agent's consumer has joined its group (the sidecar is then ready to take commands), SERVING
// from then on.
TEST(AgentHealth, NotServingUntilTheAgentHasJoinedItsConsumerGroup) {
  Mesh::Options o;
  o.domains = {"growth"};
  o.start_agents = false;
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  agents::AgentOptions ao = mesh->AgentOptionsFor("growth");
  ao.health_listen = "127.0.0.1:0";
  ASSERT_OK_AND_ASSIGN(auto agent, agents::Agent::Create(ao));
  auto channel = HealthChannel(agent->health_port());
  grpc::Status error;
  EXPECT_EQ(Check(channel, "", &error), 2) << error.error_message();
  agent->Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  int status = 0;
  while (absl::Now() < deadline && (status = Check(channel, "", &error)) != 1) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(status, 1) << error.error_message();
  EXPECT_TRUE(agent->joined());
  // And it takes commands.
  ASSERT_OK(mesh->Plant(kAlice));
  ASSERT_OK_AND_ASSIGN(auto done, mesh->EraseAndWait(kAlice, absl::Seconds(60)));
  EXPECT_EQ(done.state(), v1::COMPLETED);
  agent->Stop();
}

std::string JsonLine(const std::string& service, const std::string& domain, const std::string& text,
                     spdlog::level::level_enum level = spdlog::level::info) {
  auto f = MakeJsonLogFormatter(service, domain);
  spdlog::details::log_msg msg(spdlog::source_loc{}, "", level, text);
  spdlog::memory_buf_t buf;
  f->format(msg, buf);
  return std::string(buf.data(), buf.size());
}

// The names of this process's threads (/proc/self/task/*/comm), with how many have each.
std::map<std::string, int> ThreadNames() {
  std::map<std::string, int> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    auto comm = ReadFile(task.path().string() + "/comm");
    if (comm.ok()) ++out[std::string(absl::StripTrailingAsciiWhitespace(*comm))];
  }
  return out;
}

// Every long-lived thread of lethed and of an agent names itself, so that `top -H`, `ps -L`
// and a profile tell them apart (bench/call_path.py finds the ledger's sync thread by name).
TEST(ThreadNames, LethedsAndTheAgentsThreadsAreNamed) {
  Mesh::Options o;
  o.domains = {"growth", "assessments"};
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start(o));
  // A thread names itself once it runs, which may be just after Start returned.
  const std::vector<std::string> expected = {"ledger-sync", "ledger-zeroer", "ledger-ckpt", "consent-pub",
                                             "outbox-pub", "receipt-intake", "kafka-health"};
  auto count = [](const std::map<std::string, int>& names, const std::string& n) {
    return names.count(n) ? names.at(n) : 0;
  };
  WaitFor(
      [&] {
        const auto names = ThreadNames();
        for (const auto& n : expected)
          if (count(names, n) == 0) return false;
        return count(names, "agent-commands") == 2;
      },
      absl::Seconds(10));
  const std::map<std::string, int> names = ThreadNames();
  std::string all;
  for (const auto& [n, count] : names) absl::StrAppend(&all, n, " x", count, "; ");
  SCOPED_TRACE(all);
  for (const auto& n : expected) EXPECT_EQ(count(names, n), 1) << n;
  EXPECT_EQ(count(names, "agent-commands"), 2);
}

// --log-format json: one object per line; request id, domain and entry as fields when the line
// names them; control characters escaped.
TEST(JsonLogs, OneObjectPerLineWithRequestDomainAndEntry) {
  const std::string line =
      JsonLine("lethed", "", "request b081f65e2c332d1b533cc5cded52594a: receipt from domain growth (completed), entry 17");
  ASSERT_EQ(line.back(), '\n');
  ASSERT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("service"), "lethed");
  EXPECT_EQ(j.at("level"), "info");
  EXPECT_EQ(j.at("request_id"), "b081f65e2c332d1b533cc5cded52594a");
  EXPECT_EQ(j.at("domain"), "growth");
  EXPECT_EQ(j.at("entry"), 17);
  EXPECT_THAT(j.at("msg").get<std::string>(), HasSubstr("receipt from domain growth"));
  EXPECT_THAT(j.at("time").get<std::string>(), ::testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z"));

  // The agent's own domain, whatever the line says; nothing that is not named.
  const nlohmann::json a = nlohmann::json::parse(JsonLine("lethe-agent", "assessments", "joined consumer group\n\"x\"\x01"));
  EXPECT_EQ(a.at("domain"), "assessments");
  EXPECT_FALSE(a.contains("request_id"));
  EXPECT_FALSE(a.contains("entry"));
  EXPECT_EQ(a.at("msg"), "joined consumer group\n\"x\"\x01");

  EXPECT_FALSE(ParseLogFormat("yaml").ok());
  EXPECT_THAT(std::string(ParseLogFormat("yaml").status().message()), HasSubstr("--log-format"));
}

// The fields of a json line are found by a scanner, not std::regex (about 18 us a line). It
// must find what the patterns it replaced find, std::regex being the judge here: random lines
// built from the keywords, quotes, word and non-word characters, ids one character short or
// long, entries of up to 22 digits (some with leading zeros) and names longer than 200
// characters. Every line parses as json.
TEST(JsonLogs, FieldsAreWhatTheRegularExpressionsWouldFind) {
  const std::regex request("\\brequest \"?([0-9a-f]{32})\\b");
  const std::regex domain("\\bdomain \"?([a-z0-9_-]{1,200})\\b");
  const std::regex entry("\\bentry ([0-9]{1,20})\\b");
  std::mt19937 rng(20261207);
  auto pick = [&](std::string_view from, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += from[rng() % from.size()];
    return out;
  };
  const std::vector<std::string> words = {"request ", "domain ", "entry ", "prerequest ", "subdomain ", "Entry ",
                                          "\"", " ", "-", "_", ":", "(", ")", ", ", "x", "G", "request\"", "entry  "};
  int with_request = 0, with_domain = 0, with_entry = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string text;
    const int parts = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < parts; ++k) {
      switch (rng() % 6) {
        case 5: {  // a keyword and a value that may just fit, or just not
          const size_t w = rng() % 3;
          text += words[w] + (rng() % 4 == 0 ? "\"" : "");
          text += w == 0 ? pick("0123456789abcdef", 31 + rng() % 3)
                         : w == 1 ? pick("abz09_-", rng() % 8 ? 1 + rng() % 6 : 195 + rng() % 12)
                                  : pick("0123456789", 1 + rng() % 22);
          text += std::vector<std::string>{"", " ", "g", "\"", "-", ")", "_"}[rng() % 7];
          break;
        }
        case 0: text += words[rng() % words.size()]; break;
        case 1: text += pick("0123456789abcdef", 31 + rng() % 3) + (rng() % 2 ? "" : "g"); break;
        case 2: text += pick("0123456789", 1 + rng() % 22); break;
        case 3: text += pick("abz09_-", 1 + (rng() % 50 == 0 ? 205 : rng() % 6)); break;
        default: text += words[rng() % 6]; break;
      }
    }
    const std::string line = JsonLine("lethed", "", text);
    const nlohmann::json j = nlohmann::json::parse(line);
    std::smatch m;
    SCOPED_TRACE(text);
    if (std::regex_search(text, m, request)) {
      ++with_request;
      EXPECT_EQ(j.value("request_id", ""), m[1].str());
    } else {
      EXPECT_FALSE(j.contains("request_id"));
    }
    if (std::regex_search(text, m, domain)) {
      ++with_domain;
      EXPECT_EQ(j.value("domain", ""), m[1].str());
    } else {
      EXPECT_FALSE(j.contains("domain"));
    }
    // Compared as text: 20 digits overflow a 64-bit number.
    const size_t at = line.rfind(",\"entry\":");
    if (std::regex_search(text, m, entry)) {
      ++with_entry;
      ASSERT_NE(at, std::string::npos);
      std::string digits = m[1].str();  // less its leading zeros, which json does not allow
      digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size() - 1));
      EXPECT_EQ(line.substr(at + 9, line.size() - at - 9 - 2), digits);
    } else {
      EXPECT_FALSE(j.contains("entry"));
    }
    if (HasFailure()) break;
  }
  // The lines exercised both outcomes of each field.
  EXPECT_GT(with_request, 100);
  EXPECT_GT(with_domain, 100);
  EXPECT_GT(with_entry, 100);
}

// The binaries take --log-format json and write nothing else on standard error.
TEST(JsonLogs, LethedWritesJsonLines) {
  const std::string lethed = std::string(LETHE_BINARY_DIR) + "/controlplane/lethed";
  const std::string dir = ::testing::TempDir() + "/lethe-json-logs";
  ASSERT_OK_AND_ASSIGN(auto r, RunCommand({lethed, "--log-format", "json", "--data-dir", dir, "--signing-key",
                                           dir + "/missing-lethed.key", "--embedded-kafka", "--insecure"},
                                          absl::Seconds(30)));
  EXPECT_NE(r.exit_code, 0);
  bool any = false;
  for (absl::string_view l : absl::StrSplit(r.output, '\n', absl::SkipEmpty())) {
    any = true;
    const nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
    EXPECT_TRUE(j.is_object()) << "not a JSON object: " << l;
  }
  EXPECT_TRUE(any);
  EXPECT_THAT(r.output, HasSubstr("missing-lethed.key"));
}

}  // namespace
}  // namespace lethe::testing
