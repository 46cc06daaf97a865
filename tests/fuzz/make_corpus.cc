// Writes the seed corpora of the fuzz targets: make_corpus OUT_DIR fills OUT_DIR/<target>/.
// Built by the default build, never run by ctest. The committed corpora came from
//
//   build-h/tests/fuzz/make_corpus tests/fuzz/corpus
//
// Every input is real: a ledger written by ledger::Ledger (with the fixed keys of
// fuzz_util.h), its checkpoint, its tlog-tiles export, commands and receipts signed as lethed
// and an agent sign them, and the policies of policies/. Each is checked by the code it seeds
// before it is written. Only entry 0's timestamp changes from one run to the next (Ledger::Open
// stamps LogCreated with the clock).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "audit/auditor.h"
#include "audit/tiles.h"
#include "cli/zip_writer.h"
#include "lethe/v1/certificate.pb.h"
#include "base/file_system.h"
#include "crypto/crypto.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/record_format.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/fuzz/fuzz_ledger.h"

namespace lethe::fuzz {
namespace {

namespace fs = std::filesystem;

// Thrown on any failure and caught in main, so that the stack unwinds and every TempDir is
// removed.
struct Failure {
  std::string what;
};

[[noreturn]] void Die(const std::string& what) { throw Failure{what}; }

void Check(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

std::string ReadOrDie(const std::string& path) {
  auto data = lethe::ReadFile(path);
  if (!data.ok()) Die("cannot read " + path + ": " + data.status().ToString());
  return *data;
}

void Put(const fs::path& dir, const std::string& name, std::string_view data) {
  fs::create_directories(dir);
  if (!WriteWholeFile((dir / name).string(), data)) Die("cannot write " + (dir / name).string());
  std::printf("%s (%zu bytes)\n", (dir / name).c_str(), data.size());
}

void PutU16(std::string* out, size_t n) {
  if (n > 0xFFFF) Die(absl::StrCat("a chunk of ", n, " bytes does not fit a u16 length"));
  out->push_back(static_cast<char>(n & 0xFF));
  out->push_back(static_cast<char>(n >> 8));
}

void PutU32(std::string* out, size_t n) {
  PutU16(out, n & 0xFFFF);
  PutU16(out, n >> 16);
}

// u16 length + bytes, per item.
std::string Chunks(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    PutU16(&out, s.size());
    out += s;
  }
  return out;
}

// Every regular file under `dir` as a tiles_fuzz archive: u8 path length, path, u32 length,
// content; in sorted order. With `resign`, the checkpoint is given as "checkpoint+sign",
// its body only, for tiles_fuzz to sign.
std::string Archive(const std::string& dir, bool resign) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).generic_string()] = ReadOrDie(e.path());
  }
  if (resign) {
    auto cp = ledger::ParseCheckpointUnverified(files["checkpoint"]);
    Check(cp.status(), "checkpoint");
    files.erase("checkpoint");
    files["checkpoint+sign"] = ledger::CheckpointBody(*cp);
  }
  std::string out;
  for (const auto& [path, content] : files) {
    out.push_back(static_cast<char>(path.size()));
    out += path;
    PutU32(&out, content.size());
    out += content;
  }
  return out;
}

constexpr char kRequestId[] = "3205a2775e08104bb030ae63fd22947a";
constexpr char kCommandId[] = "02f36a6c72d8a1b2c3d4e5f60718293a";       // to growth
constexpr char kOtherCommandId[] = "8f5038dd5e62a1b2c3d4e5f60718293a";  // to assessments

v1::DeleteCommand Command(const std::string& domain, const std::string& command_id,
                          const std::string& domain_policy_hash, int64_t issued_ms) {
  v1::DeleteCommand c;
  c.set_command_id(command_id);
  c.set_request_id(kRequestId);
  c.set_domain(domain);
  v1::SealedIdentities ids;
  auto* id = ids.add_identities();
  id->set_type("email");
  id->set_value("subject@example.invalid");
  id = ids.add_identities();
  id->set_type("user_id");
  id->set_value("u-0000");
  c.set_sealed_identities(crypto::SealTo(fuzz::AgentEncryptionKey().public_key(), ids.SerializeAsString()));
  c.set_recipient_key_id(fuzz::AgentEncryptionKey().public_key().KeyId());
  c.set_domain_policy_hash(domain_policy_hash);
  c.set_issued_at_unix_ms(issued_ms);
  c.set_not_after_unix_ms(issued_ms + 24 * 3600 * 1000);
  c.set_nonce(crypto::Sha256("nonce " + command_id).substr(0, 16));
  return c;
}

