// Agent (agent.h): building an agent from its options, and its consume loop.
#include "agents/agent.h"

#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "agents/postgres_purger.h"
#include "base/file_system.h"
#include "agents/schema_check.h"
#include "base/status.h"
#include "base/thread_name.h"
#include "spdlog/spdlog.h"

namespace lethe::agents {

namespace {
// The address in a bootstrap file (lethed's DATA_DIR/kafka.bootstrap), trimmed.
absl::StatusOr<std::string> ReadBootstrapFile(const std::string& path) {
  LETHE_ASSIGN_OR_RETURN(std::string text, lethe::ReadFile(path));
  std::string out(absl::StripAsciiWhitespace(text));
  if (out.empty()) return absl::FailedPreconditionError("--kafka-bootstrap @" + path + ": the file is empty");
  return out;
}
}  // namespace

absl::Status Agent::ConnectKafka(const std::string& bootstrap) {
  LETHE_ASSIGN_OR_RETURN(std::unique_ptr<kafka::Producer> producer,
                         kafka::Producer::Create(bootstrap, options_.kafka_extra));
  std::vector<std::string> produce_to = {kafka::kReceiptTopic};
  for (const auto& t : domain_section_->kafka_topics) produce_to.push_back(t.topic);
  producer->WarmUp(produce_to);
  kafka::Config consumer_cfg = {{"session.timeout.ms", "6000"},
                                {"heartbeat.interval.ms", "500"},
                                {"fetch.wait.max.ms", kafka::FetchWaitMs(options_.fetch_wait)}};
  for (const auto& [k, v] : options_.kafka_extra) consumer_cfg[k] = v;
  LETHE_ASSIGN_OR_RETURN(std::unique_ptr<kafka::Consumer> consumer,
                         kafka::Consumer::Create(bootstrap, "lethe-agent." + options_.domain,
                                                 {kafka::CommandTopic(options_.domain)}, consumer_cfg));
  // The old clients talk to a broker that is gone: drop them without the group's goodbye,
  // which would wait for it, and without flushing records it will never acknowledge.
  if (consumer_) kafka::Consumer::Discard(std::move(consumer_));
  if (producer_) producer_->PurgeAll();
  // A receipt or tombstone waiting for a broker that lethed's restart replaced is given up
  // once the bootstrap file names another: the command is handled again on the new one.
  if (!options_.kafka_bootstrap_file.empty()) producer->SetAbandon([this] { return BootstrapMoved(); });
  producer_ = std::move(producer);
  consumer_ = std::move(consumer);
  {
    std::lock_guard<std::mutex> l(mu_);
    retention_.clear();  // topic settings are the new cluster's
  }
  joined_.store(false);
  options_.kafka_bootstrap = bootstrap;
  return absl::OkStatus();
}

std::optional<std::string> Agent::NewBootstrap(absl::Time& next_check) {
  const absl::Time now = options_.clock->Now();
  if (now < next_check) return std::nullopt;
  next_check = now + options_.bootstrap_check_interval;
  // Missing or empty while lethed restarts: keep the current clients until it is written.
  absl::StatusOr<std::string> current = ReadBootstrapFile(options_.kafka_bootstrap_file);
  if (!current.ok() || *current == options_.kafka_bootstrap) return std::nullopt;
  return *std::move(current);
}

bool Agent::BootstrapMoved() {
  if (!NewBootstrap(next_moved_check_)) return false;
  spdlog::info("domain {}: Kafka bootstrap changed while waiting for an acknowledgement: giving it up",
               options_.domain);
  return true;
}

void Agent::FollowBootstrapFile() {
  if (options_.kafka_bootstrap_file.empty()) return;
  std::optional<std::string> current = NewBootstrap(next_bootstrap_check_);
  if (!current) return;
  spdlog::info("domain {}: Kafka bootstrap changed ({} -> {}): reconnecting", options_.domain,
               options_.kafka_bootstrap, *current);
  if (absl::Status s = ConnectKafka(*current); !s.ok()) {
    spdlog::warn("domain {}: cannot reconnect to Kafka at {}: {}", options_.domain, *current, s.ToString());
    return;
  }
  reconnects_.fetch_add(1);
}

namespace {

// A credentials file, read again when its modification time or size changes.
s3::CredentialSource FollowCredentialsFile(std::string path, std::string profile) {
  struct State {
    std::mutex mu;
    struct stat seen {};
    std::optional<s3::Credentials> creds;
  };
  auto state = std::make_shared<State>();
  return [path = std::move(path), profile = std::move(profile), state]() -> absl::StatusOr<s3::Credentials> {
    std::lock_guard<std::mutex> lock(state->mu);
    struct stat now {};
    if (::stat(path.c_str(), &now) != 0) {
      if (state->creds) return *state->creds;  // a secret being swapped: keep the last one
      return absl::NotFoundError("S3 credentials file " + path + " cannot be read");
    }
    if (!state->creds || now.st_mtim.tv_sec != state->seen.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != state->seen.st_mtim.tv_nsec || now.st_size != state->seen.st_size ||
        now.st_ino != state->seen.st_ino) {
      absl::StatusOr<s3::Credentials> c = s3::CredentialsFromFile(path, profile);
      if (!c.ok()) return c.status();
      state->creds = std::move(*c);
      state->seen = now;
    }
    return *state->creds;
  };
}

}  // namespace

absl::StatusOr<s3::CredentialSource> Agent::S3Credentials(const AgentOptions& o) {
  std::string file = o.s3_credentials_file;
  if (file.empty()) {
    if (absl::StatusOr<s3::Credentials> env = s3::CredentialsFromEnvironment(); env.ok()) {
      return s3::CredentialSource([c = std::move(*env)]() -> absl::StatusOr<s3::Credentials> { return c; });
    }
    if (const char* f = std::getenv("AWS_SHARED_CREDENTIALS_FILE"); f != nullptr && *f != '\0') {
      file = f;
    } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0' &&
               ::access((std::string(home) + "/.aws/credentials").c_str(), R_OK) == 0) {
      file = std::string(home) + "/.aws/credentials";
    } else {
      return absl::FailedPreconditionError(
          "domain " + o.domain +
          " has an s3 section but no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give "
          "--s3-credentials FILE (an AWS shared credentials file)");
    }
  }
  // Read once now, so that a missing or broken file stops the agent at start, naming it.
  LETHE_RETURN_IF_ERROR(s3::CredentialsFromFile(file, o.s3_profile).status());
  return FollowCredentialsFile(file, o.s3_profile);
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(AgentOptions o) {
  std::unique_ptr<Agent> a(new Agent());
  LETHE_ASSIGN_OR_RETURN(policies::Policy policy, policies::Policy::LoadFile(o.policy_path));
  a->policy_ = std::make_unique<policies::Policy>(std::move(policy));
  const policies::Domain* domain = a->policy_->FindDomain(o.domain);
  if (domain == nullptr)
    return absl::InvalidArgumentError("--domain: \"" + o.domain + "\" is not a domain of policy " +
                                      o.policy_path);
  LETHE_ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey key, crypto::Ed25519PrivateKey::LoadFile(o.key_path));
  a->key_ = std::make_unique<crypto::Ed25519PrivateKey>(std::move(key));
  LETHE_ASSIGN_OR_RETURN(crypto::Ed25519PublicKey cp_key,
                   crypto::Ed25519PublicKey::LoadFile(o.control_plane_key_path));
  LETHE_ASSIGN_OR_RETURN(crypto::X25519PrivateKey enc, crypto::X25519PrivateKey::LoadFile(o.key_path));
  a->encryption_key_ = std::make_unique<crypto::X25519PrivateKey>(std::move(enc));
  a->verifier_ = std::make_unique<CommandVerifier>(cp_key, o.domain, a->policy_->DomainHash(o.domain),
                                                   *a->encryption_key_, *o.clock);
  if (!o.kafka_bootstrap_file.empty()) {
    LETHE_ASSIGN_OR_RETURN(o.kafka_bootstrap, ReadBootstrapFile(o.kafka_bootstrap_file));
  }
  a->domain_section_ = domain;
  Agent* self = a.get();
  TombstoneSink tombstones = [self](const std::string& topic, const std::string& key) {
    return self->Tombstone(topic, key);
  };
  if (!domain->s3.buckets.empty()) {
    LETHE_ASSIGN_OR_RETURN(s3::CredentialSource credentials, S3Credentials(o));
    s3::ClientOptions client;
    client.endpoint = domain->s3.endpoint;
    client.region = domain->s3.region;
    a->s3_eraser_ = std::make_unique<S3Eraser>(
        domain->s3, std::make_unique<s3::Client>(std::move(client), std::move(credentials)), [&o] {
          S3EraserOptions s3 = o.s3;
          s3.clock = o.clock;
          return s3;
        }());
  }
  if (o.purger_factory) {
    LETHE_ASSIGN_OR_RETURN(a->purger_, o.purger_factory(*domain, *a->key_, *o.clock, std::move(tombstones)));
  } else {
    a->purger_ = std::make_unique<PostgresPurger>(o.postgres_dsn, *domain, *a->key_, *o.clock,
                                                  std::move(tombstones), a->s3_eraser_.get());
    bool changes_rows = false;
    for (const policies::Table& t : domain->tables) changes_rows = changes_rows || t.action != policies::TableAction::kRetain;
    if (changes_rows)
      a->vacuum_watch_ = std::make_unique<VacuumWatch>(o.postgres_dsn, *domain, *a->key_, *o.clock, o.vacuum);
  }
  a->handler_ = std::make_unique<CommandHandler>(
      o.domain, *a->verifier_, *a->purger_, *a->key_, *o.clock,
      [self](const std::string& request_id, const std::string& wire) {
        // Sent with the rest of the batch, before any of its offsets is committed (Run).
        self->outgoing_.push_back(kafka::Publisher::Record{kafka::kReceiptTopic, request_id, wire});
        return absl::OkStatus();
      },
      a->stats_, [self](const std::string& result) { self->Count(result); });
  if (absl::Status s = a->purger_->EnsureSchema(); !s.ok()) {
    // Not fatal: the loop retries when a command arrives.
    spdlog::warn("domain {}: {}", o.domain, s.ToString());
  }
  // Tables and identity columns the section does not cover: logged and exported, not fatal.
  if (!o.purger_factory) (void)CheckSchemaDrift(o.postgres_dsn, *a->policy_, *domain, o.metrics.get());
  a->options_ = o;  // ConnectKafka reads the domain and the Kafka settings from here
  LETHE_RETURN_IF_ERROR(a->ConnectKafka(o.kafka_bootstrap));
  if (o.metrics) {
    a->commands_family_ = &prometheus::BuildCounter()
                               .Name("lethe_agent_commands_total")
                               .Help("Commands handled by this agent, by result")
                               .Register(*o.metrics);
    a->rejections_family_ = &prometheus::BuildCounter()
                                 .Name("lethe_agent_command_rejections_total")
                                 .Help("Commands this agent refused to run, by reason")
                                 .Register(*o.metrics);
    // Every reason from zero, so that rate() and alerts see the first rejection.
    for (Rejection r : {Rejection::kMalformed, Rejection::kBadSignature, Rejection::kWrongDomain,
                        Rejection::kExpired, Rejection::kPolicyDrift, Rejection::kNotForThisKey})
      a->rejections_family_->Add({{"domain", o.domain}, {"reason", RejectionName(r)}});
    a->transaction_seconds_ =
        &prometheus::BuildHistogram()
             .Name("lethe_agent_purge_transaction_seconds")
             .Help("Duration of each purge transaction (a batch of verified commands, re-check included)")
             .Register(*o.metrics)
             .Add({{"domain", o.domain}},
                  prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                          1, 2.5, 5, 10, 30});
    a->consumer_lag_ = &prometheus::BuildGauge()
                            .Name("lethe_agent_kafka_consumer_lag")
                            .Help("Commands past the committed offset of this agent's consumer (-1: not known yet)")
                            .Register(*o.metrics)
                            .Add({{"domain", o.domain}, {"topic", kafka::CommandTopic(o.domain)}});
    a->consumer_lag_->Set(-1);
    a->consumer_joined_ = &prometheus::BuildGauge()
                               .Name("lethe_agent_kafka_consumer_joined")
                               .Help("1 once this agent's consumer is a member of its settled group")
                               .Register(*o.metrics)
                               .Add({{"domain", o.domain}, {"topic", kafka::CommandTopic(o.domain)}});
    if (a->vacuum_watch_) {
      a->vacuum_pending_ = &prometheus::BuildGauge()
                                .Name("lethe_agent_physical_purge_pending")
                                .Help("Purged tables waiting for a vacuum before their PHYSICALLY_PURGED receipt")
                                .Register(*o.metrics)
                                .Add({{"domain", o.domain}});
      a->physical_receipts_ = &prometheus::BuildCounter()
                                   .Name("lethe_agent_physical_receipts_total")
                                   .Help("PHYSICALLY_PURGED receipts the broker acknowledged")
                                   .Register(*o.metrics)
                                   .Add({{"domain", o.domain}});
    }
    prometheus::Histogram* h = a->transaction_seconds_;
    a->handler_->set_transaction_observer([h](absl::Duration d) { h->Observe(absl::ToDoubleSeconds(d)); });
  }
  if (!o.health_listen.empty()) {
    // Plaintext, and nothing but health: a probe learns whether the agent is in its group.
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(o.health_listen, grpc::InsecureServerCredentials(), &a->health_port_);
    a->health_server_ = builder.BuildAndStart();
    if (!a->health_server_ || a->health_port_ == 0)
      return absl::UnavailableError("--health-listen " + o.health_listen + ": cannot listen");
    a->health_server_->GetHealthCheckService()->SetServingStatus(false);
    spdlog::info("domain {}: gRPC health (plaintext, grpc.health.v1 only) on port {}", o.domain, a->health_port_);
  }
  spdlog::info("domain {}: agent key {}, trusting control plane key {}", a->options_.domain,
               a->key_->public_key().KeyId(), cp_key.KeyId());
  return a;
}

