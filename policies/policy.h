// The policy model: which identity types exist, which domains hold which tables, and what
// each domain must do to a subject's rows. The file format: docs/policy.md (a guide) and
// ledger/FORMAT.md §9 (exact, version 1); this header is the in-memory form, built only by
// Policy::Parse, so a Policy object is always valid.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lethe::policies {

// One problem found in a policy file, with its 1-based position in the YAML source
// (line 0 when the problem is not tied to one place).
struct Diagnostic {
  int line = 0;
  int column = 0;
  std::string message;
  // "file:line:col: message", or "file: message" when line is 0.
  std::string ToString(std::string_view source_name) const;
};

enum class TableAction { kDelete, kAnonymize, kRetain };

// A step that brings an identity value to the form Lethe records, applied by lethed to every
// value it receives before it tokenizes, seals or plans with it.
enum class Normalizer {
  kTrim,       // drops leading and trailing ASCII white space (space, \t, \n, \v, \f, \r)
  kLowercase,  // maps the ASCII letters A-Z to a-z; every other byte is kept
};
// "trim" | "lowercase"
const char* NormalizerName(Normalizer n);

// How an agent compares a table's key column with an identity value.
enum class Match {
  kExact,            // column = value, as PostgreSQL compares the column's type
  kCaseInsensitive,  // lower(column::text) = lower(value)
};
// "exact" | "case_insensitive"
const char* MatchName(Match m);

// One column an anonymize action rewrites.
struct ColumnRewrite {
  enum class Kind { kNull, kHash, kConstant };
  std::string column;  // safe identifier
  Kind kind = Kind::kNull;
  std::string constant;  // for kConstant: the YAML string value (valid UTF-8, no NUL)
  // "null" | "hash" | "constant"
  static const char* KindName(Kind kind);
};

struct Table {
  std::string schema;        // "public" when the file names no schema
  std::string name;          // table name, a safe identifier
  std::string key_column;    // column that holds the subject key
  std::string identity;      // identity type held in key_column
  TableAction action = TableAction::kDelete;
  // The table's `match`, or when it has none its identity type's default: case_insensitive
  // for a type normalized with lowercase, else exact.
  Match match = Match::kExact;
  // anonymize only: the columns to rewrite, in file order. Never empty for anonymize, and
  // always rewrites key_column to null or hash.
  std::vector<ColumnRewrite> set;
  std::string basis;      // retain only: the legal basis (non-empty, at most 500 characters)
  absl::Duration period;  // retain only: how long the rows are kept (a policy duration)
  // delete and anonymize: how the dead tuples a purge leaves are removed before the agent's
  // PHYSICALLY_PURGED receipt. kWatch (no `vacuum` key): the agent waits for a vacuum it sees
  // complete (autovacuum, or anyone's VACUUM); kAfterPurge (`after_purge`): it runs VACUUM on
  // the table itself, rate-limited; kFullAfterPurge (`full_after_purge`): VACUUM FULL, which
  // rewrites the table and its indexes into new files.
  enum class Vacuum { kWatch, kAfterPurge, kFullAfterPurge };
  Vacuum vacuum = Vacuum::kWatch;
  std::string QualifiedName() const { return schema + "." + name; }
  // "after_purge" | "full_after_purge"; "" for kWatch.
  static const char* VacuumName(Vacuum v);
  // "delete" | "anonymize" | "retain"
  static const char* ActionName(TableAction a);
};

