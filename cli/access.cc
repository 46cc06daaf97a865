// `lethectl request export` (access.h).
#include "cli/access.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "audit/access_package.h"
#include "audit/offline_verify.h"
#include "base/file_system.h"
#include "base/status.h"
#include "cli/exit_codes.h"
#include "cli/ledger.h"
#include "cli/render.h"
#include "cli/zip_reader.h"
#include "cli/zip_writer.h"
#include "crypto/crypto.h"
#include "lethe/v1/api.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace lethe::cli {
namespace {

namespace v1 = lethe::v1;
using JsonValue = nlohmann::json;

constexpr char kPackageEntry[] = "package.json";

// A JSON value of a part as one CSV cell: text as it is, null as an empty unquoted field.
std::optional<std::string> Cell(const JsonValue& v) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, JsonValue::error_handler_t::replace);
}

void PrintReport(const audit::PackageReport& r) {
  const auto& c = r.certificate;
  std::cout << "Access package of request " << c.request_id << "\n"
            << "  log        " << c.origin << ", checkpoint of " << c.checkpoint_size
            << " entries (signature verified)\n"
            << "  received   " << Time(c.received_unix_ms) << "   completed " << Time(c.completed_unix_ms) << "\n";
  for (const auto& d : r.domains) {
    if (d.completed)
      std::cout << absl::StrFormat("  %-16s part of %d bytes, %d row(s): matches the digest its agent signed\n",
                                   d.domain, d.part_size, d.rows);
    else
      std::cout << absl::StrFormat("  %-16s answered FAILED: no part\n", d.domain);
  }
}

}  // namespace

absl::StatusOr<std::string> PackageToCsvZip(std::string_view package) {
  JsonValue doc = JsonValue::parse(package.begin(), package.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || doc.value("format", "") != audit::kAccessPackageFormat)
    return absl::InvalidArgumentError("not an access package");
  absl::Time at;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, doc.value("exported_at", ""), &at, &err)) at = absl::UnixEpoch();
  ZipWriter zip(at);
  LETHE_RETURN_IF_ERROR(zip.Add(kPackageEntry, package));
  JsonValue manifest = doc["manifest"];
  for (const char* k : {"format", "request_id", "received_at", "completed_at", "exported_at", "identity_types"})
    if (doc.contains(k)) manifest[k] = doc[k];
  LETHE_RETURN_IF_ERROR(zip.Add("manifest.json", manifest.dump(2) + "\n"));
  for (const auto& d : doc["domains"]) {
    if (!d.is_object() || !d.contains("part")) continue;
    const std::string domain = d.value("domain", "");
    const JsonValue& part = d["part"];
    for (const auto& t : part.value("tables", JsonValue::array())) {
      std::vector<std::string> names;
      for (const auto& c : t.value("columns", JsonValue::array())) names.push_back(c.value("name", ""));
      std::string csv;
      std::vector<std::optional<std::string>> header(names.begin(), names.end());
      csv += CsvRow(header);
      for (const auto& row : t.value("rows", JsonValue::array())) {
        std::vector<std::optional<std::string>> cells;
        for (const auto& n : names) cells.push_back(row.contains(n) ? Cell(row[n]) : std::nullopt);
        csv += CsvRow(cells);
      }
      LETHE_RETURN_IF_ERROR(zip.Add(absl::StrCat("csv/", domain, "/", t.value("table", "table"), ".csv"), csv));
    }
    if (part.contains("topics") && !part["topics"].empty()) {
      std::string csv = CsvRow({std::string("topic"), std::string("key")});
      for (const auto& t : part["topics"])
        for (const auto& k : t.value("keys", JsonValue::array())) csv += CsvRow({t.value("topic", ""), Cell(k)});
      LETHE_RETURN_IF_ERROR(zip.Add(absl::StrCat("csv/", domain, "/kafka-topics.csv"), csv));
    }
  }
  return zip.Finish();
}

