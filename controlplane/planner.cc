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
    // The agent purges every table and topic of its section or nothing (one transaction):
    // a domain that lacks any of its identity types cannot act yet.
    std::vector<std::string> missing;
    for (const auto& t : types) {
      bool have = false;
      for (const auto& id : identities) have = have || id.type == t;
      if (!have) missing.push_back(t);
    }
    if (!missing.empty()) {
      plan.needs_identity.push_back(DomainNeed{domain.name, std::move(missing)});
      continue;
    }
    dp.domain_policy_hash = policy.DomainHash(domain.name);
    plan.targets.push_back(std::move(dp));
  }
  return plan;
}

}  // namespace lethe::controlplane
