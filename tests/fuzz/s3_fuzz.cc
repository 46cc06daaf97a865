// Fuzz target: what an S3 server's answers and objects feed the agent. The first byte picks
// the reader, the rest is its input:
//   0  the XML of S3 answers (s3/xml.h): object and version listings, a versioning state and
//      an error code, read with their bounds; an error code, when found, is at most 64
//      characters of [A-Za-z0-9.];
//   1  a JSON-lines object (agents/s3_eraser.h, ScanJsonl) scanned for the subject on field
//      "email", in both comparisons: what is kept holds every line but the matched ones, in
//      order, and scanning it again matches nothing;
//   2  an AWS shared credentials file (s3/client.h): every refusal is one of a few fixed
//      sentences, so none quotes the file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agents/s3_eraser.h"
#include "s3/client.h"
#include "s3/xml.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

size_t Lines(std::string_view s) {
  size_t n = 0, pos = 0;
  while (pos < s.size()) {
    const size_t end = s.find('\n', pos);
    ++n;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return n;
}

void Xml(std::string_view in) {
  using lethe::fuzz::Violated;
  if (auto p = lethe::s3::ParseObjectPage(in); p.ok()) {
    for (const auto& o : p->objects)
      if (o.key.empty()) Violated("a listed object without a key");
    if (p->truncated && p->next_token.empty()) Violated("a truncated page without a token");
  }
  if (auto p = lethe::s3::ParseVersionPage(in); p.ok()) {
    for (const auto& v : p->versions)
      if (v.key.empty() || v.version_id.empty()) Violated("a version without key or id");
  }
  (void)lethe::s3::ParseVersioning(in);
  const std::string code = lethe::s3::ParseErrorCode(in);
  if (code.size() > 64) Violated("an error code over 64 characters", code);
  for (char c : code)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'))
      Violated("an error code with a character outside [A-Za-z0-9.]", code);
}

void Jsonl(std::string_view in) {
  using lethe::fuzz::Violated;
  const std::vector<std::string> values = {"alice@example.com", "42"};
  for (auto match : {lethe::policies::Match::kExact, lethe::policies::Match::kCaseInsensitive}) {
    const lethe::agents::JsonlScan scan = lethe::agents::ScanJsonl(in, "email", values, match);
    if (scan.kept.size() > in.size()) Violated("the rewrite is longer than the object");
    if (scan.matched < 0 || scan.near_match < 0 || scan.unreadable < 0) Violated("a negative count");
    // Lines are removed whole: the kept lines and the matched ones add up (a last line without
    // a newline that is kept stays last).
    if (Lines(scan.kept) + static_cast<size_t>(scan.matched) != Lines(in)) Violated("lines lost or invented");
    if (scan.matched == 0 && scan.kept != in) Violated("an object without a match was changed");
    const lethe::agents::JsonlScan again = lethe::agents::ScanJsonl(scan.kept, "email", values, match);
    if (again.matched != 0) Violated("the rewrite still holds a matching line");
    if (again.kept != scan.kept) Violated("rewriting the rewrite changed it");
  }
}

void Credentials(std::string_view in) {
  auto c = lethe::s3::ParseCredentialsFile(in, "default");
  if (c.ok()) return;
  // Every refusal is one of these fixed sentences: none can quote a line of the file.
  static const char* const kMessages[] = {
      "a section header is not closed with ]", "a line of profile default has no =",
      "it has no [default] profile", "profile default lacks aws_access_key_id or aws_secret_access_key"};
  const std::string message(c.status().message());
  for (const char* m : kMessages)
    if (message == m) return;
  lethe::fuzz::Violated("a credentials error that is not one of the fixed sentences", message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > lethe::fuzz::kMaxInput) return -1;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      Xml(in);
      break;
    case 1:
      Jsonl(in);
      break;
    default:
      Credentials(in);
      break;
  }
  return 0;
}
