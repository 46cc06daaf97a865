// Fuzz target: the checkpoint parser and verifier (ledger/checkpoint.h) and the proof
// verifiers of a C2SP tlog-proof (ledger/merkle.h).
//
// Lethe has no parser of tlog-proof text: `lethectl ledger proof` only prints one (cli/render.cc),
// and the ledger side consists of the checkpoint parser and the RFC 9162 proof checks. So an
// input that starts with "c2sp.org/tlog-proof@v1\n" is read here, leniently, as
//
//   c2sp.org/tlog-proof@v1
//   extra <base64>          optional: taken as the entry's bytes (empty without it)
//   index <decimal>
//   <base64 hash>           zero or more proof hashes
//                           a blank line
//   <checkpoint note>
//
// and drives ParseCheckpointUnverified, VerifyCheckpoint (under the fixed key),
// VerifyInclusion, RootFromInclusionProof and VerifyConsistency. Any other input is a
// checkpoint note on its own.
//
// Checks: a note that parses, signed again with the fixed key, verifies and parses to the
// same checkpoint; VerifyInclusion and RootFromInclusionProof agree.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using lethe::fuzz::Violated;
namespace ledger = lethe::ledger;

constexpr std::string_view kProofHeader = "c2sp.org/tlog-proof@v1\n";

bool SameCheckpoint(const ledger::Checkpoint& a, const ledger::Checkpoint& b) {
  return a.origin == b.origin && a.size == b.size && a.root == b.root;
}

// Parses, verifies, and signs again what parsed.
void CheckNote(std::string_view note) {
  const auto& key = lethe::fuzz::ControlPlaneKey();
  auto parsed = ledger::ParseCheckpointUnverified(note);
  const std::string origin = parsed.ok() ? parsed->origin : lethe::fuzz::kOrigin;
  auto verified = ledger::VerifyCheckpoint(note, origin, key.public_key());
  if (verified.ok() && (!parsed.ok() || !SameCheckpoint(*parsed, *verified)))
    Violated("a verified checkpoint differs from the unverified parse");
  if (!parsed.ok()) return;

  const std::string signed_note = ledger::SignCheckpoint(*parsed, key);
  auto again = ledger::VerifyCheckpoint(signed_note, parsed->origin, key.public_key());
  if (!again.ok()) Violated("a checkpoint signed with the key does not verify:", again.status().ToString());
  if (!SameCheckpoint(*again, *parsed)) Violated("a signed checkpoint verifies to another checkpoint");
  auto reparsed = ledger::ParseCheckpointUnverified(signed_note);
  if (!reparsed.ok() || !SameCheckpoint(*reparsed, *parsed))
    Violated("a signed checkpoint parses to another checkpoint");
  if (ledger::VerifierKey(parsed->origin, key.public_key()).empty()) Violated("empty verifier key");
}

void CheckProof(std::string_view text) {
  text.remove_prefix(kProofHeader.size());
  const size_t blank = text.find("\n\n");
  const std::string_view head = text.substr(0, blank == std::string_view::npos ? text.size() : blank);
  const std::string_view note =
      blank == std::string_view::npos ? std::string_view() : text.substr(blank + 2);

  std::string entry;
  uint64_t index = 0;
  std::vector<std::string> proof;
  for (absl::string_view line : absl::StrSplit(absl::string_view(head.data(), head.size()), '\n')) {
    if (absl::ConsumePrefix(&line, "extra ")) {
      auto extra = lethe::crypto::FromBase64(std::string_view(line.data(), line.size()));
      if (extra.ok()) entry = *extra;
    } else if (absl::ConsumePrefix(&line, "index ")) {
      if (!absl::SimpleAtoi(line, &index)) index = 0;
    } else {
      auto hash = lethe::crypto::FromBase64(std::string_view(line.data(), line.size()));
      proof.push_back(hash.ok() ? *hash : std::string(line));
    }
  }

  CheckNote(note);
  auto cp = ledger::ParseCheckpointUnverified(note);
  if (!cp.ok()) return;
  (void)ledger::VerifyCheckpoint(note, cp->origin, lethe::fuzz::ControlPlaneKey().public_key());

  const std::string leaf = ledger::LeafHash(entry);
  const absl::Status inclusion = ledger::VerifyInclusion(index, cp->size, leaf, proof, cp->root);
  auto root = ledger::RootFromInclusionProof(index, cp->size, leaf, proof);
  if (inclusion.ok() != (root.ok() && *root == cp->root))
    Violated("VerifyInclusion and RootFromInclusionProof disagree");
  // The same hashes as a consistency proof from a tree of `index` leaves whose root is the
  // first hash.
  if (!proof.empty()) {
    const std::vector<std::string> rest(proof.begin() + 1, proof.end());
    (void)ledger::VerifyConsistency(index, cp->size, rest, proof.front(), cp->root);
  }
  (void)ledger::VerifyConsistency(index, cp->size, proof, ledger::EmptyRoot(), cp->root);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > lethe::fuzz::kMaxInput) return -1;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text.substr(0, kProofHeader.size()) == kProofHeader) {
    CheckProof(text);
  } else {
    CheckNote(text);
  }
  return 0;
}
