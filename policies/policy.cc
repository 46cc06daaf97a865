#include "policies/policy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "crypto/crypto.h"
#include "nlohmann/json.hpp"
#include "policies/policy_builder.h"

namespace lethe::policies {
namespace {

using Json = nlohmann::json;  // std::map objects: keys come out sorted

// The domain's canonical object, without the policy version. A delete-only domain without
// Kafka topics has exactly the form it had before anonymize, retain and kafka existed, so
// its hash did not change: the new fields appear only where they are used.
Json DomainJson(const Domain& domain) {
  Json tables = Json::array();
  for (const Table& t : domain.tables) {
    Json table = Json::object();
    table["table"] = t.QualifiedName();
    table["key"] = t.key_column;
    table["identity"] = t.identity;
    table["action"] = Table::ActionName(t.action);
    // Only where it is not exact, so that tables written before `match` keep their hash.
    if (t.match != Match::kExact) table["match"] = MatchName(t.match);
    // Only where set, so that tables written before `vacuum` keep their hash.
    if (t.vacuum != Table::Vacuum::kWatch) table["vacuum"] = Table::VacuumName(t.vacuum);
    switch (t.action) {
      case TableAction::kDelete:
        break;
      case TableAction::kAnonymize: {
        // Sorted by column (the names are distinct): set: is a YAML map, whose key order
        // must not change the hash, and the rewrites of one row happen together.
        std::vector<ColumnRewrite> sorted = t.set;
        std::sort(sorted.begin(), sorted.end(), [](const ColumnRewrite& a, const ColumnRewrite& b) {
          return a.column < b.column;
        });
        Json set = Json::array();
        for (const ColumnRewrite& c : sorted) {
          Json column = Json::object();
          column["column"] = c.column;
          column["kind"] = ColumnRewrite::KindName(c.kind);
          if (c.kind == ColumnRewrite::Kind::kConstant) column["value"] = c.constant;
          set.push_back(std::move(column));
        }
        table["set"] = std::move(set);
        break;
      }
      case TableAction::kRetain:
        table["basis"] = t.basis;
        table["period_seconds"] = absl::ToInt64Seconds(t.period);
        break;
    }
    tables.push_back(std::move(table));
  }
  Json postgres = Json::object();
  postgres["tables"] = std::move(tables);
  Json out = Json::object();
  out["name"] = domain.name;
  out["postgres"] = std::move(postgres);
  if (!domain.kafka_topics.empty()) {
    Json topics = Json::array();
    for (const KafkaTopic& k : domain.kafka_topics) {
      Json topic = Json::object();
      topic["topic"] = k.topic;
      topic["key"] = k.key_template;
      if (!k.sinks.empty()) {
        Json sinks = Json::array();
        for (const Sink& sk : k.sinks) {
          Json sink = Json::object();
          sink["name"] = sk.name;
          sink["kind"] = Sink::KindName(sk.kind);
          sink["deletes_on_tombstone"] = sk.deletes_on_tombstone;
          if (!sk.covered_by_bucket.empty()) sink["covered_by"] = Json{{"s3_bucket", sk.covered_by_bucket}};
          if (!sk.covered_by_table.empty()) sink["covered_by"] = Json{{"table", sk.covered_by_table}};
          sinks.push_back(std::move(sink));
        }
        topic["sinks"] = std::move(sinks);
      }
      topics.push_back(std::move(topic));
    }
    out["kafka_topics"] = std::move(topics);
  }
  if (!domain.s3.buckets.empty()) {
    Json buckets = Json::array();
    for (const S3Bucket& b : domain.s3.buckets) {
      Json bucket = Json::object();
      bucket["bucket"] = b.bucket;
      bucket[S3Bucket::KindName(b.kind)] = b.prefix;
      if (b.kind == S3Bucket::Kind::kJsonl) {
        bucket["field"] = b.field;
        bucket["identity"] = b.identity;
        if (b.match != Match::kExact) bucket["match"] = MatchName(b.match);
      }
      bucket["action"] = Table::ActionName(b.action);
      if (b.action == TableAction::kRetain) {
        bucket["basis"] = b.basis;
        bucket["period_seconds"] = absl::ToInt64Seconds(b.period);
      }
      buckets.push_back(std::move(bucket));
    }
    Json s3 = Json::object();
    s3["region"] = domain.s3.region;
    if (!domain.s3.endpoint.empty()) s3["endpoint"] = domain.s3.endpoint;
    s3["buckets"] = std::move(buckets);
    out["s3"] = std::move(s3);
  }
  return out;
}

// No whitespace. Parse accepts only valid UTF-8 text, so `replace` never fires; it is there
// so that dump() cannot throw.
std::string Dump(const Json& json) {
  return json.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace

std::string Diagnostic::ToString(std::string_view source_name) const {
  std::string out(source_name);
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  return out + ": " + message;
}

const char* ColumnRewrite::KindName(Kind kind) {
  switch (kind) {
    case Kind::kNull:
      return "null";
    case Kind::kHash:
      return "hash";
    case Kind::kConstant:
      return "constant";
  }
  return "null";
}

const char* NormalizerName(Normalizer n) {
  switch (n) {
    case Normalizer::kTrim:
      return "trim";
    case Normalizer::kLowercase:
      return "lowercase";
  }
  return "trim";
}

const char* MatchName(Match m) {
  switch (m) {
    case Match::kExact:
      return "exact";
    case Match::kCaseInsensitive:
      return "case_insensitive";
  }
  return "exact";
}

const char* Table::ActionName(TableAction a) {
  switch (a) {
    case TableAction::kDelete:
      return "delete";
    case TableAction::kAnonymize:
      return "anonymize";
    case TableAction::kRetain:
      return "retain";
  }
  return "delete";
}

const char* Table::VacuumName(Vacuum v) {
  switch (v) {
    case Vacuum::kWatch:
      return "";
    case Vacuum::kAfterPurge:
      return "after_purge";
    case Vacuum::kFullAfterPurge:
      return "full_after_purge";
  }
  return "";
}

std::optional<std::string> KafkaTopic::BuildKey(
    const std::map<std::string, std::string>& values) const {
  std::string key;
  size_t i = 0;
  while (i < key_template.size()) {
    const size_t open = key_template.find_first_of("{}", i);
    if (open == std::string::npos) {
      key.append(key_template, i, std::string::npos);
      break;
    }
    if (key_template[open] == '}') return std::nullopt;  // not a template Parse accepts
    key.append(key_template, i, open - i);
    const size_t close = key_template.find_first_of("{}", open + 1);
    if (close == std::string::npos || key_template[close] != '}') return std::nullopt;
    const auto it = values.find(key_template.substr(open + 1, close - open - 1));
    if (it == values.end()) return std::nullopt;
    key += it->second;
    i = close + 1;
  }
  return key;
}

const char* Sink::KindName(Kind kind) {
  switch (kind) {
    case Kind::kElasticsearch:
      return "elasticsearch";
    case Kind::kJdbc:
      return "jdbc";
    case Kind::kS3:
      return "s3";
    case Kind::kOther:
      return "other";
  }
  return "other";
}

const char* S3Bucket::KindName(Kind kind) { return kind == Kind::kJsonl ? "jsonl" : "objects"; }

std::vector<std::string> Domain::IdentityTypes() const {
  std::vector<std::string> types;
  auto add = [&types](const std::string& type) {
    if (std::find(types.begin(), types.end(), type) == types.end()) types.push_back(type);
  };
  for (const Table& t : tables) add(t.identity);
  for (const KafkaTopic& k : kafka_topics) {
    for (const std::string& type : k.identities) add(type);
  }
  for (const S3Bucket& b : s3.buckets) {
    for (const std::string& type : b.identities) add(type);
  }
  return types;
}

absl::StatusOr<Policy> Policy::Parse(std::string_view yaml, std::string_view source_name) {
  std::vector<Diagnostic> diagnostics;
  std::optional<Policy> policy = internal::BuildPolicy(yaml, &diagnostics);
  if (policy.has_value()) return std::move(*policy);
  const std::string source = source_name.empty() ? "<policy>" : std::string(source_name);
  std::vector<std::string> lines;
  lines.reserve(diagnostics.size());
  for (const Diagnostic& d : diagnostics) lines.push_back(d.ToString(source));
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

absl::StatusOr<Policy> Policy::LoadFile(const std::string& path) {
  auto unreadable = [&path](int error) {
    return absl::NotFoundError("cannot read policy file \"" + path + "\": " + std::strerror(error));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unreadable(errno);
  std::string text;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {  // for example EISDIR
      const int error = errno;
      ::close(fd);
      return unreadable(error);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return Parse(text, path);
}

std::vector<Diagnostic> Policy::Validate(std::string_view yaml) {
  std::vector<Diagnostic> diagnostics;
  internal::BuildPolicy(yaml, &diagnostics);
  return diagnostics;
}

bool Policy::HasIdentity(std::string_view type) const {
  return std::find(identities_.begin(), identities_.end(), type) != identities_.end();
}

const std::vector<Normalizer>& Policy::Normalizers(std::string_view type) const {
  static const std::vector<Normalizer> kNone;
  for (size_t i = 0; i < identities_.size() && i < normalizers_.size(); ++i)
    if (identities_[i] == type) return normalizers_[i];
  return kNone;
}

std::string Policy::Normalize(std::string_view type, std::string_view value) const {
  std::string out(value);
  for (Normalizer n : Normalizers(type)) {
    switch (n) {
      case Normalizer::kTrim: {
        constexpr std::string_view kSpace = " \t\n\v\f\r";
        const size_t first = out.find_first_not_of(kSpace);
        if (first == std::string::npos) {
          out.clear();
          break;
        }
        out.erase(out.find_last_not_of(kSpace) + 1);
        out.erase(0, first);
        break;
      }
      case Normalizer::kLowercase:
        for (char& c : out)
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        break;
    }
  }
  return out;
}

const Domain* Policy::FindDomain(std::string_view name) const {
  for (const Domain& d : domains_) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string Policy::CanonicalJson() const {
  Json purposes = Json::array();
  for (const Purpose& p : purposes_) {
    Json purpose = Json::object();
    purpose["name"] = p.name;
    purpose["description"] = p.description;
    purpose["domains"] = p.domains;
    purpose["erase_on_withdrawal"] = p.erase_on_withdrawal;
    purposes.push_back(std::move(purpose));
  }
  Json deadlines = Json::object();
  deadlines["erasure"] = absl::ToInt64Seconds(deadlines_.erasure);
  deadlines["max_extension"] = absl::ToInt64Seconds(deadlines_.max_extension);
  // Only when written: a policy from before access requests keeps its hash.
  if (deadlines_.access_written) deadlines["access"] = absl::ToInt64Seconds(deadlines_.access);
  if (deadlines_.access_retention_written)
    deadlines["access_retention"] = absl::ToInt64Seconds(deadlines_.access_retention);
  Json domains = Json::array();
  for (const Domain& d : domains_) domains.push_back(DomainJson(d));

  Json out = Json::object();
  out["version"] = version_;
  out["name"] = name_;
  // A type with normalizers is an object; a plain one stays a string, so a policy written
  // before normalization existed keeps its hash.
  Json identities = Json::array();
  for (size_t i = 0; i < identities_.size(); ++i) {
    const std::vector<Normalizer>& steps = Normalizers(identities_[i]);
    if (steps.empty()) {
      identities.push_back(identities_[i]);
      continue;
    }
    Json type = Json::object();
    type["name"] = identities_[i];
    Json normalize = Json::array();
    for (Normalizer n : steps) normalize.push_back(NormalizerName(n));
    type["normalize"] = std::move(normalize);
    identities.push_back(std::move(type));
  }
  out["identities"] = std::move(identities);
  out["purposes"] = std::move(purposes);
  out["deadlines"] = std::move(deadlines);
  out["domains"] = std::move(domains);
  return Dump(out);
}

void Policy::Seal() {
  hash_ = crypto::Sha256(CanonicalJson());
  domain_hashes_.clear();
  for (const Domain& d : domains_) domain_hashes_.push_back(crypto::Sha256(DomainCanonicalJson(d.name)));
}

std::string Policy::DomainCanonicalJson(std::string_view domain) const {
  const Domain* d = FindDomain(domain);
  if (d == nullptr) return "";
  Json out = DomainJson(*d);
  out["version"] = version_;
  return Dump(out);
}

std::string Policy::DomainHash(std::string_view domain) const {
  for (size_t i = 0; i < domains_.size() && i < domain_hashes_.size(); ++i)
    if (domains_[i].name == domain) return domain_hashes_[i];
  return "";
}

absl::StatusOr<absl::Duration> ParsePolicyDuration(std::string_view text) {
  return internal::ParseDurationFor(text, "");
}

}  // namespace lethe::policies
