#include "controlplane/policy_registry.h"

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"

namespace lethe::controlplane {

absl::Status PolicyRegistry::Apply(uint64_t seq, const v1::LedgerEntry& e) {
  if (e.body_case() != v1::LedgerEntry::kPolicyActivated) return absl::OkStatus();
  const auto& pa = e.policy_activated();
  auto corrupt = [seq](std::string_view why) {
    return absl::DataLossError(
        absl::StrCat("ledger entry ", seq, ": PolicyActivated ", absl::string_view(why.data(), why.size())));
  };
  auto parsed = policies::Policy::Parse(pa.policy_yaml(), absl::StrCat("<ledger entry ", seq, ">"));
  if (!parsed.ok()) return corrupt("holds a policy that does not validate: " + std::string(parsed.status().message()));
  if (parsed->Hash() != pa.policy_hash()) return corrupt("policy_hash is not the hash of its policy");
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t want = history_.empty() ? 1 : history_.back().activation + 1;
  if (pa.activation() != want)
    return corrupt(absl::StrCat("is activation ", pa.activation(), ", expected ", want));
  PolicyActivation a;
  a.activation = pa.activation();
  a.entry = seq;
  a.activated_unix_ms = e.time_unix_ms();
  a.format_version = pa.format_version();
  a.name = pa.name();
  a.hash = pa.policy_hash();
  a.source = pa.source();
  a.actor = e.actor();
  a.yaml = pa.policy_yaml();
  a.policy = std::make_shared<const policies::Policy>(std::move(*parsed));
  history_.push_back(std::move(a));
  return absl::OkStatus();
}

std::shared_ptr<const policies::Policy> PolicyRegistry::Active() const {
  std::lock_guard<std::mutex> l(mu_);
  return history_.empty() ? nullptr : history_.back().policy;
}

std::optional<PolicyActivation> PolicyRegistry::ActiveRecord() const {
  std::lock_guard<std::mutex> l(mu_);
  if (history_.empty()) return std::nullopt;
  return history_.back();
}

std::vector<PolicyActivation> PolicyRegistry::History() const {
  std::lock_guard<std::mutex> l(mu_);
  return history_;
}

}  // namespace lethe::controlplane
