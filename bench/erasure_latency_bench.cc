// Erasure latency, Submit -> COMPLETED, across 3 or 10 domains, with the idle CPU of the
// whole stack beside it.
//
// Real components on one machine: lethed in this process with its embedded Kafka (the
// librdkafka mock cluster on loopback), one lethe-agent per domain (in process, consuming
// with --kafka-fetch-wait 10ms as against the embedded broker), one PostgreSQL server
// (fsync off, like the tests), ledger appends with fdatasync on. Each erasure removes a
// fresh person planted in every domain; they run one after another, submitted over one
// client connection kept for the whole run, and each is timed from the Submit call until the
// request shows COMPLETED. The medians of three stretches follow, from the clocks the request
// records. Idle CPU: this process's CPU time (user
// and system, all threads: lethed, the broker, every agent) over a stretch with nothing to
// do, as a share of one core.
//
//   build/bench/erasure_latency_bench --domains 3 --erasures 200 --idle-seconds 10
//   build/bench/erasure_latency_bench --domains 10 --erasures 200 --idle-seconds 10
//
// --kafka-fetch-wait-ms N sets every consumer's fetch wait (10 by default, as lethed's embedded
// mode sets it): the trade between the idle CPU (fetches a second) and the latency.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "kafka/kafka.h"
#include "spdlog/spdlog.h"
#include "tests/support/mesh.h"

namespace lethe::bench {
namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Share of one core this process used over `seconds` of doing nothing.
double IdleCpu(double seconds) {
  const double cpu0 = CpuSeconds();
  const absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(seconds));
  return (CpuSeconds() - cpu0) / absl::ToDoubleSeconds(absl::Now() - t0);
}

double Percentile(const std::vector<double>& sorted, double p) {
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p / 100.0 * sorted.size()));
  return sorted[i];
}

