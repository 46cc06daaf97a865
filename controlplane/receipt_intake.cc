#include "controlplane/receipt_intake.h"

#include <optional>
#include <vector>

#include "base/thread_name.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {

ReceiptIntake::ReceiptIntake(RequestManager& manager, std::unique_ptr<kafka::Consumer> consumer)
    : manager_(manager), consumer_(std::move(consumer)) {}

ReceiptIntake::~ReceiptIntake() { Stop(); }

void ReceiptIntake::Start() {
  thread_ = NamedThread("receipt-intake", [this] { Run(); });
}

void ReceiptIntake::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ReceiptIntake::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stop_) {
    // The first receipt waits for the broker; the rest of the batch is what is already here.
    absl::Status polled;
    const std::vector<kafka::Message> batch = consumer_->PollBatch(absl::Milliseconds(200), kMaxBatch, &polled);
    if (!polled.ok()) spdlog::error("receipt intake: {}", polled.ToString());
    if (batch.empty()) continue;

    std::optional<LedgerWriter::Ticket> last;
    std::vector<std::string> answered;
    absl::Status failed;
    size_t done = 0;  // batch[0, done) recorded or rejected for good
    for (; done < batch.size(); ++done) {
      const kafka::Message& m = batch[done];
      auto st = m.value ? manager_.SequenceReceipt(*m.value)
                        : absl::StatusOr<std::optional<RequestManager::SequencedReceipt>>(
                              absl::InvalidArgumentError("receipt: empty record"));
      if (!st.ok()) {
        if (absl::IsUnavailable(st.status()) || absl::IsInternal(st.status()) || absl::IsDataLoss(st.status())) {
          failed = st.status();  // our side failed (ledger write): this one and the rest again
          break;
        }
        continue;  // rejected for good (counted and logged by the manager)
      }
      if (st->has_value()) {
        last = (*st)->ticket;
        answered.push_back((*st)->request_id);
      }
    }
    if (last.has_value()) {
      if (absl::Status d = manager_.WaitDurable(*last); !d.ok()) {
        failed = d;
        done = 0;  // nothing of the batch is known durable: read all of it again
        answered.clear();
      }
    }
    // The requests the durable receipts answered in full end now, even when a later receipt
    // of the batch failed (it is read again; these are not).
    if (!answered.empty())
      if (absl::Status c = manager_.CompleteAll(answered); !c.ok() && failed.ok()) failed = c;
    // Commit, per partition, the last offset of the durable prefix.
    if (absl::Status c = consumer_->CommitThrough(batch, done); !c.ok()) spdlog::warn("receipt intake: {}", c.ToString());
    if (!failed.ok()) {
      spdlog::error("receipt intake: will retry: {}", failed.ToString());
      // Read again from the first receipt not known durable, in each partition.
      (void)consumer_->RewindFrom(batch, done);
      absl::SleepFor(backoff);  // a bounded pause before retrying a failing ledger
      backoff = std::min(backoff * 2, absl::Seconds(5));
      continue;
    }
    backoff = absl::Milliseconds(100);
  }
}

}  // namespace lethe::controlplane
