// The agent's schema drift check at start: what its domain's database holds that the domain's
// policy section does not cover (schema/drift.h), as warnings in the log and as the gauge
// lethe_agent_schema_drift{domain, kind="table"|"column"}.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "policies/policy.h"
#include "schema/drift.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace lethe::agents {

// Reads the schema of the database at `dsn` (catalog only) and compares it with `domain`, a
// section of `policy`. Logs one warning per finding, naming table and column (never a value),
// and sets the gauge lethe_agent_schema_drift{domain, kind} in `metrics` (when not null):
// kind="table" counts the uncovered tables with likely identity columns, kind="column" the
// likely identity columns of covered tables left in place. A database that cannot be read is a
// warning, and the gauge is not set: the agent starts anyway (its purges retry the database).
absl::StatusOr<schema::DriftReport> CheckSchemaDrift(const std::string& dsn, const policies::Policy& policy,
                                                     const policies::Domain& domain,
                                                     prometheus::Registry* metrics);

}  // namespace lethe::agents
