#include "controlplane/planner.h"

#include <algorithm>

namespace lethe::controlplane {

absl::StatusOr<ErasurePlan> PlanErasure(const policy::Policy& policy,
                                        const std::vector<SubjectIdentity>& identities) {
  ErasurePlan plan;
  for (const auto& domain : policy.domains()) {
    const std::vector<std::string> types = domain.IdentityTypes();
    DomainPlan dp;
    dp.domain = domain.name;
    for (const auto& id : identities) {
      if (std::find(types.begin(), types.end(), id.type) != types.end()) dp.identities.push_back(id);
    }
    if (dp.identities.empty()) continue;
    dp.domain_policy_hash = policy.DomainHash(domain.name);
    plan.targets.push_back(std::move(dp));
  }
  if (plan.targets.empty())
    return absl::FailedPreconditionError(
        "identities: no domain in the active policy holds any of the given identity types");
  return plan;
}

}  // namespace lethe::controlplane
