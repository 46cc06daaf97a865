// `lethectl ledger verify|checkpoint|verifier-key|proof|export`: the ledger audited online
// through lethed's Ledger service, or offline from files through audit/offline_verify.h, and
// the checkpoints an auditor keeps (`ledger checkpoint --save`).
#include "cli/ledger.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "audit/offline_verify.h"
#include "base/status.h"
#include "cli/render.h"
#include "crypto/crypto.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "nlohmann/json.hpp"

namespace lethe::cli {

namespace v1 = lethe::v1;

absl::StatusOr<v1::CheckpointView> FetchCheckpoint(const Global& g, bool fresh) {
  auto api = v1::Ledger::NewStub(Connect(g));
  v1::GetCheckpointRequest req;
  req.set_fresh(fresh);
  v1::CheckpointView cp;
  grpc::ClientContext ctx;
  grpc::Status s = api->GetCheckpoint(&ctx, req, &cp);
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return cp;
}

namespace {

// Fetches and verifies the checkpoint; returns it parsed.
absl::StatusOr<std::pair<v1::CheckpointView, lethe::ledger::Checkpoint>> VerifiedCheckpoint(
    const Global& g, const std::string& pub_path, bool fresh, std::string* warning) {
  LETHE_ASSIGN_OR_RETURN(v1::CheckpointView view, FetchCheckpoint(g, fresh));
  LETHE_ASSIGN_OR_RETURN(auto key, lethe::audit::TrustedKey(pub_path, view.public_key_pem(), warning));
  LETHE_ASSIGN_OR_RETURN(auto unverified, lethe::ledger::ParseCheckpointUnverified(view.checkpoint()));
  LETHE_ASSIGN_OR_RETURN(auto cp, lethe::ledger::VerifyCheckpoint(view.checkpoint(), unverified.origin, key));
  return std::make_pair(view, cp);
}

int LedgerVerifyOnline(const Global& g, const std::string& pub_path) {
  auto api = v1::Ledger::NewStub(Connect(g));
  v1::CheckpointView cp;
  {
    // A fresh checkpoint, so that the verification covers every entry there is now.
    grpc::ClientContext ctx;
    v1::GetCheckpointRequest req;
    req.set_fresh(true);
    grpc::Status s = api->GetCheckpoint(&ctx, req, &cp);
    if (!s.ok()) return FailGrpc("ledger verify", s);
  }
  auto server_key = lethe::crypto::Ed25519PublicKey::FromPem(cp.public_key_pem());
  if (!server_key.ok()) return Fail("ledger verify", server_key.status());
  std::string warning;
  std::optional<lethe::crypto::Ed25519PublicKey> key;
  if (!pub_path.empty()) {
    auto pinned = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
    if (!pinned.ok()) return Fail("ledger verify", pinned.status());
    key = *pinned;
  } else {
    key = *server_key;
    warning = "verified against the key the server reports (" + server_key->KeyId() +
              "); pass --public-key to pin the key you trust";
  }
  lethe::audit::Auditor auditor(*key, cp.checkpoint(), g.audit);
  grpc::ClientContext ctx;
  v1::GetEntriesRequest req;
  req.set_start(0);
  req.set_end(cp.size());
  auto reader = api->GetEntries(&ctx, req);
  v1::RawEntry e;
  absl::Status st;
  while (st.ok() && reader->Read(&e)) st = auditor.Add(e.seq(), e.entry());
  if (!st.ok()) {
    ctx.TryCancel();
    reader->Finish();
    return PrintAudit(g, st, g.addr, "");
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FailGrpc("ledger verify", s);
  return PrintAudit(g, auditor.Finish(), g.addr, warning);
}

// Proves with lethed's consistency proof that `latest` extends `old` (old.size <=
// latest.size); returns the number of hashes in the proof.
absl::StatusOr<size_t> ProveExtends(v1::Ledger::Stub& api, const lethe::ledger::Checkpoint& old,
                                    const lethe::ledger::Checkpoint& latest) {
  std::vector<std::string> path;
  if (old.size > 0 && old.size < latest.size) {
    v1::GetConsistencyProofRequest req;
    req.set_from(old.size);
    req.set_to(latest.size);
    v1::ConsistencyProofView proof;
    grpc::ClientContext ctx;
    grpc::Status s = api.GetConsistencyProof(&ctx, req, &proof);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), "consistency proof: " + s.error_message());
    path.assign(proof.proof().begin(), proof.proof().end());
  }
  LETHE_RETURN_IF_ERROR(lethe::ledger::VerifyConsistency(old.size, latest.size, path, old.root, latest.root));
  return path.size();
}

// `ledger checkpoint --save DIR`: keeps in DIR the latest checkpoint and every one lethed
// signed since the largest DIR holds (every one, the first time), each verified under `key`
// and proven consistent with the latest, as DIR/<size, 20 digits>.checkpoint. A kept file is
// never replaced: the same size with another root is a fork. Counts what it kept.
absl::Status SaveCheckpoints(const Global& g, const lethe::crypto::Ed25519PublicKey& key,
                             const std::string& latest_note, const lethe::ledger::Checkpoint& latest,
                             const std::string& dir, uint64_t* added, uint64_t* already) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError("cannot create " + dir + ": " + ec.message());
  auto api = v1::Ledger::NewStub(Connect(g));
  // Whether the latest checkpoint extends `old` (old.size <= latest.size).
  auto consistent = [&](const lethe::ledger::Checkpoint& old) -> absl::Status {
    return ProveExtends(*api, old, latest).status();
  };

