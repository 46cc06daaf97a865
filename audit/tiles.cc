#include "audit/tiles.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_system.h"
#include "base/status.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "lethe/v1/ledger.pb.h"
#include "nlohmann/json.hpp"

namespace lethe::audit {
namespace fs = std::filesystem;
namespace {

using Json = nlohmann::json;  // std::map objects: keys come out sorted

constexpr size_t kHashSize = crypto::kSha256Size;
constexpr int kMaxLevel = 63;
constexpr char kCheckpointPath[] = "checkpoint";
constexpr char kAgentsPath[] = "lethe/agents.json";
constexpr char kReadmePath[] = "lethe/README.txt";

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(Av(what), " ", path, ": ", std::strerror(errno)));
}

// "005", "x001/000", "x001/x234/067".
std::string IndexPath(uint64_t index) {
  std::vector<std::string> groups;
  do {
    const unsigned group = static_cast<unsigned>(index % 1000);
    index /= 1000;
    char buf[4] = {static_cast<char>('0' + group / 100), static_cast<char>('0' + group / 10 % 10),
                   static_cast<char>('0' + group % 10), '\0'};
    groups.emplace_back(buf);
  } while (index > 0);
  std::string out;
  for (size_t i = groups.size(); i-- > 0;) {
    if (i > 0) absl::StrAppend(&out, "x", groups[i], "/");
    else absl::StrAppend(&out, groups[i]);
  }
  return out;
}

std::string WithWidth(std::string path, int partial_width) {
  if (partial_width > 0) absl::StrAppend(&path, ".p/", partial_width);
  return path;
}

// Number of hashes at `level` in a tree of `size` leaves: floor(size / 256^level).
uint64_t HashesAtLevel(uint64_t size, int level) {
  const int shift = kTileHeight * level;
  return shift >= 64 ? 0 : size >> shift;
}

// The tiles of one level of a tree: `full` full tiles, then one of width `partial` if > 0.
struct LevelShape {
  uint64_t full = 0;
  int partial = 0;
};

std::vector<LevelShape> Shape(uint64_t size) {
  std::vector<LevelShape> out;
  for (int l = 0; l <= kMaxLevel; ++l) {
    const uint64_t n = HashesAtLevel(size, l);
    if (n == 0) break;
    out.push_back(LevelShape{n / kTileWidth, static_cast<int>(n % kTileWidth)});
  }
  return out;
}

// MTH of `n` (a power of two) consecutive 32-byte hashes starting at `hashes`.
std::string PerfectRoot(std::string_view hashes, size_t n) {
  std::string buf(hashes.substr(0, n * kHashSize));
  for (size_t width = n; width > 1; width /= 2) {
    for (size_t i = 0; i < width / 2; ++i) {
      const std::string h = ledger::NodeHash(std::string_view(buf).substr(2 * i * kHashSize, kHashSize),
                                     std::string_view(buf).substr((2 * i + 1) * kHashSize, kHashSize));
      std::memcpy(buf.data() + i * kHashSize, h.data(), kHashSize);
    }
  }
  buf.resize(kHashSize);
  return buf;
}

// The tree's root from the partial tiles alone: every perfect subtree of the size's binary
// decomposition lies inside the partial tile of its level. `partials[l]` holds the hashes of
// the partial tile at level l (empty when there is none).
std::string RootFromPartialTiles(uint64_t size, const std::vector<LevelShape>& shape,
                                 const std::vector<std::string>& partials) {
  if (size == 0) return ledger::EmptyRoot();
  std::vector<std::string> peaks;  // largest first
  for (int k = 63; k >= 0; --k) {
    if (!((size >> k) & 1)) continue;
    const int level = k / kTileHeight;
    const size_t count = size_t{1} << (k % kTileHeight);
    const uint64_t start = size & ~((uint64_t{2} << k) - 1);  // leaves below bit k+1 cleared
    const uint64_t offset = (start >> (kTileHeight * level)) - shape[level].full * kTileWidth;
    peaks.push_back(PerfectRoot(std::string_view(partials[level]).substr(offset * kHashSize), count));
  }
  std::string h = peaks.back();
  for (size_t i = peaks.size() - 1; i-- > 0;) h = ledger::NodeHash(peaks[i], h);
  return h;
}