v1::SignedEnvelope Receipt(const std::string& domain, const std::string& command_id,
                           const std::string& digest, bool completed) {
  v1::Receipt r;
  r.set_command_id(command_id);
  r.set_request_id(kRequestId);
  r.set_domain(domain);
  r.set_command_digest(digest);
  r.set_outcome(completed ? v1::Receipt::COMPLETED : v1::Receipt::FAILED);
  r.set_verified_zero_remaining(completed);
  r.set_completed_at_unix_ms(kNowUnixMs);
  auto* t = r.add_tables();
  t->set_table(domain + ".contacts");
  t->set_action("delete");
  t->set_rows_affected(1);
  if (!completed) r.set_error("relation " + domain + ".contacts does not exist");
  return proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), AgentKey());
}

v1::ReceiptRecorded Recorded(const std::string& domain, const std::string& command_id,
                             const v1::SignedEnvelope& receipt) {
  v1::ReceiptRecorded rr;
  *rr.mutable_receipt() = receipt;
  rr.set_command_id(command_id);
  rr.set_request_id(kRequestId);
  rr.set_domain(domain);
  return rr;
}

// The caller lethed records for an entry a person caused (from a client certificate).
void SetActor(v1::LedgerEntry* e, const std::string& role) {
  v1::Actor* a = e->mutable_actor();
  a->set_role(role);
  a->set_name(role + "-1");
  a->set_spiffe_id("spiffe://lethe.local/lethe/" + role + "/" + role + "-1");
  a->set_certificate_sha256(crypto::Hex(crypto::Sha256("certificate of " + role + "-1")));
}

