#include "tests/support/s3rver.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "absl/status/status.h"
#include "absl/time/clock.h"

namespace lethe::testing {

absl::StatusOr<std::unique_ptr<S3rver>> S3rver::Start(const std::vector<std::string>& buckets) {
  const std::string entry = LETHE_S3RVER_JS;
  if (::access(entry.c_str(), R_OK) != 0)
    return absl::FailedPreconditionError("s3rver is not installed at " + entry + ": run tests/scripts/s3rver.sh");
  char tmpl[] = "/tmp/lethe-s3-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  std::unique_ptr<S3rver> s(new S3rver());
  s->dir_ = tmpl;
  s->data_dir_ = s->dir_ + "/data";
  std::vector<std::string> argv = {"/usr/bin/env", "node", entry, "-d", s->data_dir_, "-a", "127.0.0.1",
                                   "-p", "0", "--silent"};
  for (const auto& b : buckets) {
    argv.push_back("--configure-bucket");
    argv.push_back(b);
  }
  // s3rver signs its listing continuation tokens with DES, which OpenSSL 3 keeps in the
  // legacy provider: without it every truncated listing is a 500.
  auto child = Subprocess::Spawn(argv, s->dir_ + "/s3rver.log", {"NODE_OPTIONS=--openssl-legacy-provider"});
  if (!child.ok()) return child.status();
  s->process_ = std::move(*child);
  const std::regex listening("S3rver listening on 127\\.0\\.0\\.1:([0-9]+)");
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::smatch m;
    const std::string log = s->process_->Log();
    if (std::regex_search(log, m, listening)) {
      s->port_ = std::stoi(m[1].str());
      return s;
    }
    if (!s->process_->Running())
      return absl::InternalError("s3rver exited before listening; its log:\n" + log);
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("s3rver did not listen within 30 s; its log:\n" + s->process_->Log());
}

S3rver::~S3rver() {
  process_.reset();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

}  // namespace lethe::testing
