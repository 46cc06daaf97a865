#include "controlplane/receipt_intake.h"

#include "spdlog/spdlog.h"

namespace lethe::controlplane {

ReceiptIntake::ReceiptIntake(RequestManager& manager, std::unique_ptr<kafka::Consumer> consumer)
    : manager_(manager), consumer_(std::move(consumer)) {}

ReceiptIntake::~ReceiptIntake() { Stop(); }

void ReceiptIntake::Start() { thread_ = std::thread([this] { Run(); }); }

void ReceiptIntake::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ReceiptIntake::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stop_) {
    auto polled = consumer_->Poll(absl::Milliseconds(200));
    if (!polled.ok()) {
      spdlog::error("receipt intake: {}", polled.status().ToString());
      continue;
    }
    if (!polled->has_value()) continue;
    const kafka::Message& m = **polled;
    absl::Status st = m.value ? manager_.RecordReceipt(*m.value)
                              : absl::InvalidArgumentError("receipt: empty record");
    if (absl::IsUnavailable(st) || absl::IsInternal(st) || absl::IsDataLoss(st)) {
      // Our side failed (ledger write): leave the offset, read the record again later.
      spdlog::error("receipt intake: will retry: {}", st.ToString());
      (void)consumer_->Rewind(m);
      absl::SleepFor(backoff);  // a bounded pause before retrying a failing ledger
      backoff = std::min(backoff * 2, absl::Seconds(5));
      continue;
    }
    backoff = absl::Milliseconds(100);
    if (absl::Status c = consumer_->Commit(m); !c.ok())
      spdlog::warn("receipt intake: {}", c.ToString());
  }
}

}  // namespace lethe::controlplane