// The bodies of a small, complete log after LogCreated, planned with the sample policy
// (domains assessments, keyed by user_id, and growth, keyed by email): the policy, an agent
// key for each domain, one erasure with both identities (extended, commanded, receipted,
// completed), then 1 + `padding` consent changes.
std::vector<v1::LedgerEntry> Bodies(const std::string& policy_yaml, int padding) {
  auto policy = policies::Policy::Parse(policy_yaml, "sample.yaml");
  Check(policy.status(), "sample policy");
  std::vector<v1::LedgerEntry> out;
  const int64_t received = kNowUnixMs - 3600 * 1000;
  const int64_t due = received + int64_t{30} * 24 * 3600 * 1000;
  const std::vector<std::pair<std::string, std::string>> commands = {
      {"assessments", kOtherCommandId}, {kDomain, kCommandId}};

  v1::LedgerEntry e;
  auto* pa = e.mutable_policy_activated();
  pa->set_activation(1);
  pa->set_format_version(policy->version());
  pa->set_name(policy->name());
  pa->set_policy_hash(policy->Hash());
  pa->set_policy_yaml(policy_yaml);
  pa->set_source("lethectl policy activate");
  SetActor(&e, "admin");
  out.push_back(e);

  for (const auto& [domain, command_id] : commands) {
    e.Clear();
    auto* ae = e.mutable_agent_enrolled();
    ae->set_domain(domain);
    ae->set_public_key(AgentKey().public_key().raw());
    ae->set_key_id(AgentKey().public_key().KeyId());
    SetActor(&e, "admin");
    out.push_back(e);
  }

  e.Clear();
  auto* rs = e.mutable_request_submitted();
  rs->set_request_id(kRequestId);
  rs->set_kind(v1::RequestSubmitted::ERASURE);
  for (const char* type : {"email", "user_id"}) {
    auto* token = rs->add_subject();
    token->set_type(type);
    token->set_token(crypto::Sha256(absl::StrCat("token of the subject's ", type)));
  }
  rs->set_sealed(crypto::Sha256("sealed request (opaque here)"));
  rs->set_policy_hash(policy->Hash());
  for (const auto& [domain, command_id] : commands) rs->add_target_domains(domain);
  rs->set_received_unix_ms(received);
  rs->set_due_unix_ms(due);
  SetActor(&e, "operator");
  out.push_back(e);

  std::map<std::string, std::string> digests;
  for (const auto& [domain, command_id] : commands) {
    const std::string body =
        Command(domain, command_id, policy->DomainHash(domain), received).SerializeAsString();
    digests[domain] = crypto::Sha256(body);
    e.Clear();
    auto* ci = e.mutable_command_issued();
    ci->set_command_id(command_id);
    ci->set_request_id(kRequestId);
    ci->set_domain(domain);
    ci->set_command_digest(digests[domain]);
    ci->set_sealed_envelope(crypto::Sha256("sealed envelope (opaque here)"));
    ci->set_not_after_unix_ms(received + 24 * 3600 * 1000);
    ci->add_identity_types(domain == kDomain ? "email" : "user_id");
    ci->set_domain_policy_hash(policy->DomainHash(domain));
    out.push_back(e);
  }

  e.Clear();
  auto* de = e.mutable_deadline_extended();
  de->set_request_id(kRequestId);
  de->set_extension_seconds(14 * 24 * 3600);
  de->set_new_due_unix_ms(due + int64_t{14} * 24 * 3600 * 1000);
  de->set_sealed_reason(crypto::Sha256("sealed reason (opaque here)"));
  SetActor(&e, "operator");
  out.push_back(e);

  for (const auto& [domain, command_id] : commands) {
    e.Clear();
    *e.mutable_receipt_recorded() =
        Recorded(domain, command_id, Receipt(domain, command_id, digests[domain], /*completed=*/true));
    out.push_back(e);
  }

  e.Clear();
  e.mutable_request_completed()->set_request_id(kRequestId);
  e.mutable_request_completed()->set_outcome(v1::RequestCompleted::COMPLETED);
  out.push_back(e);

  for (int i = 0; i <= padding; ++i) {
    e.Clear();
    auto* cc = e.mutable_consent_changed();
    cc->set_change_id(crypto::Hex(crypto::Sha256(absl::StrCat("change ", i))).substr(0, 32));
    cc->mutable_subject()->set_type("email");
    cc->mutable_subject()->set_token(crypto::Sha256(absl::StrCat("token ", i)));
    cc->set_purpose("marketing");
    // Grants only: a withdrawal of marketing (erase_on_withdrawal) must plan an erasure in
    // the same batch (ledger/FORMAT.md N8), which these padding entries do not model.
    cc->set_status(v1::GRANTED);
    cc->set_source("signup-form-v3");
    cc->set_policy_hash(policy->Hash());
    SetActor(&e, "operator");
    out.push_back(e);
  }
  return out;
}

struct Log {
  std::string segment;               // the segment file's bytes
  std::string checkpoint;            // the signed note
  std::vector<std::string> entries;  // each entry's bytes
};

// Writes a real ledger with Ledger, closes it, and reads back what it left on disk.
Log WriteLedger(const std::string& policy_yaml, int padding) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/ledger";
  {
    ledger::LedgerOptions options;
    options.dir = dir;
    options.origin = kOrigin;
    options.signing_key = &ControlPlaneKey();
    options.checkpoint_interval = absl::ZeroDuration();
    options.prezero_bytes = 0;
    auto l = ledger::Ledger::Open(options, nullptr);
    Check(l.status(), "Ledger::Open");
    Check((*l)->Append(Bodies(policy_yaml, padding), absl::FromUnixMillis(kNowUnixMs)).status(),
          "Append");
    Check((*l)->Checkpoint().status(), "Checkpoint");
  }
  Log log;
  log.segment = ReadOrDie(dir + "/" + ledger::format::SegmentFileName(0));
  log.checkpoint = ReadOrDie(dir + "/" + ledger::Ledger::kCheckpointFile);
  Check(ledger::ScanSegments(dir,
                             [&](const ledger::ScannedRecord& rec) {
                               log.entries.emplace_back(rec.payload);
                               return absl::OkStatus();
                             })
            .status(),
        "ScanSegments");
  // What it seeds must pass.
  Check(audit::VerifyStructure(dir, log.checkpoint, ControlPlaneKey().public_key()).status(),
        "VerifyStructure");
  audit::Auditor auditor(ControlPlaneKey().public_key(), log.checkpoint);
  for (size_t i = 0; i < log.entries.size(); ++i) Check(auditor.Add(i, log.entries[i]), "Auditor");
  Check(auditor.Finish().status(), "Auditor::Finish");
  return log;
}

