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

std::vector<prometheus::MetricFamily> LethedMetrics::Collect() const {
  using prometheus::MetricType;
  const absl::Time now = clock_.Now();
  const RequestStore::Tally tally = projections_.requests.Count(now);
  std::vector<prometheus::MetricFamily> out;
  auto f = Family("lethe_requests", "Data-subject requests by state", MetricType::Gauge);
  Add(f, static_cast<double>(tally.in_progress), {{"state", "in_progress"}});
  Add(f, static_cast<double>(tally.completed), {{"state", "completed"}});
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
  Add(f, static_cast<double>(
             projections_.requests.Pending(now, absl::ZeroDuration()).size()));
  out.push_back(std::move(f));
  f = Family("lethe_receipts_total", "Receipts from agents, by what lethed did with them",
             MetricType::Counter);
  Add(f, static_cast<double>(receipts_.recorded.load()), {{"result", "recorded"}});
  Add(f, static_cast<double>(receipts_.duplicates.load()), {{"result", "duplicate"}});
  Add(f, static_cast<double>(receipts_.rejected.load()), {{"result", "rejected"}});
  Add(f, static_cast<double>(receipts_.refused.load()), {{"result", "refused_by_agent"}});
  out.push_back(std::move(f));
  f = Family("lethe_consent_changes_total", "Consent changes recorded in the ledger",
             MetricType::Counter);
  Add(f, static_cast<double>(projections_.consent.size()));
  out.push_back(std::move(f));
  f = Family("lethe_consent_published_total", "Consent states published to lethe.consent",
             MetricType::Counter);
  Add(f, static_cast<double>(consent_published_ ? consent_published_() : 0));
  out.push_back(std::move(f));
  f = Family("lethe_ledger_entries", "Entries in the ledger", MetricType::Gauge);
  Add(f, static_cast<double>(ledger_size_ ? ledger_size_() : 0));
  out.push_back(std::move(f));
  f = Family("lethe_insecure_transport",
             "1 when lethed serves gRPC without TLS or client authentication (--insecure)",
             MetricType::Gauge);
  Add(f, insecure_ ? 1.0 : 0.0);
  out.push_back(std::move(f));
  return out;
}

}  // namespace lethe::controlplane
