#include "schema/schema.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lethe::schema {

const Column* Table::FindColumn(std::string_view column) const {
  for (const Column& c : columns)
    if (c.name == column) return &c;
  return nullptr;
}

const Table* Snapshot::FindTable(std::string_view qualified) const {
  for (const Table& t : tables)
    if (t.QualifiedName() == qualified) return &t;
  return nullptr;
}

std::optional<IdentityGuess> LikelyIdentity(std::string_view column,
                                            const std::vector<std::string>& policy_types) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(column.data(), column.size()));
  for (const IdentityColumnName& e : kIdentityColumnNames)
    if (e.column == lower) return IdentityGuess{std::string(e.type), e.keyable};
  for (const std::string& type : policy_types)
    if (type == lower) return IdentityGuess{type, true};
  return std::nullopt;
}

int KeyPreference(std::string_view type) {
  int rank = 0;
  std::string_view last;
  for (const IdentityColumnName& e : kIdentityColumnNames) {
    if (e.type != last) {
      if (e.type == type) return rank;
      ++rank;
      last = e.type;
    }
  }
  return rank;
}

bool IsPolicyIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!letter(s[0])) return false;
  return std::all_of(s.begin() + 1, s.end(), [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

absl::StatusOr<std::vector<std::string>> OrderChildrenFirst(const std::vector<std::string>& tables,
                                                            const std::vector<ForeignKey>& foreign_keys) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < tables.size(); ++i) index.emplace(tables[i], i);
  // children[p]: the tables that reference p (each must come before p), in input order.
  std::vector<std::set<size_t>> children(tables.size());
  for (const ForeignKey& fk : foreign_keys) {
    auto c = index.find(fk.table), p = index.find(fk.references);
    if (c == index.end() || p == index.end() || c->second == p->second) continue;
    children[p->second].insert(c->second);
  }
  // Depth first, in input order: each table after its children (and theirs). A table already
  // after its children stays where it is.
  enum State { kNew, kOpen, kDone };
  std::vector<State> state(tables.size(), kNew);
  std::vector<size_t> open;  // the tables being placed; open[k + 1] references open[k]
  std::vector<std::string> out;
  std::optional<absl::Status> cycle;
  std::function<void(size_t)> place = [&](size_t t) {
    state[t] = kOpen;
    open.push_back(t);
    for (size_t c : children[t]) {
      if (cycle) return;
      if (state[c] == kDone) continue;
      if (state[c] == kOpen) {
        // c references t, t references the table before it on `open`, ..., back to c.
        std::vector<size_t> ring = {c};
        for (size_t k = open.size(); k-- > 0 && open[k] != c;) ring.push_back(open[k]);
        ring.push_back(c);
        std::vector<std::string> names, steps;
        for (size_t k = 0; k + 1 < ring.size(); ++k) {
          const std::string& child = tables[ring[k]];
          const std::string& parent = tables[ring[k + 1]];
          names.push_back(child);
          std::string constraint;
          for (const ForeignKey& fk : foreign_keys)
            if (fk.table == child && fk.references == parent) {
              constraint = fk.name;
              break;
            }
          steps.push_back(absl::StrCat(child, " references ", parent, " (foreign key ", constraint, ")"));
        }
        cycle = absl::FailedPreconditionError(absl::StrCat(
            "foreign keys form a cycle between tables ", absl::StrJoin(names, ", "), ": ",
            absl::StrJoin(steps, ", "),
            "; no order deletes every referencing row before the row it references. Break the cycle "
            "(drop one of these constraints), or name the tables to include with --table, leaving "
            "one of these out"));
        return;
      }
      place(c);
    }
    open.pop_back();
    state[t] = kDone;
    out.push_back(tables[t]);
  };
  for (size_t t = 0; t < tables.size() && !cycle; ++t)
    if (state[t] == kNew) place(t);
  if (cycle) return *cycle;
  return out;
}

}  // namespace lethe::schema
