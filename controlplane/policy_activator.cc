#include "controlplane/policy_activator.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "controlplane/validation.h"
#include "crypto/crypto.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {
namespace {

std::string ShortHash(std::string_view raw) { return crypto::Hex(raw).substr(0, 16); }

}  // namespace

absl::StatusOr<std::shared_ptr<const policies::Policy>> PolicyActivator::Active() const {
  auto p = projections_.policies.Active();
  if (!p) return absl::FailedPreconditionError("no policy has been activated");
  return p;
}

absl::StatusOr<PolicyActivation> PolicyActivator::Activate(std::string_view yaml,
                                                           std::string_view source_name,
                                                           std::string source,
                                                           const v1::Actor& actor) {
  LETHE_RETURN_IF_ERROR(ValidatePolicySize(yaml));
  LETHE_ASSIGN_OR_RETURN(policies::Policy parsed, policies::Policy::Parse(yaml, source_name));
  const std::string hash = parsed.Hash();
  auto lock = writer_.Lock();
  auto active = projections_.policies.ActiveRecord();
  if (active && active->hash == hash)
    return absl::AlreadyExistsError(absl::StrCat("policy: ", Av(source_name), " (", ShortHash(hash),
                                                 ") is already the active policy (activation ",
                                                 active->activation, ")"));
  v1::LedgerEntry e;
  auto* pa = e.mutable_policy_activated();
  pa->set_activation(active ? active->activation + 1 : 1);
  pa->set_format_version(parsed.version());
  pa->set_name(parsed.name());
  pa->set_policy_hash(hash);
  pa->set_policy_yaml(std::string(yaml));
  pa->set_source(std::move(source));
  LETHE_ASSIGN_OR_RETURN(LedgerWriter::Ticket ticket, writer_.Sequence(lock, {e}, &actor));
  auto now_active = projections_.policies.ActiveRecord();
  lock.unlock();
  LETHE_RETURN_IF_ERROR(writer_.WaitDurable(ticket));
  if (!now_active || now_active->hash != hash)
    return absl::InternalError("activated policy not active after append");
  spdlog::info("policy activation {}: {} ({}), from {}", now_active->activation, parsed.name(),
               ShortHash(hash), now_active->source);
  return *now_active;
}

}  // namespace lethe::controlplane
