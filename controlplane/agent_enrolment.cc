#include "controlplane/agent_enrolment.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "controlplane/authorizer.h"
#include "controlplane/validation.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {

absl::StatusOr<AgentRecord> AgentEnrolment::Enroll(const std::string& domain, const std::string& pem,
                                                   const v1::Actor& actor) {
  LETHE_ASSIGN_OR_RETURN(AgentKeys keys, ParseAgentKeys(pem));
  // The domain must be one of the policy active where the enrolment lands: checked under
  // the lock, which policy activations take too.
  auto lock = writer_.Lock();
  auto policy = projections_.policies.Active();
  if (!policy) return absl::FailedPreconditionError("no policy has been activated");
  LETHE_RETURN_IF_ERROR(ValidateAgentDomain(*policy, domain));
  if (auto known = store_.Agent(domain, keys.signing.KeyId()))
    return absl::AlreadyExistsError("public_key_pem: key " + keys.signing.KeyId() + " was already enrolled for domain " +
                                    domain + (known->revoked ? " and has been revoked; generate a new key" : ""));
  v1::LedgerEntry e;
  auto* a = e.mutable_agent_enrolled();
  a->set_domain(domain);
  a->set_public_key(keys.signing.raw());
  a->set_key_id(keys.signing.KeyId());
  a->set_encryption_public_key(keys.encryption.raw());
  a->set_encryption_key_id(keys.encryption.KeyId());
  LETHE_ASSIGN_OR_RETURN(LedgerWriter::Ticket ticket, writer_.Sequence(lock, {e}, &actor));
  auto rec = store_.Agent(domain, keys.signing.KeyId());
  lock.unlock();
  LETHE_RETURN_IF_ERROR(writer_.WaitDurable(ticket));
  if (!rec) return absl::InternalError("enrolled agent not found after append");
  spdlog::info("agent key {} enrolled for domain {} by {}", keys.signing.KeyId(), domain, Describe(actor));
  return *rec;
}

absl::StatusOr<AgentRecord> AgentEnrolment::Revoke(const std::string& domain, const std::string& key_id,
                                                   std::string reason, const v1::Actor& actor) {
  LETHE_RETURN_IF_ERROR(ValidateRevocation(domain, key_id, reason));
  auto lock = writer_.Lock();
  auto rec = store_.Agent(domain, key_id);
  if (!rec)
    return absl::NotFoundError("key_id: key " + key_id + " is not enrolled for domain " +
                               Quote(domain));
  if (rec->revoked)
    return absl::FailedPreconditionError(absl::StrCat("key_id: key ", key_id, " of domain ", domain,
                                                      " was already revoked (ledger entry ",
                                                      rec->revoked_entry, ")"));
  v1::LedgerEntry e;
  auto* r = e.mutable_agent_key_revoked();
  r->set_domain(domain);
  r->set_key_id(key_id);
  r->set_reason(std::move(reason));
  LETHE_ASSIGN_OR_RETURN(LedgerWriter::Ticket ticket, writer_.Sequence(lock, {e}, &actor));
  auto revoked = store_.Agent(domain, key_id);
  lock.unlock();
  LETHE_RETURN_IF_ERROR(writer_.WaitDurable(ticket));
  if (!revoked) return absl::InternalError("revoked agent key not found after append");
  spdlog::warn("agent key {} of domain {} revoked by {}", key_id, domain, Describe(actor));
  return *revoked;
}

}  // namespace lethe::controlplane
