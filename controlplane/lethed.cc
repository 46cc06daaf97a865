#include "controlplane/lethed.h"

#include <grpcpp/grpcpp.h>

#include "crypto/status.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {

absl::StatusOr<std::unique_ptr<Lethed>> Lethed::Start(LethedOptions options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  if (options.policy_path.empty()) return absl::InvalidArgumentError("--policy is required");
  if (options.signing_key_path.empty()) return absl::InvalidArgumentError("--signing-key is required");
  if (!options.embedded_kafka && options.kafka_bootstrap.empty())
    return absl::InvalidArgumentError("one of --kafka-bootstrap or --embedded-kafka is required");

  std::unique_ptr<Lethed> d(new Lethed());
  d->options_ = options;
  ASSIGN_OR_RETURN(policy::Policy policy, policy::Policy::LoadFile(options.policy_path));
  d->policy_ = std::make_unique<policy::Policy>(std::move(policy));
  ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey key,
                   crypto::Ed25519PrivateKey::LoadFile(options.signing_key_path));
  d->key_ = std::make_unique<crypto::Ed25519PrivateKey>(std::move(key));
  ASSIGN_OR_RETURN(d->vault_, IdentityVault::Open(options.data_dir + "/vault"));

  ledger::LedgerOptions lopts;
  lopts.dir = options.data_dir + "/ledger";
  lopts.origin = options.origin;
  lopts.signing_key = d->key_.get();
  RequestStore& store = d->store_;
  ASSIGN_OR_RETURN(d->ledger_, ledger::Ledger::Open(lopts, [&store](uint64_t seq, std::string_view,
                                                                   const v1::LedgerEntry& e) {
                     return store.Apply(seq, e);
                   }));
  spdlog::info("ledger: {} entries, origin {}", d->ledger_->size(), d->ledger_->origin());
  d->manager_ = std::make_unique<RequestManager>(*d->ledger_, d->store_, *d->vault_, *d->policy_,
                                                 *d->key_, *options.clock, options.requests);
  RETURN_IF_ERROR(d->manager_->Recover());

  if (options.embedded_kafka) {
    ASSIGN_OR_RETURN(d->embedded_, kafka::EmbeddedKafka::Start(1));
    for (const auto& domain : d->policy_->domains())
      RETURN_IF_ERROR(d->embedded_->CreateTopic(kafka::CommandTopic(domain.name), 1));
    RETURN_IF_ERROR(d->embedded_->CreateTopic(kafka::kReceiptTopic, 1));
    d->bootstrap_ = d->embedded_->bootstrap();
    RETURN_IF_ERROR(crypto::WriteFileAtomic(options.data_dir + "/kafka.bootstrap",
                                            d->bootstrap_ + "\n", 0644));
    spdlog::info("embedded Kafka (librdkafka mock cluster) listening on {}; written to {}/kafka.bootstrap",
                 d->bootstrap_, options.data_dir);
  } else {
    d->bootstrap_ = options.kafka_bootstrap;
  }

  ASSIGN_OR_RETURN(d->producer_, kafka::Producer::Create(d->bootstrap_, options.kafka_extra));
  std::vector<std::string> topics;
  for (const auto& domain : d->policy_->domains()) topics.push_back(kafka::CommandTopic(domain.name));
  d->producer_->WarmUp(topics);
  kafka::Config consumer_cfg = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
  for (const auto& [k, v] : options.kafka_extra) consumer_cfg[k] = v;
  ASSIGN_OR_RETURN(auto consumer, kafka::Consumer::Create(d->bootstrap_, "lethed",
                                                          {kafka::kReceiptTopic}, consumer_cfg));
  d->intake_ = std::make_unique<ReceiptIntake>(*d->manager_, std::move(consumer));
  d->outbox_ = std::make_unique<OutboxPublisher>(d->store_, *d->manager_, *d->producer_,
                                                 *options.clock, options.outbox);

  d->requests_service_ = std::make_unique<SubjectRequestsService>(*d->manager_, d->store_, d->stopping_);
  d->agents_service_ = std::make_unique<AgentsService>(*d->manager_, d->store_);
  d->ledger_service_ = std::make_unique<LedgerService>(*d->ledger_, d->store_, d->key_->public_key());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &d->port_);
  builder.RegisterService(d->requests_service_.get());
  builder.RegisterService(d->agents_service_.get());
  builder.RegisterService(d->ledger_service_.get());
  d->server_ = builder.BuildAndStart();
  if (!d->server_ || d->port_ == 0)
    return absl::UnavailableError("cannot listen on " + options.listen);

  // Scripts that start lethed with port 0 read the bound address from here.
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  RETURN_IF_ERROR(crypto::WriteFileAtomic(options.data_dir + "/lethed.addr",
                                          host + ":" + std::to_string(d->port_) + "\n", 0644));
  d->intake_->Start();
  d->outbox_->Start();
  spdlog::info("lethed serving gRPC on port {} (policy {}, {} domains)", d->port_,
               d->policy_->name(), d->policy_->domains().size());
  return d;
}

void Lethed::Shutdown() {
  if (stopping_.exchange(true)) return;
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (outbox_) outbox_->Stop();
  if (intake_) intake_->Stop();
}

void Lethed::Wait() {
  if (server_) server_->Wait();
}

Lethed::~Lethed() {
  Shutdown();
  intake_.reset();
  outbox_.reset();
  producer_.reset();
  server_.reset();
}

}  // namespace lethe::controlplane