// A system a topic is copied into (a Kafka Connect sink, say), and whether the subject's
// copy there goes when the tombstone reaches it.
struct Sink {
  enum class Kind { kElasticsearch, kJdbc, kS3, kOther };
  std::string name;  // [A-Za-z0-9._-]+, at most 249 characters; unique within its topic
  Kind kind = Kind::kOther;
  // The sink deletes the record on a tombstone (Elasticsearch's behavior.on.null.values=delete,
  // the JDBC sink's delete.enabled=true with pk.mode=record_key).
  bool deletes_on_tombstone = false;
  // For a sink that does not: what erases its copy instead, in the same domain: one of the
  // domain's S3 buckets (an S3 sink's bucket), or one of its tables ("schema.table", a JDBC
  // sink's target). Both empty: nothing does, a gap every erasure receipt reports.
  std::string covered_by_bucket;
  std::string covered_by_table;
  bool Gap() const { return !deletes_on_tombstone && covered_by_bucket.empty() && covered_by_table.empty(); }
  // "elasticsearch" | "jdbc" | "s3" | "other"
  static const char* KindName(Kind kind);
};

// A compacted Kafka topic of a domain, which gets a tombstone for the subject's key.
struct KafkaTopic {
  std::string topic;  // [A-Za-z0-9._-]+, at most 249 characters, not "." or ".."
  // The record key, e.g. "{user_id}" or "user:{user_id}:{email}": literal text and at least
  // one {identity type} placeholder.
  std::string key_template;
  std::vector<std::string> identities;  // identity types the template uses, first-use order
  std::vector<Sink> sinks;              // in file order; empty when the topic lists none
  // The record key with each placeholder replaced by the value of its identity type;
  // nullopt when `values` lacks a type the template needs (or the template is malformed).
  std::optional<std::string> BuildKey(const std::map<std::string, std::string>& values) const;
};

// One bucket entry of a domain's S3 section: where in the bucket the subject's data lies.
struct S3Bucket {
  enum class Kind {
    kObjects,  // every object whose key starts with `prefix` built from the subject's identities
    kJsonl,    // JSON-lines objects under the literal `prefix`: the lines whose `field` holds
               // the subject's `identity`
  };
  std::string bucket;  // an S3 bucket name: 3-63 of [a-z0-9.-], starting and ending alphanumeric
  Kind kind = Kind::kObjects;
  // kObjects: a template of literal text and {identity type} placeholders, ending in literal
  // text ("users/{user_id}/"), so that one person's prefix is never the start of another's.
  // kJsonl: literal text (no placeholder); may be empty (the whole bucket).
  std::string prefix;
  // kObjects: the types the template uses, in first-use order. kJsonl: {identity}.
  std::vector<std::string> identities;
  std::string field;     // kJsonl: the top-level JSON field holding the identity
  std::string identity;  // kJsonl: the identity type held in `field`
  Match match = Match::kExact;  // kJsonl: how `field` is compared (as a table's `match`)
  TableAction action = TableAction::kDelete;  // kDelete or kRetain, never kAnonymize
  std::string basis;      // retain only
  absl::Duration period;  // retain only
  // "objects" | "jsonl"
  static const char* KindName(Kind kind);
};

// A domain's S3 section: the buckets that hold copies of its data, on one endpoint.
struct S3Store {
  // "http[s]://host[:port]" of an S3-compatible server, path-style addressing; empty: AWS
  // (https://BUCKET.s3.REGION.amazonaws.com).
  std::string endpoint;
  std::string region;  // [a-z0-9-]+, what requests are signed for
  std::vector<S3Bucket> buckets;  // in file order; empty without an s3 section
};

struct Domain {
  std::string name;  // [a-z0-9_-]+
  // In file order: the order the agent processes them. Empty only when the domain has no
  // postgres section.
  std::vector<Table> tables;
  std::vector<KafkaTopic> kafka_topics;  // in file order; empty without a kafka section
  S3Store s3;                            // buckets empty without an s3 section
  // Distinct identity types used by this domain's tables, then by its Kafka key templates,
  // then by its S3 buckets, in first-use order.
  std::vector<std::string> IdentityTypes() const;
};

struct Purpose {
  std::string name;
  std::string description;
  std::vector<std::string> domains;
  bool erase_on_withdrawal = false;
};

