// Access packages (access_package.h).
#include "audit/access_package.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status.h"
#include "nlohmann/json.hpp"

namespace lethe::audit {
namespace {

using Json = nlohmann::json;

std::string Rfc3339(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

// nlohmann::json's own form: object keys sorted, no whitespace, UTF-8 kept as it is.
std::string Canonical(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

int64_t RowsExported(const v1::Receipt& r) {
  int64_t n = 0;
  for (const auto& t : r.tables()) n += t.rows_exported();
  return n;
}

}  // namespace

absl::StatusOr<SecretBytes> BuildAccessPackage(const PackageInput& in) {
  Json domains = Json::array();
  Json parts = Json::array();
  for (const PackagePart& p : in.parts) {
    Json d = Json::object();
    d["domain"] = p.domain;
    const bool completed = p.receipt.outcome() == v1::Receipt::COMPLETED;
    d["outcome"] = completed ? "COMPLETED" : "FAILED";
    if (completed) {
      Json part = Json::parse(RevealSecret(p.part), nullptr, /*allow_exceptions=*/false);
      if (part.is_discarded() || !part.is_object() || Canonical(part) != RevealSecret(p.part))
        return absl::DataLossError("the part of domain " + p.domain + " is not canonical JSON");
      d["part"] = std::move(part);
      Json m = Json::object();
      m["domain"] = p.domain;
      m["command_id"] = p.receipt.command_id();
      m["part_sha256"] = crypto::Hex(p.receipt.part_sha256());
      m["part_size"] = p.receipt.part_size();
      m["receipt_entry"] = p.receipt_entry;
      m["agent_key_id"] = p.agent_key_id;
      m["rows"] = RowsExported(p.receipt);
      parts.push_back(std::move(m));
    } else {
      d["error"] = p.receipt.error();
    }
    domains.push_back(std::move(d));
  }
  Json doc = Json::object();
  doc["format"] = kAccessPackageFormat;
  doc["request_id"] = in.request_id;
  doc["received_at"] = Rfc3339(in.received_unix_ms);
  doc["completed_at"] = Rfc3339(in.completed_unix_ms);
  doc["exported_at"] = Rfc3339(in.exported_unix_ms);
  doc["identity_types"] = in.identity_types;
  doc["domains"] = std::move(domains);
  doc["manifest"] = Json{{"parts", std::move(parts)},
                         {"certificate", crypto::Base64(in.certificate.SerializeAsString())}};
  std::string text = doc.dump(2, ' ', false, Json::error_handler_t::strict);
  doc = Json();
  text += '\n';
  return SecretBytes(std::move(text));
}

namespace {

absl::StatusOr<Json> ParsePackage(std::string_view package) {
  if (package.size() > kMaxPackageBytes)
    return absl::InvalidArgumentError(absl::StrCat("package: larger than ", kMaxPackageBytes, " bytes"));
  Json doc = Json::parse(package.begin(), package.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return absl::InvalidArgumentError("package: not a JSON object");
  const auto f = doc.find("format");
  if (f == doc.end() || !f->is_string() || f->get<std::string>() != kAccessPackageFormat)
    return absl::InvalidArgumentError(absl::StrCat("package: not a ", kAccessPackageFormat, " document"));
  if (!doc.contains("domains") || !doc["domains"].is_array() || !doc.contains("manifest") ||
      !doc["manifest"].is_object())
    return absl::InvalidArgumentError("package: lacks domains or manifest");
  return doc;
}

}  // namespace

absl::StatusOr<std::string> CanonicalPartOf(std::string_view package, const std::string& domain) {
  LETHE_ASSIGN_OR_RETURN(Json doc, ParsePackage(package));
  for (const auto& d : doc["domains"])
    if (d.is_object() && d.value("domain", "") == domain && d.contains("part")) return Canonical(d["part"]);
  return absl::NotFoundError("package: no part of domain " + Quote(domain, 64));
}

absl::StatusOr<PackageReport> VerifyAccessPackage(std::string_view package, const crypto::Ed25519PublicKey& key) {
  LETHE_ASSIGN_OR_RETURN(Json doc, ParsePackage(package));
  const Json& manifest = doc["manifest"];
  if (!manifest.contains("certificate") || !manifest["certificate"].is_string())
    return absl::InvalidArgumentError("package: the manifest holds no certificate");
  auto cert_bytes = crypto::FromBase64(manifest["certificate"].get<std::string>());
  if (!cert_bytes.ok()) return absl::InvalidArgumentError("package: the certificate is not base64");
  v1::ErasureCertificate cert;
  if (!cert.ParseFromString(*cert_bytes)) return absl::InvalidArgumentError("package: the certificate does not parse");
  PackageReport report;
  LETHE_ASSIGN_OR_RETURN(report.certificate, VerifyCertificate(cert, key));
  if (!report.certificate.access)
    return absl::InvalidArgumentError("package: its certificate is an erasure's, not an access request's");
  if (doc.value("request_id", "") != report.certificate.request_id)
    return absl::DataLossError("package: names request " + Quote(doc.value("request_id", ""), 40) +
                               ", its certificate " + report.certificate.request_id);
  // The package's sections, by domain: each once.
  std::map<std::string, const Json*> sections;
  for (const auto& d : doc["domains"]) {
    if (!d.is_object() || !d.contains("domain") || !d["domain"].is_string())
      return absl::InvalidArgumentError("package: a domain section has no domain name");
    if (!sections.emplace(d["domain"].get<std::string>(), &d).second)
      return absl::DataLossError("package: domain " + Quote(d["domain"].get<std::string>(), 64) + " appears twice");
  }
  std::set<std::string> certified;
  for (const CertifiedDomain& cd : report.certificate.domains) {
    certified.insert(cd.domain);
    const auto s = sections.find(cd.domain);
    const bool completed = cd.receipt.outcome() == v1::Receipt::COMPLETED;
    PackageReport::Domain out{cd.domain, completed, cd.receipt.part_size(), RowsExported(cd.receipt)};
    if (!completed) {
      if (s != sections.end() && s->second->contains("part"))
        return absl::DataLossError("package: domain " + cd.domain + " answered FAILED, yet the package holds a part of it");
      report.domains.push_back(out);
      continue;
    }
    if (s == sections.end() || !s->second->contains("part"))
      return absl::DataLossError("package: lacks the part of domain " + cd.domain + ", whose receipt names one");
    const std::string bytes = Canonical((*s->second)["part"]);
    if (crypto::Sha256(bytes) != cd.receipt.part_sha256() || bytes.size() != cd.receipt.part_size())
      return absl::DataLossError("package: the part of domain " + cd.domain +
                                 " is not the one its agent signed (SHA-256 or size differs from its receipt)");
    const Json& part = (*s->second)["part"];
    if (part.value("request_id", "") != report.certificate.request_id || part.value("domain", "") != cd.domain ||
        part.value("command_id", "") != cd.receipt.command_id())
      return absl::DataLossError("package: the part of domain " + cd.domain +
                                 " names another request, domain or command than its receipt");
    report.domains.push_back(out);
  }
  for (const auto& [name, section] : sections)
    if (!certified.count(name))
      return absl::DataLossError("package: holds domain " + Quote(name, 64) + ", which the certificate does not target");
  return report;
}

}  // namespace lethe::audit
