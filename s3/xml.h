// The S3 REST API's XML answers, read into plain structs: object listings (ListObjectsV2),
// version listings (ListObjectVersions), a bucket's versioning state and error bodies.
// Outside bytes: the reader is bounded (depth, element count, text size) and refuses a
// document type declaration, so no entity can be defined or expanded beyond XML's five.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::s3 {

struct ObjectEntry {
  std::string key;
  std::string etag;  // as listed, quotes included
  int64_t size = 0;
};

// One page of ListObjectsV2.
struct ObjectPage {
  std::vector<ObjectEntry> objects;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken, when truncated
};

struct VersionEntry {
  std::string key;
  std::string version_id;
  bool latest = false;
  bool delete_marker = false;
};

// One page of ListObjectVersions.
struct VersionPage {
  std::vector<VersionEntry> versions;  // versions and delete markers, in document order
  bool truncated = false;
  std::string next_key_marker;
  std::string next_version_id_marker;
};

enum class Versioning {
  kNever,        // versioning was never enabled: one copy of each object
  kEnabled,      // every overwrite and delete keeps the old version
  kSuspended,    // enabled once: older versions may still exist
  kUnsupported,  // the server has no versioning (it answered with something else)
};


// Each returns kDataLoss for a body that is not well-formed XML of the expected element, or
// breaks a bound (more than 16 levels, 200,000 elements or 64 KiB of text in one element).
absl::StatusOr<ObjectPage> ParseObjectPage(std::string_view xml);
absl::StatusOr<VersionPage> ParseVersionPage(std::string_view xml);
// A VersioningConfiguration; kUnsupported when the server answered with another document
// (s3rver answers GET ?versioning with an object listing).
absl::StatusOr<Versioning> ParseVersioning(std::string_view xml);
// The Code of an S3 Error document (e.g. "NoSuchBucket", at most 64 characters of
// [A-Za-z0-9.]), or "" for any other body. Only the code is kept: a Message or Key may quote
// an object key, which can hold a subject's identifier.
std::string ParseErrorCode(std::string_view xml);

}  // namespace lethe::s3
