#include "controlplane/digest_table.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {
namespace {

constexpr char kPageMagic[4] = {'L', 'D', 'T', '1'};
constexpr unsigned kMaxDepth = 40;  // 2^40 pages: 4 PiB, far past any disk

// One page in memory: its header and slots, in the file's byte layout.
struct PageImage {
  std::array<char, DigestTable::kPageBytes> bytes{};

  PageImage() { std::memcpy(bytes.data(), kPageMagic, 4); }
  uint32_t count() const {
    uint32_t n;
    std::memcpy(&n, bytes.data() + 4, 4);
    return n;
  }
  void set_count(uint32_t n) { std::memcpy(bytes.data() + 4, &n, 4); }
  char* slot(size_t i) { return bytes.data() + DigestTable::kHeaderBytes + i * DigestTable::kSlotBytes; }
  const char* slot(size_t i) const {
    return bytes.data() + DigestTable::kHeaderBytes + i * DigestTable::kSlotBytes;
  }
  absl::uint128 key(size_t i) const {
    uint64_t hi, lo;
    std::memcpy(&hi, slot(i), 8);
    std::memcpy(&lo, slot(i) + 8, 8);
    return absl::MakeUint128(hi, lo);
  }
  uint64_t value(size_t i) const {
    uint64_t v;
    std::memcpy(&v, slot(i) + 16, 8);
    return v;
  }
  void set(size_t i, absl::uint128 key, uint64_t value) {
    const uint64_t hi = absl::Uint128High64(key), lo = absl::Uint128Low64(key);
    std::memcpy(slot(i), &hi, 8);
    std::memcpy(slot(i) + 8, &lo, 8);
    std::memcpy(slot(i) + 16, &value, 8);
  }
  std::optional<size_t> Find(absl::uint128 k) const {
    for (size_t i = 0; i < count(); ++i)
      if (key(i) == k) return i;
    return std::nullopt;
  }
  // Adds or replaces; false when the key is new and the page is full.
  bool Put(absl::uint128 k, uint64_t v, uint64_t* added) {
    if (auto i = Find(k)) {
      set(*i, k, v);
      return true;
    }
    if (count() == DigestTable::kSlotsPerPage) return false;
    set(count(), k, v);
    set_count(count() + 1);
    ++*added;
    return true;
  }
};

// Checks a page read back from `what` at index `page`.
absl::Status CheckPage(const PageImage& p, const std::string& what, uint64_t page) {
  if (std::memcmp(p.bytes.data(), kPageMagic, 4) != 0 || p.count() > DigestTable::kSlotsPerPage)
    return absl::DataLossError(absl::StrCat(what, ": page ", page, " is not one lethed wrote"));
  return absl::OkStatus();
}

}  // namespace

DigestTable::DigestTable(std::unique_ptr<ScratchFile> file, std::string dir, std::string what)
    : file_(std::move(file)), dir_(std::move(dir)), what_(std::move(what)) {
  crypto_shorthash_keygen(hash_key_.data());
  // Room for every key it will hold at once, from the start: memory does not grow afterwards.
  pending_.reserve(kMaxPending);
  held_.resize(kMaxPending);  // written, so resident now rather than at the first flush
  held_.clear();
  filter_ = FilterFor(kSlotsPerPage / 2 + kMaxPending);
}

absl::StatusOr<std::unique_ptr<DigestTable>> DigestTable::Create(const std::string& dir, std::string what) {
  if (sodium_init() < 0) return absl::InternalError("libsodium could not be initialised");
  LETHE_ASSIGN_OR_RETURN(std::unique_ptr<ScratchFile> file,
                         ScratchFile::Create(dir, what, ScratchFile::Mode::kDirect));
  const PageImage empty;
  LETHE_RETURN_IF_ERROR(file->WriteNow(std::string_view(empty.bytes.data(), kPageBytes)));
  return std::unique_ptr<DigestTable>(new DigestTable(std::move(file), dir, std::move(what)));
}

