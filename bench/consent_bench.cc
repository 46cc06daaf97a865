// Consent.Change through lethed's public gRPC API, against the cheapest unary gRPC call this
// machine can serve, measured in the same run.
//
// lethed runs in this process as in production (mutual TLS, the authorizer, the ledger with
// fdatasync on, its embedded Kafka and consent publisher); the clients are built from
// proto/ alone: generated stubs, one channel (one connection) per client thread. The
// baseline is an Echo server (bench/proto/empty.proto) with the same TLS credentials,
// answering an empty message. Runs alternate baseline and Consent.Change for each client
// count, so that both see the same machine; each rate is one run's calls over its seconds.
//
// With one client a change cannot be answered before its entry's fdatasync, so each 1-client
// run also measures one write+fdatasync of an entry's size on the ledger's filesystem
// (sync_probe.h) and prints the ratio a handler that cost nothing else would reach: an empty
// call's time over that time plus one fdatasync (`bound`). And every run measures such a
// handler: Echo.Durable writes and fdatasyncs records of an entry's size on the threads that
// answer, with group commit but no hand-off to a thread of its own (with one client, one
// write+fdatasync per call and nothing else); its rate over the empty call's is `durable`,
// what a durable unary call served by gRPC's synchronous server reaches on this machine.
//
//   build/bench/consent_bench --threads 1,8 --runs 5 --seconds 3
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/proto/empty.grpc.pb.h"
#include "base/file_system.h"
#include "base/log_format.h"
#include "base/thread_name.h"
#include "bench/machine_profile.h"
#include "bench/sync_probe.h"
#include "controlplane/authorizer.h"
#include "lethe/v1/api.grpc.pb.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/spdlog.h"
#include "tests/support/mesh.h"

namespace lethe::bench {
namespace {

class EchoService final : public Echo::Service {
 public:
  // Durable calls write records of `record` bytes into a file in `dir` from now on. Between
  // runs only: no Durable call may be in progress.
  void WriteRecords(const std::string& dir, size_t record) {
    std::lock_guard<std::mutex> l(mu_);
    records_.reset();  // first: its destructor removes the file the next one creates
    records_ = std::make_unique<SyncedRecords>(dir + "/durable-echo", record, size_t{32} << 20);
  }

 private:
  grpc::Status Call(grpc::ServerContext*, const Empty*, Empty*) override { return grpc::Status::OK; }

