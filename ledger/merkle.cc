#include "ledger/merkle.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "crypto/crypto.h"

namespace lethe::ledger {
namespace {

constexpr size_t kHashSize = crypto::kSha256Size;
static_assert(kHashSize == 32);
using Digest = std::array<unsigned char, kHashSize>;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "lethe::ledger merkle: %s\n", what);
  std::abort();
}

// out = SHA-256(prefix || a || b) (crypto::Sha256PartsInto: no allocation, no fetch per call;
// the tree hashes millions of nodes).
void HashInto(unsigned char prefix, const void* a, size_t a_len, const void* b, size_t b_len,
              unsigned char* out) {
  crypto::Sha256PartsInto({std::string_view(reinterpret_cast<const char*>(&prefix), 1),
                           std::string_view(static_cast<const char*>(a), a_len),
                           std::string_view(static_cast<const char*>(b), b_len)},
                          out);
}

// SHA-256(0x01 || left || right) of two 32-byte hashes.
void HashChildren(const unsigned char* left, const unsigned char* right, unsigned char* out) {
  HashInto(0x01, left, kHashSize, right, kHashSize, out);
}

void HashChildren(std::string_view left, std::string_view right, unsigned char* out) {
  HashInto(0x01, left.data(), left.size(), right.data(), right.size(), out);
}

std::string_view View(const unsigned char* h) {
  return std::string_view(reinterpret_cast<const char*>(h), kHashSize);
}

std::string B64(std::string_view bytes) { return crypto::Base64(bytes); }

// The number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves
// (requires index < size), split as in transparency-dev/merkle: `inner` hashes below the level
// where the paths to `index` and to the last leaf meet, then `border` hashes of left siblings
// along the right border.
struct ProofShape {
  unsigned inner;
  unsigned border;
};
ProofShape InclusionShape(uint64_t index, uint64_t size) {
  const unsigned inner = static_cast<unsigned>(std::bit_width(index ^ (size - 1)));
  const unsigned border = static_cast<unsigned>(std::popcount(inner >= 64 ? 0 : index >> inner));
  return {inner, border};
}

absl::Status CheckHashSize(std::string_view what, std::string_view h) {
  if (h.size() == kHashSize) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(Av(what), " is ", h.size(), " bytes, want ", kHashSize));
}

absl::Status CheckProofHashes(std::string_view kind, const std::vector<std::string>& proof) {
  for (size_t i = 0; i < proof.size(); ++i) {
    if (proof[i].size() != kHashSize) {
      return absl::InvalidArgumentError(absl::StrCat(Av(kind), " proof hash [", i, "] is ",
                                                     proof[i].size(), " bytes, want ",
                                                     kHashSize));
    }
  }
  return absl::OkStatus();
}

// kDataLoss "<kind> proof does not verify: calculated <which> <b64>, expected <b64>".
absl::Status Mismatch(std::string_view kind, std::string_view which, std::string_view calculated,
                      std::string_view expected) {
  return absl::DataLossError(absl::StrCat(Av(kind), " proof does not verify: calculated ",
                                          Av(which), " ", B64(calculated), ", expected ",
                                          B64(expected)));
}

}  // namespace

