// IdentityVault: lethed's secrets that must never enter the ledger.
//   - the pepper: 32 random bytes that key the HMAC turning identities into tokens;
//   - one AES-256-GCM key per open request, which seals the request's identities and
//     commands in the ledger. Destroying it when the request completes crypto-shreds them.
// Layout (mode 0700 directory, 0600 files):
//   DIR/pepper           32 bytes, written atomically and fsync'd;
//   DIR/request-keys     the request keys, one 128-byte slot each (below). A key is written
//                        into a free slot and fdatasync'd before CreateRequestKey returns; a
//                        destroyed key's slot is overwritten with zeros in place and
//                        fdatasync'd before the slot is used again. No file is created or
//                        removed per request.
// A slot: "LKS1", the request id's length (1 byte, at most 64), 3 zero bytes, the id (64
// bytes, zero-padded), the key (32 bytes), 8 zero bytes, and the first 16 bytes of the
// SHA-256 of the 112 bytes before them. A slot of zeros is free; any other slot that does not
// check is reported as kDataLoss when the vault opens.
// Keys of earlier versions (DIR/keys/<request id>.key files) move into the slots at Open and
// their files are overwritten and removed.
//
// Thread safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
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
  // Overwrites the key's slot with zeros and fdatasyncs it. Idempotent.
  absl::Status DestroyRequestKey(const std::string& request_id);
  // The same for many keys, with one fdatasync for all of them.
  absl::Status DestroyRequestKeys(const std::vector<std::string>& request_ids);
  bool HasRequestKey(const std::string& request_id) const;
  // The request ids that have a key on disk, sorted. For the start-up sweep of keys whose
  // request has ended, which so costs the keys on disk, not the requests.
  absl::StatusOr<std::vector<std::string>> StoredRequestKeys();

  static constexpr size_t kSlotSize = 128;
  static constexpr size_t kMaxIdLength = 64;
  static constexpr char kKeysFile[] = "request-keys";
  ~IdentityVault();

 private:
  IdentityVault(std::string dir, SecretBytes pepper) : dir_(std::move(dir)), pepper_(std::move(pepper)) {}
  absl::Status OpenSlots();     // reads DIR/request-keys, creating it when absent
  absl::Status ImportKeyFiles();  // moves DIR/keys/*.key of earlier versions into slots
  // Writes each whole slot at its index, then fdatasyncs the file once.
  absl::Status WriteSlots(const std::vector<std::pair<uint64_t, SecretBytes>>& slots) const;
  // Writes `key` into the request's slot (a free one for a new request) and syncs it.
  absl::Status Store(const std::string& request_id, const SecretBytes& key);

  const std::string dir_;
  const SecretBytes pepper_;
  int fd_ = -1;  // DIR/request-keys
  mutable std::mutex mu_;
  std::map<std::string, SecretBytes> keys_ ABSL_GUARDED_BY(mu_);  // every stored key
  std::map<std::string, uint64_t> slot_of_ ABSL_GUARDED_BY(mu_);   // request id -> its slot
  // Slots free to use: zero on disk, durably. A destroyed key's slot joins once its zeros are
  // synced; a slot whose write failed does not (it may hold a key until the next start).
  std::vector<uint64_t> free_ ABSL_GUARDED_BY(mu_);
  uint64_t slots_ ABSL_GUARDED_BY(mu_) = 0;  // slots in the file
};

}  // namespace lethe::controlplane
