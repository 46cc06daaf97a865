// The chaos run (tests/chaos/README.md): lethed with its embedded Kafka, five agents and one
// PostgreSQL with fsync on, all real processes; a mixed load through the public gRPC API; and,
// at moments drawn from a logged seed, kill -9 of lethed and of agents, the broker down,
// Kafka request errors, PostgreSQL crashed or stopped, lethed's disk full, and an agent
// started with a drifted policy. When the load stops every fault is healed, and the run
// waits, without any operator action, until nothing is in progress. Then it checks the
// invariants (Invariants below) and writes a report.
//
// Settings (environment): LETHE_CHAOS_SECONDS, the load phase (default 40: the CI variant);
// LETHE_CHAOS_SEED (default: drawn, and printed); LETHE_CHAOS_RATE, operations a second
// (default 20); LETHE_CHAOS_FAULT_EVERY, the mean seconds between faults (default 4);
// LETHE_CHAOS_REPORT, a file for the report (Markdown); LETHE_CHAOS_DRAIN_SECONDS, how long
// the run may wait for the last requests (default 240).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/crypto.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
namespace fs = std::filesystem;

const std::string kLethed = LETHE_BINARY_DIR "/controlplane/lethed";
const std::string kAgent = LETHE_BINARY_DIR "/agents/lethe-agent";
const std::string kLethectl = LETHE_BINARY_DIR "/cli/lethectl";
const std::vector<std::string> kDomains = {"assessments", "growth", "billing", "crm", "shard01"};

double EnvNumber(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::stod(v);
}

struct Config {
  double seconds = 40;
  uint64_t seed = 0;
  double rate = 20;
  double fault_every = 4;
  double drain_seconds = 240;
  std::string report;
  std::string logs;  // a directory to copy lethed's and the agents' logs to
};

Config ConfigFromEnv() {
  Config c;
  c.seconds = EnvNumber("LETHE_CHAOS_SECONDS", c.seconds);
  c.rate = EnvNumber("LETHE_CHAOS_RATE", c.rate);
  c.fault_every = EnvNumber("LETHE_CHAOS_FAULT_EVERY", c.fault_every);
  c.drain_seconds = EnvNumber("LETHE_CHAOS_DRAIN_SECONDS", c.drain_seconds);
  if (const char* s = std::getenv("LETHE_CHAOS_SEED"); s != nullptr && *s != '\0') {
    c.seed = std::stoull(s);
  } else {
    c.seed = std::random_device()() ^ (uint64_t{std::random_device()()} << 32);
  }
  if (const char* r = std::getenv("LETHE_CHAOS_REPORT"); r != nullptr) c.report = r;
  if (const char* l = std::getenv("LETHE_CHAOS_LOGS"); l != nullptr) c.logs = l;
  return c;
}

// The people of the run. Their values are distinctive, so that a scan of any file or topic
// for these patterns cannot match by chance: subjects are erased, consenters have marketing
// consent granted and (some) withdrawn, which erases them from growth only, and bystanders
// are never erased (access requests read them).
enum class Group { kSubject, kConsenter, kBystander };
Person PersonOf(Group g, int i) {
  switch (g) {
    case Group::kSubject: return {absl::StrCat(7100000000LL + i), absl::StrCat("s", i, "@erase.chaos")};
    case Group::kConsenter: return {absl::StrCat(8100000000LL + i), absl::StrCat("c", i, "@consent.chaos")};
    case Group::kBystander: break;
  }
  return {absl::StrCat(9500000000LL + i), absl::StrCat("b", i, "@keep.chaos")};
}
absl::Time g_start;
std::mutex g_log_mu;
template <typename... A>
void Log(const absl::FormatSpec<A...>& f, const A&... a) {
  std::lock_guard<std::mutex> l(g_log_mu);
  std::fprintf(stderr, "[chaos +%7.2fs] %s\n", absl::ToDoubleSeconds(absl::Now() - g_start),
               absl::StrFormat(f, a...).c_str());
}

absl::Status FromGrpc(const grpc::Status& s) {
  return s.ok() ? absl::OkStatus() : absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// ---- The processes ----------------------------------------------------------------------

// lethed and the agents as child processes, restarted as a supervisor (Kubernetes) would,
// and the gRPC channels to lethed's (fixed) address. A process that exits when nobody killed
// it is a finding: Supervise() records it and starts it again.
class Processes {
 public:
  explicit Processes(Mesh& mesh) : mesh_(mesh) {}
  ~Processes() {
    std::lock_guard<std::mutex> a(agents_mu_);
    std::lock_guard<std::mutex> l(lethed_mu_);
    agents_.clear();
    lethed_.reset();
  }

  absl::Status StartLethed() {
    std::lock_guard<std::mutex> l(lethed_mu_);
    return StartLethedLocked();
  }
  // SIGKILL, then a new lethed (and with it a new, empty broker at a new address).
  absl::Status KillAndRestartLethed() {
    std::lock_guard<std::mutex> l(lethed_mu_);
    if (lethed_) {
      lethed_->Kill(SIGKILL);
      (void)lethed_->Wait(absl::Seconds(30));
    }
    return StartLethedLocked();
  }
  // Stops lethed with SIGTERM (the end of the run) and returns its exit status.
  absl::StatusOr<int> StopLethed() {
    std::lock_guard<std::mutex> l(lethed_mu_);
    lethed_->Kill(SIGTERM);
    auto st = lethed_->Wait(absl::Seconds(60));
    lethed_.reset();
    return st;
  }
  pid_t lethed_pid() {
    std::lock_guard<std::mutex> l(lethed_mu_);
    return lethed_ ? lethed_->pid() : 0;
  }
  std::string lethed_log() const { return mesh_.work_dir() + "/lethed.log"; }

  // Starts (or restarts) the domain's agent, with the active policy or a drifted one.
  absl::Status StartAgent(const std::string& d, bool drifted = false) {
    std::lock_guard<std::mutex> l(agents_mu_);
    return StartAgentLocked(d, drifted);
  }
  void KillAgent(const std::string& d) {
    std::lock_guard<std::mutex> l(agents_mu_);
    auto it = agents_.find(d);
    if (it == agents_.end()) return;
    it->second.process->Kill(SIGKILL);
    (void)it->second.process->Wait(absl::Seconds(30));
    agents_.erase(it);
  }
  std::string agent_log(const std::string& d) const { return mesh_.work_dir() + "/agent-" + d + ".log"; }

  // Restarts lethed or an agent that exited by itself; returns what it found. lethed stopping
  // with status 75 (its ledger could not be written) is expected of a process whose disk was
  // made full (`disk_full(pid)`).
  std::vector<std::string> Supervise(const std::function<bool(pid_t)>& disk_full) {
    std::vector<std::string> found;
    {
      std::lock_guard<std::mutex> l(lethed_mu_);
      if (lethed_ && !lethed_->Running()) {
        const int st = lethed_->exit_status().value_or(-1);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 75 && disk_full(lethed_->pid())) {
          Log("lethed stopped with status 75 (its ledger could not be written); restarting it");
          ++expected_exits_;
        } else {
          found.push_back(absl::StrCat("lethed exited by itself (wait status ", st, "): ",
                                       Tail(ReadFileOrEmpty(lethed_log()), 5)));
        }
        if (absl::Status s = StartLethedLocked(); !s.ok()) found.push_back("restart lethed: " + s.ToString());
      }
    }
    std::lock_guard<std::mutex> l(agents_mu_);
    for (auto& [d, a] : agents_) {
      if (a.process->Running()) continue;
      found.push_back(absl::StrCat("agent ", d, " exited by itself (wait status ",
                                   a.process->exit_status().value_or(-1), "): ", Tail(ReadFileOrEmpty(agent_log(d)), 5)));
      if (absl::Status s = StartAgentLocked(d, a.drifted); !s.ok()) found.push_back("restart agent: " + s.ToString());
    }
    return found;
  }

  // A client that outlives lethed's restarts: it tries to reconnect at least every second
  // (gRPC's default backoff grows to two minutes, and calls fail at once meanwhile), and its
  // calls wait for the connection up to their deadline (Call below sets wait_for_ready).
  std::shared_ptr<grpc::Channel> Channel(const std::string& role) {
    std::lock_guard<std::mutex> l(channels_mu_);
    auto& c = channels_[role];
    if (!c) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      c = mesh_.Channel(role, args);
    }
    return c;
  }
  int lethed_starts() const { return lethed_starts_; }
  int expected_exits() const { return expected_exits_; }

 private:
  struct AgentProcess {
    std::unique_ptr<Subprocess> process;
    bool drifted = false;
  };

  absl::Status StartAgentLocked(const std::string& d, bool drifted) {
    agents_.erase(d);
    const std::string policy = drifted ? mesh_.work_dir() + "/drifted-" + d + ".yaml" : mesh_.policy_path();
    auto p = Subprocess::Spawn(
        {kAgent, "--domain", d, "--postgres", mesh_.pg().Dsn(d), "--policy", policy, "--key",
         mesh_.agent_key(d), "--control-plane-key", mesh_.lethed_pub(), "--kafka-bootstrap",
         "@" + mesh_.data_dir() + "/kafka.bootstrap", "--kafka-fetch-wait", "10ms"},
        agent_log(d));
    if (!p.ok()) return p.status();
    agents_[d] = AgentProcess{std::move(*p), drifted};
    return absl::OkStatus();
  }

  absl::Status StartLethedLocked() {
    // The first start picks a free port; restarts keep it, so clients reconnect by themselves.
    const std::string listen = addr_.empty() ? "127.0.0.1:0" : addr_;
    fs::remove(mesh_.data_dir() + "/lethed.addr");
    fs::create_directories(mesh_.data_dir());
    auto p = Subprocess::Spawn({kLethed, "--listen", listen, "--data-dir", mesh_.data_dir(), "--policy",
                                mesh_.policy_path(), "--signing-key", mesh_.lethed_key(), "--certs-dir",
                                mesh_.certs_dir(), "--embedded-kafka", "--embedded-kafka-faults"},
                               lethed_log());
    if (!p.ok()) return p.status();
    ++lethed_starts_;
    auto addr = [&] {
      auto s = lethe::ReadFile(mesh_.data_dir() + "/lethed.addr");
      std::string a = s.ok() ? *s : "";
      while (!a.empty() && (a.back() == '\n' || a.back() == ' ')) a.pop_back();
      return a;
    };
    if (!WaitFor([&] { return !addr().empty() || !(*p)->Running(); }, absl::Seconds(120)) || addr().empty())
      return absl::UnavailableError("lethed did not start:\n" + Tail(ReadFileOrEmpty(lethed_log()), 20));
    lethed_ = std::move(*p);
    if (addr_.empty()) {
      addr_ = addr();
      mesh_.UseExternalLethed(addr_);
    }
    return absl::OkStatus();
  }

  Mesh& mesh_;
  std::mutex lethed_mu_, agents_mu_, channels_mu_;
  std::string addr_;
  std::unique_ptr<Subprocess> lethed_;
  std::map<std::string, AgentProcess> agents_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  std::atomic<int> lethed_starts_{0};
  std::atomic<int> expected_exits_{0};
};

