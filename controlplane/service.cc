#include "controlplane/service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ledger/checkpoint.h"

namespace lethe::controlplane {
namespace {

absl::Status CheckRequestId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("request_id: empty");
  if (id.size() != 32 || !std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      }))
    return absl::InvalidArgumentError("request_id: not a request id (32 lowercase hex characters)");
  return absl::OkStatus();
}

absl::StatusOr<RequestRecord> Find(const RequestStore& store, const std::string& id) {
  if (absl::Status s = CheckRequestId(id); !s.ok()) return s;
  auto r = store.Get(id);
  if (!r) return absl::NotFoundError("request_id: no request " + id);
  return *r;
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

grpc::Status SubjectRequestsService::Submit(grpc::ServerContext*, const v1::SubmitRequest* req,
                                            v1::SubmitResponse* resp) {
  std::vector<SubjectIdentity> ids;
  for (const auto& id : req->identities()) ids.push_back(SubjectIdentity{id.type(), SecretBytes(id.value())});
  auto id = manager_.SubmitErasure(std::move(ids), req->reason());
  if (!id.ok()) return ToGrpc(id.status());
  resp->set_request_id(*id);
  if (auto r = store_.Get(*id)) *resp->mutable_request() = ToView(*r, store_);
  return grpc::Status::OK;
}

grpc::Status SubjectRequestsService::Get(grpc::ServerContext*, const v1::GetRequestRequest* req,
                                         v1::RequestView* resp) {
  auto r = Find(store_, req->request_id());
  if (!r.ok()) return ToGrpc(r.status());
  *resp = ToView(*r, store_);
  return grpc::Status::OK;
}

grpc::Status SubjectRequestsService::List(grpc::ServerContext*, const v1::ListRequestsRequest*,
                                          v1::ListRequestsResponse* resp) {
  for (const auto& r : store_.List()) *resp->add_requests() = ToView(r, store_);
  return grpc::Status::OK;
}

grpc::Status SubjectRequestsService::Watch(grpc::ServerContext* ctx,
                                           const v1::GetRequestRequest* req,
                                           grpc::ServerWriter<v1::RequestView>* writer) {
  auto first = Find(store_, req->request_id());
  if (!first.ok()) return ToGrpc(first.status());
  std::string last;
  uint64_t seen = store_.version();
  while (!ctx->IsCancelled() && !stopping_) {
    auto r = store_.Get(req->request_id());
    v1::RequestView view = ToView(*r, store_);
    std::string bytes = view.SerializeAsString();
    if (bytes != last) {
      if (!writer->Write(view)) return grpc::Status::OK;  // client went away
      last = std::move(bytes);
    }
    if (view.state() != v1::IN_PROGRESS) return grpc::Status::OK;
    seen = store_.WaitForChange(seen, absl::Milliseconds(500));
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "watch ended");
}

grpc::Status AgentsService::Enroll(grpc::ServerContext*, const v1::EnrollAgentRequest* req,
                                   v1::AgentView* resp) {
  auto rec = manager_.EnrollAgent(req->domain(), req->public_key_pem());
  if (!rec.ok()) return ToGrpc(rec.status());
  resp->set_domain(rec->domain);
  resp->set_key_id(rec->key_id);
  resp->set_entry(rec->entry);
  resp->set_enrolled_unix_ms(rec->enrolled_unix_ms);
  return grpc::Status::OK;
}

grpc::Status AgentsService::List(grpc::ServerContext*, const v1::ListAgentsRequest*,
                                 v1::ListAgentsResponse* resp) {
  for (const auto& a : store_.Agents()) {
    auto* v = resp->add_agents();
    v->set_domain(a.domain);
    v->set_key_id(a.key_id);
    v->set_entry(a.entry);
    v->set_enrolled_unix_ms(a.enrolled_unix_ms);
  }
  return grpc::Status::OK;
}

grpc::Status LedgerService::GetCheckpoint(grpc::ServerContext*, const v1::GetCheckpointRequest*,
                                          v1::CheckpointView* resp) {
  std::string note = ledger_.LatestCheckpoint();
  auto cp = ledger::ParseCheckpointUnverified(note);
  if (!cp.ok()) return ToGrpc(absl::InternalError("no checkpoint: " + cp.status().ToString()));
  resp->set_checkpoint(note);
  resp->set_public_key_pem(key_.ToPem());
  resp->set_size(cp->size);
  return grpc::Status::OK;
}

grpc::Status LedgerService::GetEntries(grpc::ServerContext* ctx, const v1::GetEntriesRequest* req,
                                       grpc::ServerWriter<v1::RawEntry>* writer) {
  const uint64_t size = ledger_.size();
  const uint64_t end = req->end() == 0 ? size : req->end();
  if (req->start() > end)
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("start: ", req->start(), " is after end ", end)));
  if (end > size)
    return ToGrpc(absl::OutOfRangeError(absl::StrCat("end: ", end, " is beyond the log size ", size)));
  for (uint64_t i = req->start(); i < end && !ctx->IsCancelled(); ++i) {
    auto bytes = ledger_.ReadEntry(i);
    if (!bytes.ok()) return ToGrpc(bytes.status());
    v1::RawEntry e;
    e.set_seq(i);
    e.set_entry(std::move(*bytes));
    if (!writer->Write(e)) break;
  }
  return grpc::Status::OK;
}

}  // namespace lethe::controlplane
