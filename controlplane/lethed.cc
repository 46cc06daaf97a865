#include "controlplane/lethed.h"

#include <algorithm>

#include <grpcpp/grpcpp.h>

#include <malloc.h>

#include <filesystem>
#include <prometheus/exposer.h>

#include "absl/synchronization/mutex.h"
#include "audit/offline_verify.h"
#include "base/file_system.h"
#include "base/status.h"
#include "base/thread_name.h"
#include "controlplane/authorizer.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "ledger/checkpoint.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {

// Threads of the gRPC server that may poll for calls while others run handlers.
constexpr int kGrpcPollers = 32;

namespace {
// How long command and receipt records are kept on a real cluster: the longest a request can
// stay open under the policy, its longest deadline plus the largest extension. A command older
// than that can do no good.
absl::Duration TopicRetention(const policies::Policy& p) {
  const auto& d = p.deadlines();
  return std::max(d.erasure, d.access) + d.max_extension;
}

// Every domain of every activated policy, once each: a domain dropped from the active policy
// may still have requests open, and so a command topic in use.
std::vector<std::string> DomainsEverActivated(const PolicyRegistry& policies) {
  std::vector<std::string> domains;
  for (const auto& h : policies.History())
    for (const auto& domain : h.policy->domains()) domains.push_back(domain.name);
  std::sort(domains.begin(), domains.end());
  domains.erase(std::unique(domains.begin(), domains.end()), domains.end());
  return domains;
}
}  // namespace