// The policy with `domain`'s last table left out: an agent started with it refuses the
// domain's commands as planned with another domain policy (policy drift).
std::string DriftedPolicy(const std::string& policy, const std::string& domain) {
  std::vector<std::string> lines = absl::StrSplit(policy, '\n');
  size_t begin = lines.size(), end = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == "  - name: " + domain) begin = i;
    else if (begin < lines.size() && i > begin && lines[i].rfind("  - name: ", 0) == 0) { end = i; break; }
  }
  size_t last_table = lines.size();
  for (size_t i = begin; i < end; ++i)
    if (lines[i].rfind("        - table: ", 0) == 0) last_table = i;
  size_t stop = last_table + 1;
  while (stop < end && lines[stop].rfind("          ", 0) == 0) ++stop;
  lines.erase(lines.begin() + static_cast<long>(last_table), lines.begin() + static_cast<long>(stop));
  return absl::StrJoin(lines, "\n");
}

// ---- Faults -----------------------------------------------------------------------------

enum class Fault { kKillLethed, kKillAgent, kBrokerDown, kKafkaErrors, kLeaderMove, kPostgres, kDiskFull, kDriftedAgent };
const char* Name(Fault f) {
  switch (f) {
    case Fault::kKillLethed: return "kill -9 lethed";
    case Fault::kKillAgent: return "kill -9 agent";
    case Fault::kBrokerDown: return "Kafka broker down";
    case Fault::kKafkaErrors: return "Kafka request errors";
    case Fault::kLeaderMove: return "Kafka partition leader moved";
    case Fault::kPostgres: return "PostgreSQL stopped";
    case Fault::kDiskFull: return "lethed disk full";
    case Fault::kDriftedAgent: return "agent with drifted policy";
  }
  return "?";
}

// Time intervals during which a fault was in effect, to tell requests that met one.
class Timeline {
 public:
  void Add(absl::Time from, absl::Time to) {
    std::lock_guard<std::mutex> l(mu_);
    spans_.push_back({from, to});
  }
  bool Overlaps(absl::Time from, absl::Time to) const {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [a, b] : spans_)
      if (a <= to && from <= b) return true;
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<absl::Time, absl::Time>> spans_;
};

class Chaos {
 public:
  Chaos(Processes& procs, Mesh& mesh, uint64_t seed, double mean_every, double run_seconds)
      : procs_(procs), mesh_(mesh), rng_(seed), mean_every_(mean_every), run_seconds_(run_seconds) {}

