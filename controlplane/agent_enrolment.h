// AgentEnrolment: records which keys speak for a domain's agent. An admin enrols an agent's
// public keys (Ed25519 for its receipts, X25519 for the identities sealed into its commands)
// and revokes them; each is a ledger entry, sequenced through the LedgerWriter, and receipts
// are judged against the keys enrolled where they land in the log.
//
// Thread safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "controlplane/ledger_writer.h"
#include "controlplane/projections.h"
#include "lethe/v1/ledger.pb.h"

namespace lethe::controlplane {

class AgentEnrolment {
 public:
  AgentEnrolment(LedgerWriter& writer, Projections& projections)
      : writer_(writer), projections_(projections), store_(projections.requests) {}

  // Records AgentEnrolled for `domain` (must be a domain of the active policy) with the PEM
  // public keys (`lethectl keys generate`'s .pub file). kAlreadyExists for a key enrolled
  // before, revoked or not.
  absl::StatusOr<AgentRecord> Enroll(const std::string& domain, const std::string& pem,
                                     const v1::Actor& actor);
  // Records AgentKeyRevoked: receipts signed by the key are refused from then on.
  absl::StatusOr<AgentRecord> Revoke(const std::string& domain, const std::string& key_id,
                                     std::string reason, const v1::Actor& actor);

 private:
  LedgerWriter& writer_;
  Projections& projections_;
  RequestStore& store_;
};

}  // namespace lethe::controlplane
