// What the ledger fuzz targets (segment_fuzz.cc, tiles_fuzz.cc) and make_corpus.cc share:
// the fix-ups that let mutated ledger entries get past hashes and signatures the fuzzer
// cannot compute.
#pragma once

#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "ledger/merkle.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/fuzz/fuzz_util.h"

namespace lethe::fuzz {

// Silences protobuf's log lines (an invalid UTF-8 string field is logged on every parse
// that meets one), which would otherwise flood the fuzzer's output. Call at every input.
inline void QuietProtobuf() {
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
}

// Turns arbitrary payloads into a hash chain the verifiers accept as far as their bodies
// allow: each payload that parses as a LedgerEntry gets seq = its index and the leaf hash of
// the one before as prev_hash; with `fix_bodies`, entry 0's LogCreated also names the fixed
// control-plane key, receipts signed under the fixed agent key's id are signed again with
// it, and a PolicyActivated whose YAML parses gets that policy's hash. Payloads that do not
// parse are kept as they are (and break the chain there, as they would on disk).
inline std::vector<std::string> ChainEntries(const std::vector<std::string>& payloads,
                                             bool fix_bodies) {
  std::vector<std::string> out;
  out.reserve(payloads.size());
  std::string prev(32, '\0');
  for (size_t i = 0; i < payloads.size(); ++i) {
    v1::LedgerEntry e;
    if (!e.ParseFromString(payloads[i])) {
      out.push_back(payloads[i]);
    } else {
      e.set_seq(i);
      e.set_prev_hash(prev);
      if (fix_bodies) {
        if (i == 0 && e.has_log_created()) {
          e.mutable_log_created()->set_control_plane_public_key(
              ControlPlaneKey().public_key().raw());
        }
        if (e.has_receipt_recorded() &&
            e.receipt_recorded().receipt().key_id() == AgentKey().public_key().KeyId()) {
          const v1::SignedEnvelope& env = e.receipt_recorded().receipt();
          *e.mutable_receipt_recorded()->mutable_receipt() =
              proto::SignEnvelope(env.payload_type(), env.body(), AgentKey());
        }
        if (e.has_policy_activated()) {
          auto policy = policies::Policy::Parse(e.policy_activated().policy_yaml(), "fuzz");
          if (policy.ok()) e.mutable_policy_activated()->set_policy_hash(policy->Hash());
        }
      }
      std::string bytes;
      if (!e.SerializeToString(&bytes)) bytes = payloads[i];
      out.push_back(std::move(bytes));
    }
    prev = ledger::LeafHash(out.back());
  }
  return out;
}

}  // namespace lethe::fuzz
