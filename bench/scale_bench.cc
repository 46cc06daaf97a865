// Request lookups, lethed's memory and its restart as the number of requests on record grows.
//
// lethed runs in this process (mutual TLS, fdatasync on, embedded Kafka) with the three test
// domains enrolled but no agents: the benchmark answers each command itself with a receipt
// signed by the domain's enrolled key and hands it to lethed's receipt intake
// (RequestManager::RecordReceipt, what the Kafka consumer calls), so that every request is
// COMPLETED as in production, with its key destroyed. For each size it then measures, through
// the public gRPC API with one client: `Get` of random requests, `List` pages of 100 from
// random positions, the time a restart takes to replay the ledger and serve again, and the
// resident memory the restarted lethed holds per completed request (this process's RSS after
// the restart, less its RSS before the first request and the 32 bytes per request the
// benchmark keeps for the ids, over the number of requests).
//
//   build/bench/scale_bench --requests 10000,100000 --threads 8
//
// --perf-out FILE records a whole-machine `perf record -a -g` of one phase of the last size:
// its `Get` calls, its `List` pages or its restart (--perf-of get|list|restart).
#include <malloc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "bench/machine_profile.h"
#include "proto/envelope.h"
#include "spdlog/spdlog.h"
#include "tests/support/mesh.h"

namespace lethe::bench {
namespace {

// Resident memory of this process, in bytes (VmRSS).
int64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
}

std::string Receipt(const controlplane::CommandRecord& c, const crypto::Ed25519PrivateKey& key) {
  v1::Receipt r;
  r.set_command_id(c.command_id);
  r.set_request_id(c.request_id);
  r.set_domain(c.domain);
  r.set_command_digest(c.digest);
  r.set_outcome(v1::Receipt::COMPLETED);
  r.set_verified_zero_remaining(true);
  return proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), key).SerializeAsString();
}

using Id = std::array<char, 32>;  // a request id, without a heap allocation of its own
std::string IdString(const Id& id) { return std::string(id.data(), id.size()); }

