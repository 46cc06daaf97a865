#include "controlplane/service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "controlplane/validation.h"
#include "audit/access_package.h"
#include "ledger/checkpoint.h"

namespace lethe::controlplane {
namespace {

std::vector<SubjectIdentity> Identities(const google::protobuf::RepeatedPtrField<v1::Identity>& in) {
  std::vector<SubjectIdentity> ids;
  for (const auto& id : in) ids.push_back(SubjectIdentity{id.type(), SecretBytes(id.value())});
  return ids;
}

// AIP-158 paging in ledger order: the token names the ledger entry of the last item sent.
constexpr int32_t kDefaultPageSize = 100;
constexpr int32_t kMaxPageSize = 1000;
struct Page {
  size_t size = kDefaultPageSize;
  uint64_t after = 0;  // only items whose entry is greater
  bool resume = false;
};

absl::StatusOr<Page> ParsePage(int32_t page_size, const std::string& token) {
  Page p;
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  p.size = static_cast<size_t>(page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize));
  if (token.empty()) return p;
  const bool digits = token.size() >= 2 && token.size() <= 21 && token[0] == 'e' &&
                      std::all_of(token.begin() + 1, token.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || !absl::SimpleAtoi(absl::string_view(token).substr(1), &p.after))
    return absl::InvalidArgumentError("page_token: not a token from a previous List call");
  p.resume = true;
  return p;
}

std::string PageToken(uint64_t entry) { return absl::StrCat("e", entry); }

absl::StatusOr<RequestRecord> Find(const RequestStore& store, const std::string& id) {
  if (absl::Status s = ValidateRequestId(id); !s.ok()) return s;
  return store.Get(id);
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

namespace {
// Answers show state read from the projections, which run ahead of the durable log while
// changes wait for their fdatasync (ledger_writer.h): a handler answers only once what it
// read is durable.
grpc::Status Answer(const LedgerWriter& writer) { return ToGrpc(writer.AwaitDurable()); }
}  // namespace

grpc::Status SubjectRequestsService::Submit(grpc::ServerContext* ctx, const v1::SubmitRequest* req,
                                            v1::SubmitResponse* resp) {
  const v1::Actor actor = ActorOf(*ctx);
  v1::RequestSubmitted::Kind kind = v1::RequestSubmitted::ERASURE;
  switch (req->kind()) {
    case v1::REQUEST_KIND_UNSPECIFIED:
    case v1::ERASURE:
      break;
    case v1::ACCESS:
      kind = v1::RequestSubmitted::ACCESS;
      break;
    default:
      return ToGrpc(absl::InvalidArgumentError(absl::StrCat("kind: unknown request kind ", req->kind())));
  }
  auto id = manager_.Submit(kind, Identities(req->identities()), req->reason(), actor);
  if (!id.ok()) return ToGrpc(id.status());
  resp->set_request_id(*id);
  if (auto r = store_.Get(*id); r.ok()) *resp->mutable_request() = View(*r, actor);
  return Answer(manager_.writer());
}

grpc::Status SubjectRequestsService::FindOpen(grpc::ServerContext*, const v1::FindOpenRequest* req,
                                              v1::FindOpenResponse* resp) {
  auto found = manager_.FindOpen(Identities(req->identities()));
  if (!found.ok()) return ToGrpc(found.status());
  for (const auto& [id, types] : *found) {
    auto* m = resp->add_matches();
    m->set_request_id(id);
    for (const auto& t : types) m->add_identity_types(t);
  }
  return Answer(manager_.writer());
}

grpc::Status SubjectRequestsService::Get(grpc::ServerContext* ctx, const v1::GetRequestRequest* req,
                                         v1::RequestView* resp) {
  auto r = Find(store_, req->request_id());
  if (!r.ok()) return ToGrpc(r.status());
  *resp = View(*r, ActorOf(*ctx));
  return Answer(manager_.writer());
}

grpc::Status SubjectRequestsService::List(grpc::ServerContext* ctx, const v1::ListRequestsRequest* req,
                                          v1::ListRequestsResponse* resp) {
  if (req->kind() != v1::REQUEST_KIND_UNSPECIFIED && req->kind() != v1::ERASURE && req->kind() != v1::ACCESS)
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("kind: unknown request kind ", req->kind())));
  auto page = ParsePage(req->page_size(), req->page_token());
  if (!page.ok()) return ToGrpc(page.status());
  const absl::Time now = clock_.Now();
  const IdentityVault* vault = MaySeeFreeText(ActorOf(*ctx)) ? &vault_ : nullptr;
  bool more = false;
  const auto records = store_.ListPage(page->resume ? page->after : 0, page->size,
                                       req->overdue() ? std::optional<absl::Time>(now) : std::nullopt, &more);
  if (!records.ok()) return ToGrpc(records.status());
  // The kind filters a page after it is read (AIP-158 lets a page hold fewer than page_size).
  for (const auto& r : *records)
    if (req->kind() == v1::REQUEST_KIND_UNSPECIFIED || (req->kind() == v1::ACCESS) == r.access()) {
      v1::RequestView* v = resp->add_requests();
      *v = ToView(r, store_, now, vault);
      NoteExpiry(r, *v);
    }
  if (more && !records->empty()) resp->set_next_page_token(PageToken(records->back().submitted_entry));
  return Answer(manager_.writer());
}

