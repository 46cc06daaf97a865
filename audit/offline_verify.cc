// The offline verification of a Lethe ledger: a data directory, an export, kept checkpoints,
// inclusion proofs and the export itself (audit/offline_verify.h).
#include "audit/offline_verify.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "ledger/ledger.h"
#include "lethe/v1/ledger.pb.h"

namespace lethe::audit {

std::string LedgerDir(const std::string& data_dir) { return data_dir + "/" + kLedgerSubdir; }

std::string CheckpointPath(const std::string& data_dir) {
  return LedgerDir(data_dir) + "/" + ledger::Ledger::kCheckpointFile;
}

absl::StatusOr<crypto::Ed25519PublicKey> TrustedKey(const std::string& pub_path,
                                                   const std::string& server_pem, std::string* warning) {
  if (!pub_path.empty()) return crypto::Ed25519PublicKey::LoadFile(pub_path);
  LETHE_ASSIGN_OR_RETURN(auto key, crypto::Ed25519PublicKey::FromPem(server_pem));
  *warning = "trusting the key the server reports (" + key.KeyId() +
             "); pass --public-key to pin the key you trust";
  return key;
}

std::string KeptName(uint64_t size) { return absl::StrFormat("%020d.checkpoint", size); }

bool IsKeptName(const std::string& name, uint64_t* size) {
  return name.size() == 31 && name.substr(20) == ".checkpoint" &&
         std::all_of(name.begin(), name.begin() + 20, [](char c) { return c >= '0' && c <= '9'; }) &&
         absl::SimpleAtoi(name.substr(0, 20), size);
}

absl::StatusOr<std::vector<KeptCheckpoint>> LoadKept(const std::string& since) {
  namespace fs = std::filesystem;
  std::vector<std::string> paths;
  std::error_code ec;
  if (fs::is_directory(since, ec)) {
    for (const auto& e : fs::directory_iterator(since, ec))
      if (e.path().extension() == ".checkpoint" && e.is_regular_file()) paths.push_back(e.path().string());
    if (ec) return absl::UnavailableError("cannot list " + since + ": " + ec.message());
    if (paths.empty())
      return absl::NotFoundError("no kept checkpoints (*.checkpoint) in " + since +
                                 "; keep them with `ledger checkpoint --save " + since + "`");
    std::sort(paths.begin(), paths.end());
  } else {
    paths.push_back(since);
  }
  std::vector<KeptCheckpoint> out;
  for (auto& p : paths) {
    LETHE_ASSIGN_OR_RETURN(std::string note, lethe::ReadFile(p));
    out.push_back(KeptCheckpoint{std::move(p), std::move(note)});
  }
  return out;
}

RootsAt::RootsAt(const std::vector<KeptCheckpoint>& kept) {
  for (const auto& k : kept)
    if (auto cp = ledger::ParseCheckpointUnverified(k.note); cp.ok()) sizes_.push_back(cp->size);
  std::sort(sizes_.begin(), sizes_.end());
  sizes_.erase(std::unique(sizes_.begin(), sizes_.end()), sizes_.end());
  Record();
}

void RootsAt::Add(std::string leaf) {
  range_.Append(std::move(leaf));
  Record();
}

absl::StatusOr<std::string> RootsAt::Extends(const ledger::Checkpoint& cp) const {
  auto it = roots_.find(cp.size);
  if (it == roots_.end()) return absl::InternalError(absl::StrCat("no root computed at size ", cp.size));
  if (it->second != cp.root)
    return absl::DataLossError(absl::StrCat("the log's root at that size is ", crypto::Base64(it->second),
                                            ", the kept checkpoint's ", crypto::Base64(cp.root)));
  return std::string("its root recomputed from the entries");
}

void RootsAt::Record() {
  while (next_ < sizes_.size() && sizes_[next_] < range_.size()) ++next_;
  if (next_ < sizes_.size() && sizes_[next_] == range_.size()) roots_[range_.size()] = range_.Root();
}

KeptVerdict CheckKept(const std::vector<KeptCheckpoint>& kept, const std::string& origin,
                      const crypto::Ed25519PublicKey& key, uint64_t log_size,
                      const std::string& method, const ExtendsFn& extends) {
  KeptVerdict v;
  v.kept = kept.size();
  v.log_size = log_size;
  v.key_id = key.KeyId();
  v.method = method;
  for (const auto& k : kept) {
    absl::Status st;
    std::string key_name = origin;
    if (key_name.empty())
      if (auto own = ledger::ParseCheckpointUnverified(k.note); own.ok()) key_name = own->origin;
    auto cp = ledger::VerifyCheckpoint(k.note, key_name, key);
    if (!cp.ok()) {
      st = absl::Status(cp.status().code(), absl::StrCat("not a checkpoint of ", key_name, " signed by ",
                                                         key.KeyId(), ": ", cp.status().message()));
    } else if (cp->size > log_size) {
      st = absl::DataLossError(absl::StrFormat(
          "rollback: the kept checkpoint covers %d entries but the log has only %d: it was cut back "
          "to an older state (or it is another log)",
          cp->size, log_size));
    } else if (auto how = extends(*cp); !how.ok()) {
      st = absl::DataLossError(absl::StrFormat("the log does not extend the kept checkpoint of %d entries: %s",
                                               cp->size, how.status().message()));
    } else {
      v.detail = *how;
      v.smallest = std::min(v.smallest, cp->size);
      v.largest = std::max(v.largest, cp->size);
    }
    if (!st.ok()) v.failures.push_back({k.path, std::string(st.message())});
  }
  return v;
}

absl::StatusOr<DataDirVerification> VerifyDataDir(const std::string& data_dir,
                                                  const crypto::Ed25519PublicKey& key,
                                                  const audit::AuditOptions& options,
                                                  const std::vector<KeptCheckpoint>* kept) {
  const std::string ledger_dir = LedgerDir(data_dir);
  DataDirVerification v;
  v.source = ledger_dir;
  const std::string cp_path = CheckpointPath(data_dir);
  // With kept checkpoints, the same pass recomputes the roots at their sizes; entry 0 names
  // the origin they are signed under.
  std::optional<RootsAt> roots;
  if (kept != nullptr) roots.emplace(*kept);
  std::string origin;
  auto observe = [&](const ledger::ScannedRecord& rec) {
    if (!roots) return;
    if (rec.index == 0) {
      v1::LedgerEntry e;
      if (e.ParseFromArray(rec.payload.data(), static_cast<int>(rec.payload.size())))
        origin = e.log_created().origin();
    }
    roots->Add(ledger::LeafHash(rec.payload));
  };
  // The kept checkpoints are checked once the audit read every record.
  auto done = [&]() -> absl::StatusOr<DataDirVerification> {
    if (v.read_all && roots)
      v.kept = CheckKept(*kept, origin, key, roots->size(), "roots recomputed from the entries",
                         [&](const ledger::Checkpoint& cp) { return roots->Extends(cp); });
    return std::move(v);
  };

  if (!std::filesystem::exists(cp_path)) {
    // No checkpoint: acceptable over an empty log only; entries nothing signed vouches for
    // could be anything.
    auto scan = ledger::ScanSegments(ledger_dir, [](const ledger::ScannedRecord&) {
      return absl::OkStatus();
    });
    if (!scan.ok()) {
      v.report = scan.status();
      return done();
    }
    if (scan->records == 0 && std::filesystem::is_directory(ledger_dir)) {
      v.read_all = true;
      v.empty_log = true;
      v.report = audit::AuditReport();
      return done();
    }
    v.report = absl::DataLossError(absl::StrCat("no checkpoint (", cp_path, ") over a log of ",
                                                scan->records,
                                                " entries: no signature vouches for any of them"));
    return done();
  }
  LETHE_ASSIGN_OR_RETURN(std::string note, lethe::ReadFile(cp_path));
  // One pass: the Auditor is told each record's segment and its version, so it checks batches
  // against segment boundaries as well as the entries.
  audit::Auditor auditor(key, note, options);
  auto scan = ledger::ScanSegments(ledger_dir, [&](const ledger::ScannedRecord& rec) {
    observe(rec);
    absl::Status s = auditor.Add(rec.index, rec.payload, rec.segment, rec.segment_version);
    if (!s.ok()) return Annotate(s, rec.segment + " offset " + std::to_string(rec.offset));
    return s;
  });
  if (!scan.ok()) {
    v.report = scan.status();
    return done();
  }
  v.read_all = true;
  if (scan->torn_tail && !scan->torn_tail->zeros) {
    v.warning = absl::StrFormat(
        "torn tail in %s at offset %d (%d bytes): an unacknowledged write cut short by a crash; "
        "lethed removes it when it next starts",
        scan->torn_tail->segment, scan->torn_tail->offset, scan->torn_tail->bytes);
  }
  // Files lethed never writes there are not part of the log (FORMAT.md §5.1): named, ignored.
  auto strays = ledger::StrayLedgerFiles(ledger_dir);
  if (!strays.ok()) {
    v.report = strays.status();
    return done();
  }
  if (!strays->empty()) {
    if (!v.warning.empty()) v.warning += "; ";
    v.warning += "files that are not part of the log, ignored: " + absl::StrJoin(*strays, ", ");
  }
  v.report = auditor.Finish(scan->last_segment);
  return done();
}

BundleVerification VerifyBundle(const std::string& dir, const crypto::Ed25519PublicKey& key,
                                const audit::AuditOptions& options, const std::string& since) {
  BundleVerification v;
  v.tiles = audit::VerifyTiles(dir, key, options);
  if (!v.tiles.ok() || since.empty()) return v;
  v.kept = [&]() -> absl::StatusOr<KeptVerdict> {
    const audit::TilesReport& report = *v.tiles;
    LETHE_ASSIGN_OR_RETURN(std::vector<KeptCheckpoint> kept, LoadKept(since));
    RootsAt roots(kept);
    for (uint64_t n = 0; n * audit::kTileWidth < report.size; ++n) {
      const uint64_t left = report.size - n * audit::kTileWidth;
      const int width = left >= audit::kTileWidth ? 0 : static_cast<int>(left);
      LETHE_ASSIGN_OR_RETURN(std::string tile, lethe::ReadFile(dir + "/" + audit::TilePath(0, n, width)));
      for (size_t i = 0; i + 32 <= tile.size(); i += 32) roots.Add(tile.substr(i, 32));
    }
    if (roots.size() != report.size)
      return absl::DataLossError(absl::StrFormat("the level-0 tiles of %s hold %d leaves, not %d", dir,
                                                 roots.size(), report.size));
    return CheckKept(kept, report.audit.origin, key, report.size, "roots recomputed from the export's tiles",
                     [&](const ledger::Checkpoint& cp) { return roots.Extends(cp); });
  }();
  return v;
}

absl::StatusOr<InclusionProof> VerifyInclusionProof(uint64_t index, const std::string& entry,
                                                    const std::vector<std::string>& path,
                                                    const std::string& note,
                                                    const ledger::Checkpoint& cp) {
  LETHE_RETURN_IF_ERROR(ledger::VerifyInclusion(index, cp.size, ledger::LeafHash(entry), path, cp.root));
  InclusionProof proof;
  proof.index = index;
  proof.tree_size = cp.size;
  for (const auto& h : path) proof.hashes.push_back(crypto::Base64(h));
  proof.checkpoint = note;
  return proof;
}

absl::StatusOr<audit::TilesReport> ExportAndVerify(const std::string& out, uint64_t size,
                                                   const std::string& note,
                                                   const std::vector<std::string>& entries,
                                                   const crypto::Ed25519PublicKey& key,
                                                   const audit::AuditOptions& options) {
  LETHE_RETURN_IF_ERROR(audit::ExportTiles(out, size, note, [&](uint64_t i) -> absl::StatusOr<std::string> {
    if (i >= entries.size()) return absl::DataLossError("server sent too few entries");
    return entries[i];
  }));
  auto report = audit::VerifyTiles(out, key, options);
  if (!report.ok()) return Annotate(report.status(), "verifying the export");
  return report;
}

}  // namespace lethe::audit