// Writes the files of an export, each once, and fsyncs them all (files, then directories,
// deepest first) in SyncAll: one pass of fsyncs after all writes lets the file system batch
// its journal commits instead of committing once per file.
class DirWriter {
 public:
  explicit DirWriter(std::string root) : root_(std::move(root)) {}

  absl::Status Write(const std::string& rel, std::string_view data) {
    LETHE_RETURN_IF_ERROR(MakeParents(rel));
    const std::string path = root_ + "/" + rel;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot create", path);
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        absl::Status st = Errno("cannot write", path);
        ::close(fd);
        return st;
      }
      off += static_cast<size_t>(n);
    }
    if (::close(fd) != 0) return Errno("cannot close", path);
    files_.push_back(path);
    return absl::OkStatus();
  }

  absl::Status SyncAll() {
    for (const std::string& path : files_) LETHE_RETURN_IF_ERROR(Fsync(path, O_RDONLY));
    files_.clear();
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it)  // children sort after parents
      LETHE_RETURN_IF_ERROR(Fsync(root_ + "/" + *it, O_RDONLY | O_DIRECTORY));
    return Fsync(root_, O_RDONLY | O_DIRECTORY);
  }

  static absl::Status Fsync(const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open", path);
    if (::fsync(fd) != 0) {
      absl::Status st = Errno("cannot fsync", path);
      ::close(fd);
      return st;
    }
    ::close(fd);
    return absl::OkStatus();
  }

 private:
  absl::Status MakeParents(const std::string& rel) {
    for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', slash + 1)) {
      std::string dir = rel.substr(0, slash);
      if (dirs_.count(dir)) continue;
      const std::string path = root_ + "/" + dir;
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return Errno("cannot create directory", path);
      dirs_.insert(std::move(dir));
    }
    return absl::OkStatus();
  }

  const std::string root_;
  std::vector<std::string> files_;  // written, not yet fsync'd
  std::set<std::string> dirs_;      // relative to root_
};

// One AgentEnrolled entry, as listed in lethe/agents.json.
struct EnrolledAgent {
  uint64_t entry = 0;
  std::string domain;
  std::string key_id;
  crypto::Ed25519PublicKey key;
};

Json AgentJson(const EnrolledAgent& a) {
  return Json{{"entry", a.entry},
              {"domain", a.domain},
              {"key_id", a.key_id},
              {"public_key", crypto::Base64(a.key.raw())},
              {"public_key_pem", a.key.ToPem()}};
}

Json AgentsJson(uint64_t size, const std::vector<EnrolledAgent>& agents) {
  Json list = Json::array();
  for (const auto& a : agents) list.push_back(AgentJson(a));
  return Json{{"format", "lethe.agents.v1"}, {"tree_size", size}, {"agents", std::move(list)}};
}

// Collects the AgentEnrolled entries of a log. The entry has already been parsed.
absl::Status NoteAgent(uint64_t seq, const v1::LedgerEntry& e, std::vector<EnrolledAgent>* out) {
  if (e.body_case() != v1::LedgerEntry::kAgentEnrolled) return absl::OkStatus();
  const auto& a = e.agent_enrolled();
  auto key = crypto::Ed25519PublicKey::FromRaw(a.public_key());
  if (!key.ok())
    return absl::DataLossError(absl::StrCat("entry ", seq, ": AgentEnrolled holds no valid Ed25519 key"));
  out->push_back(EnrolledAgent{seq, a.domain(), a.key_id(), *std::move(key)});
  return absl::OkStatus();
}