Agent::~Agent() { Stop(); }

void Agent::Start() {
  if (vacuum_watch_) vacuum_watch_->Start();
  thread_ = NamedThread("agent-commands", [this] { Run(); });
}

void Agent::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (vacuum_watch_) vacuum_watch_->Stop();
  if (health_server_) {
    health_server_->Shutdown();
    health_server_.reset();
  }
}

int64_t TombstoneGoneBy(const v1::TombstoneResult& t) {
  if (!t.config_read() || t.appended_unix_ms() <= 0) return 0;
  if (t.cleanup_policy().find("compact") == std::string::npos) return 0;
  // Long.MAX_VALUE, Kafka's default, and anything near it: compaction may never come.
  if (t.max_compaction_lag_ms() <= 0 || t.delete_retention_ms() < 0) return 0;
  int64_t by = 0;
  if (__builtin_add_overflow(t.appended_unix_ms(), t.max_compaction_lag_ms(), &by) ||
      __builtin_add_overflow(by, t.delete_retention_ms(), &by))
    return 0;
  return by;
}

absl::StatusOr<v1::TombstoneResult> Agent::Tombstone(const std::string& topic,
                                                     const std::string& key) {
  LETHE_ASSIGN_OR_RETURN(kafka::Delivered d, producer_->ProduceSync(topic, key, std::nullopt));
  v1::TombstoneResult t;
  t.set_topic(topic);
  t.set_partition(d.partition);
  t.set_offset(d.offset);
  std::optional<kafka::TopicRetention> retention;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = retention_.find(topic);
    if (it != retention_.end()) retention = it->second;
  }
  if (!retention_.count(topic)) {
    // Once per topic per agent: brokers that refuse DescribeConfigs are not asked again.
    retention = kafka::DescribeTopicRetention(options_.kafka_bootstrap, topic, absl::Seconds(1),
                                                options_.kafka_extra);
    std::lock_guard<std::mutex> l(mu_);
    retention_[topic] = retention;
    if (!retention)
      spdlog::warn("domain {}: cannot read the configuration of topic {}; receipts will not "
                   "state its retention bounds", options_.domain, topic);
  }
  if (retention) {
    t.set_config_read(true);
    t.set_cleanup_policy(retention->cleanup_policy);
    t.set_delete_retention_ms(retention->delete_retention_ms);
    t.set_max_compaction_lag_ms(retention->max_compaction_lag_ms);
  }
  // The acknowledgement's time on the agent's clock: no earlier than the append itself, so
  // the bound computed from it is never too early. (The record's own timestamp is the
  // producer's create time, or whatever a broker sets: librdkafka's mock cluster says 1234.)
  t.set_appended_unix_ms(absl::ToUnixMillis(options_.clock->Now()));
  t.set_physically_gone_by_unix_ms(TombstoneGoneBy(t));
  return t;
}

