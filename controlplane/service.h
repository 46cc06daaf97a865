// gRPC handlers. Each one converts its request, calls one component and converts the
// answer; absl::Status becomes a gRPC status here and nowhere else.
#pragma once

#include <atomic>

#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "base/clock.h"
#include "controlplane/authorizer.h"
#include "controlplane/identity_vault.h"
#include "controlplane/agent_enrolment.h"
#include "controlplane/policy_activator.h"
#include "controlplane/request_manager.h"
#include "controlplane/request_store.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"
#include "lethe/v1/api.grpc.pb.h"

namespace lethe::controlplane {

grpc::Status ToGrpc(const absl::Status& s);

class SubjectRequestsService final : public v1::SubjectRequests::Service {
 public:
  SubjectRequestsService(RequestManager& manager, RequestStore& store, const IdentityVault& vault,
                         const Clock& clock, std::atomic<bool>& stopping, ledger::Ledger& ledger,
                         const PolicyRegistry& policies, const crypto::Ed25519PublicKey& key)
      : manager_(manager),
        store_(store),
        vault_(vault),
        clock_(clock),
        stopping_(stopping),
        ledger_(ledger),
        policies_(policies),
        key_(key) {}
  grpc::Status Submit(grpc::ServerContext*, const v1::SubmitRequest*, v1::SubmitResponse*) override;
  grpc::Status Get(grpc::ServerContext*, const v1::GetRequestRequest*, v1::RequestView*) override;
  grpc::Status List(grpc::ServerContext*, const v1::ListRequestsRequest*,
                    v1::ListRequestsResponse*) override;
  grpc::Status Watch(grpc::ServerContext*, const v1::GetRequestRequest*,
                     grpc::ServerWriter<v1::RequestView>*) override;
  grpc::Status Extend(grpc::ServerContext*, const v1::ExtendRequest*, v1::RequestView*) override;
  grpc::Status AddIdentities(grpc::ServerContext*, const v1::AddIdentitiesRequest*,
                             v1::RequestView*) override;
  grpc::Status FindOpen(grpc::ServerContext*, const v1::FindOpenRequest*, v1::FindOpenResponse*) override;
  grpc::Status Export(grpc::ServerContext*, const v1::ExportRequest*, v1::ExportResponse*) override;
  grpc::Status ConfirmExport(grpc::ServerContext*, const v1::ConfirmExportRequest*,
                             v1::ConfirmExportResponse*) override;

 private:
  // The request as `caller` may see it: free text only for operators.
  v1::RequestView View(const RequestRecord& r, const v1::Actor& caller) const;
  // Sets package_expires_unix_ms of an access request whose package is held.
  void NoteExpiry(const RequestRecord& r, v1::RequestView& v) const;

  RequestManager& manager_;
  RequestStore& store_;
  const IdentityVault& vault_;
  const Clock& clock_;
  std::atomic<bool>& stopping_;
  ledger::Ledger& ledger_;
  const PolicyRegistry& policies_;
  const crypto::Ed25519PublicKey& key_;  // lethed's, which packages verify against
  // The digests of the packages handed out per request, since lethed started (a few each):
  // what ConfirmExport may name.
  std::mutex exported_mu_;
  std::map<std::string, std::vector<std::string>> exported_;
};

class PoliciesService final : public v1::Policies::Service {
 public:
  // `on_activated` runs after each activation (lethed prepares topics for new domains).
  PoliciesService(PolicyActivator& activator, const LedgerWriter& writer,
                  const PolicyRegistry& registry,
                  std::function<void(const policies::Policy&)> on_activated)
      : activator_(activator),
        writer_(writer),
        registry_(registry),
        on_activated_(std::move(on_activated)) {}
  grpc::Status Activate(grpc::ServerContext*, const v1::ActivatePolicyRequest*,
                        v1::PolicyView*) override;
  grpc::Status Show(grpc::ServerContext*, const v1::ShowPolicyRequest*,
                    v1::ShowPolicyResponse*) override;

 private:
  PolicyActivator& activator_;
  const LedgerWriter& writer_;
  const PolicyRegistry& registry_;
  std::function<void(const policies::Policy&)> on_activated_;
};

class ConsentService final : public v1::Consent::Service {
 public:
  ConsentService(RequestManager& manager, const ConsentStore& consent)
      : manager_(manager), consent_(consent) {}
  grpc::Status Change(grpc::ServerContext*, const v1::ChangeConsentRequest*,
                      v1::ConsentChangeView*) override;
  grpc::Status Show(grpc::ServerContext*, const v1::ShowConsentRequest*,
                    v1::ShowConsentResponse*) override;
  grpc::Status List(grpc::ServerContext*, const v1::ListConsentRequest*,
                    v1::ListConsentResponse*) override;

