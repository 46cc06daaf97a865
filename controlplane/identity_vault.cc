#include "controlplane/identity_vault.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/crypto.h"

namespace lethe::controlplane {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<IdentityVault>> IdentityVault::Open(const std::string& dir,
                                                                   bool may_create_pepper) {
  std::error_code ec;
  fs::create_directories(dir + "/keys", ec);
  if (ec) return absl::UnavailableError("cannot create key store " + dir + ": " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, ec);
  fs::permissions(dir + "/keys", fs::perms::owner_all, ec);
  const std::string pepper_path = dir + "/pepper";
  if (!fs::exists(pepper_path)) {
    // A new pepper would silently break every token already in the ledger (consent history,
    // requests): only a new deployment gets one.
    if (!may_create_pepper)
      return absl::FailedPreconditionError(
          pepper_path + " is missing, and the ledger already holds identity tokens made with it; "
          "restore it from a backup (lethed will not make a new one: every existing token would "
          "stop matching)");
    SecretBytes fresh = crypto::RandomSecret(32);
    LETHE_RETURN_IF_ERROR(lethe::WriteFileAtomic(pepper_path, RevealSecret(fresh), 0600));
  }
  LETHE_ASSIGN_OR_RETURN(std::string pepper, lethe::ReadFile(pepper_path));
  if (pepper.size() != 32) return absl::DataLossError("pepper file " + pepper_path + " is not 32 bytes");
  return std::unique_ptr<IdentityVault>(new IdentityVault(dir, SecretBytes(std::move(pepper))));
}

std::string IdentityVault::Tokenize(std::string_view type, const SecretBytes& value) const {
  std::string msg(type);
  msg.push_back('\0');
  msg.append(RevealSecret(value));
  SecretBytes guarded(std::move(msg));
  return crypto::HmacSha256(pepper_, RevealSecret(guarded));
}

std::string IdentityVault::KeyPath(const std::string& request_id) const {
  return dir_ + "/keys/" + request_id + ".key";
}

absl::StatusOr<SecretBytes> IdentityVault::CreateRequestKey(const std::string& request_id) {
  SecretBytes key = crypto::RandomSecret(32);
  LETHE_RETURN_IF_ERROR(lethe::WriteFileAtomic(KeyPath(request_id), RevealSecret(key), 0600));
  std::lock_guard<std::mutex> l(mu_);
  cache_[request_id] = key;
  return key;
}

absl::StatusOr<SecretBytes> IdentityVault::RequestKey(const std::string& request_id) const {
  std::lock_guard<std::mutex> l(mu_);
  if (auto it = cache_.find(request_id); it != cache_.end()) return it->second;
  if (destroying_.count(request_id)) return absl::NotFoundError("request key destroyed or never created");
  auto bytes = lethe::ReadFile(KeyPath(request_id));
  if (!bytes.ok()) return absl::NotFoundError("request key destroyed or never created");
  SecretBytes key(std::move(*bytes));
  if (key.size() != 32) return absl::DataLossError("request key file is not 32 bytes");
  cache_[request_id] = key;
  return key;
}

bool IdentityVault::HasRequestKey(const std::string& request_id) const {
  std::lock_guard<std::mutex> l(mu_);
  if (cache_.count(request_id) > 0) return true;
  return destroying_.count(request_id) == 0 && fs::exists(KeyPath(request_id));
}

absl::StatusOr<std::vector<std::string>> IdentityVault::StoredRequestKeys() {
  std::vector<std::string> ids;
  bool removed = false;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir_ + "/keys", ec)) {
    const std::string name = f.path().filename().string();
    if (name.find(".key.tmp-") != std::string::npos) {
      if (::unlink(f.path().c_str()) != 0 && errno != ENOENT)
        return absl::UnavailableError("cannot remove " + f.path().string());
      removed = true;
    } else if (name.size() > 4 && name.compare(name.size() - 4, 4, ".key") == 0) {
      ids.push_back(name.substr(0, name.size() - 4));
    }
  }
  if (ec) return absl::UnavailableError("cannot list " + dir_ + "/keys: " + ec.message());
  if (removed) {
    int dfd = ::open((dir_ + "/keys").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::Status IdentityVault::DestroyRequestKey(const std::string& request_id) {
  return DestroyRequestKeys({request_id});
}

absl::Status IdentityVault::DestroyRequestKeys(const std::vector<std::string>& request_ids) {
  if (request_ids.empty()) return absl::OkStatus();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& id : request_ids) {
      cache_.erase(id);
      destroying_.insert(id);
    }
  }
  absl::Cleanup done = [&] {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& id : request_ids) destroying_.erase(id);
  };
  // Overwrite before unlinking: on most filesystems this replaces the blocks in place. All
  // overwrites are written first and then synced, so that the device works on them together.
  const std::string zeros(32, '\0');
  std::vector<int> fds;
  for (const auto& id : request_ids) {
    const int fd = ::open(KeyPath(id).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) continue;  // already gone (idempotent)
    (void)!::pwrite(fd, zeros.data(), zeros.size(), 0);
    fds.push_back(fd);
  }
  for (const int fd : fds) {
    ::fdatasync(fd);
    ::close(fd);
  }
  for (const auto& id : request_ids) {
    const std::string path = KeyPath(id);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return absl::UnavailableError("cannot remove request key " + path);
  }
  // One directory sync makes every unlink durable.
  int dfd = ::open((dir_ + "/keys").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

}  // namespace lethe::controlplane
