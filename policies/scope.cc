// Policy::ErasureScope: which domains an erasure reaches. Shared by the planner and the auditor
// so that the auditor checks a plan against exactly the rule lethed planned it with.
#include <algorithm>

#include "policies/policy.h"

namespace lethe::policies {

std::vector<Policy::DomainInScope> Policy::ErasureScope(const std::vector<std::string>& have,
                                                        const std::vector<std::string>& scope) const {
  std::vector<DomainInScope> out;
  for (const Domain& domain : domains_) {
    if (!scope.empty() && std::find(scope.begin(), scope.end(), domain.name) == scope.end()) continue;
    DomainInScope d{domain.name, {}};
    for (const std::string& type : domain.IdentityTypes())
      if (std::find(have.begin(), have.end(), type) == have.end()) d.missing_types.push_back(type);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace lethe::policies
