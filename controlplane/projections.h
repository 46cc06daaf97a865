// Projections: everything lethed knows, rebuilt from the ledger at start and kept current by
// applying each entry as the LedgerWriter sequences it, in log order (ledger_writer.h: what
// is shown waits for durability). Each projection ignores the entry kinds it does not track.
#pragma once

#include "controlplane/consent_store.h"
#include "controlplane/policy_registry.h"
#include "controlplane/request_store.h"

namespace lethe::controlplane {

struct Projections {
  PolicyRegistry policies;
  ConsentStore consent;
  RequestStore requests;

  // Where the projections keep what they remember of the past on disk (see each one).
  void SetScratchDir(const std::string& dir) {
    consent.SetScratchDir(dir);
    requests.SetScratchDir(dir);
  }
  absl::Status Apply(uint64_t seq, const v1::LedgerEntry& entry) {
    if (absl::Status s = policies.Apply(seq, entry); !s.ok()) return s;
    if (absl::Status s = consent.Apply(seq, entry); !s.ok()) return s;
    return requests.Apply(seq, entry);
  }
  // Entries below `end` are durable: what the ledger now holds for good may leave memory
  // (ended requests, superseded consent), to be read back from it when asked for.
  void MarkDurable(uint64_t end) {
    consent.MarkDurable(end);
    requests.MarkDurable(end);
  }
  // Apply for an entry read back from a log at its opening: it is durable already.
  absl::Status Replay(uint64_t seq, const v1::LedgerEntry& entry) {
    if (absl::Status s = Apply(seq, entry); !s.ok()) return s;
    MarkDurable(seq + 1);
    return absl::OkStatus();
  }
};

}  // namespace lethe::controlplane