  void StartFaults() { thread_ = std::thread([this] { Loop(); }); }
  void StartSupervising() {
    watch_ = std::thread([this] {
      while (!watch_stop_.load()) {
        for (const auto& e : procs_.Supervise([this](pid_t pid) {
               std::lock_guard<std::mutex> l(mu_);
               return disk_full_pids_.count(pid) > 0;
             }))
          Error(e);
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait_for(l, std::chrono::milliseconds(500), [&] { return watch_stop_.load(); });
      }
    });
  }
  // Stops restarting processes that exit by themselves (before the run stops them).
  void StopSupervising() {
    watch_stop_ = true;
    cv_.notify_all();
    if (watch_.joinable()) watch_.join();
  }
  ~Chaos() { StopSupervising(); }
  // Stops injecting and heals every fault still in effect.
  void StopAndHeal() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (auto& t : healers_) t.join();
  }
  std::map<std::string, int> counts() const {
    std::lock_guard<std::mutex> l(mu_);
    return counts_;
  }
  int total() const {
    int n = 0;
    for (const auto& [k, v] : counts()) n += v;
    return n;
  }
  const Timeline& timeline() const { return timeline_; }
  std::vector<std::string> errors() const {
    std::lock_guard<std::mutex> l(mu_);
    return errors_;
  }

 private:
  // Waits `d` or until stopped; false when stopped.
  bool Sleep(absl::Duration d) {
    std::unique_lock<std::mutex> l(mu_);
    return !cv_.wait_for(l, absl::ToChronoNanoseconds(d), [&] { return stop_; });
  }
  double Uniform(double a, double b) {
    std::lock_guard<std::mutex> l(rng_mu_);
    return std::uniform_real_distribution<double>(a, b)(rng_);
  }
  size_t Pick(size_t n) {
    std::lock_guard<std::mutex> l(rng_mu_);
    return std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  void Count(Fault f, const std::string& detail) {
    std::lock_guard<std::mutex> l(mu_);
    ++counts_[Name(f)];
    Log("fault %s%s", Name(f), detail.empty() ? "" : " (" + detail + ")");
  }
  void Error(const std::string& e) {
    std::lock_guard<std::mutex> l(mu_);
    errors_.push_back(e);
    Log("HARNESS ERROR: %s", e);
  }
  // A fault that lasts: `begin` now, `end` after `length` (or at the end of the run), in a
  // thread of its own. `busy` keeps two of a kind from overlapping.
  void Lasting(Fault f, const std::string& key, absl::Duration length, std::function<void()> begin,
               std::function<void()> end, const std::string& detail = "") {
    {
      std::lock_guard<std::mutex> l(mu_);
      busy_.insert(key);
    }
    const absl::Time from = absl::Now();
    begin();
    Count(f, absl::StrCat(detail.empty() ? key : detail, ", ",
                          absl::FormatDuration(absl::Trunc(length, absl::Milliseconds(100)))));
    healers_.emplace_back([this, key, length, end, from] {
      Sleep(length);
      end();
      timeline_.Add(from, absl::Now());
      std::lock_guard<std::mutex> l(mu_);
      busy_.erase(key);
    });
  }
  bool Busy(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    return busy_.count(key) > 0;
  }

  // One call of lethe.v1.EmbeddedKafkaFaults, as an admin; it fails at once while lethed
  // restarts (the fault is then not injected).
  template <typename Request, typename Response>
  absl::Status Faults(grpc::Status (v1::EmbeddedKafkaFaults::Stub::*method)(grpc::ClientContext*, const Request&,
                                                                           Response*),
                      const Request& req) {
    auto stub = v1::EmbeddedKafkaFaults::NewStub(procs_.Channel("admin"));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    Response resp;
    return FromGrpc(((*stub).*method)(&ctx, req, &resp));
  }
  absl::Status Faults(const v1::SetBrokerUpRequest& req) {
    return Faults(&v1::EmbeddedKafkaFaults::Stub::SetBrokerUp, req);
  }

  void Loop() {
    // The long outages are capped by the run's length, so that a short run still sees them end.
    const double max_down = std::clamp(run_seconds_ / 6, 5.0, 60.0);
    const std::vector<std::pair<Fault, int>> weights = {
        {Fault::kKillLethed, 2}, {Fault::kKillAgent, 5}, {Fault::kBrokerDown, 2}, {Fault::kKafkaErrors, 2},
        {Fault::kLeaderMove, 2}, {Fault::kPostgres, 2},  {Fault::kDiskFull, 2},  {Fault::kDriftedAgent, 1}};
    int sum = 0;
    for (const auto& w : weights) sum += w.second;
    while (true) {
      double wait;
      {
        std::lock_guard<std::mutex> l(rng_mu_);
        wait = std::exponential_distribution<double>(1.0 / mean_every_)(rng_);
      }
      if (!Sleep(absl::Seconds(wait))) return;
      int r = static_cast<int>(Pick(static_cast<size_t>(sum)));
      Fault f = weights.back().first;
      for (const auto& [k, w] : weights) {
        if (r < w) { f = k; break; }
        r -= w;
      }
      Inject(f, max_down);
    }
  }

  void Inject(Fault f, double max_down) {
    switch (f) {
      case Fault::kKillLethed: {
        const absl::Time from = absl::Now();
        Count(f, "");
        if (absl::Status s = procs_.KillAndRestartLethed(); !s.ok()) Error("restart lethed: " + s.ToString());
        timeline_.Add(from, absl::Now());
        return;
      }
      case Fault::kKillAgent: {
        const std::string d = kDomains[Pick(kDomains.size())];
        if (Busy("agent " + d)) return;
        const absl::Duration down = absl::Seconds(Uniform(0, 3));
        Lasting(f, "agent " + d, down, [this, d] { procs_.KillAgent(d); },
                [this, d] {
                  if (absl::Status s = procs_.StartAgent(d); !s.ok()) Error("restart agent " + d + ": " + s.ToString());
                });
        return;
      }
      case Fault::kDriftedAgent: {
        const std::string d = kDomains[Pick(kDomains.size() - 1)];  // shard01 has one table only
        if (Busy("agent " + d)) return;
        Lasting(f, "agent " + d, absl::Seconds(Uniform(5, 20)),
                [this, d] {
                  procs_.KillAgent(d);
                  if (absl::Status s = procs_.StartAgent(d, /*drifted=*/true); !s.ok())
                    Error("start drifted agent " + d + ": " + s.ToString());
                },
                [this, d] {
                  procs_.KillAgent(d);
                  if (absl::Status s = procs_.StartAgent(d); !s.ok()) Error("fix agent " + d + ": " + s.ToString());
                });
        return;
      }
      case Fault::kBrokerDown: {
        if (Busy("broker")) return;
        v1::SetBrokerUpRequest down;
        if (!Faults(down).ok()) return;  // lethed restarting: no fault injected
        Lasting(f, "broker", absl::Seconds(Uniform(5, max_down)), [] {},
                [this] {
                  // A lethed killed meanwhile came back with a new broker, up.
                  v1::SetBrokerUpRequest up;
                  up.set_up(true);
                  for (int i = 0; i < 30 && !Faults(up).ok(); ++i) absl::SleepFor(absl::Seconds(1));
                });
        return;
      }
      case Fault::kKafkaErrors: {
        // Produce (0), Fetch (1) or OffsetCommit (8) answered with retriable errors:
        // NOT_LEADER_OR_FOLLOWER (6), REQUEST_TIMED_OUT (7), COORDINATOR_NOT_AVAILABLE (15).
        static const std::vector<std::pair<int, int>> kinds = {{0, 6}, {0, 7}, {1, 6}, {8, 15}};
        const auto [api, code] = kinds[Pick(kinds.size())];
        v1::PushRequestErrorsRequest req;
        req.set_api_key(api);
        const int n = 1 + static_cast<int>(Pick(5));
        for (int i = 0; i < n; ++i) req.add_error_codes(code);
        if (!Faults(&v1::EmbeddedKafkaFaults::Stub::PushRequestErrors, req).ok()) return;
        const absl::Time now = absl::Now();
        timeline_.Add(now, now + absl::Seconds(1));
        Count(f, absl::StrCat(n, " x error ", code, " on API ", api));
        return;
      }
      case Fault::kLeaderMove: {
        // Any lethe.* topic, to any of the embedded cluster's three brokers (maybe the leader
        // it has: then nothing moves, as when a controller re-elects the same broker).
        std::vector<std::string> topics = {kafka::kConsentTopic, "lethe.receipts"};
        for (const auto& d : kDomains) topics.push_back("lethe.commands." + d);
        v1::MovePartitionLeaderRequest req;
        req.set_topic(topics[Pick(topics.size())]);
        req.set_partition(0);
        req.set_broker_id(1 + static_cast<int>(Pick(3)));
        if (!Faults(&v1::EmbeddedKafkaFaults::Stub::MovePartitionLeader, req).ok()) return;
        const absl::Time now = absl::Now();
        timeline_.Add(now, now + absl::Seconds(1));
        Count(f, absl::StrCat(req.topic(), " to broker ", req.broker_id()));
        return;
      }
      case Fault::kPostgres: {
        if (Busy("postgres")) return;
        const bool crash = Pick(2) == 0;
        Lasting(f, "postgres", absl::Seconds(Uniform(2, 15)),
                [this, crash] {
                  if (absl::Status s = mesh_.pg().Stop(crash); !s.ok()) Error("stop postgres: " + s.ToString());
                },
                [this] {
                  if (absl::Status s = mesh_.pg().Restart(); !s.ok()) Error("restart postgres: " + s.ToString());
                },
                crash ? "crashed: immediate shutdown" : "fast shutdown");
        return;
      }
      case Fault::kDiskFull: {
        if (Busy("disk")) return;
        const pid_t pid = procs_.lethed_pid();
        if (pid == 0) return;
        // RLIMIT_FSIZE of 1 byte: every write lethed makes past the first byte of a file fails
        // with EFBIG (lethed ignores SIGXFSZ), as on a full disk. A lethed restarted meanwhile
        // has no limit.
        Lasting(f, "disk", absl::Seconds(Uniform(3, 12)),
                [this, pid] {
                  {
                    std::lock_guard<std::mutex> l(mu_);
                    disk_full_pids_.insert(pid);
                  }
                  struct rlimit lim{1, RLIM_INFINITY};
                  if (::prlimit(pid, RLIMIT_FSIZE, &lim, nullptr) != 0) Error(absl::StrCat("prlimit: errno ", errno));
                },
                [pid] {
                  struct rlimit lim{RLIM_INFINITY, RLIM_INFINITY};
                  (void)::prlimit(pid, RLIMIT_FSIZE, &lim, nullptr);  // ESRCH: restarted since
                });
        return;
      }
    }
  }

  Processes& procs_;
  Mesh& mesh_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
  const double mean_every_;
  const double run_seconds_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::set<std::string> busy_;
  std::set<pid_t> disk_full_pids_;  // lethed processes whose disk was made full
  std::map<std::string, int> counts_;
  std::vector<std::string> errors_;
  std::vector<std::thread> healers_;
  std::thread thread_, watch_;
  std::atomic<bool> watch_stop_{false};
  Timeline timeline_;
};

// ---- The load ---------------------------------------------------------------------------

// What the clients were told: every acknowledged operation, by kind, and those refused.
struct Ledgered {
  std::string request_id;
  std::string kind;  // erasure, access, withdrawal
  absl::Time submitted;
};

class Load {
 public:
  Load(Processes& procs, uint64_t seed, double rate, int subjects, int consenters, int bystanders)
      : procs_(procs), rng_(seed ^ 0x9e3779b97f4a7c15ULL), rate_(rate), subjects_(subjects),
        consenters_(consenters), bystanders_(bystanders) {}

  void Run(absl::Duration length, int threads) {
    const absl::Time end = absl::Now() + length;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([this, end] {
        while (absl::Now() < end) {
          const absl::Time slot = NextSlot();
          if (slot >= end) break;
          absl::SleepFor(slot - absl::Now());
          Step();
        }
      });
    for (auto& w : workers) w.join();
  }

  // One erasure, waited for: every agent has joined its consumer group before the clock
  // starts. Recorded as a "warm-up" request, left out of the figures.
  absl::Status WarmUp(absl::Duration timeout) {
    const int s = NextSubject();
    v1::SubmitRequest req = Mesh::ErasureOf(PersonOf(Group::kSubject, s), "chaos warm-up");
    v1::SubmitResponse resp;
    LETHE_RETURN_IF_ERROR(FromGrpc(Call("operator", [&](auto ch, grpc::ClientContext* ctx) {
      return v1::SubjectRequests::NewStub(ch)->Submit(ctx, req, &resp);
    })));
    {
      std::lock_guard<std::mutex> l(mu_);
      requests_.push_back({resp.request_id(), "warm-up", absl::Now()});
    }
    v1::RequestView view;
    const bool done = WaitFor(
        [&] {
          v1::GetRequestRequest get;
          get.set_request_id(resp.request_id());
          return Call("operator", [&](auto ch, grpc::ClientContext* ctx) {
                   return v1::SubjectRequests::NewStub(ch)->Get(ctx, get, &view);
                 }).ok() && view.state() == v1::COMPLETED;
        },
        timeout);
    return done ? absl::OkStatus() : absl::DeadlineExceededError("the warm-up erasure did not complete");
  }

