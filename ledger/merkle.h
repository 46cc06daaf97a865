// RFC 9162 §2.1 Merkle tree hashing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::ledger {

// SHA-256(0x00 || data).
std::string LeafHash(std::string_view data);
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

}  // namespace lethe::ledger
