#include "controlplane/planner.h"

#include <algorithm>

namespace lethe::controlplane {

ErasurePlan PlanErasure(const policies::Policy& policy, const std::vector<SubjectIdentity>& identities,
                        const std::vector<std::string>& scope) {
  std::vector<std::string> have;
  for (const auto& id : identities)
    if (std::find(have.begin(), have.end(), id.type) == have.end()) have.push_back(id.type);
  ErasurePlan plan;
  for (auto& d : policy.ErasureScope(have, scope)) {
    // The agent purges every table and topic of its section or nothing (one transaction):
    // a domain that lacks any of its identity types cannot act yet.
    if (!d.missing_types.empty()) {
      plan.needs_identity.push_back(DomainNeed{d.domain, std::move(d.missing_types)});
      continue;
    }
    const std::vector<std::string> types = policy.FindDomain(d.domain)->IdentityTypes();
    DomainPlan dp;
    dp.domain = d.domain;
    for (const auto& id : identities)
      if (std::find(types.begin(), types.end(), id.type) != types.end()) dp.identities.push_back(id);
    dp.domain_policy_hash = policy.DomainHash(d.domain);
    plan.targets.push_back(std::move(dp));
  }
  return plan;
}

}  // namespace lethe::controlplane