std::string ExportArchive(const Log& log, bool resign = false) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/export";
  Check(audit::ExportTiles(dir, log.entries.size(), log.checkpoint,
                            [&](uint64_t i) -> absl::StatusOr<std::string> { return log.entries[i]; }),
        "ExportTiles");
  Check(audit::VerifyTiles(dir, ControlPlaneKey().public_key()).status(), "VerifyTiles");
  return Archive(dir, resign);
}

void Segment(const fs::path& out, const Log& small, const Log& large) {
  Put(out, "raw-ledger", std::string(1, '\x00') + small.segment);
  Put(out, "raw-ledger-large", std::string(1, '\x00') + large.segment);
  // Framed and chained (bit 0, bit 1), split into two segments at entry 1 + 3 (bit 2), with a
  // torn tail (bit 3).
  Put(out, "framed-chained", std::string(1, '\x03') + Chunks(small.entries));
  Put(out, "framed-split", std::string(1, '\x07') + std::string(1, '\x03') + Chunks(small.entries));
  std::vector<std::string> torn = small.entries;
  torn.push_back(small.entries.back().substr(0, 5));
  Put(out, "framed-torn-tail", std::string(1, '\x0b') + Chunks(torn));
  // Checkpoint one short of the log (bits 4-5 = 1).
  Put(out, "framed-short-checkpoint", std::string(1, '\x13') + Chunks(small.entries));
}

void Checkpoints(const fs::path& out, const Log& small, const Log& large) {
  Put(out, "checkpoint", small.checkpoint);
  Put(out, "checkpoint-large", large.checkpoint);
  // A tlog-proof of entry 3 in the large log, as `lethectl ledger proof` prints it, with the
  // entry as "extra".
  ledger::MerkleTree tree;
  for (const std::string& e : large.entries) tree.Append(ledger::LeafHash(e));
  for (uint64_t index : {uint64_t{3}, uint64_t{large.entries.size() - 1}}) {
    auto proof = tree.InclusionProof(index, tree.size());
    Check(proof.status(), "InclusionProof");
    std::string text = absl::StrCat("c2sp.org/tlog-proof@v1\nextra ",
                                    crypto::Base64(large.entries[index]), "\nindex ", index, "\n");
    for (const std::string& h : *proof) absl::StrAppend(&text, crypto::Base64(h), "\n");
    absl::StrAppend(&text, "\n", large.checkpoint);
    Put(out, absl::StrCat("tlog-proof-", index), text);
  }
}

void Envelopes(const fs::path& out) {
  const auto& cp = ControlPlaneKey();
  auto command = [&](const v1::DeleteCommand& c) {
    return std::string(1, '\x00') +
           proto::SignEnvelope(proto::kDeleteCommandType, c.SerializeAsString(), cp).SerializeAsString();
  };
  const int64_t issued = kNowUnixMs - 3600 * 1000;
  Put(out, "command-valid", command(Command(kDomain, kCommandId, DomainPolicyHash(), issued)));
  Put(out, "command-policy-drift",
      command(Command(kDomain, kCommandId, crypto::Sha256("other policy"), issued)));
  Put(out, "command-expired",
      command(Command(kDomain, kCommandId, DomainPolicyHash(), kNowUnixMs - int64_t{48} * 3600 * 1000)));
  Put(out, "command-other-domain",
      command(Command("assessments", kOtherCommandId, DomainPolicyHash(), issued)));
  auto receipt = [&](bool completed) {
    return std::string(1, '\x01') +
           Recorded(kDomain, kCommandId, Receipt(kDomain, kCommandId, CommandDigest(), completed))
               .SerializeAsString();
  };
  Put(out, "receipt-completed", receipt(true));
  Put(out, "receipt-failed", receipt(false));
}

void Tiles(const fs::path& out, const Log& small, const Log& large) {
  Put(out, "export", std::string(1, '\x00') + ExportArchive(small));
  Put(out, "export-large", std::string(1, '\x00') + ExportArchive(large));
  Put(out, "export-resign", std::string(1, '\x00') + ExportArchive(small, /*resign=*/true));
  Put(out, "entries", std::string(1, '\x03') + Chunks(small.entries));
  // The entries, then a zero-length entry, then one file written over the export.
  std::string overlay = std::string(1, '\x03') + Chunks(small.entries);
  PutU16(&overlay, 0);
  const std::string agents = "lethe/agents.json";
  overlay.push_back(static_cast<char>(agents.size()));
  overlay += agents;
  const std::string json = "{\"agents\": [], \"format\": \"lethe.agents.v1\", \"tree_size\": 10}\n";
  PutU32(&overlay, json.size());
  overlay += json;
  Put(out, "entries-overlay", overlay);
}

