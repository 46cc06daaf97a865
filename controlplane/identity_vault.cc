#include "controlplane/identity_vault.h"

#include <fcntl.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/crypto.h"

namespace lethe::controlplane {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<IdentityVault>> IdentityVault::Open(const std::string& dir,
                                                                   bool may_create_pepper) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError("cannot create key store " + dir + ": " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, ec);
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
  std::unique_ptr<IdentityVault> vault(new IdentityVault(dir, SecretBytes(std::move(pepper))));
  LETHE_RETURN_IF_ERROR(vault->OpenSlots());
  LETHE_RETURN_IF_ERROR(vault->ImportKeyFiles());
  return vault;
}

IdentityVault::~IdentityVault() {
  if (fd_ >= 0) ::close(fd_);
}

std::string IdentityVault::Tokenize(std::string_view type, const SecretBytes& value) const {
  std::string msg(type);
  msg.push_back('\0');
  msg.append(RevealSecret(value));
  SecretBytes guarded(std::move(msg));
  return crypto::HmacSha256(pepper_, RevealSecret(guarded));
}

namespace {

constexpr char kMagic[] = "LKS1";
constexpr size_t kIdAt = 8, kKeyAt = 72, kSumAt = 112, kKeySize = 32;
constexpr uint64_t kGrowBy = 1024;  // slots added when none is free (128 KiB)

// A slot holding `key` for `request_id` (layout in identity_vault.h).
SecretBytes MakeSlot(const std::string& request_id, std::string_view key) {
  std::string slot(IdentityVault::kSlotSize, '\0');
  std::memcpy(slot.data(), kMagic, 4);
  slot[4] = static_cast<char>(request_id.size());
  std::memcpy(slot.data() + kIdAt, request_id.data(), request_id.size());
  std::memcpy(slot.data() + kKeyAt, key.data(), kKeySize);
  const std::string sum = crypto::Sha256(std::string_view(slot).substr(0, kSumAt));
  std::memcpy(slot.data() + kSumAt, sum.data(), IdentityVault::kSlotSize - kSumAt);
  return SecretBytes(std::move(slot));
}

// "" when `slot` is well formed (its id and key are returned), else what is wrong with it.
std::string ParseSlot(std::string_view slot, std::string* request_id, std::string* key) {
  if (slot.substr(0, 4) != std::string_view(kMagic, 4)) return "no slot mark";
  const size_t len = static_cast<unsigned char>(slot[4]);
  if (len == 0 || len > IdentityVault::kMaxIdLength) return "request id length out of range";
  const std::string sum = crypto::Sha256(slot.substr(0, kSumAt));
  if (slot.substr(kSumAt) != std::string_view(sum).substr(0, IdentityVault::kSlotSize - kSumAt))
    return "checksum mismatch";
  *request_id = std::string(slot.substr(kIdAt, len));
  *key = std::string(slot.substr(kKeyAt, kKeySize));
  return "";
}

absl::Status Errno(const std::string& what) { return absl::UnavailableError(what + ": " + std::strerror(errno)); }

void SyncDir(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

absl::Status IdentityVault::OpenSlots() {
  const std::string path = dir_ + "/" + kKeysFile;
  const bool existed = fs::exists(path);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return Errno("cannot open " + path);
  if (!existed) SyncDir(dir_);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return Errno("cannot stat " + path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::lock_guard<std::mutex> l(mu_);
  // A file grows by whole slots (ftruncate); anything else is not this vault's doing.
  if (size % kSlotSize != 0)
    return absl::DataLossError(absl::StrCat(path, ": ", size, " bytes is not a whole number of ", kSlotSize,
                                            "-byte key slots"));
  slots_ = size / kSlotSize;
  std::string chunk(kSlotSize * 512, '\0');
  absl::Cleanup wipe_chunk = [&chunk] { SecretBytes wiped(std::move(chunk)); };  // held keys
  for (uint64_t first = 0; first < slots_;) {
    const uint64_t n = std::min<uint64_t>(512, slots_ - first);
    const ssize_t got = ::pread(fd_, chunk.data(), n * kSlotSize, static_cast<off_t>(first * kSlotSize));
    if (got != static_cast<ssize_t>(n * kSlotSize)) return Errno("cannot read " + path);
    for (uint64_t i = 0; i < n; ++i) {
      const std::string_view slot = std::string_view(chunk).substr(i * kSlotSize, kSlotSize);
      if (slot.find_first_not_of('\0') == std::string_view::npos) {
        free_.push_back(first + i);
        continue;
      }
      std::string id, key;
      if (std::string why = ParseSlot(slot, &id, &key); !why.empty())
        return absl::DataLossError(absl::StrCat(path, ": key slot ", first + i, " does not check (", why,
                                                "); the request key it held cannot be read"));
      if (slot_of_.count(id))
        return absl::DataLossError(absl::StrCat(path, ": key slot ", first + i, " holds a second key for request ",
                                                id.substr(0, 16)));
      slot_of_[id] = first + i;
      keys_[id] = SecretBytes(std::move(key));
    }
    first += n;
  }
  std::reverse(free_.begin(), free_.end());  // the lowest slots are used first
  return absl::OkStatus();
}

absl::Status IdentityVault::ImportKeyFiles() {
  const std::string old_dir = dir_ + "/keys";
  if (!fs::is_directory(old_dir)) return absl::OkStatus();
  std::vector<fs::path> files, temporary;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(old_dir, ec)) {
    const std::string name = f.path().filename().string();
    if (name.find(".key.tmp-") != std::string::npos) temporary.push_back(f.path());
    else if (name.size() > 4 && name.compare(name.size() - 4, 4, ".key") == 0) files.push_back(f.path());
  }
  if (ec) return absl::UnavailableError("cannot list " + old_dir + ": " + ec.message());
  for (const fs::path& f : files) {
    LETHE_ASSIGN_OR_RETURN(std::string bytes, lethe::ReadFile(f.string()));
    SecretBytes key(std::move(bytes));
    if (key.size() != kKeySize) return absl::DataLossError("request key file " + f.string() + " is not 32 bytes");
    const std::string id = f.filename().string().substr(0, f.filename().string().size() - 4);
    LETHE_RETURN_IF_ERROR(Store(id, key));
  }
  // Every key is in its slot, durably: the files go, overwritten first.
  const std::string zeros(kKeySize, '\0');
  for (const fs::path& f : files) {
    const int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!::pwrite(fd, zeros.data(), zeros.size(), 0);
      ::fdatasync(fd);
      ::close(fd);
    }
  }
  for (const auto& group : {files, temporary})
    for (const fs::path& f : group)
      if (::unlink(f.c_str()) != 0 && errno != ENOENT) return Errno("cannot remove " + f.string());
  SyncDir(old_dir);
  fs::remove(old_dir, ec);  // only when empty
  SyncDir(dir_);
  return absl::OkStatus();
}

absl::Status IdentityVault::WriteSlots(const std::vector<std::pair<uint64_t, SecretBytes>>& slots) const {
  const std::string path = dir_ + "/" + kKeysFile;
  for (const auto& [slot, bytes] : slots) {
    const std::string_view b = RevealSecret(bytes);
    if (::pwrite(fd_, b.data(), b.size(), static_cast<off_t>(slot * kSlotSize)) != static_cast<ssize_t>(b.size()))
      return Errno("cannot write " + path);
  }
  if (::fdatasync(fd_) != 0) return Errno("cannot sync " + path);
  return absl::OkStatus();
}

absl::Status IdentityVault::Store(const std::string& request_id, const SecretBytes& key) {
  if (request_id.empty() || request_id.size() > kMaxIdLength)
    return absl::InvalidArgumentError(absl::StrCat("request id: length ", request_id.size(), " (1 to ",
                                                   kMaxIdLength, " bytes)"));
  uint64_t slot = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = slot_of_.find(request_id); it != slot_of_.end()) {
      slot = it->second;
    } else {
      if (free_.empty()) {
        const uint64_t grown = slots_ + kGrowBy;
        if (::ftruncate(fd_, static_cast<off_t>(grown * kSlotSize)) != 0)
          return Errno("cannot grow " + dir_ + "/" + kKeysFile);
        for (uint64_t s = grown; s > slots_; --s) free_.push_back(s - 1);
        slots_ = grown;
      }
      slot = free_.back();
      free_.pop_back();
    }
  }
  std::vector<std::pair<uint64_t, SecretBytes>> write;
  write.emplace_back(slot, MakeSlot(request_id, RevealSecret(key)));
  // On failure the slot is not freed: it may hold the key until the next start's sweep.
  LETHE_RETURN_IF_ERROR(WriteSlots(write));
  std::lock_guard<std::mutex> l(mu_);
  slot_of_[request_id] = slot;
  keys_[request_id] = key;
  return absl::OkStatus();
}

