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

// A domain in scope that the request cannot reach yet: it lacks an identity type the
// domain's tables or topics are keyed by.
struct DomainNeed {
  std::string domain;
  std::vector<std::string> identity_types;  // the types the request lacks
};

struct ErasurePlan {
  std::vector<DomainPlan> targets;  // in policy order
  std::vector<DomainNeed> needs_identity;  // in policy order
};

// Every domain in scope (all of the policy's, or those named in `scope` when it is not
// empty) is either a target, when the request carries every identity type the domain is
// keyed by, or needs an identity (the types it lacks). A domain is never left out of the plan.
ErasurePlan PlanErasure(const policies::Policy& policy, const std::vector<SubjectIdentity>& identities,
                        const std::vector<std::string>& scope = {});

}  // namespace lethe::controlplane
