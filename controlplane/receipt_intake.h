// ReceiptIntake: consumes lethe.receipts in the consumer group "lethed" and records each
// receipt through RequestManager. Receipts already fetched are taken together (up to
// kMaxBatch): each is checked and sequenced, one wait covers their fdatasync, then the
// requests they answer in full are completed together. An offset is committed only after
// its receipt is durable (or rejected for good), so a crash in between re-reads it.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

#include "controlplane/request_manager.h"
#include "kafka/kafka.h"

namespace lethe::controlplane {

class ReceiptIntake {
 public:
  ReceiptIntake(RequestManager& manager, std::unique_ptr<kafka::Consumer> consumer);
  ~ReceiptIntake();
  void Start();
  void Stop();
  // The receipt consumer's lag and group membership (librdkafka statistics).
  const kafka::ConsumerStats& consumer_stats() const { return consumer_->stats(); }

 private:
  static constexpr int kMaxBatch = 128;
  void Run();
  RequestManager& manager_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lethe::controlplane
