// Ascending ledger indices packed as varint deltas (LEB128: 7 bits a byte, low bits first),
// usually one to three bytes each instead of eight: what lethed keeps in memory per ended
// request and per consent change, where a vector of indices would grow by 8 bytes (and its
// spare capacity) each.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lethe {

inline void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Appends `seq` to `packed`, whose last index is `last` (0 when empty). Requires seq >= last.
inline void AppendAscending(std::string& packed, uint64_t last, uint64_t seq) {
  PutVarint(packed, seq - last);
}

// The indices of `packed`, in order. Bytes are our own (never read from outside); a truncated
// last varint ends the list.
inline std::vector<uint64_t> UnpackAscending(std::string_view packed) {
  std::vector<uint64_t> out;
  uint64_t seq = 0;
  for (size_t i = 0; i < packed.size();) {
    uint64_t delta = 0;
    for (int shift = 0; i < packed.size() && shift < 64; shift += 7) {
      const auto b = static_cast<unsigned char>(packed[i++]);
      delta |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    seq += delta;
    out.push_back(seq);
  }
  return out;
}

}  // namespace lethe
