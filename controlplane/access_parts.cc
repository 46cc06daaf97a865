// AccessParts (access_parts.h): chunks in memory, parts on disk under the request key.
#include "controlplane/access_parts.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/file_system.h"
#include "base/status.h"
#include "crypto/crypto.h"

namespace lethe::controlplane {
namespace {

// Request ids are lethed's own (32 lowercase hex); domain names come from the policy. Both
// become path components only when they cannot climb out of DIR/parts.
bool PartPathComponentOk(const std::string& s) {
  if (s.empty() || s.size() > 128 || s[0] == '.') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

std::string PartAad(const std::string& request_id, const std::string& domain) {
  return absl::StrCat(request_id, "/part/", domain);
}

absl::Status MakePrivateDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cannot create directory ", path, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AccessParts>> AccessParts::Open(const std::string& dir, AccessPartLimits limits) {
  const std::string parts = dir + "/parts";
  LETHE_RETURN_IF_ERROR(MakePrivateDir(parts));
  return std::unique_ptr<AccessParts>(new AccessParts(parts, limits));
}

absl::Status AccessParts::AddChunk(const v1::AccessPartChunk& chunk) {
  if (chunk.count() == 0 || chunk.index() >= chunk.count())
    return absl::InvalidArgumentError(absl::StrCat("part chunk: index ", chunk.index(), " of ", chunk.count()));
  if (chunk.count() > limits_.max_chunks)
    return absl::ResourceExhaustedError(absl::StrCat("part chunk: a part of ", chunk.count(),
                                                     " chunks is more than the limit of ", limits_.max_chunks));
  if (chunk.sealed_sha256().size() != 32) return absl::InvalidArgumentError("part chunk: sealed_sha256 is not 32 bytes");
  std::lock_guard<std::mutex> l(mu_);
  Held& h = held_[chunk.command_id()][chunk.sealed_sha256()];
  if (h.count != 0 && h.count != chunk.count())
    return absl::InvalidArgumentError("part chunk: its count differs from its siblings'");
  h.count = chunk.count();
  size_t replaced = 0;
  if (auto it = h.data.find(chunk.index()); it != h.data.end()) replaced = it->second.size();
  const size_t part_after = h.bytes - replaced + chunk.data().size();
  const size_t held_after = held_bytes_ - replaced + chunk.data().size();
  if (part_after > limits_.max_part_bytes || held_after > limits_.max_held_bytes) {
    if (h.data.empty()) held_[chunk.command_id()].erase(chunk.sealed_sha256());
    if (held_[chunk.command_id()].empty()) held_.erase(chunk.command_id());
    return absl::ResourceExhaustedError(absl::StrCat(
        "part chunk: holding it would exceed ", part_after > limits_.max_part_bytes ? "the part" : "the held",
        " limit of ", part_after > limits_.max_part_bytes ? limits_.max_part_bytes : limits_.max_held_bytes,
        " bytes"));
  }
  h.data[chunk.index()] = chunk.data();
  h.bytes = part_after;
  held_bytes_ = held_after;
  return absl::OkStatus();
}

absl::StatusOr<std::string> AccessParts::TakeSealed(const std::string& command_id, const std::string& sealed_sha256,
                                                    uint32_t count) {
  std::lock_guard<std::mutex> l(mu_);
  auto c = held_.find(command_id);
  if (c == held_.end()) return absl::NotFoundError("no chunk of the part has arrived");
  auto p = c->second.find(sealed_sha256);
  if (p == c->second.end()) return absl::NotFoundError("no chunk of the part the receipt names has arrived");
  Held& h = p->second;
  if (h.count != count)
    return absl::NotFoundError(absl::StrCat("the part's chunks say ", h.count, " chunks, the receipt ", count));
  if (h.data.size() != count)
    return absl::NotFoundError(absl::StrCat(h.data.size(), " of the part's ", count, " chunks have arrived"));
  std::string whole;
  whole.reserve(h.bytes);
  for (const auto& [index, bytes] : h.data) whole += bytes;
  held_bytes_ -= h.bytes;
  c->second.erase(p);
  if (c->second.empty()) held_.erase(c);
  if (crypto::Sha256(whole) != sealed_sha256)
    return absl::DataLossError("the part's chunks do not hash to the digest they carry");
  return whole;
}

void AccessParts::Forget(const std::string& command_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto c = held_.find(command_id);
  if (c == held_.end()) return;
  for (const auto& [digest, h] : c->second) held_bytes_ -= h.bytes;
  held_.erase(c);
}

size_t AccessParts::held_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return held_bytes_;
}

std::string AccessParts::PartPath(const std::string& request_id, const std::string& domain) const {
  return absl::StrCat(dir_, "/", request_id, "/", domain, ".part");
}

absl::Status AccessParts::Store(const std::string& request_id, const std::string& domain, const SecretBytes& key,
                                const SecretBytes& part) const {
  if (!PartPathComponentOk(request_id) || !PartPathComponentOk(domain))
    return absl::InvalidArgumentError("part: request id or domain is not a safe file name");
  LETHE_ASSIGN_OR_RETURN(std::string sealed, crypto::SealAesGcm(key, RevealSecret(part), PartAad(request_id, domain)));
  LETHE_RETURN_IF_ERROR(MakePrivateDir(absl::StrCat(dir_, "/", request_id)));
  LETHE_RETURN_IF_ERROR(FileSystem::Default()->SyncDir(dir_));
  return WriteFileAtomic(PartPath(request_id, domain), sealed, 0600);
}

absl::StatusOr<SecretBytes> AccessParts::Load(const std::string& request_id, const std::string& domain,
                                              const SecretBytes& key) const {
  if (!PartPathComponentOk(request_id) || !PartPathComponentOk(domain))
    return absl::InvalidArgumentError("part: request id or domain is not a safe file name");
  LETHE_ASSIGN_OR_RETURN(std::string sealed, ReadFile(PartPath(request_id, domain)));
  auto plain = crypto::OpenAesGcm(key, sealed, PartAad(request_id, domain));
  if (!plain.ok())
    return absl::DataLossError(absl::StrCat("the stored part of domain ", domain, " of request ", request_id,
                                            " does not open under its request key"));
  return plain;
}

absl::Status AccessParts::Remove(const std::string& request_id) const {
  if (!PartPathComponentOk(request_id)) return absl::InvalidArgumentError("part: request id is not a safe file name");
  std::error_code ec;
  std::filesystem::remove_all(absl::StrCat(dir_, "/", request_id), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove the parts of request ", request_id, ": ", ec.message()));
  return FileSystem::Default()->SyncDir(dir_);
}

absl::StatusOr<std::vector<std::string>> AccessParts::StoredRequests() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir_, ": ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace lethe::controlplane
