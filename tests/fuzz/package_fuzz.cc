// Fuzz target: the readers of access packages and of their parts' chunks.
//
// The first byte chooses what the rest is:
//   0 mod 3: a ZIP archive, as `request export --verify` reads a csv-zip: ReadZip
//            (cli/zip_reader.h). An archive it reads, written again entry by entry by
//            ZipWriter (cli/zip_writer.h), must read back to the same entries.
//   1 mod 3: a package document: VerifyAccessPackage (audit/access_package.h) under the fixed
//            control-plane key, and CanonicalPartOf for every domain it names. A package that
//            verifies has a report for every domain of its certificate.
//   2 mod 3: AccessPartChunk messages, each a 4-byte little-endian length and its bytes, held
//            by AccessParts (controlplane/access_parts.h) with small limits; then the part the
//            first chunk names is taken. A part taken hashes to the digest its chunks carry,
//            and once every command is forgotten nothing is held.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "audit/access_package.h"
#include "cli/zip_reader.h"
#include "cli/zip_writer.h"
#include "controlplane/access_parts.h"
#include "lethe/v1/messages.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace v1 = lethe::v1;
using lethe::fuzz::Violated;

void Zip(std::string_view in) {
  auto entries = lethe::cli::ReadZip(in);
  if (!entries.ok()) return;
  std::set<std::string> names;
  lethe::cli::ZipWriter writer(absl::FromUnixSeconds(1'795'608'000));
  bool writable = true;
  for (const auto& e : *entries) {
    if (e.name.empty() || !names.insert(e.name).second) Violated("ReadZip returned an empty or repeated name");
    writable = writable && writer.Add(e.name, e.data).ok();
  }
  if (!writable) return;  // a name ZipWriter refuses (".." and the like): nothing to compare
  auto again = lethe::cli::ReadZip(writer.Finish());
  if (!again.ok()) Violated("ReadZip refuses what ZipWriter wrote", again.status().ToString());
  if (again->size() != entries->size()) Violated("a rewritten archive has other entries");
  for (size_t i = 0; i < entries->size(); ++i)
    if ((*again)[i].name != (*entries)[i].name || (*again)[i].data != (*entries)[i].data)
      Violated("a rewritten archive reads back differently");
}

void Package(std::string_view in) {
  static const auto& key = lethe::fuzz::LoadKey(lethe::fuzz::kControlPlaneKeyPem);
  auto report = lethe::audit::VerifyAccessPackage(in, key.public_key());
  if (report.ok()) {
    if (report->domains.size() != report->certificate.domains.size())
      Violated("a verified package reports another number of domains than its certificate");
    for (const auto& d : report->domains)
      if (d.completed) (void)lethe::audit::CanonicalPartOf(in, d.domain).value();
  }
  (void)lethe::audit::CanonicalPartOf(in, "growth");
}

uint32_t U32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(s[at + i]);
  return v;
}

void Chunks(std::string_view in) {
  static const lethe::fuzz::TempDir* dir = new lethe::fuzz::TempDir();
  lethe::controlplane::AccessPartLimits limits;
  limits.max_part_bytes = 4096;
  limits.max_held_bytes = 8192;
  limits.max_chunks = 16;
  auto parts = lethe::controlplane::AccessParts::Open(dir->path(), limits);
  if (!parts.ok()) Violated("AccessParts does not open", parts.status().ToString());
  std::optional<v1::AccessPartChunk> first;
  std::set<std::string> commands;
  for (size_t at = 0; at + 4 <= in.size();) {
    const uint32_t n = U32(in, at);
    at += 4;
    if (n > in.size() - at) break;
    v1::AccessPartChunk chunk;
    if (chunk.ParseFromArray(in.data() + at, static_cast<int>(n))) {
      (void)(*parts)->AddChunk(chunk);
      commands.insert(chunk.command_id());
      if (!first) first = chunk;
    }
    at += n;
    if ((*parts)->held_bytes() > limits.max_held_bytes) Violated("AccessParts holds more than its limit");
  }
  if (first) {
    auto whole = (*parts)->TakeSealed(first->command_id(), first->sealed_sha256(), first->count());
    if (whole.ok() && lethe::crypto::Sha256(*whole) != first->sealed_sha256())
      Violated("a part taken does not hash to its chunks' digest");
  }
  for (const auto& c : commands) (*parts)->Forget(c);
  if ((*parts)->held_bytes() != 0) Violated("chunks held after every command was forgotten");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > lethe::fuzz::kMaxInput) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: Zip(rest); break;
    case 1: Package(rest); break;
    default: Chunks(rest); break;
  }
  return 0;
}