  // After the faults are healed: the identities still owed, then nothing left to do.
  // A client finishes its work: the erasures a fault refused are submitted again, and the
  // identities still owed are added.
  void Finish(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      size_t retries;
      {
        std::lock_guard<std::mutex> l(mu_);
        retries = retry_.size();
      }
      for (size_t i = 0; i < retries; ++i) Erase(/*complete=*/true);
      std::deque<Partial> left;
      {
        std::lock_guard<std::mutex> l(mu_);
        left.swap(partial_);
        if (left.empty() && retry_.empty()) return;
      }
      for (auto& p : left) {
        if (!Complete(p)) {
          std::lock_guard<std::mutex> l(mu_);
          partial_.push_back(p);
        }
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  }

  // Access requests that completed: export and confirm (the client keeps the package).
  int ExportCompleted(const std::map<std::string, v1::RequestView>& views) {
    std::vector<std::string> ids;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& id : access_ids_)
        if (!exported_.count(id)) ids.push_back(id);
    }
    int done = 0;
    for (const auto& id : ids) {
      auto it = views.find(id);
      if (it == views.end() || it->second.state() != v1::COMPLETED) continue;
      auto stub = v1::SubjectRequests::NewStub(procs_.Channel("operator"));
      v1::ExportRequest er;
      er.set_request_id(id);
      v1::ExportResponse pkg;
      grpc::ClientContext c1;
      c1.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      c1.set_wait_for_ready(true);
      if (!stub->Export(&c1, er, &pkg).ok()) continue;
      v1::ConfirmExportRequest cr;
      cr.set_request_id(id);
      cr.set_package_sha256(pkg.package_sha256());
      v1::ConfirmExportResponse cresp;
      grpc::ClientContext c2;
      c2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      c2.set_wait_for_ready(true);
      if (!stub->ConfirmExport(&c2, cr, &cresp).ok()) continue;
      std::lock_guard<std::mutex> l(mu_);
      exported_.insert(id);
      ++done;
    }
    return done;
  }

  struct Tally {
    std::map<std::string, int> acked, refused;
    std::map<std::string, std::string> refusal_examples;
    std::vector<Ledgered> requests;
    std::vector<std::pair<Person, v1::ConsentRecordView>> consent;  // every acknowledged change
    std::set<int> targeted_subjects, withdrawn_consenters, granted_consenters;
    std::set<std::string> exported;
    int bystanders_accessed = 0;
  };
  Tally tally() const {
    std::lock_guard<std::mutex> l(mu_);
    Tally t;
    t.acked = acked_;
    t.refused = refused_;
    t.refusal_examples = refusal_examples_;
    t.requests = requests_;
    t.consent = consent_;
    t.targeted_subjects = targeted_;
    t.withdrawn_consenters = withdrawn_;
    t.granted_consenters = std::set<int>(granted_.begin(), granted_.end());
    for (int c : withdrawn_) t.granted_consenters.insert(c);
    t.exported = exported_;
    t.bystanders_accessed = static_cast<int>(accessed_.size());
    return t;
  }

 private:
  struct Partial {
    int subject;
    std::string request_id;
    absl::Time submitted;
    bool extended = false;
  };

  absl::Time NextSlot() {
    std::lock_guard<std::mutex> l(mu_);
    const absl::Time now = absl::Now();
    if (next_ < now - absl::Seconds(1)) next_ = now;  // no burst to catch up after a stall
    const absl::Time slot = next_;
    next_ += absl::Seconds(1.0 / rate_);
    return slot;
  }
  int Roll(int n) {
    std::lock_guard<std::mutex> l(mu_);
    return std::uniform_int_distribution<int>(0, n - 1)(rng_);
  }
  void Acked(const std::string& what) {
    std::lock_guard<std::mutex> l(mu_);
    ++acked_[what];
  }
  void Refused(const std::string& what, const grpc::Status& s) {
    std::lock_guard<std::mutex> l(mu_);
    const std::string key =
        absl::StrCat(what, ": ", absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())));
    if (++refused_[key] == 1) refusal_examples_[key] = s.error_message().substr(0, 160);
  }
  template <typename F>
  grpc::Status Call(const std::string& role, F f) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
    ctx.set_wait_for_ready(true);  // while lethed restarts, wait for it (up to the deadline)
    return f(procs_.Channel(role), &ctx);
  }

  void Step() {
    const int r = Roll(100);
    if (r < 55) return Erase(/*complete=*/true);
    if (r < 65) return Erase(/*complete=*/false);
    if (r < 77) return Grant();
    if (r < 87) return Withdraw();
    if (r < 95) return Access();
    return Advance();
  }

  int NextSubject(bool* retry = nullptr) {
    std::lock_guard<std::mutex> l(mu_);
    if (retry) *retry = !retry_.empty();
    if (!retry_.empty()) {
      const int s = retry_.front();
      retry_.pop_front();
      return s;
    }
    if (next_subject_ >= subjects_) return -1;
    targeted_.insert(next_subject_);
    return next_subject_++;
  }

  // An erasure with both identities, or with the email alone: the user_id domains then wait
  // (NEEDS_IDENTITY) until Advance extends the request and adds the user_id.
  void Erase(bool complete) {
    bool retry = false;
    const int s = NextSubject(&retry);
    if (s < 0) return;
    const Person p = PersonOf(Group::kSubject, s);
    // A submission a fault refused may still have been recorded (the answer was lost, not
    // the batch): before submitting again, a client asks for the person's open requests and
    // carries on with those (an email-only one still needs its user id).
    if (retry) {
      v1::FindOpenRequest find;
      *find.mutable_identities() = Mesh::ErasureOf(p).identities();
      v1::FindOpenResponse found;
      grpc::Status st = Call("operator", [&](auto ch, grpc::ClientContext* ctx) {
        return v1::SubjectRequests::NewStub(ch)->FindOpen(ctx, find, &found);
      });
      if (!st.ok()) {
        Refused("open requests looked up", st);
        std::lock_guard<std::mutex> l(mu_);
        retry_.push_back(s);
        return;
      }
      Acked("open requests looked up");
      if (found.matches_size() > 0) {
        std::lock_guard<std::mutex> l(mu_);
        for (const auto& m : found.matches()) {
          ++acked_["erasure found open after a lost answer"];
          requests_.push_back({m.request_id(), "recovered", absl::Now()});
          if (m.identity_types_size() == 1) partial_.push_back({s, m.request_id(), absl::Now()});
        }
        return;
      }
    }
    v1::SubmitRequest req = Mesh::ErasureOf(p, "chaos run");
    if (!complete) req.mutable_identities()->DeleteSubrange(1, 1);
    v1::SubmitResponse resp;
    const absl::Time at = absl::Now();
    grpc::Status st = Call("operator", [&](auto ch, grpc::ClientContext* ctx) {
      return v1::SubjectRequests::NewStub(ch)->Submit(ctx, req, &resp);
    });
    const std::string what = complete ? "erasure" : "erasure (email only)";
    if (!st.ok()) {
      Refused(what, st);
      std::lock_guard<std::mutex> l(mu_);
      retry_.push_back(s);  // the same person again, as a client retries
      return;
    }
    Acked(what);
    std::lock_guard<std::mutex> l(mu_);
    requests_.push_back({resp.request_id(), "erasure", at});
    if (!complete) partial_.push_back({s, resp.request_id(), at});
  }

  // Extends the oldest email-only request, then adds its user_id.
  void Advance() {
    Partial p;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (partial_.empty()) return;
      p = partial_.front();
      partial_.pop_front();
    }
    if (!Complete(p)) {
      std::lock_guard<std::mutex> l(mu_);
      partial_.push_back(p);
    }
  }
  bool Complete(Partial& p) {
    if (!p.extended) {
      v1::ExtendRequest er;
      er.set_request_id(p.request_id);
      er.set_extension_seconds(7 * 24 * 3600);
      er.set_reason("chaos: waiting for the user id");
      v1::RequestView view;
      grpc::Status st = Call("operator", [&](auto ch, grpc::ClientContext* ctx) {
        return v1::SubjectRequests::NewStub(ch)->Extend(ctx, er, &view);
      });
      if (!st.ok() && st.error_code() != grpc::StatusCode::FAILED_PRECONDITION) {
        Refused("extension", st);
        return false;
      }
      if (st.ok()) Acked("extension");
      p.extended = true;
    }
    v1::AddIdentitiesRequest ar;
    ar.set_request_id(p.request_id);
    auto* id = ar.add_identities();
    id->set_type("user_id");
    id->set_value(PersonOf(Group::kSubject, p.subject).user_id);
    v1::RequestView view;
    grpc::Status st = Call("operator", [&](auto ch, grpc::ClientContext* ctx) {
      return v1::SubjectRequests::NewStub(ch)->AddIdentities(ctx, ar, &view);
    });
    if (!st.ok()) {
      Refused("added identity", st);
      return false;
    }
    Acked("added identity");
    return true;
  }

  bool ChangeConsent(int c, v1::ConsentStatus status) {
    const Person p = PersonOf(Group::kConsenter, c);
    v1::ChangeConsentRequest req;
    req.mutable_identity()->set_type("email");
    req.mutable_identity()->set_value(p.email);
    req.set_purpose("marketing");
    req.set_status(status);
    req.set_source(status == v1::GRANTED ? "chaos-signup" : "chaos-unsubscribe");
    v1::ConsentChangeView view;
    const absl::Time at = absl::Now();
    grpc::Status st = Call("operator", [&](auto ch, grpc::ClientContext* ctx) {
      return v1::Consent::NewStub(ch)->Change(ctx, req, &view);
    });
    const std::string what = status == v1::GRANTED ? "consent granted" : "consent withdrawn";
    if (!st.ok()) {
      Refused(what, st);
      return false;
    }
    Acked(what);
    std::lock_guard<std::mutex> l(mu_);
    consent_.push_back({p, view.change()});
    if (!view.change().erasure_request_id().empty())
      requests_.push_back({view.change().erasure_request_id(), "withdrawal", at});
    return true;
  }
  void Grant() {
    int c;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!grant_retry_.empty()) {
        c = grant_retry_.front();
        grant_retry_.pop_front();
      } else if (next_consenter_ < consenters_) {
        c = next_consenter_++;
      } else {
        return;
      }
    }
    const bool ok = ChangeConsent(c, v1::GRANTED);
    std::lock_guard<std::mutex> l(mu_);
    (ok ? granted_ : grant_retry_).push_back(c);
  }
  void Withdraw() {
    int c;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (granted_.empty()) return;
      c = granted_.front();
      granted_.pop_front();
      withdrawn_.insert(c);  // from the first attempt on: the erasure may be recorded
    }
    if (!ChangeConsent(c, v1::WITHDRAWN)) {
      std::lock_guard<std::mutex> l(mu_);
      granted_.push_back(c);
    }
  }

  void Access() {
    const int b = Roll(bystanders_);
    const Person p = PersonOf(Group::kBystander, b);
    v1::SubmitRequest req = Mesh::ErasureOf(p, "chaos access");
    req.set_kind(v1::ACCESS);
    v1::SubmitResponse resp;
    const absl::Time at = absl::Now();
    grpc::Status st = Call("operator", [&](auto ch, grpc::ClientContext* ctx) {
      return v1::SubjectRequests::NewStub(ch)->Submit(ctx, req, &resp);
    });
    if (!st.ok()) return Refused("access", st);
    Acked("access");
    std::lock_guard<std::mutex> l(mu_);
    requests_.push_back({resp.request_id(), "access", at});
    access_ids_.push_back(resp.request_id());
    accessed_.insert(b);
  }

  Processes& procs_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  const double rate_;
  const int subjects_, consenters_, bystanders_;
  absl::Time next_ = absl::Now();
  int next_subject_ = 0, next_consenter_ = 0;
  std::deque<int> retry_;
  std::set<int> targeted_;
  std::deque<int> granted_;
  std::deque<int> grant_retry_;
  std::set<int> withdrawn_;
  std::set<int> accessed_;
  std::deque<Partial> partial_;
  std::vector<std::string> access_ids_;
  std::set<std::string> exported_;
  std::map<std::string, int> acked_, refused_;
  std::map<std::string, std::string> refusal_examples_;  // the first message of each kind
  std::vector<Ledgered> requests_;
  std::vector<std::pair<Person, v1::ConsentRecordView>> consent_;
};

