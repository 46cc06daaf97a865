// When the bytes an erasure removed are physically gone, per store (docs/physical.md): what
// lethed shows in `request get`, what a certificate states, and what an auditor recomputes
// from the two signed receipts of a domain, all by this one function.
//
// A domain's COMPLETED erasure receipt is "logically erased" at its completed_at_unix_ms. Its
// physical bound is the latest of:
// - PostgreSQL: the domain's PHYSICALLY_PURGED receipt (the vacuum of every table the purge
//   left dead rows in); pending until it is recorded. A purge that changed no row needs none.
// - Kafka: each tombstone's physically_gone_by_unix_ms; 0 means no bound (the topic's
//   max.compaction.lag.ms is unset, it is not compacted, or its settings could not be read).
// - S3: each deleting bucket entry's physically_gone_by_unix_ms (deleted versions are gone
//   when the re-check found none).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/v1/messages.pb.h"

namespace lethe::audit {

struct PhysicalBound {
  enum class State {
    kNotApplicable,  // not a COMPLETED erasure receipt
    kPending,        // the PHYSICALLY_PURGED receipt has not come yet
    kBounded,        // gone by `gone_by_unix_ms` (which may lie ahead, for a topic)
    kUnbounded,      // a store has no bound: DONE_WITH_GAPS for physical purge
  };
  State state = State::kNotApplicable;
  int64_t logically_erased_unix_ms = 0;
  int64_t gone_by_unix_ms = 0;  // kBounded only
  // kPending: "vacuum of TABLE, ..."; kUnbounded: "topic T (REASON), ..." (then the pending
  // tables too, if any).
  std::string reason;
};

// Why a tombstone has no bound (physically_gone_by_unix_ms 0): its topic's settings were not
// read, it is not compacted, or max.compaction.lag.ms is unset.
std::string UnboundedTombstoneReason(const v1::TombstoneResult& t);

// A domain's bound from its answer `completed` and its PHYSICALLY_PURGED receipt (null when
// none is recorded). `access`: the command was an AccessCommand.
PhysicalBound DomainPhysicalBound(const v1::Receipt& completed, const v1::Receipt* physical, bool access);

// A request's bound: the latest of its domains' (kUnbounded when one is, else kPending when
// one is; kNotApplicable when none applies). Reasons are joined, each prefixed "DOMAIN: ".
PhysicalBound RequestPhysicalBound(const std::vector<std::pair<std::string, PhysicalBound>>& domains);

// "not applicable", "pending", "gone by", "no bound".
const char* PhysicalStateName(PhysicalBound::State s);

}  // namespace lethe::audit
