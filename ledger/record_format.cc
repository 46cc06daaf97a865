#include "ledger/record_format.h"

#include "absl/strings/str_format.h"
#include "crypto/crypto.h"

namespace lethe::ledger::format {

std::string EncodeSegmentHeader(uint64_t first_seq) {
  std::string h(kMagic, sizeof(kMagic));
  PutU32(&h, kVersion);
  PutU32(&h, 0);
  PutU64(&h, first_seq);
  PutU32(&h, 0);
  PutU32(&h, crypto::Crc32c(h));
  return h;
}

void AppendRecord(std::string* out, std::string_view payload) {
  std::string len;
  PutU32(&len, static_cast<uint32_t>(payload.size()));
  uint32_t crc = crypto::Crc32c(payload, crypto::Crc32c(len));
  out->append(len);
  PutU32(out, crc);
  out->append(payload.data(), payload.size());
}

std::string SegmentFileName(uint64_t first_seq) {
  return absl::StrFormat("seg-%020u.log", first_seq);
}

}  // namespace lethe::ledger::format
