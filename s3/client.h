// s3::Client: the few S3 REST calls the agent needs (list, list versions, get, conditional
// put, delete, a bucket's versioning state), signed with AWS Signature Version 4 by libcurl
// (CURLOPT_AWS_SIGV4). Requests go path-style to a configured endpoint, or virtual-hosted
// to AWS (https://BUCKET.s3.REGION.amazonaws.com). libcurl 7.88 signs the path and query
// exactly as given, so the client builds them in canonical form itself (CanonicalPath,
// CanonicalQuery: RFC 3986 unreserved characters kept, everything else %XX in uppercase,
// parameters sorted, every one written name=value) and always sends x-amz-content-sha256,
// which curl signs but does not add.
//
// Object keys may hold a subject's identifier (users/{email}/...): no error message or log
// line of this client quotes a key, a prefix or a server's error message, only the bucket,
// the call, the HTTP status and the S3 error code.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/secret.h"
#include "s3/xml.h"

namespace lethe::s3 {

struct Credentials {
  std::string access_key_id;
  SecretBytes secret_access_key;
  SecretBytes session_token;  // empty unless temporary credentials
};

// Returns the credentials to sign the next request with (read again each time a purge
// starts, so that a rotated file is picked up).
using CredentialSource = std::function<absl::StatusOr<Credentials>()>;

struct ClientOptions {
  std::string endpoint;  // "http[s]://host[:port]"; empty: AWS
  std::string region;
  absl::Duration timeout = absl::Seconds(30);      // per request
  size_t max_listing_bytes = 16 * 1024 * 1024;     // one listing page or error body
  int list_page_size = 0;                          // max-keys per listing page; 0: the server's (1000)
  size_t max_listed = 1'000'000;                   // entries one List or ListVersions may return
};

// What Get returns.
struct Body {
  std::string data;
  std::string etag;
  std::string content_type;  // as the server sent it (at most 256 bytes)
};

// Thread safety: not thread-safe (one libcurl handle, reused for its connections); one agent
// loop uses it.
class Client {
 public:
  Client(ClientOptions options, CredentialSource credentials);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Every current object whose key starts with `prefix` (all pages); kResourceExhausted past
  // max_listed.
  absl::StatusOr<std::vector<ObjectEntry>> List(const std::string& bucket, std::string_view prefix);
  // Every version and delete marker under `prefix` (all pages).
  absl::StatusOr<std::vector<VersionEntry>> ListVersions(const std::string& bucket, std::string_view prefix);
  absl::StatusOr<Versioning> GetVersioning(const std::string& bucket);
  // The object (or one version of it); kResourceExhausted when it is larger than max_bytes,
  // kNotFound when it is gone.
  absl::StatusOr<Body> Get(const std::string& bucket, std::string_view key, std::string_view version_id,
                           size_t max_bytes);
  // Writes the object only if its current ETag is `if_match` (the server answers 412
  // otherwise: kFailedPrecondition, nothing written), with `content_type` (a plain media
  // type; application/octet-stream when empty or unusual). Returns the new ETag.
  absl::StatusOr<std::string> PutIfMatch(const std::string& bucket, std::string_view key, std::string_view body,
                                         std::string_view if_match, std::string_view content_type);
  // Deletes the object, or one version of it (a delete marker, too). Deleting what is gone
  // succeeds.
  absl::Status Delete(const std::string& bucket, std::string_view key, std::string_view version_id);

 private:
  struct Response {
    long status = 0;
    std::string body;
    std::string etag;
    std::string content_type;
  };
  struct Request {
    const char* method = "GET";
    const std::string* bucket = nullptr;
    std::string_view key;                                     // empty: the bucket itself
    std::vector<std::pair<std::string, std::string>> query;   // unencoded
    std::string_view upload;                                  // PUT body
    std::string if_match;
    std::string content_type;  // PUT
    size_t max_bytes = 0;
    const char* call = "";  // for messages: "ListObjectsV2", "GetObject", ...
  };
  static Request Begin(const char* method, const std::string& bucket, const char* call) {
    Request r;
    r.method = method;
    r.bucket = &bucket;
    r.call = call;
    return r;
  }
  absl::StatusOr<Response> Send(const Request& request);
  std::string Url(const std::string& bucket, std::string_view key, const std::string& query) const;

  const ClientOptions options_;
  const CredentialSource credentials_;
  void* curl_ = nullptr;  // CURL*
};

// The path of `key` for the canonical request: every byte but A-Z a-z 0-9 - . _ ~ and "/"
// written %XX (uppercase hex).
std::string CanonicalPath(std::string_view key);
// name=value pairs, each encoded as CanonicalPath does but with "/" encoded too, sorted by
// encoded name, joined with "&".
std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> params);

// Credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; kNotFound
// when the first two are not both set.
absl::StatusOr<Credentials> CredentialsFromEnvironment();
// Credentials from an AWS shared credentials file (INI: [profile] sections with
// aws_access_key_id, aws_secret_access_key and optionally aws_session_token). Errors name the
// file and the profile, never a value.
absl::StatusOr<Credentials> CredentialsFromFile(const std::string& path, const std::string& profile);
absl::StatusOr<Credentials> ParseCredentialsFile(std::string_view text, const std::string& profile);

}  // namespace lethe::s3
