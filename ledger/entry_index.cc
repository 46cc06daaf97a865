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
  if (seq >= size())
    return absl::OutOfRangeError(
        absl::StrCat("entry ", seq, " is beyond the ", size(), " entries indexed"));
  char rec[kRecordSize];
  LETHE_RETURN_IF_ERROR(file_->ReadAt(seq * kRecordSize, kRecordSize, rec));
  Location loc;
  std::memcpy(&loc.segment, rec + kLeaf, 4);
  std::memcpy(&loc.length, rec + kLeaf + 4, 4);
  std::memcpy(&loc.offset, rec + kLeaf + 8, 8);
  return loc;
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