void Agent::Count(const std::string& result) {
  if (commands_family_) commands_family_->Add({{"domain", options_.domain}, {"result", result}}).Increment();
  static constexpr std::string_view kRejected = "rejected_";
  if (rejections_family_ && result.rfind(kRejected, 0) == 0)
    rejections_family_->Add({{"domain", options_.domain}, {"reason", result.substr(kRejected.size())}}).Increment();
}

void Agent::UpdateConsumerStatus() {
  const kafka::ConsumerStats& s = consumer_->stats();
  if (consumer_lag_) consumer_lag_->Set(static_cast<double>(s.lag()));
  const bool joined = s.joined();
  joined_.store(joined);
  if (consumer_joined_) consumer_joined_->Set(joined ? 1 : 0);
  // Once in the group the agent serves: a later rebalance is routine, not a failed start.
  if (joined && !serving_) {
    serving_ = true;
    if (health_server_) health_server_->GetHealthCheckService()->SetServingStatus(true);
    spdlog::info("domain {}: joined consumer group lethe-agent.{}", options_.domain, options_.domain);
  }
}

void Agent::Backoff(absl::Duration d) {
  std::unique_lock<std::mutex> l(mu_);
  stop_cv_.wait_for(l, absl::ToChronoMilliseconds(d), [&] { return stop_.load(); });
}

