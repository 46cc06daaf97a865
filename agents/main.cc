// lethe-agent: the sidecar that purges one domain's projections on signed commands.
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <signal.h>

#include <iostream>
#include <tuple>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "agents/agent.h"
#include "base/file_system.h"
#include "base/log_format.h"
#include "base/status.h"
#include "crypto/crypto.h"
#include "crypto/process.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  lethe::DisableCoreDumps();
  lethe::agents::AgentOptions o;
  std::string log_level = "info";
  std::string metrics_listen;
  CLI::App app{"lethe-agent: purges a domain's data on signed Lethe commands"};
  app.add_option("--domain", o.domain, "domain this agent serves (a policy domain)")->required();
  app.add_option("--postgres", o.postgres_dsn, "libpq connection string of the domain's database")
      ->required();
  app.add_option("--policy", o.policy_path, "policy YAML file")->required();
  app.add_option("--key", o.key_path, "this agent's Ed25519 private key (PEM)")->required();
  app.add_option("--control-plane-key", o.control_plane_key_path,
                 "lethed's Ed25519 public key (PEM); only commands signed by it are obeyed")
      ->required();
  app.add_option("--kafka-bootstrap", o.kafka_bootstrap,
                 "Kafka bootstrap servers, or @FILE to read them from a file (e.g. lethed's "
                 "DATA_DIR/kafka.bootstrap), read again every second: when it changes, the agent "
                 "reconnects")
      ->required();
  std::string kafka_config;
  app.add_option("--kafka-config", kafka_config,
                 "librdkafka properties file (name=value lines: security.protocol, ssl.*, "
                 "sasl.*), passed through to every Kafka client");
  std::string fetch_wait = "100ms";
  app.add_option("--kafka-fetch-wait", fetch_wait,
                 "how long the broker may hold an empty fetch for commands (fetch.wait.max.ms): "
                 "a real broker answers as soon as a command arrives; lethed's embedded broker "
                 "holds the whole wait, so against it use 10ms")
      ->capture_default_str();
  app.add_option("--s3-credentials", o.s3_credentials_file,
                 "AWS shared credentials file (INI: aws_access_key_id, aws_secret_access_key, "
                 "aws_session_token) for the domain's S3 buckets, read again when it changes; "
                 "default: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else AWS_SHARED_CREDENTIALS_FILE "
                 "or ~/.aws/credentials");
  app.add_option("--s3-profile", o.s3_profile, "profile of the credentials file")->capture_default_str();
  app.add_option("--s3-max-object-bytes", o.s3.max_object_bytes,
                 "largest JSON-lines object the agent rewrites; a larger one fails the command")
      ->capture_default_str();
  std::string vacuum_poll = "10s", vacuum_min_interval = "1m";
  app.add_option("--vacuum-poll", vacuum_poll,
                 "how often the physical purge watch looks at purged tables waiting for a vacuum "
                 "(pg_stat_user_tables) before the PHYSICALLY_PURGED receipt")
      ->capture_default_str();
  app.add_option("--vacuum-min-interval", vacuum_min_interval,
                 "least time between two VACUUMs the agent runs on one table (policy vacuum: "
                 "after_purge or full_after_purge); one VACUUM covers every purge before it")
      ->capture_default_str();
  app.add_option("--metrics-listen", metrics_listen, "serve Prometheus metrics on HOST:PORT");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text, or json: one object per line with time, level, msg, domain and, when the "
                 "line names them, request_id and entry")
      ->capture_default_str();
  std::string health_listen;
  app.add_option("--health-listen", health_listen,
                 "serve grpc.health.v1 on HOST:PORT (plaintext, health only): SERVING once the agent "
                 "has joined its consumer group (a kubelet grpc: startup probe)");
  CLI11_PARSE(app, argc, argv);
  auto format = lethe::ParseLogFormat(log_format);
  if (!format.ok()) {
    std::cerr << "lethe-agent: " << format.status().message() << "\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  lethe::ConfigureLogging(*format, "lethe-agent", o.domain);
  if (absl::Duration w; absl::ParseDuration(fetch_wait, &w) && w > absl::ZeroDuration()) {
    o.fetch_wait = w;
  } else {
    std::cerr << "lethe-agent: --kafka-fetch-wait: bad duration \"" << lethe::Quote(fetch_wait, 20)
              << "\" (use e.g. 10ms, 100ms)\n";
    return 2;
  }
  for (auto [flag, text, out, zero_ok] :
       {std::tuple<const char*, std::string*, absl::Duration*, bool>{"--vacuum-poll", &vacuum_poll, &o.vacuum.poll, false},
        {"--vacuum-min-interval", &vacuum_min_interval, &o.vacuum.min_interval, true}}) {
    absl::Duration d;
    if (!absl::ParseDuration(*text, &d) || d < absl::ZeroDuration() || (!zero_ok && d == absl::ZeroDuration())) {
      std::cerr << "lethe-agent: " << flag << ": bad duration \"" << lethe::Quote(*text, 20)
                << "\" (use e.g. 500ms, 10s, 5m)\n";
      return 2;
    }
    *out = d;
  }
  if (!o.kafka_bootstrap.empty() && o.kafka_bootstrap[0] == '@') {
    // Followed: read again every second, and the agent reconnects when it changes.
    o.kafka_bootstrap_file = o.kafka_bootstrap.substr(1);
    auto text = lethe::ReadFile(o.kafka_bootstrap_file);
    if (!text.ok()) {
      std::cerr << "lethe-agent: --kafka-bootstrap: " << text.status().message() << "\n";
      return 2;
    }
    o.kafka_bootstrap = std::string(absl::StripAsciiWhitespace(*text));
  }
  if (!kafka_config.empty()) {
    auto cfg = lethe::kafka::LoadConfigFile(kafka_config);
    if (!cfg.ok()) {
      std::cerr << "lethe-agent: --kafka-config: " << cfg.status().message() << "\n";
      return 2;
    }
    for (const auto& [k, v] : *cfg) o.kafka_extra[k] = v;
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::unique_ptr<prometheus::Exposer> exposer;
  if (!metrics_listen.empty()) {
    o.metrics = std::make_shared<prometheus::Registry>();
    exposer = std::make_unique<prometheus::Exposer>(metrics_listen);
    exposer->RegisterCollectable(o.metrics);
  }
  o.health_listen = health_listen;
  auto agent = lethe::agents::Agent::Create(o);
  if (!agent.ok()) {
    spdlog::critical("cannot start: {}", agent.status().ToString());
    return 1;
  }
  (*agent)->Start();
  int sig = 0;
  sigwait(&stop, &sig);
  spdlog::info("signal {}: stopping", sig);
  (*agent)->Stop();
  return 0;
}