std::string Readme(const ledger::Checkpoint& cp, const std::string& claimed_key) {
  std::string out = absl::StrCat(
      "Lethe ledger export: a C2SP tlog-tiles log (https://c2sp.org/tlog-tiles).\n"
      "\n"
      "Origin:    ", cp.origin, "\n",
      "Tree size: ", cp.size, " entries\n"
      "\n"
      "checkpoint                 The signed checkpoint of this tree (C2SP tlog-checkpoint):\n"
      "                           origin, tree size and base64 Merkle root (RFC 9162), then\n"
      "                           lethed's Ed25519 signature under the key name <origin>.\n"
      "tile/<L>/<N>[.p/<W>]       Hash tiles. Level L = 0 holds the leaf hashes\n"
      "                           SHA-256(0x00 || entry); a hash at level L >= 1 is the Merkle\n"
      "                           root of one full tile of level L-1. A full tile is 256 hashes\n"
      "                           of 32 bytes; <N>.p/<W> is a partial tile of W hashes at the\n"
      "                           right edge of the tree. N is written in 3-digit groups, all\n"
      "                           but the last prefixed with x: tile 1234067 is x001/x234/067.\n"
      "tile/entries/<N>[.p/<W>]   Entry bundles: the entries of level-0 tile N, each as a\n"
      "                           big-endian uint16 length and the entry's exact bytes. Entry i\n"
      "                           is number i mod 256 of bundle i div 256. Each entry is a\n"
      "                           serialized lethe.v1.LedgerEntry (proto/lethe/v1/ledger.proto):\n"
      "                           entry 0 is LogCreated, and every entry carries the leaf hash\n"
      "                           of the one before it (prev_hash).\n"
      "lethe/agents.json          The agent keys enrolled by the AgentEnrolled entries of this\n"
      "                           tree (entry index, domain, key id, raw key in base64, PEM):\n"
      "                           the keys that sign the receipts recorded in the log.\n"
      "lethe/README.txt           This file (not covered by any signature).\n"
      "\n"
      "To verify, obtain lethed's public key independently of this directory, check the\n"
      "checkpoint's signature with it, recompute the root from the tiles, check every entry\n"
      "against its leaf hash, then audit the entries: the hash chain, every receipt's\n"
      "signature against the key enrolled for its domain before it, and every completion.\n"
      "Lethe's VerifyTiles (audit/tiles.h) does all of this.\n");
  if (!claimed_key.empty())
    absl::StrAppend(&out,
                    "\nEntry 0 names this control-plane key (note verifier key format). Compare it\n"
                    "with the key you obtained; it proves nothing by being written here:\n  ",
                    claimed_key, "\n");
  return out;
}

