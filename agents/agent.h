// Agent: the sidecar loop of one domain. It consumes lethe.commands.<domain> in the consumer
// group lethe-agent.<domain> and, for each command: verifies it (a rejection is logged
// without personal data, counted, and its offset committed: nothing is deleted); purges or
// replays it in PostgreSQL; publishes the signed receipt to lethe.receipts and waits for the
// broker's acknowledgement; only then commits the command's offset. A database or broker
// failure rewinds to the command and retries with backoff. What happens to one command, apart
// from Kafka, is CommandHandler's (command_handler.h); the database behind it is a Purger
// (purger.h), a PostgresPurger unless AgentOptions::purger_factory builds another.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agents/command_handler.h"
#include "agents/command_verifier.h"
#include "agents/purger.h"
#include "agents/s3_eraser.h"
#include "agents/vacuum_watch.h"
#include "base/clock.h"
#include "crypto/seal.h"
#include "kafka/kafka.h"
#include "policies/policy.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus
namespace grpc {
class Server;
}  // namespace grpc

namespace lethe::agents {

// Builds the Purger of `domain`; `tombstones` produces to the domain's compacted topics.
using PurgerFactory = std::function<absl::StatusOr<std::unique_ptr<Purger>>(
    const policies::Domain& domain, const crypto::Ed25519PrivateKey& key, const Clock& clock,
    TombstoneSink tombstones)>;

// When compaction will have removed the subject's records from a tombstoned topic, and the
// tombstone itself: its append time plus the topic's max.compaction.lag.ms and
// delete.retention.ms (TombstoneResult.physically_gone_by_unix_ms). 0 when there is no bound:
// the configuration was not read, the topic is not compacted, or max.compaction.lag.ms is
// unset (Kafka's default, Long.MAX_VALUE) so that the sum passes the end of time.
int64_t TombstoneGoneBy(const v1::TombstoneResult& t);

struct AgentOptions {
  std::string domain;
  std::string postgres_dsn;
  std::string policy_path;
  std::string key_path;                 // the agent's Ed25519 private key (PEM)
  std::string control_plane_key_path;   // lethed's public key (PEM)
  std::string kafka_bootstrap;
  // lethe-agent --kafka-bootstrap @FILE: the file holding the address, which wins over
  // kafka_bootstrap. It is read again every bootstrap_check_interval: when lethed restarts
  // with its embedded broker, that broker is a new one at a new address, and the agent
  // reconnects to it by itself (a missing or empty file keeps the current address).
  std::string kafka_bootstrap_file;
  absl::Duration bootstrap_check_interval = absl::Seconds(1);
  kafka::Config kafka_extra;
  // fetch.wait.max.ms of the command consumer (kafka.h): kEmbeddedFetchWait against lethed's
  // embedded broker.
  absl::Duration fetch_wait = kafka::kFetchWait;
  absl::Duration min_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  const Clock* clock = &Clock::Real();
  // Optional. lethe_agent_commands_total{result}, lethe_agent_command_rejections_total{reason},
  // lethe_agent_purge_transaction_seconds, lethe_agent_kafka_consumer_lag and
  // lethe_agent_kafka_consumer_joined, each labelled with the domain.
  std::shared_ptr<prometheus::Registry> metrics;
  // HOST:PORT of a plaintext gRPC port serving grpc.health.v1 alone (port 0 picks one:
  // health_port()): NOT_SERVING until the command consumer has joined its group, then SERVING.
  // Empty: none.
  std::string health_listen;
  // Empty: a PostgresPurger on postgres_dsn (what lethe-agent runs).
  PurgerFactory purger_factory;
  // A domain with an s3 section signs its S3 requests with: this AWS shared credentials file
  // (profile s3_profile), read again whenever it changes; when empty, AWS_ACCESS_KEY_ID and
  // AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), else the file AWS_SHARED_CREDENTIALS_FILE
  // or ~/.aws/credentials names. None of them: Create fails.
  std::string s3_credentials_file;
  std::string s3_profile = "default";
  S3EraserOptions s3;
  // The physical purge watch (vacuum_watch.h) of a PostgresPurger's domain: how often it
  // looks, and the least time between two VACUUMs it runs on one table.
  VacuumWatchOptions vacuum;
};

// Thread safety: Create, Start and Stop (and the destructor) from one owning thread; stats()
// and rejected() may be called from any thread while the loop runs.
class Agent {
 public:
  static absl::StatusOr<std::unique_ptr<Agent>> Create(AgentOptions options);
  ~Agent();
  void Start();  // runs the loop in a thread
  void Stop();
  const AgentStats& stats() const { return stats_; }
  uint64_t rejected(Rejection r) const { return handler_->rejected(r); }
  // Whether the command consumer is in its (settled) consumer group.
  bool joined() const { return joined_.load(); }
  // The Kafka bootstrap the agent's clients use now (it follows kafka_bootstrap_file). The
  // loop's thread only, or after Stop.
  const std::string& kafka_bootstrap() const { return options_.kafka_bootstrap; }
  uint64_t reconnects() const { return reconnects_.load(); }
  // The physical purge watch, when the domain has tables a purge changes (PostgresPurger only).
  VacuumWatch* vacuum_watch() { return vacuum_watch_.get(); }
  int health_port() const { return health_port_; }

