// FakePublisher: a kafka::Publisher for unit tests. Records every record it is asked to
// publish (delivered or not), fails on demand (the next N calls, or every call until told
// otherwise) and can hold deliveries: while held, Publish blocks until Release() — so a test
// can see a publisher thread mid-publish without sleeping. Thread safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kafka/publisher.h"

namespace lethe::testing {

class FakePublisher : public kafka::Publisher {
 public:
  struct Record {
    std::string topic;
    std::optional<std::string> key;
    std::optional<std::string> value;
    absl::Duration timeout;
    bool delivered = false;  // false: Publish returned the injected error
  };

  absl::StatusOr<kafka::Delivered> Publish(const std::string& topic,
                                           const std::optional<std::string>& key,
                                           const std::optional<std::string>& value,
                                           absl::Duration timeout) override {
    std::unique_lock<std::mutex> l(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(l, [&] { return !held_; });
    --waiting_;
    Record r{topic, key, value, timeout, false};
    absl::Status error = absl::OkStatus();
    if (fail_next_ > 0) {
      --fail_next_;
      error = failure_;
    } else if (failing_) {
      error = failure_;
    }
    r.delivered = error.ok();
    records_.push_back(std::move(r));
    cv_.notify_all();
    if (!error.ok()) return error;
    return kafka::Delivered{0, next_offset_++};
  }

  // The next `n` calls fail with `status` (then delivery resumes, unless SetFailing).
  void FailNext(int n, absl::Status status = absl::UnavailableError("fake broker: not acknowledged")) {
    std::lock_guard<std::mutex> l(mu_);
    fail_next_ = n;
    failure_ = std::move(status);
  }
  // Every call fails with `status` until SetFailing(false).
  void SetFailing(bool failing, absl::Status status = absl::UnavailableError("fake broker: down")) {
    std::lock_guard<std::mutex> l(mu_);
    failing_ = failing;
    failure_ = std::move(status);
  }
  // While held, Publish blocks (the record is not yet taken).
  void Hold() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = false;
    cv_.notify_all();
  }
  // Blocks until `n` calls are waiting in a held Publish.
  void WaitForHeld(int n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return waiting_ >= n; });
  }
  // Blocks until at least `n` calls have returned.
  void WaitForCalls(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return records_.size() >= n; });
  }

  std::vector<Record> records() const {
    std::lock_guard<std::mutex> l(mu_);
    return records_;
  }
  // Only the delivered ones.
  std::vector<Record> delivered() const {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<Record> out;
    for (const auto& r : records_)
      if (r.delivered) out.push_back(r);
    return out;
  }
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    records_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Record> records_;
  int fail_next_ = 0;
  bool failing_ = false;
  bool held_ = false;
  int waiting_ = 0;
  absl::Status failure_ = absl::UnavailableError("fake broker: not acknowledged");
  int64_t next_offset_ = 0;
};

}  // namespace lethe::testing
