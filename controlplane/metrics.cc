#include "controlplane/metrics.h"

#include <prometheus/metric_family.h>

namespace lethe::controlplane {
namespace {

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void Add(prometheus::MetricFamily& f, double value,
         std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f.type == prometheus::MetricType::Counter) m.counter.value = value;
  else m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

}  // namespace

LethedMetrics::LethedMetrics() {
  auto& latency = prometheus::BuildHistogram()
                      .Name("lethe_receipt_latency_seconds")
                      .Help("Time from a request's submission to each domain's receipt being recorded")
                      .Register(observed_);
  erasure_latency_ = &latency.Add({{"kind", "erasure"}}, LatencyBuckets());
  access_latency_ = &latency.Add({{"kind", "access"}}, LatencyBuckets());
}

std::vector<double> LethedMetrics::LatencyBuckets() {
  return {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600.0, 86400, 7 * 86400.0,
          30 * 86400.0};
}

void LethedMetrics::ObserveReceiptLatency(bool access, absl::Duration latency) {
  (access ? access_latency_ : erasure_latency_)->Observe(absl::ToDoubleSeconds(latency));
}

std::vector<prometheus::MetricFamily> LethedMetrics::Collect() const {
  using prometheus::MetricType;
  const LethedMetricSources& src = sources_;
  std::vector<prometheus::MetricFamily> out = observed_.Collect();
  if (src.projections == nullptr) return out;
  const Projections& projections = *src.projections;
  const absl::Time now = src.clock->Now();
  const RequestStore::Tally tally = projections.requests.Count(now);
  auto f = Family("lethe_requests", "Data-subject requests by state", MetricType::Gauge);
  Add(f, static_cast<double>(tally.in_progress), {{"state", "in_progress"}});
  Add(f, static_cast<double>(tally.completed), {{"state", "completed"}});
  Add(f, static_cast<double>(tally.done_with_gaps), {{"state", "done_with_gaps"}});
  Add(f, static_cast<double>(tally.failed), {{"state", "failed"}});
  out.push_back(std::move(f));
  f = Family("lethe_requests_overdue", "Open requests past their due date", MetricType::Gauge);
  Add(f, static_cast<double>(tally.overdue));
  out.push_back(std::move(f));
  f = Family("lethe_domains_needing_identity",
             "Domains of open requests waiting for an identity type the request lacks",
             MetricType::Gauge);
  Add(f, static_cast<double>(tally.domains_needing_identity));
  out.push_back(std::move(f));
  f = Family("lethe_commands_pending", "Commands awaiting a receipt", MetricType::Gauge);
  Add(f, static_cast<double>(projections.requests.Pending(now, absl::ZeroDuration()).size()));
  out.push_back(std::move(f));
  if (src.receipts != nullptr) {
    const ReceiptCounters& receipts = *src.receipts;
    f = Family("lethe_receipts_total", "Receipts from agents, by what lethed did with them",
               MetricType::Counter);
    Add(f, static_cast<double>(receipts.recorded.load()), {{"result", "recorded"}});
    Add(f, static_cast<double>(receipts.duplicates.load()), {{"result", "duplicate"}});
    Add(f, static_cast<double>(receipts.rejected.load()), {{"result", "rejected"}});
    Add(f, static_cast<double>(receipts.refused.load()), {{"result", "refused_by_agent"}});
    out.push_back(std::move(f));
  }
  f = Family("lethe_consent_changes_total", "Consent changes recorded in the ledger",
             MetricType::Counter);
  Add(f, static_cast<double>(projections.consent.size()));
  out.push_back(std::move(f));
  f = Family("lethe_consent_published_total", "Consent states published to lethe.consent",
             MetricType::Counter);
  Add(f, static_cast<double>(src.consent_published ? src.consent_published() : 0));
  out.push_back(std::move(f));
  if (src.ledger != nullptr) {
    f = Family("lethe_ledger_entries", "Entries in the ledger", MetricType::Gauge);
    Add(f, static_cast<double>(src.ledger->size()));
    out.push_back(std::move(f));
    f = Family("lethe_ledger_bytes", "Bytes of the ledger's records (framing and entries)", MetricType::Gauge);
    Add(f, static_cast<double>(src.ledger->bytes()));
    out.push_back(std::move(f));
    const ledger::CheckpointLag lag = src.ledger->checkpoint_lag(absl::Now());
    f = Family("lethe_checkpoint_uncovered_entries", "Durable ledger entries no signed checkpoint covers yet",
               MetricType::Gauge);
    Add(f, static_cast<double>(lag.uncovered));
    out.push_back(std::move(f));
    f = Family("lethe_checkpoint_age_seconds",
               "While entries are uncovered: seconds since the latest checkpoint was signed (0 when it covers the log)",
               MetricType::Gauge);
    Add(f, absl::ToDoubleSeconds(lag.age));
    out.push_back(std::move(f));
  }
  if (src.receipt_consumer != nullptr) {
    f = Family("lethe_kafka_consumer_lag", "Records past the committed offset of lethed's consumer (-1: not known yet)",
               MetricType::Gauge);
    Add(f, static_cast<double>(src.receipt_consumer->lag()), {{"topic", kafka::kReceiptTopic}});
    out.push_back(std::move(f));
    f = Family("lethe_kafka_consumer_joined", "1 once lethed's consumer is a member of its settled group",
               MetricType::Gauge);
    Add(f, src.receipt_consumer->joined() ? 1.0 : 0.0, {{"topic", kafka::kReceiptTopic}});
    out.push_back(std::move(f));
  }
  f = Family("lethe_insecure_transport",
             "1 when lethed serves gRPC without TLS or client authentication (--insecure)",
             MetricType::Gauge);
  Add(f, src.insecure ? 1.0 : 0.0);
  out.push_back(std::move(f));
  return out;
}

}  // namespace lethe::controlplane
