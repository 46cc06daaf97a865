#include "controlplane/receipt_intake.h"

#include <optional>
#include <vector>

#include "base/thread_name.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {

ReceiptIntake::ReceiptIntake(RequestManager& manager, std::unique_ptr<kafka::Consumer> consumer,
                             ReceiptIntakeOptions options)
    : manager_(manager), consumer_(std::move(consumer)), options_(options) {}

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
  bool retrying = false;  // a batch failed: it is read again, at its backoff, before any pause
  uint64_t seen = options_.store != nullptr ? options_.store->version() : 0;
  absl::Time next_look = absl::InfinitePast();
  while (!stop_) {
    const bool quiet = options_.store != nullptr && !retrying && options_.store->InProgress() == 0;
    absl::Duration wait = kPollWait;
    if (!quiet) {
      if (consumer_->paused())
        if (absl::Status r = consumer_->Resume(); !r.ok()) spdlog::warn("receipt intake: {}", r.ToString());
    } else if (consumer_->paused()) {
      if (absl::Now() < next_look) {
        // Until the next look, or a request that starts. In steps, so that Stop is prompt.
        seen = options_.store->WaitForChange(seen, std::min(next_look - absl::Now(), absl::Milliseconds(100)));
        continue;
      }
      next_look = absl::Now() + options_.idle_look;
      wait = absl::ZeroDuration();  // serves the consumer's events (a rebalance, its statistics)
    }
    idle_ = quiet && consumer_->paused();
    // The first receipt waits for the broker; the rest of the batch is what is already here.
    absl::Status polled;
    const std::vector<kafka::Message> batch = consumer_->PollBatch(wait, kMaxBatch, &polled);
    if (!polled.ok()) spdlog::error("receipt intake: {}", polled.ToString());
    if (!batch.empty()) {
      if (!Take(batch)) {
        retrying = true;
        absl::SleepFor(backoff);  // a bounded pause before retrying a failing ledger
        backoff = std::min(backoff * 2, absl::Seconds(5));
        continue;
      }
      retrying = false;
      backoff = absl::Milliseconds(100);
      continue;
    }
    if (!quiet) continue;
    // Nothing in progress and nothing came: stop fetching once the topic is read to its end,
    // fetch again when something is left to read.
    absl::StatusOr<int64_t> backlog = consumer_->Backlog(kBacklogTimeout);
    if (!backlog.ok()) {
      // Not known: fetching goes on, or the pause lasts to the next look. An unreachable
      // broker is reported by the Kafka health check, not here at every look.
      spdlog::debug("receipt intake: {}", backlog.status().ToString());
    } else if (*backlog == 0) {
      if (absl::Status p = consumer_->Pause(); !p.ok()) spdlog::warn("receipt intake: {}", p.ToString());
    } else if (consumer_->paused()) {  // late receipts came: read them
      if (absl::Status r = consumer_->Resume(); !r.ok()) spdlog::warn("receipt intake: {}", r.ToString());
    }
  }
}

bool ReceiptIntake::Take(const std::vector<kafka::Message>& batch) {
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
    return false;
  }
  return true;
}

}  // namespace lethe::controlplane
