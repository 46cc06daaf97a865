// LethedMetrics: lethed's Prometheus metrics. Most are computed from the projections when
// scraped, so they cannot drift from what the ledger says; the latency histogram is observed
// as receipts are recorded.
//   lethe_requests{state}                      requests by state (in_progress, completed, failed)
//   lethe_requests_overdue                     open requests past their due date (lethed's clock)
//   lethe_domains_needing_identity             domains of open requests waiting for an identity
//   lethe_commands_pending                     commands awaiting a receipt
//   lethe_receipts_total{result}               receipts recorded / duplicate / rejected / refused
//   lethe_receipt_latency_seconds{kind}        histogram: request submitted -> each domain's
//                                              receipt recorded (kind erasure or access)
//   lethe_consent_changes_total                consent changes in the ledger
//   lethe_consent_published_total              consent states published to lethe.consent
//   lethe_ledger_entries                       entries in the ledger
//   lethe_ledger_bytes                         bytes of the ledger's records
//   lethe_checkpoint_uncovered_entries         durable entries no signed checkpoint covers yet
//   lethe_checkpoint_age_seconds               while there are any: age of the latest checkpoint
//   lethe_kafka_consumer_lag{topic}            receipts waiting on lethe.receipts (-1: unknown)
//   lethe_kafka_consumer_joined{topic}         1 once the receipt consumer is in its group
//   lethe_insecure_transport                   1 when lethed runs with --insecure (no TLS, no auth)
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <vector>

#include "base/clock.h"
#include "controlplane/projections.h"
#include "controlplane/request_manager.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"

namespace lethe::controlplane {

// Where each metric comes from. Every pointer outlives the metrics; null ones are left out.
struct LethedMetricSources {
  const Projections* projections = nullptr;
  const ReceiptCounters* receipts = nullptr;
  const ledger::Ledger* ledger = nullptr;
  std::function<uint64_t()> consent_published;
  const kafka::ConsumerStats* receipt_consumer = nullptr;
  const Clock* clock = &Clock::Real();
  bool insecure = false;
};

class LethedMetrics : public prometheus::Collectable {
 public:
  LethedMetrics();
  // Sources are set once lethed has built them, before the metrics are served.
  void SetSources(LethedMetricSources sources) { sources_ = std::move(sources); }
  // RequestManagerOptions::receipt_latency: one receipt recorded `latency` after its request
  // was submitted.
  void ObserveReceiptLatency(bool access, absl::Duration latency);
  std::vector<prometheus::MetricFamily> Collect() const override;

  // Bucket bounds of lethe_receipt_latency_seconds: a healthy mesh answers in seconds; an
  // agent that is down, or a domain waiting for an identity, takes hours or days.
  static std::vector<double> LatencyBuckets();

 private:
  LethedMetricSources sources_;
  prometheus::Registry observed_;  // the histograms
  prometheus::Histogram* erasure_latency_ = nullptr;
  prometheus::Histogram* access_latency_ = nullptr;
};

}  // namespace lethe::controlplane
