#include "schema/introspect.h"

#include <libpq-fe.h>

#include <algorithm>
#include <map>
#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/strings/str_replace.h"

namespace lethe::schema {
namespace {

// From pg_catalog, not information_schema: information_schema shows a role only the tables and
// columns it holds a privilege on, and a table the agent's role was never granted is exactly
// the one drift must find.
constexpr char kColumnsSql[] =
    "SELECT n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "  AND a.attnum > 0 AND NOT a.attisdropped "
    "  AND n.nspname NOT IN ('information_schema', 'lethe_agent') "
    "  AND n.nspname NOT LIKE 'pg\\_%' "
    "ORDER BY n.nspname, c.relname, a.attnum";

// One row per column pair of each foreign key, in the constraint's column order. Constraints
// copied onto partitions (conparentid) are the parent's, already listed.
constexpr char kForeignKeysSql[] =
    "SELECT con.oid, con.conname, cn.nspname, cl.relname, fn.nspname, fl.relname, "
    "       a.attname, fa.attname "
    "FROM pg_catalog.pg_constraint con "
    "JOIN pg_catalog.pg_class cl ON cl.oid = con.conrelid "
    "JOIN pg_catalog.pg_namespace cn ON cn.oid = cl.relnamespace "
    "JOIN pg_catalog.pg_class fl ON fl.oid = con.confrelid "
    "JOIN pg_catalog.pg_namespace fn ON fn.oid = fl.relnamespace "
    "CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(c, f, i) "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.c "
    "JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.f "
    "WHERE con.contype = 'f' AND con.conparentid = 0 AND NOT cl.relispartition "
    "  AND cn.nspname NOT IN ('information_schema', 'lethe_agent') "
    "  AND cn.nspname NOT LIKE 'pg\\_%' "
    "ORDER BY con.oid, k.i";

// The password a connection string holds ("" when none), or nullopt when `dsn` is not one.
std::optional<std::string> PasswordOf(const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (error != nullptr) PQfreemem(error);  // it may quote the string: never shown
  if (options == nullptr) return std::nullopt;
  std::string password;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o)
    if (std::string_view(o->keyword) == "password" && o->val != nullptr) password = o->val;
  PQconninfoFree(options);
  return password;
}

// libpq's message about a failed connection, without the password should it quote it.
std::string Redacted(std::string message, const std::string& password) {
  if (!password.empty()) absl::StrReplaceAll({{password, "****"}}, &message);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

}  // namespace

absl::StatusOr<Snapshot> Introspect(const std::string& dsn) {
  const std::optional<std::string> password = PasswordOf(dsn);
  if (!password)
    return absl::InvalidArgumentError(
        "--postgres: not a libpq connection string (not shown, as it may hold a password); "
        "expected e.g. \"host=db port=5432 dbname=growth user=lethe\" or "
        "postgresql://lethe@db/growth");
  Snapshot out;
  try {
    pqxx::connection c(dsn);
    pqxx::read_transaction tx(c);
    std::map<std::string, size_t> by_name;
    for (const auto& row : tx.exec(kColumnsSql)) {
      const std::string schema = row[0].as<std::string>(), name = row[1].as<std::string>();
      const std::string qualified = schema + "." + name;
      auto [it, fresh] = by_name.emplace(qualified, out.tables.size());
      if (fresh) out.tables.push_back(Table{schema, name, {}});
      out.tables[it->second].columns.push_back(Column{row[2].as<std::string>(), row[3].as<std::string>()});
    }
    std::string last_oid;
    for (const auto& row : tx.exec(kForeignKeysSql)) {
      const std::string oid = row[0].as<std::string>();
      if (oid != last_oid) {
        out.foreign_keys.push_back(ForeignKey{row[1].as<std::string>(),
                                              row[2].as<std::string>() + "." + row[3].as<std::string>(),
                                              {},
                                              row[4].as<std::string>() + "." + row[5].as<std::string>(),
                                              {}});
        last_oid = oid;
      }
      out.foreign_keys.back().columns.push_back(row[6].as<std::string>());
      out.foreign_keys.back().referenced_columns.push_back(row[7].as<std::string>());
    }
    tx.commit();
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError("--postgres: cannot connect to PostgreSQL: " + Redacted(e.what(), *password));
  } catch (const std::exception& e) {
    return absl::UnavailableError("--postgres: cannot read the schema: " + Redacted(e.what(), *password));
  }
  // Byte order, whatever the database's collation.
  std::sort(out.tables.begin(), out.tables.end(),
            [](const Table& a, const Table& b) { return a.QualifiedName() < b.QualifiedName(); });
  std::stable_sort(out.foreign_keys.begin(), out.foreign_keys.end(), [](const ForeignKey& a, const ForeignKey& b) {
    return a.table != b.table ? a.table < b.table : a.name < b.name;
  });
  return out;
}

}  // namespace lethe::schema