std::string BigEndian16(size_t v) {
  return std::string{static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}

// Builds the tiles of levels >= 1 as the level-0 tiles complete.
class TileStack {
 public:
  explicit TileStack(DirWriter* writer) : writer_(writer) {}

  // Adds hash `h` at `level` (>= 1); writes and hashes upwards each tile it completes.
  absl::Status Add(int level, std::string h) {
    if (level > kMaxLevel) return absl::InternalError("tree taller than 64 levels");
    if (static_cast<size_t>(level) >= levels_.size()) levels_.resize(level + 1);
    Level& lv = levels_[level];
    lv.hashes += h;
    if (lv.hashes.size() < kTileWidth * kHashSize) return absl::OkStatus();
    LETHE_RETURN_IF_ERROR(writer_->Write(TilePath(level, lv.index, 0), lv.hashes));
    std::string up = PerfectRoot(lv.hashes, kTileWidth);
    lv.hashes.clear();
    ++lv.index;
    return Add(level + 1, std::move(up));
  }

  // Writes the partial tile of every level.
  absl::Status Finish() {
    for (size_t l = 1; l < levels_.size(); ++l) {
      const Level& lv = levels_[l];
      if (lv.hashes.empty()) continue;
      LETHE_RETURN_IF_ERROR(writer_->Write(
          TilePath(static_cast<int>(l), lv.index, static_cast<int>(lv.hashes.size() / kHashSize)),
          lv.hashes));
    }
    return absl::OkStatus();
  }

 private:
  struct Level {
    uint64_t index = 0;  // of the tile being filled
    std::string hashes;  // its hashes so far
  };
  DirWriter* writer_;
  std::vector<Level> levels_;
};

absl::Status ExportInto(const std::string& out_dir, uint64_t size, const ledger::Checkpoint& cp,
                        const std::string& checkpoint_note,
                        const std::function<absl::StatusOr<std::string>(uint64_t)>& entry_at) {
  DirWriter writer(out_dir);
  TileStack upper(&writer);
  ledger::CompactRange tree;
  std::vector<EnrolledAgent> agents;
  std::string claimed_key;
  std::string tile;
  std::string bundle;
  v1::LedgerEntry entry;
  for (uint64_t n = 0; n * kTileWidth < size; ++n) {
    const uint64_t width = std::min<uint64_t>(kTileWidth, size - n * kTileWidth);
    tile.clear();
    bundle.clear();
    for (uint64_t i = 0; i < width; ++i) {
      const uint64_t seq = n * kTileWidth + i;
      auto bytes = entry_at(seq);
      if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat("reading entry ", seq));
      if (bytes->size() > kMaxBundledEntrySize)
        return absl::FailedPreconditionError(absl::StrCat(
            "entry ", seq, " is ", bytes->size(), " bytes; an entry bundle holds entries of at most ",
            kMaxBundledEntrySize, " bytes"));
      if (!entry.ParseFromString(*bytes))
        return absl::DataLossError(absl::StrCat("entry ", seq, " does not parse as a LedgerEntry"));
      LETHE_RETURN_IF_ERROR(NoteAgent(seq, entry, &agents));
      if (seq == 0 && entry.body_case() == v1::LedgerEntry::kLogCreated) {
        auto k = crypto::Ed25519PublicKey::FromRaw(entry.log_created().control_plane_public_key());
        if (k.ok()) claimed_key = ledger::VerifierKey(entry.log_created().origin(), *k);
      }
      std::string leaf = ledger::LeafHash(*bytes);
      tile += leaf;
      tree.Append(std::move(leaf));
      bundle += BigEndian16(bytes->size());
      bundle += *bytes;
    }
    const int partial = width == kTileWidth ? 0 : static_cast<int>(width);
    LETHE_RETURN_IF_ERROR(writer.Write(EntryBundlePath(n, partial), bundle));
    LETHE_RETURN_IF_ERROR(writer.Write(TilePath(0, n, partial), tile));
    if (partial == 0) LETHE_RETURN_IF_ERROR(upper.Add(1, PerfectRoot(tile, kTileWidth)));
  }
  LETHE_RETURN_IF_ERROR(upper.Finish());
  if (tree.Root() != cp.root)
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint's root ", crypto::Hex(cp.root), " is not the Merkle root ",
        crypto::Hex(tree.Root()), " of the first ", size, " entries"));

  std::string agents_json;
  try {
    agents_json = AgentsJson(size, agents).dump(2) + "\n";
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat("cannot encode agents.json: ", e.what()));
  }
  LETHE_RETURN_IF_ERROR(writer.Write(kAgentsPath, agents_json));
  LETHE_RETURN_IF_ERROR(writer.Write(kReadmePath, Readme(cp, claimed_key)));
  LETHE_RETURN_IF_ERROR(writer.SyncAll());
  // The checkpoint last: a directory that has one is complete.
  LETHE_RETURN_IF_ERROR(writer.Write(kCheckpointPath, checkpoint_note));
  return writer.SyncAll();
}

// ---- verification ---------------------------------------------------------------------