struct Deadlines {
  absl::Duration erasure = absl::Hours(24 * 30);
  absl::Duration max_extension = absl::Hours(24 * 60);
  // Access requests (GDPR Art. 12(3): one month, like erasure): the due date, and how long
  // after it lethed keeps an unexported package before destroying its key.
  absl::Duration access = absl::Hours(24 * 30);
  absl::Duration access_retention = absl::Hours(24 * 30);
  // Whether the file wrote them: the canonical JSON holds only keys the file wrote, so that a
  // policy written before access requests existed hashes as it always did.
  bool access_written = false;
  bool access_retention_written = false;
};

class Policy {
 public:
  // Parses and validates YAML text. On failure returns kInvalidArgument whose message lists
  // every diagnostic, one per line, as "source:line:col: message". Never throws.
  static absl::StatusOr<Policy> Parse(std::string_view yaml, std::string_view source_name);
  // Reads and parses a file, naming it by `path` in diagnostics; kNotFound when unreadable.
  static absl::StatusOr<Policy> LoadFile(const std::string& path);
  // Every problem in the file (empty when it is valid), for `lethectl policy validate`.
  static std::vector<Diagnostic> Validate(std::string_view yaml);

  int version() const { return version_; }
  const std::string& name() const { return name_; }
  const std::vector<std::string>& identities() const { return identities_; }
  bool HasIdentity(std::string_view type) const;
  // The normalizers of an identity type, in the order they apply (empty for a type written
  // as a plain name, or not in the policy).
  const std::vector<Normalizer>& Normalizers(std::string_view type) const;
  // `value` with the type's normalizers applied; unchanged for a type without any.
  std::string Normalize(std::string_view type, std::string_view value) const;
  const std::vector<Purpose>& purposes() const { return purposes_; }
  const Deadlines& deadlines() const { return deadlines_; }
  const std::vector<Domain>& domains() const { return domains_; }
  const Domain* FindDomain(std::string_view name) const;

  // Canonical JSON of the whole policy (sorted keys, no whitespace; durations in seconds)
  // and its SHA-256 (32 raw bytes). Two files that differ only in comments, key order or
  // formatting have the same hash.
  std::string CanonicalJson() const;
  // Computed once, when the policy is built (a Policy never changes after).
  const std::string& Hash() const { return hash_; }
  // The same for one domain's section: what an agent compares with a command's hash. The
  // object is the domain's own (name, postgres, and kafka_topics when it has any) plus the
  // policy "version". For a domain the policy does not define, both return an empty string.
  std::string DomainCanonicalJson(std::string_view domain) const;
  std::string DomainHash(std::string_view domain) const;  // also computed once

  // The planner's rule, which the auditor re-checks: every domain in scope (all of the
  // policy's when `scope` is empty, else those named in it, in policy order) with the identity
  // types it is keyed by that `have` lacks. A domain lacking none is a target of the erasure;
  // any other waits for an identity (an agent purges all of its section or nothing).
  struct DomainInScope {
    std::string domain;
    std::vector<std::string> missing_types;  // in the domain's first-use order
  };
  std::vector<DomainInScope> ErasureScope(const std::vector<std::string>& have,
                                          const std::vector<std::string>& scope = {}) const;

 private:
  Policy() = default;
  friend class PolicyBuilder;
  int version_ = 1;
  std::string name_;
  std::vector<std::string> identities_;
  std::vector<std::vector<Normalizer>> normalizers_;  // parallel to identities_
  std::vector<Purpose> purposes_;
  Deadlines deadlines_;
  std::vector<Domain> domains_;
  // Set by Seal() once the fields are final: Hash() and every DomainHash(), in domain order.
  void Seal();
  std::string hash_;
  std::vector<std::string> domain_hashes_;
};

// Parses a duration written <n>h, <n>d, <n>w or <n>y (365 days). n is a positive integer.
absl::StatusOr<absl::Duration> ParsePolicyDuration(std::string_view text);

}  // namespace lethe::policies
