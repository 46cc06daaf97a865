// Verification of a Lethe ledger with nothing but lethed's public key: a data directory of
// lethed (its layout is named here), an export (C2SP tlog-tiles), kept checkpoints the log
// must extend (`ledger verify --since`), an entry's inclusion proof (tlog-proof), and the
// writing and check of an export. Each call returns what it found; lethectl renders it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "audit/auditor.h"
#include "audit/tiles.h"
#include "crypto/crypto.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"

namespace lethe::audit {

// ---- lethed's data directory (lethed --data-dir) -------------------------------------------

// The subdirectory of a data directory that holds the log: its segment files and the latest
// checkpoint lethed signed (ledger::Ledger::kCheckpointFile).
inline constexpr char kLedgerSubdir[] = "ledger";

// DATA_DIR/ledger.
std::string LedgerDir(const std::string& data_dir);
// DATA_DIR/ledger/checkpoint.
std::string CheckpointPath(const std::string& data_dir);

// ---- the key an auditor trusts -------------------------------------------------------------

// The key in the PEM file `pub_path` (pinned), or else the one the server reports,
// `server_pem`, with a warning saying so in *warning.
absl::StatusOr<crypto::Ed25519PublicKey> TrustedKey(const std::string& pub_path,
                                                   const std::string& server_pem, std::string* warning);

// ---- kept checkpoints: ledger checkpoint --save DIR, ledger verify --since FILE|DIR --------

// The name a checkpoint of `size` entries is kept under by --save: <size, 20 digits>.checkpoint.
std::string KeptName(uint64_t size);
// Whether `name` is such a name, and the size it gives.
bool IsKeptName(const std::string& name, uint64_t* size);

struct KeptCheckpoint {
  std::string path;
  std::string note;
};

// The kept checkpoints `since` names: one file, or every *.checkpoint file of a directory in
// name order (for names --save gives, the order of their sizes).
absl::StatusOr<std::vector<KeptCheckpoint>> LoadKept(const std::string& since);

// The roots of a log at the sizes of kept checkpoints, from its leaf hashes in order.
class RootsAt {
 public:
  explicit RootsAt(const std::vector<KeptCheckpoint>& kept);
  void Add(std::string leaf);
  uint64_t size() const { return range_.size(); }
  // Whether the log, at the kept checkpoint's size (at most size()), has its root.
  absl::StatusOr<std::string> Extends(const ledger::Checkpoint& cp) const;

 private:
  void Record();
  std::vector<uint64_t> sizes_;
  size_t next_ = 0;
  ledger::CompactRange range_;
  std::map<uint64_t, std::string> roots_;
};

// Whether a log extends kept checkpoints.
struct KeptVerdict {
  struct Failure {
    std::string file;   // the kept checkpoint's path
    std::string error;  // why the log does not extend it
  };
  std::vector<Failure> failures;  // in the order of the kept checkpoints
  size_t kept = 0;                // kept checkpoints checked
  uint64_t log_size = 0;          // entries of the log
  std::string key_id;             // the key each kept checkpoint must be signed by
  std::string method;             // how extension was shown, e.g. "roots recomputed from the entries"
  // Of the kept checkpoints the log extends: the smallest and largest sizes, and how the
  // last of them was shown extended.
  uint64_t smallest = UINT64_MAX;
  uint64_t largest = 0;
  std::string detail;
  bool ok() const { return failures.empty(); }
};

// Shows that the log extends a kept checkpoint: says how, or why it does not.
using ExtendsFn = std::function<absl::StatusOr<std::string>(const ledger::Checkpoint&)>;

// Checks a log of `log_size` entries against every kept checkpoint: each must verify under
// `key` (key name `origin`, or its own origin when that is empty), the log must be at least
// as large (else it was cut back: a rollback), and `extends` must show the log extends it.
KeptVerdict CheckKept(const std::vector<KeptCheckpoint>& kept, const std::string& origin,
                      const crypto::Ed25519PublicKey& key, uint64_t log_size,
                      const std::string& method, const ExtendsFn& extends);

// ---- ledger verify --dir DATA_DIR [--since FILE|DIR] --------------------------------------

struct DataDirVerification {
  std::string source;  // the directory the log was read from (LedgerDir)
  // The audit's verdict: the report, or why the log does not verify.
  absl::StatusOr<audit::AuditReport> report;
  // Set when there is no checkpoint and no entry: OK, with an empty report.
  bool empty_log = false;
  // Whether the audit got through every segment.
  bool read_all = false;
  // What does not fail the audit but must be said: a torn tail, files that are not the log's.
  std::string warning;
  // With kept checkpoints, once every record was read: whether the entries extend them.
  std::optional<KeptVerdict> kept;
};

// Audits the log in the data directory `data_dir` under `key` in one pass over its segments,
// and, with `kept`, checks in the same pass that the entries extend every kept checkpoint
// (the root at its size, recomputed from the entries). An error is a failure to start (the
// checkpoint file unreadable); the audit's verdict is in the result.
absl::StatusOr<DataDirVerification> VerifyDataDir(const std::string& data_dir,
                                                  const crypto::Ed25519PublicKey& key,
                                                  const audit::AuditOptions& options,
                                                  const std::vector<KeptCheckpoint>* kept = nullptr);

// ---- ledger verify --bundle DIR [--since FILE|DIR] ----------------------------------------

struct BundleVerification {
  // The verdict on the export: every file checked, and the audit of its entries.
  absl::StatusOr<audit::TilesReport> tiles;
  // With `since`, once the export verified: whether it extends the kept checkpoints, or why
  // that could not be checked (the kept checkpoints or a level-0 tile unreadable).
  std::optional<absl::StatusOr<KeptVerdict>> kept;
};

// Verifies the export in `dir` under `key`; with `since` (a kept checkpoint or a directory of
// them), also that the export extends every one: the roots at their sizes come from the
// level-0 tiles (the leaf hashes), just checked against the export's checkpoint.
BundleVerification VerifyBundle(const std::string& dir, const crypto::Ed25519PublicKey& key,
                                const audit::AuditOptions& options, const std::string& since);

// ---- ledger proof: C2SP tlog-proof@v1 ------------------------------------------------------

// An entry's inclusion proof, verified against a checkpoint.
struct InclusionProof {
  uint64_t index = 0;
  uint64_t tree_size = 0;
  std::vector<std::string> hashes;  // the proof's hashes, base64
  std::string checkpoint;           // the signed note, verbatim
};

// Checks that `entry` is at `index` in the log of the verified checkpoint `cp` (signed note
// `note`), by the proof hashes `path`.
absl::StatusOr<InclusionProof> VerifyInclusionProof(uint64_t index, const std::string& entry,
                                                    const std::vector<std::string>& path,
                                                    const std::string& note,
                                                    const ledger::Checkpoint& cp);

// ---- ledger export --------------------------------------------------------------------------

// Writes the first `size` `entries` of the log with the checkpoint `note` to the new directory
// `out` as C2SP tlog-tiles, then verifies what was written under `key`, as an auditor would.
absl::StatusOr<audit::TilesReport> ExportAndVerify(const std::string& out, uint64_t size,
                                                   const std::string& note,
                                                   const std::vector<std::string>& entries,
                                                   const crypto::Ed25519PublicKey& key,
                                                   const audit::AuditOptions& options);

}  // namespace lethe::audit
