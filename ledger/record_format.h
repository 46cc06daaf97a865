// The ledger's on-disk format. This header is the specification; keep it exact.
//
// A ledger is a directory of segment files named  seg-<first seq, 20 decimal digits>.log,
// holding consecutive entries; the segment with the highest number is the only one written.
//
// Segment header, 32 bytes, all integers little-endian:
//   magic      [8]  "LETHELOG"
//   version    u32  format version: 2 (1: written before batches were marked, still read)
//   flags      u32  0 (reserved; a reader rejects other values)
//   first_seq  u64  sequence number of the segment's first entry
//   reserved   u32  0 (a reader rejects other values)
//   crc        u32  CRC-32C (Castagnoli) of the 28 bytes before it
//
// Then records, back to back, to the end of the file:
//   length     u32  byte length of payload, 1 .. kMaxPayload
//   crc        u32  CRC-32C of the 4 length bytes followed by payload
//   payload    [length]  one serialized lethe.v1.LedgerEntry (proto/lethe/v1/ledger.proto)
//
// The file name must be the one SegmentFileName(first_seq) gives.
//
// Entry rules (checked on open and by every verifier):
//   - entry.seq counts from 0 with no gaps, across segments;
//   - entries come in batches, the entries one append wrote together: entry.batch_remaining
//     counts the entries after it in its batch (0 ends a batch); an entry following one with
//     batch_remaining n > 0 has n - 1. A batch never spans two segments. A log written
//     before version 2 has no marks: every entry is a batch of its own;
//   - entry.prev_hash is the leaf hash of the previous entry, 32 zero bytes for entry 0;
//   - the leaf hash of an entry is SHA-256(0x00 || payload) (RFC 9162 §2.1.1); the payload
//     bytes are hashed exactly as stored, never re-serialized.
//
// Pre-zeroed space: while open, the writer keeps zeros ahead of the last record of the last
// segment and writes records over them (so an acknowledging fdatasync changes no metadata).
// A header of 8 zero bytes ends the records; a clean close cuts the zeros; sealed segments
// end with their last record.
//
// Recovery: an append writes whole batches and is acknowledged only after fdatasync. After a
// crash, what follows the last complete batch of the last segment was never acknowledged and
// is cut, with its offset logged: the whole records of an incomplete batch, then zeros or a
// torn tail. A torn tail is an incomplete record, a zero header followed by non-zero bytes,
// or a record with a bad length or CRC that overlaps some 512-byte-aligned sector by at least
// 8 bytes that are all zero (a sector the crash kept from the disk); it extends to the end of
// the file. Anything else that fails a check (bad magic, header or reserved fields, a name
// that is not the header's, any other CRC mismatch, a broken chain or batch, an incomplete
// record or batch in an earlier segment) is corruption and is reported as DATA_LOSS naming
// the segment, the offset and the entry; it is never skipped.
// ledger/FORMAT.md spells out the rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lethe::ledger::format {

inline constexpr char kMagic[8] = {'L', 'E', 'T', 'H', 'E', 'L', 'O', 'G'};
inline constexpr uint32_t kVersion = 2;        // written
inline constexpr uint32_t kOldestVersion = 1;  // still read
inline constexpr size_t kSegmentHeaderSize = 32;
inline constexpr size_t kRecordHeaderSize = 8;
inline constexpr uint32_t kMaxPayload = 16u << 20;

inline void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
inline void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
inline uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
inline uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string EncodeSegmentHeader(uint64_t first_seq);
// Appends one framed record to `out`.
void AppendRecord(std::string* out, std::string_view payload);
std::string SegmentFileName(uint64_t first_seq);

}  // namespace lethe::ledger::format
