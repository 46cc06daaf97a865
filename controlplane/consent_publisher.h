// ConsentPublisher: keeps the compacted topic lethe.consent current. Every recorded consent
// change is published as a signed ConsentState under the key
// "<identity type>:<hex token>:<purpose>", in ledger order, retried with backoff until the
// broker acknowledges it. After a restart the current state of every subject identity and
// purpose is published again: compaction makes that harmless, and nothing is missed.
#pragma once

#include <atomic>
#include <thread>

#include "controlplane/consent_store.h"
#include "controlplane/ledger_writer.h"
#include "crypto/crypto.h"
#include "kafka/publisher.h"

namespace lethe::controlplane {

struct ConsentPublisherOptions {
  absl::Duration error_retry = absl::Milliseconds(500);  // doubles up to max_retry
  absl::Duration max_retry = absl::Seconds(30);
  // After a change wakes it, the publisher waits this long for more before signing and
  // producing: at 2,000 changes a second from one client, one Kafka produce request and one
  // acknowledgement per ~4 states instead of per state (consent_bench: 560 -> 440 us of CPU
  // per change). A state still reaches the topic within milliseconds of being durable.
  absl::Duration gather = absl::Milliseconds(2);
};

class ConsentPublisher {
 public:
  ConsentPublisher(const ConsentStore& consent, const LedgerWriter& writer, kafka::Publisher& publisher,
                   const crypto::Ed25519PrivateKey& key, ConsentPublisherOptions options = {});
  ~ConsentPublisher();
  void Start();
  void Stop();
  // Ledger index of the newest change published so far (0 before any).
  uint64_t published_through() const { return published_through_.load(); }
  uint64_t published() const { return published_.load(); }

  // The signed lethe.consent value of a record.
  static std::string Wire(const ConsentRecord& r, const crypto::Ed25519PrivateKey& key);

 private:
  void Run();

  const ConsentStore& consent_;
  const LedgerWriter& writer_;
  kafka::Publisher& publisher_;
  const crypto::Ed25519PrivateKey& key_;
  const ConsentPublisherOptions options_;
  std::atomic<uint64_t> published_through_{0};
  std::atomic<uint64_t> published_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lethe::controlplane