absl::StatusOr<std::unique_ptr<Lethed>> Lethed::Start(LethedOptions options) {
  // Debian's Abseil checks every absl::Mutex acquisition (gRPC takes many per call) for
  // lock-order cycles, a debugging aid that cost about a tenth of the CPU of a consent change.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  if (options.signing_key_path.empty()) return absl::InvalidArgumentError("--signing-key is required");
  if (!options.embedded_kafka && options.kafka_bootstrap.empty())
    return absl::InvalidArgumentError("one of --kafka-bootstrap or --embedded-kafka is required");
  if (options.embedded_kafka_faults && !options.embedded_kafka)
    return absl::InvalidArgumentError("--embedded-kafka-faults needs --embedded-kafka");
  if (options.certs_dir.empty() == !options.insecure)
    return absl::InvalidArgumentError(
        options.insecure ? "--certs-dir and --insecure exclude each other"
                         : "--certs-dir DIR is required (ca.crt, server.crt, server.key; see "
                           "`lethectl certs`); --insecure serves without TLS or authentication");
  // Credentials first: a missing certificate stops lethed before it touches anything.
  std::shared_ptr<grpc::ServerCredentials> creds;
  std::string trust_domain;
  if (options.insecure) {
    spdlog::warn("--insecure: gRPC without TLS and without authentication; anyone who reaches {} "
                 "can erase anyone, activate policies and enroll agent keys",
                 options.listen);
    creds = grpc::InsecureServerCredentials();
  } else {
    LETHE_ASSIGN_OR_RETURN(creds, MakeServerCredentials(options.certs_dir, options.trust_domain, &trust_domain));
  }

  // What lethed holds grows in a few large arrays (the Merkle tree's levels, the entries'
  // locations, the hash tables of ended requests) that double as they grow. glibc's default
  // threshold for mapping an allocation on its own rises with every large block freed, until
  // those arrays come from the heap and each doubling leaves a hole there that small objects
  // then pin: about 1 KB of resident memory per request on record (bench/scale_bench). Pinned
  // at 256 KiB, every large block is mapped and unmapped whole.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  std::unique_ptr<Lethed> d(new Lethed());
  d->options_ = options;
  std::string policy_yaml;
  if (!options.policy_path.empty()) {
    // Validate before touching anything: a bad file must not leave a half-started lethed.
    LETHE_ASSIGN_OR_RETURN(policy_yaml, lethe::ReadFile(options.policy_path));
    LETHE_RETURN_IF_ERROR(policies::Policy::Parse(policy_yaml, options.policy_path).status());
  }
  LETHE_ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey key,
                   crypto::Ed25519PrivateKey::LoadFile(options.signing_key_path));
  d->key_ = std::make_unique<crypto::Ed25519PrivateKey>(std::move(key));
  {
    // A ledger with entries beyond LogCreated holds tokens made with the existing pepper.
    std::error_code ec;
    const bool new_deployment = !std::filesystem::exists(audit::LedgerDir(options.data_dir), ec) ||
                                std::filesystem::is_empty(audit::LedgerDir(options.data_dir), ec);
    LETHE_ASSIGN_OR_RETURN(d->vault_, IdentityVault::Open(options.data_dir + "/vault", new_deployment));
  }

  ledger::LedgerOptions lopts;
  lopts.dir = audit::LedgerDir(options.data_dir);
  lopts.on_write_failure = [self = d.get(), on_fatal = options.on_fatal](const absl::Status& st) {
    spdlog::critical("ledger: {}: lethed refuses every change until it is restarted, and stops "
                     "(free disk space first if the disk is full)", st.ToString());
    self->ledger_failed_ = true;
    self->SetServing(false);
    if (on_fatal) on_fatal();
  };
  lopts.origin = options.origin;
  lopts.signing_key = d->key_.get();
  Projections& projections = d->projections_;
  // What is remembered of ended requests and superseded consent goes to scratch files beside
  // the ledger's own entry index, on the data's file system.
  projections.SetScratchDir(lopts.dir);
  {
    // The receipts under lethed's own signed checkpoint were verified when they were recorded,
    // and Open checks the replayed entries against that checkpoint before anything is
    // served: replay need not verify their signatures again. (10,000 completed requests over
    // 3 domains: restart 2.17 s before, 0.60 s after; bench/scale_bench.) A checkpoint that
    // does not verify is left to Open, which refuses it.
    const std::string cp_path = lopts.dir + "/" + ledger::Ledger::kCheckpointFile;
    std::error_code ec;
    if (std::filesystem::exists(cp_path, ec)) {
      LETHE_ASSIGN_OR_RETURN(std::string note, lethe::ReadFile(cp_path));
      auto cp = ledger::VerifyCheckpoint(note, options.origin, d->key_->public_key());
      if (cp.ok()) projections.requests.TrustReceiptSignaturesBelow(cp->size);
    }
  }
  LETHE_ASSIGN_OR_RETURN(d->ledger_, ledger::Ledger::Open(lopts, [&projections](uint64_t seq, std::string_view,
                                                                         const v1::LedgerEntry& e) {
                     return projections.Replay(seq, e);
                   }));
  spdlog::info("ledger: {} entries, origin {}", d->ledger_->size(), d->ledger_->origin());
  malloc_trim(0);  // what the replay used and freed goes back to the system
  d->writer_ = std::make_unique<LedgerWriter>(*d->ledger_, d->projections_, *options.clock);
  LETHE_ASSIGN_OR_RETURN(d->parts_, AccessParts::Open(options.data_dir));
  RequestManagerOptions requests = options.requests;
  requests.parts = d->parts_.get();
  d->metrics_ = std::make_shared<LethedMetrics>();
  requests.receipt_latency = [m = d->metrics_.get()](bool access, absl::Duration latency) {
    m->ObserveReceiptLatency(access, latency);
  };
  d->manager_ = std::make_unique<RequestManager>(*d->writer_, d->projections_, *d->vault_,
                                                 *d->key_, *options.clock, requests);
  d->activator_ = std::make_unique<PolicyActivator>(*d->writer_, d->projections_);
  d->enrolment_ = std::make_unique<AgentEnrolment>(*d->writer_, d->projections_);
  if (!options.policy_path.empty()) {
    v1::Actor self;
    self.set_role(kRoleLethed);
    self.set_name("--policy " + options.policy_path);
    auto activated = d->activator_->Activate(policy_yaml, options.policy_path,
                                             "lethed --policy " + options.policy_path, self);
    if (!activated.ok() && !absl::IsAlreadyExists(activated.status())) return activated.status();
  }
  std::shared_ptr<const policies::Policy> policy = d->projections_.policies.Active();
  if (!policy)
    return absl::FailedPreconditionError(
        "the ledger holds no activated policy: start lethed with --policy FILE");
  const auto active = d->projections_.policies.ActiveRecord();
  spdlog::info("policy: activation {} ({}), {}", active->activation,
               crypto::Hex(active->hash).substr(0, 16), active->source);
  LETHE_RETURN_IF_ERROR(d->manager_->Recover());

  if (options.embedded_kafka) {
    // Three brokers when faults are served, so that partition leaders can move.
    LETHE_ASSIGN_OR_RETURN(d->embedded_, kafka::EmbeddedKafka::Start(options.embedded_kafka_faults ? 3 : 1));
    // The topics a real cluster gets (kafka/topics.h), without their settings: the mock
    // cluster has none. Topics of domains activated later are created when activated (below).
    for (const auto& t : kafka::LetheTopics(DomainsEverActivated(d->projections_.policies), absl::ZeroDuration()))
      LETHE_RETURN_IF_ERROR(d->embedded_->CreateTopic(t.name, 1));
    d->bootstrap_ = d->embedded_->bootstrap();
    LETHE_RETURN_IF_ERROR(lethe::WriteFileAtomic(options.data_dir + "/kafka.bootstrap",
                                            d->bootstrap_ + "\n", 0644));
    spdlog::info("embedded Kafka (librdkafka mock cluster) listening on {}; written to {}/kafka.bootstrap",
                 d->bootstrap_, options.data_dir);
  } else {
    d->bootstrap_ = options.kafka_bootstrap;
    // Every topic lethed needs, created when missing. A topic set up for another job (a
    // lethe.consent that is not compacted) stops lethed here, named; a cluster that does not
    // answer yet leaves lethed NOT_SERVING, trying again on each health check.
    if (options.topic_admin_factory) {
      d->topic_admin_ = options.topic_admin_factory(d->bootstrap_);
    } else {
      LETHE_ASSIGN_OR_RETURN(d->topic_admin_, kafka::TopicAdmin::Create(d->bootstrap_, options.kafka_extra));
    }
    if (absl::Status st = d->SetUpTopics(); !st.ok() && !absl::IsUnavailable(st)) return st;
  }

  LETHE_ASSIGN_OR_RETURN(d->producer_, kafka::Producer::Create(d->bootstrap_, options.kafka_extra));
  std::vector<std::string> topics;
  for (const auto& domain : policy->domains()) topics.push_back(kafka::CommandTopic(domain.name));
  topics.push_back(kafka::kConsentTopic);
  d->producer_->WarmUp(topics);
  const absl::Duration fetch_wait =
      options.kafka_fetch_wait != absl::ZeroDuration() ? options.kafka_fetch_wait
      : options.embedded_kafka                         ? kafka::kEmbeddedFetchWait
                                                       : kafka::kFetchWait;
  kafka::Config consumer_cfg = {{"session.timeout.ms", "6000"},
                                {"heartbeat.interval.ms", "500"},
                                {"fetch.wait.max.ms", kafka::FetchWaitMs(fetch_wait)}};
  for (const auto& [k, v] : options.kafka_extra) consumer_cfg[k] = v;
  LETHE_ASSIGN_OR_RETURN(auto consumer, kafka::Consumer::Create(d->bootstrap_, "lethed",
                                                          {kafka::kReceiptTopic}, consumer_cfg));
  ReceiptIntakeOptions intake;
  intake.store = &d->projections_.requests;
  d->intake_ = std::make_unique<ReceiptIntake>(*d->manager_, std::move(consumer), intake);
  d->outbox_ = std::make_unique<OutboxPublisher>(d->projections_.requests, *d->manager_, *d->producer_,
                                                 *options.clock, options.outbox);

  d->consent_publisher_ = std::make_unique<ConsentPublisher>(d->projections_.consent, *d->writer_, *d->producer_,
                                                             *d->key_, options.consent);

  RequestStore& store = d->projections_.requests;
  d->requests_service_ = std::make_unique<SubjectRequestsService>(
      *d->manager_, store, *d->vault_, *options.clock, d->stopping_, *d->ledger_, d->projections_.policies,
      d->key_->public_key());
  d->agents_service_ = std::make_unique<AgentsService>(*d->enrolment_, *d->writer_, store);
  d->ledger_service_ = std::make_unique<LedgerService>(*d->ledger_, *d->writer_, store, d->projections_.policies,
                                                     d->key_->public_key());
  Lethed* self = d.get();
  d->policies_service_ = std::make_unique<PoliciesService>(
      *d->activator_, *d->writer_, d->projections_.policies, [self](const policies::Policy& p) {
        // A domain new to the mesh gets its command topic before its first command.
        std::vector<std::string> topics;
        for (const auto& domain : p.domains()) {
          topics.push_back(kafka::CommandTopic(domain.name));
          if (self->embedded_) {
            if (absl::Status s = self->embedded_->CreateTopic(topics.back(), 1); !s.ok())
              spdlog::warn("cannot create topic {}: {}", topics.back(), s.ToString());
          }
        }
        if (self->topic_admin_) {
          // Until they are, lethed reports NOT_SERVING (and tries again on each health check).
          if (absl::Status st = self->SetUpTopics(); !st.ok())
            spdlog::error("policy activated, but its topics are not ready: {}", std::string(st.message()));
        }
        self->producer_->WarmUp(topics);
      });
  d->consent_service_ = std::make_unique<ConsentService>(*d->manager_, d->projections_.consent);
  ConsentPublisher* publisher = d->consent_publisher_.get();
  LethedMetricSources sources;
  sources.projections = &d->projections_;
  sources.receipts = &d->manager_->receipt_counters();
  sources.ledger = d->ledger_.get();
  sources.consent_published = [publisher] { return publisher->published(); };
  sources.receipt_consumer = &d->intake_->consumer_stats();
  sources.clock = options.clock;
  sources.insecure = options.insecure;
  d->metrics_->SetSources(std::move(sources));
  if (!options.metrics_listen.empty()) {
    try {
      d->exposer_ = std::make_unique<prometheus::Exposer>(options.metrics_listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError("--metrics-listen " + options.metrics_listen + ": " + e.what());
    }
    d->exposer_->RegisterCollectable(d->metrics_);
    spdlog::info("Prometheus metrics on http://{}/metrics", options.metrics_listen);
  }
  // grpc.health.v1.Health (per service: "" and each lethe.v1 service) and server reflection
  // on every server built from here on; statuses start NOT_SERVING.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, creds, &d->port_);
  // Bounded input: the largest request is a policy (kMaxPolicyBytes of YAML).
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxGrpcReceiveBytes));
  builder.SetMaxSendMessageSize(static_cast<int>(kMaxGrpcSendBytes));
  // The sync server hands each call to a polling thread and starts another poller when none
  // is left; a poller that finishes a call exits when more than MAX_POLLERS are polling. At
  // the default of 2, every call that waits for an fdatasync while others arrive costs a
  // thread created and destroyed (measured: ~500 a second at 8 clients). Keep enough.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kGrpcPollers);
  builder.RegisterService(d->requests_service_.get());
  builder.RegisterService(d->agents_service_.get());
  builder.RegisterService(d->ledger_service_.get());
  builder.RegisterService(d->policies_service_.get());
  builder.RegisterService(d->consent_service_.get());
  if (options.embedded_kafka_faults) {
    d->faults_service_ = std::make_unique<EmbeddedKafkaFaultsService>(*d->embedded_);
    builder.RegisterService(d->faults_service_.get());
    spdlog::warn("serving lethe.v1.EmbeddedKafkaFaults: admins may take the embedded broker down");
  }
  d->server_ = builder.BuildAndStart();
  if (!d->server_ || d->port_ == 0)
    return absl::UnavailableError("cannot listen on " + options.listen);
  if (!options.health_listen.empty()) {
    // Plaintext, and nothing but health: a probe learns whether lethed serves, no more.
    grpc::ServerBuilder health;
    health.AddListeningPort(options.health_listen, grpc::InsecureServerCredentials(), &d->health_port_);
    d->health_server_ = health.BuildAndStart();
    if (!d->health_server_ || d->health_port_ == 0)
      return absl::UnavailableError("--health-listen " + options.health_listen + ": cannot listen");
    spdlog::info("gRPC health (plaintext, grpc.health.v1 only) on port {}", d->health_port_);
  }
  // SERVING once the ledger is open (it is: replayed above) and a Kafka broker answers;
  // re-checked every health_interval.
  auto kafka_ok = [self](absl::Duration timeout) {
    absl::Status st = self->producer_->CheckReachable(timeout);
    if (st.ok() && self->topic_admin_ && !self->topics_ready_) st = self->SetUpTopics();
    if (!st.ok()) spdlog::warn("health: NOT_SERVING: {}", std::string(st.message()));
    return st.ok();
  };
  d->SetServing(kafka_ok(absl::Seconds(2)));
  d->health_thread_ = NamedThread("kafka-health", [self, kafka_ok, interval = options.health_interval] {
    std::unique_lock<std::mutex> l(self->health_mu_);
    while (!self->health_cv_.wait_for(l, absl::ToChronoMilliseconds(interval),
                                        [self] { return self->stopping_.load(); })) {
      l.unlock();
      const bool ok = kafka_ok(absl::Seconds(2));
      if (!self->stopping_) self->SetServing(ok);
      l.lock();
    }
  });

  // Scripts that start lethed with port 0 read the bound address from here.
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  LETHE_RETURN_IF_ERROR(lethe::WriteFileAtomic(options.data_dir + "/lethed.addr",
                                          host + ":" + std::to_string(d->port_) + "\n", 0644));
  d->intake_->Start();
  d->outbox_->Start();
  d->consent_publisher_->Start();
  spdlog::info("lethed serving gRPC on port {} ({}; policy {}, {} domains)", d->port_,
               options.insecure ? "INSECURE: no TLS, no authentication"
                                : "TLS 1.3, client certificates of trust domain " + trust_domain,
               policy->name(), policy->domains().size());
  return d;
}

