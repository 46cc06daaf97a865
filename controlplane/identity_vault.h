// IdentityVault: lethed's secrets that must never enter the ledger.
//   - the pepper: 32 random bytes that key the HMAC turning identities into tokens;
//   - one AES-256-GCM key per open request, which seals the request's identities and
//     commands in the ledger. Destroying it when the request completes crypto-shreds them.
// Layout: DIR/pepper and DIR/keys/<request id>.key, mode 0600, written atomically and fsync'd.
//
// Thread safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/secret.h"

namespace lethe::controlplane {

class IdentityVault {
 public:
  // `may_create_pepper`: a new deployment (no ledger yet) gets a fresh pepper; otherwise a
  // missing pepper file is an error naming it.
  static absl::StatusOr<std::unique_ptr<IdentityVault>> Open(const std::string& dir,
                                                            bool may_create_pepper);

  // HMAC-SHA-256(pepper, type || 0x00 || value): the pseudonymous token of an identity.
  std::string Tokenize(std::string_view type, const SecretBytes& value) const;

  // Creates the key of a new request; durable before it returns.
  absl::StatusOr<SecretBytes> CreateRequestKey(const std::string& request_id);
  // kNotFound once the key was destroyed.
  absl::StatusOr<SecretBytes> RequestKey(const std::string& request_id) const;
  // Removes the key file and syncs the directory. Idempotent.
  absl::Status DestroyRequestKey(const std::string& request_id);
  // The same for many keys, with one directory sync for all of them.
  absl::Status DestroyRequestKeys(const std::vector<std::string>& request_ids);
  bool HasRequestKey(const std::string& request_id) const;
  // The request ids that have a key file, and the temporary files an interrupted
  // CreateRequestKey left (removed here: they are never a request's key). For the start-up
  // sweep of keys whose request has ended, which so costs the keys on disk, not the requests.
  absl::StatusOr<std::vector<std::string>> StoredRequestKeys();

 private:
  IdentityVault(std::string dir, SecretBytes pepper)
      : dir_(std::move(dir)), pepper_(std::move(pepper)) {}
  std::string KeyPath(const std::string& request_id) const;

  const std::string dir_;
  const SecretBytes pepper_;
  mutable std::mutex mu_;
  mutable std::map<std::string, SecretBytes> cache_;
  // Keys being destroyed: not read back from their file meanwhile. The file work of a
  // destruction (overwrite, fdatasync, unlink, directory fsync) runs without mu_, so that
  // readers of other keys (the outbox, every submission) never wait for its disk.
  std::set<std::string> destroying_;
};

}  // namespace lethe::controlplane
