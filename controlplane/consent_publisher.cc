#include "controlplane/consent_publisher.h"

#include <algorithm>

#include "base/thread_name.h"
#include "kafka/kafka.h"
#include "proto/envelope.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {

ConsentPublisher::ConsentPublisher(const ConsentStore& consent, const LedgerWriter& writer,
                                   kafka::Publisher& publisher,
                                   const crypto::Ed25519PrivateKey& key,
                                   ConsentPublisherOptions options)
    : consent_(consent), writer_(writer), publisher_(publisher), key_(key), options_(options) {}

ConsentPublisher::~ConsentPublisher() { Stop(); }

void ConsentPublisher::Start() {
  thread_ = NamedThread("consent-pub", [this] { Run(); });
}

void ConsentPublisher::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string ConsentPublisher::Wire(const ConsentRecord& r, const crypto::Ed25519PrivateKey& key) {
  v1::ConsentState state;
  state.set_identity_type(r.identity_type);
  state.set_subject_token(r.token);
  state.set_purpose(r.purpose);
  state.set_status(r.status);
  state.set_changed_at_unix_ms(r.changed_unix_ms);
  state.set_source(r.source);
  state.set_ledger_entry(r.entry);
  state.set_change_id(r.change_id);
  state.set_erasure_request_id(r.erasure_request_id);
  return proto::SignEnvelope(proto::kConsentStateType, state.SerializeAsString(), key).SerializeAsString();
}

void ConsentPublisher::Run() {
  absl::Duration backoff = options_.error_retry;
  uint64_t seen = consent_.version();
  while (!stop_) {
    absl::Duration wait = absl::Seconds(1);
    std::vector<ConsentRecord> changed = consent_.CurrentAfter(published_through_.load());
    // Only durable changes go out (ledger_writer.h).
    if (absl::Status durable = writer_.AwaitDurable(); !changed.empty() && !durable.ok()) {
      spdlog::warn("consent: not publishing: {}", durable.ToString());
      changed.clear();
      wait = backoff;
      backoff = std::min(backoff * 2, options_.max_retry);
    }
    // In pieces of a bounded size, each produced at once and acknowledged together.
    constexpr size_t kBatch = 512;
    for (size_t from = 0; from < changed.size() && !stop_; from += kBatch) {
      const size_t to = std::min(changed.size(), from + kBatch);
      std::vector<kafka::Publisher::Record> records;
      for (size_t i = from; i < to; ++i)
        records.push_back({std::string(kafka::kConsentTopic), changed[i].TopicKey(), Wire(changed[i], key_)});
      std::vector<absl::StatusOr<kafka::Delivered>> done = publisher_.PublishAll(records, absl::Seconds(10));
      bool failed = false;
      for (size_t i = from; i < to; ++i) {
        const absl::StatusOr<kafka::Delivered>& d = done[i - from];
        if (!d.ok()) {
          // Not past this one: the next pass publishes the then current state of its key and
          // of every key after it (compaction makes a repeat harmless).
          spdlog::warn("consent: entry {} not published to {}: {}; retrying in {}", changed[i].entry,
                       kafka::kConsentTopic, d.status().ToString(), absl::FormatDuration(backoff));
          wait = backoff;
          backoff = std::min(backoff * 2, options_.max_retry);
          failed = true;
          break;
        }
        backoff = options_.error_retry;
        published_through_ = changed[i].entry;
        published_.fetch_add(1);
      }
      if (failed) break;
    }
    if (wait == absl::Seconds(1)) {
      const uint64_t before = seen;
      seen = consent_.WaitForChange(seen, wait);
      if (seen != before && !stop_) absl::SleepFor(options_.gather);
    } else {
      // After a failure: wait out the backoff (a new change does not make the broker answer).
      const absl::Time until = absl::Now() + wait;
      while (!stop_ && absl::Now() < until) absl::SleepFor(absl::Milliseconds(50));
    }
  }
}

}  // namespace lethe::controlplane