absl::Status Corrupt(std::string_view file, std::string_view what) {
  return absl::DataLossError(absl::StrCat(Av(file), ": ", Av(what)));
}

// Reads the file at `rel`, which must hold exactly `width` hashes.
absl::StatusOr<std::string> ReadTile(const std::string& dir, const std::string& rel, uint64_t width) {
  auto data = lethe::ReadFile(dir + "/" + rel);
  if (!data.ok()) return Corrupt(rel, absl::StrCat("cannot read: ", data.status().message()));
  if (data->size() != width * kHashSize)
    return Corrupt(rel, absl::StrCat(data->size(), " bytes; a tile of ", width, " hashes has ",
                                     width * kHashSize));
  return std::move(*data);
}

// How many files an export of the tree of this shape has: checkpoint, agents.json and
// README.txt, each level's hash tiles, and as many entry bundles as level-0 tiles.
uint64_t ExportFileCount(const std::vector<LevelShape>& shape) {
  uint64_t n = 3;
  for (size_t l = 0; l < shape.size(); ++l) {
    const uint64_t tiles = shape[l].full + (shape[l].partial > 0 ? 1 : 0);
    n += l == 0 ? 2 * tiles : tiles;
  }
  return n;
}

// The number of entries (files, directories and anything else) under `dir`, counted up to
// `limit` (the count stops there).
absl::StatusOr<uint64_t> CountEntries(const std::string& dir, uint64_t limit) {
  uint64_t n = 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end && n < limit; it.increment(ec)) ++n;
  if (ec) return absl::UnavailableError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  return n;
}

// Every file and directory under `dir`, relative to it, must be one the tree has.
absl::Status CheckFileSet(const std::string& dir, const std::set<std::string>& want_files,
                          uint64_t size) {
  std::set<std::string> want_dirs;
  for (const auto& f : want_files)
    for (size_t slash = f.find('/'); slash != std::string::npos; slash = f.find('/', slash + 1))
      want_dirs.insert(f.substr(0, slash));

  std::vector<std::string> unexpected;
  std::set<std::string> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    // The iterator's paths are `dir` followed by the relative path: cut lexically (no
    // symlink resolution).
    std::string rel = it->path().generic_string().substr(dir.size());
    rel.erase(0, rel.find_first_not_of('/'));
    std::error_code type_ec;
    const fs::file_status st = it->symlink_status(type_ec);
    if (fs::is_directory(st)) {
      if (!want_dirs.count(rel)) unexpected.push_back(rel + "/");
    } else if (fs::is_regular_file(st)) {
      if (want_files.count(rel)) found.insert(rel);
      else unexpected.push_back(rel);
    } else {
      unexpected.push_back(rel + " (not a regular file)");
    }
  }
  if (ec) return absl::UnavailableError(absl::StrCat("cannot list ", dir, ": ", ec.message()));

  std::vector<std::string> missing;
  for (const auto& f : want_files)
    if (!found.count(f)) missing.push_back(f);
  if (missing.empty() && unexpected.empty()) return absl::OkStatus();
  std::sort(unexpected.begin(), unexpected.end());
  constexpr size_t kShown = 8;
  auto list = [](std::vector<std::string> v) {
    const size_t total = v.size();
    if (total > kShown) v.resize(kShown);
    std::string s = absl::StrJoin(v, ", ");
    if (total > kShown) absl::StrAppend(&s, " and ", total - kShown, " more");
    return s;
  };
  std::string msg = absl::StrCat("files do not match a tree of ", size, " entries:");
  if (!missing.empty()) absl::StrAppend(&msg, " missing ", list(missing), ";");
  if (!unexpected.empty()) absl::StrAppend(&msg, " unexpected ", list(unexpected), ";");
  msg.pop_back();
  return absl::DataLossError(msg);
}