// ---- Reading the outcome ----------------------------------------------------------------

absl::StatusOr<std::map<std::string, v1::RequestView>> ListAll(Processes& procs) {
  std::map<std::string, v1::RequestView> out;
  std::string token;
  do {
    v1::ListRequestsRequest req;
    req.set_page_size(1000);
    req.set_page_token(token);
    v1::ListRequestsResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ctx.set_wait_for_ready(true);
    LETHE_RETURN_IF_ERROR(FromGrpc(v1::SubjectRequests::NewStub(procs.Channel("auditor"))->List(&ctx, req, &resp)));
    for (const auto& v : resp.requests()) out[v.request_id()] = v;
    token = resp.next_page_token();
  } while (!token.empty());
  return out;
}

int OpenCount(const std::map<std::string, v1::RequestView>& views) {
  int n = 0;
  for (const auto& [id, v] : views) n += v.state() == v1::IN_PROGRESS;
  return n;
}

// Each table of the run's domains and the column that names the person in it.
struct TableKey {
  std::string domain, table, column;
  bool numeric = false;
};
const std::vector<TableKey>& Tables() {
  static const std::vector<TableKey> t = {
      {"assessments", "assessments.responses", "user_id"}, {"assessments", "assessments.scores", "user_id"},
      {"growth", "growth.contacts", "email"},             {"growth", "growth.campaign_events", "email"},
      {"billing", "billing.invoices", "customer_id", true}, {"billing", "billing.accounts", "email"},
      {"crm", "crm.people", "email"},                     {"crm", "crm.notes", "person_email"},
      {"crm", "crm.events", "user_id"},                   {"crm", "crm.invoices", "email"},
      {"shard01", "shard01.contacts", "email"}};
  return t;
}
// Rows whose person is in a group: by the value pattern of the column.
std::string GroupFilter(const TableKey& t, Group g) {
  const bool email = t.column.find("email") != std::string::npos;
  const std::string col = t.numeric ? t.column + "::text" : t.column;
  if (email) {
    switch (g) {
      case Group::kSubject: return col + " LIKE '%@erase.chaos'";
      case Group::kConsenter: return col + " LIKE '%@consent.chaos'";
      case Group::kBystander: return col + " LIKE '%@keep.chaos'";
    }
  }
  // A user id of 10 digits (anonymised ones are longer hashes).
  const std::string prefix = g == Group::kSubject ? "71" : g == Group::kConsenter ? "81" : "95";
  return absl::StrCat("length(", col, ") = 10 AND ", col, " LIKE '", prefix, "%'");
}
// A checksum of every row of the group in every table of the domain.
absl::StatusOr<std::string> Checksum(Mesh& mesh, const std::string& domain, Group g) {
  std::string sums;
  for (const auto& t : Tables()) {
    if (t.domain != domain) continue;
    LETHE_ASSIGN_OR_RETURN(std::string s, mesh.pg().Query(domain, absl::StrCat(
        "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM ",
        t.table, " x WHERE ", GroupFilter(t, g))));
    absl::StrAppend(&sums, t.table, "=", s, " ");
  }
  return sums;
}

struct Scan {
  int64_t files = 0, bytes = 0;
  std::vector<std::string> hits;  // "where: value prefix"
};
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
// Finds the run's identities in `text`: an email of one of its domains ("s12@erase.chaos"), or
// a user id (10 digits from 71, 81 or 95) standing alone, not inside a longer run of letters
// and digits such as a hex id. A linear scan: data dirs and logs run to hundreds of MB.
void ScanText(const std::string& where, const std::string& text, Scan& scan) {
  scan.bytes += static_cast<int64_t>(text.size());
  auto hit = [&](size_t at, size_t len) {
    // Where, the value's first characters and the 12 bytes before it (hex): enough to find
    // the writer, not enough to repeat the identity.
    const size_t from = at >= 12 ? at - 12 : 0;
    scan.hits.push_back(absl::StrCat(where, " @", at, ": ", text.substr(at, std::min<size_t>(4, len)),
                                     "... after ", crypto::Hex(text.substr(from, at - from))));
  };
  static const std::vector<std::string> kDomainsOfEmails = {"@erase.chaos", "@consent.chaos", "@keep.chaos"};
  for (size_t at = text.find('@'); at != std::string::npos; at = text.find('@', at + 1)) {
    bool ours = false;
    for (const auto& dom : kDomainsOfEmails) ours = ours || text.compare(at, dom.size(), dom) == 0;
    if (!ours) continue;
    size_t begin = at;
    while (begin > 0 && std::isdigit(static_cast<unsigned char>(text[begin - 1]))) --begin;
    if (begin == at || begin == 0 || std::string_view("scb").find(text[begin - 1]) == std::string_view::npos) continue;
    hit(begin - 1, at - begin + 1);
  }
  for (size_t i = 0; i < text.size();) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) { ++i; continue; }
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    const bool alone = (i == 0 || !IsAlnum(text[i - 1])) && (j == text.size() || !IsAlnum(text[j]));
    const std::string_view run(text.data() + i, j - i);
    if (alone && run.size() == 10 && (run.substr(0, 2) == "71" || run.substr(0, 2) == "81" || run.substr(0, 2) == "95"))
      hit(i, run.size());
    i = j;
  }
}
void ScanDir(const std::string& dir, Scan& scan) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    ++scan.files;
    ScanText(e.path().string(), ReadFileOrEmpty(e.path().string()), scan);
  }
}

