// LethedMetrics: lethed's Prometheus metrics, computed from the projections when scraped, so
// they cannot drift from what the ledger says.
//   lethe_requests{state}               requests by state (in_progress, completed, failed)
//   lethe_requests_overdue              open requests past their due date (lethed's clock)
//   lethe_domains_needing_identity      domains of open requests waiting for an identity
//   lethe_commands_pending              commands awaiting a receipt
//   lethe_receipts_total{result}        receipts recorded / duplicate / rejected / refused
//   lethe_consent_changes_total         consent changes in the ledger
//   lethe_consent_published_total       consent states published to lethe.consent
//   lethe_ledger_entries                entries in the ledger
//   lethe_insecure_transport            1 when lethed runs with --insecure (no TLS, no auth)
#pragma once

#include <prometheus/collectable.h>

#include <functional>
#include <vector>

#include "base/clock.h"
#include "controlplane/projections.h"
#include "controlplane/request_manager.h"

namespace lethe::controlplane {

class LethedMetrics : public prometheus::Collectable {
 public:
  LethedMetrics(const Projections& projections, const ReceiptCounters& receipts,
                std::function<uint64_t()> ledger_size, std::function<uint64_t()> consent_published,
                const Clock& clock, bool insecure)
      : projections_(projections),
        receipts_(receipts),
        ledger_size_(std::move(ledger_size)),
        consent_published_(std::move(consent_published)),
        clock_(clock),
        insecure_(insecure) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Projections& projections_;
  const ReceiptCounters& receipts_;
  std::function<uint64_t()> ledger_size_;
  std::function<uint64_t()> consent_published_;
  const Clock& clock_;
  const bool insecure_;
};

}  // namespace lethe::controlplane
