// ledger/FORMAT.md claims to be enough to write a verifier that reaches `lethectl ledger
// verify`'s verdict. This test holds it to that: tests/verifier/lethe_verify.py, a second
// verifier written in Python from the document alone, must reach the same verdict (OK or
// FAILED) as lethectl on a realistic ledger and on every way the test suite damages or forges
// one (ledger_test, prezero_test, auditor_test, ledger_batch_test, audit_test, erasure_test,
// hostile_test, security_test), each applied to a fresh copy of the ledger. A disagreement
// is a bug in the document or in one of the verifiers.
//
// Needs python3 with Debian's python3-protobuf, python3-cryptography and python3-yaml, and
// protoc (tests/scripts/deps.sh installs them all); without them the test fails, saying so.
// LETHE_PYTHON3 picks the interpreter (default: /usr/bin/python3, then python3 on PATH).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/file_system.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "proto/envelope.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
namespace fs = std::filesystem;

constexpr absl::Duration kWait = absl::Seconds(90);
const std::string kPythonVerifier = LETHE_SOURCE_DIR "/tests/verifier/lethe_verify.py";
const Person kCarol{"91150023", "carol@example.com"};

// ---- the two verifiers -------------------------------------------------------------------

// The python3 that has the verifier's modules: $LETHE_PYTHON3, /usr/bin/python3, or a
// python3 on PATH. "" when there is none, with *why saying what each one lacked.
std::string FindPython(std::string* why) { return FindPython3("google.protobuf, cryptography, yaml", why); }

// The first `lines` lines of `text`: where both verifiers print their verdict.
std::string Head(const std::string& text, int lines) {
  size_t end = 0;
  for (int i = 0; i < lines && end != std::string::npos; ++i) {
    end = text.find('\n', end);
    if (end != std::string::npos) ++end;
  }
  return end == std::string::npos ? text : text.substr(0, end);
}

struct Verdict {
  std::string word;  // "OK", "FAILED", or "exit N" when the tool gave no verdict
  std::string output;
};

Verdict VerdictOf(const CommandResult& r) {
  if (r.exit_code == 0) return {"OK", r.output};
  if (r.exit_code == 1) return {"FAILED", r.output};
  return {absl::StrCat("exit ", r.exit_code), r.output};
}

// What each verifier reads: DATA_DIR (the ledger is DATA_DIR/ledger) or an export.
struct Input {
  std::string dir;
  bool bundle = false;
};

std::vector<std::string> VerifyArgs(const Input& in, const std::string& pub,
                                    const std::vector<std::string>& flags) {
  std::vector<std::string> args = {in.bundle ? "--bundle" : "--dir", in.dir, "--public-key", pub};
  args.insert(args.end(), flags.begin(), flags.end());
  return args;
}

Verdict LethectlVerdict(const Input& in, const std::string& pub, const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"ledger", "verify"};
  for (auto& a : VerifyArgs(in, pub, flags)) args.push_back(a);
  return VerdictOf(Lethectl(args));
}

Verdict PythonVerdict(const std::string& python, const Input& in, const std::string& pub,
               const std::vector<std::string>& flags) {
  std::vector<std::string> args = {python, kPythonVerifier};
  for (auto& a : VerifyArgs(in, pub, flags)) args.push_back(a);
  auto r = RunCommand(args, absl::Seconds(120));
  if (!r.ok()) return {"error", r.status().ToString()};
  return VerdictOf(*r);
}

// ---- the ledger's files, as FORMAT.md sections 1 and 2 describe them ----------------------

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetLE(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(s[at + i]);
  return v;
}

constexpr size_t kHeaderSize = 32;

std::string SegmentName(uint64_t first_seq) { return absl::StrFormat("seg-%020d.log", first_seq); }

std::string Header(uint32_t version, uint64_t first_seq, uint32_t flags = 0, uint32_t reserved = 0) {
  std::string h = "LETHELOG";
  PutU32(&h, version);
  PutU32(&h, flags);
  PutU64(&h, first_seq);
  PutU32(&h, reserved);
  PutU32(&h, crypto::Crc32c(h));
  return h;
}

std::string Frame(const std::string& payload) {
  std::string f;
  PutU32(&f, static_cast<uint32_t>(payload.size()));
  PutU32(&f, crypto::Crc32c(absl::StrCat(f, payload)));
  return absl::StrCat(f, payload);
}

std::string Leaf(const std::string& payload) { return crypto::Sha256(absl::StrCat(std::string(1, '\0'), payload)); }

std::string Root(const std::vector<std::string>& leaves, size_t begin, size_t end) {
  if (end == begin) return crypto::Sha256("");
  if (end - begin == 1) return leaves[begin];
  size_t k = 1;
  while (2 * k < end - begin) k *= 2;
  return crypto::Sha256(absl::StrCat(std::string(1, '\1'), Root(leaves, begin, begin + k),
                                     Root(leaves, begin + k, end)));
}

struct Record {
  uint64_t offset = 0;  // of its header, in its segment
  std::string payload;
  uint64_t end() const { return offset + 8 + payload.size(); }
};

// The records of one segment that holds nothing but whole records.
std::vector<Record> Records(const std::string& bytes) {
  std::vector<Record> out;
  for (size_t pos = kHeaderSize; pos + 8 <= bytes.size();) {
    const uint64_t length = GetLE(bytes, pos, 4);
    if (length == 0 || pos + 8 + length > bytes.size()) break;
    out.push_back({pos, bytes.substr(pos + 8, length)});
    pos += 8 + length;
  }
  return out;
}

std::vector<std::string> SegmentFiles(const std::string& ledger_dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(ledger_dir))
    if (e.path().filename().string().rfind("seg-", 0) == 0) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void CopyTree(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

// ---- the cases -------------------------------------------------------------------------

// The realistic ledger, and what a forger holding lethed's key (and the agents' keys) needs.
struct Pristine {
  std::string ledger_dir;  // read only: every case starts from a copy
  std::string segment;     // its one segment's name
  std::string bytes;       // and bytes
  std::vector<Record> records;
  std::vector<v1::LedgerEntry> entries;
  std::string origin;
  std::optional<crypto::Ed25519PrivateKey> lethed_key;
  std::map<std::string, crypto::Ed25519PrivateKey> agent_keys;

  std::vector<std::string> Leaves() const {
    std::vector<std::string> out;
    for (const auto& r : records) out.push_back(Leaf(r.payload));
    return out;
  }
  // Index of the first entry with `pred`; fails the test when there is none.
  size_t Find(const std::function<bool(const v1::LedgerEntry&)>& pred, size_t from = 0) const {
    for (size_t i = from; i < entries.size(); ++i)
      if (pred(entries[i])) return i;
    ADD_FAILURE() << "the scenario's ledger has no such entry";
    return 0;
  }
  // Index of the last entry of the batch that entry i is in.
  size_t BatchEnd(size_t i) const {
    while (entries[i].batch_remaining() > 0) ++i;
    return i;
  }
  // First entry of the batch that entry i is in.
  size_t BatchStart(size_t i) const {
    while (i > 0 && entries[i - 1].batch_remaining() > 0) --i;
    return i;
  }
};

// A checkpoint history (FORMAT.md 4.1) holding `notes`.
std::string History(const std::vector<std::string>& notes) {
  std::string h = "LETHECPH";
  PutU32(&h, 1);
  PutU32(&h, crypto::Crc32c(h));
  for (const auto& n : notes) h += Frame(n);
  return h;
}
constexpr char kHistory[] = "checkpoint-history.log";

// A checkpoint over the first `size` of `leaves`, signed with lethed's own key, and a history
// that holds only it (as a ledger from before the history gets on open): the files as they
// were when that checkpoint was the latest, with no trace of later ones.
void SignCheckpointFile(const Pristine& p, const std::string& dir, const std::vector<std::string>& leaves,
                        uint64_t size, const std::string& origin = "") {
  const ledger::Checkpoint cp{origin.empty() ? p.origin : origin, size, Root(leaves, 0, size)};
  const std::string note = ledger::SignCheckpoint(cp, *p.lethed_key);
  WriteBytes(dir + "/checkpoint", note);
  WriteBytes(dir + "/" + kHistory, History({note}));
}

// Replaces the log by `entries` in one segment of `version`, with seq and prev_hash made
// consistent, `edit` applied to each payload before it is chained, and a checkpoint over all
// of it (or `cp_size` entries) re-signed with lethed's key: what someone holding that key
// could write to rewrite history.
void WriteEntries(const Pristine& p, const std::string& dir, std::vector<v1::LedgerEntry> entries,
                  const std::function<void(size_t, std::string&)>& edit = nullptr,
                  std::optional<uint64_t> cp_size = std::nullopt, uint32_t version = 2) {
  for (const auto& f : SegmentFiles(dir)) fs::remove(dir + "/" + f);
  std::string seg = Header(version, 0);
  std::string prev(32, '\0');
  std::vector<std::string> leaves;
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].set_seq(i);
    entries[i].set_prev_hash(prev);
    std::string payload = entries[i].SerializeAsString();
    if (edit) edit(i, payload);
    seg += Frame(payload);
    prev = Leaf(payload);
    leaves.push_back(prev);
  }
  WriteBytes(dir + "/" + SegmentName(0), seg);
  SignCheckpointFile(p, dir, leaves, cp_size.value_or(entries.size()));
}