void Agent::SendPhysicalReceipts() {
  if (!vacuum_watch_) return;
  if (vacuum_pending_) vacuum_pending_->Set(vacuum_watch_->pending());
  if (!vacuum_watch_->has_ready()) return;
  absl::StatusOr<std::vector<VacuumWatch::Ready>> ready = vacuum_watch_->Unsent();
  if (!ready.ok()) {
    spdlog::warn("domain {}: PHYSICALLY_PURGED receipts: {}", options_.domain, ready.status().ToString());
    return;
  }
  if (ready->empty()) return;
  std::vector<kafka::Publisher::Record> records;
  for (const auto& r : *ready) records.push_back(kafka::Publisher::Record{kafka::kReceiptTopic, r.request_id, r.wire});
  std::vector<std::string> sent;
  const auto delivered = producer_->PublishAll(records, absl::Seconds(30));
  for (size_t i = 0; i < delivered.size() && i < ready->size(); ++i)
    if (delivered[i].ok()) sent.push_back((*ready)[i].command_id);
  if (absl::Status m = vacuum_watch_->MarkSent(sent); !m.ok() || sent.size() < ready->size()) {
    // Sent again next turn: lethed records a PHYSICALLY_PURGED receipt once (rule V2).
    spdlog::warn("domain {}: {} PHYSICALLY_PURGED receipt(s) not confirmed sent; retrying", options_.domain,
                 ready->size() - (m.ok() ? sent.size() : 0));
    vacuum_watch_->Kick();
    return;
  }
  stats_.physical_receipts.fetch_add(sent.size());
  if (physical_receipts_) physical_receipts_->Increment(static_cast<double>(sent.size()));
  spdlog::info("domain {}: sent {} PHYSICALLY_PURGED receipt(s)", options_.domain, sent.size());
}