grpc::Status SubjectRequestsService::Watch(grpc::ServerContext* ctx,
                                           const v1::GetRequestRequest* req,
                                           grpc::ServerWriter<v1::RequestView>* writer) {
  auto first = Find(store_, req->request_id());
  if (!first.ok()) return ToGrpc(first.status());
  const v1::Actor caller = ActorOf(*ctx);
  std::string last;
  uint64_t seen = store_.version();
  while (!ctx->IsCancelled() && !stopping_) {
    auto r = store_.Get(req->request_id());
    if (!r.ok()) return ToGrpc(r.status());
    if (grpc::Status durable = Answer(manager_.writer()); !durable.ok()) return durable;
    v1::RequestView view = View(*r, caller);
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

grpc::Status SubjectRequestsService::Export(grpc::ServerContext* ctx, const v1::ExportRequest* req,
                                            v1::ExportResponse* resp) {
  auto r = Find(store_, req->request_id());
  if (!r.ok()) return ToGrpc(r.status());
  auto parts = manager_.OpenParts(r->request_id);  // refuses what holds no package
  if (!parts.ok()) return ToGrpc(parts.status());
  auto cert = Certify(ledger_, manager_.writer(), store_, policies_, *r);
  if (!cert.ok()) return ToGrpc(cert.status());
  audit::PackageInput in;
  in.request_id = r->request_id;
  in.received_unix_ms = r->submitted.received_unix_ms();
  in.completed_unix_ms = r->completed_unix_ms;
  in.exported_unix_ms = absl::ToUnixMillis(clock_.Now());
  for (const auto& t : r->submitted.subject()) in.identity_types.push_back(t.type());
  for (auto& p : *parts)
    in.parts.push_back(audit::PackagePart{p.domain, std::move(p.part), std::move(p.receipt), p.receipt_entry,
                                          p.agent_key_id});
  in.certificate = *std::move(cert);
  auto package = audit::BuildAccessPackage(in);
  if (!package.ok()) return ToGrpc(package.status());
  const std::string digest = crypto::Sha256(RevealSecret(*package));
  {
    std::lock_guard<std::mutex> l(exported_mu_);
    std::vector<std::string>& handed = exported_[r->request_id];
    if (handed.size() >= 8) handed.erase(handed.begin());
    handed.push_back(digest);
  }
  resp->set_package(std::string(RevealSecret(*package)));
  resp->set_package_sha256(digest);
  resp->set_public_key_pem(key_.ToPem());
  return grpc::Status::OK;
}

grpc::Status SubjectRequestsService::ConfirmExport(grpc::ServerContext* ctx, const v1::ConfirmExportRequest* req,
                                                   v1::ConfirmExportResponse* resp) {
  if (absl::Status s = ValidateRequestId(req->request_id()); !s.ok()) return ToGrpc(s);
  {
    std::lock_guard<std::mutex> l(exported_mu_);
    auto it = exported_.find(req->request_id());
    if (it == exported_.end() ||
        std::find(it->second.begin(), it->second.end(), req->package_sha256()) == it->second.end())
      return ToGrpc(absl::FailedPreconditionError(
          "package_sha256: not the digest of a package this lethed handed out for request " + req->request_id() +
          " since it started; export it again"));
  }
  const v1::Actor actor = ActorOf(*ctx);
  if (absl::Status released = manager_.ReleasePackage(req->request_id(), v1::PackageReleased::EXPORTED,
                                                      req->package_sha256(), &actor);
      !released.ok())
    return ToGrpc(released);
  {
    std::lock_guard<std::mutex> l(exported_mu_);
    exported_.erase(req->request_id());
  }
  auto after = store_.Get(req->request_id());
  if (!after.ok()) return ToGrpc(after.status());
  resp->set_released_entry(after->released_entry);
  return grpc::Status::OK;
}

v1::RequestView SubjectRequestsService::View(const RequestRecord& r, const v1::Actor& caller) const {
  v1::RequestView v = ToView(r, store_, clock_.Now(), MaySeeFreeText(caller) ? &vault_ : nullptr);
  NoteExpiry(r, v);
  return v;
}

void SubjectRequestsService::NoteExpiry(const RequestRecord& r, v1::RequestView& v) const {
  // A held package is destroyed at its due date plus the active policy's retention.
  if (!r.access() || r.state == v1::IN_PROGRESS || r.released_entry != 0) return;
  if (auto policy = manager_.ActivePolicy(); policy.ok())
    v.set_package_expires_unix_ms(r.due_unix_ms + absl::ToInt64Milliseconds((*policy)->deadlines().access_retention));
}

grpc::Status SubjectRequestsService::Extend(grpc::ServerContext* ctx, const v1::ExtendRequest* req,
                                            v1::RequestView* resp) {
  const v1::Actor actor = ActorOf(*ctx);
  if (absl::Status s = ValidateRequestId(req->request_id()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = ValidateExtensionSeconds(req->extension_seconds()); !s.ok()) return ToGrpc(s);
  absl::Status s =
      manager_.Extend(req->request_id(), absl::Seconds(req->extension_seconds()), req->reason(), actor);
  if (!s.ok()) return ToGrpc(s);
  auto r = Find(store_, req->request_id());
  if (!r.ok()) return ToGrpc(r.status());
  *resp = View(*r, actor);
  return Answer(manager_.writer());
}

grpc::Status SubjectRequestsService::AddIdentities(grpc::ServerContext* ctx,
                                                   const v1::AddIdentitiesRequest* req,
                                                   v1::RequestView* resp) {
  if (absl::Status s = ValidateRequestId(req->request_id()); !s.ok()) return ToGrpc(s);
  const v1::Actor actor = ActorOf(*ctx);
  absl::Status s = manager_.AddIdentities(req->request_id(), Identities(req->identities()), actor);
  if (!s.ok()) return ToGrpc(s);
  auto r = Find(store_, req->request_id());
  if (!r.ok()) return ToGrpc(r.status());
  *resp = View(*r, actor);
  return Answer(manager_.writer());
}

v1::PolicyView ToView(const PolicyActivation& a, bool with_yaml) {
  v1::PolicyView v;
  v.set_activation(a.activation);
  v.set_format_version(a.format_version);
  v.set_name(a.name);
  v.set_policy_hash(crypto::Hex(a.hash));
  v.set_entry(a.entry);
  v.set_activated_unix_ms(a.activated_unix_ms);
  v.set_source(a.source);
  if (with_yaml) v.set_yaml(a.yaml);
  *v.mutable_activated_by() = ToView(a.actor);
  if (a.policy) {
    for (const auto& d : a.policy->domains()) v.add_domains(d.name);
    for (const auto& p : a.policy->purposes()) v.add_purposes(p.name);
  }
  return v;
}

grpc::Status PoliciesService::Activate(grpc::ServerContext* ctx, const v1::ActivatePolicyRequest* req,
                                       v1::PolicyView* resp) {
  const std::string source_name = req->source_name().empty() ? "<policy>" : Quote(req->source_name(), 200);
  auto a = activator_.Activate(req->yaml(), source_name,
                                   "lethectl policy activate " + source_name, ActorOf(*ctx));
  if (!a.ok()) return ToGrpc(a.status());
  if (on_activated_ && a->policy) on_activated_(*a->policy);
  *resp = ToView(*a, false);
  return Answer(writer_);
}

grpc::Status PoliciesService::Show(grpc::ServerContext*, const v1::ShowPolicyRequest*,
                                   v1::ShowPolicyResponse* resp) {
  auto history = registry_.History();
  if (history.empty()) return ToGrpc(absl::FailedPreconditionError("no policy has been activated"));
  *resp->mutable_active() = ToView(history.back(), true);
  for (const auto& a : history) *resp->add_history() = ToView(a, false);
  return Answer(writer_);
}

v1::ConsentRecordView ToView(const ConsentRecord& r) {
  v1::ConsentRecordView v;
  v.set_identity_type(r.identity_type);
  v.set_subject_token(crypto::Hex(r.token));
  v.set_purpose(r.purpose);
  v.set_status(r.status);
  v.set_changed_unix_ms(r.changed_unix_ms);
  v.set_source(r.source);
  v.set_entry(r.entry);
  v.set_change_id(r.change_id);
  v.set_erasure_request_id(r.erasure_request_id);
  return v;
}

grpc::Status ConsentService::Change(grpc::ServerContext* ctx, const v1::ChangeConsentRequest* req,
                                    v1::ConsentChangeView* resp) {
  if (!req->has_identity()) return ToGrpc(absl::InvalidArgumentError("identity: required"));
  auto rec = manager_.ChangeConsent(
      SubjectIdentity{req->identity().type(), SecretBytes(req->identity().value())},
      req->purpose(), req->status(), req->source(), ActorOf(*ctx));
  if (!rec.ok()) return ToGrpc(rec.status());
  *resp->mutable_change() = ToView(*rec);
  // The answer shows this change alone, and ChangeConsent returned once it was durable: no
  // barrier for later writers' entries (which would cost a second fdatasync's wait).
  return grpc::Status::OK;
}

grpc::Status ConsentService::Show(grpc::ServerContext*, const v1::ShowConsentRequest* req,
                                  v1::ShowConsentResponse* resp) {
  if (!req->has_identity()) return ToGrpc(absl::InvalidArgumentError("identity: required"));
  const std::string type = req->identity().type();
  auto token = manager_.TokenOf(SubjectIdentity{type, SecretBytes(req->identity().value())});
  if (!token.ok()) return ToGrpc(token.status());
  resp->set_identity_type(type);
  resp->set_subject_token(crypto::Hex(*token));
  for (const auto& r : consent_.Current(type, *token)) *resp->add_current() = ToView(r);
  auto history = consent_.History(type, *token);
  if (!history.ok()) return ToGrpc(history.status());
  for (const auto& r : *history) *resp->add_history() = ToView(r);
  return Answer(manager_.writer());
}

grpc::Status ConsentService::List(grpc::ServerContext*, const v1::ListConsentRequest* req,
                                  v1::ListConsentResponse* resp) {
  auto policy = manager_.ActivePolicy();
  if (!policy.ok()) return ToGrpc(policy.status());
  if (req->purpose().empty()) return ToGrpc(absl::InvalidArgumentError("purpose: required"));
  if (req->status() != v1::CONSENT_STATUS_UNSPECIFIED && req->status() != v1::GRANTED &&
      req->status() != v1::WITHDRAWN)
    return ToGrpc(absl::InvalidArgumentError("status: must be GRANTED, WITHDRAWN or unset"));
  bool known = false;
  for (const auto& p : (*policy)->purposes()) known = known || p.name == req->purpose();
  // Purposes of earlier policies may still have records: list those too, but an unknown
  // name that never had one is most likely a typo.
  auto records = consent_.ByPurpose(req->purpose());
  if (!known && records.empty())
    return ToGrpc(absl::InvalidArgumentError("purpose: unknown purpose (not in the active policy, no consent recorded)"));
  auto page = ParsePage(req->page_size(), req->page_token());
  if (!page.ok()) return ToGrpc(page.status());
  std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.entry < b.entry; });
  for (const auto& r : records) {
    if (page->resume && r.entry <= page->after) continue;
    if (req->status() != v1::CONSENT_STATUS_UNSPECIFIED && r.status != req->status()) continue;
    if (static_cast<size_t>(resp->records_size()) == page->size) {
      resp->set_next_page_token(PageToken(resp->records().rbegin()->entry()));
      break;
    }
    *resp->add_records() = ToView(r);
  }
  return Answer(manager_.writer());
}

v1::ActorView ToView(const v1::Actor& a) {
  v1::ActorView v;
  v.set_role(a.role());
  v.set_name(a.name());
  v.set_spiffe_id(a.spiffe_id());
  v.set_certificate_sha256(a.certificate_sha256());
  return v;
}

v1::AgentView ToView(const AgentRecord& a) {
  v1::AgentView v;
  v.set_domain(a.domain);
  v.set_key_id(a.key_id);
  v.set_entry(a.entry);
  v.set_enrolled_unix_ms(a.enrolled_unix_ms);
  v.set_state(a.revoked ? v1::REVOKED : v1::ACTIVE);
  v.set_encryption_key_id(a.encryption_key_id);
  *v.mutable_enrolled_by() = ToView(a.enrolled_by);
  if (a.revoked) {
    v.set_revoked_entry(a.revoked_entry);
    v.set_revoked_unix_ms(a.revoked_unix_ms);
    *v.mutable_revoked_by() = ToView(a.revoked_by);
    v.set_revocation_reason(a.revocation_reason);
  }
  return v;
}

grpc::Status AgentsService::Enroll(grpc::ServerContext* ctx, const v1::EnrollAgentRequest* req,
                                   v1::AgentView* resp) {
  auto rec = enrolment_.Enroll(req->domain(), req->public_key_pem(), ActorOf(*ctx));
  if (!rec.ok()) return ToGrpc(rec.status());
  *resp = ToView(*rec);
  return Answer(writer_);
}

grpc::Status AgentsService::Revoke(grpc::ServerContext* ctx, const v1::RevokeAgentKeyRequest* req,
                                   v1::AgentView* resp) {
  auto rec = enrolment_.Revoke(req->domain(), req->key_id(), req->reason(), ActorOf(*ctx));
  if (!rec.ok()) return ToGrpc(rec.status());
  *resp = ToView(*rec);
  return Answer(writer_);
}

grpc::Status AgentsService::List(grpc::ServerContext*, const v1::ListAgentsRequest*,
                                 v1::ListAgentsResponse* resp) {
  for (const auto& a : store_.Agents()) *resp->add_agents() = ToView(a);
  return Answer(writer_);
}

absl::StatusOr<std::pair<std::string, uint64_t>> LedgerService::Latest() const {
  std::string note = ledger_.LatestCheckpoint();
  auto cp = ledger::ParseCheckpointUnverified(note);
  if (!cp.ok()) return absl::InternalError("no checkpoint: " + cp.status().ToString());
  return std::make_pair(note, cp->size);
}

grpc::Status LedgerService::GetCheckpoint(grpc::ServerContext*, const v1::GetCheckpointRequest* req,
                                          v1::CheckpointView* resp) {
  if (req->fresh()) {
    if (auto s = ledger_.Checkpoint(); !s.ok()) return ToGrpc(s.status());
  }
  auto latest = Latest();
  if (!latest.ok()) return ToGrpc(latest.status());
  resp->set_checkpoint(latest->first);
  resp->set_public_key_pem(key_.ToPem());
  resp->set_size(latest->second);
  return grpc::Status::OK;
}

grpc::Status LedgerService::ListCheckpoints(grpc::ServerContext*,
                                            const v1::ListCheckpointsRequest* req,
                                            v1::ListCheckpointsResponse* resp) {
  // Paged by tree size: the token names the size of the last checkpoint sent.
  auto page = ParsePage(req->page_size(), req->page_token());
  if (!page.ok()) return ToGrpc(page.status());
  if (page->resume && page->after == UINT64_MAX) return grpc::Status::OK;  // nothing is larger
  const uint64_t from = page->resume ? std::max(req->from_size(), page->after + 1) : req->from_size();
  // One more than a page, to know whether another follows.
  auto kept = ledger_.checkpoint_history().List(from, page->size + 1);
  if (!kept.ok()) return ToGrpc(kept.status());
  for (auto& e : *kept) {
    if (static_cast<size_t>(resp->checkpoints_size()) == page->size) {
      resp->set_next_page_token(PageToken(resp->checkpoints().rbegin()->size()));
      break;
    }
    auto* c = resp->add_checkpoints();
    c->set_size(e.size);
    c->set_checkpoint(std::move(e.note));
  }
  return grpc::Status::OK;
}

grpc::Status LedgerService::GetEntries(grpc::ServerContext* ctx, const v1::GetEntriesRequest* req,
                                       grpc::ServerWriter<v1::RawEntry>* writer) {
  const uint64_t size = ledger_.size();
  uint64_t end = req->end();
  if (end == 0) {
    auto latest = Latest();
    if (!latest.ok()) return ToGrpc(latest.status());
    end = latest->second;
  }
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

grpc::Status LedgerService::GetInclusionProof(grpc::ServerContext*,
                                              const v1::GetInclusionProofRequest* req,
                                              v1::InclusionProofView* resp) {
  auto latest = Latest();
  if (!latest.ok()) return ToGrpc(latest.status());
  const uint64_t size = req->size() == 0 ? latest->second : req->size();
  if (req->index() >= size)
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("index: ", req->index(), " is not below the tree size ", size)));
  if (size > ledger_.size())
    return ToGrpc(absl::OutOfRangeError(
        absl::StrCat("size: ", size, " is beyond the log size ", ledger_.size())));
  auto proof = ledger_.InclusionProof(req->index(), size);
  if (!proof.ok()) return ToGrpc(proof.status());
  auto entry = ledger_.ReadEntry(req->index());
  if (!entry.ok()) return ToGrpc(entry.status());
  resp->set_index(req->index());
  resp->set_size(size);
  for (auto& h : *proof) resp->add_proof(std::move(h));
  resp->set_entry(std::move(*entry));
  if (size == latest->second) resp->set_checkpoint(latest->first);
  return grpc::Status::OK;
}

