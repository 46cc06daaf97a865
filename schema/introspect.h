// Reading a domain's schema from PostgreSQL: the catalog only, never a row.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "schema/schema.h"

namespace lethe::schema {

// The tables of every schema but PostgreSQL's own (pg_*, information_schema) and the agent's
// bookkeeping (lethe_agent), with their columns and foreign keys, read in one read-only
// transaction from the database at `dsn` (a libpq connection string). Read from pg_catalog
// (pg_class, pg_attribute, pg_constraint): information_schema shows a role only what it holds
// privileges on, and drift is about tables nobody granted the agent.
// Partitions are left out: a purge of a partitioned table reaches them. A column's type is
// format_type's ("text", "character varying(12)"). Errors name the flag
// --postgres and never contain the connection string or its password: kInvalidArgument when
// `dsn` is not a connection string, kUnavailable when the database cannot be reached or read.
absl::StatusOr<Snapshot> Introspect(const std::string& dsn);

}  // namespace lethe::schema