DigestTable::Hashes DigestTable::Hash(absl::uint128 key) const {
  unsigned char in[16], out[crypto_shorthash_siphashx24_BYTES];
  const uint64_t hi = absl::Uint128High64(key), lo = absl::Uint128Low64(key);
  std::memcpy(in, &hi, 8);
  std::memcpy(in + 8, &lo, 8);
  crypto_shorthash_siphashx24(out, in, sizeof in, hash_key_.data());
  Hashes h;
  std::memcpy(&h.page, out, 8);
  std::memcpy(&h.filter, out + 8, 8);
  return h;
}

std::vector<DigestTable::Block> DigestTable::FilterFor(uint64_t keys) {
  const uint64_t bits = std::max<uint64_t>(keys, 1) * kFilterBitsPerKey;
  return std::vector<Block>((bits + 8 * sizeof(Block) - 1) / (8 * sizeof(Block)));
}

namespace {
// The block of a filter of `blocks` blocks that `hash` falls in (its top 32 bits, scaled), and
// the bit it sets in word i of that block (its low 32 bits times an odd constant, top 5 bits).
// The constants are the eight salts of the Parquet specification's split block Bloom filter.
constexpr std::array<uint32_t, 8> kSalts = {0x47b6137bU, 0x44974d91U, 0x8824ad5bU, 0xa2b7289dU,
                                            0x705495c7U, 0x2df1424bU, 0x9efc4947U, 0x5c6bfb31U};
size_t BlockOf(uint64_t hash, size_t blocks) { return static_cast<size_t>(((hash >> 32) * blocks) >> 32); }
uint32_t BitIn(uint64_t hash, size_t word) {
  return uint32_t{1} << ((static_cast<uint32_t>(hash) * kSalts[word]) >> 27);
}
}  // namespace

void DigestTable::AddTo(std::vector<Block>& filter, uint64_t hash) {
  Block& b = filter[BlockOf(hash, filter.size())];
  for (size_t w = 0; w < b.size(); ++w) b[w] |= BitIn(hash, w);
}

bool DigestTable::MayHold(uint64_t hash) const {
  const Block& b = filter_[BlockOf(hash, filter_.size())];
  for (size_t w = 0; w < b.size(); ++w)
    if ((b[w] & BitIn(hash, w)) == 0) return false;
  return true;
}

namespace {
uint64_t PageAt(uint64_t hash, unsigned depth) { return depth == 0 ? 0 : hash >> (64 - depth); }
}  // namespace

void DigestTable::Put(absl::uint128 key, uint64_t value) {
  AddTo(filter_, Hash(key).filter);
  pending_[key] = value;
  if (pending_.size() < flush_at_) return;
  if (absl::Status s = Flush(); !s.ok()) {
    if (flush_at_ == kMaxPending)
      spdlog::error("{}; {} keys stay in memory and the write is tried again", std::string(s.message()),
                    pending_.size());
    // Not at every put: each try may read the whole file.
    flush_at_ = pending_.size() + kMaxPending;
    return;
  }
  flush_at_ = kMaxPending;
}

absl::StatusOr<std::optional<uint64_t>> DigestTable::Get(absl::uint128 key) const {
  if (auto p = pending_.find(key); p != pending_.end()) return p->second;
  const Hashes h = Hash(key);
  if (!MayHold(h.filter)) return std::nullopt;
  const uint64_t page = PageAt(h.page, depth_);
  ++page_reads_;
  PageImage img;
  LETHE_RETURN_IF_ERROR(file_->ReadAt(page * kPageBytes, kPageBytes, img.bytes.data()));
  LETHE_RETURN_IF_ERROR(CheckPage(img, what_, page));
  if (auto i = img.Find(key)) return img.value(*i);
  return std::nullopt;
}

absl::Status DigestTable::Flush() {
  if (pending_.empty()) return absl::OkStatus();
  // At most half full after this flush, counting every held key as new.
  const uint64_t keys = stored_ + pending_.size();
  unsigned depth = depth_;
  while ((uint64_t{1} << depth) * kSlotsPerPage / 2 < keys) ++depth;
  if (depth == depth_) {
    absl::Status s = WriteInPlace();
    if (s.ok() || s.code() != absl::StatusCode::kResourceExhausted) return s;
    ++depth;  // a page is full: give every page more room
  }
  return Rebuild(depth);
}

