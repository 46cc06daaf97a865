#include "s3/client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/file_system.h"
#include "crypto/crypto.h"

namespace lethe::s3 {
namespace {

std::once_flag curl_init;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool Unreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

std::string Encode(std::string_view s, bool keep_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (Unreserved(c) || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct Sink {
  std::string* body;
  size_t max;
  bool overflow = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t len = size * n;
  if (sink->body->size() + len > sink->max) {
    sink->overflow = true;
    return 0;  // aborts the transfer
  }
  sink->body->append(data, len);
  return len;
}

struct Headers {
  std::string etag;
  std::string content_type;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  const size_t len = size * n;
  std::string_view line(data, len);
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon > 64) return len;
  const std::string name = absl::AsciiStrToLower(std::string(line.substr(0, colon)));
  const std::string value(Trim(line.substr(colon + 1)).substr(0, 256));
  if (name == "etag") static_cast<Headers*>(user)->etag = value;
  if (name == "content-type") static_cast<Headers*>(user)->content_type = value;
  return len;
}



}  // namespace

std::string CanonicalPath(std::string_view key) { return Encode(key, /*keep_slash=*/true); }

std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> params) {
  for (auto& [name, value] : params) {
    name = Encode(name, false);
    value = Encode(value, false);
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) absl::StrAppend(&out, out.empty() ? "" : "&", name, "=", value);
  return out;
}

Client::Client(ClientOptions options, CredentialSource credentials)
    : options_(std::move(options)), credentials_(std::move(credentials)) {
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
}

Client::~Client() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string Client::Url(const std::string& bucket, std::string_view key, const std::string& query) const {
  std::string url;
  if (!options_.endpoint.empty()) {
    url = options_.endpoint + "/" + bucket + "/" + CanonicalPath(key);
  } else if (bucket.find('.') != std::string::npos) {
    // A dotted name does not fit the wildcard certificate of virtual-hosted addresses.
    url = "https://s3." + options_.region + ".amazonaws.com/" + bucket + "/" + CanonicalPath(key);
  } else {
    url = "https://" + bucket + ".s3." + options_.region + ".amazonaws.com/" + CanonicalPath(key);
  }
  if (!query.empty()) absl::StrAppend(&url, "?", query);
  return url;
}

absl::StatusOr<Client::Response> Client::Send(const Request& rq) {
  auto* c = static_cast<CURL*>(curl_);
  if (c == nullptr) return absl::ResourceExhaustedError("S3: libcurl handle could not be created");
  absl::StatusOr<Credentials> creds = credentials_();
  if (!creds.ok()) return creds.status();
  const std::string where = absl::StrCat("S3 ", rq.call, " in bucket ", *rq.bucket);

  curl_easy_reset(c);
  const std::string url = Url(*rq.bucket, rq.key, CanonicalQuery(rq.query));
  const std::string scope = "aws:amz:" + options_.region + ":s3";
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_AWS_SIGV4, scope.c_str());
  curl_easy_setopt(c, CURLOPT_USERNAME, creds->access_key_id.c_str());
  const std::string secret(RevealSecret(creds->secret_access_key));  // into libcurl's signer only
  curl_easy_setopt(c, CURLOPT_PASSWORD, secret.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<int64_t>(10'000, absl::ToInt64Milliseconds(options_.timeout))));

  struct curl_slist* headers = nullptr;
  const std::string payload_hash = crypto::Hex(crypto::Sha256(rq.upload));
  headers = curl_slist_append(headers, ("x-amz-content-sha256: " + payload_hash).c_str());
  std::string token_header;
  if (!creds->session_token.empty()) {
    token_header = "x-amz-security-token: " + std::string(RevealSecret(creds->session_token));
    headers = curl_slist_append(headers, token_header.c_str());
  }
  if (!rq.if_match.empty()) headers = curl_slist_append(headers, ("If-Match: " + rq.if_match).c_str());
  if (std::string_view(rq.method) == "PUT") {
    const std::string type = rq.content_type.empty() ? "application/octet-stream" : rq.content_type;
    headers = curl_slist_append(headers, ("Content-Type: " + type).c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq.upload.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(rq.upload.size()));
  } else if (std::string_view(rq.method) != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq.method);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  Response out;
  Sink sink{&out.body, rq.max_bytes == 0 ? options_.max_listing_bytes : rq.max_bytes};
  Headers seen;
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &seen);
  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_setopt(c, CURLOPT_PASSWORD, "");
  if (sink.overflow) {
    return absl::ResourceExhaustedError(
        absl::StrCat(where, ": the answer is larger than ", sink.max, " bytes"));
  }
  if (rc != CURLE_OK) return absl::UnavailableError(absl::StrCat(where, ": ", curl_easy_strerror(rc)));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
  out.etag = std::move(seen.etag);
  out.content_type = std::move(seen.content_type);
  if (out.status >= 200 && out.status < 300) return out;

  const std::string code = ParseErrorCode(out.body);
  const std::string what = absl::StrCat(where, ": HTTP ", out.status, code.empty() ? "" : " ", code);
  if (out.status == 404 && code == "NoSuchBucket")
    return absl::NotFoundError(absl::StrCat("bucket ", *rq.bucket, " does not exist (", what, ")"));
  if (out.status == 404) return absl::NotFoundError(what);
  if (out.status == 412 || (out.status == 409 && code == "ConditionalRequestConflict"))
    return absl::FailedPreconditionError(what);
  if (out.status == 403) return absl::PermissionDeniedError(what + " (check the agent's S3 credentials)");
  if (out.status == 405 || out.status == 501) return absl::UnimplementedError(what);
  if (out.status == 429 || out.status >= 500) return absl::UnavailableError(what);
  return absl::InternalError(what);
}

absl::StatusOr<std::vector<ObjectEntry>> Client::List(const std::string& bucket, std::string_view prefix) {
  std::vector<ObjectEntry> out;
  std::string token;
  while (true) {
    Request rq = Begin("GET", bucket, "ListObjectsV2");
    rq.query = {{"list-type", "2"}, {"prefix", std::string(prefix)}};
    if (!token.empty()) rq.query.emplace_back("continuation-token", token);
    if (options_.list_page_size > 0) rq.query.emplace_back("max-keys", std::to_string(options_.list_page_size));
    auto r = Send(rq);
    if (!r.ok()) return r.status();
    auto page = ParseObjectPage(r->body);
    if (!page.ok()) return page.status();
    for (auto& o : page->objects) out.push_back(std::move(o));
    if (out.size() > options_.max_listed)
      return absl::ResourceExhaustedError(absl::StrCat("S3 ListObjectsV2 in bucket ", bucket, ": more than ",
                                                       options_.max_listed, " objects under one prefix"));
    if (!page->truncated) return out;
    token = std::move(page->next_token);
  }
}

absl::StatusOr<std::vector<VersionEntry>> Client::ListVersions(const std::string& bucket, std::string_view prefix) {
  std::vector<VersionEntry> out;
  std::string key_marker, version_marker;
  while (true) {
    Request rq = Begin("GET", bucket, "ListObjectVersions");
    rq.query = {{"versions", ""}, {"prefix", std::string(prefix)}};
    if (!key_marker.empty()) rq.query.emplace_back("key-marker", key_marker);
    if (!version_marker.empty()) rq.query.emplace_back("version-id-marker", version_marker);
    if (options_.list_page_size > 0) rq.query.emplace_back("max-keys", std::to_string(options_.list_page_size));
    auto r = Send(rq);
    if (!r.ok()) return r.status();
    auto page = ParseVersionPage(r->body);
    if (!page.ok()) return page.status();
    for (auto& v : page->versions) out.push_back(std::move(v));
    if (out.size() > options_.max_listed)
      return absl::ResourceExhaustedError(absl::StrCat("S3 ListObjectVersions in bucket ", bucket, ": more than ",
                                                       options_.max_listed, " versions under one prefix"));
    if (!page->truncated) return out;
    key_marker = std::move(page->next_key_marker);
    version_marker = std::move(page->next_version_id_marker);
  }
}

absl::StatusOr<Versioning> Client::GetVersioning(const std::string& bucket) {
  Request rq = Begin("GET", bucket, "GetBucketVersioning");
  rq.query = {{"versioning", ""}};
  auto r = Send(rq);
  if (absl::IsUnimplemented(r.status())) return Versioning::kUnsupported;
  if (!r.ok()) return r.status();
  return ParseVersioning(r->body);
}

absl::StatusOr<Body> Client::Get(const std::string& bucket, std::string_view key, std::string_view version_id,
                                 size_t max_bytes) {
  Request rq = Begin("GET", bucket, "GetObject");
  rq.key = key;
  rq.max_bytes = max_bytes;
  if (!version_id.empty()) rq.query = {{"versionId", std::string(version_id)}};
  auto r = Send(rq);
  if (!r.ok()) return r.status();
  return Body{std::move(r->body), std::move(r->etag), std::move(r->content_type)};
}

absl::StatusOr<std::string> Client::PutIfMatch(const std::string& bucket, std::string_view key,
                                               std::string_view body, std::string_view if_match,
                                               std::string_view content_type) {
  Request rq = Begin("PUT", bucket, "PutObject");
  rq.key = key;
  rq.upload = body;
  rq.if_match = std::string(if_match);
  // Only a plain media type is passed on (it becomes a signed header).
  if (content_type.size() <= 100 && std::all_of(content_type.begin(), content_type.end(), [](char ch) {
        return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || std::string_view("/+-.;= ").find(ch) != std::string_view::npos;
      }))
    rq.content_type = std::string(content_type);
  auto r = Send(rq);
  if (!r.ok()) return r.status();
  return r->etag;
}

absl::Status Client::Delete(const std::string& bucket, std::string_view key, std::string_view version_id) {
  Request rq = Begin("DELETE", bucket, "DeleteObject");
  rq.key = key;
  if (!version_id.empty()) rq.query = {{"versionId", std::string(version_id)}};
  auto r = Send(rq);
  if (absl::IsNotFound(r.status()) && r.status().message().find("NoSuchBucket") == std::string_view::npos)
    return absl::OkStatus();  // gone already
  return r.status();
}

absl::StatusOr<Credentials> CredentialsFromEnvironment() {
  const char* id = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (id == nullptr || *id == '\0' || secret == nullptr || *secret == '\0')
    return absl::NotFoundError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set");
  Credentials c;
  c.access_key_id = id;
  c.secret_access_key = SecretBytes(secret);
  if (const char* token = std::getenv("AWS_SESSION_TOKEN"); token != nullptr) c.session_token = SecretBytes(token);
  return c;
}

absl::StatusOr<Credentials> ParseCredentialsFile(std::string_view text, const std::string& profile) {
  Credentials c;
  bool in_profile = false, seen_profile = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = Trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') return absl::InvalidArgumentError("a section header is not closed with ]");
      in_profile = Trim(line.substr(1, line.size() - 2)) == profile;
      seen_profile = seen_profile || in_profile;
      continue;
    }
    if (!in_profile) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) return absl::InvalidArgumentError("a line of profile " + profile + " has no =");
    const std::string name = absl::AsciiStrToLower(std::string(Trim(line.substr(0, eq))));
    const std::string value(Trim(line.substr(eq + 1)));
    if (name == "aws_access_key_id") c.access_key_id = value;
    if (name == "aws_secret_access_key") c.secret_access_key = SecretBytes(value);
    if (name == "aws_session_token") c.session_token = SecretBytes(value);
  }
  if (!seen_profile) return absl::NotFoundError("it has no [" + profile + "] profile");
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    return absl::InvalidArgumentError("profile " + profile +
                                      " lacks aws_access_key_id or aws_secret_access_key");
  return c;
}

absl::StatusOr<Credentials> CredentialsFromFile(const std::string& path, const std::string& profile) {
  auto text = ReadFile(path);
  if (!text.ok()) return absl::NotFoundError("S3 credentials file " + path + ": " + std::string(text.status().message()));
  auto c = ParseCredentialsFile(*text, profile);
  if (!c.ok()) return absl::Status(c.status().code(), "S3 credentials file " + path + ": " + std::string(c.status().message()));
  return c;
}

}  // namespace lethe::s3
