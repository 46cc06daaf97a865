// Lethed: the control plane assembled from its components. main() and the in-process tests
// both build it from LethedOptions.
//
// Data directory layout:
//   DIR/ledger/         segment files and the latest signed checkpoint (ledger/record_format.h)
//   DIR/vault/          pepper and per-request keys (controlplane/identity_vault.h), mode 0700
//   DIR/kafka.bootstrap the embedded broker's address, with --embedded-kafka
//   DIR/lethed.addr     the gRPC address actually bound (useful with port 0)
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "controlplane/consent_publisher.h"
#include "controlplane/identity_vault.h"
#include "controlplane/metrics.h"
#include "controlplane/outbox.h"
#include "controlplane/projections.h"
#include "controlplane/receipt_intake.h"
#include "controlplane/agent_enrolment.h"
#include "controlplane/ledger_writer.h"
#include "controlplane/policy_activator.h"
#include "controlplane/request_manager.h"
#include "controlplane/request_store.h"
#include "controlplane/service.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"
#include "ledger/ledger.h"
#include "policies/policy.h"

namespace grpc {
class Server;
}
namespace prometheus {
class Exposer;
}

namespace lethe::controlplane {

struct LethedOptions {
  std::string listen = "127.0.0.1:7411";  // port 0 picks a free port; see Lethed::port()
  // ca.crt, server.crt, server.key: TLS 1.3 with client certificates and roles (authorizer.h).
  // Exactly one of certs_dir and insecure.
  std::string certs_dir;
  // Serve plaintext gRPC with no authentication: anyone who reaches the port may do anything.
  bool insecure = false;
  // The SPIFFE trust domain of client certificates; empty: the one ca.crt names.
  std::string trust_domain;
  std::string data_dir;
  // Activated at start unless it already is the active policy. May be empty once the
  // ledger holds an activated policy (lethectl policy activate).
  std::string policy_path;
  std::string metrics_listen;  // HOST:PORT for Prometheus; empty: no metrics endpoint
  // HOST:PORT of a plaintext gRPC port serving grpc.health.v1.Health alone, for probes that
  // cannot present a client certificate (a kubelet's grpc: probe); port 0 picks a free one
  // (health_port()). Empty: health is served on the main port only.
  std::string health_listen;
  // How often lethed checks that Kafka answers, for its health status.
  absl::Duration health_interval = absl::Seconds(5);
  std::string signing_key_path;
  std::string kafka_bootstrap;  // used unless embedded_kafka
  bool embedded_kafka = false;
  // Serve lethe.v1.EmbeddedKafkaFaults (admins only) to take the embedded broker down and
  // push request errors: for chaos runs and failure drills. Needs embedded_kafka.
  bool embedded_kafka_faults = false;
  // Layout of the lethe.* topics lethed creates on a real cluster (--kafka-partitions,
  // --kafka-replication-factor); kafka/topics.h says which topics and with which settings.
  kafka::TopicLayout kafka_topics;
  // How long each Admin API request (Metadata, DescribeConfigs, CreateTopics) may take.
  absl::Duration kafka_admin_timeout = absl::Seconds(15);
  // Tests: the Admin API client to use instead of librdkafka's (kafka::TopicAdmin).
  std::function<std::unique_ptr<kafka::TopicAdminApi>(const std::string& bootstrap)> topic_admin_factory;
  std::string origin = ledger::kDefaultOrigin;
  RequestManagerOptions requests;
  OutboxOptions outbox;
  ConsentPublisherOptions consent;
  kafka::Config kafka_extra;  // extra librdkafka settings for every client (--kafka-config)
  // fetch.wait.max.ms of the receipt consumer (kafka.h); zero: kEmbeddedFetchWait with the
  // embedded broker, kFetchWait otherwise.
  absl::Duration kafka_fetch_wait = absl::ZeroDuration();
  const Clock* clock = &Clock::Real();
  // Called once when lethed cannot go on and must be restarted: its ledger could not be
  // written (a full disk, an I/O error), so it refuses every change until a restart re-reads
  // it. Every health status is NOT_SERVING from then on, liveness included. lethed's main
  // stops the process (exit status 75), for its supervisor to start it again.
  std::function<void()> on_fatal;
};

// The grpc.health.v1 service name whose status ignores Kafka (a liveness probe's); "" and
// each lethe.v1 service are NOT_SERVING while no broker answers or the topics are not ready.
inline constexpr char kLivenessService[] = "liveness";

class Lethed {
 public:
  static absl::StatusOr<std::unique_ptr<Lethed>> Start(LethedOptions options);
  ~Lethed();
  void Shutdown();
  void Wait();

  int port() const { return port_; }
  // The ledger could not be written: lethed refuses changes until restarted (on_fatal).
  bool failed() const { return ledger_failed_.load(); }
  int health_port() const { return health_port_; }
  const std::string& kafka_bootstrap() const { return bootstrap_; }
  RequestStore& store() { return projections_.requests; }
  Projections& projections() { return projections_; }
  ConsentPublisher& consent_publisher() { return *consent_publisher_; }
  OutboxPublisher& outbox() { return *outbox_; }
  // What a Prometheus scrape of --metrics-listen returns.
  const LethedMetrics& metrics() const { return *metrics_; }
  RequestManager& manager() { return *manager_; }
  ReceiptIntake& intake() { return *intake_; }
  ledger::Ledger& ledger() { return *ledger_; }
  const crypto::Ed25519PrivateKey& signing_key() const { return *key_; }
  kafka::EmbeddedKafka* embedded_kafka() { return embedded_.get(); }

 private:
  Lethed() = default;

  LethedOptions options_;
  std::unique_ptr<crypto::Ed25519PrivateKey> key_;
  std::unique_ptr<IdentityVault> vault_;
  Projections projections_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<LedgerWriter> writer_;
  std::unique_ptr<AccessParts> parts_;  // before manager_, which uses it
  std::unique_ptr<RequestManager> manager_;
  std::unique_ptr<PolicyActivator> activator_;
  std::unique_ptr<AgentEnrolment> enrolment_;
  std::unique_ptr<kafka::EmbeddedKafka> embedded_;
  std::unique_ptr<kafka::TopicAdminApi> topic_admin_;  // a real cluster's Admin API (not embedded)
  std::string bootstrap_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<OutboxPublisher> outbox_;
  std::unique_ptr<ReceiptIntake> intake_;
  std::unique_ptr<ConsentPublisher> consent_publisher_;
  std::shared_ptr<LethedMetrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> ledger_failed_{false};
  std::unique_ptr<SubjectRequestsService> requests_service_;
  std::unique_ptr<AgentsService> agents_service_;
  std::unique_ptr<LedgerService> ledger_service_;
  std::unique_ptr<PoliciesService> policies_service_;
  std::unique_ptr<ConsentService> consent_service_;
  std::unique_ptr<EmbeddedKafkaFaultsService> faults_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> health_server_;  // --health-listen
  int health_port_ = 0;
  // Sets every health status (the server's, "", and each service's) on both servers.
  void SetServing(bool serving);
  // Creates the missing lethe.* topics of every domain of every activated policy on a real
  // cluster and checks the existing ones (kafka/topics.h); sets topics_ready_.
  absl::Status SetUpTopics();
  std::mutex topics_mu_;
  std::atomic<bool> topics_ready_{false};
  std::thread health_thread_;  // re-checks Kafka every health_interval
  std::mutex health_mu_;
  std::condition_variable health_cv_;
};

}  // namespace lethe::controlplane