using Damage = std::function<void(const std::string& ledger_dir)>;

// A rewrite of the entries (then re-chained and re-signed).
Damage Rewrite(const Pristine& p, std::function<void(std::vector<v1::LedgerEntry>&)> change) {
  return [&p, change](const std::string& dir) {
    std::vector<v1::LedgerEntry> e = p.entries;
    change(e);
    WriteEntries(p, dir, e);
  };
}

// A change of the segment's bytes, nothing else.
Damage EditSegment(const Pristine& p, std::function<void(std::string&)> change) {
  return [&p, change](const std::string& dir) {
    std::string bytes = p.bytes;
    change(bytes);
    WriteBytes(dir + "/" + p.segment, bytes);
  };
}

void Flip(std::string& bytes, size_t at, char mask = 0x20) { bytes[at] ^= mask; }

// The log cut back to where the last batch with more than one entry starts, signed there;
// `keep` entries of that batch follow the checkpoint (the remains of an unacknowledged write).
struct CutBatch {
  size_t start = 0;  // first entry of the batch
  size_t end = 0;    // its last entry
};
CutBatch LastMultiEntryBatch(const Pristine& p) {
  CutBatch b;
  for (size_t i = 0; i < p.entries.size(); ++i)
    if (p.entries[i].batch_remaining() > 0 && (i == 0 || p.entries[i - 1].batch_remaining() == 0)) {
      b.start = i;
      b.end = p.BatchEnd(i);
    }
  return b;
}

struct Case {
  std::string name;
  std::string expect;  // the verdict the test suite or FORMAT.md gives, "?" when neither decides
  Damage damage;       // applied to DATA/ledger of a fresh copy
  std::vector<std::string> flags = {};
  bool bundle = false;
};