int Run(int argc, char** argv) {
  int domains = 3;
  int erasures = 200;
  double idle_seconds = 10;
  CLI::App app{"erasure_latency_bench: Submit -> COMPLETED latency and idle CPU"};
  app.add_option("--domains", domains, "3 (assessments, growth, billing) or 10 (shard01..shard10)")
      ->check(CLI::IsMember({3, 10}))
      ->capture_default_str();
  app.add_option("--erasures", erasures, "erasures timed, one after another")->capture_default_str();
  app.add_option("--idle-seconds", idle_seconds, "length of the idle CPU measurement")->capture_default_str();
  int fetch_wait_ms = static_cast<int>(absl::ToInt64Milliseconds(kafka::kEmbeddedFetchWait));
  app.add_option("--kafka-fetch-wait-ms", fetch_wait_ms,
                 "fetch.wait.max.ms of lethed's receipt consumer and the agents' command consumers "
                 "(the embedded broker holds an empty fetch this long)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  testing::Mesh::Options mo;
  const absl::Duration fetch_wait = absl::Milliseconds(fetch_wait_ms);
  mo.lethed_options = [fetch_wait](controlplane::LethedOptions& o) { o.kafka_fetch_wait = fetch_wait; };
  mo.agent_options = [fetch_wait](agents::AgentOptions& o) { o.fetch_wait = fetch_wait; };
  if (domains == 10) {
    mo.domains.clear();
    for (int i = 1; i <= 10; ++i) mo.domains.push_back(absl::StrFormat("shard%02d", i));
  }
  auto started = testing::Mesh::Start(mo);
  if (!started.ok()) {
    fprintf(stderr, "cannot start the mesh: %s\n", started.status().ToString().c_str());
    return 1;
  }
  testing::Mesh& mesh = **started;
  controlplane::RequestStore& store = mesh.lethed().store();

  // Where an erasure's time goes, from the clocks the request records (one machine, one clock,
  // in milliseconds): Submit until the last domain's agent signed its receipt (the command's
  // hop through the broker and the agent's transaction), until lethed recorded that receipt
  // (the receipt's hop and intake), and the rest (the completion, and noticing it).
  std::vector<double> to_signed, to_recorded, rest;
  // One client connection for every erasure, as a real client keeps its channel: no TLS
  // handshake inside the measurement.
  std::unique_ptr<v1::SubjectRequests::Stub> client = mesh.Requests();
  auto erase = [&](int n, double* ms) -> absl::Status {
    testing::Person p{std::to_string(300000000 + n), absl::StrFormat("latency-%d@example.com", n)};
    LETHE_RETURN_IF_ERROR(mesh.Plant(p));
    const absl::Time start = absl::Now();
    v1::SubmitResponse submitted;
    grpc::ClientContext ctx;
    if (grpc::Status st = client->Submit(&ctx, testing::Mesh::ErasureOf(p), &submitted); !st.ok())
      return absl::UnavailableError("Submit: " + st.error_message());
    const std::string id = submitted.request_id();
    uint64_t seen = store.version();
    while (true) {
      auto r = store.Get(id);
      if (r.ok() && r->state != v1::IN_PROGRESS) {
        if (r->state != v1::COMPLETED) return absl::InternalError("request " + id + " failed");
        break;
      }
      if (absl::Now() - start > absl::Seconds(60)) return absl::DeadlineExceededError("request " + id);
      seen = store.WaitForChange(seen, absl::Milliseconds(100));
    }
    *ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    LETHE_ASSIGN_OR_RETURN(controlplane::RequestRecord r, store.Get(id));
    int64_t signed_ms = 0, recorded_ms = 0;
    for (const auto& d : r.domains) {
      if (!d.receipt) continue;
      signed_ms = std::max<int64_t>(signed_ms, d.receipt->completed_at_unix_ms());
      recorded_ms = std::max<int64_t>(recorded_ms, d.receipt_unix_ms);
    }
    const double submit_ms = absl::ToDoubleMilliseconds(start - absl::UnixEpoch());
    to_signed.push_back(static_cast<double>(signed_ms) - submit_ms);
    to_recorded.push_back(static_cast<double>(recorded_ms - signed_ms));
    rest.push_back(*ms - to_signed.back() - to_recorded.back());
    return absl::OkStatus();
  };

  // Warm-up: the agents' consumer groups join, connections open.
  for (int i = 0; i < 3; ++i) {
    double ms = 0;
    if (absl::Status s = erase(-1 - i, &ms); !s.ok()) {
      fprintf(stderr, "warm-up: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  const double idle = IdleCpu(idle_seconds);
  to_signed.clear();
  to_recorded.clear();
  rest.clear();

  std::vector<double> ms(erasures);
  for (int i = 0; i < erasures; ++i) {
    if (absl::Status s = erase(i, &ms[i]); !s.ok()) {
      fprintf(stderr, "erasure %d: %s\n", i, s.ToString().c_str());
      return 1;
    }
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  printf("erasure_latency_bench: %d domains, %d erasures one after another, Submit -> COMPLETED\n",
         domains, erasures);
  printf("  p50 %.1f ms   p90 %.1f ms   p99 %.1f ms   max %.1f ms   mean %.1f ms   min %.1f ms\n",
         Percentile(sorted, 50), Percentile(sorted, 90), Percentile(sorted, 99), sorted.back(), mean,
         sorted.front());
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return Percentile(v, 50);
  };
  printf("  medians: Submit -> last receipt signed %.1f ms; -> recorded by lethed %.1f ms; -> COMPLETED seen "
         "%.1f ms\n",
         median(to_signed), median(to_recorded), median(rest));
  printf("  idle CPU of lethed, its broker and %d agents: %.2f%% of one core (over %.0f s)\n", domains,
         idle * 100, idle_seconds);
  return 0;
}

}  // namespace
}  // namespace lethe::bench

int main(int argc, char** argv) { return lethe::bench::Run(argc, argv); }