 private:
  Agent() = default;
  // The loop: takes the commands already fetched (up to kMaxBatch), handles them
  // (CommandHandler::HandleAll: verified ones in a row share one transaction), sends their
  // receipts together and only then commits their offsets; an error rewinds to the first
  // command not acknowledged and retries it.
  static constexpr size_t kMaxBatch = 32;
  void Run();
  void Count(const std::string& result);
  void Backoff(absl::Duration d);
  // Where the S3 credentials come from (AgentOptions::s3_credentials_file); an error naming
  // the file or the variables when there are none.
  static absl::StatusOr<s3::CredentialSource> S3Credentials(const AgentOptions& o);
  // Produces a tombstone and records where it went and the topic's retention settings.
  absl::StatusOr<v1::TombstoneResult> Tombstone(const std::string& topic, const std::string& key);

  AgentOptions options_;
  std::unique_ptr<policies::Policy> policy_;
  std::unique_ptr<crypto::Ed25519PrivateKey> key_;
  std::unique_ptr<crypto::X25519PrivateKey> encryption_key_;  // opens the commands' identities
  std::unique_ptr<CommandVerifier> verifier_;
  std::unique_ptr<S3Eraser> s3_eraser_;  // the domain's S3 buckets, when it has any
  std::unique_ptr<Purger> purger_;
  std::unique_ptr<VacuumWatch> vacuum_watch_;
  // Publishes the PHYSICALLY_PURGED receipts the watch has stored and not sent yet.
  void SendPhysicalReceipts();
  std::unique_ptr<CommandHandler> handler_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::unique_ptr<kafka::Producer> producer_;
  AgentStats stats_;
  mutable std::mutex mu_;
  std::map<std::string, std::optional<kafka::TopicRetention>> retention_;  // by topic, looked up once
  prometheus::Family<prometheus::Counter>* commands_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* rejections_family_ = nullptr;
  prometheus::Histogram* transaction_seconds_ = nullptr;
  prometheus::Gauge* consumer_lag_ = nullptr;
  prometheus::Gauge* consumer_joined_ = nullptr;
  prometheus::Gauge* vacuum_pending_ = nullptr;          // table entries awaiting a vacuum
  prometheus::Counter* physical_receipts_ = nullptr;     // PHYSICALLY_PURGED receipts sent
  // Metrics and health from the consumer's statistics, once per loop turn.
  void UpdateConsumerStatus();
  // (Re)creates the producer and the consumer on `bootstrap`; the old ones are dropped.
  absl::Status ConnectKafka(const std::string& bootstrap);
  // Reads kafka_bootstrap_file when due and reconnects when the address changed.
  void FollowBootstrapFile();
  // kafka_bootstrap_file's address when it is due to be read again (next_check, then
  // bootstrap_check_interval later) and names another cluster than the clients use.
  std::optional<std::string> NewBootstrap(absl::Time& next_check);
  // Whether NewBootstrap (on its own schedule) found a new cluster: the producer's reason to
  // stop waiting.
  bool BootstrapMoved();
  const policies::Domain* domain_section_ = nullptr;  // in *policy_
  absl::Time next_bootstrap_check_ = absl::InfinitePast();
  absl::Time next_moved_check_ = absl::InfinitePast();
  std::atomic<bool> joined_{false};
  std::atomic<uint64_t> reconnects_{0};
  std::unique_ptr<grpc::Server> health_server_;
  int health_port_ = 0;
  bool serving_ = false;  // the loop's thread only
  std::condition_variable stop_cv_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<kafka::Publisher::Record> outgoing_;  // receipts of the batch; the loop's only
};

}  // namespace lethe::agents