std::vector<Case> Cases(const Pristine& p, const std::string& export_dir) {
  const auto& E = p.entries;
  const size_t n = E.size();
  const size_t last = n - 1;
  std::vector<Case> c;
  auto kind = [](const char* k) {
    return [k](const v1::LedgerEntry& e) { return e.body_case() == e.GetDescriptor()->FindFieldByName(k)->number(); };
  };
  const size_t submitted = p.Find(kind("request_submitted"));  // Alice's: all three domains
  const size_t first_receipt = p.Find(kind("receipt_recorded"));
  const size_t completed = p.Find(kind("request_completed"));
  const size_t enrolled = p.Find(kind("agent_enrolled"));
  const size_t activated = p.Find(kind("policy_activated"));
  const size_t activated2 = p.Find(kind("policy_activated"), activated + 1);
  const size_t command = p.Find(kind("command_issued"));
  const size_t withdrawal = p.Find([](const v1::LedgerEntry& e) {
    return e.has_consent_changed() && !e.consent_changed().erasure_request_id().empty();
  });
  const size_t grant = p.Find(kind("consent_changed"));
  const size_t consent_erasure = p.Find([](const v1::LedgerEntry& e) {
    return e.has_request_submitted() && !e.request_submitted().consent_change_id().empty();
  });
  const size_t extended = p.Find(kind("deadline_extended"));
  const size_t added = p.Find(kind("identities_added"));
  const size_t revoked = p.Find(kind("agent_key_revoked"));
  const CutBatch batch = LastMultiEntryBatch(p);
  const std::string seg = p.segment;

  // ---- pristine, and the export
  c.push_back({"pristine ledger", "OK", [](const std::string&) {}});
  c.push_back({"export: pristine", "OK", nullptr, {}, true});

  // ---- section 1: segment headers and names (ledger_test, ledger_batch_test)
  c.push_back({"header: bad magic", "FAILED", EditSegment(p, [](std::string& b) { Flip(b, 2, 1); })});
  c.push_back({"header: CRC mismatch (first_seq flipped)", "FAILED",
               EditSegment(p, [](std::string& b) { Flip(b, 16, 1); })});
  struct BadHeader {
    const char* label;
    uint32_t version, flags, reserved;
  };
  for (const BadHeader& h : std::vector<BadHeader>{{"header: reserved field 7", 2, 0, 7},
                                                   {"header: flags 1", 2, 1, 0},
                                                   {"header: version 3", 3, 0, 0},
                                                   {"header: version 0", 0, 0, 0}}) {
    c.push_back({h.label, "FAILED", EditSegment(p, [h](std::string& b) {
                   b.replace(0, kHeaderSize, Header(h.version, 0, h.flags, h.reserved));
                 })});
  }
  c.push_back({"header: version 1 with batch marks", "FAILED",
               EditSegment(p, [](std::string& b) { b.replace(0, kHeaderSize, Header(1, 0)); })});
  c.push_back({"header: version 1, entries re-marked as single batches", "OK", [&p](const std::string& dir) {
                 std::vector<v1::LedgerEntry> e = p.entries;
                 for (auto& x : e) x.set_batch_remaining(0);
                 WriteEntries(p, dir, e, nullptr, std::nullopt, 1);
               }});
  c.push_back({"name: segment renamed seg-...01.log", "FAILED", [&p](const std::string& dir) {
                 fs::rename(dir + "/" + p.segment, dir + "/" + SegmentName(1));
               }});
  for (const char* stray : {"seg-1.log", "seg-0000000000000000000x.log", "seg-00000000000000000001.log.bak"})
    c.push_back({absl::StrCat("name: stray file ", stray), "FAILED",
                 [stray](const std::string& dir) { WriteBytes(dir + "/" + stray, "entries a reader would skip"); }});
  c.push_back({"name: interrupted replace seg-...log.tmp-<16 hex>", "FAILED", [&p](const std::string& dir) {
                 WriteBytes(dir + "/" + p.segment + ".tmp-0123456789abcdef", p.bytes.substr(0, 100));
               }});
  c.push_back({"name: interrupted replace checkpoint.tmp-<16 hex>", "OK", [](const std::string& dir) {
                 WriteBytes(dir + "/checkpoint.tmp-0123456789abcdef", "half a note");
               }});
  c.push_back({"name: another file (notes.txt)", "OK",
               [](const std::string& dir) { WriteBytes(dir + "/notes.txt", "hello"); }});
  c.push_back({"segments: split at a batch boundary", "OK", [&p, batch](const std::string& dir) {
                 const uint64_t k = batch.start;  // entries [0, k) and [k, n)
                 WriteBytes(dir + "/" + p.segment, p.bytes.substr(0, p.records[k].offset));
                 WriteBytes(dir + "/" + SegmentName(k), Header(2, k) + p.bytes.substr(p.records[k].offset));
               }});
  c.push_back({"segments: split inside a batch (a batch spans two)", "FAILED", [&p, batch](const std::string& dir) {
                 const uint64_t k = batch.start + 1;
                 WriteBytes(dir + "/" + p.segment, p.bytes.substr(0, p.records[k].offset));
                 WriteBytes(dir + "/" + SegmentName(k), Header(2, k) + p.bytes.substr(p.records[k].offset));
               }});
  c.push_back({"segments: incomplete batch in a sealed segment", "FAILED", [&p, batch](const std::string& dir) {
                 const uint64_t k = batch.start + 1;
                 WriteBytes(dir + "/" + p.segment, p.bytes.substr(0, p.records[k].offset));
                 WriteBytes(dir + "/" + SegmentName(k), Header(2, k));
                 SignCheckpointFile(p, dir, p.Leaves(), batch.start);
               }});
  c.push_back({"segments: new last segment with only a header", "OK", [&p](const std::string& dir) {
                 WriteBytes(dir + "/" + SegmentName(p.entries.size()), Header(2, p.entries.size()));
               }});
  c.push_back({"segments: torn header of a new last segment (10 bytes)", "OK", [&p](const std::string& dir) {
                 WriteBytes(dir + "/" + SegmentName(p.entries.size()), Header(2, p.entries.size()).substr(0, 10));
               }});
  c.push_back({"segments: zeros after the last record of a sealed segment", "FAILED", [&p](const std::string& dir) {
                 const uint64_t k = p.BatchEnd(0) + 1;
                 WriteBytes(dir + "/" + p.segment, p.bytes.substr(0, p.records[k].offset) + std::string(100, '\0'));
                 WriteBytes(dir + "/" + SegmentName(k), Header(2, k) + p.bytes.substr(p.records[k].offset));
               }});

  // ---- records: corruption (erasure_test, ledger_test)
  c.push_back({"record: flipped byte in entry 4", "FAILED",
               EditSegment(p, [&p](std::string& b) { Flip(b, p.records[4].offset + (p.records[4].end() - p.records[4].offset) / 2 + 4); })});
  c.push_back({"record: CRC field flipped, middle entry", "FAILED",
               EditSegment(p, [&p](std::string& b) { Flip(b, p.records[3].offset + 4, 1); })});
  c.push_back({"record: CRC field flipped, last entry", "FAILED",
               EditSegment(p, [&p, last](std::string& b) { Flip(b, p.records[last].offset + 4, 1); })});
  c.push_back({"record: length of an acknowledged record +16 MiB", "FAILED",
               EditSegment(p, [&p](std::string& b) { Flip(b, p.records[3].offset + 3, 1); })});
  c.push_back({"record: wrong prev_hash with a valid CRC (broken chain)", "FAILED", EditSegment(p, [&p](std::string& b) {
                 v1::LedgerEntry e = p.entries[3];
                 std::string prev = e.prev_hash();
                 prev[0] ^= 1;
                 e.set_prev_hash(prev);
                 const std::string framed = Frame(e.SerializeAsString());
                 ASSERT_EQ(framed.size(), p.records[3].end() - p.records[3].offset);
                 b.replace(p.records[3].offset, framed.size(), framed);
               })});
  c.push_back({"record: wrong seq with a valid CRC", "FAILED", EditSegment(p, [&p](std::string& b) {
                 v1::LedgerEntry e = p.entries[3];
                 e.set_seq(4);
                 const std::string framed = Frame(e.SerializeAsString());
                 ASSERT_EQ(framed.size(), p.records[3].end() - p.records[3].offset);
                 b.replace(p.records[3].offset, framed.size(), framed);
               })});
  c.push_back({"record: acknowledged last entry cut in half", "FAILED",
               EditSegment(p, [&p, last](std::string& b) { b.resize(p.records[last].offset + (p.records[last].end() - p.records[last].offset) / 2); })});
  c.push_back({"record: whole acknowledged last batch cut", "FAILED",
               EditSegment(p, [&p, last](std::string& b) { b.resize(p.records[p.BatchStart(last)].offset); })});

  // ---- section 5: what a crash leaves (erasure_test, ledger_test, ledger_batch_test)
  c.push_back({"crash: torn tail, half a record appended", "OK",
               EditSegment(p, [&p, last](std::string& b) { b += b.substr(p.records[last].offset, (p.records[last].end() - p.records[last].offset) / 2); })});
  for (size_t bytes : {1, 7, 8})
    c.push_back({absl::StrCat("crash: torn tail, ", bytes, " header byte(s) appended"), "OK",
                 EditSegment(p, [&p, last, bytes](std::string& b) { b += b.substr(p.records[last].offset, bytes); })});
  for (size_t zeros : {3, 100, 65536})
    c.push_back({absl::StrCat("crash: ", zeros, " pre-zeroed bytes after the last record"), "OK",
                 EditSegment(p, [zeros](std::string& b) { b += std::string(zeros, '\0'); })});
  c.push_back({"crash: zero record header, then the rest of a write", "OK", EditSegment(p, [&p, last](std::string& b) {
                 b += std::string(8, '\0') + b.substr(p.records[last].offset + 8, 200) + std::string(300, '\0');
               })});
  // The last batch was being written when the process died: the checkpoint on disk is the one
  // signed before it.
  auto before_last_batch = [&p](const std::string& dir) {
    SignCheckpointFile(p, dir, p.Leaves(), p.BatchStart(p.entries.size() - 1));
  };
  c.push_back({"crash: complete batches past the checkpoint", "OK", before_last_batch});
  c.push_back({"crash: incomplete batch past the checkpoint", "OK", [&p, batch](const std::string& dir) {
                 WriteBytes(dir + "/" + p.segment, p.bytes.substr(0, p.records[batch.end].offset));
                 SignCheckpointFile(p, dir, p.Leaves(), batch.start);
               }});
  c.push_back({"crash: incomplete batch and a torn tail past the checkpoint", "OK", [&p, batch](const std::string& dir) {
                 const Record& r = p.records[batch.end];
                 WriteBytes(dir + "/" + p.segment, p.bytes.substr(0, r.offset + (r.end() - r.offset) / 2));
                 SignCheckpointFile(p, dir, p.Leaves(), batch.start);
               }});
  c.push_back({"crash: incomplete batch covered by the checkpoint", "FAILED", [&p, batch](const std::string& dir) {
                 WriteBytes(dir + "/" + p.segment, p.bytes.substr(0, p.records[batch.end].offset));
                 SignCheckpointFile(p, dir, p.Leaves(), batch.end + 1);
               }});
  // Torn writes over pre-zeroed space (prezero_test): one more record, never
  // acknowledged (no checkpoint covers it), written over zeros. It is a copy of the policy
  // activation, so that it spans several 512-byte sectors.
  const std::string big = Frame(p.records[activated].payload);
  auto appended = [&p, big](const std::function<void(std::string&, uint64_t, uint64_t)>& change, uint64_t zeros) {
    return [&p, big, change, zeros](const std::string& dir) {
      std::string b = p.bytes + big + std::string(zeros, '\0');
      const uint64_t from = p.bytes.size(), to = from + big.size();
      change(b, from, to);
      WriteBytes(dir + "/" + p.segment, b);
    };
  };
  EXPECT_GT(big.size(), 1100u) << "the appended record must span sectors";
  c.push_back({"crash: unacknowledged record whole, then zeros (wrong seq)", "FAILED",
               appended([](std::string&, uint64_t, uint64_t) {}, 65536)});
  c.push_back({"crash: a write whose start never reached the disk", "OK",
               appended([](std::string& b, uint64_t from, uint64_t) {
                 std::fill(b.begin() + from, b.begin() + (from / 512 + 1) * 512, '\0');
               }, 65536)});
  c.push_back({"crash: a record whose later sector never reached the disk", "OK",
               appended([](std::string& b, uint64_t from, uint64_t to) {
                 const uint64_t s0 = ((from + 8) / 512 + 1) * 512;
                 std::fill(b.begin() + s0, b.begin() + std::min<uint64_t>(s0 + 512, to), '\0');
               }, 65536)});
  c.push_back({"crash: a record whose last sector never reached the disk", "OK",
               appended([](std::string& b, uint64_t from, uint64_t to) {
                 const uint64_t s0 = std::max<uint64_t>((to - 1) / 512 * 512, from + 8);
                 std::fill(b.begin() + s0, b.begin() + to, '\0');
               }, 65536)});
  c.push_back({"crash: flipped bit in a record over pre-zeroed space", "FAILED",
               appended([](std::string& b, uint64_t from, uint64_t to) { Flip(b, (from + to) / 2, 0x10); }, 65536)});
  // A torn record of filler whose end lies `end_in_sector` bytes into a sector, with its last
  // `zeros` bytes never written, then `prezeroed` zero bytes: the sector rule of 5.2.
  auto lost_end = [&p](uint64_t end_in_sector, uint64_t zeros, uint64_t prezeroed) {
    return [&p, end_in_sector, zeros, prezeroed](const std::string& dir) {
      const uint64_t start = p.bytes.size();
      const uint64_t length = 600 + (end_in_sector + 4 * 512 - (start + 8 + 600) % 512) % 512;
      std::string b = p.bytes + Frame(std::string(length, 'x'));
      ASSERT_EQ(b.size() % 512, end_in_sector);
      std::fill(b.end() - zeros, b.end(), '\0');
      b += std::string(prezeroed, '\0');
      WriteBytes(dir + "/" + p.segment, b);
    };
  };
  c.push_back({"crash: a record's last 5 bytes, alone in the last sector, unwritten", "OK", lost_end(5, 5, 0)});
  c.push_back({"crash: the same, then pre-zeroed space", "OK", lost_end(5, 5, 4096)});
  c.push_back({"crash: a record's last 7 bytes zero mid-sector, end of file", "FAILED", lost_end(100, 7, 0)});
  // A write torn at any byte (5.2's zero-end rule): zeros from inside the record on, past its
  // end into pre-zeroed space, or at least 8 of them.
  c.push_back({"crash: a record's last 7 bytes zero mid-sector, then pre-zeroed space", "OK",
               lost_end(100, 7, 4096)});
  c.push_back({"crash: a record's last byte zero mid-sector, then 1 pre-zeroed byte", "OK",
               lost_end(100, 1, 1)});
  c.push_back({"crash: a record's last 8 bytes zero mid-sector, end of file", "OK", lost_end(100, 8, 0)});
  c.push_back({"crash: a record torn 40 bytes in, then pre-zeroed space", "OK",
               appended([](std::string& b, uint64_t from, uint64_t to) {
                 std::fill(b.begin() + from + 40, b.begin() + to, '\0');
               }, 4096)});
  c.push_back({"crash: a record torn 3 bytes into its header, then pre-zeroed space", "OK",
               appended([](std::string& b, uint64_t from, uint64_t to) {
                 std::fill(b.begin() + from + 3, b.begin() + to, '\0');
               }, 4096)});

  // ---- section 4: the checkpoint (ledger_test, audit_test, erasure_test)
  c.push_back({"checkpoint: missing over a non-empty log", "FAILED",
               [](const std::string& dir) { fs::remove(dir + "/checkpoint"); }});
  c.push_back({"checkpoint: missing, and no segment (empty log)", "OK", [](const std::string& dir) {
                 fs::remove_all(dir);
                 fs::create_directories(dir);
               }});
  c.push_back({"checkpoint: signed by another key", "FAILED", [&p](const std::string& dir) {
                 const ledger::Checkpoint cp{p.origin, p.entries.size(), Root(p.Leaves(), 0, p.entries.size())};
                 WriteBytes(dir + "/checkpoint", ledger::SignCheckpoint(cp, crypto::Ed25519PrivateKey::Generate().value()));
               }});
  for (uint64_t size : {uint64_t{n}, uint64_t{p.BatchStart(last)}})
    c.push_back({absl::StrCat("checkpoint: another root at size ", size), "FAILED", [&p, size](const std::string& dir) {
                   WriteBytes(dir + "/checkpoint", ledger::SignCheckpoint({p.origin, size, crypto::Sha256("other")}, *p.lethed_key));
                 }});
  c.push_back({"checkpoint: covers one entry more than the log", "FAILED", [&p](const std::string& dir) {
                 std::vector<std::string> leaves = p.Leaves();
                 leaves.push_back(crypto::Sha256("x"));
                 SignCheckpointFile(p, dir, leaves, leaves.size());
               }});
  c.push_back({"checkpoint: ends inside a batch", "FAILED", [&p, batch](const std::string& dir) {
                 SignCheckpointFile(p, dir, p.Leaves(), batch.start + 1);
               }});
  c.push_back({"checkpoint: under another origin (lethed's key)", "FAILED", [&p](const std::string& dir) {
                 SignCheckpointFile(p, dir, p.Leaves(), p.entries.size(), "other.example/log");
               }});
  c.push_back({"checkpoint: an extra signature by an unknown key", "OK", [&p](const std::string& dir) {
                 const std::string note = ReadBytes(dir + "/checkpoint");
                 const auto stranger = crypto::Ed25519PrivateKey::Generate().value();
                 const ledger::Checkpoint cp{"stranger.example", p.entries.size(), Root(p.Leaves(), 0, p.entries.size())};
                 const std::string other = ledger::SignCheckpoint(cp, stranger);
                 WriteBytes(dir + "/checkpoint", note + other.substr(other.find("\n\n") + 2));
               }});

  // ---- section 4.1: the checkpoint history (checkpoint_history_test, kept_checkpoints_test)
  c.push_back({"history: none (a ledger from before the history)", "OK",
               [](const std::string& dir) { fs::remove(dir + "/" + kHistory); }});
  c.push_back({"history: rewritten to hold only the latest checkpoint", "OK", [&p](const std::string& dir) {
                 WriteBytes(dir + "/" + kHistory, History({ReadBytes(dir + "/checkpoint")}));
               }});
  c.push_back({"history: a note signed by another key", "OK", [&p](const std::string& dir) {
                 const ledger::Checkpoint cp{p.origin, 1, Root(p.Leaves(), 0, 1)};
                 const std::string stranger = ledger::SignCheckpoint(cp, crypto::Ed25519PrivateKey::Generate().value());
                 WriteBytes(dir + "/" + kHistory, History({stranger, ReadBytes(dir + "/checkpoint")}));
               }});
  c.push_back({"history: a note of another root at a smaller size", "OK", [&p](const std::string& dir) {
                 const std::string other = ledger::SignCheckpoint({p.origin, 1, crypto::Sha256("x")}, *p.lethed_key);
                 WriteBytes(dir + "/" + kHistory, History({other, ReadBytes(dir + "/checkpoint")}));
               }});
  c.push_back({"history: log and checkpoint cut back below a signed checkpoint", "OK", [&p](const std::string& dir) {
                 // The history keeps the checkpoint over the whole log; the log, and the
                 // checkpoint file, are as they were one batch earlier.
                 const std::string history = ReadBytes(dir + "/" + kHistory);
                 const size_t keep = p.BatchStart(p.entries.size() - 1);
                 WriteBytes(dir + "/" + p.segment, p.bytes.substr(0, p.records[keep].offset));
                 SignCheckpointFile(p, dir, p.Leaves(), keep);
                 WriteBytes(dir + "/" + kHistory, history);
               }});
  c.push_back({"history: garbage after the last record", "OK", [](const std::string& dir) {
                 WriteBytes(dir + "/" + kHistory, ReadBytes(dir + "/" + kHistory) + "garbage that is no record");
               }});

  // ---- section 2: batches and unknown fields, re-chained and re-signed with lethed's key
  c.push_back({"batch: a mark that does not count down", "FAILED",
               Rewrite(p, [batch](auto& e) { e[batch.start + 1].set_batch_remaining(e[batch.start].batch_remaining()); })});
  c.push_back({"batch: a batch that ends early", "FAILED", Rewrite(p, [submitted](auto& e) {
                 // Alice's request and its three commands are marked 3, 2, 1, 0: make it 3, 0.
                 EXPECT_GE(e[submitted].batch_remaining(), 2u);
                 e[submitted + 1].set_batch_remaining(0);
               })});
  c.push_back({"entry: unknown protobuf field", "FAILED", [&p](const std::string& dir) {
                 WriteEntries(p, dir, p.entries, [](size_t i, std::string& payload) {
                   if (i == 3) payload += std::string("\x98\x06\x01", 3);  // field 99, varint 1
                 });
               }});
  c.push_back({"entry: unknown protobuf field, --allow-unknown-fields", "OK", c.back().damage, {"--allow-unknown-fields"}});
  auto unknown_in_receipt = [&p, first_receipt](const std::string& dir) {
    std::vector<v1::LedgerEntry> e = p.entries;
    auto* rr = e[first_receipt].mutable_receipt_recorded();
    const std::string body = rr->receipt().body() + std::string("\x98\x06\x01", 3);
    *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, body, p.agent_keys.at(rr->domain()));
    WriteEntries(p, dir, e);
  };
  c.push_back({"receipt: unknown protobuf field (re-signed by the agent)", "FAILED", unknown_in_receipt});
  c.push_back({"receipt: unknown protobuf field, --allow-unknown-fields", "OK", unknown_in_receipt, {"--allow-unknown-fields"}});
  c.push_back({"entry: no body", "FAILED", Rewrite(p, [](auto& e) { e.emplace_back(); })});

  // ---- section 7: who did it (auditor_test, security_test)
  c.push_back({"actor: LogCreated names another key", "FAILED", Rewrite(p, [](auto& e) {
                 e[0].mutable_log_created()->set_control_plane_public_key(
                     crypto::Ed25519PrivateKey::Generate().value().public_key().raw());
               })});
  c.push_back({"actor: key enrolled by an operator", "FAILED",
               Rewrite(p, [enrolled](auto& e) { e[enrolled].mutable_actor()->set_role("operator"); })});
  auto unauthenticated = Rewrite(p, [enrolled](auto& e) { e[enrolled].clear_actor(); });
  c.push_back({"actor: key enrolled with no actor", "FAILED", unauthenticated});
  c.push_back({"actor: key enrolled with no actor, --accept-unauthenticated", "OK", unauthenticated,
               {"--accept-unauthenticated"}});
  auto insecure = Rewrite(p, [grant](auto& e) { e[grant].mutable_actor()->set_role("insecure"); });
  c.push_back({"actor: consent change by role insecure", "FAILED", insecure});
  c.push_back({"actor: consent change by role insecure, --accept-unauthenticated", "OK", insecure,
               {"--accept-unauthenticated"}});
  c.push_back({"actor: request submitted by an auditor", "FAILED",
               Rewrite(p, [submitted](auto& e) { e[submitted].mutable_actor()->set_role("auditor"); })});
  c.push_back({"actor: policy activated by an operator", "FAILED",
               Rewrite(p, [activated2](auto& e) { e[activated2].mutable_actor()->set_role("operator"); })});

  // ---- keys and receipts (auditor_test, hostile_test, security_test)
  c.push_back({"receipt: signed by a key never enrolled (forged)", "FAILED", Rewrite(p, [first_receipt](auto& e) {
                 auto* rr = e[first_receipt].mutable_receipt_recorded();
                 *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, rr->receipt().body(),
                                                       crypto::Ed25519PrivateKey::Generate().value());
               })});
  c.push_back({"receipt: signature bytes altered", "FAILED", Rewrite(p, [first_receipt](auto& e) {
                 auto* env = e[first_receipt].mutable_receipt_recorded()->mutable_receipt();
                 std::string sig = env->signature();
                 sig[10] ^= 1;
                 env->set_signature(sig);
               })});
  c.push_back({"receipt: signed by another domain's key", "FAILED", Rewrite(p, [&p, first_receipt](auto& e) {
                 auto* rr = e[first_receipt].mutable_receipt_recorded();
                 const std::string other = rr->domain() == "growth" ? "billing" : "growth";
                 *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, rr->receipt().body(), p.agent_keys.at(other));
               })});
  c.push_back({"receipt: command digest differs from the command's", "FAILED", Rewrite(p, [&p, first_receipt](auto& e) {
                 const std::string cmd = e[first_receipt].receipt_recorded().command_id();
                 for (auto& x : e)
                   if (x.has_command_issued() && x.command_issued().command_id() == cmd)
                     x.mutable_command_issued()->set_command_digest(crypto::Sha256("another command"));
               })});
  c.push_back({"receipt: COMPLETED without verified_zero_remaining (re-signed)", "FAILED",
               Rewrite(p, [&p, first_receipt](auto& e) {
                 auto* rr = e[first_receipt].mutable_receipt_recorded();
                 v1::Receipt r;
                 ASSERT_TRUE(r.ParseFromString(rr->receipt().body()));
                 r.set_verified_zero_remaining(false);
                 *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), p.agent_keys.at(rr->domain()));
               })});
  c.push_back({"receipt: names another request than its signed body", "FAILED", Rewrite(p, [first_receipt](auto& e) {
                 e[first_receipt].mutable_receipt_recorded()->set_request_id(std::string(32, 'a'));
               })});
  c.push_back({"receipt: by a key revoked before it", "FAILED", Rewrite(p, [&p, first_receipt](auto& e) {
                 const auto& rr = e[first_receipt].receipt_recorded();
                 v1::LedgerEntry rev;
                 *rev.mutable_actor() = e[p.Find([](const v1::LedgerEntry& x) { return x.has_agent_enrolled(); })].actor();
                 rev.mutable_agent_key_revoked()->set_domain(rr.domain());
                 rev.mutable_agent_key_revoked()->set_key_id(rr.receipt().key_id());
                 e.insert(e.begin() + p.BatchStart(first_receipt), rev);
               })});
  c.push_back({"receipt: a receipt dropped before its request's completion", "FAILED", Rewrite(p, [&p, first_receipt](auto& e) {
                 size_t victim = first_receipt;
                 while (!(e[victim].has_receipt_recorded() && e[victim].batch_remaining() == 0 &&
                          e[victim - 1].batch_remaining() == 0))
                   ++victim;
                 e.erase(e.begin() + victim);
               })});
  c.push_back({"completion: outcome FAILED despite COMPLETED receipts", "FAILED",
               Rewrite(p, [completed](auto& e) { e[completed].mutable_request_completed()->set_outcome(v1::RequestCompleted::FAILED); })});
  c.push_back({"keys: a key enrolled twice for its domain", "FAILED",
               Rewrite(p, [enrolled](auto& e) { e.insert(e.begin() + enrolled + 1, e[enrolled]); })});
  c.push_back({"keys: revocation of a key never enrolled", "FAILED",
               Rewrite(p, [revoked](auto& e) { e[revoked].mutable_agent_key_revoked()->set_key_id("0123456789abcdef"); })});
  c.push_back({"keys: revocation of a key already revoked", "FAILED",
               Rewrite(p, [revoked](auto& e) { e.insert(e.begin() + revoked + 1, e[revoked]); })});
  c.push_back({"keys: enrolled key_id is not its key's id", "?", Rewrite(p, [enrolled](auto& e) {
                 e[enrolled].mutable_agent_enrolled()->set_key_id("0123456789abcdef");
               })});

  // ---- the plan (auditor_test, governance_test)
  c.push_back({"plan: drops a target domain", "FAILED", Rewrite(p, [submitted](auto& e) {
                 e[submitted].mutable_request_submitted()->mutable_target_domains()->RemoveLast();
               })});
  c.push_back({"plan: adds a domain the policy lacks", "FAILED",
               Rewrite(p, [submitted](auto& e) { e[submitted].mutable_request_submitted()->add_target_domains("d9"); })});
  c.push_back({"plan: planned with another policy hash", "FAILED", Rewrite(p, [submitted](auto& e) {
                 e[submitted].mutable_request_submitted()->set_policy_hash(crypto::Sha256("another policy"));
               })});
  c.push_back({"plan: a waiting domain's missing types changed", "FAILED", Rewrite(p, [](auto& e) {
                 for (auto& x : e)
                   if (x.has_request_submitted() && x.request_submitted().needs_identity_size() > 0) {
                     x.mutable_request_submitted()->mutable_needs_identity(0)->add_identity_types("email");
                     return;
                   }
               })});
  c.push_back({"plan: identities added target a domain that was not waiting", "FAILED",
               Rewrite(p, [added](auto& e) { e[added].mutable_identities_added()->add_target_domains("growth"); })});
  c.push_back({"plan: identities added miss a domain they complete", "FAILED", Rewrite(p, [added](auto& e) {
                 e[added].mutable_identities_added()->mutable_target_domains()->RemoveLast();
               })});
  c.push_back({"plan: a command for a domain that is not a target", "FAILED", Rewrite(p, [&p, command](auto& e) {
                 // Carol's request waits for user_id in assessments: a command for it is premature.
                 size_t i = p.Find([](const v1::LedgerEntry& x) {
                   return x.has_request_submitted() && x.request_submitted().needs_identity_size() > 0;
                 });
                 v1::LedgerEntry cmd = e[command];
                 cmd.clear_actor();
                 cmd.set_batch_remaining(0);
                 cmd.mutable_command_issued()->set_request_id(e[i].request_submitted().request_id());
                 cmd.mutable_command_issued()->set_domain(e[i].request_submitted().needs_identity(0).domain());
                 cmd.mutable_command_issued()->set_command_id(std::string(32, 'c'));
                 e.insert(e.begin() + p.BatchEnd(i) + 1, cmd);
               })});
  c.push_back({"plan: command's domain_policy_hash altered", "?", Rewrite(p, [command](auto& e) {
                 e[command].mutable_command_issued()->set_domain_policy_hash(crypto::Sha256("another section"));
               })});

  // ---- policies (auditor_test, governance_test)
  c.push_back({"policy: recorded hash altered", "FAILED", Rewrite(p, [activated](auto& e) {
                 e[activated].mutable_policy_activated()->set_policy_hash(crypto::Sha256("another policy"));
               })});
  c.push_back({"policy: YAML altered, hash kept", "FAILED", Rewrite(p, [activated](auto& e) {
                 std::string yaml = e[activated].policy_activated().policy_yaml();
                 yaml.replace(yaml.find("60d"), 3, "90d");
                 e[activated].mutable_policy_activated()->set_policy_yaml(yaml);
               })});
  c.push_back({"policy: YAML invalid", "FAILED", Rewrite(p, [activated](auto& e) {
                 std::string yaml = e[activated].policy_activated().policy_yaml();
                 yaml.replace(yaml.find("action: delete"), 14, "action: shred");
                 e[activated].mutable_policy_activated()->set_policy_yaml(yaml);
               })});
  c.push_back({"policy: activation numbers skip (1, 3)", "FAILED",
               Rewrite(p, [activated2](auto& e) { e[activated2].mutable_policy_activated()->set_activation(3); })});

  // ---- deadlines (auditor_test, governance_test)
  c.push_back({"deadline: extensions beyond max_extension", "FAILED", Rewrite(p, [extended](auto& e) {
                 auto* x = e[extended].mutable_deadline_extended();
                 const int64_t more = 61 * 86400 - x->extension_seconds();
                 x->set_extension_seconds(x->extension_seconds() + more);
                 x->set_new_due_unix_ms(x->new_due_unix_ms() + more * 1000);
               })});
  c.push_back({"deadline: new due date off by 1 ms", "FAILED", Rewrite(p, [extended](auto& e) {
                 auto* x = e[extended].mutable_deadline_extended();
                 x->set_new_due_unix_ms(x->new_due_unix_ms() + 1);
               })});
  c.push_back({"deadline: a negative extension", "FAILED", Rewrite(p, [extended](auto& e) {
                 auto* x = e[extended].mutable_deadline_extended();
                 x->set_new_due_unix_ms(x->new_due_unix_ms() - 2 * x->extension_seconds() * 1000);
                 x->set_extension_seconds(-x->extension_seconds());
               })});

  // ---- consent (auditor_test, consent_test)
  c.push_back({"consent: withdrawal names another erasure", "FAILED", Rewrite(p, [withdrawal](auto& e) {
                 e[withdrawal].mutable_consent_changed()->set_erasure_request_id(std::string(32, 'b'));
               })});
  c.push_back({"consent: erasure claims another change id", "FAILED", Rewrite(p, [consent_erasure](auto& e) {
                 e[consent_erasure].mutable_request_submitted()->set_consent_change_id(std::string(32, 'd'));
               })});
  c.push_back({"consent: a grant that names an erasure", "FAILED",
               Rewrite(p, [withdrawal](auto& e) { e[withdrawal].mutable_consent_changed()->set_status(v1::GRANTED); })});
  c.push_back({"consent: token of 31 bytes", "FAILED", Rewrite(p, [grant](auto& e) {
                 e[grant].mutable_consent_changed()->mutable_subject()->set_token(std::string(31, 't'));
               })});
  c.push_back({"consent: no status", "FAILED", Rewrite(p, [grant](auto& e) {
                 e[grant].mutable_consent_changed()->set_status(v1::CONSENT_STATUS_UNSPECIFIED);
               })});
  c.push_back({"consent: policy_hash altered", "?", Rewrite(p, [grant](auto& e) {
                 e[grant].mutable_consent_changed()->set_policy_hash(crypto::Sha256("another policy"));
               })});

  // ---- section 2.1 and the rule table of section 7 (audit_rules_test): each case breaks one
  // rule on the realistic ledger; the "OK" ones are near misses that keep it.
  const v1::Actor admin = E[enrolled].actor();
  const v1::Actor operator_actor = E[grant].actor();
  const std::string active_hash = E[activated2].policy_activated().policy_hash();
  auto at_end = [](std::vector<v1::LedgerEntry>& e, v1::LedgerEntry x) {
    x.set_batch_remaining(0);
    x.set_time_unix_ms(e.back().time_unix_ms());
    e.push_back(x);
  };
  auto change = [operator_actor, active_hash](const std::string& id, const std::string& purpose, v1::ConsentStatus status,
                    const std::string& token, const std::string& erasure) {
    v1::LedgerEntry x;
    *x.mutable_actor() = operator_actor;
    auto* cc = x.mutable_consent_changed();
    cc->set_change_id(id);
    cc->mutable_subject()->set_type("email");
    cc->mutable_subject()->set_token(token);
    cc->set_purpose(purpose);
    cc->set_status(status);
    cc->set_source("preference-centre");
    cc->set_policy_hash(active_hash);
    cc->set_erasure_request_id(erasure);
    return x;
  };
  const std::string token = crypto::Sha256("a subject never seen");
  c.push_back({"S6: an entry earlier than the one before", "FAILED", Rewrite(p, [completed](auto& e) {
                 e[completed].set_time_unix_ms(e[completed - 1].time_unix_ms() - 1);
               })});
  c.push_back({"L1: entry 0 is not LogCreated", "FAILED", Rewrite(p, [enrolled](auto& e) { e[0] = e[enrolled]; })});
  c.push_back({"L3: a second LogCreated", "FAILED", Rewrite(p, [at_end](auto& e) { at_end(e, e[0]); })});
  auto empty_role = Rewrite(p, [enrolled](auto& e) { e[enrolled].mutable_actor()->set_role(""); });
  c.push_back({"W2: key enrolled by an actor with no role", "FAILED", empty_role});
  c.push_back({"W2: key enrolled by an actor with no role, --accept-unauthenticated", "OK", empty_role,
               {"--accept-unauthenticated"}});
  c.push_back({"K1: an enrolled key that is no curve point", "FAILED", Rewrite(p, [admin, at_end](auto& e) {
                 v1::LedgerEntry x;
                 *x.mutable_actor() = admin;
                 std::string raw(32, '\0');
                 raw[0] = 2;  // y = 2 is not the y of any Ed25519 point
                 x.mutable_agent_enrolled()->set_domain("d9");
                 x.mutable_agent_enrolled()->set_public_key(raw);
                 x.mutable_agent_enrolled()->set_key_id(crypto::Hex(crypto::Sha256(raw).substr(0, 8)));
                 at_end(e, x);
               })});
  c.push_back({"K1: an enrolled key of 31 bytes", "FAILED", Rewrite(p, [admin, at_end](auto& e) {
                 v1::LedgerEntry x;
                 *x.mutable_actor() = admin;
                 const std::string raw = crypto::Ed25519PrivateKey::Generate().value().public_key().raw().substr(1);
                 x.mutable_agent_enrolled()->set_domain("d9");
                 x.mutable_agent_enrolled()->set_public_key(raw);
                 x.mutable_agent_enrolled()->set_key_id(crypto::Hex(crypto::Sha256(raw).substr(0, 8)));
                 at_end(e, x);
               })});
  c.push_back({"K6: a revocation reason with an e-mail address", "FAILED", Rewrite(p, [revoked](auto& e) {
                 e[revoked].mutable_agent_key_revoked()->set_reason("asked by ops@example.com");
               })});
  c.push_back({"K6: a revocation reason with a date (near miss)", "OK", Rewrite(p, [revoked](auto& e) {
                 e[revoked].mutable_agent_key_revoked()->set_reason("host decommissioned 2026-11-25, ticket 4711");
               })});
  c.push_back({"Q1: a request id submitted twice", "FAILED",
               Rewrite(p, [submitted, at_end](auto& e) { at_end(e, e[submitted]); })});
  c.push_back({"Q2: a request with no domain in scope", "FAILED", Rewrite(p, [submitted](auto& e) {
                 e[submitted].mutable_request_submitted()->clear_target_domains();
                 e[submitted].mutable_request_submitted()->clear_needs_identity();
               })});
  c.push_back({"Q3: an identity token of 31 bytes", "FAILED", Rewrite(p, [submitted](auto& e) {
                 e[submitted].mutable_request_submitted()->mutable_subject(0)->set_token(std::string(31, 't'));
               })});
  c.push_back({"Q4: a sealed request that reads as text", "FAILED", Rewrite(p, [submitted](auto& e) {
                 e[submitted].mutable_request_submitted()->set_sealed("email=alice@example.com reason=ticket");
               })});
  c.push_back({"Q4: a sealed request of 27 bytes", "FAILED", Rewrite(p, [submitted](auto& e) {
                 e[submitted].mutable_request_submitted()->set_sealed(crypto::Sha256("x").substr(0, 27));
               })});
  c.push_back({"Q7: a domain both targeted and waiting", "FAILED", Rewrite(p, [submitted](auto& e) {
                 auto* need = e[submitted].mutable_request_submitted()->add_needs_identity();
                 need->set_domain(e[submitted].request_submitted().target_domains(0));
                 need->add_identity_types("email");
               })});
  c.push_back({"Q8: requests before any policy was activated", "FAILED",
               Rewrite(p, [activated](auto& e) { e.erase(e.begin() + activated); })});
  c.push_back({"M3: a command after its request completed", "FAILED", Rewrite(p, [command, at_end](auto& e) {
                 v1::LedgerEntry x = e[command];
                 x.mutable_command_issued()->set_command_id(std::string(32, 'e'));
                 at_end(e, x);
               })});
  c.push_back({"M5: a command digest of 31 bytes", "FAILED", Rewrite(p, [command](auto& e) {
                 e[command].mutable_command_issued()->set_command_digest(std::string(31, 'd'));
               })});
  c.push_back({"M6: a sealed command that reads as text", "FAILED", Rewrite(p, [command](auto& e) {
                 e[command].mutable_command_issued()->set_sealed_envelope("a command in clear for alice@example.com");
               })});
  c.push_back({"T3: a second receipt for a command", "FAILED", Rewrite(p, [first_receipt](auto& e) {
                 v1::LedgerEntry x = e[first_receipt];
                 x.set_batch_remaining(0);
                 e.insert(e.begin() + first_receipt + 1, x);
               })});
  c.push_back({"T4: a second receipt from a domain, for another command", "FAILED",
               Rewrite(p, [&p, first_receipt](auto& e) {
                 const auto& rr = e[first_receipt].receipt_recorded();
                 v1::LedgerEntry cmd;
                 for (const auto& x : e)
                   if (x.has_command_issued() && x.command_issued().command_id() == rr.command_id()) cmd = x;
                 cmd.clear_actor();
                 cmd.set_batch_remaining(0);
                 cmd.mutable_command_issued()->set_command_id(std::string(32, 'f'));
                 cmd.mutable_command_issued()->set_command_digest(crypto::Sha256("another command"));
                 v1::Receipt r;
                 ASSERT_TRUE(r.ParseFromString(rr.receipt().body()));
                 r.set_command_id(std::string(32, 'f'));
                 r.set_command_digest(crypto::Sha256("another command"));
                 v1::LedgerEntry rec = e[first_receipt];
                 rec.set_batch_remaining(0);
                 rec.mutable_receipt_recorded()->set_command_id(std::string(32, 'f'));
                 *rec.mutable_receipt_recorded()->mutable_receipt() =
                     proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), p.agent_keys.at(rr.domain()));
                 e.insert(e.begin() + first_receipt + 1, {cmd, rec});
               })});
  auto resigned_receipt = [&p, first_receipt](std::function<void(v1::Receipt&)> edit) {
    return Rewrite(p, [&p, first_receipt, edit](auto& e) {
      auto* rr = e[first_receipt].mutable_receipt_recorded();
      v1::Receipt r;
      ASSERT_TRUE(r.ParseFromString(rr->receipt().body()));
      edit(r);
      *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), p.agent_keys.at(rr->domain()));
    });
  };
  c.push_back({"T11: a receipt without an outcome (re-signed)", "FAILED",
               resigned_receipt([](v1::Receipt& r) { r.set_outcome(v1::Receipt::OUTCOME_UNSPECIFIED); })});
  c.push_back({"T11: a REJECTED receipt (re-signed)", "FAILED",
               resigned_receipt([](v1::Receipt& r) { r.set_outcome(v1::Receipt::REJECTED); })});
  c.push_back({"T13: a receipt error with a phone number (re-signed)", "FAILED",
               resigned_receipt([](v1::Receipt& r) { r.set_error("call +44 20 7946 0958"); })});
  c.push_back({"T7: a receipt envelope with another payload_type", "FAILED", Rewrite(p, [first_receipt](auto& e) {
                 e[first_receipt].mutable_receipt_recorded()->mutable_receipt()->set_payload_type("lethe.v1.DeleteCommand");
               })});
  c.push_back({"D1: a completion of an unknown request", "FAILED", Rewrite(p, [completed](auto& e) {
                 e[completed].mutable_request_completed()->set_request_id(std::string(32, '9'));
               })});
  c.push_back({"D2: a request completed twice", "FAILED",
               Rewrite(p, [completed, at_end](auto& e) { at_end(e, e[completed]); })});
  c.push_back({"I1: identities added to an unknown request", "FAILED", Rewrite(p, [added](auto& e) {
                 e[added].mutable_identities_added()->set_request_id(std::string(32, '8'));
               })});
  c.push_back({"I2: identities added after the request completed", "FAILED",
               Rewrite(p, [added, at_end](auto& e) { at_end(e, e[added]); })});
  c.push_back({"I3: an added identity token of 31 bytes", "FAILED", Rewrite(p, [added](auto& e) {
                 e[added].mutable_identities_added()->mutable_subject(0)->set_token(std::string(31, 'u'));
               })});
  c.push_back({"I4: identities added for no domain", "FAILED", Rewrite(p, [added](auto& e) {
                 e[added].mutable_identities_added()->clear_target_domains();
               })});
  c.push_back({"I6: added identities sealed as text", "FAILED", Rewrite(p, [added](auto& e) {
                 e[added].mutable_identities_added()->set_sealed("user_id=91150023 in clear, not sealed");
               })});
  c.push_back({"X1: an extension of an unknown request", "FAILED", Rewrite(p, [extended](auto& e) {
                 e[extended].mutable_deadline_extended()->set_request_id(std::string(32, '7'));
               })});
  c.push_back({"X2: an extension after the request completed", "FAILED",
               Rewrite(p, [extended, at_end](auto& e) { at_end(e, e[extended]); })});
  c.push_back({"X6: an extension reason sealed as text", "FAILED", Rewrite(p, [extended](auto& e) {
                 e[extended].mutable_deadline_extended()->set_sealed_reason("identity verification pending, see ticket");
               })});
  c.push_back({"A: a policy source with an e-mail address (not free text, near miss)", "OK",
               Rewrite(p, [activated2](auto& e) {
                 e[activated2].mutable_policy_activated()->set_source("lethectl policy activate by root@example.com");
               })});
  c.push_back({"N3: a consent change without a purpose", "FAILED",
               Rewrite(p, [grant](auto& e) { e[grant].mutable_consent_changed()->clear_purpose(); })});
  c.push_back({"N4: a consent source with a phone number", "FAILED", Rewrite(p, [grant](auto& e) {
                 e[grant].mutable_consent_changed()->set_source("phone (555) 555-0100");
               })});
  c.push_back({"N4: a consent source with a date (near miss)", "OK", Rewrite(p, [grant](auto& e) {
                 e[grant].mutable_consent_changed()->set_source("signup-form-v3 2026-11-25");
               })});
  c.push_back({"N7: consent to a purpose the policy lacks", "FAILED", Rewrite(p, [grant](auto& e) {
                 e[grant].mutable_consent_changed()->set_purpose("newsletter");
               })});
  c.push_back({"N8: a first withdrawal of marketing that plans no erasure", "FAILED",
               Rewrite(p, [at_end, change, token](auto& e) {
                 at_end(e, change(std::string(32, '1'), "marketing", v1::WITHDRAWN, token, ""));
               })});
  c.push_back({"N10: a withdrawal of research that plans an erasure", "FAILED",
               Rewrite(p, [at_end, change, token](auto& e) {
                 at_end(e, change(std::string(32, '2'), "research", v1::WITHDRAWN, token, std::string(32, '3')));
               })});
  c.push_back({"N11: a second withdrawal in a row that plans an erasure", "FAILED",
               Rewrite(p, [withdrawal, at_end, active_hash](auto& e) {
                 v1::LedgerEntry x = e[withdrawal];
                 x.mutable_consent_changed()->set_change_id(std::string(32, '4'));
                 x.mutable_consent_changed()->set_erasure_request_id(std::string(32, '5'));
                 x.mutable_consent_changed()->set_policy_hash(active_hash);
                 at_end(e, x);
               })});
  c.push_back({"N11: a second withdrawal in a row that plans nothing (near miss)", "OK",
               Rewrite(p, [withdrawal, at_end, active_hash](auto& e) {
                 v1::LedgerEntry x = e[withdrawal];
                 x.mutable_consent_changed()->set_change_id(std::string(32, '6'));
                 x.mutable_consent_changed()->clear_erasure_request_id();
                 x.mutable_consent_changed()->set_policy_hash(active_hash);
                 at_end(e, x);
               })});
  c.push_back({"N: a grant of research for a new subject (near miss)", "OK", Rewrite(p, [at_end, change, token](auto& e) {
                 at_end(e, change(std::string(32, '7'), "research", v1::GRANTED, token, ""));
               })});

  // ---- section 6: the export (audit_test)
  const std::string size = std::to_string(n);
  c.push_back({"export: flipped byte in a hash tile", "FAILED", [size](const std::string& dir) {
                 std::string t = ReadBytes(dir + "/tile/0/000.p/" + size);
                 Flip(t, 40, 0x5a);
                 WriteBytes(dir + "/tile/0/000.p/" + size, t);
               }, {}, true});
  c.push_back({"export: flipped byte in an entry bundle", "FAILED", [size](const std::string& dir) {
                 std::string t = ReadBytes(dir + "/tile/entries/000.p/" + size);
                 Flip(t, t.size() / 2, 0x01);
                 WriteBytes(dir + "/tile/entries/000.p/" + size, t);
               }, {}, true});
  c.push_back({"export: agents.json lacks an enrolled key", "?", [](const std::string& dir) {
                 WriteBytes(dir + "/lethe/agents.json", "[]");
               }, {}, true});
  c.push_back({"export: agents.json removed", "?",
               [](const std::string& dir) { fs::remove(dir + "/lethe/agents.json"); }, {}, true});
  (void)export_dir;
  return c;
}

