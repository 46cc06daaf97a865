// Memory under load: a long run of mixed consent changes and erasures through gRPC, with the
// agents running, sampling the resident memory of lethed and of each agent; prints each
// one's slope after warm-up and how many requests are left IN_PROGRESS at the end.
//
// lethed (mutual TLS, fdatasync on) and the three agents (assessments, growth, billing) run
// as child processes, as in production, so that each one's resident memory is its own
// (/proc/PID/status VmRSS). The Kafka broker (librdkafka's mock cluster) runs in this
// process, which lethed and the agents reach with --kafka-bootstrap: the broker keeps every
// record it is sent (up to its per-partition cap), which in lethed's own process (its
// --embedded-kafka mode) would be counted as lethed's. The load, from --clients threads at about --rate calls/s in
// all: consent changes of a fixed pool of 2,000 people (grants and withdrawals of
// "research", which plans nothing, and of "marketing", whose withdrawal plans an erasure in
// growth), and one explicit erasure of a planted person (all three domains) every
// --erasure-every calls. PostgreSQL runs with fsync off, as in the tests. The slope is a least-squares fit
// of RSS against time over the samples after --warmup-minutes, for the whole RSS and for
// its anonymous part (the process's own memory) and file-backed part (code pages) apart.
// At the end it lists every request through the public API until none is IN_PROGRESS (at
// most 2 minutes).
//
//   build/bench/soak_bench --minutes 30 --warmup-minutes 5 --rate 100 --erasure-every 20
#include <algorithm>
#include <filesystem>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "kafka/kafka.h"
#include "spdlog/spdlog.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::bench {
namespace {

constexpr char kAgent[] = LETHE_BINARY_DIR "/agents/lethe-agent";
constexpr char kLethed[] = LETHE_BINARY_DIR "/controlplane/lethed";

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

struct Tally {
  int64_t in_progress = 0, completed = 0, failed = 0;
};

// Every request lethed holds, counted by state through SubjectRequests.List.
absl::StatusOr<Tally> CountRequests(v1::SubjectRequests::Stub& requests) {
  Tally t;
  v1::ListRequestsRequest req;
  req.set_page_size(500);
  do {
    grpc::ClientContext ctx;
    v1::ListRequestsResponse resp;
    if (grpc::Status st = requests.List(&ctx, req, &resp); !st.ok())
      return absl::UnavailableError("List: " + st.error_message());
    for (const v1::RequestView& r : resp.requests()) {
      if (r.state() == v1::IN_PROGRESS) ++t.in_progress;
      if (r.state() == v1::COMPLETED) ++t.completed;
      if (r.state() == v1::FAILED) ++t.failed;
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return t;
}

// Resident memory of a process in KB (-1 when unreadable): all of it (VmRSS), and its two
// parts that matter here. RssAnon is the process's own memory (heap, stacks), what a leak
// grows; RssFile is pages of its binary and shared libraries, read in as code first runs and
// bounded by their size.
struct Rss {
  int64_t total = -1, anon = -1, file = -1;
};
Rss RssOf(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  Rss r;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) r.total = std::stoll(line.substr(6));
    if (line.rfind("RssAnon:", 0) == 0) r.anon = std::stoll(line.substr(8));
    if (line.rfind("RssFile:", 0) == 0) r.file = std::stoll(line.substr(8));
  }
  return r;
}

// Least-squares slope of y against x.
double Slope(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  const double d = n * sxx - sx * sx;
  return d == 0 ? 0 : (n * sxy - sx * sy) / d;
}

int Run(int argc, char** argv) {
  double minutes = 30, warmup_minutes = 5, rate = 100;
  int clients = 4, erasure_every = 20;
  double sample_seconds = 10;
  CLI::App app{"soak_bench: resident memory of lethed and the agents under a long mixed load"};
  app.add_option("--minutes", minutes, "length of the load")->capture_default_str();
  app.add_option("--warmup-minutes", warmup_minutes, "samples before this are left out of the slope")
      ->capture_default_str();
  app.add_option("--rate", rate, "calls per second, all clients together")->capture_default_str();
  app.add_option("--clients", clients, "gRPC client threads")->capture_default_str();
  app.add_option("--erasure-every", erasure_every, "one erasure per this many calls")->capture_default_str();
  app.add_option("--sample-seconds", sample_seconds, "RSS sampling interval")->capture_default_str();
  std::string wrapper;
  app.add_option("--lethed-wrapper", wrapper,
                 "run lethed under this command, words split at spaces, e.g. --lethed-wrapper 'heaptrack -o FILE' "
                 "(the RSS sampled is then the wrapper's process)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  auto fail = [](const std::string& what, const absl::Status& s) {
    fprintf(stderr, "soak_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
    return 1;
  };

  testing::Mesh::Options mo;
  mo.start_lethed = false;
  mo.start_agents = false;
  auto started = testing::Mesh::Start(mo);
  if (!started.ok()) return fail("cannot start the mesh", started.status());
  testing::Mesh& mesh = **started;
  auto broker = kafka::EmbeddedKafka::Start(1);
  if (!broker.ok()) return fail("cannot start the Kafka broker", broker.status());
  std::vector<std::string> topics = {kafka::kReceiptTopic, kafka::kConsentTopic};
  for (const auto& d : mesh.domains()) topics.push_back(kafka::CommandTopic(d));
  for (const auto& t : topics)
    if (absl::Status s = (*broker)->CreateTopic(t, 1); !s.ok()) return fail("topic " + t, s);
  const std::string bootstrap = (*broker)->bootstrap();

  std::filesystem::create_directories(mesh.data_dir());
  std::vector<std::string> lethed_argv = absl::StrSplit(wrapper, ' ', absl::SkipEmpty());
  for (const std::string& a : std::vector<std::string>{kLethed, "--listen", "127.0.0.1:0", "--data-dir", mesh.data_dir(), "--policy", mesh.policy_path(),
       "--signing-key", mesh.lethed_key(), "--certs-dir", mesh.certs_dir(), "--kafka-bootstrap", bootstrap,
       "--kafka-fetch-wait", "10ms"})
    lethed_argv.push_back(a);
  auto lethed = testing::Subprocess::Spawn(lethed_argv, mesh.work_dir() + "/lethed.log");
  if (!lethed.ok()) return fail("lethed", lethed.status());
  const std::string addr_file = mesh.data_dir() + "/lethed.addr";
  if (!testing::WaitFor([&] { return !ReadTrimmed(addr_file).empty() || !(*lethed)->Running(); },
                        absl::Seconds(60)) ||
      !(*lethed)->Running())
    return fail("lethed", absl::UnavailableError("did not start: " + testing::Tail((*lethed)->Log(), 10)));
  mesh.UseExternalLethed(ReadTrimmed(addr_file));

  std::map<std::string, std::unique_ptr<testing::Subprocess>> agents;
  for (const auto& d : mesh.domains()) {
    if (absl::Status s = mesh.EnrollAgent(d); !s.ok()) return fail("enrol " + d, s);
    auto p = testing::Subprocess::Spawn(
        {kAgent, "--domain", d, "--postgres", mesh.pg().Dsn(d), "--policy", mesh.policy_path(), "--key",
         mesh.agent_key(d), "--control-plane-key", mesh.lethed_pub(), "--kafka-bootstrap", bootstrap,
         "--kafka-fetch-wait", "10ms"},
        mesh.work_dir() + "/agent-" + d + ".log");
    if (!p.ok()) return fail("agent " + d, p.status());
    agents[d] = *std::move(p);
  }
  // People to erase, planted up front: one erasure per erasure_every calls.
  const int64_t erasures = static_cast<int64_t>(rate * minutes * 60 / erasure_every) + clients;
  std::vector<testing::Person> people;
  for (int64_t i = 0; i < erasures; ++i)
    people.push_back({std::to_string(700000000 + i), absl::StrFormat("soak-%d@example.com", i)});
  if (absl::Status s = mesh.PlantMany(people); !s.ok()) return fail("plant", s);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> next_person{0}, calls{0}, failures{0};
  std::vector<std::thread> threads;
  const absl::Duration gap = absl::Seconds(clients / rate);
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto consent = mesh.Consent();
      auto requests = mesh.Requests();
      absl::Time next = absl::Now();
      for (int64_t n = 0; !stop; ++n) {
        grpc::ClientContext ctx;
        grpc::Status st;
        if (n % erasure_every == erasure_every - 1) {
          const int64_t i = next_person++;
          if (i >= static_cast<int64_t>(people.size())) continue;
          const v1::SubmitRequest req = testing::Mesh::ErasureOf(people[i], "soak");
          v1::SubmitResponse resp;
          st = requests->Submit(&ctx, req, &resp);
        } else {
          v1::ChangeConsentRequest req;
          req.mutable_identity()->set_type("email");
          req.mutable_identity()->set_value(absl::StrFormat("pool-%d@example.com", (n * 7 + c * 131) % 2000));
          req.set_purpose(n % 10 == 0 ? "marketing" : "research");
          req.set_status(n % 4 < 2 ? v1::GRANTED : v1::WITHDRAWN);
          req.set_source("soak-bench");
          v1::ConsentChangeView resp;
          st = consent->Change(&ctx, req, &resp);
        }
        ++calls;
        if (!st.ok()) ++failures;
        next += gap;
        absl::SleepFor(next - absl::Now());  // paces the load; a negative wait returns at once
      }
    });
  }

  struct Series {
    std::vector<double> minutes, kb, anon_kb, file_kb;
  };
  std::map<std::string, Series> series;
  const absl::Time t0 = absl::Now();
  printf("soak_bench: %.0f min at %.0f calls/s from %d clients (1 erasure per %d calls); lethed and 3 agents as "
         "processes, the broker in this one\n  minute  calls  lethed KB", minutes, rate, clients, erasure_every);
  for (const auto& [d, p] : agents) printf("  %s KB", d.c_str());
  printf("\n");
  while (absl::Now() - t0 < absl::Minutes(minutes)) {
    absl::SleepFor(absl::Seconds(sample_seconds));
    const double m = absl::ToDoubleMinutes(absl::Now() - t0);
    if (!(*lethed)->Running())
      return fail("lethed", absl::InternalError("exited: " + testing::Tail((*lethed)->Log(), 5)));
    std::map<std::string, Rss> kb = {{"lethed", RssOf(std::to_string((*lethed)->pid()))}};
    for (const auto& [d, p] : agents) {
      if (!p->Running()) return fail("agent " + d, absl::InternalError("exited: " + testing::Tail(p->Log(), 5)));
      kb[d] = RssOf(std::to_string(p->pid()));
    }
    for (const auto& [name, v] : kb) {
      series[name].minutes.push_back(m);
      series[name].kb.push_back(static_cast<double>(v.total));
      series[name].anon_kb.push_back(static_cast<double>(v.anon));
      series[name].file_kb.push_back(static_cast<double>(v.file));
    }
    printf("  %6.1f %6lld %10lld", m, static_cast<long long>(calls.load()),
           static_cast<long long>(kb["lethed"].total));
    for (const auto& [d, p] : agents) printf(" %10lld", static_cast<long long>(kb[d].total));
    printf("\n");
    fflush(stdout);
  }
  stop = true;
  for (auto& t : threads) t.join();

  // Nothing may be left open: wait for the last erasures to complete.
  auto lister = mesh.Requests();
  absl::StatusOr<Tally> tally = CountRequests(*lister);
  const absl::Time drain = absl::Now();
  while (tally.ok() && tally->in_progress > 0 && absl::Now() - drain < absl::Minutes(2)) {
    absl::SleepFor(absl::Milliseconds(500));
    tally = CountRequests(*lister);
  }
  if (!tally.ok()) return fail("count requests", tally.status());

  printf("  calls %lld (%lld failed); requests completed %lld, failed %lld, left IN_PROGRESS %lld\n",
         static_cast<long long>(calls.load()), static_cast<long long>(failures.load()),
         static_cast<long long>(tally->completed), static_cast<long long>(tally->failed),
         static_cast<long long>(tally->in_progress));
  printf("  RSS slope after %.0f min of warm-up (least squares), KB per minute: all resident memory, and its\n"
         "  parts, the process's own (RssAnon: heap, stacks) and mapped files (RssFile: code as it first runs)\n",
         warmup_minutes);
  for (const auto& [name, s] : series) {
    std::vector<double> x, y, anon, file;
    for (size_t i = 0; i < s.minutes.size(); ++i) {
      if (s.minutes[i] < warmup_minutes) continue;
      x.push_back(s.minutes[i]);
      y.push_back(s.kb[i]);
      anon.push_back(s.anon_kb[i]);
      file.push_back(s.file_kb[i]);
    }
    if (x.size() < 2) continue;
    printf("    %-12s %+8.1f KB/min  (from %.0f to %.0f KB over %.1f min); own %+.1f KB/min (%.0f to %.0f), "
           "files %+.1f KB/min (%.0f to %.0f)\n",
           name.c_str(), Slope(x, y), y.front(), y.back(), x.back() - x.front(), Slope(x, anon), anon.front(),
           anon.back(), Slope(x, file), file.front(), file.back());
    // Whether growth slows: the same slope over each half of the samples after warm-up.
    const size_t half = x.size() / 2;
    if (half >= 2 && x.size() - half >= 2) {
      const std::vector<double> x1(x.begin(), x.begin() + half), y1(y.begin(), y.begin() + half);
      const std::vector<double> x2(x.begin() + half, x.end()), y2(y.begin() + half, y.end());
      printf("    %-12s %+8.1f KB/min over minutes %.1f-%.1f, %+.1f KB/min over minutes %.1f-%.1f\n", "", Slope(x1, y1),
             x1.front(), x1.back(), Slope(x2, y2), x2.front(), x2.back());
    }
  }
  return tally->in_progress == 0 && failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace lethe::bench

int main(int argc, char** argv) { return lethe::bench::Run(argc, argv); }