std::string LeafHash(std::string_view data) {
  std::string out(kHashSize, '\0');
  HashInto(0x00, data.data(), data.size(), nullptr, 0,
           reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

void LeafHashInto(std::string_view data, char* out) {
  HashInto(0x00, data.data(), data.size(), nullptr, 0, reinterpret_cast<unsigned char*>(out));
}

std::string NodeHash(std::string_view left, std::string_view right) {
  std::string out(kHashSize, '\0');
  HashChildren(left, right, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string EmptyRoot() { return crypto::Sha256(""); }

// ---------------------------------------------------------------------------------------
// CompactRange

void CompactRange::Append(std::string leaf_hash) {
  // Each trailing 1-bit of the old size is a perfect subtree of the same height as the one
  // being completed: merge them.
  std::string h = std::move(leaf_hash);
  for (uint64_t s = size_; s & 1; s >>= 1) {
    h = NodeHash(peaks_.back(), h);
    peaks_.pop_back();
  }
  peaks_.push_back(std::move(h));
  ++size_;
}

std::string CompactRange::Root() const {
  if (peaks_.empty()) return EmptyRoot();
  std::string h = peaks_.back();
  for (size_t i = peaks_.size() - 1; i-- > 0;) h = NodeHash(peaks_[i], h);
  return h;
}

// ---------------------------------------------------------------------------------------
// MerkleTree

MerkleTree::MerkleTree(TileReader reader, size_t cache_tiles)
    : MerkleTree(std::move(reader), cache_tiles, UpperStore{}) {}

MerkleTree::MerkleTree(TileReader reader, size_t cache_tiles, UpperStore upper)
    : reader_(std::move(reader)), upper_(std::move(upper)) {
  cache_.limit = std::max<size_t>(cache_tiles, 1);
  upper_cache_.limit = std::max<size_t>(upper_.cache_tiles, 1);
  if (reader_) {
    // The whole cache at once, written so that it is resident now: filling it then moves no
    // tile and memory does not grow as it fills.
    cache_.tiles.resize(cache_.limit);
    cache_.tiles.clear();
    upper_cache_.tiles.resize(upper_cache_.limit);
    upper_cache_.tiles.clear();
  }
}

void MerkleTree::Append(std::string_view leaf_hash) {
  if (leaf_hash.size() != kHashSize) Die("MerkleTree::Append: leaf hash is not 32 bytes");
  Hash h;
  std::memcpy(h.data(), leaf_hash.data(), kHashSize);
  if (levels_.empty()) levels_.emplace_back();
  levels_[0].nodes.push_back(h);
  ++size_;
  // A level that now ends after an even number of nodes completed a perfect subtree one
  // level up. (Evicted nodes leave `first` even, so the last two are still in memory.)
  for (size_t k = 0; levels_[k].end() % 2 == 0; ++k) {
    const Hash* pair = levels_[k].nodes.data() + levels_[k].nodes.size() - 2;
    Hash parent;
    HashChildren(pair[0].data(), pair[1].data(), parent.data());
    if (levels_.size() == k + 1) levels_.emplace_back();
    levels_[k + 1].nodes.push_back(parent);
  }
}

void MerkleTree::Evict(uint64_t end) {
  if (!reader_) Die("MerkleTree::Evict: the tree has no TileReader");
  if (end > size_) Die("MerkleTree::Evict: end beyond the tree");
  auto drop_below = [this](unsigned k, uint64_t first) {
    Level& l = levels_[k];
    if (first <= l.first) return;
    l.nodes.erase(l.nodes.begin(), l.nodes.begin() + static_cast<ptrdiff_t>(first - l.first));
    l.first = first;
  };
  const uint64_t tiles = end >> kTileHeight;
  for (unsigned k = 0; k < kTileHeight && k < levels_.size(); ++k) drop_below(k, tiles << (kTileHeight - k));
  if (!upper_.append || levels_.size() <= kUpperLevel) return;
  // One tier up: the level-kTileHeight nodes of whole upper tiles go to the store first.
  const uint64_t groups = end >> kUpperLevel;
  Level& bottom = levels_[kTileHeight];
  const uint64_t first = groups << kTileHeight;
  if (first > bottom.first)
    upper_.append(std::string_view(reinterpret_cast<const char*>(bottom.nodes.data()),
                                   (first - bottom.first) * kHashSize));
  for (unsigned k = kTileHeight; k < kUpperLevel; ++k) drop_below(k, groups << (kUpperLevel - k));
}

uint64_t MerkleTree::NodesHeld() const {
  uint64_t n = 0;
  for (const Level& l : levels_) n += l.nodes.size();
  return n;
}

const MerkleTree::Tile* MerkleTree::TileCache::Find(uint64_t tile) const {
  auto it = where.find(tile);
  return it == where.end() ? nullptr : &tiles[it->second];
}

const MerkleTree::Tile* MerkleTree::TileCache::Insert(const Tile& t) {
  size_t slot;
  if (tiles.size() < limit) {
    slot = tiles.size();
    tiles.push_back(t);
  } else {
    slot = next;
    next = (next + 1) % limit;
    where.erase(tiles[slot].index);
    tiles[slot] = t;
  }
  where[t.index] = slot;
  return &tiles[slot];
}

MerkleTree::Hash MerkleTree::HashUp(std::string_view bottom, Tile* t) {
  std::memcpy(t->nodes.data(), bottom.data(), bottom.size());
  // Hash level k (at offset `in`, n nodes) into level k+1, up to the tile's root.
  size_t in = 0;
  Hash root;
  for (uint64_t n = kTileLeaves; n > 1; in += n, n /= 2) {
    for (uint64_t i = 0; i < n / 2; ++i) {
      unsigned char* out = n == 2 ? root.data() : t->nodes[in + n + i].data();
      HashChildren(t->nodes[in + 2 * i].data(), t->nodes[in + 2 * i + 1].data(), out);
    }
  }
  return root;
}

absl::StatusOr<const MerkleTree::Tile*> MerkleTree::ReadTile(uint64_t tile) const {
  if (const Tile* t = cache_.Find(tile)) return t;
  std::string leaves;
  LETHE_RETURN_IF_ERROR(reader_(tile << kTileHeight, &leaves));
  if (leaves.size() != kTileLeaves * kHashSize)
    return absl::InternalError(absl::StrCat("Merkle tree: the tile reader gave ", leaves.size(),
                                            " bytes for tile ", tile, ", want ",
                                            kTileLeaves * kHashSize));
  Tile t;
  t.index = tile;
  const Hash root = HashUp(leaves, &t);
  // The tile must hash to the node kept for it (or read back, checked, one tier up).
  LETHE_ASSIGN_OR_RETURN(const Hash want, Stored(kTileHeight, tile));
  if (root != want)
    return absl::DataLossError(absl::StrCat(
        "Merkle tree: the leaf hashes read back for leaves ", tile << kTileHeight, " to ",
        ((tile + 1) << kTileHeight) - 1, " do not hash to the tree's node for them"));
  return cache_.Insert(t);
}

absl::StatusOr<const MerkleTree::Tile*> MerkleTree::ReadUpperTile(uint64_t tile) const {
  if (const Tile* t = upper_cache_.Find(tile)) return t;
  std::string nodes;
  LETHE_RETURN_IF_ERROR(upper_.read(tile << kTileHeight, &nodes));
  if (nodes.size() != kTileLeaves * kHashSize)
    return absl::InternalError(absl::StrCat("Merkle tree: the upper store gave ", nodes.size(),
                                            " bytes for upper tile ", tile, ", want ",
                                            kTileLeaves * kHashSize));
  Tile t;
  t.index = tile;
  // Level kUpperLevel is never evicted: the tile must hash to the node kept for it.
  if (HashUp(nodes, &t) != levels_[kUpperLevel].nodes[tile])
    return absl::DataLossError(absl::StrCat(
        "Merkle tree: the level-", kTileHeight, " nodes read back for leaves ", tile << kUpperLevel, " to ",
        ((tile + 1) << kUpperLevel) - 1, " do not hash to the tree's node for them"));
  return upper_cache_.Insert(t);
}

absl::StatusOr<MerkleTree::Hash> MerkleTree::Stored(unsigned level, uint64_t index) const {
  const Level& l = levels_[level];
  if (index >= l.first) return l.nodes[index - l.first];
  // Evicted: read its tile back, or its upper tile for levels kTileHeight to kUpperLevel - 1.
  const bool upper = level >= kTileHeight;
  const unsigned in_tile = upper ? level - kTileHeight : level;
  const uint64_t tile = index >> (kTileHeight - in_tile);
  LETHE_ASSIGN_OR_RETURN(const Tile* t, upper ? ReadUpperTile(tile) : ReadTile(tile));
  const uint64_t width = kTileLeaves >> in_tile;
  return t->nodes[2 * kTileLeaves - 2 * width + (index & (width - 1))];
}

absl::StatusOr<std::string> MerkleTree::Leaf(uint64_t index) const {
  if (index >= size_)
    return absl::OutOfRangeError(
        absl::StrCat("Merkle tree: leaf ", index, " is beyond the ", size_, " leaves held"));
  LETHE_ASSIGN_OR_RETURN(const Hash h, Stored(0, index));
  return std::string(View(h.data()));
}

std::string MerkleTree::LeafHashAt(uint64_t index) const {
  if (index >= size_) Die("MerkleTree::LeafHashAt: index out of range");
  if (reader_) Die("MerkleTree::LeafHashAt on an evicting tree: use Leaf");
  return *Leaf(index);
}

absl::StatusOr<MerkleTree::Hash> MerkleTree::NodeAt(unsigned level, uint64_t index,
                                                    uint64_t size) const {
  const uint64_t begin = index << level;
  const uint64_t remaining = size - begin;  // > 0 by the precondition
  if (remaining >= (uint64_t{1} << level)) return Stored(level, index);  // perfect: stored
  // The node on the right border of the tree of `size` leaves: [begin, size) is made of the
  // perfect subtrees given by the set bits of `remaining` (which are the bits of `size` below
  // `level`, since begin is a multiple of 2^level), largest first. Hash them right to left.
  Hash h;
  bool have = false;
  for (unsigned b = 0; b < level; ++b) {
    if (((remaining >> b) & 1) == 0) continue;
    LETHE_ASSIGN_OR_RETURN(const Hash peak, Stored(b, (size >> b) - 1));
    if (have) {
      HashChildren(peak.data(), h.data(), h.data());
    } else {
      h = peak;
      have = true;
    }
  }
  return h;
}

absl::StatusOr<std::string> MerkleTree::RootAt(uint64_t size) const {
  if (size > size_)
    return absl::OutOfRangeError(
        absl::StrCat("Merkle tree: size ", size, " is beyond the ", size_, " leaves held"));
  if (size == 0) return EmptyRoot();
  // The whole tree is the node at the level of the highest bit, rounded up.
  const unsigned level = static_cast<unsigned>(std::bit_width(size - 1));
  if (level == 0) return Leaf(0);
  // NodeAt needs level < 64 to shift; a tree of 2^63 leaves cannot be stored anyway.
  LETHE_ASSIGN_OR_RETURN(const Hash h, NodeAt(level, 0, size));
  return std::string(View(h.data()));
}

std::string MerkleTree::Root(uint64_t size) const {
  if (size > size_) Die("MerkleTree::Root: size beyond the tree");
  if (reader_) Die("MerkleTree::Root on an evicting tree: use RootAt");
  return *RootAt(size);
}

absl::Status MerkleTree::AppendPath(unsigned level, uint64_t index, uint64_t size,
                                    std::vector<std::string>& proof) const {
  // Climb until level `l` has a single node (the root). At each level the sibling exists
  // unless the node is the last one on its level with no right neighbour.
  for (unsigned l = level; l < 64 && ((size - 1) >> l) != 0; ++l, index >>= 1) {
    const uint64_t last = (size - 1) >> l;
    const uint64_t sibling = index ^ 1;
    if (sibling > last) continue;
    LETHE_ASSIGN_OR_RETURN(const Hash h, NodeAt(l, sibling, size));
    proof.emplace_back(View(h.data()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MerkleTree::InclusionProof(uint64_t index,
                                                                    uint64_t size) const {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("inclusion proof: leaf index ", index, " is not below tree size ", size));
  }
  if (size > size_) {
    return absl::OutOfRangeError(absl::StrCat("inclusion proof: tree size ", size,
                                              " is beyond the ", size_, " leaves held"));
  }
  std::vector<std::string> proof;
  const ProofShape shape = InclusionShape(index, size);
  proof.reserve(shape.inner + shape.border);
  LETHE_RETURN_IF_ERROR(AppendPath(0, index, size, proof));
  return proof;
}

absl::StatusOr<std::vector<std::string>> MerkleTree::ConsistencyProof(uint64_t size1,
                                                                      uint64_t size2) const {
  if (size1 == 0) {
    return absl::InvalidArgumentError(
        "consistency proof: size1 is 0; RFC 9162 defines no proof from the empty tree");
  }
  if (size1 > size2) {
    return absl::InvalidArgumentError(
        absl::StrCat("consistency proof: size1 ", size1, " is greater than size2 ", size2));
  }
  if (size2 > size_) {
    return absl::OutOfRangeError(absl::StrCat("consistency proof: size2 ", size2,
                                              " is beyond the ", size_, " leaves held"));
  }
  std::vector<std::string> proof;
  if (size1 == size2) return proof;
  // The tree of size1 ends with a perfect subtree of 2^level leaves: node (level, index).
  // The proof is that node (unless it is the whole old tree, whose root the verifier has)
  // followed by its inclusion path in the tree of size2. This equals RFC 9162 SUBPROOF.
  const unsigned level = static_cast<unsigned>(std::countr_zero(size1));
  const uint64_t index = (size1 - 1) >> level;
  proof.reserve(1 + std::bit_width(size2 - 1));
  if (index != 0) {
    LETHE_ASSIGN_OR_RETURN(const Hash h, Stored(level, index));
    proof.emplace_back(View(h.data()));
  }
  LETHE_RETURN_IF_ERROR(AppendPath(level, index, size2, proof));
  return proof;
}

// ---------------------------------------------------------------------------------------
// Verification

absl::StatusOr<std::string> RootFromInclusionProof(uint64_t index, uint64_t size,
                                                   std::string_view leaf_hash,
                                                   const std::vector<std::string>& proof) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("inclusion proof: leaf index ", index, " is not below tree size ", size));
  }
  LETHE_RETURN_IF_ERROR(CheckHashSize("inclusion proof: leaf hash", leaf_hash));
  const ProofShape shape = InclusionShape(index, size);
  if (proof.size() != shape.inner + shape.border) {
    return absl::InvalidArgumentError(
        absl::StrCat("inclusion proof has ", proof.size(), " hashes, want ",
                     shape.inner + shape.border, " for leaf index ", index, " in tree size ",
                     size));
  }
  LETHE_RETURN_IF_ERROR(CheckProofHashes("inclusion", proof));

  // RFC 9162 §2.1.3.2, step by step.
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Digest r;
  std::memcpy(r.data(), leaf_hash.data(), kHashSize);
  for (const std::string& p : proof) {
    if (sn == 0) return absl::InvalidArgumentError("inclusion proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      HashChildren(p, View(r.data()), r.data());
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      HashChildren(View(r.data()), p, r.data());
    }
    fn >>= 1;
    sn >>= 1;
  }
  // Unreachable after the length check above; kept because it is the RFC's final test.
  if (sn != 0) return absl::InvalidArgumentError("inclusion proof is too short");
  return std::string(View(r.data()));
}

absl::Status VerifyInclusion(uint64_t index, uint64_t size, std::string_view leaf_hash,
                             const std::vector<std::string>& proof, std::string_view root) {
  LETHE_RETURN_IF_ERROR(CheckHashSize("inclusion proof: root", root));
  LETHE_ASSIGN_OR_RETURN(const std::string calculated,
                   RootFromInclusionProof(index, size, leaf_hash, proof));
  if (calculated != root) return Mismatch("inclusion", "root", calculated, root);
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t size1, uint64_t size2,
                               const std::vector<std::string>& proof, std::string_view root1,
                               std::string_view root2) {
  if (size1 > size2) {
    return absl::InvalidArgumentError(
        absl::StrCat("consistency proof: size1 ", size1, " is greater than size2 ", size2));
  }
  if (size1 == size2 || size1 == 0) {
    if (!proof.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "consistency proof between sizes ", size1, " and ", size2, " must be empty, got ",
          proof.size(), " hashes"));
    }
    // The tree of size 0 has exactly one root.
    if (size1 == 0 && root1 != EmptyRoot()) {
      return Mismatch("consistency", "root1", EmptyRoot(), root1);
    }
    if (size1 == size2) {
      // With nothing to prove, the root calculated for size2 is root1 itself.
      if (root1 != root2) return Mismatch("consistency", "root2", root1, root2);
      return absl::OkStatus();
    }
    // 0 == size1 < size2: every tree extends the empty one.
    return CheckHashSize("consistency proof: root2", root2);
  }

  // 0 < size1 < size2.
  LETHE_RETURN_IF_ERROR(CheckHashSize("consistency proof: root1", root1));
  LETHE_RETURN_IF_ERROR(CheckHashSize("consistency proof: root2", root2));
  // The proof is the path from the last perfect subtree of the old tree (height `shift`) to
  // the new root, preceded by that subtree's hash unless it is the whole old tree.
  ProofShape shape = InclusionShape(size1 - 1, size2);
  const unsigned shift = static_cast<unsigned>(std::countr_zero(size1));
  shape.inner -= shift;  // shift < inner because size1 < size2
  const bool power_of_two = (size1 & (size1 - 1)) == 0;
  const size_t want = (power_of_two ? 0 : 1) + shape.inner + shape.border;
  if (proof.empty() || proof.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("consistency proof has ", proof.size(),
                                                   " hashes, want ", want, " for sizes ",
                                                   size1, " and ", size2));
  }
  LETHE_RETURN_IF_ERROR(CheckProofHashes("consistency", proof));

  // RFC 9162 §2.1.4.2, step by step.
  std::vector<std::string_view> path;
  path.reserve(proof.size() + 1);
  if (power_of_two) path.push_back(root1);
  for (const std::string& p : proof) path.push_back(p);
  uint64_t fn = size1 - 1;
  uint64_t sn = size2 - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Digest fr, sr;
  std::memcpy(fr.data(), path[0].data(), kHashSize);
  sr = fr;
  for (size_t i = 1; i < path.size(); ++i) {
    const std::string_view c = path[i];
    if (sn == 0) return absl::InvalidArgumentError("consistency proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      HashChildren(c, View(fr.data()), fr.data());
      HashChildren(c, View(sr.data()), sr.data());
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      HashChildren(View(sr.data()), c, sr.data());
    }
    fn >>= 1;
    sn >>= 1;
  }
  // Unreachable after the length check above; kept because it is the RFC's final test.
  if (sn != 0) return absl::InvalidArgumentError("consistency proof is too short");
  if (View(fr.data()) != root1) return Mismatch("consistency", "root1", View(fr.data()), root1);
  if (View(sr.data()) != root2) return Mismatch("consistency", "root2", View(sr.data()), root2);
  return absl::OkStatus();
}

}  // namespace lethe::ledger
