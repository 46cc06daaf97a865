// A proposed policy section for a domain, built from its database's schema (schema/schema.h):
// which tables to purge, keyed by which column and identity type, in an order no foreign key
// blocks; which tables with likely identity columns it leaves out; and the section as YAML
// (docs/policy.md), alone or merged into a policy file. What `lethectl domain init` writes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "policies/policy.h"
#include "schema/drift.h"
#include "schema/schema.h"

namespace lethe::schema {

// One --table T --key COL --identity TYPE triple.
struct ExplicitTable {
  std::string table;  // [schema.]table; the schema defaults to public, as in a policy
  std::string key;
  std::string identity;
};

struct ProposalOptions {
  std::string domain;
  // Empty: propose from the heuristic (kIdentityColumnNames). Otherwise these tables, as given.
  std::vector<ExplicitTable> tables;
  // Optional. Its identity types are the only ones the proposal uses (a likely identity
  // column of another type is reported, not proposed), and its section of `domain`, if it
  // has one, is the starting point: those tables keep their key, identity and action, and its
  // Kafka topics are kept.
  const policies::Policy* policy = nullptr;
};

struct ProposedTable {
  policies::Table table;
  std::string why;                // e.g. "column email looks like identity type email"
  std::vector<std::string> also;  // the table's other likely identity columns: "phone (phone)"
};

// A table with likely identity columns that the proposal leaves out, and why.
struct LeftOut {
  std::string table;
  std::vector<DriftColumn> columns;
  std::string why;
};

struct Proposal {
  std::string domain;
  std::vector<ProposedTable> tables;  // children first (OrderChildrenFirst)
  std::vector<policies::KafkaTopic> kafka_topics;  // kept from the policy's section
  std::vector<std::string> identities;             // the identity types used, first-use order
  std::vector<LeftOut> left_out;
  // With a policy: every likely identity column of the database whose type is none of the
  // policy's identity types (in proposed tables too: there they go with their rows).
  std::vector<DriftColumn> unmapped;
  // Other things to review: a table that references a proposed one through a column that is
  // no identity (its rows block the delete, or cascade), a section table the database lacks.
  std::vector<std::string> notes;
  bool kept_section = false;  // the policy had a section for the domain, which was the start
};

// The proposal for `options.domain` from `db`: every table with a keyable likely identity
// column of an allowed type (or the tables named), keyed so that the domain uses as few
// identity types as it can, except that a guessed table referencing a proposed delete table
// through the parent's key column is keyed by that column; then every table that references a
// proposed table by a one-column foreign key through a likely identity column or the parent's
// key column, with action delete; ordered children first. Errors, each naming its flag: kInvalidArgument for a named
// table, key or identity that does not exist; kFailedPrecondition for a foreign key cycle
// (naming the tables) or when nothing can be proposed.
absl::StatusOr<Proposal> Propose(const Snapshot& db, const ProposalOptions& options);

// The domain's `domains:` list item as YAML starting at column 0, with a comment above each
// table saying why it is there. `policy` (optional) decides which `match` is each identity
// type's default, so that only a table's own `match` is written.
std::string RenderDomainItem(const Proposal& p, const policies::Policy* policy);

// policy-section.yaml: a header saying that this is a proposal to review, the identity types
// it needs, the tables left out and the notes (as YAML comments), then RenderDomainItem.
// `policy_name` names the policy file in the header ("" when none was given).
std::string RenderSection(const Proposal& p, const policies::Policy* policy, std::string_view policy_name);

// `policy_yaml` (a valid policy, read from `source_name`) with the domain's item replaced by
// the proposal's, or appended to `domains:` when it has none: the rest of the file, comments
// included, is kept as written. The result is parsed with Policy::Parse and returned only if
// it is valid and holds the proposed tables. kInvalidArgument naming `domains` when the file's
// domains are not a block list that can be edited so.
absl::StatusOr<std::string> MergeIntoPolicy(std::string_view policy_yaml, std::string_view source_name,
                                            const Proposal& p);

// A YAML scalar for `s`: as it is when YAML reads it back as that string, else double-quoted
// (JSON escapes, which YAML reads the same).
std::string YamlScalar(std::string_view s);

}  // namespace lethe::schema