absl::Status CheckAgentsJson(const std::string& dir, const Json& want) {
  auto data = lethe::ReadFile(dir + "/" + kAgentsPath);
  if (!data.ok()) return Corrupt(kAgentsPath, "cannot read");
  const Json got = Json::parse(*data, nullptr, /*allow_exceptions=*/false);
  if (got.is_discarded()) return Corrupt(kAgentsPath, "is not valid JSON");
  if (got == want) return absl::OkStatus();
  const Json& want_list = want["agents"];
  if (!got.is_object() || !got.contains("agents") || !got["agents"].is_array())
    return Corrupt(kAgentsPath, "is not an object with an \"agents\" array");
  const Json& got_list = got["agents"];
  for (size_t i = 0; i < std::min(got_list.size(), want_list.size()); ++i) {
    if (got_list[i] == want_list[i]) continue;
    return Corrupt(kAgentsPath,
                   absl::StrCat("agent ", i, " differs from AgentEnrolled entry ",
                                want_list[i]["entry"].get<uint64_t>(), " (domain ",
                                want_list[i]["domain"].get<std::string>(), ", key id ",
                                want_list[i]["key_id"].get<std::string>(), ")"));
  }
  if (got_list.size() != want_list.size())
    return Corrupt(kAgentsPath, absl::StrCat("lists ", got_list.size(), " agents; the entries enrol ",
                                             want_list.size()));
  return Corrupt(kAgentsPath, "does not match the AgentEnrolled entries (other fields differ)");
}

}  // namespace

std::string TilePath(int level, uint64_t index, int partial_width) {
  return WithWidth(absl::StrCat("tile/", level, "/", IndexPath(index)), partial_width);
}

std::string EntryBundlePath(uint64_t index, int partial_width) {
  return WithWidth(absl::StrCat("tile/entries/", IndexPath(index)), partial_width);
}

absl::Status ExportTiles(const std::string& out_dir, uint64_t size,
                         const std::string& checkpoint_note,
                         const std::function<absl::StatusOr<std::string>(uint64_t)>& entry_at) {
  auto cp = ledger::ParseCheckpointUnverified(checkpoint_note);
  if (!cp.ok()) return Annotate(cp.status(), "export: checkpoint");
  if (cp->size != size)
    return absl::InvalidArgumentError(absl::StrCat("export: the checkpoint is of ", cp->size,
                                                   " entries, not of the ", size, " to export"));
  std::error_code ec;
  const bool existed = fs::exists(out_dir, ec);
  if (existed) {
    if (!fs::is_directory(out_dir, ec) || !fs::is_empty(out_dir, ec))
      return absl::FailedPreconditionError(
          absl::StrCat("export: ", out_dir, " exists and is not an empty directory"));
  } else if (!fs::create_directories(out_dir, ec)) {
    return absl::UnavailableError(absl::StrCat("export: cannot create ", out_dir, ": ", ec.message()));
  }
  absl::Status st = ExportInto(out_dir, size, *cp, checkpoint_note, entry_at);
  if (st.ok() && !existed) {
    std::string parent = fs::path(out_dir).lexically_normal().parent_path().string();
    st = DirWriter::Fsync(parent.empty() ? "." : parent, O_RDONLY | O_DIRECTORY);
  }
  if (!st.ok())
    return Annotate(st, absl::StrCat("export to ", out_dir,
                                     " failed; the directory is left incomplete, without a "
                                     "checkpoint (delete it before retrying)"));
  return absl::OkStatus();
}

