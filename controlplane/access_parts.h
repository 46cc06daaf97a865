// AccessParts: lethed's side of the parts of access requests, between the agents and the
// export (docs/access.md).
//
// An agent answers an AccessCommand with its part, sealed to the request's part key and cut
// into AccessPartChunk messages on lethe.receipts, then its receipt. The intake verifies each
// chunk's signature and hands it here, where chunks wait in memory (bounded) until the
// receipt naming their sealed digest arrives; RequestManager then takes the sealed part whole,
// opens it, checks it against the receipt, and stores the part here, encrypted under the
// request key, before the receipt is recorded:
//   DIR/parts/<request id>/<domain>.part   AES-256-GCM (nonce || ciphertext || tag) of the
//                                          part, additional data "<request id>/part/<domain>";
//                                          mode 0600, written atomically and synced.
// Destroying the request key makes every stored part unreadable; Remove deletes the files too.
//
// Thread safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "crypto/secret.h"
#include "lethe/v1/messages.pb.h"

namespace lethe::controlplane {

struct AccessPartLimits {
  // One sealed part, all of its chunks (a larger part is refused: its receipt never records).
  size_t max_part_bytes = size_t{256} << 20;
  // Every chunk held at once, of every command.
  size_t max_held_bytes = size_t{1} << 30;
  uint32_t max_chunks = 65536;
};

class AccessParts {
 public:
  // Creates DIR/parts (mode 0700) when absent.
  static absl::StatusOr<std::unique_ptr<AccessParts>> Open(const std::string& dir, AccessPartLimits limits = {});

  // Holds one chunk whose signature the caller verified. A chunk already held (a redelivery)
  // replaces the copy. kInvalidArgument for a chunk that contradicts itself (index beyond
  // count, another count than its siblings); kResourceExhausted beyond the limits (dropped:
  // the agent sends the part again when the command is re-published).
  absl::Status AddChunk(const v1::AccessPartChunk& chunk);

  // The sealed part of `command_id` whose chunks carry `sealed_sha256`, whole and in index
  // order, checked against that digest; its chunks are forgotten. kNotFound while a chunk is
  // missing; kDataLoss when the whole does not hash to the digest.
  absl::StatusOr<std::string> TakeSealed(const std::string& command_id, const std::string& sealed_sha256,
                                         uint32_t count);
  // Drops every chunk held for `command_id` (its receipt was recorded, or refused).
  void Forget(const std::string& command_id);
  size_t held_bytes() const;

  // Stores `part` encrypted under `key`, durably, replacing an earlier one.
  absl::Status Store(const std::string& request_id, const std::string& domain, const SecretBytes& key,
                     const SecretBytes& part) const;
  // kNotFound when no part is stored; kDataLoss when it does not open under `key`.
  absl::StatusOr<SecretBytes> Load(const std::string& request_id, const std::string& domain,
                                   const SecretBytes& key) const;
  // Deletes the request's parts (OK when there are none).
  absl::Status Remove(const std::string& request_id) const;
  // Request ids that have parts on disk.
  absl::StatusOr<std::vector<std::string>> StoredRequests() const;

 private:
  AccessParts(std::string dir, AccessPartLimits limits) : dir_(std::move(dir)), limits_(limits) {}
  std::string PartPath(const std::string& request_id, const std::string& domain) const;

  struct Held {
    uint32_t count = 0;
    std::map<uint32_t, std::string> data;  // index -> bytes
    size_t bytes = 0;
  };
  const std::string dir_;  // DIR/parts
  const AccessPartLimits limits_;
  mutable std::mutex mu_;
  // command id -> sealed digest -> chunks
  std::map<std::string, std::map<std::string, Held>> held_ ABSL_GUARDED_BY(mu_);
  size_t held_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace lethe::controlplane
