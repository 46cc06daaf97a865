#include "controlplane/outbox.h"

#include <algorithm>

#include "base/thread_name.h"
#include "kafka/kafka.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {

OutboxPublisher::OutboxPublisher(RequestStore& store, RequestManager& manager,
                                 kafka::Publisher& publisher, const Clock& clock,
                                 OutboxOptions options)
    : store_(store), manager_(manager), publisher_(publisher), clock_(clock), options_(options) {}

OutboxPublisher::~OutboxPublisher() { Stop(); }

void OutboxPublisher::Start() {
  thread_ = NamedThread("outbox-pub", [this] { Run(); });
}

void OutboxPublisher::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

absl::Time OutboxPublisher::PublishDue() {
  if (absl::Status s = manager_.ReissueExpiring(options_.expiry_margin); !s.ok())
    spdlog::error("outbox: cannot re-issue expiring commands: {}", s.ToString());
  if (absl::Status s = manager_.ReleaseExpired(); !s.ok())
    spdlog::error("outbox: cannot release expired access packages: {}", s.ToString());
  const absl::Time now = clock_.Now();
  absl::Time next = absl::InfiniteFuture();
  std::map<std::string, Schedule> live;
  std::vector<PendingCommand> pending = store_.Pending(now, options_.expiry_margin);
  // Only durable commands go out (ledger_writer.h).
  if (absl::Status durable = manager_.writer().AwaitDurable(); !pending.empty() && !durable.ok()) {
    spdlog::error("outbox: not publishing: {}", durable.ToString());
    passes_.fetch_add(1);
    return now + options_.error_retry;
  }
  for (const auto& p : pending) {
    const CommandRecord& c = p.command;
    if (absl::FromUnixMillis(p.due_unix_ms) < now) {
      // Past the deadline: stop re-publishing. The request is counted as overdue and listed
      // by `request list --overdue`; an extension moves the due date and publishing resumes.
      if (overdue_noted_.insert(c.command_id).second)
        spdlog::warn("outbox: request {} is overdue; command {} for domain {} is no longer re-published",
                     c.request_id, c.command_id, c.domain);
      continue;
    }
    overdue_noted_.erase(c.command_id);
    Schedule sched = schedule_.count(c.command_id) ? schedule_[c.command_id] : Schedule{now};
    // Refused by the domain's agent, which has answered another command since: it may have
    // been fixed (a drifted policy deployed again), so publish now rather than at the
    // backoff's next turn. A command merely waiting in the topic is left alone.
    if (sched.next > now && sched.published > 0 && now - sched.published_at >= options_.first_retry &&
        store_.Answers(c.domain) > sched.answers_at_publish && !store_.LastRejection(c.command_id).empty())
      sched.next = now;
    if (sched.next <= now && !stop_) {
      auto wire = manager_.CommandWire(c);
      if (absl::IsNotFound(wire.status())) {
        // Its key is gone: the request ended after Pending was read, or every domain has
        // answered since and its completion is being recorded (the key goes first). Nothing
        // to publish.
        auto r = store_.Get(c.request_id);
        if (!r.ok() || r->state != v1::IN_PROGRESS) continue;
        bool answered = true;
        for (const auto& d : r->domains) answered = answered && (d.state == v1::DONE || d.state == v1::DOMAIN_FAILED);
        if (answered) continue;
      }
      absl::Status st = wire.status();
      // One at a time: publishing the commands of a pass together (PublishAll) made a lone
      // erasure's commands wait about 10 ms more at the embedded broker (p50 25 -> 35 ms in
      // erasure_latency_bench) for no measurable gain in throughput.
      if (wire.ok()) {
        st = publisher_.Publish(kafka::CommandTopic(c.domain), c.request_id, *wire, absl::Seconds(30))
                 .status();
      }
      if (st.ok()) {
        store_.NotePublished(c.command_id);
        sched.published_at = now;
        sched.answers_at_publish = store_.Answers(c.domain);
        sched.failures = 0;
        sched.next = now + std::min(options_.max_retry,
                                    options_.first_retry * (1 << std::min(sched.published, 10)));
        ++sched.published;
        spdlog::info("outbox: published command {} to domain {}", c.command_id, c.domain);
      } else {
        sched.next = now + std::min(options_.max_retry,
                                    options_.error_retry * (1 << std::min(sched.failures, 10)));
        ++sched.failures;
        spdlog::warn("outbox: command {} for domain {} not published: {}", c.command_id,
                     c.domain, st.ToString());
      }
    }
    next = std::min(next, sched.next);
    live[c.command_id] = sched;
  }
  schedule_ = std::move(live);  // commands answered since are dropped
  passes_.fetch_add(1);
  return next;
}

void OutboxPublisher::Run() {
  uint64_t seen = store_.version();
  while (!stop_) {
    const absl::Time next = PublishDue();
    // Wake on any state change (a new command) or when the next publish is due; never wait
    // longer than a second so that stopping and clock changes are noticed.
    const absl::Duration wait =
        std::clamp(next - clock_.Now(), absl::ZeroDuration(), absl::Seconds(1));
    seen = store_.WaitForChange(seen, wait);
  }
}

}  // namespace lethe::controlplane
