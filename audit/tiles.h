// Static export of the ledger as a C2SP tlog-tiles log, and its offline verifier.
//
// Layout of an exported directory for a tree of `s` entries (the C2SP tlog-tiles spec):
//
//   checkpoint                    the signed checkpoint note (C2SP tlog-checkpoint), verbatim;
//                                 its tree size is s
//   tile/<L>/<N>                  full hash tile: 256 hashes of 32 bytes (8192 bytes)
//   tile/<L>/<N>.p/<W>            partial hash tile: W (1..255) hashes
//   tile/entries/<N>[.p/<W>]      entry bundle: the entries of level-0 tile N, each as a
//                                 big-endian uint16 length followed by the entry's exact bytes
//   lethe/agents.json             Lethe addition: the agent keys enrolled by the entries:
//                                 {"format": "lethe.agents.v1", "tree_size": s, "agents": [
//                                   {"entry": <index of the AgentEnrolled entry>, "domain",
//                                    "key_id", "public_key": <base64 of the raw 32 bytes>,
//                                    "public_key_pem"}, ...]}, in entry order
//   lethe/README.txt              Lethe addition: this layout, in words, for a recipient
//
//   L   level, decimal 0..63, no leading zeros.
//   N   tile index as 3-digit groups, all but the last prefixed with "x":
//       5 -> "005", 1000 -> "x001/000", 1234067 -> "x001/x234/067".
//   W   width of a partial tile, decimal 1..255, no leading zeros.
//
// Hash i of tile n at level l is MTH(D[(n*256+i)*256^l : (n*256+i+1)*256^l]) (RFC 9162
// Merkle Tree Hash): level 0 holds leaf hashes SHA-256(0x00 || entry); a level-l hash is the
// MTH of one full tile of level l-1. At level l there are floor(s / 256^l) hashes: the full
// tiles, then one partial tile of width floor(s / 256^l) mod 256 unless that is 0. Partial
// tiles are never hashed into the level above; empty tiles are not written.
//
// Thread safety: free functions without shared state; safe to call concurrently on
// different directories.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "audit/auditor.h"
#include "crypto/crypto.h"

namespace lethe::audit {

inline constexpr int kTileHeight = 8;
inline constexpr uint64_t kTileWidth = 256;          // hashes (or entries) in a full tile
inline constexpr size_t kMaxBundledEntrySize = 65535;  // uint16 length prefix

// Path of a hash tile relative to the export directory, e.g. "tile/0/x001/x234/067.p/17".
// Requires 0 <= level <= 63 and 0 <= partial_width <= 255 (0 means a full tile).
std::string TilePath(int level, uint64_t index, int partial_width);
// Path of an entry bundle, e.g. "tile/entries/005.p/17". Same rules as level-0 tiles.
std::string EntryBundlePath(uint64_t index, int partial_width);

// Writes the tiled log of the first `size` entries into `out_dir`. `entry_at(i)` returns the
// exact bytes of entry i, for i in [0, size), called once each, in order. `checkpoint_note`
// must be a checkpoint of exactly `size` entries (kInvalidArgument otherwise) whose root is
// the Merkle root of those entries (kFailedPrecondition otherwise); it is written verbatim.
// Every entry must parse as a v1::LedgerEntry (for agents.json; kDataLoss naming the entry
// otherwise) and be at most 65535 bytes (kFailedPrecondition naming the entry).
//
// `out_dir` is created if absent and must be empty otherwise (kFailedPrecondition). Every
// file is written once, then fsync'd, and the checkpoint is written last: on failure the
// directory is left incomplete, without a checkpoint, and the error says so.
absl::Status ExportTiles(const std::string& out_dir, uint64_t size,
                         const std::string& checkpoint_note,
                         const std::function<absl::StatusOr<std::string>(uint64_t)>& entry_at);

struct TilesReport {
  uint64_t size = 0;           // tree size of the checkpoint (= entries verified)
  uint64_t full_tiles = 0;     // hash tiles, all levels
  uint64_t partial_tiles = 0;  // hash tiles, all levels
  uint64_t bundles = 0;        // entry bundles, full and partial
  std::string root;            // 32 raw bytes, recomputed from the tiles
  AuditReport audit;           // the Auditor's verdict over the bundled entries
};

// Verifies an exported directory with nothing but lethed's public key, in this order:
//   1. `checkpoint` carries a valid signature by `key` under the key name of its origin
//      (kPermissionDenied otherwise);
//   2. the directory holds exactly the files a tree of the checkpoint's size has: no tile or
//      bundle missing, no stray file or directory;
//   3. the root recomputed from the tiles equals the checkpoint's root, each full tile
//      hashes to its entry in the level above (top down, so the blame lands on the file that
//      changed), and each bundled entry hashes to its leaf in the level-0 tile;
//   4. the entries pass the Auditor (chain, receipts against enrolled keys, completions);
//   5. lethe/agents.json lists exactly the keys of the AgentEnrolled entries.
// Any mismatch is kDataLoss naming the file (and the entry, where there is one).
// lethe/README.txt must exist; its text is documentation and is not checked.
absl::StatusOr<TilesReport> VerifyTiles(const std::string& dir, const crypto::Ed25519PublicKey& key,
                                        AuditOptions audit = {});

}  // namespace lethe::audit
