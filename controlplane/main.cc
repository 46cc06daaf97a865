// lethed: the Lethe control plane.
#include <signal.h>
#include <unistd.h>

#include <iostream>

#include "CLI/CLI.hpp"
#include "base/log_format.h"
#include "base/memory_trimmer.h"
#include "controlplane/lethed.h"
#include "crypto/process.h"
#include "spdlog/spdlog.h"

namespace {
absl::StatusOr<absl::Duration> ParseFlagDuration(const std::string& s) {
  absl::Duration d;
  if (!absl::ParseDuration(s, &d) || d <= absl::ZeroDuration())
    return absl::InvalidArgumentError("bad duration \"" + s + "\" (use e.g. 90s, 5m, 24h)");
  return d;
}
}  // namespace

int main(int argc, char** argv) {
  lethe::DisableCoreDumps();
  lethe::controlplane::LethedOptions o;
  std::string log_level = "info";
  std::string command_ttl = "24h";
  CLI::App app{"lethed: the Lethe privacy control plane (gRPC)"};
  app.add_option("--listen", o.listen, "gRPC listen address (port 0 picks a free port)")
      ->capture_default_str();
  auto* certs = app.add_option("--certs-dir", o.certs_dir,
                               "ca.crt, server.crt and server.key: serve TLS 1.3 and require a client "
                               "certificate signed by ca.crt (lethectl certs create-*)");
  auto* insecure = app.add_flag("--insecure", o.insecure,
                                "serve plaintext gRPC with no authentication (development only)");
  certs->excludes(insecure);
  app.add_option("--trust-domain", o.trust_domain,
                 "SPIFFE trust domain of client certificates (default: the one ca.crt names)");
  std::string kafka_config;
  app.add_option("--kafka-config", kafka_config,
                 "librdkafka properties file (name=value lines: security.protocol, ssl.*, "
                 "sasl.*), passed through to every Kafka client");
  app.add_option("--data-dir", o.data_dir, "directory for the ledger and key store")->required();
  app.add_option("--policy", o.policy_path,
                 "policy YAML file, activated at start unless it is the active policy already "
                 "(optional once the ledger holds an activated policy)");
  app.add_option("--metrics-listen", o.metrics_listen, "serve Prometheus metrics on HOST:PORT");
  app.add_option("--health-listen", o.health_listen,
                 "serve grpc.health.v1 alone, plaintext, on HOST:PORT (for probes without a client certificate)");
  app.add_option("--signing-key", o.signing_key_path,
                 "Ed25519 private key (PEM) that signs commands and checkpoints")->required();
  auto* boot = app.add_option("--kafka-bootstrap", o.kafka_bootstrap, "Kafka bootstrap servers");
  auto* emb = app.add_flag("--embedded-kafka", o.embedded_kafka,
                           "start librdkafka's mock cluster in this process");
  app.add_flag("--embedded-kafka-faults", o.embedded_kafka_faults,
               "serve lethe.v1.EmbeddedKafkaFaults (admins only): take the embedded broker down "
               "and push request errors, for chaos runs and failure drills; needs --embedded-kafka");
  boot->excludes(emb);
  app.add_option("--kafka-partitions", o.kafka_topics.partitions,
                 "partitions of each lethe.* topic lethed creates on a real cluster")
      ->capture_default_str();
  app.add_option("--kafka-replication-factor", o.kafka_topics.replication_factor,
                 "replication factor of each lethe.* topic lethed creates (-1: the broker's "
                 "default.replication.factor; use 3 in production)")
      ->capture_default_str();
  std::string fetch_wait;
  app.add_option("--kafka-fetch-wait", fetch_wait,
                 "how long the broker may hold an empty fetch of the receipt consumer "
                 "(fetch.wait.max.ms; default 100ms, 10ms with --embedded-kafka, whose broker "
                 "holds it in full)");
  std::string trim_interval = "1m";
  app.add_option("--memory-trim-interval", trim_interval,
                 "hand malloc's free pages back to the kernel this often (base/memory_trimmer.h), "
                 "or off")
      ->capture_default_str();
  app.add_option("--origin", o.origin, "checkpoint origin (log name)")->capture_default_str();
  app.add_option("--command-ttl", command_ttl, "validity of a signed command")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text, or json: one object per line with time, level, msg and, when the line "
                 "names them, request_id, domain and entry")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto format = lethe::ParseLogFormat(log_format);
  if (!format.ok()) {
    std::cerr << "lethed: " << format.status().message() << "\n";
    return 2;
  }
  if (!o.embedded_kafka && o.kafka_bootstrap.empty()) {
    std::cerr << "lethed: one of --kafka-bootstrap or --embedded-kafka is required\n";
    return 2;
  }
  auto ttl = ParseFlagDuration(command_ttl);
  if (!ttl.ok()) {
    std::cerr << "lethed: --command-ttl: " << ttl.status().message() << "\n";
    return 2;
  }
  o.requests.command_ttl = *ttl;
  if (!fetch_wait.empty()) {
    auto w = ParseFlagDuration(fetch_wait);
    if (!w.ok()) {
      std::cerr << "lethed: --kafka-fetch-wait: " << w.status().message() << "\n";
      return 2;
    }
    o.kafka_fetch_wait = *w;
  }
  absl::Duration trim_every = absl::ZeroDuration();
  if (trim_interval != "off") {
    auto t = ParseFlagDuration(trim_interval);
    if (!t.ok()) {
      std::cerr << "lethed: --memory-trim-interval: " << t.status().message() << " or off\n";
      return 2;
    }
    trim_every = *t;
  }
  if (o.certs_dir.empty() && !o.insecure) {
    std::cerr << "lethed: --certs-dir DIR is required (ca.crt, server.crt, server.key; make them "
                 "with `lethectl certs create-ca|create-server`), or --insecure for plaintext "
                 "without authentication\n";
    return 2;
  }
  if (auto layout = lethe::kafka::ValidateLayout(o.kafka_topics); !layout.ok()) {
    std::cerr << "lethed: " << layout.message() << "\n";
    return 2;
  }
  if (!kafka_config.empty()) {
    auto cfg = lethe::kafka::LoadConfigFile(kafka_config);
    if (!cfg.ok()) {
      std::cerr << "lethed: --kafka-config: " << cfg.status().message() << "\n";
      return 2;
    }
    o.kafka_extra = *cfg;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  lethe::ConfigureLogging(*format, "lethed");

  // A write beyond a file size limit (RLIMIT_FSIZE) fails with EFBIG like a full disk, and the
  // ledger reports it to the caller: it must not kill lethed with SIGXFSZ instead.
  signal(SIGXFSZ, SIG_IGN);
  // Block the stop signals in every thread; main waits for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  // A ledger that cannot be written stops lethed: through the signal main waits for, so that
  // the calls in flight are answered and the servers stop as at any shutdown.
  o.on_fatal = [] { ::kill(::getpid(), SIGTERM); };
  auto lethed = lethe::controlplane::Lethed::Start(o);
  if (!lethed.ok()) {
    spdlog::critical("cannot start: {}", lethed.status().ToString());
    return 1;
  }
  const lethe::MemoryTrimmer trimmer(trim_every);
  int sig = 0;
  sigwait(&stop, &sig);
  spdlog::info("signal {}: shutting down", sig);
  (*lethed)->Shutdown();
  if ((*lethed)->failed()) {
    // EX_TEMPFAIL: a restart re-reads the ledger and cuts the batch that failed.
    spdlog::critical("exiting with status 75: the ledger could not be written; restart lethed");
    return 75;
  }
  return 0;
}