int64_t Percentile(std::vector<int64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// ---- The run ----------------------------------------------------------------------------

TEST(Chaos, EveryInvariantHoldsUnderFaults) {
  const Config cfg = ConfigFromEnv();
  g_start = absl::Now();
  Log("seed %d, load %.0f s at %.0f ops/s, a fault every %.1f s on average", cfg.seed, cfg.seconds, cfg.rate,
      cfg.fault_every);

  Mesh::Options o;
  o.domains = kDomains;
  o.start_lethed = false;
  o.start_agents = false;
  o.pg_fsync = true;
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  // Each domain's tables indexed on the column that names the person, as any table a domain
  // purges by key would be: without them every purge scans whole tables, and the agents fall
  // behind a load they keep up with otherwise.
  for (const auto& t : Tables())
    ASSERT_TRUE(mesh.pg().Exec(t.domain, absl::StrCat("CREATE INDEX ON ", t.table, " (", t.column, ")")).ok()) << t.table;
  const std::string policy = ReadFileOrEmpty(mesh.policy_path());
  for (const auto& d : kDomains)
    ASSERT_TRUE(lethe::WriteFileAtomic(mesh.work_dir() + "/drifted-" + d + ".yaml", DriftedPolicy(policy, d), 0644).ok());

  // Everyone the run may touch, planted in every domain.
  const int subjects = static_cast<int>(cfg.rate * cfg.seconds * 0.7) + 100;
  const int consenters = static_cast<int>(cfg.rate * cfg.seconds * 0.15) + 50;
  const int bystanders = std::max(200, static_cast<int>(cfg.rate * cfg.seconds * 0.1));
  std::vector<Person> people;
  for (int i = 0; i < subjects; ++i) people.push_back(PersonOf(Group::kSubject, i));
  for (int i = 0; i < consenters; ++i) people.push_back(PersonOf(Group::kConsenter, i));
  for (int i = 0; i < bystanders; ++i) people.push_back(PersonOf(Group::kBystander, i));
  ASSERT_TRUE(mesh.PlantMany(people).ok());
  std::map<std::string, std::string> bystanders_before, consenters_before;
  for (const auto& d : kDomains) {
    auto b = Checksum(mesh, d, Group::kBystander);
    ASSERT_TRUE(b.ok()) << b.status();
    bystanders_before[d] = *b;
    auto c = Checksum(mesh, d, Group::kConsenter);
    ASSERT_TRUE(c.ok()) << c.status();
    consenters_before[d] = *c;
  }
  Log("planted %d subjects, %d consenters, %d bystanders in %d domains", subjects, consenters, bystanders,
      static_cast<int>(kDomains.size()));

  Processes procs(mesh);
  ASSERT_TRUE(procs.StartLethed().ok());
  for (const auto& d : kDomains) ASSERT_TRUE(mesh.EnrollAgent(d).ok()) << d;
  for (const auto& d : kDomains) ASSERT_TRUE(procs.StartAgent(d).ok()) << d;

  Chaos chaos(procs, mesh, cfg.seed, cfg.fault_every, cfg.seconds);
  Load load(procs, cfg.seed, cfg.rate, subjects, consenters, bystanders);
  ASSERT_TRUE(load.WarmUp(absl::Seconds(60)).ok());
  chaos.StartSupervising();
  // A calm start gives the figures without faults; then the faults begin.
  const double calm_seconds = std::min(60.0, 0.15 * cfg.seconds);
  load.Run(absl::Seconds(calm_seconds), 4);
  Log("calm phase over; faults begin");
  const absl::Time faults_from = absl::Now();
  chaos.StartFaults();
  load.Run(absl::Seconds(cfg.seconds - calm_seconds), 4);
  Log("load stopped; healing every fault");
  chaos.StopAndHeal();

  // No operator action from here: the owed identities are the client's, the rest is lethed's.
  const absl::Time healed = absl::Now();
  // The waits end in time for the checks and the report, inside the test's budget (ctest
  // runs the short variant with a 300 s timeout).
  const absl::Time drain_deadline =
      std::min(absl::Now() + absl::Seconds(cfg.drain_seconds), absl::Now() + TestTimeLeft() - absl::Seconds(60));
  load.Finish(std::min(absl::Seconds(60), (drain_deadline - absl::Now()) / 4));
  std::map<std::string, v1::RequestView> views;
  for (const absl::Time deadline = drain_deadline;;) {
    load.Finish(absl::Seconds(5));  // the client goes on with its own part meanwhile
    if (auto v = ListAll(procs); v.ok()) {
      views = std::move(*v);
      load.ExportCompleted(views);
      if (OpenCount(views) == 0) break;
    }
    if (absl::Now() > deadline) break;
    absl::SleepFor(absl::Seconds(1));  // polling lethed's List, a second apart
  }
  const absl::Duration drain = absl::Now() - healed;
  Log("drained in %s: %d requests, %d open", absl::FormatDuration(absl::Trunc(drain, absl::Milliseconds(100))),
      static_cast<int>(views.size()), OpenCount(views));
  // Export what completed last, then read the final views.
  load.ExportCompleted(views);
  if (auto v = ListAll(procs); v.ok()) views = std::move(*v);
  const Load::Tally tally = load.tally();

  std::vector<std::string> report;  // Markdown lines
  std::vector<std::string> violations;
  auto check = [&](bool ok, const std::string& name, const std::string& detail) {
    report.push_back(absl::StrCat("| ", name, " | ", ok ? "holds" : "**VIOLATED**", " | ",
                                  absl::StrReplaceAll(detail, {{"|", "\\|"}, {"\n", " "}}), " |"));
    if (!ok) violations.push_back(name + ": " + detail);
  };

  // 1. Every acknowledged request is in the ledger and ended within its due date; 0 stuck.
  int lost = 0, late = 0, failed = 0;
  std::string stuck_detail;
  for (const auto& r : tally.requests) {
    auto it = views.find(r.request_id);
    if (it == views.end()) { ++lost; continue; }
    const auto& v = it->second;
    if (v.state() == v1::FAILED) ++failed;
    if (v.state() != v1::IN_PROGRESS && v.completed_unix_ms() > v.due_unix_ms()) ++late;
  }
  for (const auto& [id, v] : views) {
    if (v.state() != v1::IN_PROGRESS || stuck_detail.size() > 600) continue;
    absl::StrAppend(&stuck_detail, " ", id.substr(0, 8), ":");
    for (const auto& d : v.domains())
      if (d.state() != v1::DONE)
        absl::StrAppend(&stuck_detail, " ", d.domain(), "=", v1::DomainState_Name(d.state()),
                        d.last_rejection().empty() ? "" : "(" + d.last_rejection().substr(0, 60) + ")");
  }
  check(lost == 0, "acknowledged requests in the ledger",
        absl::StrCat(tally.requests.size() - lost, " of ", tally.requests.size(), " (", views.size(),
                     " in the ledger, with those whose acknowledgement a fault cut off)"));
  check(OpenCount(views) == 0, "requests stuck", absl::StrCat(OpenCount(views), stuck_detail));
  check(late == 0, "ended within the due date", absl::StrCat(late, " late"));
  check(failed == 0, "no domain failed", absl::StrCat(failed, " FAILED"));
  int access_done = 0, access_released = 0;
  for (const auto& [id, v] : views)
    if (v.kind() == "access") {
      access_done += v.state() == v1::COMPLETED;
      access_released += !v.package_release().empty();
    }

  // 2. Each domain purged once per command: processed_commands holds one row per (request,
  //    domain), and it is the command the ledger recorded the receipt of.
  for (const auto& d : kDomains) {
    auto rows = mesh.pg().Query(d, "SELECT count(*) || ' ' || count(DISTINCT request_id) FROM lethe_agent.processed_commands");
    ASSERT_TRUE(rows.ok()) << rows.status();
    const std::vector<std::string> n = absl::StrSplit(*rows, ' ');
    std::set<std::string> done_commands;
    int erasures_done = 0;
    for (const auto& [id, v] : views) {
      if (v.kind() == "access") continue;
      for (const auto& dp : v.domains())
        if (dp.domain() == d && dp.state() == v1::DONE) {
          ++erasures_done;
          done_commands.insert(dp.command_id());
        }
    }
    auto matched = mesh.pg().Query(d, absl::StrCat(
        "SELECT count(*) FROM lethe_agent.processed_commands WHERE command_id IN ('",
        absl::StrJoin(done_commands, "','"), "')"));
    ASSERT_TRUE(matched.ok()) << matched.status();
    check(n[0] == n[1] && n[0] == absl::StrCat(erasures_done) && *matched == n[0],
          "purged exactly once per command (" + d + ")",
          absl::StrCat(n[0], " processed commands for ", n[1], " requests; ", erasures_done,
                       " erasures recorded DONE, ", *matched, " of them by the recorded command"));
  }

  // 3. Nobody who was not erased was touched: bystanders everywhere, consenters outside growth.
  for (const auto& d : kDomains) {
    auto b = Checksum(mesh, d, Group::kBystander);
    ASSERT_TRUE(b.ok()) << b.status();
    check(*b == bystanders_before[d], "bystander rows unchanged (" + d + ")", *b == bystanders_before[d] ? *b : bystanders_before[d] + " -> " + *b);
    if (d == "growth") continue;
    auto c = Checksum(mesh, d, Group::kConsenter);
    ASSERT_TRUE(c.ok()) << c.status();
    check(*c == consenters_before[d], "consenters' rows outside growth unchanged (" + d + ")", *c);
  }
  // ... and the erased are gone: subjects from every domain (crm keeps invoices, anonymises
  // events), withdrawn consenters from growth.
  {
    std::vector<std::string> emails, ids;
    for (int s : tally.targeted_subjects) {
      emails.push_back(PersonOf(Group::kSubject, s).email);
      ids.push_back(PersonOf(Group::kSubject, s).user_id);
    }
    int64_t left = 0;
    for (const auto& t : Tables()) {
      if (t.table == "crm.invoices") continue;  // retained under a tax basis
      const bool email = t.column.find("email") != std::string::npos;
      auto n = mesh.pg().Query(t.domain, absl::StrCat(
          "SELECT count(*) FROM ", t.table, " WHERE ", t.numeric ? t.column + "::text" : t.column, " IN ('",
          absl::StrJoin(email ? emails : ids, "','"), "')"));
      ASSERT_TRUE(n.ok()) << n.status();
      left += std::stoll(*n);
    }
    std::vector<std::string> withdrawn;
    for (int c : tally.withdrawn_consenters) withdrawn.push_back(PersonOf(Group::kConsenter, c).email);
    auto g = mesh.pg().Query("growth", absl::StrCat("SELECT count(*) FROM growth.contacts WHERE email IN ('",
                                                    absl::StrJoin(withdrawn, "','"), "')"));
    ASSERT_TRUE(g.ok()) << g.status();
    // A withdrawal whose acknowledgement a fault cut off may not have been recorded.
    int withdrawn_recorded = 0;
    for (const auto& [p, c] : tally.consent) withdrawn_recorded += c.status() == v1::WITHDRAWN;
    check(left == 0, "erased subjects' rows gone", absl::StrCat(emails.size(), " subjects, ", left, " rows left"));
    check(std::stoll(*g) <= static_cast<int64_t>(withdrawn.size()) - withdrawn_recorded,
          "withdrawn consenters gone from growth",
          absl::StrCat(withdrawn_recorded, " withdrawals acknowledged, ", *g, " of ", withdrawn.size(), " attempted still in growth"));
  }

  // 4. The consent states on lethe.consent equal the ledger's projection.
  {
    std::map<std::string, std::pair<int, uint64_t>> projection;  // key -> (status, entry)
    std::string token;
    bool ok = true;
    do {
      v1::ListConsentRequest req;
      req.set_purpose("marketing");
      req.set_page_size(1000);
      req.set_page_token(token);
      v1::ListConsentResponse resp;
      grpc::ClientContext ctx;
      ok = v1::Consent::NewStub(procs.Channel("operator"))->List(&ctx, req, &resp).ok();
      for (const auto& r : resp.records())
        projection[absl::StrCat(r.identity_type(), ":", r.subject_token(), ":", r.purpose())] = {r.status(), r.entry()};
      token = resp.next_page_token();
    } while (ok && !token.empty());
    auto key = crypto::Ed25519PublicKey::LoadFile(mesh.lethed_pub());
    ASSERT_TRUE(key.ok());
    std::map<std::string, std::pair<int, uint64_t>> topic;
    std::string why;
    const bool equal = WaitFor(
        [&] {
          topic.clear();
          auto records = ReadTopic(mesh.kafka_bootstrap(), kafka::kConsentTopic, absl::Seconds(20));
          if (!records.ok()) { why = records.status().ToString(); return false; }
          for (const auto& r : *records) {
            if (!r.key || !r.value) continue;
            v1::SignedEnvelope env;
            if (!env.ParseFromString(*r.value)) { why = "a record that does not parse"; continue; }
            auto body = proto::VerifyEnvelope(env, proto::kConsentStateType, *key);
            v1::ConsentState st;
            if (!body.ok() || !st.ParseFromString(*body)) { why = "a record that does not verify"; continue; }
            topic[*r.key] = {st.status(), st.ledger_entry()};
          }
          return topic == projection;
        },
        absl::Seconds(60));
    // Every acknowledged change is in the subject's history, at the entry it was told.
    int missing = 0;
    std::map<std::string, std::set<std::pair<std::string, uint64_t>>> history;  // email -> (change, entry)
    for (const auto& [p, c] : tally.consent) {
      if (!history.count(p.email)) {
        v1::ShowConsentRequest req;
        req.mutable_identity()->set_type("email");
        req.mutable_identity()->set_value(p.email);
        v1::ShowConsentResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        ctx.set_wait_for_ready(true);
    ctx.set_wait_for_ready(true);
        auto& h = history[p.email];
        if (v1::Consent::NewStub(procs.Channel("operator"))->Show(&ctx, req, &resp).ok())
          for (const auto& r : resp.history()) h.insert({r.change_id(), r.entry()});
      }
      missing += history[p.email].count({c.change_id(), c.entry()}) == 0;
    }
    check(missing == 0, "acknowledged consent changes in the ledger",
          absl::StrCat(tally.consent.size() - missing, " of ", tally.consent.size()));
    check(ok && equal && !projection.empty(), "lethe.consent equals the ledger's projection",
          absl::StrCat(projection.size(), " subjects in the projection, ", topic.size(), " keys on the topic", why.empty() ? "" : "; " + why));
  }

  // 5. Privacy: no identity of anyone in lethed's data dir, in any log, or on lethe.* topics.
  Scan scan;
  {
    std::vector<std::string> topics = {kafka::kConsentTopic, "lethe.receipts"};
    for (const auto& d : kDomains) topics.push_back("lethe.commands." + d);
    int64_t records = 0;
    for (const auto& t : topics) {
      auto rs = ReadTopic(mesh.kafka_bootstrap(), t, absl::Seconds(30));
      if (!rs.ok()) { check(false, "topic readable", t + ": " + rs.status().ToString()); continue; }
      for (const auto& r : *rs) {
        ++records;
        ScanText(t, r.key.value_or("") + "\n" + r.value.value_or(""), scan);
      }
    }
    // Domain topics keep the subject's own record key (the tombstone's); the value must be gone.
    auto crm = ReadTopic(mesh.kafka_bootstrap(), "mesh.crm.people", absl::Seconds(30));
    if (crm.ok())
      for (const auto& r : *crm) ScanText("mesh.crm.people (value)", r.value.value_or(""), scan);
    Log("scanned %d records on %d topics", static_cast<int>(records), static_cast<int>(topics.size()));
  }

  // 6. Ledger: stop lethed, then the chain, the tree and the last checkpoint verify offline.
  chaos.StopSupervising();
  {
    const std::vector<std::string> errors = chaos.errors();
    std::vector<std::string> shown;
    for (size_t i = 0; i < errors.size() && i < 3; ++i) shown.push_back(errors[i].substr(0, 300));
    check(errors.empty(), "no process exited unless killed, and every fault was injected and healed",
          absl::StrCat(errors.size(), errors.empty() ? "" : ": " + absl::StrJoin(shown, " / ")));
  }
  auto stopped = procs.StopLethed();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  for (const auto& d : kDomains) procs.KillAgent(d);
  ScanDir(mesh.data_dir(), scan);
  ScanText("lethed.log", ReadFileOrEmpty(procs.lethed_log()), scan);
  for (const auto& d : kDomains) ScanText("agent-" + d + ".log", ReadFileOrEmpty(procs.agent_log(d)), scan);
  check(scan.hits.empty(), "no identity in the data dir, logs or lethe.* topics",
        absl::StrCat(scan.files, " files and ", scan.bytes / 1000000, " MB scanned, ", scan.hits.size(), " hits",
                     scan.hits.empty() ? "" : ": " + absl::StrJoin(std::vector<std::string>(scan.hits.begin(), scan.hits.begin() + std::min<size_t>(5, scan.hits.size())), ", ")));
  auto verified = RunCommand({kLethectl, "ledger", "verify", "--dir", mesh.data_dir(), "--public-key", mesh.lethed_pub()},
                             absl::Seconds(300));
  ASSERT_TRUE(verified.ok()) << verified.status();
  std::string summary;
  for (const auto& line : absl::StrSplit(verified->output, '\n'))
    if (absl::StrContains(line, "entries") || absl::StrContains(line, "checkpoint")) absl::StrAppend(&summary, std::string(line).substr(0, 100), "; ");
  check(verified->exit_code == 0, "ledger chain, tree and last checkpoint verify (lethectl ledger verify)",
        verified->exit_code == 0 ? summary : Tail(verified->output, 5));

  // The figures: submit -> completion (lethed's own times), with and without a fault in between.
  std::vector<int64_t> calm, faulted, between;
  std::map<std::string, std::map<std::string, int>> final_states;  // kind -> state -> n
  std::map<std::string, const Ledgered*> by_id;
  for (const auto& r : tally.requests) by_id[r.request_id] = &r;
  for (const auto& [id, v] : views) {
    auto it = by_id.find(id);
    const std::string kind = it == by_id.end() ? "unacknowledged " + v.kind() : it->second->kind;
    std::string state = v1::RequestState_Name(v.state());
    if (v.kind() == "access" && !v.package_release().empty()) state += " (" + v.package_release() + ")";
    ++final_states[kind][state];
    if (v.state() == v1::IN_PROGRESS || v.completed_unix_ms() == 0 || it == by_id.end() || it->second->kind != "erasure") continue;
    const absl::Time from = absl::FromUnixMillis(v.received_unix_ms()), to = absl::FromUnixMillis(v.completed_unix_ms());
    // Email-only requests wait for the client's second call: left out of the figure.
    if (v.extensions_size() > 0) continue;
    // By when it was submitted: in the calm phase, or once faults were being injected (and
    // then whether a fault was in effect between its submission and its completion).
    if (from < faults_from) calm.push_back(v.completed_unix_ms() - v.received_unix_ms());
    else (chaos.timeline().Overlaps(from, to) ? faulted : between).push_back(v.completed_unix_ms() - v.received_unix_ms());
  }

  int acked = 0, refused = 0;
  for (const auto& [k, n] : tally.acked) acked += n;
  for (const auto& [k, n] : tally.refused) refused += n;
  std::vector<std::string> out;
  out.push_back(absl::StrFormat("## Chaos run: seed %d", cfg.seed));
  out.push_back("");
  out.push_back(absl::StrFormat(
      "Load %.0f s at %.0f operations/s through the gRPC API (the first %.0f s without faults), a fault "
      "every %.1f s on average after that; "
      "then every fault healed and the run waited %s for the last requests (no operator action). "
      "lethed started %d times (%d of them after it stopped itself on a full disk).", cfg.seconds, cfg.rate, calm_seconds, cfg.fault_every,
      absl::FormatDuration(absl::Trunc(drain, absl::Milliseconds(100))), procs.lethed_starts(),
      procs.expected_exits()));
  out.push_back("");
  out.push_back("Refusals by status: " + [&] {
    std::vector<std::string> parts;
    for (const auto& [k, n] : tally.refused)
      parts.push_back(absl::StrCat(k, " ", n, " (first: \"", tally.refusal_examples.at(k), "\")"));
    return parts.empty() ? std::string("none") : absl::StrJoin(parts, "; ");
  }() + ".");
  out.push_back("");
  out.push_back(absl::StrFormat("**Operations:** %d acknowledged, %d refused while a fault lasted (and retried).", acked, refused));
  out.push_back("");
  out.push_back("| operation | acknowledged | refused |");
  out.push_back("|---|---:|---:|");
  std::set<std::string> kinds;
  for (const auto& [k, n] : tally.acked) kinds.insert(k);
  for (const auto& [k, n] : tally.refused) kinds.insert(k.substr(0, k.find(':')));
  for (const auto& k : kinds) {
    int r = 0;
    for (const auto& [rk, n] : tally.refused) if (rk.rfind(k + ":", 0) == 0) r += n;
    out.push_back(absl::StrFormat("| %s | %d | %d |", k, tally.acked.count(k) ? tally.acked.at(k) : 0, r));
  }
  out.push_back("");
  out.push_back(absl::StrFormat("**Faults:** %d injected.", chaos.total()));
  out.push_back("");
  out.push_back("| fault | injected |");
  out.push_back("|---|---:|");
  for (const auto& [k, n] : chaos.counts()) out.push_back(absl::StrFormat("| %s | %d |", k, n));
  out.push_back("");
  out.push_back("**Requests by final state** (lethed's List at the end):");
  out.push_back("");
  out.push_back("| request | state | count |");
  out.push_back("|---|---|---:|");
  for (const auto& [k, states] : final_states)
    for (const auto& [s, n] : states) out.push_back(absl::StrFormat("| %s | %s | %d |", k, s, n));
  out.push_back("");
  out.push_back("**Submit to completion** (erasures with both identities; lethed's received and completed times):");
  out.push_back("");
  out.push_back("| erasures | count | p50 | p99 |");
  out.push_back("|---|---:|---:|---:|");
  out.push_back(absl::StrFormat("| submitted before the first fault | %d | %d ms | %d ms |", calm.size(),
                                Percentile(calm, 0.5), Percentile(calm, 0.99)));
  out.push_back(absl::StrFormat("| submitted during the faults, none in effect until completion | %d | %d ms | %d ms |",
                                between.size(), Percentile(between, 0.5), Percentile(between, 0.99)));
  out.push_back(absl::StrFormat("| submitted during the faults, one in effect before completion | %d | %d ms | %d ms |",
                                faulted.size(), Percentile(faulted, 0.5), Percentile(faulted, 0.99)));
  out.push_back("");
  out.push_back("**Invariants:**");
  out.push_back("");
  out.push_back("| invariant | result | detail |");
  out.push_back("|---|---|---|");
  for (const auto& l : report) out.push_back(l);
  out.push_back("");
  const std::string text = absl::StrJoin(out, "\n") + "\n";
  std::fprintf(stderr, "\n%s\n", text.c_str());
  if (!cfg.report.empty()) {
    std::ofstream f(cfg.report);
    f << text;
  }
  if (!cfg.logs.empty()) {
    std::error_code ec;
    fs::create_directories(cfg.logs, ec);
    fs::copy_file(procs.lethed_log(), cfg.logs + "/lethed.log", fs::copy_options::overwrite_existing, ec);
    for (const auto& d : kDomains)
      fs::copy_file(procs.agent_log(d), cfg.logs + "/agent-" + d + ".log", fs::copy_options::overwrite_existing, ec);
  }
  for (const auto& v : violations) ADD_FAILURE() << v;
  EXPECT_GT(acked, 0);
  EXPECT_GT(chaos.total(), 0);
  if (!violations.empty()) {
    std::fprintf(stderr, "lethed log tail:\n%s\n", Tail(ReadFileOrEmpty(procs.lethed_log()), 40).c_str());
    // A stuck request names the domains that never answered; their agents' logs say why.
    for (const auto& d : kDomains)
      std::fprintf(stderr, "agent %s log tail:\n%s\n", d.c_str(),
                   Tail(ReadFileOrEmpty(procs.agent_log(d)), 25).c_str());
  }
}

// The run's own tools, checked on their own: a scan that missed an identity, or a drifted
// policy that did not drift, would let the run pass without proving anything.
TEST(ChaosTools, TheScanFindsTheRunsIdentitiesAndNothingElse) {
  auto hits = [](const std::string& text) {
    Scan scan;
    ScanText("t", text, scan);
    return scan.hits.size();
  };
  EXPECT_EQ(hits("to s12@erase.chaos, from c7@consent.chaos"), 2u);
  EXPECT_EQ(hits(std::string("\x0a\x0a", 2) + PersonOf(Group::kBystander, 3).user_id + "\x12"), 1u);
  EXPECT_EQ(hits("{\"user_id\":\"7100000012\"}"), 1u);
  EXPECT_EQ(hits("8100000000"), 1u);
  EXPECT_EQ(hits("b4@keep.chaos"), 1u);
  // Not ours: other domains, ids inside hex or longer numbers, other prefixes.
  EXPECT_EQ(hits("s12@example.com x@erase.chaos"), 0u);
  EXPECT_EQ(hits("ab7100000012cd 17100000012 71000000123 6100000012 710000001"), 0u);
}

TEST(ChaosTools, TheDriftedPolicyDiffersInItsDomainAlone) {
  const std::string policy = MeshPolicy(kDomains);
  auto active = policies::Policy::Parse(policy, "active");
  ASSERT_TRUE(active.ok()) << active.status();
  for (const std::string d : {"assessments", "growth", "billing", "crm"}) {
    auto drifted = policies::Policy::Parse(DriftedPolicy(policy, d), "drifted");
    ASSERT_TRUE(drifted.ok()) << d << ": " << drifted.status();
    for (const auto& other : kDomains)
      EXPECT_EQ(drifted->DomainHash(other) == active->DomainHash(other), other != d) << d << " / " << other;
  }
}

}  // namespace
}  // namespace lethe::testing
