// PolicyActivator: records policy activations. The active policy is the last activation in
// the ledger (PolicyRegistry, a projection); activating one is a change like any other,
// sequenced through the LedgerWriter, so that a request is always planned with the policy
// active where it lands in the log.
//
// Thread safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "controlplane/ledger_writer.h"
#include "controlplane/projections.h"
#include "lethe/v1/ledger.pb.h"
#include "policies/policy.h"

namespace lethe::controlplane {

class PolicyActivator {
 public:
  PolicyActivator(LedgerWriter& writer, Projections& projections)
      : writer_(writer), projections_(projections) {}

  // The active policy; kFailedPrecondition before the first activation.
  absl::StatusOr<std::shared_ptr<const policies::Policy>> Active() const;

  // Validates `yaml` (kInvalidArgument listing every problem as source_name:line:col) and
  // records PolicyActivated with `source` (who activated it). kAlreadyExists when the policy
  // is already the active one.
  absl::StatusOr<PolicyActivation> Activate(std::string_view yaml, std::string_view source_name,
                                            std::string source, const v1::Actor& actor);

 private:
  LedgerWriter& writer_;
  Projections& projections_;
};

}  // namespace lethe::controlplane
