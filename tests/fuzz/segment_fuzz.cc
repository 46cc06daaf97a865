// Fuzz target: the ledger's segment reader and the verifiers that read a ledger directory
// (ledger/ledger.h ScanSegments, CheckChainLink, CheckChainLinkFast; audit/auditor.h
// VerifyStructure and the Auditor). Everything is read only: the ledger is never opened for
// writing.
//
// The first byte chooses how the rest becomes segment files in a fresh temp directory:
//   bit 0 clear: raw. The rest is the file seg-00000000000000000000.log, byte for byte.
//   bit 0 set:   framed. The rest is a list of payloads, each a little-endian u16 length and
//                its bytes; they are written as records (with correct lengths and CRCs) after
//                a correct segment header, so that mutations reach the entries rather than
//                dying at a checksum. Then:
//     bit 1:     chain them (ChainEntries in fuzz_ledger.h: seq, prev_hash, and re-signed
//                receipts and policy hashes), so that the Auditor reaches the bodies;
//     bit 2:     split them into two segments, the second starting at entry 1 + (the next
//                byte modulo the count): one segment when that is the count;
//     bit 3:     a final payload is appended unframed: a torn tail, or garbage.
// A checkpoint over the records read is then signed with the fixed key (of the size bits 4-5
// choose: all, one fewer, one more, or none) and the directory is verified with it.
//
// Checks: what ScanSegments reads, VerifyStructure and the Auditor agree on the entry count.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "audit/auditor.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/record_format.h"
#include "lethe/v1/ledger.pb.h"
#include "tests/fuzz/fuzz_ledger.h"

namespace {

using lethe::fuzz::Violated;
namespace ledger = lethe::ledger;
namespace audit = lethe::audit;
namespace format = lethe::ledger::format;

// Writes the segment files for `input`; false when the input names no usable layout.
bool WriteSegments(const std::string& dir, lethe::fuzz::Reader& in) {
  const uint8_t mode = in.U8();
  if ((mode & 1) == 0) {
    return lethe::fuzz::WriteWholeFile(dir + "/" + format::SegmentFileName(0), in.Rest());
  }
  const uint8_t split_byte = (mode & 4) != 0 ? in.U8() : 0;
  std::vector<std::string> payloads;
  std::string tail;
  while (!in.empty()) payloads.emplace_back(in.Chunk16());
  if ((mode & 8) != 0 && !payloads.empty()) {
    tail = std::move(payloads.back());
    payloads.pop_back();
  }
  if ((mode & 2) != 0) payloads = lethe::fuzz::ChainEntries(payloads, /*fix_bodies=*/true);
  size_t split = payloads.size();
  if ((mode & 4) != 0 && !payloads.empty()) split = 1 + split_byte % payloads.size();
  std::string first = format::EncodeSegmentHeader(0);
  for (size_t i = 0; i < split; ++i) format::AppendRecord(&first, payloads[i]);
  if (split == payloads.size()) first += tail;
  if (!lethe::fuzz::WriteWholeFile(dir + "/" + format::SegmentFileName(0), first)) return false;
  if (split < payloads.size()) {
    std::string second = format::EncodeSegmentHeader(split);
    for (size_t i = split; i < payloads.size(); ++i) format::AppendRecord(&second, payloads[i]);
    second += tail;
    if (!lethe::fuzz::WriteWholeFile(dir + "/" + format::SegmentFileName(split), second)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > lethe::fuzz::kMaxInput || size == 0) return -1;
  lethe::fuzz::QuietProtobuf();
  const uint8_t mode = data[0];
  lethe::fuzz::Reader in(data, size);
  lethe::fuzz::TempDir tmp;
  if (!WriteSegments(tmp.path(), in)) return 0;

  // 1. The raw reader, and both chain checks on what it reads.
  std::vector<std::string> entries;
  // Where each record was read from, as `lethectl ledger verify` hands it to the Auditor.
  std::vector<std::pair<std::string, uint32_t>> segments;
  ledger::MerkleTree tree;
  std::string prev_full(32, '\0');
  std::string prev_fast(32, '\0');
  bool chain_full = true;
  bool chain_fast = true;
  ledger::BatchTracker batches;  // over the marks the fast check decodes
  bool batches_ok = true;
  auto scan = ledger::ScanSegments(tmp.path(), [&](const ledger::ScannedRecord& rec) {
    if (rec.index != entries.size()) Violated("records are not numbered in order");
    entries.emplace_back(rec.payload);
    segments.emplace_back(rec.segment, rec.segment_version);
    std::string leaf;
    lethe::v1::LedgerEntry entry;
    uint32_t batch_remaining = 0;
    if (chain_full) {
      chain_full = ledger::CheckChainLink(rec, prev_full, &entry, &leaf).ok();
      if (chain_full) prev_full = leaf;
    }
    if (chain_fast) {
      chain_fast = ledger::CheckChainLinkFast(rec, prev_fast, &leaf, &batch_remaining).ok();
      if (chain_fast) prev_fast = leaf;
      if (chain_fast && chain_full && batch_remaining != entry.batch_remaining())
        Violated("CheckChainLinkFast decodes another batch mark than the parser");
      if (chain_fast && batches_ok)
        batches_ok = batches.Next(rec.index, batch_remaining, rec.segment, rec.segment_version).ok();
    }
    tree.Append(ledger::LeafHash(rec.payload));
    return absl::OkStatus();
  });
  if (scan.ok() && scan->records != entries.size()) Violated("ScanSegments miscounts its records");
  if (!scan.ok()) return 0;

  // 2. A checkpoint over what was read, signed with the fixed key.
  const auto& key = lethe::fuzz::ControlPlaneKey();
  uint64_t cp_size = entries.size();
  switch ((mode >> 4) & 3) {
    case 1:
      if (cp_size > 0) --cp_size;
      break;
    case 2:
      ++cp_size;
      break;
    case 3:
      cp_size = 0;
      break;
    default:
      break;
  }
  ledger::Checkpoint cp{lethe::fuzz::kOrigin, cp_size,
                        cp_size <= tree.size() ? tree.Root(cp_size) : tree.Root()};
  const std::string note = ledger::SignCheckpoint(cp, key);

  // 3. The structural verifier and the Auditor over the same directory.
  auto structure = audit::VerifyStructure(tmp.path(), note, key.public_key());
  if (structure.ok()) {
    if (!chain_fast) Violated("VerifyStructure accepts a chain CheckChainLinkFast refuses");
    if (!batches_ok) Violated("VerifyStructure accepts batch marks BatchTracker refuses");
    if (structure->entries != batches.complete()) Violated("VerifyStructure miscounts the entries");
    if (structure->entries + structure->incomplete_batch_entries != entries.size())
      Violated("VerifyStructure loses entries of an incomplete batch");
    if (structure->root != tree.Root(batches.complete())) Violated("VerifyStructure reports another root");
  }
  audit::Auditor auditor(key.public_key(), note);
  bool audited = true;
  for (size_t i = 0; i < entries.size() && audited; ++i)
    audited = auditor.Add(i, entries[i], segments[i].first, segments[i].second).ok();
  if (audited) {
    auto report = auditor.Finish(scan->last_segment);
    if (report.ok()) {
      if (report->entries + report->incomplete_batch_entries != entries.size())
        Violated("the Auditor miscounts the entries");
      if (!chain_full) Violated("the Auditor accepts a chain CheckChainLink refuses");
      if (!structure.ok()) Violated("the Auditor accepts a log VerifyStructure refuses:", structure.status().ToString());
    }
  }
  return 0;
}
