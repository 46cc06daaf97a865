// RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs.
//
// Terms follow RFC 9162 §2.1: MTH (the Merkle Tree Hash), PATH (inclusion proof, §2.1.3) and
// PROOF/SUBPROOF (consistency proof, §2.1.4). Every hash is 32 raw bytes of SHA-256. Proofs are
// ordered as the RFC orders them: the hash nearest the leaf first, the one nearest the root last.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lethe::ledger {

// SHA-256(0x00 || data).
std::string LeafHash(std::string_view data);
// The same into out[0..32), without allocating.
void LeafHashInto(std::string_view data, char* out);
// SHA-256(0x01 || left || right).
std::string NodeHash(std::string_view left, std::string_view right);
// Root of the empty tree: SHA-256 of the empty string.
std::string EmptyRoot();

// The compact range [0, size): the roots of the perfect subtrees that make up a tree of
// `size` leaves, largest first. Appending is O(log n) amortised O(1); Root() is O(log n).
class CompactRange {
 public:
  void Append(std::string leaf_hash);
  uint64_t size() const { return size_; }
  std::string Root() const;

 private:
  uint64_t size_ = 0;
  std::vector<std::string> peaks_;
};

// An append-only Merkle tree that keeps the hash of every perfect, aligned subtree
// (level 0 = leaf hashes; level k, index i = MTH of leaves [i*2^k, (i+1)*2^k)), so that
// roots at any earlier size and proofs cost O(log n) hashing. Memory: about 64 bytes per leaf.
//
// A tree built with a TileReader can evict: Evict(end) drops the hashes below level
// kTileHeight of every whole tile (kTileLeaves aligned leaves) below `end`, leaving about one
// byte per leaf in memory. When a proof, a root or a leaf needs them again, the tile's leaf
// hashes are read back through the reader, hashed up, and checked against the level
// kTileHeight node the tree kept for that tile (kDataLoss if they differ), so that what the
// reader gives back is never trusted; up to `cache_tiles` tiles read back are kept.
//
// Given an UpperStore too, it evicts the same way one tier up: the nodes of levels
// kTileHeight to kUpperLevel - 1 of every whole upper tile (kTileLeaves level-kTileHeight
// nodes, 4,096 leaves) below `end` go to the store and leave memory, and are checked against
// the level-kUpperLevel node when read back. Memory then grows by 64 bytes per 4,096 leaves.
//
// Not thread safe (the owner locks); on an evicting tree the const readers fill the cache,
// so they must be serialised too.
//
// Preconditions marked "requires" are programming errors when violated: the process aborts
// with a message rather than returning a wrong hash. Proof requests, whose sizes usually come
// from outside, return a Status instead.
class MerkleTree {
 public:
  static constexpr unsigned kTileHeight = 6;
  static constexpr uint64_t kTileLeaves = uint64_t{1} << kTileHeight;
  // Writes the kTileLeaves leaf hashes from leaf `first` (a multiple of kTileLeaves), 32
  // bytes each, to `out`.
  using TileReader = std::function<absl::Status(uint64_t first, std::string* out)>;
  static constexpr unsigned kUpperLevel = 2 * kTileHeight;
  // Where the level-kTileHeight nodes of evicted upper tiles go: `append` gets them in order,
  // 32 bytes each, and never fails (see EntryIndex, ScratchFile); `read` writes the
  // kTileLeaves of them from node `first` (a multiple of kTileLeaves) to `out`.
  struct UpperStore {
    std::function<void(std::string_view nodes)> append;
    TileReader read;
    size_t cache_tiles = 8;  // upper tiles read back kept
  };

  MerkleTree() = default;
  explicit MerkleTree(TileReader reader, size_t cache_tiles = 256);
  MerkleTree(TileReader reader, size_t cache_tiles, UpperStore upper);