const std::vector<DigestTable::Held>& DigestTable::HeldByHash() {
  held_.clear();  // keeps its room
  for (const auto& [k, v] : pending_) held_.push_back(Held{Hash(k), k, v});
  std::sort(held_.begin(), held_.end(), [](const Held& a, const Held& b) { return a.hash.page < b.hash.page; });
  return held_;
}

absl::Status DigestTable::WriteInPlace() {
  // In hash order, hence page by page.
  const std::vector<Held>& items = HeldByHash();
  for (size_t i = 0; i < items.size();) {
    const uint64_t page = PageAt(items[i].hash.page, depth_);
    PageImage img;
    LETHE_RETURN_IF_ERROR(file_->ReadAt(page * kPageBytes, kPageBytes, img.bytes.data()));
    LETHE_RETURN_IF_ERROR(CheckPage(img, what_, page));
    uint64_t added = 0;
    size_t j = i;
    for (; j < items.size() && PageAt(items[j].hash.page, depth_) == page; ++j)
      if (!img.Put(items[j].key, items[j].value, &added))
        return absl::ResourceExhaustedError(absl::StrCat(what_, ": page ", page, " is full"));
    LETHE_RETURN_IF_ERROR(file_->WriteAt(page * kPageBytes, std::string_view(img.bytes.data(), kPageBytes)));
    stored_ += added;
    for (; i < j; ++i) pending_.erase(items[i].key);
  }
  return absl::OkStatus();
}

absl::Status DigestTable::Rebuild(unsigned depth) {
  const std::vector<Held>& held = HeldByHash();
  const uint64_t old_pages = pages();
  for (; depth <= kMaxDepth; ++depth) {
    LETHE_ASSIGN_OR_RETURN(std::unique_ptr<ScratchFile> next,
                           ScratchFile::Create(dir_, what_, ScratchFile::Mode::kDirect));
    const unsigned split = depth - depth_;  // old page p becomes pages [p << split, (p + 1) << split)
    std::vector<PageImage> out(size_t{1} << split);
    // Every key lands in the new file, so the new filter is built from them as they pass.
    std::vector<Block> filter = FilterFor((uint64_t{1} << depth) * kSlotsPerPage / 2 + kMaxPending);
    uint64_t stored = 0;
    size_t h = 0;  // next held key, in hash order
    bool full = false;
    for (uint64_t p = 0; p < old_pages && !full; ++p) {
      PageImage img;
      LETHE_RETURN_IF_ERROR(file_->ReadAt(p * kPageBytes, kPageBytes, img.bytes.data()));
      LETHE_RETURN_IF_ERROR(CheckPage(img, what_, p));
      for (auto& o : out) o = PageImage();
      const uint64_t first = p << split;
      for (size_t i = 0; i < img.count() && !full; ++i) {
        const absl::uint128 k = img.key(i);
        const Hashes kh = Hash(k);
        AddTo(filter, kh.filter);
        full = !out[PageAt(kh.page, depth) - first].Put(k, img.value(i), &stored);
      }
      // Held keys replace the value of a key they share, or join as new ones.
      for (; h < held.size() && PageAt(held[h].hash.page, depth_) == p && !full; ++h) {
        AddTo(filter, held[h].hash.filter);
        full = !out[PageAt(held[h].hash.page, depth) - first].Put(held[h].key, held[h].value, &stored);
      }
      // Written as they come, so that a file that cannot be written is given up at once.
      for (const auto& o : out) LETHE_RETURN_IF_ERROR(next->WriteNow(std::string_view(o.bytes.data(), kPageBytes)));
    }
    if (full) continue;  // a page overflowed: one more bit of hash
    file_ = std::move(next);
    filter_ = std::move(filter);
    depth_ = depth;
    stored_ = stored;
    absl::erase_if(pending_, [](const auto&) { return true; });  // keeps the room clear() would free
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(what_, ": cannot spread its keys over 2^", kMaxDepth, " pages"));
}

}  // namespace lethe::controlplane
