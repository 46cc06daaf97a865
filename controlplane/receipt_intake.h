// ReceiptIntake: consumes lethe.receipts in the consumer group "lethed" and hands each
// receipt to RequestManager::RecordReceipt. The offset is committed only after the receipt
// is recorded (or rejected for good), so a crash in between re-reads it.
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

 private:
  void Run();
  RequestManager& manager_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lethe::controlplane