// Submits and completes `n` requests from `threads` threads; their ids are appended to `ids`.
absl::Status Fill(testing::Mesh& mesh, int64_t n, int threads, int64_t offset,
                  const std::map<std::string, crypto::Ed25519PrivateKey>& keys, std::vector<Id>& ids) {
  const size_t first = ids.size();
  ids.reserve(first + n);  // exactly: main subtracts what the ids take from lethed's RSS
  ids.resize(first + n);
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  absl::Status first_error;
  std::vector<std::thread> pool;
  Id* out = ids.data() + first;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      controlplane::RequestManager& manager = mesh.lethed().manager();
      controlplane::RequestStore& store = mesh.lethed().store();
      v1::Actor actor;
      actor.set_role("operator");
      actor.set_name("scale-bench");
      for (int64_t i = next++; i < n && !failed; i = next++) {
        absl::Status st = [&]() -> absl::Status {
          std::vector<controlplane::SubjectIdentity> ids;
          ids.push_back({"email", SecretBytes(absl::StrFormat("scale-%d@example.com", offset + i))});
          ids.push_back({"user_id", SecretBytes(std::to_string(900000000 + offset + i))});
          LETHE_ASSIGN_OR_RETURN(std::string id, manager.SubmitErasure(std::move(ids), "", actor));
          if (id.size() != out[i].size()) return absl::InternalError("request id is not 32 characters");
          std::copy(id.begin(), id.end(), out[i].begin());
          auto r = store.Get(id);
          if (!r.ok()) return r.status();
          for (const auto& d : r->domains) {
            auto c = store.Command(d.command_id);
            if (!c) return absl::InternalError("no command for " + d.domain);
            LETHE_RETURN_IF_ERROR(manager.RecordReceipt(Receipt(*c, keys.at(d.domain))));
          }
          r = store.Get(id);
          if (!r.ok() || r->state != v1::COMPLETED) return absl::InternalError("request " + id + " not completed");
          return absl::OkStatus();
        }();
        if (!st.ok()) {
          std::lock_guard<std::mutex> l(mu);
          if (first_error.ok()) first_error = st;
          failed = true;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return first_error;
}

int Run(int argc, char** argv) {
  std::string sizes_arg = "10000,100000";
  int threads = 8;
  int samples = 1000;
  CLI::App app{"scale_bench: lookups, memory and restart against the number of requests on record"};
  app.add_option("--requests", sizes_arg, "cumulative sizes to measure at, comma-separated")->capture_default_str();
  app.add_option("--threads", threads, "threads submitting and completing requests")->capture_default_str();
  app.add_option("--samples", samples, "Get calls per size (List: a fifth as many pages)")->capture_default_str();
  int restarts = 1;
  app.add_option("--restarts", restarts,
                 "restarts at the last size (the median is printed, every time on stderr)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  std::string perf_out;
  app.add_option("--perf-out", perf_out,
                 "write a whole-machine perf profile (perf record -a -g) of one phase of the last size here");
  std::string perf_of = "restart";
  app.add_option("--perf-of", perf_of, "the phase --perf-out profiles")
      ->check(CLI::IsMember({"get", "list", "restart"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::vector<int64_t> sizes;
  for (absl::string_view s : absl::StrSplit(sizes_arg, ',')) sizes.push_back(std::stoll(std::string(s)));
  spdlog::set_level(spdlog::level::warn);

  testing::Mesh::Options mo;
  mo.start_agents = false;
  auto started = testing::Mesh::Start(mo);
  if (!started.ok()) {
    fprintf(stderr, "cannot start lethed: %s\n", started.status().ToString().c_str());
    return 1;
  }
  testing::Mesh& mesh = **started;
  std::map<std::string, crypto::Ed25519PrivateKey> keys;
  for (const auto& d : mesh.domains()) keys.emplace(d, crypto::Ed25519PrivateKey::LoadFile(mesh.agent_key(d)).value());

  printf("scale_bench: 3 domains, requests completed with signed receipts; 1 gRPC client for lookups\n");
  printf("%10s %12s %12s %14s %14s %16s %12s\n", "requests", "Get p50 ms", "Get p99 ms", "List p50 ms",
         "List p99 ms", "RSS/request B", "restart s");
  int64_t have = 0;
  malloc_trim(0);
  const int64_t rss0 = ResidentBytes();  // lethed with no request
  std::mt19937_64 rng(42);
  std::vector<Id> all;  // ids of every request submitted
  for (int64_t size : sizes) {
    if (absl::Status s = Fill(mesh, size - have, threads, have, keys, all); !s.ok()) {
      fprintf(stderr, "filling to %ld: %s\n", size, s.ToString().c_str());
      return 1;
    }
    have = size;
    auto stub = mesh.Requests();
    std::vector<double> get_ms, list_ms;
    // One profile per phase: perf needs a moment to start, so each phase it records has its own.
    MachineProfile get_profile, list_profile, restart_profile;
    if (size == sizes.back())
      (perf_of == "get" ? get_profile : perf_of == "list" ? list_profile : restart_profile).Arm(perf_out);
    get_profile.Start();
    for (int i = 0; i < samples; ++i) {
      v1::GetRequestRequest req;
      req.set_request_id(IdString(all[rng() % all.size()]));
      v1::RequestView view;
      grpc::ClientContext ctx;
      const absl::Time t0 = absl::Now();
      grpc::Status s = stub->Get(&ctx, req, &view);
      get_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      if (!s.ok()) {
        fprintf(stderr, "Get: %s\n", s.error_message().c_str());
        return 1;
      }
    }
    get_profile.Stop();
    list_profile.Start();
    for (int i = 0; i < samples / 5; ++i) {
      v1::ListRequestsRequest req;
      req.set_page_size(100);
      // Every other page from a random request on: its token is the ledger entry that
      // recorded it (RequestView.submitted_entry), read as a client would.
      if (i % 2 == 1) {
        v1::GetRequestRequest get;
        get.set_request_id(IdString(all[rng() % all.size()]));
        v1::RequestView from;
        grpc::ClientContext get_ctx;
        if (grpc::Status s = stub->Get(&get_ctx, get, &from); !s.ok()) {
          fprintf(stderr, "Get: %s\n", s.error_message().c_str());
          return 1;
        }
        req.set_page_token(absl::StrCat("e", from.submitted_entry()));
      }
      v1::ListRequestsResponse resp;
      grpc::ClientContext ctx;
      const absl::Time t0 = absl::Now();
      grpc::Status s = stub->List(&ctx, req, &resp);
      list_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      if (!s.ok()) {
        fprintf(stderr, "List: %s\n", s.error_message().c_str());
        return 1;
      }
    }
    list_profile.Stop();
    // Restart: stop lethed and start it again on the same data dir (replay and serve).
    // --restarts at the last size; the profile, if any, covers the first.
    std::vector<double> times;
    for (int i = 0; i < (size == sizes.back() ? restarts : 1); ++i) {
      mesh.StopLethed();
      if (i == 0) restart_profile.Start();
      const absl::Time t0 = absl::Now();
      if (absl::Status s = mesh.StartLethed(); !s.ok()) {
        fprintf(stderr, "restart: %s\n", s.ToString().c_str());
        return 1;
      }
      times.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
      restart_profile.Stop();
    }
    if (times.size() > 1) {
      std::string all_times;
      for (double t : times) absl::StrAppend(&all_times, all_times.empty() ? "" : " ", absl::StrFormat("%.2f", t));
      fprintf(stderr, "restarts at %ld requests: %s s\n", size, all_times.c_str());
    }
    const double restart_s = Percentile(times, 50);
    // What lethed holds for `size` completed requests: the restarted instance rebuilt them
    // from the ledger; the stopped one's memory is handed back to the system first.
    malloc_trim(0);
    const int64_t rss = ResidentBytes() - static_cast<int64_t>(all.capacity() * sizeof(Id));
    printf("%10ld %12.3f %12.3f %14.3f %14.3f %16.0f %12.2f\n", size, Percentile(get_ms, 50),
           Percentile(get_ms, 99), Percentile(list_ms, 50), Percentile(list_ms, 99),
           static_cast<double>(rss - rss0) / static_cast<double>(size), restart_s);
    fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace lethe::bench

int main(int argc, char** argv) { return lethe::bench::Run(argc, argv); }