 private:
  RequestManager& manager_;
  const ConsentStore& consent_;
};

v1::PolicyView ToView(const PolicyActivation& a, bool with_yaml);
v1::ActorView ToView(const v1::Actor& a);
v1::AgentView ToView(const AgentRecord& a);
v1::ConsentRecordView ToView(const ConsentRecord& r);

class AgentsService final : public v1::Agents::Service {
 public:
  AgentsService(AgentEnrolment& enrolment, const LedgerWriter& writer, RequestStore& store)
      : enrolment_(enrolment), writer_(writer), store_(store) {}
  grpc::Status Enroll(grpc::ServerContext*, const v1::EnrollAgentRequest*, v1::AgentView*) override;
  grpc::Status Revoke(grpc::ServerContext*, const v1::RevokeAgentKeyRequest*, v1::AgentView*) override;
  grpc::Status List(grpc::ServerContext*, const v1::ListAgentsRequest*,
                    v1::ListAgentsResponse*) override;

 private:
  AgentEnrolment& enrolment_;
  const LedgerWriter& writer_;
  RequestStore& store_;
};

// Fault injection into the embedded broker (lethed --embedded-kafka-faults). Records nothing in
// the ledger; every fault is logged with the caller.
class EmbeddedKafkaFaultsService final : public v1::EmbeddedKafkaFaults::Service {
 public:
  explicit EmbeddedKafkaFaultsService(kafka::EmbeddedKafka& kafka) : kafka_(kafka) {}
  grpc::Status SetBrokerUp(grpc::ServerContext*, const v1::SetBrokerUpRequest*,
                           v1::SetBrokerUpResponse*) override;
  grpc::Status PushRequestErrors(grpc::ServerContext*, const v1::PushRequestErrorsRequest*,
                                 v1::PushRequestErrorsResponse*) override;
  grpc::Status MovePartitionLeader(grpc::ServerContext*, const v1::MovePartitionLeaderRequest*,
                                   v1::MovePartitionLeaderResponse*) override;

 private:
  kafka::EmbeddedKafka& kafka_;
};

// The certificate of an ended request: its evidence entries, each with an inclusion proof
// against one checkpoint that covers them (signed now if need be). kFailedPrecondition while
// the request is in progress.
absl::StatusOr<v1::ErasureCertificate> Certify(ledger::Ledger& ledger, const LedgerWriter& writer,
                                               const RequestStore& store, const PolicyRegistry& policies,
                                               const RequestRecord& r);

class LedgerService final : public v1::Ledger::Service {
 public:
  LedgerService(ledger::Ledger& ledger, const LedgerWriter& writer, const RequestStore& store,
                const PolicyRegistry& policies, const crypto::Ed25519PublicKey& key)
      : ledger_(ledger), writer_(writer), store_(store), policies_(policies), key_(key) {}
  grpc::Status GetCheckpoint(grpc::ServerContext*, const v1::GetCheckpointRequest*,
                             v1::CheckpointView*) override;
  grpc::Status ListCheckpoints(grpc::ServerContext*, const v1::ListCheckpointsRequest*,
                               v1::ListCheckpointsResponse*) override;
  grpc::Status GetEntries(grpc::ServerContext*, const v1::GetEntriesRequest*,
                          grpc::ServerWriter<v1::RawEntry>*) override;
  grpc::Status GetInclusionProof(grpc::ServerContext*, const v1::GetInclusionProofRequest*,
                                 v1::InclusionProofView*) override;
  grpc::Status GetConsistencyProof(grpc::ServerContext*, const v1::GetConsistencyProofRequest*,
                                   v1::ConsistencyProofView*) override;
  grpc::Status GetCertificate(grpc::ServerContext*, const v1::GetCertificateRequest*,
                              v1::ErasureCertificate*) override;

 private:
  // The latest checkpoint note and its size.
  absl::StatusOr<std::pair<std::string, uint64_t>> Latest() const;

  ledger::Ledger& ledger_;
  const LedgerWriter& writer_;
  const RequestStore& store_;
  const PolicyRegistry& policies_;
  const crypto::Ed25519PublicKey& key_;
};

}  // namespace lethe::controlplane
