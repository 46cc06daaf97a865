// `lethectl keys generate`: a key pair as PREFIX.key and PREFIX.pub (crypto/seal.h), never
// replacing a key without keeping it.
#include "cli/keys.h"

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "crypto/seal.h"
#include "nlohmann/json.hpp"

namespace lethe::cli {
namespace {

int KeysGenerate(const Global& g, const std::string& prefix, bool force) {
  // Never lose a key silently: it may sign a live ledger, whose checkpoints and commands no
  // other key can sign. --force keeps the old pair beside the new one.
  std::vector<std::string> kept;
  for (const char* ext : {".key", ".pub"}) {
    const std::string path = prefix + ext;
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) continue;
    if (!force)
      return Fail("keys generate",
                  absl::AlreadyExistsError(
                      path + " exists; keys generate never replaces a key (it may sign a live "
                             "ledger or receipts). Use another --out, or --force to replace the "
                             "pair, keeping the old files as " + prefix + ext + ".bak-<time>"));
    const std::string backup =
        path + ".bak-" + absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone());
    if (std::filesystem::exists(backup, ec))
      return Fail("keys generate", absl::AlreadyExistsError(backup + " exists; try again in a second"));
    std::filesystem::rename(path, backup, ec);
    if (ec) return Fail("keys generate", absl::UnavailableError("cannot move " + path + " to " + backup + ": " + ec.message()));
    kept.push_back(backup);
  }
  std::error_code ec;
  const auto parent = std::filesystem::path(prefix).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
    return Fail("keys generate", absl::NotFoundError("directory " + parent.string() +
                                                     " does not exist; create it first (mkdir -p " +
                                                     parent.string() + ")"));
  auto key_id = lethe::crypto::GenerateKeyFiles(prefix);
  if (!key_id.ok()) return Fail("keys generate", key_id.status());
  if (g.json()) {
    nlohmann::json j = {{"key", prefix + ".key"}, {"pub", prefix + ".pub"}, {"key_id", *key_id},
                        {"backups", kept}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  for (const auto& b : kept) std::cout << "kept the old " << b << "\n";
  std::cout << "wrote " << prefix << ".key (private, mode 0600) and " << prefix
            << ".pub: an Ed25519 signing key (key id " << *key_id
            << ") and an X25519 key that commands are sealed to\n";
  return 0;
}

}  // namespace

void AddKeysCommands(CLI::App& app, Context& ctx) {
  // The flags' values, kept alive by the callbacks that read them.
  struct Flags {
    std::string prefix;
    bool force = false;
  };
  auto f = std::make_shared<Flags>();
  auto* keys = app.add_subcommand("keys", "Ed25519 key pairs")->require_subcommand(1);
  ctx.examples[keys] = "lethectl keys generate --out keys/lethed";
  auto* keygen = keys->add_subcommand("generate", "write PREFIX.key (0600) and PREFIX.pub; never replaces a key");
  keygen->add_option("--out", f->prefix, "file prefix")->required();
  keygen->add_flag("--force", f->force, "replace an existing pair, keeping it as PREFIX.key.bak-<time> and .pub.bak-<time>");
  keygen->callback([&ctx, f] { ctx.rc = KeysGenerate(ctx.g, f->prefix, f->force); });
  ctx.examples[keygen] = "mkdir -p keys && lethectl keys generate --out keys/growth";
}

}  // namespace lethe::cli
