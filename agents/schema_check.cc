#include "agents/schema_check.h"

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "schema/introspect.h"
#include "spdlog/spdlog.h"

namespace lethe::agents {

absl::StatusOr<schema::DriftReport> CheckSchemaDrift(const std::string& dsn, const policies::Policy& policy,
                                                     const policies::Domain& domain,
                                                     prometheus::Registry* metrics) {
  absl::StatusOr<schema::Snapshot> db = schema::Introspect(dsn);
  if (!db.ok()) {
    spdlog::warn("domain {}: cannot check the database's schema against the policy: {}", domain.name,
                 db.status().ToString());
    return db.status();
  }
  schema::DriftReport report = schema::ComputeDrift(*db, policy, domain);
  for (const std::string& line : schema::DescribeDrift(report, domain.name))
    spdlog::warn("domain {}: schema drift: {}", domain.name, line);
  if (report.tables.empty() && report.columns.empty())
    spdlog::info("domain {}: schema checked: the policy section covers every table and column with a likely "
                 "identity ({} tables)", domain.name, db->tables.size());
  if (metrics != nullptr) {
    auto& family = prometheus::BuildGauge()
                       .Name("lethe_agent_schema_drift")
                       .Help("Found at the agent's start: tables (kind=table) with likely identity columns that "
                             "the domain's policy section does not name, and likely identity columns of its "
                             "tables that its action leaves in place (kind=column)")
                       .Register(*metrics);
    family.Add({{"domain", domain.name}, {"kind", "table"}}).Set(static_cast<double>(report.tables.size()));
    family.Add({{"domain", domain.name}, {"kind", "column"}}).Set(static_cast<double>(report.columns.size()));
  }
  return report;
}

}  // namespace lethe::agents
