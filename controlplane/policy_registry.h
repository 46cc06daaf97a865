// PolicyRegistry: which policy is active, and every policy that ever was, as a projection of
// the ledger's PolicyActivated entries. Requests are planned with Active(); an entry whose
// YAML does not parse or does not hash to its recorded policy_hash is corruption (kDataLoss).
//
// Thread safe. A policy object, once handed out, is immutable and lives as long as its holder.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lethe/v1/ledger.pb.h"
#include "policies/policy.h"

namespace lethe::controlplane {

struct PolicyActivation {
  uint64_t activation = 0;  // 1, 2, ...
  uint64_t entry = 0;       // ledger index of PolicyActivated
  int64_t activated_unix_ms = 0;
  int format_version = 0;
  std::string name;
  std::string hash;  // raw SHA-256 of the canonical policy
  std::string source;
  v1::Actor actor;  // who activated it
  std::string yaml;
  std::shared_ptr<const policies::Policy> policy;
};

class PolicyRegistry {
 public:
  absl::Status Apply(uint64_t seq, const v1::LedgerEntry& entry);

  // The active policy; null before the first activation.
  std::shared_ptr<const policies::Policy> Active() const;
  std::optional<PolicyActivation> ActiveRecord() const;
  // Oldest first.
  std::vector<PolicyActivation> History() const;

 private:
  mutable std::mutex mu_;
  std::vector<PolicyActivation> history_;
};

}  // namespace lethe::controlplane