absl::StatusOr<TilesReport> VerifyTiles(const std::string& dir, const crypto::Ed25519PublicKey& key,
                                        AuditOptions audit_options) {
  // 1. The checkpoint, signed by `key` under its origin.
  auto note = lethe::ReadFile(dir + "/" + kCheckpointPath);
  if (!note.ok()) return Corrupt(kCheckpointPath, "cannot read");
  auto unverified = ledger::ParseCheckpointUnverified(*note);
  if (!unverified.ok()) return Corrupt(kCheckpointPath, std::string(unverified.status().message()));
  auto verified = ledger::VerifyCheckpoint(*note, unverified->origin, key);
  if (!verified.ok()) {
    if (verified.status().code() == absl::StatusCode::kPermissionDenied)
      return Annotate(verified.status(), kCheckpointPath);
    return Corrupt(kCheckpointPath, std::string(verified.status().message()));
  }
  const ledger::Checkpoint cp = *std::move(verified);
  const uint64_t size = cp.size;

  // 2. Exactly the files of a tree of that size. The signed size alone must not decide how
  // much is allocated: when far more files are missing than a message can list, say so
  // before naming them all (a checkpoint of 2^40 entries over an empty directory would
  // otherwise build a set of 2^33 paths).
  const std::vector<LevelShape> shape = Shape(size);
  const uint64_t want_files = ExportFileCount(shape);
  constexpr uint64_t kMissingListed = 1024;  // beyond this many missing, just count them
  LETHE_ASSIGN_OR_RETURN(const uint64_t have, CountEntries(dir, want_files));
  if (want_files > have + kMissingListed)
    return absl::DataLossError(absl::StrCat("files do not match a tree of ", size, " entries: it has ",
                                            want_files, " files, the directory holds ", have,
                                            " files and directories"));
  TilesReport report;
  report.size = size;
  std::set<std::string> want = {kCheckpointPath, kAgentsPath, kReadmePath};
  for (size_t l = 0; l < shape.size(); ++l) {
    const int level = static_cast<int>(l);
    for (uint64_t n = 0; n < shape[l].full; ++n) {
      want.insert(TilePath(level, n, 0));
      if (l == 0) want.insert(EntryBundlePath(n, 0));
    }
    report.full_tiles += shape[l].full;
    if (shape[l].partial > 0) {
      want.insert(TilePath(level, shape[l].full, shape[l].partial));
      if (l == 0) want.insert(EntryBundlePath(shape[l].full, shape[l].partial));
      ++report.partial_tiles;
    }
  }
  if (!shape.empty()) report.bundles = shape[0].full + (shape[0].partial > 0 ? 1 : 0);
  LETHE_RETURN_IF_ERROR(CheckFileSet(dir, want, size));

  // 3a. The root from the partial tiles (each perfect subtree of the root lies in one).
  std::vector<std::string> partials(shape.size());
  std::vector<std::string> partial_paths;
  for (size_t l = 0; l < shape.size(); ++l) {
    if (shape[l].partial == 0) continue;
    const std::string path = TilePath(static_cast<int>(l), shape[l].full, shape[l].partial);
    LETHE_ASSIGN_OR_RETURN(partials[l], ReadTile(dir, path, shape[l].partial));
    partial_paths.push_back(path);
  }
  report.root = RootFromPartialTiles(size, shape, partials);
  if (report.root != cp.root)
    return absl::DataLossError(absl::StrCat(
        "the root recomputed from the partial tiles (", absl::StrJoin(partial_paths, ", "),
        ") differs from the checkpoint's root: one of them was altered"));

  // 3b. Levels >= 1, top down: each full tile hashes to its entry in the level above, which
  // is already authenticated. upper[l] holds every hash of level l.
  std::vector<std::string> upper(shape.size());
  auto parent_path = [&](size_t level, uint64_t n) {  // tile holding hash n of `level`
    const uint64_t t = n / kTileWidth;
    return TilePath(static_cast<int>(level), t, t == shape[level].full ? shape[level].partial : 0);
  };
  auto check_full_tile = [&](size_t level, uint64_t n, const std::string& path,
                             std::string_view hashes) -> absl::Status {
    const std::string_view want_hash = std::string_view(upper[level + 1]).substr(n * kHashSize, kHashSize);
    if (PerfectRoot(hashes, kTileWidth) != want_hash)
      return Corrupt(path, absl::StrCat("does not hash to hash ", n % kTileWidth, " of ",
                                        parent_path(level + 1, n), " (the tile above)"));
    return absl::OkStatus();
  };
  for (size_t l = shape.size(); l-- > 1;) {
    upper[l].reserve((shape[l].full * kTileWidth + shape[l].partial) * kHashSize);
    for (uint64_t n = 0; n < shape[l].full; ++n) {
      const std::string path = TilePath(static_cast<int>(l), n, 0);
      LETHE_ASSIGN_OR_RETURN(std::string hashes, ReadTile(dir, path, kTileWidth));
      LETHE_RETURN_IF_ERROR(check_full_tile(l, n, path, hashes));
      upper[l] += hashes;
    }
    upper[l] += partials[l];
  }

  // 3c + 4 + 5. Level 0 and the bundles, in order: each full tile against level 1, each
  // entry against its leaf hash; then the entries through the Auditor.
  Auditor auditor(key, *note, audit_options);
  std::vector<EnrolledAgent> agents;
  v1::LedgerEntry entry;
  const uint64_t level0_tiles = report.bundles;
  for (uint64_t n = 0; n < level0_tiles; ++n) {
    const bool full = n < shape[0].full;
    const uint64_t width = full ? kTileWidth : shape[0].partial;
    const std::string tile_path = TilePath(0, n, full ? 0 : shape[0].partial);
    std::string tile;
    if (full) {
      LETHE_ASSIGN_OR_RETURN(tile, ReadTile(dir, tile_path, kTileWidth));
      LETHE_RETURN_IF_ERROR(check_full_tile(0, n, tile_path, tile));
    } else {
      tile = partials[0];
    }
    const std::string bundle_path = EntryBundlePath(n, full ? 0 : shape[0].partial);
    auto bundle = lethe::ReadFile(dir + "/" + bundle_path);
    if (!bundle.ok()) return Corrupt(bundle_path, "cannot read");
    const std::string_view b = *bundle;
    size_t pos = 0;
    for (uint64_t i = 0; i < width; ++i) {
      const uint64_t seq = n * kTileWidth + i;
      if (b.size() - pos < 2)
        return Corrupt(bundle_path, absl::StrCat("ends before entry ", seq, " (", width, " expected)"));
      const size_t len = (size_t{static_cast<unsigned char>(b[pos])} << 8) |
                         static_cast<unsigned char>(b[pos + 1]);
      pos += 2;
      if (b.size() - pos < len)
        return Corrupt(bundle_path, absl::StrCat("entry ", seq, " is cut short: its length says ",
                                                 len, " bytes, ", b.size() - pos, " remain"));
      const std::string_view bytes = b.substr(pos, len);
      pos += len;
      if (ledger::LeafHash(bytes) != std::string_view(tile).substr(i * kHashSize, kHashSize))
        return Corrupt(bundle_path, absl::StrCat("entry ", seq, " does not hash to its leaf hash in ",
                                                 tile_path));
      absl::Status st = auditor.Add(seq, bytes);
      if (!st.ok()) return Annotate(st, bundle_path);
      if (!entry.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        return Corrupt(bundle_path, absl::StrCat("entry ", seq, " does not parse"));
      absl::Status agent = NoteAgent(seq, entry, &agents);
      if (!agent.ok()) return Annotate(agent, bundle_path);
    }
    if (pos != b.size())
      return Corrupt(bundle_path, absl::StrCat(b.size() - pos, " bytes after its last entry"));
  }
  auto audit = auditor.Finish();
  if (!audit.ok()) return Annotate(audit.status(), "audit");
  report.audit = *std::move(audit);

  Json want_agents;
  try {
    want_agents = AgentsJson(size, agents);
  } catch (const Json::exception& e) {
    return Corrupt(kAgentsPath, absl::StrCat("cannot encode the enrolled agents: ", e.what()));
  }
  LETHE_RETURN_IF_ERROR(CheckAgentsJson(dir, want_agents));
  return report;
}

}  // namespace lethe::audit