void Agent::Run() {
  absl::Duration backoff = options_.min_backoff;
  while (!stop_) {
    SendPhysicalReceipts();
    // The first command waits for the broker; the rest of the batch is what is already here.
    absl::Status polled;
    FollowBootstrapFile();
    const std::vector<kafka::Message> batch = consumer_->PollBatch(absl::Milliseconds(200), kMaxBatch, &polled);
    UpdateConsumerStatus();
    if (!polled.ok()) {
      spdlog::error("domain {}: {}", options_.domain, polled.ToString());
      if (batch.empty()) {
        Backoff(backoff);
        continue;
      }
    }
    if (batch.empty()) continue;
    // The verified commands of the batch share a transaction; their receipts go out together.
    std::vector<CommandHandler::Incoming> incoming;
    for (const kafka::Message& m : batch)
      incoming.push_back({m.value ? std::string_view(*m.value) : std::string_view(),
                          m.topic + "/" + std::to_string(m.partition) + "@" + std::to_string(m.offset)});
    size_t done = 0;  // batch[0, done) handled
    absl::Status st = handler_->HandleAll(incoming, &done);
    if (!outgoing_.empty()) {
      for (const auto& r : producer_->PublishAll(outgoing_, absl::Seconds(30))) {
        if (r.ok()) continue;
        // Not known delivered: handle the whole batch again. What was purged answers with its
        // stored receipt (the purger's processed_commands), nothing is purged twice.
        st = absl::UnavailableError("receipt not delivered: " + std::string(r.status().message()));
        done = 0;
        break;
      }
      outgoing_.clear();
    }
    // Offsets only after the receipts of everything before them are delivered.
    if (absl::Status c = consumer_->CommitThrough(batch, done); !c.ok() && st.ok()) {
      st = c;
      done = batch.size();  // the receipts went out; a redelivery replays them
    }
    if (st.ok()) {
      backoff = options_.min_backoff;
      // A purge may have left dead tuples: let the watch take their baseline now.
      if (vacuum_watch_) vacuum_watch_->Kick();
      continue;
    }
    // Nothing after batch[done] was acknowledged: no receipt, no committed offset. Read the
    // commands again from there.
    stats_.retries.fetch_add(1);
    Count("retry");
    if (done < batch.size()) {
      spdlog::warn("domain {}: will retry command at offset {} in {}: {}", options_.domain, batch[done].offset,
                   absl::FormatDuration(backoff), st.ToString());
      if (absl::Status r = consumer_->RewindFrom(batch, done); !r.ok())
        spdlog::warn("domain {}: {}", options_.domain, r.ToString());
    } else {
      spdlog::warn("domain {}: {}", options_.domain, st.ToString());
    }
    Backoff(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace lethe::agents
