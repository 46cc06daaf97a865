// Ledger benchmarks: durable append throughput under concurrency, full verification,
// proof generation and reopening, at growing sizes. Prints Markdown tables.
//
//   build/bench/ledger_bench                 # all sections, defaults below
//   build/bench/ledger_bench --sizes 10000,100000,1000000 --threads 1,8,64 --seconds 3
//   build/bench/ledger_bench --skip-scale --threads 64 --runs 7   # median of 7 append runs
//
// fdatasync stays on throughout; the single-sync rate is measured in the same run, on the
// same filesystem, so the append figures can be read as a multiple of it.
#include <openssl/sha.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "audit/auditor.h"
#include "base/file_system.h"
#include "bench/sync_probe.h"
#include "crypto/crypto.h"
#include "ledger/ledger.h"

namespace lethe::ledger {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using bench::SingleSyncRate;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A CommandIssued entry of realistic size (about 330 bytes).
v1::LedgerEntry SampleEntry(std::mt19937_64& rng) {
  auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  v1::LedgerEntry e;
  auto* c = e.mutable_command_issued();
  c->set_command_id(crypto::Hex(bytes(16)));
  c->set_request_id(crypto::Hex(bytes(16)));
  c->set_domain("assessments");
  c->set_command_digest(bytes(32));
  c->set_sealed_envelope(bytes(180));
  c->set_not_after_unix_ms(1'800'000'000'000);
  c->add_identity_types("user_id");
  c->set_domain_policy_hash(bytes(32));
  return e;
}

LedgerOptions Options(const std::string& dir, const crypto::Ed25519PrivateKey& key) {
  LedgerOptions o;
  o.dir = dir;
  o.origin = "bench.example/ledger";
  o.signing_key = &key;
  return o;
}

struct AppendRun {
  double rate = 0, per_sync = 0, p50 = 0, p99 = 0, p999 = 0;
  double cpu_per_entry = 0;  // seconds of this process's CPU (all threads, user + system)
};

// This process's CPU time so far, user and system, all threads.
double ProcessCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

AppendRun RunAppenders(const std::string& dir, const crypto::Ed25519PrivateKey& key, int t,
                       double seconds) {
  AppendRun run;
  fs::remove_all(dir);
  auto ledger = Ledger::Open(Options(dir, key), nullptr);
  if (!ledger.ok()) {
    fprintf(stderr, "open: %s\n", ledger.status().ToString().c_str());
    std::exit(1);
  }
  std::vector<std::vector<double>> lat(t);
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::thread> pool;
  for (int i = 0; i < t; ++i) {
    pool.emplace_back([&, i] {
      std::mt19937_64 r(100 + i);
      std::vector<v1::LedgerEntry> samples;
      for (int k = 0; k < 64; ++k) samples.push_back(SampleEntry(r));
      lat[i].reserve(1 << 20);
      while (!go) std::this_thread::yield();
      for (size_t k = 0; !stop; ++k) {
        const auto t0 = Clock::now();
        // One copy of a prepared entry stands for the caller building it. (A braced list
        // would copy it twice: initializer_list elements cannot be moved from.)
        std::vector<v1::LedgerEntry> entries;
        entries.push_back(samples[k % samples.size()]);
        auto a = (*ledger)->Append(std::move(entries), absl::Now());
        if (!a.ok()) {
          fprintf(stderr, "append: %s\n", a.status().ToString().c_str());
          std::exit(1);
        }
        lat[i].push_back(Seconds(Clock::now() - t0));
      }
    });
  }
  const uint64_t syncs0 = (*ledger)->syncs(), entries0 = (*ledger)->entries_written();
  const auto start = Clock::now();
  const double cpu0 = ProcessCpuSeconds();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  const double elapsed = Seconds(Clock::now() - start);
  const double cpu = ProcessCpuSeconds() - cpu0;
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, size_t(p * all.size()))]; };
  run.rate = all.size() / elapsed;
  run.cpu_per_entry = all.empty() ? 0.0 : cpu / all.size();
  run.per_sync = double((*ledger)->entries_written() - entries0) /
                 std::max<uint64_t>(1, (*ledger)->syncs() - syncs0);
  run.p50 = pct(0.50);
  run.p99 = pct(0.99);
  run.p999 = pct(0.999);
  ledger->reset();
  fs::remove_all(dir);
  return run;
}

