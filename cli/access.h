// `lethectl request export`: an access request's package, fetched from lethed, verified,
// written (as the JSON document, or as a ZIP of one CSV per table with the document beside
// them), and confirmed so that lethed destroys its copy; or a package file verified offline.
#pragma once

#include <string>

#include "cli/flags.h"

namespace lethe::cli {

// request export ID --out FILE [--format json|csv-zip] [--public-key LETHED.pub]
int RequestExport(const Global& g, const std::string& id, const std::string& out, const std::string& format,
                  const std::string& pub_path);
// request export --verify FILE --public-key LETHED.pub (either format)
int RequestExportVerify(const Global& g, const std::string& file, const std::string& pub_path);

// The csv-zip form of a package document: package.json (the document, verifiable as it is),
// manifest.json (its manifest and request facts) and csv/<domain>/<schema.table>.csv, one per
// table (a header row of column names, then the rows), plus csv/<domain>/kafka-topics.csv.
// Deterministic: the entries are stamped with the package's export time.
absl::StatusOr<std::string> PackageToCsvZip(std::string_view package);

}  // namespace lethe::cli
