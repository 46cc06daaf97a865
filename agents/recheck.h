// The zero-remaining re-check: after a purge's statements, and inside the same transaction,
// counts what is left of the subject in a table by a query of its own, built apart from the
// purge's statements (postgres_purger.cc), so that a purge that misses rows (a wrong predicate, a
// trigger or rule that puts rows back) cannot also blind the check that it worked.
//
// It compares text, not the column's type: each checked column (the key column, and for
// anonymize every rewritten column) cast to text against the identity value.
// - remaining: rows where a checked column equals the value by the table's comparison
//   (exactly, or lower-cased on both sides for match: case_insensitive). A COMPLETED receipt
//   needs 0 in every table; otherwise the purge is rolled back and answered FAILED.
// - near matches: rows where a checked column equals the value only after both are trimmed
//   and lower-cased ("Alice@Example.com " for "alice@example.com"), which that comparison
//   did not match: most likely the same person under another spelling, which the purge left
//   in place. They do not fail the purge; the receipt reports them so that an operator sees
//   a likely miss instead of a plain "0 remaining".
//
// The query filters on lower(btrim(column::text)) = lower(btrim($1)), so an expression index
// on that (CREATE INDEX ON t (lower(btrim(col::text)))) serves it; without one it reads the
// table once per identity value.
#pragma once

#include <cstdint>
#include <pqxx/pqxx>
#include <string>

#include "crypto/secret.h"
#include "policies/policy.h"

namespace lethe::agents {

struct Recount {
  int64_t remaining = 0;
  int64_t near_matches = 0;
};

// For a delete or anonymize table. Throws pqxx errors.
Recount RecountSubject(pqxx::work& tx, const policies::Table& table, const SecretBytes& value);

}  // namespace lethe::agents