void AppendThroughput(const std::string& root, const crypto::Ed25519PrivateKey& key,
                      const std::vector<int>& threads, double seconds, int runs) {
  std::mt19937_64 rng(1);
  const size_t entry_size = SampleEntry(rng).ByteSizeLong() + 8;
  fs::create_directories(root);
  const double appending = SingleSyncRate(root, seconds, entry_size, false);
  const double single = SingleSyncRate(root, seconds, entry_size, true);
  printf("\n## Durable append (fdatasync before every acknowledgement)\n\n");
  printf("Entries of about %zu bytes. Single-sync rate, measured in this run (one entry per "
         "sync caps here): %.0f write+fdatasync/s over pre-zeroed space, as the ledger writes "
         "(the x column divides by this), %.0f/s appending to the file. CPU per entry: this "
         "process's CPU time (all threads, user and system) over the run, divided by the "
         "entries acknowledged; %u CPUs.\n\n",
         entry_size, single, appending, std::thread::hardware_concurrency());
  printf("| appenders | run | entries/s | x single-sync | entries per fdatasync | CPU per entry | p50 ack | p99 ack | p99.9 ack |\n");
  printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int t : threads) {
    std::vector<AppendRun> done;
    for (int r = 0; r < runs; ++r) {
      done.push_back(RunAppenders(root + "/append-" + std::to_string(t), key, t, seconds));
      const AppendRun& x = done.back();
      printf("| %d | %d | %.0f | %.1fx | %.1f | %.1f us | %.3f ms | %.3f ms | %.3f ms |\n", t,
             r + 1, x.rate, x.rate / single, x.per_sync, x.cpu_per_entry * 1e6, x.p50 * 1e3,
             x.p99 * 1e3, x.p999 * 1e3);
      fflush(stdout);
    }
    if (runs > 1) {
      // The run with the median rate, as a whole (its latencies belong to that run).
      std::vector<AppendRun> by_rate = done;
      std::sort(by_rate.begin(), by_rate.end(),
                [](const AppendRun& a, const AppendRun& b) { return a.rate < b.rate; });
      const AppendRun& m = by_rate[by_rate.size() / 2];
      printf("| %d | median of %d (min %.0f, max %.0f) | %.0f | %.1fx | %.1f | %.1f us | %.3f ms | %.3f ms | %.3f ms |\n",
             t, runs, by_rate.front().rate, by_rate.back().rate, m.rate, m.rate / single,
             m.per_sync, m.cpu_per_entry * 1e6, m.p50 * 1e3, m.p99 * 1e3, m.p999 * 1e3);
      fflush(stdout);
    }
  }
}

void BuildLedger(const std::string& dir, const crypto::Ed25519PrivateKey& key, uint64_t n) {
  fs::remove_all(dir);
  auto ledger = Ledger::Open(Options(dir, key), nullptr);
  std::mt19937_64 rng(7);
  std::vector<v1::LedgerEntry> samples;
  for (int k = 0; k < 256; ++k) samples.push_back(SampleEntry(rng));
  uint64_t have = (*ledger)->size();
  while (have < n) {
    const uint64_t batch = std::min<uint64_t>(1000, n - have);
    std::vector<v1::LedgerEntry> b;
    for (uint64_t i = 0; i < batch; ++i) b.push_back(samples[(have + i) % samples.size()]);
    if (!(*ledger)->Append(std::move(b), absl::Now()).ok()) std::abort();
    have += batch;
  }
  (void)(*ledger)->Checkpoint();
}

