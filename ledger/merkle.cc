#include "ledger/merkle.h"

#include "crypto/crypto.h"

namespace lethe::ledger {

std::string LeafHash(std::string_view data) {
  static constexpr char kPrefix[1] = {0x00};
  return crypto::Sha256Parts({std::string_view(kPrefix, 1), data});
}

std::string NodeHash(std::string_view left, std::string_view right) {
  static constexpr char kPrefix[1] = {0x01};
  return crypto::Sha256Parts({std::string_view(kPrefix, 1), left, right});
}

std::string EmptyRoot() { return crypto::Sha256(""); }

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

}  // namespace lethe::ledger