  // The largest checkpoint kept already. The log must not have shrunk below it, and must
  // still extend it (and so every one kept before it, each of which it was checked against
  // when it was kept): checked before anything newer is kept.
  uint64_t largest_name = 0;
  bool have = false;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    uint64_t size = 0;
    if (lethe::audit::IsKeptName(e.path().filename().string(), &size)) {
      largest_name = have ? std::max(largest_name, size) : size;
      have = true;
    }
  }
  if (ec) return absl::UnavailableError("cannot list " + dir + ": " + ec.message());
  const std::string largest_path = dir + "/" + lethe::audit::KeptName(largest_name);
  std::optional<lethe::ledger::Checkpoint> largest;
  if (have) {
    LETHE_ASSIGN_OR_RETURN(std::string note, lethe::ReadFile(largest_path));
    auto kept = lethe::ledger::VerifyCheckpoint(note, latest.origin, key);
    if (!kept.ok()) return lethe::Annotate(kept.status(), "the kept checkpoint " + largest_path);
    if (kept->size > latest.size)
      return absl::DataLossError(absl::StrFormat(
          "rollback: the kept checkpoint %s covers %d entries but lethed's latest only %d: the log was "
          "cut back to an older state (or it is another log)",
          largest_path, kept->size, latest.size));
    largest = *kept;
  }
  bool largest_checked = !have;
  auto check_largest = [&]() -> absl::Status {
    if (largest_checked) return absl::OkStatus();
    largest_checked = true;
    if (absl::Status s = consistent(*largest); !s.ok())
      return absl::DataLossError(absl::StrFormat(
          "the log no longer extends the kept checkpoint %s (a fork, or a rewritten history): %s",
          largest_path, s.message()));
    return absl::OkStatus();
  };

  // One checkpoint lethed serves, verified already. The one kept under its size, if any, is
  // the largest kept (the list starts at its size): same root, or a fork. Any other is proven
  // consistent with the latest, then kept (never over an existing file).
  auto keep = [&](const lethe::ledger::Checkpoint& cp, const std::string& note) -> absl::Status {
    if (largest && cp.size == largest->size) {
      ++*already;
      if (cp.root == largest->root) return absl::OkStatus();
      return absl::DataLossError(absl::StrCat(
          "FORK: ", largest_path, " keeps a checkpoint of ", cp.size, " entries with root ",
          lethe::crypto::Base64(largest->root), ", and lethed now serves one of the same size with root ",
          lethe::crypto::Base64(cp.root),
          ": two histories signed by the same key. Keep both notes as evidence; the one lethed "
          "serves:\n",
          note));
    }
    LETHE_RETURN_IF_ERROR(check_largest());
    if (absl::Status st = consistent(cp); !st.ok())
      return absl::DataLossError(absl::StrFormat(
          "lethed's checkpoint of %d entries is not consistent with its latest, of %d: %s", cp.size,
          latest.size, st.message()));
    LETHE_RETURN_IF_ERROR(lethe::WriteNewFile(dir + "/" + lethe::audit::KeptName(cp.size), note, 0644));
    ++*added;
    return absl::OkStatus();
  };

  bool saw_latest = false, done = false;
  std::string token;
  do {
    v1::ListCheckpointsRequest req;
    req.set_from_size(largest ? largest->size : 0);
    req.set_page_size(1000);
    req.set_page_token(token);
    v1::ListCheckpointsResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = api->ListCheckpoints(&ctx, req, &resp);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), "ListCheckpoints: " + s.error_message());
    for (const auto& c : resp.checkpoints()) {
      auto cp = lethe::ledger::VerifyCheckpoint(c.checkpoint(), latest.origin, key);
      if (!cp.ok())
        return absl::DataLossError(absl::StrCat("lethed serves a checkpoint (size ", c.size(),
                                                ") that does not verify: ", cp.status().message()));
      if (cp->size > latest.size) {  // signed after the latest: kept next time
        done = true;
        break;
      }
      saw_latest = saw_latest || cp->size == latest.size;
      LETHE_RETURN_IF_ERROR(keep(*cp, c.checkpoint()));
    }
    token = resp.next_page_token();
  } while (!done && !token.empty());
  if (!saw_latest) LETHE_RETURN_IF_ERROR(keep(latest, latest_note));
  return check_largest();
}

