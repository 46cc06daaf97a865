// OutboxPublisher: the ledger is the outbox. Every command whose domain has not answered is
// published to lethe.commands.<domain>, then re-published with exponential backoff until a
// receipt is recorded or the request's due date passes: after a restart of lethed or of the
// broker, nothing is lost. A command the domain's agent refused (policy drift, a key it does
// not hold) is published again as soon as the domain answers another command, at most once
// per first_retry: the agent may have been fixed, and the backoff may have grown to minutes.
// Commands near expiry are replaced by freshly signed ones.
#pragma once

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "base/clock.h"
#include "controlplane/request_manager.h"
#include "controlplane/request_store.h"
#include "kafka/publisher.h"

namespace lethe::controlplane {

struct OutboxOptions {
  absl::Duration first_retry = absl::Seconds(15);   // after a successful publish
  absl::Duration max_retry = absl::Minutes(10);
  absl::Duration error_retry = absl::Seconds(1);    // after a failed publish (doubles)
  absl::Duration expiry_margin = absl::Hours(1);    // re-issue this long before not_after
};

class OutboxPublisher {
 public:
  OutboxPublisher(RequestStore& store, RequestManager& manager, kafka::Publisher& publisher,
                  const Clock& clock, OutboxOptions options = {});
  ~OutboxPublisher();  // stops the thread
  void Start();
  void Stop();
  // Completed passes over the pending commands (for tests that wait for the publisher).
  uint64_t passes() const { return passes_.load(); }

  // One pass (what the thread runs in a loop): re-issues expiring commands, publishes what is
  // due at clock.Now(), and returns when the next publish is due (InfiniteFuture when
  // nothing is pending). Public so that unit tests can drive passes with a ManualClock;
  // call it only while the thread is not started.
  absl::Time PublishDue();

 private:
  void Run();

  struct Schedule {
    absl::Time next;
    int failures = 0;
    int published = 0;
    absl::Time published_at = absl::InfinitePast();
    uint64_t answers_at_publish = 0;  // the domain's RequestStore::Answers then
  };

  RequestStore& store_;
  RequestManager& manager_;
  kafka::Publisher& publisher_;
  const Clock& clock_;
  const OutboxOptions options_;
  std::map<std::string, Schedule> schedule_;  // by command id; touched by the thread only
  std::set<std::string> overdue_noted_;       // commands whose request is overdue (logged once)
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> passes_{0};
  std::thread thread_;
};

}  // namespace lethe::controlplane
