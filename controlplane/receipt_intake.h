// ReceiptIntake: consumes lethe.receipts in the consumer group "lethed" and records each
// receipt through RequestManager. Receipts already fetched are taken together (up to
// kMaxBatch): each is checked and sequenced, one wait covers their fdatasync, then the
// requests they answer in full are completed together. An offset is committed only after
// its receipt is durable (or rejected for good), so a crash in between re-reads it.
//
// Receipts answer commands, and commands are sent for requests in progress. While none is
// (and no failed batch waits to be read again), only late receipts can come: a physical
// purge's, an agent's redelivery. Once the topic is read to its end the intake then stops
// fetching (kafka::Consumer::Pause), and once per `idle_look` asks the broker for the
// topic's end offsets: if anything came, it fetches until it is read. A request that starts
// resumes it at once, before its commands are even published. So an embedded broker, which
// holds each empty fetch for its whole wait, is not asked 1000/wait times a second for nothing.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

#include "controlplane/request_manager.h"
#include "kafka/kafka.h"

namespace lethe::controlplane {

struct ReceiptIntakeOptions {
  // Whether requests are in progress; without it the intake never pauses.
  const RequestStore* store = nullptr;
  absl::Duration idle_look = absl::Seconds(1);
};

class ReceiptIntake {
 public:
  ReceiptIntake(RequestManager& manager, std::unique_ptr<kafka::Consumer> consumer,
                ReceiptIntakeOptions options = {});
  ~ReceiptIntake();
  void Start();
  void Stop();
  // The receipt consumer's lag and group membership (librdkafka statistics).
  const kafka::ConsumerStats& consumer_stats() const { return consumer_->stats(); }
  // Whether the intake is idle: nothing in progress, the consumer paused but for its looks.
  bool idle() const { return idle_.load(); }

 private:
  static constexpr int kMaxBatch = 128;
  static constexpr absl::Duration kPollWait = absl::Milliseconds(200);
  static constexpr absl::Duration kBacklogTimeout = absl::Seconds(1);
  void Run();
  // Records one batch; false when part of it failed and was rewound to be read again.
  bool Take(const std::vector<kafka::Message>& batch);
  RequestManager& manager_;
  std::unique_ptr<kafka::Consumer> consumer_;
  const ReceiptIntakeOptions options_;
  std::atomic<bool> idle_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lethe::controlplane