grpc::Status LedgerService::GetConsistencyProof(grpc::ServerContext*,
                                                const v1::GetConsistencyProofRequest* req,
                                                v1::ConsistencyProofView* resp) {
  auto latest = Latest();
  if (!latest.ok()) return ToGrpc(latest.status());
  const uint64_t to = req->to() == 0 ? latest->second : req->to();
  if (req->from() == 0)
    return ToGrpc(absl::InvalidArgumentError("from: must be at least 1 (every tree extends the empty one)"));
  if (req->from() > to)
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("from: ", req->from(), " is greater than to ", to)));
  if (to > ledger_.size())
    return ToGrpc(absl::OutOfRangeError(
        absl::StrCat("to: ", to, " is beyond the log size ", ledger_.size())));
  auto proof = ledger_.ConsistencyProof(req->from(), to);
  if (!proof.ok()) return ToGrpc(proof.status());
  resp->set_from(req->from());
  resp->set_to(to);
  for (auto& h : *proof) resp->add_proof(std::move(h));
  if (to == latest->second) resp->set_checkpoint(latest->first);
  return grpc::Status::OK;
}

absl::StatusOr<v1::ErasureCertificate> Certify(ledger::Ledger& ledger, const LedgerWriter& writer,
                                               const RequestStore& store, const PolicyRegistry& policies,
                                               const RequestRecord& r) {
  if (r.state == v1::IN_PROGRESS)
    return absl::FailedPreconditionError(
        "request_id: request " + r.request_id + " is still in progress; its certificate is issued once it ends");
  // Its completion may still wait for its fdatasync; the checkpoint below must cover it.
  LETHE_RETURN_IF_ERROR(writer.AwaitDurable());
  // One checkpoint that covers the completion, signed now if need be.
  LETHE_ASSIGN_OR_RETURN(std::string note, ledger.Checkpoint());
  LETHE_ASSIGN_OR_RETURN(ledger::Checkpoint cp, ledger::ParseCheckpointUnverified(note));
  v1::ErasureCertificate cert;
  cert.set_format("lethe.erasure-certificate/v1");
  cert.set_request_id(r.request_id);
  cert.set_checkpoint(note);
  LETHE_ASSIGN_OR_RETURN(std::vector<uint64_t> evidence, store.EvidenceEntries(r.request_id));
  // The activation of the policy it was planned with, so the plan can be checked offline.
  for (const auto& a : policies.History())
    if (a.hash == r.submitted.policy_hash()) evidence.push_back(a.entry);
  std::sort(evidence.begin(), evidence.end());
  evidence.erase(std::unique(evidence.begin(), evidence.end()), evidence.end());
  for (uint64_t index : evidence) {
    LETHE_ASSIGN_OR_RETURN(std::string bytes, ledger.ReadEntry(index));
    LETHE_ASSIGN_OR_RETURN(std::vector<std::string> proof, ledger.InclusionProof(index, cp.size));
    auto* e = cert.add_entries();
    e->set_index(index);
    e->set_entry(std::move(bytes));
    for (auto& h : proof) e->add_proof(std::move(h));
  }
  return cert;
}