absl::Status Lethed::SetUpTopics() {
  std::lock_guard<std::mutex> l(topics_mu_);
  std::shared_ptr<const policies::Policy> policy = projections_.policies.Active();
  auto created = kafka::EnsureTopics(*topic_admin_,
                                     kafka::LetheTopics(DomainsEverActivated(projections_.policies), TopicRetention(*policy)),
                                     options_.kafka_topics, options_.kafka_admin_timeout);
  topics_ready_ = created.ok();
  if (!created.ok())
    return absl::Status(created.status().code(), absl::StrCat("kafka topics: ", created.status().message()));
  return absl::OkStatus();
}

void Lethed::SetServing(bool serving) {
  static constexpr const char* kServices[] = {"",
                                              v1::SubjectRequests::service_full_name(),
                                              v1::Policies::service_full_name(),
                                              v1::Consent::service_full_name(),
                                              v1::Agents::service_full_name(),
                                              v1::Ledger::service_full_name()};
  for (grpc::Server* s : {server_.get(), health_server_.get()}) {
    if (s == nullptr || s->GetHealthCheckService() == nullptr) continue;
    for (const char* name : kServices)
      s->GetHealthCheckService()->SetServingStatus(name, serving && !ledger_failed_.load());
    // "liveness": SERVING while the process serves at all, whatever Kafka does, for a probe
    // that restarts lethed (restarting cannot bring a broker back). NOT_SERVING at shutdown,
    // and once the ledger could not be written (only a restart makes it writable again).
    s->GetHealthCheckService()->SetServingStatus(kLivenessService, !stopping_.load() && !ledger_failed_.load());
  }
}

void Lethed::Shutdown() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(health_mu_);
    health_cv_.notify_all();
  }
  if (health_thread_.joinable()) health_thread_.join();
  // A probe sees NOT_SERVING from here on (gRPC's Shutdown says so on the servers it stops).
  SetServing(false);
  if (health_server_) health_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (outbox_) outbox_->Stop();
  if (intake_) intake_->Stop();
  if (consent_publisher_) consent_publisher_->Stop();
}

void Lethed::Wait() {
  if (server_) server_->Wait();
}

Lethed::~Lethed() {
  Shutdown();
  exposer_.reset();
  intake_.reset();
  outbox_.reset();
  consent_publisher_.reset();
  producer_.reset();
  server_.reset();
}

}  // namespace lethe::controlplane