void Packages(const fs::path& out) {
  lethe::cli::ZipWriter zip(absl::FromUnixSeconds(1'795'608'000));
  if (!zip.Add("package.json", "{}").ok() || !zip.Add("csv/growth/growth.contacts.csv", "email\r\nx@y\r\n").ok())
    throw Failure{"cannot write the seed archive"};
  Put(out, "zip", std::string(1, '\x00') + zip.Finish());
  // A package whose certificate is a real one's shape (a checkpoint signed by the fixed key,
  // no entries): it parses all the way to the certificate check.
  v1::ErasureCertificate cert;
  cert.set_format("lethe.erasure-certificate/v1");
  cert.set_request_id("00112233445566778899aabbccddeeff");
  cert.set_checkpoint(lethe::ledger::SignCheckpoint(
      lethe::ledger::Checkpoint{kOrigin, 1, std::string(32, '\x01')}, LoadKey(kControlPlaneKeyPem)));
  const std::string package =
      "{\"format\":\"lethe.access-package/1\",\"request_id\":\"00112233445566778899aabbccddeeff\","
      "\"domains\":[{\"domain\":\"growth\",\"outcome\":\"COMPLETED\",\"part\":{\"format\":"
      "\"lethe.access-part/1\",\"tables\":[{\"table\":\"growth.contacts\",\"rows\":[{\"email\":\"x@y\"}]}]}}],"
      "\"manifest\":{\"parts\":[],\"certificate\":\"" + lethe::crypto::Base64(cert.SerializeAsString()) + "\"}}";
  Put(out, "package", std::string(1, '\x01') + package);
  // Two chunks of one part, then a chunk of another command.
  const std::string sealed = "sealed part bytes, in two pieces";
  std::string chunks;
  for (uint32_t i = 0; i < 3; ++i) {
    v1::AccessPartChunk c;
    c.set_command_id(i < 2 ? "c1" : "c2");
    c.set_request_id("r1");
    c.set_domain(kDomain);
    c.set_sealed_sha256(lethe::crypto::Sha256(i < 2 ? sealed : std::string("other")));
    c.set_index(i < 2 ? i : 0);
    c.set_count(i < 2 ? 2 : 1);
    c.set_data(i == 0 ? sealed.substr(0, 10) : i == 1 ? sealed.substr(10) : "other");
    PutU32(&chunks, c.ByteSizeLong());
    chunks += c.SerializeAsString();
  }
  Put(out, "chunks", std::string(1, '\x02') + chunks);
}

void Policies(const fs::path& out) {
  Put(out, "sample.yaml", ReadOrDie(LETHE_SOURCE_DIR "/policies/sample.yaml"));
  Put(out, "full.yaml", ReadOrDie(LETHE_SOURCE_DIR "/policies/examples/full.yaml"));
  Put(out, "normalized.yaml", ReadOrDie(LETHE_SOURCE_DIR "/tests/testdata/policy_hash/normalized.yaml"));
}

}  // namespace
}  // namespace lethe::fuzz

int main(int argc, char** argv) {
  using namespace lethe::fuzz;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR  (writes OUT_DIR/<target>/...)\n", argv[0]);
    return 2;
  }
  try {
    const fs::path out = argv[1];
    Packages(out / "package");  // first: it needs no ledger
    const std::string policy_yaml = ReadOrDie(LETHE_SOURCE_DIR "/policies/sample.yaml");
    const Log small = WriteLedger(policy_yaml, 0);
    const Log large = WriteLedger(policy_yaml, 260);  // over one full tile of 256 entries
    Segment(out / "segment", small, large);
    Checkpoints(out / "checkpoint", small, large);
    Envelopes(out / "envelope");
    Tiles(out / "tiles", small, large);
    Policies(out / "policy");
  } catch (const Failure& f) {
    std::fprintf(stderr, "make_corpus: %s\n", f.what.c_str());
    return 1;
  }
  return 0;
}
