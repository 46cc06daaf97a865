// GatherSubject: the read side of an access request (GDPR Art. 15) in a PostgreSQL domain.
// Inside a transaction the caller opened (read-only, REPEATABLE READ: one snapshot for every
// table), it selects the subject's rows from every table of the domain's policy section, in
// policy order and whatever the table's action (delete, anonymize, retain), and renders them,
// with the subject's keys on the domain's compacted topics, as one canonical JSON document: the
// domain's "part" of the answer, which the caller seals to the control plane.
//
// Which rows: a table's rows whose key column matches an identity of the table's identity type,
// by the table's comparison, as PostgresPurger's purge selects them (postgres_purger.cc):
//   exact             key = $n                         ($n untyped: read as the column's type)
//   case_insensitive  lower(key::text) = lower($n::text)
// One statement per table ORs the comparisons of every identity of that type, so a row that
// matches two of them is returned once; identities of other types select nothing there, and a
// table none of whose type was given is not searched ("searched": false, no rows). For an
// anonymize table these are the rows still keyed by the identity: rows already anonymized no
// longer name the subject and are not found (the part says so in the table's "note").
//
// Values, by the column's type (a domain type by its base type), as JSON:
//   NULL                     null
//   bool                     true / false
//   int2, int4, int8         an integer (exact: int8 is never read through a double)
//   float4, float8           a number (the shortest text that reads back as the same float4
//                            or float8); NaN, Infinity, -Infinity as the strings "NaN",
//                            "Infinity", "-Infinity"
//   numeric                  a string: PostgreSQL's exact text ("1234.50", "NaN")
//   timestamptz              "YYYY-MM-DDTHH:MM:SS.ffffffZ": RFC 3339 in UTC, microseconds
//   timestamp                "YYYY-MM-DDTHH:MM:SS.ffffff": no offset, because the value has
//                            none (it is whatever local time the domain wrote)
//   date                     "YYYY-MM-DD"
//   (the three above)        'infinity' / '-infinity' as "infinity" / "-infinity"; a year
//                            before 1 AD is followed by " BC", as PostgreSQL writes it
//   bytea                    standard base64, padded, on one line
//   json, jsonb              the JSON value itself (parsed; should PostgreSQL's text not parse,
//                            a number beyond a double's range say, the text as a string).
//                            Numbers in it are read as nlohmann::json does: an integer beyond
//                            64 bits, or a decimal with more than 17 digits, loses precision
//   anything else            a string: PostgreSQL's text output of the value, its type's
//                            output function, as libpq delivers it (text, varchar, char(n) with
//                            its padding, uuid, inet as "192.0.2.1", enums, arrays such as
//                            text[] as "{vip,\"two words\"}", intervals, ranges)
// Everything but the last line is the same whatever the session's TimeZone, DateStyle,
// IntervalStyle, extra_float_digits and bytea_output: floats travel as their IEEE bits
// (float8send), bytea as encode(col, 'hex'), the date and time types through to_char (a
// timestamptz as to_char(col AT TIME ZONE 'UTC', ...)), and the output of bool, the integers,
// numeric and json does not depend on them. The last line's text is PostgreSQL's in the
// caller's session: an interval's follows IntervalStyle, an array's or range's of timestamps
// DateStyle and TimeZone, money's lc_monetary. GatherSubject changes no setting, so that its
// comparisons read the identities exactly as the purge, in the same kind of session, does.
//
// Canonical JSON: objects with their keys sorted (byte order), no white space, UTF-8 without
// \u escapes beyond those JSON requires. Text is taken as the connection's client encoding
// delivers it, UTF-8 in the agent's databases; a byte sequence that is not valid UTF-8 (a
// SQL_ASCII database can hold one) becomes U+FFFD (nlohmann's error_handler_t::replace)
// instead of failing the request. A table's rows are sorted by their own canonical text, so
// two gathers of the same data under the same header give the same bytes.
//
// The part, field by field:
//   format       "lethe.access-part/1"
//   request_id, command_id, domain
//   gathered_at  RFC 3339 in UTC with milliseconds ("2026-12-06T08:43:09.123Z")
//   salt         PartHeader::salt in base64: random bytes, so that the SHA-256 of a part
//                cannot confirm a guess of its content
//   tables       one object per policy table, in policy order:
//     table ("schema.name"), action ("delete" | "anonymize" | "retain"), identity (its type),
//     key_column, match ("exact" | "case_insensitive"), searched (an identity of the type was
//     given), columns: [{name, type (pg_type.typname: "int8", "_text"), sql_type
//     (format_type: "character varying(64)")}] in column order, rows: [{column: value}]
//     sorted, row_count; retain tables add basis and retention_period_seconds; anonymize
//     tables add anonymized_columns (the policy's `set` columns, in order) and note
//   topics       [{topic, keys: [the subject's record keys, as strings, sorted, each once]}],
//                in the order given
//
// Personal data: identity values are read only through RevealSecret(), where they are bound
// as statement parameters (never written into SQL); table and column names come from the
// validated policy and are quoted as identifiers. The document is built in memory that is
// wiped when freed (strings, arrays and objects alike) and handed over in a SecretBytes;
// libpq's and libpqxx's own buffers (the query results, the bound parameters) are freed
// without being wiped, as everywhere the agent queries.
//
// Thread safety: GatherSubject keeps no state; calls on distinct transactions (distinct
// connections) may run concurrently. A pqxx transaction is used by one thread at a time.
#pragma once

#include <cstdint>
#include <pqxx/transaction_base>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agents/command_verifier.h"
#include "crypto/secret.h"
#include "policies/policy.h"

namespace lethe::agents {

struct PartHeader {
  std::string request_id, command_id, domain;
  absl::Time gathered_at;
  std::string salt;  // random bytes chosen by the caller; rendered base64 in the part
};

// A compacted topic of the domain and the subject's record keys on it.
struct TopicKeys {
  std::string topic;
  std::vector<SecretBytes> keys;  // raw keys (personal data): UTF-8 text
};

struct GatheredTable {
  std::string table;      // "schema.table"
  int64_t rows = 0;       // rows exported
  bool searched = false;  // an identity of the table's type was given
};

struct GatheredPart {
  SecretBytes json;                   // the part: canonical JSON (personal data)
  std::vector<GatheredTable> tables;  // one per policy table, policy order
};

// Runs inside `tx`, which the caller opened: a read-only REPEATABLE READ transaction
// (pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> in libpqxx 6) so that every table
// is read from one snapshot; GatherSubject only reads. `header.domain` must be `domain.name`
// (std::invalid_argument otherwise). Throws pqxx exceptions on database errors (a missing
// table or column, an identity value the key column's type cannot read, a lost connection):
// the caller maps them; `tx` is then aborted.
GatheredPart GatherSubject(pqxx::transaction_base& tx, const policies::Domain& domain,
                           const OpenedIdentities& ids, const std::vector<TopicKeys>& topics,
                           const PartHeader& header);

}  // namespace lethe::agents
