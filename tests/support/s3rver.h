// A throwaway, real S3 API server for integration tests: s3rver (npm, pinned by
// tests/s3rver/package-lock.json and installed by tests/scripts/s3rver.sh), a
// filesystem-backed implementation of the S3 REST API, on 127.0.0.1 at a port the kernel
// picks. What s3rver does not do (measured, s3rver 3.7.1): it does not verify signatures
// (it checks the access key id S3RVER and that x-amz-content-sha256 is present), it has no
// versioning (GET ?versioning answers with an object listing), it ignores If-Match, and it
// has no lifecycle configuration (501).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {

class S3rver {
 public:
  // Starts s3rver on a fresh directory with `buckets` created, and waits (up to 30 s) until
  // it listens. Fails (never skips) when s3rver is not installed or does not start.
  static absl::StatusOr<std::unique_ptr<S3rver>> Start(const std::vector<std::string>& buckets);
  ~S3rver();  // kills it and removes the directory
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

  // "http://127.0.0.1:PORT"
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // The directory holding the buckets: DIR/<bucket>/<key>._S3rver_object.
  const std::string& data_dir() const { return data_dir_; }
  // The credentials s3rver accepts.
  static constexpr char kAccessKeyId[] = "S3RVER";
  static constexpr char kSecretAccessKey[] = "S3RVER";

 private:
  S3rver() = default;
  std::string dir_, data_dir_;
  int port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace lethe::testing
