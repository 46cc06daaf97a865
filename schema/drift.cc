#include "schema/drift.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lethe::schema {

DriftReport ComputeDrift(const Snapshot& db, const policies::Policy& policy,
                         const policies::Domain& domain) {
  DriftReport out;
  for (const policies::Table& t : domain.tables) {
    const Table* found = db.FindTable(t.QualifiedName());
    if (found == nullptr) {
      out.missing.push_back({t.QualifiedName(), ""});
      continue;
    }
    if (found->FindColumn(t.key_column) == nullptr) out.missing.push_back({t.QualifiedName(), t.key_column});
    for (const policies::ColumnRewrite& rw : t.set)
      if (rw.column != t.key_column && found->FindColumn(rw.column) == nullptr)
        out.missing.push_back({t.QualifiedName(), rw.column});
  }
  for (const Table& table : db.tables) {
    const std::string name = table.QualifiedName();
    const policies::Table* covered = nullptr;
    for (const policies::Table& t : domain.tables)
      if (t.QualifiedName() == name) covered = &t;
    std::vector<DriftColumn> likely;
    bool keyable = false;
    for (const Column& c : table.columns)
      if (auto guess = LikelyIdentity(c.name, policy.identities())) {
        likely.push_back({name, c.name, guess->type});
        keyable = keyable || guess->keyable;
      }
    if (likely.empty()) continue;
    if (covered == nullptr) {
      // A table a section could name: one with a column to key a person's rows by.
      if (keyable) out.tables.push_back({name, std::move(likely)});
      continue;
    }
    if (covered->action != policies::TableAction::kAnonymize) continue;
    std::set<std::string> rewritten = {covered->key_column};
    for (const policies::ColumnRewrite& rw : covered->set) rewritten.insert(rw.column);
    for (DriftColumn& c : likely)
      if (!rewritten.count(c.column)) out.columns.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> DescribeDrift(const DriftReport& report, const std::string& domain) {
  std::vector<std::string> lines;
  for (const auto& t : report.tables) {
    std::vector<std::string> cols;
    for (const auto& c : t.columns) cols.push_back(absl::StrCat(c.column, " (", c.identity, ")"));
    lines.push_back(absl::StrCat("table ", t.table, " is not in the policy section of domain ", domain,
                                 " and holds likely identity column", cols.size() == 1 ? " " : "s ",
                                 absl::StrJoin(cols, ", ")));
  }
  for (const auto& c : report.columns)
    lines.push_back(absl::StrCat("column ", c.column, " of table ", c.table, " likely holds ", c.identity,
                                 " and the section of domain ", domain,
                                 " anonymizes the table without rewriting it"));
  for (const auto& m : report.missing)
    lines.push_back(m.column.empty()
                        ? absl::StrCat("table ", m.table, " is in the policy section of domain ", domain,
                                       " but not in the database")
                        : absl::StrCat("table ", m.table, " has no column ", m.column,
                                       ", which the policy section of domain ", domain, " names"));
  return lines;
}

}  // namespace lethe::schema