  // Requires leaf_hash.size() == 32 (a LeafHash). Amortised one NodeHash per call.
  void Append(std::string_view leaf_hash);
  // Evicts every whole tile below leaf `end` (see above). Requires a TileReader and
  // end <= size(); the reader must be able to give back every leaf below `end` from now on.
  void Evict(uint64_t end);
  uint64_t size() const { return size_; }
  // Hashes held in memory, not counting the cache of tiles read back.
  uint64_t NodesHeld() const;
  // Leaf hash `index`; kOutOfRange unless index < size(). On an evicting tree it may have to
  // read a tile back: the reader's error, or kDataLoss if the tile does not check.
  absl::StatusOr<std::string> Leaf(uint64_t index) const;
  // Root of the tree made of the first `size` leaves (EmptyRoot() for 0); kOutOfRange if
  // size > this->size(), and the errors of Leaf. At most log2(size) NodeHash calls, plus a
  // tile's when one is read back.
  absl::StatusOr<std::string> RootAt(uint64_t size) const;
  // The same for trees that never evict, which cannot fail: requires index < size() (resp.
  // size <= this->size()) and no TileReader.
  std::string LeafHashAt(uint64_t index) const;
  std::string Root(uint64_t size) const;
  std::string Root() const { return Root(size()); }
  // RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of size `size`.
  // kInvalidArgument unless index < size; kOutOfRange if size > this->size().
  absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size) const;
  // RFC 9162 §2.1.4.1 consistency proof between sizes size1 <= size2; empty when
  // size1 == size2. RFC 9162 defines no proof from the empty tree, so size1 == 0 is
  // kInvalidArgument (as in transparency-dev/merkle), as is size1 > size2; kOutOfRange if
  // size2 > this->size().
  absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t size1, uint64_t size2) const;

 private:
  using Hash = std::array<unsigned char, 32>;
  // The nodes of one level still in memory: node i is nodes[i - first]. Below kTileHeight,
  // `first` moves up as tiles are evicted (a multiple of the tile's width at that level).
  struct Level {
    uint64_t first = 0;
    std::vector<Hash> nodes;
    uint64_t end() const { return first + nodes.size(); }
  };
  // A tile read back: its levels 0 .. kTileHeight-1, level k at offset 2*kTileLeaves -
  // (2*kTileLeaves >> k), kTileLeaves >> k nodes. (An upper tile: its levels kTileHeight
  // .. kUpperLevel-1, the same way.)
  struct Tile {
    uint64_t index = 0;
    std::array<Hash, 2 * kTileLeaves - 2> nodes;
  };
  // Tiles read back, up to a limit, the oldest replaced first.
  struct TileCache {
    size_t limit = 1;
    std::vector<Tile> tiles;
    absl::flat_hash_map<uint64_t, size_t> where;  // tile -> slot in tiles
    size_t next = 0;                              // replaced next when full
    const Tile* Find(uint64_t tile) const;
    const Tile* Insert(const Tile& t);
  };

  // The stored perfect node (level, index); requires it to exist.
  absl::StatusOr<Hash> Stored(unsigned level, uint64_t index) const;
  absl::StatusOr<const Tile*> ReadTile(uint64_t tile) const;
  absl::StatusOr<const Tile*> ReadUpperTile(uint64_t tile) const;
  // Fills t->nodes from its kTileLeaves bottom nodes, `bottom` (32 bytes each), and returns
  // the tile's root.
  static Hash HashUp(std::string_view bottom, Tile* t);
  // MTH of leaves [index*2^level, min((index+1)*2^level, size)): the node of the tree of
  // `size` leaves at that position. Requires index*2^level < size <= size_.
  absl::StatusOr<Hash> NodeAt(unsigned level, uint64_t index, uint64_t size) const;
  // Appends to `proof` the siblings on the path from node (level, index) up to the root of
  // the tree of `size` leaves, lowest first.
  absl::Status AppendPath(unsigned level, uint64_t index, uint64_t size,
                          std::vector<std::string>& proof) const;

  uint64_t size_ = 0;
  // levels_[k] holds the perfect subtrees of height k, left to right: size_ >> k of them.
  std::vector<Level> levels_;
  TileReader reader_;
  UpperStore upper_;
  mutable TileCache cache_, upper_cache_;
};

// RFC 9162 §2.1.3.2: checks that `proof` shows the leaf with hash `leaf_hash` at `index` in
// the tree of `size` leaves whose root is `root`. Requires index < size.
// kInvalidArgument when index >= size, a hash is not 32 bytes or the proof has the wrong
// length for (index, size); kDataLoss "inclusion proof does not verify: calculated root <b64>,
// expected <b64>" when the proof leads to another root.
absl::Status VerifyInclusion(uint64_t index, uint64_t size, std::string_view leaf_hash,
                             const std::vector<std::string>& proof, std::string_view root);
// The root the proof implies (for callers that compare themselves). Same kInvalidArgument
// cases as VerifyInclusion.
absl::StatusOr<std::string> RootFromInclusionProof(uint64_t index, uint64_t size,
                                                   std::string_view leaf_hash,
                                                   const std::vector<std::string>& proof);
// RFC 9162 §2.1.4.2: checks that the tree of size2 leaves with root `root2` extends the tree
// of size1 leaves with root `root1`. Requires size1 <= size2.
//  - size1 == size2: the proof must be empty and root1 == root2 (compared byte for byte, as
//    transparency-dev/merkle does; the roots are not otherwise checked);
//  - size1 == 0 < size2: nothing to prove; the proof must be empty, root1 must be EmptyRoot()
//    and root2 must be 32 bytes;
//  - 0 < size1 < size2: the RFC algorithm; every hash must be 32 bytes and the proof must
//    have the length the sizes imply.
// kInvalidArgument for malformed input (size1 > size2, wrong proof length, a hash that is not
// 32 bytes); kDataLoss "consistency proof does not verify: calculated root1 <b64>, expected
// <b64>" (or root2) when a root does not match.
absl::Status VerifyConsistency(uint64_t size1, uint64_t size2,
                               const std::vector<std::string>& proof, std::string_view root1,
                               std::string_view root2);

}  // namespace lethe::ledger