void ScaleSections(const std::string& root, const crypto::Ed25519PrivateKey& key,
                   const std::vector<uint64_t>& sizes) {
  printf("\n## Verification, proofs and reopening by ledger size\n\n");
  printf("Full verification = every record's CRC, the hash chain, the Merkle root and the "
         "checkpoint signature (audit::VerifyStructure), files in the page cache. SHA-256 baseline = "
         "OpenSSL SHA256() of each entry's bytes, same entries, same run.\n\n");
  printf("| entries | ledger bytes | full verification | SHA-256 of the same bytes | ratio | "
         "reopen | inclusion proof | consistency proof |\n");
  printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (uint64_t n : sizes) {
    const std::string dir = root + "/scale-" + std::to_string(n);
    BuildLedger(dir, key, n);
    uint64_t bytes = 0;
    for (const auto& e : fs::directory_iterator(dir)) bytes += e.file_size();
    const std::string note = *lethe::ReadFile(dir + "/checkpoint");

    // Warm the page cache once, as a verifier re-reading its own copy would find it.
    (void)audit::VerifyStructure(dir, note, key.public_key());
    auto t0 = Clock::now();
    auto report = audit::VerifyStructure(dir, note, key.public_key());
    const double verify = Seconds(Clock::now() - t0);
    if (!report.ok() || report->entries != n) {
      fprintf(stderr, "verify failed: %s\n", report.status().ToString().c_str());
      std::abort();
    }

    std::vector<std::string> payloads;
    payloads.reserve(n);
    (void)ScanSegments(dir, [&](const ScannedRecord& r) {
      payloads.emplace_back(r.payload);
      return absl::OkStatus();
    });
    unsigned char md[32];
    t0 = Clock::now();
    for (const auto& p : payloads) SHA256(reinterpret_cast<const unsigned char*>(p.data()), p.size(), md);
    const double sha = Seconds(Clock::now() - t0);
    payloads.clear();
    payloads.shrink_to_fit();

    t0 = Clock::now();
    auto ledger = Ledger::Open(Options(dir, key), nullptr);
    const double reopen = Seconds(Clock::now() - t0);
    if (!ledger.ok()) std::abort();

    std::mt19937_64 rng(3);
    constexpr int kProofs = 20000;
    t0 = Clock::now();
    size_t sink = 0;
    for (int i = 0; i < kProofs; ++i) sink += (*ledger)->InclusionProof(rng() % n, n)->size();
    const double incl = Seconds(Clock::now() - t0) / kProofs;
    t0 = Clock::now();
    for (int i = 0; i < kProofs; ++i) sink += (*ledger)->ConsistencyProof(1 + rng() % (n - 1), n)->size();
    const double cons = Seconds(Clock::now() - t0) / kProofs;
    if (sink == 0) std::abort();

    printf("| %llu | %.1f MB | %.3f s | %.3f s | %.2fx | %.3f s | %.2f us | %.2f us |\n",
           static_cast<unsigned long long>(n), bytes / 1e6, verify, sha, verify / sha, reopen,
           incl * 1e6, cons * 1e6);
    fflush(stdout);
    ledger->reset();
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace lethe::ledger

int main(int argc, char** argv) {
  std::string dir = "/tmp/lethe-ledger-bench";
  std::string sizes_text = "10000,100000,1000000";
  std::string threads_text = "1,8,64";
  double seconds = 3;
  int runs = 1;
  bool skip_append = false, skip_scale = false;
  CLI::App app{"Lethe ledger benchmarks"};
  app.add_option("--dir", dir, "scratch directory (on the filesystem to measure)")->capture_default_str();
  app.add_option("--sizes", sizes_text, "ledger sizes for verification/proofs/reopen")->capture_default_str();
  app.add_option("--threads", threads_text, "appender counts")->capture_default_str();
  app.add_option("--seconds", seconds, "duration of each append run")->capture_default_str();
  app.add_option("--runs", runs, "append runs per appender count; more than 1 adds a median row")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--skip-append", skip_append);
  app.add_flag("--skip-scale", skip_scale);
  CLI11_PARSE(app, argc, argv);
  std::vector<uint64_t> sizes;
  for (auto s : absl::StrSplit(sizes_text, ',')) {
    uint64_t v;
    if (absl::SimpleAtoi(s, &v) && v > 1) sizes.push_back(v);
  }
  std::vector<int> threads;
  for (auto s : absl::StrSplit(threads_text, ',')) {
    int v;
    if (absl::SimpleAtoi(s, &v) && v > 0) threads.push_back(v);
  }
  auto key = lethe::crypto::Ed25519PrivateKey::Generate();
  std::filesystem::create_directories(dir);
  if (!skip_append) lethe::ledger::AppendThroughput(dir, *key, threads, seconds, runs);
  if (!skip_scale) lethe::ledger::ScaleSections(dir, *key, sizes);
  std::filesystem::remove_all(dir);
  return 0;
}
