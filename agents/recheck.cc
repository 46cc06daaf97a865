#include "agents/recheck.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lethe::agents {

Recount RecountSubject(pqxx::work& tx, const policies::Table& table, const SecretBytes& value) {
  std::vector<std::string> columns = {table.key_column};
  for (const auto& rw : table.set)
    if (rw.column != table.key_column) columns.push_back(rw.column);
  std::vector<std::string> exact, folded;
  for (const std::string& c : columns) {
    const std::string text = tx.quote_name(c) + "::text";
    exact.push_back(table.match == policies::Match::kCaseInsensitive
                        ? absl::StrCat("(lower(", text, ") = lower($1::text)) IS TRUE")
                        : absl::StrCat("(", text, " = $1::text) IS TRUE"));
    folded.push_back(absl::StrCat("lower(btrim(", text, ")) = lower(btrim($1::text))"));
  }
  const std::string sql = absl::StrCat(
      "SELECT count(*) FILTER (WHERE ", absl::StrJoin(exact, " OR "), "), count(*) FROM ",
      tx.quote_name(table.schema), ".", tx.quote_name(table.name), " WHERE ",
      absl::StrJoin(folded, " OR "));
  const pqxx::result r = tx.exec_params(sql, std::string(RevealSecret(value)));
  Recount out;
  out.remaining = r[0][0].as<int64_t>();
  out.near_matches = r[0][1].as<int64_t>() - out.remaining;
  return out;
}

}  // namespace lethe::agents
