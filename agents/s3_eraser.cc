#include "agents/s3_eraser.h"

#include <optional>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agents/subject_keys.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace lethe::agents {
namespace {

// The value of one top-level field of a JSON object, read without building the document.
// Strings as text, integers in decimal; anything else leaves `found` false.
class FieldReader : public nlohmann::json::json_sax_t {
 public:
  explicit FieldReader(const std::string& field) : field_(field) {}
  bool found = false;
  bool object = false;  // the line is a JSON object
  std::string value;

  bool null() override { return Scalar(std::nullopt); }
  bool boolean(bool) override { return Scalar(std::nullopt); }
  bool number_integer(number_integer_t v) override { return Scalar(std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return Scalar(std::to_string(v)); }
  bool number_float(number_float_t, const string_t&) override { return Scalar(std::nullopt); }
  bool string(string_t& v) override { return Scalar(v); }
  bool binary(binary_t&) override { return Scalar(std::nullopt); }
  bool start_object(std::size_t) override {
    if (depth_ == 0) object = true;
    ++depth_;
    return true;
  }
  bool key(string_t& k) override {
    pending_ = depth_ == 1 && k == field_;
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    pending_ = false;
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    object = false;
    return false;
  }

 private:
  bool Scalar(std::optional<std::string> v) {
    if (pending_ && depth_ == 1 && !found && v.has_value()) {
      found = true;
      value = std::move(*v);
    }
    pending_ = false;
    return true;
  }
  const std::string& field_;
  int depth_ = 0;
  bool pending_ = false;
};

std::string Folded(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return absl::AsciiStrToLower(std::string(s));
}

bool Blank(std::string_view line) {
  for (char c : line)
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
  return true;
}

// Errors that leave the command to be retried, named for the agent's log and the retry.
absl::Status Retry(const absl::Status& st) {
  if (absl::IsUnavailable(st)) return st;
  return absl::UnavailableError(st.message());
}

}  // namespace

JsonlScan ScanJsonl(std::string_view object, const std::string& field, const std::vector<std::string>& values,
                    policies::Match match) {
  JsonlScan out;
  std::vector<std::string> folded;
  for (const auto& v : values) folded.push_back(Folded(v));
  size_t pos = 0;
  while (pos < object.size()) {
    size_t end = object.find('\n', pos);
    end = end == std::string_view::npos ? object.size() : end + 1;
    const std::string_view line = object.substr(pos, end - pos);
    pos = end;
    if (Blank(line)) {
      out.kept += line;
      continue;
    }
    FieldReader reader(field);
    const bool parsed = nlohmann::json::sax_parse(line, &reader, nlohmann::json::input_format_t::json, true);
    if (!parsed || !reader.object) {
      ++out.unreadable;
      out.kept += line;
      continue;
    }
    bool matched = false, near = false;
    if (reader.found) {
      const std::string folded_value = Folded(reader.value);
      for (size_t i = 0; i < values.size(); ++i) {
        const bool same = match == policies::Match::kCaseInsensitive
                              ? absl::AsciiStrToLower(reader.value) == absl::AsciiStrToLower(values[i])
                              : reader.value == values[i];
        if (same) matched = true;
        if (!same && folded_value == folded[i]) near = true;
      }
    }
    if (matched) {
      ++out.matched;
      continue;
    }
    if (near) ++out.near_match;
    out.kept += line;
  }
  return out;
}

S3Eraser::S3Eraser(policies::S3Store store, std::unique_ptr<s3::Client> client, S3EraserOptions options)
    : store_(std::move(store)), client_(std::move(client)), options_(options) {}

absl::StatusOr<ObjectErasure> S3Eraser::Erase(const OpenedIdentities& ids) {
  ObjectErasure out;
  // First, without changing anything: every bucket exists, its versioning is known, every
  // entry's identities are in the command and no jsonl object is too large.
  std::vector<bool> versioned;
  std::vector<std::vector<std::string>> prefixes, values;
  std::vector<std::vector<s3::ObjectEntry>> listings;  // jsonl: the objects under the prefix, as checked
  for (const policies::S3Bucket& b : store_.buckets) {
    absl::StatusOr<s3::Versioning> v = client_->GetVersioning(b.bucket);
    if (absl::IsNotFound(v.status())) {
      out.failure = "S3 bucket " + b.bucket + " does not exist";
      return out;
    }
    if (!v.ok()) return Retry(v.status());
    versioned.push_back(*v == s3::Versioning::kEnabled || *v == s3::Versioning::kSuspended);
    std::vector<std::string> vals;
    for (const auto& id : ids.identities())
      if (id.type == b.identity) vals.emplace_back(RevealSecret(id.value));  // compared with each line's field
    std::vector<std::string> pre =
        b.kind == policies::S3Bucket::Kind::kObjects ? SubjectKeys(b.prefix, b.identities, ids) : std::vector<std::string>{};
    if ((b.kind == policies::S3Bucket::Kind::kObjects && pre.empty()) ||
        (b.kind == policies::S3Bucket::Kind::kJsonl && vals.empty())) {
      out.failure = "the command carries no " + (b.identities.empty() ? std::string("?") : b.identities.front()) +
                    " identity, which this domain's S3 bucket " + b.bucket + " is keyed by";
      return out;
    }
    if (b.kind == policies::S3Bucket::Kind::kJsonl) {
      absl::StatusOr<std::vector<s3::ObjectEntry>> listed = client_->List(b.bucket, b.prefix);
      if (absl::IsResourceExhausted(listed.status())) {
        out.failure = std::string(listed.status().message());
        return out;
      }
      if (!listed.ok()) return Retry(listed.status());
      for (const auto& o : *listed) {
        if (o.size > 0 && static_cast<size_t>(o.size) > options_.max_object_bytes) {
          out.failure = absl::StrCat("a JSON-lines object in S3 bucket ", b.bucket, " is ", o.size,
                                     " bytes, over the agent's limit of ", options_.max_object_bytes);
          return out;
        }
      }
      listings.push_back(std::move(*listed));
    } else {
      listings.emplace_back();
    }
    prefixes.push_back(std::move(pre));
    values.push_back(std::move(vals));
  }
  for (size_t i = 0; i < store_.buckets.size(); ++i) {
    const policies::S3Bucket& b = store_.buckets[i];
    v1::S3Result r;
    r.set_bucket(b.bucket);
    r.set_kind(policies::S3Bucket::KindName(b.kind));
    r.set_action(policies::Table::ActionName(b.action));
    r.set_versioned(versioned[i]);
    if (b.action == policies::TableAction::kRetain) {
      r.set_basis(b.basis);
      r.set_retention_period_seconds(absl::ToInt64Seconds(b.period));
    }
    absl::Status st = b.kind == policies::S3Bucket::Kind::kObjects ? Objects(b, versioned[i], prefixes[i], r)
                                                                   : Jsonl(b, versioned[i], values[i], listings[i], r);
    if (absl::IsResourceExhausted(st)) {
      // An object that grew over the limit since the check, or a listing over the client's
      // bound: the message names the bucket and the bound, never a key.
      out.failure = std::string(st.message());
      return out;
    }
    if (!st.ok()) return Retry(st);
    // Every version is deleted, none left to a lifecycle rule: gone once re-checked.
    if (b.action == policies::TableAction::kDelete)
      r.set_physically_gone_by_unix_ms(absl::ToUnixMillis(options_.clock->Now()));
    out.buckets.push_back(std::move(r));
  }
  return out;
}

absl::Status S3Eraser::Objects(const policies::S3Bucket& b, bool versioned, const std::vector<std::string>& prefixes,
                               v1::S3Result& r) {
  constexpr int kPasses = 3;  // objects written under the prefix while it is erased are erased again
  for (const std::string& prefix : prefixes) {
    if (b.action == policies::TableAction::kRetain) {
      auto listed = client_->List(b.bucket, prefix);
      if (!listed.ok()) return listed.status();
      r.set_objects_withheld(r.objects_withheld() + static_cast<int64_t>(listed->size()));
      continue;
    }
    int64_t remaining = 0;
    std::set<std::string> deleted;
    for (int pass = 0; pass < kPasses; ++pass) {
      if (versioned) {
        auto listed = client_->ListVersions(b.bucket, prefix);
        if (!listed.ok()) return listed.status();
        for (const auto& v : *listed) {
          if (auto st = client_->Delete(b.bucket, v.key, v.version_id); !st.ok()) return st;
          if (!v.delete_marker) deleted.insert(v.key);
          if (!v.latest || v.delete_marker) r.set_versions_deleted(r.versions_deleted() + 1);
        }
        auto again = client_->ListVersions(b.bucket, prefix);
        if (!again.ok()) return again.status();
        remaining = static_cast<int64_t>(again->size());
      } else {
        auto listed = client_->List(b.bucket, prefix);
        if (!listed.ok()) return listed.status();
        for (const auto& o : *listed) {
          if (auto st = client_->Delete(b.bucket, o.key, ""); !st.ok()) return st;
          deleted.insert(o.key);
        }
        auto again = client_->List(b.bucket, prefix);
        if (!again.ok()) return again.status();
        remaining = static_cast<int64_t>(again->size());
      }
      if (remaining == 0) break;
    }
    r.set_objects_deleted(r.objects_deleted() + static_cast<int64_t>(deleted.size()));
    if (remaining != 0)
      return absl::UnavailableError("objects still appear under a subject's key prefix in S3 bucket " + b.bucket +
                                    " after " + std::to_string(kPasses) + " passes");
  }
  return absl::OkStatus();
}

absl::Status S3Eraser::Jsonl(const policies::S3Bucket& b, bool versioned, const std::vector<std::string>& values,
                             const std::vector<s3::ObjectEntry>& listed, v1::S3Result& r) {
  for (const auto& o : listed) {
    for (int attempt = 0;; ++attempt) {
      auto body = client_->Get(b.bucket, o.key, "", options_.max_object_bytes);
      if (absl::IsNotFound(body.status())) break;  // deleted meanwhile
      if (!body.ok()) return body.status();
      JsonlScan scan = ScanJsonl(body->data, b.field, values, b.match);
      if (b.action == policies::TableAction::kRetain) {
        r.set_lines_withheld(r.lines_withheld() + scan.matched);
        break;
      }
      if (scan.matched == 0) break;
      auto put = client_->PutIfMatch(b.bucket, o.key, scan.kept, body->etag, body->content_type);
      if (put.ok()) {
        r.set_objects_rewritten(r.objects_rewritten() + 1);
        r.set_lines_removed(r.lines_removed() + scan.matched);
        break;
      }
      if (!absl::IsFailedPrecondition(put.status())) return put.status();
      if (attempt + 1 >= options_.conflict_retries)
        return absl::UnavailableError("a JSON-lines object in S3 bucket " + b.bucket + " changed under " +
                                      std::to_string(options_.conflict_retries) + " rewrites in a row");
      spdlog::info("S3 bucket {}: a JSON-lines object changed while it was rewritten; reading it again", b.bucket);
    }
  }
  if (b.action == policies::TableAction::kRetain) return absl::OkStatus();

  // The re-check, read anew: every current object (objects written since the listing above
  // included) and, in a versioned bucket, every older version, which keeps the lines the
  // current one no longer holds: such a version is deleted here.
  std::vector<s3::VersionEntry> entries;
  if (versioned) {
    auto versions = client_->ListVersions(b.bucket, b.prefix);
    if (!versions.ok()) return versions.status();
    entries = std::move(*versions);
  } else {
    auto again = client_->List(b.bucket, b.prefix);
    if (!again.ok()) return again.status();
    for (auto& o : *again) entries.push_back(s3::VersionEntry{std::move(o.key), "", /*latest=*/true, false});
  }
  int64_t remaining = 0, near = 0, unreadable = 0, objects = 0;
  for (const auto& v : entries) {
    if (v.delete_marker) continue;
    auto body = client_->Get(b.bucket, v.key, v.version_id, options_.max_object_bytes);
    if (absl::IsNotFound(body.status())) continue;
    if (!body.ok()) return body.status();
    const JsonlScan scan = ScanJsonl(body->data, b.field, values, b.match);
    if (scan.matched > 0 && !v.latest) {
      if (auto st = client_->Delete(b.bucket, v.key, v.version_id); !st.ok()) return st;
      r.set_versions_deleted(r.versions_deleted() + 1);
      continue;
    }
    if (v.latest) {
      near += scan.near_match;
      unreadable += scan.unreadable;
    }
    remaining += scan.matched;
    if (scan.matched > 0) ++objects;
  }
  r.set_lines_remaining(remaining);
  r.set_objects_remaining(objects);
  r.set_lines_near_match(near);
  r.set_lines_unreadable(unreadable);
  if (remaining != 0)
    return absl::UnavailableError("lines of the subject are still in a JSON-lines object of S3 bucket " + b.bucket +
                                  " after the rewrite (written again meanwhile?)");
  return absl::OkStatus();
}

}  // namespace lethe::agents
