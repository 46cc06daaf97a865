#include "audit/physical.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "audit/request_lifecycle.h"

namespace lethe::audit {

std::string UnboundedTombstoneReason(const v1::TombstoneResult& t) {
  if (!t.config_read()) return "its settings could not be read (DescribeConfigs)";
  if (t.cleanup_policy().find("compact") == std::string::npos)
    return "cleanup.policy " + t.cleanup_policy() + " does not compact";
  if (t.max_compaction_lag_ms() <= 0 || t.max_compaction_lag_ms() == INT64_MAX)
    return "max.compaction.lag.ms is unset: compaction may wait forever";
  return "its bound passes the end of time";
}

PhysicalBound DomainPhysicalBound(const v1::Receipt& completed, const v1::Receipt* physical, bool access) {
  PhysicalBound b;
  if (access || completed.outcome() != v1::Receipt::COMPLETED) return b;
  b.logically_erased_unix_ms = completed.completed_at_unix_ms();
  int64_t latest = completed.completed_at_unix_ms();
  std::vector<std::string> unbounded, pending;
  const std::vector<const v1::TableResult*> dead = TablesToVacuum(completed);
  if (!dead.empty()) {
    if (physical != nullptr) {
      latest = std::max(latest, physical->physically_gone_by_unix_ms());
    } else {
      for (const v1::TableResult* t : dead) pending.push_back("vacuum of " + t->table());
    }
  }
  for (const auto& t : completed.tombstones()) {
    if (t.physically_gone_by_unix_ms() > 0) {
      latest = std::max(latest, t.physically_gone_by_unix_ms());
    } else {
      const std::string why = "topic " + t.topic() + " (" + UnboundedTombstoneReason(t) + ")";
      if (std::find(unbounded.begin(), unbounded.end(), why) == unbounded.end()) unbounded.push_back(why);
    }
  }
  for (const auto& s : completed.s3())
    if (s.action() == "delete") latest = std::max(latest, s.physically_gone_by_unix_ms());
  if (!unbounded.empty()) {
    b.state = PhysicalBound::State::kUnbounded;
    b.reason = absl::StrJoin(unbounded, ", ");
    if (!pending.empty()) absl::StrAppend(&b.reason, "; waiting for ", absl::StrJoin(pending, ", "));
  } else if (!pending.empty()) {
    b.state = PhysicalBound::State::kPending;
    b.reason = "waiting for " + absl::StrJoin(pending, ", ");
  } else {
    b.state = PhysicalBound::State::kBounded;
    b.gone_by_unix_ms = latest;
  }
  return b;
}

PhysicalBound RequestPhysicalBound(const std::vector<std::pair<std::string, PhysicalBound>>& domains) {
  PhysicalBound out;
  bool any = false, unbounded = false, pending = false;
  std::vector<std::string> reasons;
  for (const auto& [domain, b] : domains) {
    if (b.state == PhysicalBound::State::kNotApplicable) continue;
    any = true;
    out.logically_erased_unix_ms = std::max(out.logically_erased_unix_ms, b.logically_erased_unix_ms);
    out.gone_by_unix_ms = std::max(out.gone_by_unix_ms, b.gone_by_unix_ms);
    unbounded = unbounded || b.state == PhysicalBound::State::kUnbounded;
    pending = pending || b.state == PhysicalBound::State::kPending;
    if (!b.reason.empty()) reasons.push_back(domain + ": " + b.reason);
  }
  if (!any) return PhysicalBound();
  out.state = unbounded ? PhysicalBound::State::kUnbounded
              : pending ? PhysicalBound::State::kPending
                        : PhysicalBound::State::kBounded;
  if (out.state != PhysicalBound::State::kBounded) out.gone_by_unix_ms = 0;
  out.reason = absl::StrJoin(reasons, "; ");
  return out;
}

const char* PhysicalStateName(PhysicalBound::State s) {
  switch (s) {
    case PhysicalBound::State::kNotApplicable:
      return "not applicable";
    case PhysicalBound::State::kPending:
      return "pending";
    case PhysicalBound::State::kBounded:
      return "gone by";
    case PhysicalBound::State::kUnbounded:
      return "no bound";
  }
  return "not applicable";
}

}  // namespace lethe::audit