TEST(VerifierAgreement, TheVerifierWrittenFromFormatMdReachesLethectlsVerdictOnEveryCase) {
  std::string why;
  const std::string python = FindPython(&why);
  ASSERT_FALSE(python.empty())
      << "the Python verifier needs python3 with python3-protobuf, python3-cryptography and "
         "python3-yaml (tests/scripts/deps.sh installs them; LETHE_PYTHON3 names another "
         "interpreter). Tried:" << why;
  ASSERT_TRUE(fs::exists(kPythonVerifier)) << kPythonVerifier;

  // A realistic ledger: three domains, every kind of entry lethed writes.
  ASSERT_OK_AND_ASSIGN(auto mesh, Mesh::Start());  // assessments, growth, billing
  for (const Person& person : {kAlice, kBob, kCarol}) ASSERT_OK(mesh->Plant(person));
  // An erasure that completes in every domain.
  ASSERT_OK_AND_ASSIGN(v1::RequestView alice, mesh->EraseAndWait(kAlice, kWait));
  ASSERT_EQ(alice.state(), v1::COMPLETED);
  // Consent to marketing granted, then withdrawn: marketing is erase_on_withdrawal and
  // processed by growth only, so the withdrawal plans an erasure in growth.
  std::string consent_erasure;
  for (v1::ConsentStatus status : {v1::GRANTED, v1::WITHDRAWN}) {
    v1::ChangeConsentRequest req;
    req.mutable_identity()->set_type("email");
    req.mutable_identity()->set_value(kBob.email);
    req.set_purpose("marketing");
    req.set_status(status);
    req.set_source("signup-form-v3");
    v1::ConsentChangeView resp;
    grpc::ClientContext ctx;
    grpc::Status s = mesh->Consent()->Change(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    consent_erasure = resp.change().erasure_request_id();
  }
  ASSERT_FALSE(consent_erasure.empty());
  ASSERT_OK_AND_ASSIGN(v1::RequestView withdrawn, mesh->WaitDone(consent_erasure, kWait));
  ASSERT_EQ(withdrawn.state(), v1::COMPLETED);
  // Carol known by her email only: growth acts, assessments and billing wait for her user id;
  // the deadline is extended, then the user id is added and the request completes.
  std::string carol;
  {
    v1::SubmitRequest req;
    auto* id = req.add_identities();
    id->set_type("email");
    id->set_value(kCarol.email);
    req.set_reason("ticket 4711");
    v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = mesh->Requests()->Submit(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    carol = resp.request_id();
  }
  {
    v1::ExtendRequest req;
    req.set_request_id(carol);
    req.set_extension_seconds(14 * 86400);
    req.set_reason("identity verification: user id requested from the subject");
    v1::RequestView resp;
    grpc::ClientContext ctx;
    grpc::Status s = mesh->Requests()->Extend(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {
    v1::AddIdentitiesRequest req;
    req.set_request_id(carol);
    auto* id = req.add_identities();
    id->set_type("user_id");
    id->set_value(kCarol.user_id);
    v1::RequestView resp;
    grpc::ClientContext ctx;
    grpc::Status s = mesh->Requests()->AddIdentities(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_OK_AND_ASSIGN(v1::RequestView carol_done, mesh->WaitDone(carol, kWait));
  ASSERT_EQ(carol_done.state(), v1::COMPLETED);
  // An access request for Bob: parts gathered in every domain, the package exported, and its
  // release recorded.
  {
    v1::SubmitRequest req = Mesh::ErasureOf(kBob, "subject access request");
    req.set_kind(v1::ACCESS);
    v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = mesh->Requests()->Submit(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_OK_AND_ASSIGN(v1::RequestView access, mesh->WaitDone(resp.request_id(), kWait));
    ASSERT_EQ(access.state(), v1::COMPLETED);
    v1::ExportRequest ex;
    ex.set_request_id(resp.request_id());
    v1::ExportResponse package;
    grpc::ClientContext ectx;
    s = mesh->Requests()->Export(&ectx, ex, &package);
    ASSERT_TRUE(s.ok()) << s.error_message();
    v1::ConfirmExportRequest confirm;
    confirm.set_request_id(resp.request_id());
    confirm.set_package_sha256(package.package_sha256());
    v1::ConfirmExportResponse released;
    grpc::ClientContext cctx;
    s = mesh->Requests()->ConfirmExport(&cctx, confirm, &released);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // A second policy (a 10-day deadline; the domains' sections, and so the agents' policies,
  // are unchanged), and an erasure planned with it.
  std::string v2 = MeshPolicy(mesh->domains());
  v2.replace(v2.find("erasure: 30d"), 12, "erasure: 10d");
  ASSERT_OK(lethe::WriteFileAtomic(mesh->work_dir() + "/policy-v2.yaml", v2, 0644));
  CommandResult act = RunLethectl(*mesh, {"policy", "activate", mesh->work_dir() + "/policy-v2.yaml"});
  ASSERT_EQ(act.exit_code, 0) << act.output;
  ASSERT_OK_AND_ASSIGN(v1::RequestView bob, mesh->EraseAndWait(kBob, kWait));
  ASSERT_EQ(bob.state(), v1::COMPLETED);
  // A key rotation: a new key for billing, then the old one revoked.
  ASSERT_OK(crypto::GenerateKeyFiles(mesh->work_dir() + "/keys/billing-2"));
  std::string new_key_id;
  {
    v1::EnrollAgentRequest req;
    req.set_domain("billing");
    ASSERT_OK_AND_ASSIGN(std::string pem, lethe::ReadFile(mesh->work_dir() + "/keys/billing-2.pub"));
    req.set_public_key_pem(pem);
    v1::AgentView resp;
    grpc::ClientContext ctx;
    grpc::Status s = mesh->Agents()->Enroll(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    new_key_id = resp.key_id();
  }
  {
    v1::ListAgentsResponse list;
    grpc::ClientContext ctx;
    grpc::Status s = mesh->Agents()->List(&ctx, v1::ListAgentsRequest(), &list);
    ASSERT_TRUE(s.ok()) << s.error_message();
    v1::RevokeAgentKeyRequest req;
    for (const auto& a : list.agents())
      if (a.domain() == "billing" && a.key_id() != new_key_id) req.set_key_id(a.key_id());
    ASSERT_FALSE(req.key_id().empty());
    req.set_domain("billing");
    req.set_reason("rotated");
    v1::AgentView resp;
    grpc::ClientContext ctx2;
    s = mesh->Agents()->Revoke(&ctx2, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const std::string export_dir = mesh->work_dir() + "/export";
  CommandResult ex = RunLethectl(*mesh, {"ledger", "export", "--out", export_dir, "--public-key", mesh->lethed_pub()});
  ASSERT_EQ(ex.exit_code, 0) << ex.output;
  for (const auto& d : mesh->domains()) mesh->StopAgent(d);
  mesh->StopLethed();  // a clean stop: the zeros are cut, a checkpoint covers everything

  // The pristine ledger, and what a forger needs.
  Pristine p;
  p.ledger_dir = mesh->work_dir() + "/pristine/ledger";
  CopyTree(mesh->data_dir() + "/ledger", p.ledger_dir);
  const auto segments = SegmentFiles(p.ledger_dir);
  ASSERT_EQ(segments.size(), 1u) << "the cases assume the whole log is in one segment";
  p.segment = segments[0];
  p.bytes = ReadBytes(p.ledger_dir + "/" + p.segment);
  p.records = Records(p.bytes);
  ASSERT_EQ(p.records.back().end(), p.bytes.size()) << "a cleanly closed segment ends with its last record";
  for (const Record& r : p.records) {
    v1::LedgerEntry e;
    ASSERT_TRUE(e.ParseFromString(r.payload));
    p.entries.push_back(e);
  }
  p.origin = p.entries[0].log_created().origin();
  ASSERT_OK_AND_ASSIGN(auto key, crypto::Ed25519PrivateKey::LoadFile(mesh->lethed_key()));
  p.lethed_key = key;
  for (const auto& d : mesh->domains()) {
    ASSERT_OK_AND_ASSIGN(auto agent_key, crypto::Ed25519PrivateKey::LoadFile(mesh->agent_key(d)));
    p.agent_keys.emplace(d, agent_key);
  }
  const std::string pub = mesh->lethed_pub();
  // LETHE_AGREEMENT_KEEP=DIR keeps the ledger, its export and lethed's public key, to run either
  // verifier on them by hand.
  if (const char* keep = std::getenv("LETHE_AGREEMENT_KEEP"); keep != nullptr && *keep != '\0') {
    CopyTree(p.ledger_dir, absl::StrCat(keep, "/data/ledger"));
    CopyTree(export_dir, absl::StrCat(keep, "/export"));
    fs::copy_file(pub, absl::StrCat(keep, "/lethed.pub"), fs::copy_options::overwrite_existing);
  }

  struct Row {
    std::string name, expect, lethectl, python;
  };
  std::vector<Row> rows;
  const std::vector<Case> cases = Cases(p, export_dir);
  ASSERT_FALSE(HasFailure());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.name);
    const std::string work = absl::StrCat(mesh->work_dir(), "/case-", i);
    Input in{work, c.bundle};
    if (c.bundle) {
      CopyTree(export_dir, work);
    } else {
      CopyTree(p.ledger_dir, work + "/ledger");
    }
    if (c.damage) c.damage(c.bundle ? work : work + "/ledger");
    ASSERT_FALSE(HasFatalFailure());
    const Verdict l = LethectlVerdict(in, pub, c.flags);
    const Verdict py = PythonVerdict(python, in, pub, c.flags);
    rows.push_back({c.name, c.expect, l.word, py.word});
    EXPECT_EQ(l.word, py.word) << "the verifiers disagree on \"" << c.name << "\"\n--- lethectl:\n"
                               << Head(l.output, 4) << "--- lethe_verify.py:\n" << Head(py.output, 4);
    EXPECT_TRUE(l.word == "OK" || l.word == "FAILED") << Tail(l.output, 12);
    EXPECT_TRUE(py.word == "OK" || py.word == "FAILED") << Tail(py.output, 12);
    if (c.expect != "?") {
      EXPECT_EQ(l.word, c.expect) << "lethectl, against the test suite's verdict:\n" << Head(l.output, 4);
    }
    if (l.word != py.word || std::getenv("LETHE_AGREEMENT_VERBOSE") != nullptr)
      std::printf("---- %s\n  lethectl: %s  python:   %s", c.name.c_str(), Head(l.output, 1).c_str(),
                  Head(py.output, 1).c_str());
    fs::remove_all(work);
  }

  std::printf("\n%-66s %-8s %-8s %-8s\n", "case", "expect", "lethectl", "python");
  for (const Row& r : rows)
    std::printf("%-66s %-8s %-8s %-8s%s\n", r.name.c_str(), r.expect.c_str(), r.lethectl.c_str(),
                r.python.c_str(), r.lethectl == r.python ? "" : "  <-- DISAGREE");
  std::fflush(stdout);
}

}  // namespace
}  // namespace lethe::testing