absl::StatusOr<SecretBytes> IdentityVault::CreateRequestKey(const std::string& request_id) {
  SecretBytes key = crypto::RandomSecret(kKeySize);
  LETHE_RETURN_IF_ERROR(Store(request_id, key));
  return key;
}

absl::StatusOr<SecretBytes> IdentityVault::RequestKey(const std::string& request_id) const {
  std::lock_guard<std::mutex> l(mu_);
  if (auto it = keys_.find(request_id); it != keys_.end()) return it->second;
  return absl::NotFoundError("request key destroyed or never created");
}

bool IdentityVault::HasRequestKey(const std::string& request_id) const {
  std::lock_guard<std::mutex> l(mu_);
  return slot_of_.count(request_id) > 0;
}

absl::StatusOr<std::vector<std::string>> IdentityVault::StoredRequestKeys() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, slot] : slot_of_) ids.push_back(id);
  return ids;
}

absl::Status IdentityVault::DestroyRequestKey(const std::string& request_id) {
  return DestroyRequestKeys({request_id});
}

absl::Status IdentityVault::DestroyRequestKeys(const std::vector<std::string>& request_ids) {
  std::vector<std::pair<uint64_t, SecretBytes>> zeros;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& id : request_ids) {
      keys_.erase(id);
      auto it = slot_of_.find(id);
      if (it == slot_of_.end()) continue;  // already gone (idempotent)
      zeros.emplace_back(it->second, SecretBytes(std::string(kSlotSize, '\0')));
      slot_of_.erase(it);
    }
  }
  if (zeros.empty()) return absl::OkStatus();
  // The key is overwritten in place, every slot with one fdatasync. The file work runs
  // without mu_, so that readers of other keys (the outbox, every submission) never wait for
  // its disk. On failure the slots are not freed: the keys may still be on disk until the
  // next start's sweep destroys them (their requests have ended).
  LETHE_RETURN_IF_ERROR(WriteSlots(zeros));
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [slot, bytes] : zeros) free_.push_back(slot);
  return absl::OkStatus();
}

}  // namespace lethe::controlplane
