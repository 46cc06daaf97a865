// Fuzz target: the verifier of a tlog-tiles export (audit/tiles.h VerifyTiles), on a
// directory written from the input into a fresh temp dir.
//
// The first byte chooses how:
//   bit 0 clear: an archive. The rest is a list of files, each
//                  u8 path length, path, u32 little-endian content length, content;
//                written under the directory (paths of [A-Za-z0-9._/-] only, no empty, "."
//                or ".." component, at most 8 deep; others are skipped). A file named
//                "checkpoint+sign" is not written as such: its content is a checkpoint body
//                (origin, size and root lines), written as "checkpoint" with a signature by
//                the fixed key, so that the verifier gets past the signature.
//   bit 0 set:   entries. The rest is a list of entries (u16 length, bytes), chained as in
//                segment_fuzz (bit 1: with re-signed bodies), exported with ExportTiles under
//                a checkpoint the fixed key signs; then the archive that follows a zero-length
//                entry, if any, is written over the export (replacing or adding files).
//
// Checks: a verified export reports the checkpoint's size and root and counts its tiles as
// the layout requires.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "audit/tiles.h"
#include "base/file_system.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "tests/fuzz/fuzz_ledger.h"

namespace {

using lethe::fuzz::Violated;
namespace ledger = lethe::ledger;
namespace audit = lethe::audit;
namespace fs = std::filesystem;

bool SafePath(std::string_view path) {
  if (path.empty() || path.size() > 200) return false;
  for (char c : path) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '/' || c == '+';
    if (!ok) return false;
  }
  int depth = 0;
  for (absl::string_view part : absl::StrSplit(absl::string_view(path.data(), path.size()), '/')) {
    if (part.empty() || part == "." || part == "..") return false;
    if (++depth > 8) return false;
  }
  return true;
}

// Writes the archive's files under `dir`. Files that cannot be written are skipped.
void WriteArchive(const std::string& dir, lethe::fuzz::Reader& in) {
  while (!in.empty()) {
    const std::string path(in.Bytes(in.U8()));
    const std::string_view content = in.Chunk32();
    if (!SafePath(path)) continue;
    std::string name = path;
    std::string data(content);
    if (path == "checkpoint+sign") {
      // A body the parser accepts gets a valid signature; anything else is written as is.
      name = "checkpoint";
      auto cp = ledger::ParseCheckpointUnverified(data + "\n\xE2\x80\x94 x AAAA\n");
      if (cp.ok()) data = ledger::SignCheckpoint(*cp, lethe::fuzz::ControlPlaneKey());
    }
    const fs::path full = fs::path(dir) / name;
    std::error_code ec;
    fs::create_directories(full.parent_path(), ec);
    if (ec) continue;
    (void)lethe::fuzz::WriteWholeFile(full.string(), data);
  }
}

// Exports the chained entries with a signed checkpoint. False when the export fails.
bool WriteExport(const std::string& dir, std::vector<std::string> entries, bool fix_bodies) {
  entries = lethe::fuzz::ChainEntries(entries, fix_bodies);
  ledger::CompactRange tree;
  for (const std::string& e : entries) tree.Append(ledger::LeafHash(e));
  const ledger::Checkpoint cp{lethe::fuzz::kOrigin, entries.size(), tree.Root()};
  const std::string note = ledger::SignCheckpoint(cp, lethe::fuzz::ControlPlaneKey());
  return audit::ExportTiles(dir, entries.size(), note, [&](uint64_t i) -> absl::StatusOr<std::string> {
           return entries[i];
         }).ok();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > lethe::fuzz::kMaxInput || size == 0) return -1;
  lethe::fuzz::QuietProtobuf();
  lethe::fuzz::Reader in(data, size);
  const uint8_t mode = in.U8();
  lethe::fuzz::TempDir tmp;
  const std::string dir = tmp.path() + "/export";
  if ((mode & 1) == 0) {
    std::error_code ec;
    fs::create_directory(dir, ec);
    WriteArchive(dir, in);
  } else {
    std::vector<std::string> entries;
    while (!in.empty()) {
      std::string_view e = in.Chunk16();
      if (e.empty()) break;
      entries.emplace_back(e);
    }
    if (!WriteExport(dir, std::move(entries), (mode & 2) != 0)) return 0;
    WriteArchive(dir, in);
  }

  auto report = audit::VerifyTiles(dir, lethe::fuzz::ControlPlaneKey().public_key());
  if (!report.ok()) return 0;
  auto note = lethe::ReadFile(dir + "/checkpoint");
  if (!note.ok()) Violated("verified an export whose checkpoint cannot be read");
  auto cp = ledger::ParseCheckpointUnverified(*note);
  if (!cp.ok()) Violated("verified an export whose checkpoint does not parse");
  if (report->size != cp->size || report->root != cp->root)
    Violated("verified an export as another tree than its checkpoint's");
  if (report->audit.entries != cp->size) Violated("the audit of a verified export miscounts");
  if (report->bundles != (cp->size + audit::kTileWidth - 1) / audit::kTileWidth)
    Violated("miscounted entry bundles");
  return 0;
}