  // Group commit without a thread of its own: the first handler to find no write in progress
  // writes every record asked for so far with one write and one fdatasync, on its own thread,
  // while the others wait; one client's call is a write+fdatasync and nothing else.
  grpc::Status Durable(grpc::ServerContext*, const Empty*, Empty*) override {
    std::unique_lock<std::mutex> l(mu_);
    if (records_ == nullptr) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no record file");
    const uint64_t mine = ++asked_;
    while (durable_ < mine) {
      if (writing_) {
        cv_.wait(l);
        continue;
      }
      writing_ = true;
      const uint64_t upto = asked_;
      const uint64_t n = upto - durable_;
      l.unlock();
      records_->Write(n);
      l.lock();
      durable_ = upto;
      writing_ = false;
      cv_.notify_all();
    }
    return grpc::Status::OK;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<SyncedRecords> records_;
  uint64_t asked_ = 0, durable_ = 0;
  bool writing_ = false;
};

struct Result {
  double rate = 0;         // successful calls per second
  double cpu_us_per_call = 0;  // this process's CPU (user + system) per successful call
  uint64_t errors = 0;
  std::string first_error;
};

// CPU time (user and system) used by this whole process so far: lethed, its embedded broker,
// the Echo server and the clients.
double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// Runs `threads` clients for `seconds`, each with its own channel, calling `call(channel,
// thread, n)` until time is up. The client threads are named `name` (bench/call_path.py
// finds them by it in a scheduler trace).
template <typename Call>
Result Drive(const std::string& addr, const std::shared_ptr<grpc::ChannelCredentials>& creds,
             int threads, double seconds, const char* name, Call call) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int t = 0; t < threads; ++t) {
    grpc::ChannelArguments args;
    args.SetInt("lethe.bench.client", t);  // distinct arguments: a connection of its own
    channels.push_back(grpc::CreateCustomChannel(addr, creds, args));
    channels.back()->WaitForConnected(gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                   gpr_time_from_seconds(10, GPR_TIMESPAN)));
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ok{0}, errors{0};
  std::mutex error_mu;
  std::string first_error;
  std::vector<std::thread> pool;
  static std::atomic<uint64_t> sequence{0};
  for (int t = 0; t < threads; ++t) {
    pool.push_back(NamedThread(name, [&, t] {
      while (!stop.load(std::memory_order_relaxed)) {
        grpc::Status s = call(*channels[t], t, sequence.fetch_add(1));
        if (s.ok()) {
          ok.fetch_add(1, std::memory_order_relaxed);
        } else {
          errors.fetch_add(1);
          std::lock_guard<std::mutex> l(error_mu);
          if (first_error.empty()) first_error = s.error_message();
        }
      }
    }));
  }
  const absl::Time start = absl::Now();
  const double cpu0 = ProcessCpuSeconds();
  absl::SleepFor(absl::Seconds(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  const double cpu = ProcessCpuSeconds() - cpu0;
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  const uint64_t n = std::max<uint64_t>(1, ok.load());
  return Result{static_cast<double>(ok.load()) / elapsed, cpu * 1e6 / static_cast<double>(n),
                errors.load(), first_error};
}

struct Spread {
  double min = 0, median = 0, max = 0;
};
Spread Of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return Spread{v.front(), v[v.size() / 2], v.back()};
}

int Run(int argc, char** argv) {
  std::string threads_arg = "1,8";
  int runs = 5;
  double seconds = 3;
  CLI::App app{"consent_bench: Consent.Change through gRPC against an empty unary call"};
  app.add_option("--threads", threads_arg, "client counts, comma-separated")->capture_default_str();
  app.add_option("--runs", runs, "alternations per client count")->capture_default_str();
  app.add_option("--seconds", seconds, "seconds per measurement")->capture_default_str();
  std::string perf_out;
  app.add_option("--perf-out", perf_out,
                 "write a whole-machine perf profile (perf record -a -g) of the first Consent.Change "
                 "measurement at the last client count here");
  std::string log_file;
  app.add_option("--log-file", log_file,
                 "log as lethed does in production (level info, --log-format) to this file, "
                 "instead of warnings only to stderr");
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text or json, with --log-file")->capture_default_str();
  double gather_ms = -1;
  app.add_option("--consent-gather-ms", gather_ms,
                 "how long lethed's consent publisher waits for more changes after one wakes it "
                 "(default: lethed's)");
  CLI11_PARSE(app, argc, argv);
  std::vector<int> thread_counts;
  for (absl::string_view t : absl::StrSplit(threads_arg, ',')) thread_counts.push_back(std::stoi(std::string(t)));
  if (log_file.empty()) {
    spdlog::set_level(spdlog::level::warn);
  } else {
    auto format = ParseLogFormat(log_format);
    if (!format.ok()) {
      fprintf(stderr, "%s\n", format.status().ToString().c_str());
      return 2;
    }
    spdlog::set_default_logger(spdlog::basic_logger_mt("lethed", log_file, /*truncate=*/true));
    ConfigureLogging(*format, "lethed");
    spdlog::set_level(spdlog::level::info);
  }

  testing::Mesh::Options mo;
  mo.start_agents = false;  // consent changes that do not erase involve no domain
  if (gather_ms >= 0)
    mo.lethed_options = [gather_ms](controlplane::LethedOptions& lo) {
      lo.consent.gather = absl::Milliseconds(gather_ms);
    };
  auto mesh = testing::Mesh::Start(mo);
  if (!mesh.ok()) {
    fprintf(stderr, "cannot start lethed: %s\n", mesh.status().ToString().c_str());
    return 1;
  }
  const std::string certs = (*mesh)->certs_dir();

  // The baseline server: lethed's TLS set-up (TLS 1.3, its server certificate, client
  // certificates required and verified against the same CA), without lethed's authorizer.
  (void)controlplane::RequireTls13();  // lethed called it already
  grpc::SslServerCredentialsOptions so(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  so.pem_root_certs = lethe::ReadFile(certs + "/ca.crt").value();
  so.pem_key_cert_pairs.push_back(
      {lethe::ReadFile(certs + "/server.key").value(), lethe::ReadFile(certs + "/server.crt").value()});
  auto server_creds = grpc::SslServerCredentials(so);
  EchoService echo;
  int echo_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", server_creds, &echo_port);
  builder.RegisterService(&echo);
  std::unique_ptr<grpc::Server> echo_server = builder.BuildAndStart();
  const std::string echo_addr = absl::StrCat("127.0.0.1:", echo_port);

  grpc::SslCredentialsOptions co;
  co.pem_root_certs = lethe::ReadFile(certs + "/ca.crt").value();
  co.pem_cert_chain = lethe::ReadFile((*mesh)->client_cert("operator")).value();
  co.pem_private_key = lethe::ReadFile((*mesh)->client_key("operator")).value();
  auto client_creds = grpc::SslCredentials(co);

  // One of Echo's methods, called with an empty message.
  auto echo_method = [](grpc::Status (Echo::Stub::*method)(grpc::ClientContext*, const Empty&, Empty*)) {
    return [method](grpc::Channel& ch, int, uint64_t) {
      thread_local std::unique_ptr<Echo::Stub> stub;
      thread_local grpc::Channel* bound = nullptr;
      if (bound != &ch) stub = Echo::NewStub(std::shared_ptr<grpc::Channel>(&ch, [](grpc::Channel*) {})), bound = &ch;
      grpc::ClientContext ctx;
      Empty req, resp;
      return (stub.get()->*method)(&ctx, req, &resp);
    };
  };
  auto empty_call = echo_method(&Echo::Stub::Call);
  auto durable_call = echo_method(&Echo::Stub::Durable);
  auto consent_call = [](grpc::Channel& ch, int t, uint64_t n) {
    thread_local std::unique_ptr<v1::Consent::Stub> stub;
    thread_local grpc::Channel* bound = nullptr;
    if (bound != &ch) stub = v1::Consent::NewStub(std::shared_ptr<grpc::Channel>(&ch, [](grpc::Channel*) {})), bound = &ch;
    grpc::ClientContext ctx;
    v1::ChangeConsentRequest req;
    req.mutable_identity()->set_type("email");
    req.mutable_identity()->set_value(absl::StrFormat("subject-%d-%d@example.com", t, n));
    req.set_purpose("research");  // a purpose that erases nothing on withdrawal
    req.set_status(n % 2 == 0 ? v1::GRANTED : v1::WITHDRAWN);
    req.set_source("consent-bench");
    v1::ConsentChangeView resp;
    return stub->Change(&ctx, req, &resp);
  };

  ledger::Ledger& ledger = (*mesh)->lethed().ledger();
  printf("consent_bench: %d run(s) of %.1f s per client count, alternating Echo.Call and Consent.Change\n",
         runs, seconds);
  printf("%-8s %4s %14s %16s %7s %16s %12s %12s %7s %8s\n", "clients", "run", "Echo.Call/s", "Consent.Change/s",
         "ratio", "entries/fdatasync", "CPU us/Echo", "CPU us/Change", "bound", "durable");
  struct Row {
    std::vector<double> empty, consent, ratio, batch, empty_cpu, consent_cpu, bound, durable;
  };
  std::map<int, Row> rows;
  MachineProfile profile;
  for (int r = 1; r <= runs; ++r) {
    for (int t : thread_counts) {
      Result e = Drive(echo_addr, client_creds, t, seconds, "echo-client", empty_call);
      const uint64_t syncs0 = ledger.syncs(), entries0 = ledger.entries_written();
      if (r == 1 && t == thread_counts.back()) profile.Arm(perf_out);
      profile.Start();
      Result c = Drive((*mesh)->addr(), client_creds, t, seconds, "change-client", consent_call);
      profile.Stop();
      const double batch = static_cast<double>(ledger.entries_written() - entries0) /
                           std::max<uint64_t>(1, ledger.syncs() - syncs0);
      if (e.errors + c.errors > 0) {
        fprintf(stderr, "errors: %lu Echo.Call (%s), %lu Consent.Change (%s)\n", e.errors,
                e.first_error.c_str(), c.errors, c.first_error.c_str());
        return 1;
      }
      const double ratio = c.rate / e.rate;
      // Records of an average entry's size, over pre-zeroed space as the ledger writes.
      const size_t entry = static_cast<size_t>(ledger.bytes() / std::max<uint64_t>(1, ledger.entries_written()));
      std::string bound_text = "-";
      if (t == 1) {
        // One client: the empty call's time against that time plus one write+fdatasync.
        const double syncs = SingleSyncRate((*mesh)->work_dir(), 0.5, entry, true);
        const double bound = (1 / e.rate) / (1 / e.rate + 1 / syncs);
        rows[t].bound.push_back(bound);
        bound_text = absl::StrFormat("%.2f", bound);
      }
      // The cheapest durable call: the handlers write and fdatasync such records themselves.
      echo.WriteRecords((*mesh)->work_dir(), entry);
      Result d = Drive(echo_addr, client_creds, t, seconds, "durable-client", durable_call);
      if (d.errors > 0) {
        fprintf(stderr, "errors: %lu Echo.Durable (%s)\n", d.errors, d.first_error.c_str());
        return 1;
      }
      rows[t].durable.push_back(d.rate / e.rate);
      const std::string durable_text = absl::StrFormat("%.2f", d.rate / e.rate);
      printf("%-8d %4d %14.0f %16.0f %7.2f %16.1f %12.0f %12.0f %7s %8s\n", t, r, e.rate, c.rate, ratio, batch,
             e.cpu_us_per_call, c.cpu_us_per_call, bound_text.c_str(), durable_text.c_str());
      fflush(stdout);
      rows[t].empty.push_back(e.rate);
      rows[t].consent.push_back(c.rate);
      rows[t].ratio.push_back(ratio);
      rows[t].batch.push_back(batch);
      rows[t].empty_cpu.push_back(e.cpu_us_per_call);
      rows[t].consent_cpu.push_back(c.cpu_us_per_call);
    }
  }
  printf("\n%-8s %-26s %-26s %-20s %s\n", "clients", "Echo.Call/s median (min-max)",
         "Change/s median (min-max)", "ratio median (min-max)",
         "entries/fdatasync, CPU us/call Echo, Change (medians); durable median (min-max); bound at 1 client");
  for (int t : thread_counts) {
    const Row& row = rows[t];
    Spread e = Of(row.empty), c = Of(row.consent), q = Of(row.ratio), b = Of(row.batch);
    const Spread u = Of(row.durable);
    std::string bound = absl::StrFormat("; %.2f (%.2f-%.2f)", u.median, u.min, u.max);
    if (!row.bound.empty()) {
      Spread d = Of(row.bound);
      bound += absl::StrFormat("; %.2f (%.2f-%.2f)", d.median, d.min, d.max);
    }
    printf("%-8d %-26s %-26s %-20s %.1f, %.0f, %.0f%s\n", t,
           absl::StrFormat("%.0f (%.0f-%.0f)", e.median, e.min, e.max).c_str(),
           absl::StrFormat("%.0f (%.0f-%.0f)", c.median, c.min, c.max).c_str(),
           absl::StrFormat("%.2f (%.2f-%.2f)", q.median, q.min, q.max).c_str(), b.median,
           Of(row.empty_cpu).median, Of(row.consent_cpu).median, bound.c_str());
  }
  echo_server->Shutdown();
  return 0;
}

}  // namespace
}  // namespace lethe::bench

int main(int argc, char** argv) { return lethe::bench::Run(argc, argv); }