int RequestExport(const Global& g, const std::string& id, const std::string& out, const std::string& format,
                  const std::string& pub_path) {
  const std::string what = "request export";
  if (out.empty()) return Fail(what, absl::InvalidArgumentError("--out FILE is required: the package is personal data"));
  if (format != "json" && format != "csv-zip")
    return Fail(what, absl::InvalidArgumentError("--format: json or csv-zip, got " + Quote(format, 16)));
  // Nothing is fetched into a file that is already there: a package is written once.
  if (::access(out.c_str(), F_OK) == 0)
    return Fail(what, absl::AlreadyExistsError(out + " exists; choose another --out"));
  auto api = v1::SubjectRequests::NewStub(Connect(g));
  v1::ExportRequest req;
  req.set_request_id(id);
  v1::ExportResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(10)));
  if (grpc::Status s = api->Export(&ctx, req, &resp); !s.ok()) return FailGrpc(what, s);
  if (lethe::crypto::Sha256(resp.package()) != resp.package_sha256())
    return Fail(what, absl::DataLossError("the package received does not hash to the digest lethed sent"));
  // Checked before it is kept, and before lethed is told to destroy its copy.
  std::string warning;
  auto key = audit::TrustedKey(pub_path, resp.public_key_pem(), &warning);
  if (!key.ok()) return Fail(what, key.status());
  auto report = audit::VerifyAccessPackage(resp.package(), *key);
  if (!report.ok()) return Fail(what, Annotate(report.status(), "the package does not verify; nothing was kept"));
  std::string bytes = resp.package();
  if (format == "csv-zip") {
    auto zip = PackageToCsvZip(resp.package());
    if (!zip.ok()) return Fail(what, zip.status());
    bytes = *std::move(zip);
  }
  // Mode 0600: the package is the person's data.
  if (absl::Status w = WriteNewFile(out, bytes, 0600); !w.ok()) return Fail(what, w);
  v1::ConfirmExportRequest confirm;
  confirm.set_request_id(id);
  confirm.set_package_sha256(resp.package_sha256());
  v1::ConfirmExportResponse released;
  grpc::ClientContext cctx;
  cctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  if (grpc::Status s = api->ConfirmExport(&cctx, confirm, &released); !s.ok()) {
    std::cerr << "lethectl request export: the package is written to " << out
              << ", but lethed still holds its copy (run the export again to release it)\n";
    return FailGrpc(what, s);
  }
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  if (g.json()) {
    std::cout << JsonValue{{"out", out},
                      {"request_id", id},
                      {"format", format},
                      {"package_sha256", lethe::crypto::Hex(resp.package_sha256())},
                      {"released_entry", released.released_entry()},
                      {"verified", true}}
                     .dump(2)
              << "\n";
    return 0;
  }
  PrintReport(*report);
  std::cout << "written to " << out << " (" << format << ", " << bytes.size()
            << " bytes); lethed destroyed its copy and the request key (ledger entry " << released.released_entry()
            << ")\ncheck it with: lethectl request export --verify " << out << " --public-key LETHED.pub\n";
  return 0;
}

int RequestExportVerify(const Global& g, const std::string& file, const std::string& pub_path) {
  const std::string what = "request export --verify";
  if (pub_path.empty()) return Fail(what, absl::InvalidArgumentError("--verify needs --public-key"));
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail(what, key.status());
  auto text = lethe::ReadFile(file);
  if (!text.ok()) return Fail(what, text.status());
  std::string package = *std::move(text);
  std::string zip_note;
  if (package.rfind("PK\x03\x04", 0) == 0) {
    // A csv-zip: the document inside is what verifies, and every CSV must be the one it gives.
    auto entries = ReadZip(package);
    if (!entries.ok()) return Fail(what, Annotate(entries.status(), file));
    const ZipEntry* doc = nullptr;
    for (const auto& e : *entries)
      if (e.name == kPackageEntry) doc = &e;
    if (doc == nullptr) return Fail(what, absl::InvalidArgumentError(file + ": a ZIP without package.json"));
    auto again = PackageToCsvZip(doc->data);
    if (!again.ok()) return Fail(what, Annotate(again.status(), file));
    auto expected = ReadZip(*again);
    if (!expected.ok()) return Fail(what, expected.status());
    bool same = expected->size() == entries->size();
    for (size_t i = 0; same && i < entries->size(); ++i)
      same = (*entries)[i].name == (*expected)[i].name && (*entries)[i].data == (*expected)[i].data;
    if (!same) {
      std::cerr << "package: INVALID: the CSV files of " << file << " are not the ones its package.json gives\n";
      return 1;
    }
    zip_note = absl::StrCat("  csv-zip    ", entries->size(), " entries, each the one package.json gives\n");
    package = doc->data;
  }
  auto report = audit::VerifyAccessPackage(package, *key);
  if (!report.ok()) {
    std::cerr << "package: INVALID: " << report.status().message() << "\n";
    return 1;
  }
  if (g.json()) {
    JsonValue domains = JsonValue::array();
    for (const auto& d : report->domains)
      domains.push_back({{"domain", d.domain}, {"completed", d.completed}, {"part_size", d.part_size}, {"rows", d.rows}});
    std::cout << JsonValue{{"ok", true},
                      {"request_id", report->certificate.request_id},
                      {"checkpoint_size", report->certificate.checkpoint_size},
                      {"domains", domains}}
                     .dump(2)
              << "\n";
  } else {
    PrintReport(*report);
    std::cout << zip_note << "package: VALID\n";
  }
  return 0;
}

}  // namespace lethe::cli
