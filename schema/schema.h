// A domain's PostgreSQL database as Lethe reads it to onboard a domain and to find drift: its
// tables, their columns and foreign keys (never a row); which columns likely hold a person's
// identity (kIdentityColumnNames, the one table of the heuristic); and the order in which an
// agent must purge tables so that no foreign key blocks a delete (children first).
// The snapshot is read by Introspect (schema/introspect.h); proposals and drift are built from
// it by schema/proposal.h and schema/drift.h. Used by `lethectl domain init` and lethe-agent.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::schema {

struct Column {
  std::string name;
  std::string type;  // as format_type() writes it, e.g. "text", "bigint", "character varying(12)"
};

struct Table {
  std::string schema;
  std::string name;
  std::vector<Column> columns;  // in ordinal order
  std::string QualifiedName() const { return schema + "." + name; }
  const Column* FindColumn(std::string_view column) const;
};

// A FOREIGN KEY constraint: `table` (the referencing, "child" table) holds `columns`, which
// reference `referenced_columns` of `references` (the "parent"). Both tables qualified.
struct ForeignKey {
  std::string name;
  std::string table;
  std::vector<std::string> columns;
  std::string references;
  std::vector<std::string> referenced_columns;
};

struct Snapshot {
  std::vector<Table> tables;             // sorted by qualified name
  std::vector<ForeignKey> foreign_keys;  // sorted by table, then constraint name
  const Table* FindTable(std::string_view qualified) const;
};

// One entry of the heuristic: a column name and the identity type it suggests.
struct IdentityColumnName {
  std::string_view column;  // lower case; compared with column names case-insensitively
  std::string_view type;    // the policy identity type name it maps to
  // false for values that several people share (an IP address): a column that likely holds
  // personal data, but never a key to find one person's rows by.
  bool keyable;
};

// The heuristic, in one place: column names that likely hold a person's identity, with the
// policy identity type each maps to. Types come in the order they are preferred as a table's
// key when a table has several (KeyPreference). Extend it here; docs/onboarding.md lists it.
inline constexpr IdentityColumnName kIdentityColumnNames[] = {
    {"user_id", "user_id", true},
    {"userid", "user_id", true},
    {"customer_id", "customer_id", true},
    {"customerid", "customer_id", true},
    {"cust_id", "customer_id", true},
    {"email", "email", true},
    {"e_mail", "email", true},
    {"email_address", "email", true},
    {"emailaddress", "email", true},
    {"phone", "phone", true},
    {"phone_number", "phone", true},
    {"phonenumber", "phone", true},
    {"mobile", "phone", true},
    {"msisdn", "phone", true},
    {"ssn", "ssn", true},
    {"social_security_number", "ssn", true},
    {"ip", "ip_address", false},
    {"ip_address", "ip_address", false},
    {"ipaddress", "ip_address", false},
    {"ip_addr", "ip_address", false},
};

struct IdentityGuess {
  std::string type;
  bool keyable = true;
};

// The identity type column `column` likely holds: its entry in kIdentityColumnNames, else the
// type among `policy_types` (a policy's own identity types) named exactly like the column
// (case-insensitively; keyable). nullopt when neither.
std::optional<IdentityGuess> LikelyIdentity(std::string_view column,
                                            const std::vector<std::string>& policy_types = {});

// Where `type` comes in kIdentityColumnNames (lower is preferred as a key); types not in it
// come after all of them.
int KeyPreference(std::string_view type);

// [A-Za-z_][A-Za-z0-9_]*, at most 63 characters: a name a policy can hold (policies/policy.h).
bool IsPolicyIdentifier(std::string_view name);

// `tables` (qualified names) ordered so that a table that references another of them by a
// foreign key comes before it: deleting a person's rows in this order never trips a foreign
// key between them. Each table, in input order, is placed right after the tables that
// reference it (and theirs), so an order that is already right is kept as it is. A table
// referencing itself is not a cycle. Foreign keys to or from tables not in `tables` are ignored. kFailedPrecondition when
// the foreign keys form a cycle, naming its tables and constraints in order.
absl::StatusOr<std::vector<std::string>> OrderChildrenFirst(const std::vector<std::string>& tables,
                                                            const std::vector<ForeignKey>& foreign_keys);

}  // namespace lethe::schema