int LedgerCheckpoint(const Global& g, const std::string& pub_path, bool fresh, const std::string& out,
                     const std::string& save) {
  std::string warning;
  auto cp = VerifiedCheckpoint(g, pub_path, fresh, &warning);
  if (!cp.ok()) return Fail("ledger checkpoint", cp.status());
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  if (!out.empty()) {
    if (auto s = lethe::WriteFileAtomic(out, cp->first.checkpoint(), 0644); !s.ok())
      return Fail("ledger checkpoint", s);
    std::cerr << "checkpoint of size " << cp->second.size << " verified and saved to " << out << "\n";
  }
  uint64_t added = 0, already = 0;
  if (!save.empty()) {
    auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
    if (!key.ok()) return Fail("ledger checkpoint --save", key.status());
    absl::Status s = SaveCheckpoints(g, *key, cp->first.checkpoint(), cp->second, save, &added, &already);
    if (!s.ok()) {
      std::cerr << "lethectl ledger checkpoint --save: FAILED after keeping " << added
                << " new checkpoint(s) in " << save << ": " << s.message() << "\n";
      return 1;
    }
    std::cerr << "ledger checkpoint --save: " << added << " new checkpoint(s) kept in " << save << " ("
              << already << " already kept); each signed by " << key->KeyId()
              << " and consistent with the latest, of " << cp->second.size << " entries\n";
  }
  if (g.json()) {
    nlohmann::json j{{"origin", cp->second.origin}, {"size", cp->second.size},
                     {"root", lethe::crypto::Base64(cp->second.root)}, {"checkpoint", cp->first.checkpoint()}};
    if (!save.empty()) j["saved"] = {{"dir", save}, {"new", added}, {"already_kept", already}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << cp->first.checkpoint();
  }
  return 0;
}

int LedgerVerifierKey(const Global& g, const std::string& pub_path, const std::string& origin) {
  if (!pub_path.empty()) {  // offline
    auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
    if (!key.ok()) return Fail("ledger verifier-key", key.status());
    const std::string vkey = lethe::ledger::VerifierKey(origin.empty() ? lethe::ledger::kDefaultOrigin : origin, *key);
    std::cout << (g.json() ? nlohmann::json{{"verifier_key", vkey}}.dump(2) : vkey) << "\n";
    return 0;
  }
  auto view = FetchCheckpoint(g, false);
  if (!view.ok()) return Fail("ledger verifier-key", view.status());
  auto key = lethe::crypto::Ed25519PublicKey::FromPem(view->public_key_pem());
  auto cp = lethe::ledger::ParseCheckpointUnverified(view->checkpoint());
  if (!key.ok() || !cp.ok()) return Fail("ledger verifier-key", absl::InternalError("bad server answer"));
  const std::string vkey = lethe::ledger::VerifierKey(origin.empty() ? cp->origin : origin, *key);
  std::cout << (g.json() ? nlohmann::json{{"verifier_key", vkey}}.dump(2) : vkey) << "\n";
  return 0;
}

int LedgerProof(const Global& g, uint64_t index, const std::string& pub_path) {
  std::string warning;
  auto cp = VerifiedCheckpoint(g, pub_path, /*fresh=*/true, &warning);
  if (!cp.ok()) return Fail("ledger proof", cp.status());
  auto api = v1::Ledger::NewStub(Connect(g));
  v1::GetInclusionProofRequest req;
  req.set_index(index);
  req.set_size(cp->second.size);
  v1::InclusionProofView proof;
  grpc::ClientContext ctx;
  grpc::Status s = api->GetInclusionProof(&ctx, req, &proof);
  if (!s.ok()) return FailGrpc("ledger proof", s);
  std::vector<std::string> path(proof.proof().begin(), proof.proof().end());
  auto verified =
      lethe::audit::VerifyInclusionProof(index, proof.entry(), path, cp->first.checkpoint(), cp->second);
  if (!verified.ok()) return Fail("ledger proof", verified.status());
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  PrintInclusionProof(g, *verified);
  return 0;
}

// `ledger verify --since FILE|DIR` against lethed: the log, at a fresh checkpoint, must extend
// every kept checkpoint (consistency proofs).
int LedgerVerifySince(const Global& g, const std::string& since, const std::string& pub_path) {
  auto kept = lethe::audit::LoadKept(since);
  if (!kept.ok()) return Fail("ledger verify --since", kept.status());
  std::string warning;
  auto now = VerifiedCheckpoint(g, pub_path, /*fresh=*/true, &warning);
  if (!now.ok()) return Fail("ledger verify --since", now.status());
  auto key = lethe::audit::TrustedKey(pub_path, now->first.public_key_pem(), &warning);
  if (!key.ok()) return Fail("ledger verify --since", key.status());
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  const lethe::ledger::Checkpoint cur = now->second;
  auto api = v1::Ledger::NewStub(Connect(g));
  return PrintKept(
      g, since,
      lethe::audit::CheckKept(
          *kept, cur.origin, *key, cur.size, "consistency proofs to the latest checkpoint",
          [&](const lethe::ledger::Checkpoint& old) -> absl::StatusOr<std::string> {
            LETHE_ASSIGN_OR_RETURN(size_t hashes, ProveExtends(*api, old, cur));
            return absl::StrFormat("%d-hash consistency proof verified", hashes);
          }));
}

// `ledger verify --dir DIR`: the audit of the log in lethed's data directory.
int LedgerVerifyOffline(const Global& g, const std::string& dir, const std::string& pub_path) {
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail("ledger verify", key.status());
  auto v = lethe::audit::VerifyDataDir(dir, *key, g.audit);
  if (!v.ok()) return Fail("ledger verify", v.status());
  return PrintDataDirAudit(g, *v);
}

// `ledger verify --dir DIR --since FILE|DIR`: the audit, and the entries on disk must extend
// every kept checkpoint (the root at its size, recomputed in the audit's pass).
int LedgerVerifyOfflineSince(const Global& g, const std::string& dir, const std::string& since,
                             const std::string& pub_path) {
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail("ledger verify --since", key.status());
  auto kept = lethe::audit::LoadKept(since);
  if (!kept.ok()) return Fail("ledger verify --since", kept.status());
  auto v = lethe::audit::VerifyDataDir(dir, *key, g.audit, &*kept);
  if (!v.ok()) return Fail("ledger verify", v.status());
  const int rc = PrintDataDirAudit(g, *v);
  if (!v->kept) return std::max(rc, 1);  // the audit could not read every record: said above
  return std::max(rc, PrintKept(g, since, *v->kept));
}

int LedgerExport(const Global& g, const std::string& out, const std::string& pub_path) {
  std::string warning;
  auto cp = VerifiedCheckpoint(g, pub_path, /*fresh=*/true, &warning);
  if (!cp.ok()) return Fail("ledger export", cp.status());
  auto api = v1::Ledger::NewStub(Connect(g));
  grpc::ClientContext ctx;
  v1::GetEntriesRequest req;
  req.set_start(0);
  req.set_end(cp->second.size);
  auto reader = api->GetEntries(&ctx, req);
  std::vector<std::string> entries;
  v1::RawEntry e;
  while (reader->Read(&e)) entries.push_back(std::move(*e.mutable_entry()));
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FailGrpc("ledger export", s);
  auto key = lethe::audit::TrustedKey(pub_path, cp->first.public_key_pem(), &warning);
  if (!key.ok()) return Fail("ledger export", key.status());
  auto report = lethe::audit::ExportAndVerify(out, cp->second.size, cp->first.checkpoint(), entries, *key,
                                              g.audit);
  if (!report.ok()) return Fail("ledger export", report.status());
  if (!warning.empty()) std::cerr << "warning: " << warning << "\n";
  if (g.json()) {
    std::cout << nlohmann::json{{"out", out},
                                {"entries", report->size},
                                {"full_tiles", report->full_tiles},
                                {"partial_tiles", report->partial_tiles},
                                {"entry_bundles", report->bundles},
                                {"verified", true}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << "exported " << report->size << " entries to " << out << " as C2SP tlog-tiles ("
            << report->full_tiles << " full and " << report->partial_tiles << " partial hash tiles, "
            << report->bundles << " entry bundles, lethe/agents.json); verified\n";
  return 0;
}

// `ledger verify --bundle DIR [--since FILE|DIR]`: the audit of an export, and whether it
// extends every kept checkpoint.
int LedgerVerifyBundle(const Global& g, const std::string& dir, const std::string& pub_path,
                       const std::string& since) {
  auto key = lethe::crypto::Ed25519PublicKey::LoadFile(pub_path);
  if (!key.ok()) return Fail("ledger verify --bundle", key.status());
  const lethe::audit::BundleVerification v = lethe::audit::VerifyBundle(dir, *key, g.audit, since);
  if (!v.tiles.ok()) return PrintAudit(g, v.tiles.status(), dir, "");
  std::string note = absl::StrFormat("tiles: %d full, %d partial, %d entry bundles; every file checked",
                                     v.tiles->full_tiles, v.tiles->partial_tiles, v.tiles->bundles);
  if (!g.json()) std::cout << note << "\n";
  const int rc = PrintAudit(g, v.tiles->audit, dir, "");
  if (!v.kept) return rc;
  if (!v.kept->ok()) return Fail("ledger verify --since", v.kept->status());
  return std::max(rc, PrintKept(g, since, **v.kept));
}

}  // namespace

void AddLedgerCommands(CLI::App& app, Context& ctx) {
  // The flags' values, kept alive by the callbacks that read them.
  struct Flags {
    std::string dir, key, since, bundle, out, origin, save;
    bool fresh = false;
    uint64_t entry = 0;
  };
  auto f = std::make_shared<Flags>();
  auto* ledger = app.add_subcommand("ledger", "audit the ledger")->require_subcommand(1);
  ctx.examples[ledger] = "lethectl ledger verify --dir /var/lib/lethe --public-key lethed.pub";
  auto* verify = ledger->add_subcommand(
      "verify", "check the hash chain, Merkle root, checkpoint and every receipt signature");
  verify->add_option("--dir", f->dir, "lethed's data directory: verify offline from the files");
  verify->add_option("--since", f->since,
                     "a checkpoint file kept earlier, or a directory of them (`ledger checkpoint "
                     "--save`): prove the log extends every one (a log cut back fails: rollback); "
                     "with --dir or --bundle, offline");
  verify->add_option("--bundle", f->bundle, "a directory written by `ledger export`: verify it offline");
  verify->add_option("--public-key", f->key, "lethed's public key (PEM): the only key trusted");
  verify->add_flag("--accept-unauthenticated", ctx.g.audit.accept_unauthenticated,
                   "accept entries a person caused without an authenticated caller (a lethed run "
                   "with --insecure, or a log written before lethed had mutual TLS)");
  verify->add_flag("--allow-unknown-fields", ctx.g.audit.allow_unknown_fields,
                   "accept entries holding protobuf fields proto/lethe/v1 does not define "
                   "(counted); by default they fail, since they could carry anything");
  verify->callback([&ctx, f] {
    const Global& g = ctx.g;
    if (!f->dir.empty() && !f->bundle.empty()) {
      ctx.rc = Fail("ledger verify", absl::InvalidArgumentError(
                                         "--dir (a data directory) and --bundle (an export) are two ways "
                                         "to verify offline: give one"));
      return;
    }
    if ((!f->dir.empty() || !f->bundle.empty()) && f->key.empty()) {
      ctx.rc = Fail("ledger verify", absl::InvalidArgumentError("--dir and --bundle need --public-key"));
      return;
    }
    // Say which it is: an auditor must know whether the server was trusted with any of it.
    (g.json() ? std::cerr : std::cout)
        << "ledger verify: "
        << (!f->bundle.empty() ? "offline, from the export in " + f->bundle + " (no server contacted)"
            : !f->dir.empty()  ? "offline, from the files in " + f->dir + " (no server contacted)"
                               : "online, through lethed at " + g.addr)
        << "\n";
    if (!f->bundle.empty()) {
      ctx.rc = LedgerVerifyBundle(g, f->bundle, f->key, f->since);
    } else if (!f->dir.empty()) {
      ctx.rc = f->since.empty() ? LedgerVerifyOffline(g, f->dir, f->key)
                                : LedgerVerifyOfflineSince(g, f->dir, f->since, f->key);
    } else if (!f->since.empty()) {
      ctx.rc = LedgerVerifySince(g, f->since, f->key);
    } else {
      ctx.rc = LedgerVerifyOnline(g, f->key);
    }
  });
  ctx.examples[verify] = "lethectl ledger verify --dir /var/lib/lethe --public-key lethed.pub --since kept/";
  auto* checkpoint = ledger->add_subcommand("checkpoint", "fetch the latest checkpoint and check its signature");
  checkpoint->add_option("--public-key", f->key, "lethed's public key (PEM) to check it with");
  checkpoint->add_flag("--fresh", f->fresh, "ask lethed to sign one for the current size first");
  checkpoint->add_option("--out", f->out, "also save it, e.g. for a later `ledger verify --since`");
  checkpoint->add_option("--save", f->save,
                         "keep it and every checkpoint lethed signed since the last --save in this "
                         "directory, as <size>.checkpoint, each verified and proven consistent; never "
                         "replaces one (needs --public-key)");
  checkpoint->callback([&ctx, f] {
    if (!f->save.empty() && f->key.empty()) {
      ctx.rc = Fail("ledger checkpoint", absl::InvalidArgumentError(
                                             "--save needs --public-key: kept checkpoints are evidence only "
                                             "under a key you trust"));
      return;
    }
    ctx.rc = LedgerCheckpoint(ctx.g, f->key, f->fresh, f->out, f->save);
  });
  ctx.examples[checkpoint] = "lethectl ledger checkpoint --save kept/ --public-key lethed.pub";
  auto* vkey = ledger->add_subcommand("verifier-key", "print the signed-note verifier key name+keyid+key");
  vkey->add_option("--public-key", f->key, "offline: lethed's public key (PEM)");
  vkey->add_option("--origin", f->origin, "key name (default: the log's origin)");
  vkey->callback([&ctx, f] { ctx.rc = LedgerVerifierKey(ctx.g, f->key, f->origin); });
  ctx.examples[vkey] = "lethectl ledger verifier-key --public-key lethed.pub";
  auto* proof = ledger->add_subcommand("proof", "print an inclusion proof (C2SP tlog-proof) with its checkpoint");
  proof->add_option("--entry", f->entry, "entry index")->required();
  proof->add_option("--public-key", f->key, "lethed's public key (PEM) to check it with");
  proof->callback([&ctx, f] { ctx.rc = LedgerProof(ctx.g, f->entry, f->key); });
  ctx.examples[proof] = "lethectl ledger proof --entry 42 --public-key lethed.pub";
  auto* xport = ledger->add_subcommand("export", "write the log as a static C2SP tlog-tiles tree");
  xport->add_option("--out", f->out, "new directory")->required();
  xport->add_option("--public-key", f->key, "lethed's public key (PEM) to check the export with");
  xport->callback([&ctx, f] { ctx.rc = LedgerExport(ctx.g, f->out, f->key); });
  ctx.examples[xport] = "lethectl ledger export --out export/ --public-key lethed.pub";
}

}  // namespace lethe::cli
