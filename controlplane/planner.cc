#include "controlplane/planner.h"

#include <algorithm>

namespace lethe::controlplane {

ErasurePlan PlanErasure(const policy::Policy& policy, const std::vector<SubjectIdentity>& identities,
                        const std::vector<std::string>& scope) {
  ErasurePlan plan;
  for (const auto& domain : policy.domains()) {
    if (!scope.empty() && std::find(scope.begin(), scope.end(), domain.name) == scope.end()) continue;
    const std::vector<std::string> types = domain.IdentityTypes();
    DomainPlan dp;
    dp.domain = domain.name;
    for (const auto& id : identities) {
      if (std::find(types.begin(), types.end(), id.type) != types.end()) dp.identities.push_back(id);
    }
    if (dp.identities.empty()) {
      plan.needs_identity.push_back(DomainNeed{domain.name, types});
      continue;
    }
    dp.domain_policy_hash = policy.DomainHash(domain.name);
    plan.targets.push_back(std::move(dp));
  }
  return plan;
}

}  // namespace lethe::controlplane
