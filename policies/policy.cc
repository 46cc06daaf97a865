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

namespace lethe::policy {
namespace {

using Json = nlohmann::json;  // std::map objects: keys come out sorted

const char* ActionName(TableAction action) {
  switch (action) {
    case TableAction::kDelete:
      return "delete";
  }
  return "delete";
}

// The domain's canonical object, without the policy version.
Json DomainJson(const Domain& domain) {
  Json tables = Json::array();
  for (const Table& t : domain.tables) {
    Json table = Json::object();
    table["table"] = t.QualifiedName();
    table["key"] = t.key_column;
    table["identity"] = t.identity;
    table["action"] = ActionName(t.action);
    tables.push_back(std::move(table));
  }
  Json postgres = Json::object();
  postgres["tables"] = std::move(tables);
  Json out = Json::object();
  out["name"] = domain.name;
  out["postgres"] = std::move(postgres);
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

std::vector<std::string> Domain::IdentityTypes() const {
  std::vector<std::string> types;
  for (const Table& t : tables) {
    if (std::find(types.begin(), types.end(), t.identity) == types.end()) {
      types.push_back(t.identity);
    }
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
  Json domains = Json::array();
  for (const Domain& d : domains_) domains.push_back(DomainJson(d));

  Json out = Json::object();
  out["version"] = version_;
  out["name"] = name_;
  out["identities"] = identities_;
  out["purposes"] = std::move(purposes);
  out["deadlines"] = std::move(deadlines);
  out["domains"] = std::move(domains);
  return Dump(out);
}

std::string Policy::Hash() const { return crypto::Sha256(CanonicalJson()); }

std::string Policy::DomainCanonicalJson(std::string_view domain) const {
  const Domain* d = FindDomain(domain);
  if (d == nullptr) return "";
  Json out = DomainJson(*d);
  out["version"] = version_;
  return Dump(out);
}

std::string Policy::DomainHash(std::string_view domain) const {
  const Domain* d = FindDomain(domain);
  if (d == nullptr) return "";
  return crypto::Sha256(DomainCanonicalJson(domain));
}

absl::StatusOr<absl::Duration> ParsePolicyDuration(std::string_view text) {
  return internal::ParseDurationFor(text, "");
}

}  // namespace lethe::policy
