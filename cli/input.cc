#include "cli/input.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lethe::cli {
namespace {

absl::StatusOr<std::string> ReadBounded(std::istream& in, const std::string& flag,
                                        const std::string& name) {
  std::string out;
  char buf[4096];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > kMaxInputBytes)
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", name, " is larger than ",
                                                     kMaxInputBytes / 1024, " KiB"));
  }
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", name));
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadInput(const std::string& flag, const std::string& from) {
  if (from == "-") return ReadBounded(std::cin, flag, "standard input");
  std::ifstream f(from, std::ios::binary);
  if (!f) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot open ", from));
  return ReadBounded(f, flag, from);
}

absl::StatusOr<std::vector<std::string>> IdentityArgs(const std::vector<std::string>& flags,
                                                      const std::string& from) {
  std::vector<std::string> out = flags;
  const size_t from_flags = out.size();
  if (!from.empty()) {
    auto text = ReadInput("--identities-from", from);
    if (!text.ok()) return text.status();
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || line.front() == '#') continue;
      out.emplace_back(line);
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {
    const std::string where =
        i < from_flags ? absl::StrCat("--identity #", i + 1)
                       : absl::StrCat("--identities-from line ", i - from_flags + 1, " (not counting blank or # lines)");
    const size_t eq = out[i].find('=');
    if (eq == std::string::npos || eq == 0)
      return absl::InvalidArgumentError(where + ": expected TYPE=VALUE");
    const std::string value = out[i].substr(eq + 1);
    if (value.empty()) return absl::InvalidArgumentError(where + ": the value is empty");
    if (value == "-")
      return absl::InvalidArgumentError(
          where + ": the value is \"-\"; to read identities from standard input use "
                  "--identities-from -");
  }
  if (out.empty())
    return absl::InvalidArgumentError("give at least one identity: --identity TYPE=VALUE or --identities-from FILE|-");
  return out;
}

absl::StatusOr<std::string> ReasonText(const std::string& reason, const std::string& from) {
  if (from.empty()) return reason;
  if (!reason.empty()) return absl::InvalidArgumentError("give --reason or --reason-from, not both");
  auto text = ReadInput("--reason-from", from);
  if (!text.ok()) return text.status();
  if (!text->empty() && text->back() == '\n') text->pop_back();
  if (!text->empty() && text->back() == '\r') text->pop_back();
  return *text;
}

}  // namespace lethe::cli
