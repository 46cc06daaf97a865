// Drift: what a domain's database holds that its policy section does not cover, found from the
// schema alone (schema/schema.h). `lethectl domain init --policy FILE` prints it (and fails
// with --check); lethe-agent logs it at start and exports lethe_agent_schema_drift.
#pragma once

#include <string>
#include <vector>

#include "policies/policy.h"
#include "schema/schema.h"

namespace lethe::schema {

struct DriftColumn {
  std::string table;   // qualified
  std::string column;
  std::string identity;  // the identity type the column likely holds (kIdentityColumnNames)
};

struct DriftReport {
  // kind "table": tables the section does not name that hold likely identity columns, each
  // with those columns. A table whose only such columns are ones no section can key a person
  // by (IP addresses: IdentityColumnName::keyable) is not drift: no section could cover it.
  // `lethectl domain init` lists it as not covered when it proposes a section.
  struct UncoveredTable {
    std::string table;
    std::vector<DriftColumn> columns;
  };
  std::vector<UncoveredTable> tables;
  // kind "column": likely identity columns of a table the section names that its action
  // leaves in place: an anonymize table whose `set` does not rewrite them. (A deleted row
  // takes every column with it; a retained one is kept whole under its legal basis.)
  std::vector<DriftColumn> columns;
  // What the section names that the database lacks: a table (column empty), or a key or
  // `set` column of a table. The agent's purge fails on these.
  struct Missing {
    std::string table;
    std::string column;
  };
  std::vector<Missing> missing;
  bool empty() const { return tables.empty() && columns.empty() && missing.empty(); }
};

// Compares `db` with `domain` (a section of `policy`, whose identity type names also count as
// identity column names). Tables and columns in `db` order.
DriftReport ComputeDrift(const Snapshot& db, const policies::Policy& policy,
                         const policies::Domain& domain);

// One line per finding, naming table and column (never a value), e.g.
//   table growth.leads is not in the policy section of domain growth and holds likely identity column email (email)
std::vector<std::string> DescribeDrift(const DriftReport& report, const std::string& domain);

}  // namespace lethe::schema
