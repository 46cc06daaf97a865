// RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs.
//
// Terms follow RFC 9162 §2.1: MTH (the Merkle Tree Hash), PATH (inclusion proof, §2.1.3) and
// PROOF/SUBPROOF (consistency proof, §2.1.4). Every hash is 32 raw bytes of SHA-256. Proofs are
// ordered as the RFC orders them: the hash nearest the leaf first, the one nearest the root last.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
// Not thread safe (the owner locks).
//
// Preconditions marked "requires" are programming errors when violated: the process aborts
// with a message rather than returning a wrong hash. Proof requests, whose sizes usually come
// from outside, return a Status instead.
class MerkleTree {
 public:
  // Requires leaf_hash.size() == 32 (a LeafHash). Amortised one NodeHash per call.
  void Append(std::string_view leaf_hash);
  uint64_t size() const { return size_; }
  // Requires index < size().
  std::string LeafHashAt(uint64_t index) const;
  // Root of the tree made of the first `size` leaves. Requires size <= this->size();
  // EmptyRoot() for 0. At most log2(size) NodeHash calls.
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

  // MTH of leaves [index*2^level, min((index+1)*2^level, size)): the node of the tree of
  // `size` leaves at that position. Requires index*2^level < size <= size_.
  Hash NodeAt(unsigned level, uint64_t index, uint64_t size) const;
  // Appends to `proof` the siblings on the path from node (level, index) up to the root of
  // the tree of `size` leaves, lowest first.
  void AppendPath(unsigned level, uint64_t index, uint64_t size,
                  std::vector<std::string>& proof) const;

  uint64_t size_ = 0;
  // levels_[k] holds the perfect subtrees of height k, left to right: size_ >> k of them.
  std::vector<std::vector<Hash>> levels_;
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
