// The planner: which domains must act on an erasure, and with which identities.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/secret.h"
#include "policies/policy.h"

namespace lethe::controlplane {

struct SubjectIdentity {
  std::string type;
  SecretBytes value;  // raw; read only through RevealSecret
};

struct DomainPlan {
  std::string domain;
  std::vector<SubjectIdentity> identities;  // only the types the domain's tables use
  std::string domain_policy_hash;
};

struct ErasurePlan {
  std::vector<DomainPlan> targets;  // in policy order
};

// A domain is a target when the request carries at least one identity type its tables use.
// kFailedPrecondition when no domain holds any of the request's identity types.
absl::StatusOr<ErasurePlan> PlanErasure(const policy::Policy& policy,
                                        const std::vector<SubjectIdentity>& identities);

}  // namespace lethe::controlplane
