// The chain checks of what the segment reader read: one entry's place in the hash chain
// (CheckChainLink, and CheckChainLinkFast, which decodes only the fields it checks), and the
// batch marks of consecutive entries (BatchTracker). Declared in ledger.h.
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/segment_reader.h"

namespace lethe::ledger {

absl::Status CheckChainLink(const ScannedRecord& rec, std::string_view prev_hash,
                            v1::LedgerEntry* entry, std::string* leaf_hash) {
  if (!entry->ParseFromArray(rec.payload.data(), static_cast<int>(rec.payload.size())))
    return Corrupt(rec.segment, rec.offset, rec.index, "payload is not a LedgerEntry");
  if (entry->seq() != rec.index)
    return Corrupt(rec.segment, rec.offset, rec.index,
                   absl::StrCat("entry says it is number ", entry->seq()));
  if (entry->prev_hash() != prev_hash)
    return Corrupt(rec.segment, rec.offset, rec.index,
                   "prev_hash does not match the previous entry (chain broken)");
  if (entry->body_case() == v1::LedgerEntry::BODY_NOT_SET)
    return Corrupt(rec.segment, rec.offset, rec.index, "entry has no body");
  *leaf_hash = LeafHash(rec.payload);
  return absl::OkStatus();
}

absl::Status BatchTracker::Next(uint64_t seq, uint32_t batch_remaining, std::string_view segment,
                                uint32_t version) {
  const std::string where =
      segment.empty() ? "" : absl::StrCat(" (", absl::string_view(segment.data(), segment.size()), ")");
  if (version == 1 && batch_remaining != 0)
    return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", seq, where,
                                            " has a batch mark in a version 1 segment"));
  if (remaining_ > 0) {
    if (batch_remaining != remaining_ - 1)
      return absl::DataLossError(absl::StrCat(
          "ledger corrupt: entry ", seq, where, " breaks its batch: the entry before it says ",
          remaining_, " more follow, this one says ", batch_remaining));
    if (!segment.empty() && segment != segment_)
      return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", seq, where,
                                              " continues a batch begun in ", segment_,
                                              ": a batch never spans two segments"));
  } else {
    segment_.assign(segment.data(), segment.size());
  }
  remaining_ = batch_remaining;
  if (batch_remaining == 0) complete_ = seq + 1;
  return absl::OkStatus();
}

absl::Status BatchTracker::CheckEnd(std::string_view last_segment) const {
  if (remaining_ == 0 || segment_ == last_segment) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", complete_,
                                          " begins a batch that ends in no later entry, in the sealed "
                                          "segment ", segment_));
}

absl::Status CheckChainLinkFast(const ScannedRecord& rec, std::string_view prev_hash,
                                std::string* leaf_hash, uint32_t* batch_remaining) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(rec.payload.data()),
                                            static_cast<int>(rec.payload.size()));
  uint64_t seq = 0, batch = 0;
  std::string_view prev;
  bool have_prev = false, have_body = false;
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto type = WireFormatLite::GetTagWireType(tag);
    if (field == 1 && type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&seq)) break;
    } else if (field == 5 && type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&batch)) break;
    } else if (field == 3 && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t len = 0;
      const void* data = nullptr;
      int avail = 0;
      if (!in.ReadVarint32(&len) || !in.GetDirectBufferPointer(&data, &avail) ||
          static_cast<uint32_t>(avail) < len)
        break;
      prev = std::string_view(static_cast<const char*>(data), len);
      have_prev = true;
      in.Skip(static_cast<int>(len));
    } else if (field >= 10 && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      // Fields 10.. are the body oneof: skipped, not parsed. lethed writes seq and prev_hash
      // before it, but any field order is valid protobuf and CheckChainLink's parser takes
      // the last seq and prev_hash wherever they are, so this reads on to the end as well.
      have_body = true;
      if (!WireFormatLite::SkipField(&in, tag)) break;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      break;
    }
  }
  if (!have_body) return Corrupt(rec.segment, rec.offset, rec.index, "entry has no body");
  if (seq != rec.index)
    return Corrupt(rec.segment, rec.offset, rec.index, absl::StrCat("entry says it is number ", seq));
  if (!have_prev || prev != prev_hash)
    return Corrupt(rec.segment, rec.offset, rec.index,
                   "prev_hash does not match the previous entry (chain broken)");
  *leaf_hash = LeafHash(rec.payload);
  *batch_remaining = static_cast<uint32_t>(batch);  // uint32 on the wire: the low 32 bits
  return absl::OkStatus();
}

}  // namespace lethe::ledger