grpc::Status LedgerService::GetCertificate(grpc::ServerContext*, const v1::GetCertificateRequest* req,
                                           v1::ErasureCertificate* resp) {
  auto r = Find(store_, req->request_id());
  if (!r.ok()) return ToGrpc(r.status());
  auto cert = Certify(ledger_, writer_, store_, policies_, *r);
  if (!cert.ok()) return ToGrpc(cert.status());
  *resp = *std::move(cert);
  return grpc::Status::OK;
}

grpc::Status EmbeddedKafkaFaultsService::SetBrokerUp(grpc::ServerContext* ctx,
                                                     const v1::SetBrokerUpRequest* req,
                                                     v1::SetBrokerUpResponse*) {
  spdlog::warn("fault injection by {}: embedded Kafka broker {}", Describe(ActorOf(*ctx)),
               req->up() ? "up" : "down");
  return ToGrpc(kafka_.SetBrokersUp(req->up()));
}

grpc::Status EmbeddedKafkaFaultsService::PushRequestErrors(grpc::ServerContext* ctx,
                                                           const v1::PushRequestErrorsRequest* req,
                                                           v1::PushRequestErrorsResponse*) {
  const std::vector<int32_t> codes(req->error_codes().begin(), req->error_codes().end());
  absl::Status s = kafka_.PushRequestErrors(req->api_key(), codes);
  if (s.ok())
    spdlog::warn("fault injection by {}: the next {} request(s) of Kafka API {} fail",
                 Describe(ActorOf(*ctx)), codes.size(), req->api_key());
  return ToGrpc(s);
}

grpc::Status EmbeddedKafkaFaultsService::MovePartitionLeader(grpc::ServerContext* ctx,
                                                             const v1::MovePartitionLeaderRequest* req,
                                                             v1::MovePartitionLeaderResponse*) {
  absl::Status s = kafka_.SetPartitionLeader(req->topic(), req->partition(), req->broker_id());
  if (s.ok())
    spdlog::warn("fault injection by {}: the leader of {}[{}] is now broker {}", Describe(ActorOf(*ctx)),
                 req->topic(), req->partition(), req->broker_id());
  return ToGrpc(s);
}

}  // namespace lethe::controlplane
