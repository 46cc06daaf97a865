#include "ledger/entry_index.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace lethe::ledger {
namespace {

constexpr size_t kLeaf = 32;

}  // namespace

absl::StatusOr<std::unique_ptr<EntryIndex>> EntryIndex::Create(const std::string& dir) {
  LETHE_ASSIGN_OR_RETURN(std::unique_ptr<ScratchFile> file,
                         ScratchFile::Create(dir, "the ledger's entry index in " + dir));
  return std::unique_ptr<EntryIndex>(new EntryIndex(std::move(file)));
}

void EntryIndex::Append(std::string_view leaf_hash, const Location& location) {
  char rec[kRecordSize];
  std::memcpy(rec, leaf_hash.data(), kLeaf);
  std::memcpy(rec + kLeaf, &location.segment, 4);
  std::memcpy(rec + kLeaf + 4, &location.length, 4);
  std::memcpy(rec + kLeaf + 8, &location.offset, 8);
  file_->Append(std::string_view(rec, kRecordSize));
}

absl::StatusOr<EntryIndex::Location> EntryIndex::LocationOf(uint64_t seq) const {
  LETHE_ASSIGN_OR_RETURN(std::vector<Location> one, LocationsOf(seq, 1));
  return one.front();
}

absl::StatusOr<std::vector<EntryIndex::Location>> EntryIndex::LocationsOf(uint64_t first, uint64_t count) const {
  if (first + count > size() || first + count < first)
    return absl::OutOfRangeError(count == 1 ? absl::StrCat("entry ", first, " is beyond the ", size(), " entries indexed")
                                            : absl::StrCat("entries ", first, " to ", first + count - 1,
                                                           " are beyond the ", size(), " entries indexed"));
  std::string recs(count * kRecordSize, '\0');
  LETHE_RETURN_IF_ERROR(file_->ReadAt(first * kRecordSize, recs.size(), recs.data()));
  std::vector<Location> out(count);
  for (uint64_t i = 0; i < count; ++i) {
    const char* rec = recs.data() + i * kRecordSize;
    std::memcpy(&out[i].segment, rec + kLeaf, 4);
    std::memcpy(&out[i].length, rec + kLeaf + 4, 4);
    std::memcpy(&out[i].offset, rec + kLeaf + 8, 8);
  }
  return out;
}

absl::Status EntryIndex::ReadLeaves(uint64_t first, uint64_t count, std::string* out) const {
  if (first + count > size() || first + count < first)
    return absl::OutOfRangeError(absl::StrCat("entries ", first, " to ", first + count - 1,
                                              " are beyond the ", size(), " entries indexed"));
  std::string recs(count * kRecordSize, '\0');
  LETHE_RETURN_IF_ERROR(file_->ReadAt(first * kRecordSize, recs.size(), recs.data()));
  out->resize(count * kLeaf);
  for (uint64_t i = 0; i < count; ++i)
    std::memcpy(out->data() + i * kLeaf, recs.data() + i * kRecordSize, kLeaf);
  return absl::OkStatus();
}

}  // namespace lethe::ledger
