// LedgerWriter: how the control plane records entries without holding a lock through an
// fdatasync, while its state changes stay in ledger order.
//
// A writer takes the lock (Lock()), reads the recorded state its entries depend on, and
// Sequence()s them: they take the next positions in the log and are applied to the
// projections at once, in that order, so that the next writer's checks see them. The writer
// releases the lock and only then waits for its entries to be durable (WaitDurable), so
// concurrent writers share the ledger's group commit. Its caller is answered after that.
//
// The projections therefore run a little ahead of the durable log. Whatever shows state to
// the outside (a gRPC answer, a Kafka record, a metric) reads it first and then calls
// AwaitDurable(): everything it read is durable once that returns OK. If the ledger fails a
// write, it refuses every later one and AwaitDurable() reports kUnavailable from then on, so
// nothing that never became durable is ever shown; a restart replays the durable entries.
//
// Thread safe.
#pragma once

#include <atomic>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "controlplane/projections.h"
#include "ledger/ledger.h"
#include "lethe/v1/api.pb.h"

namespace lethe::controlplane {

class LedgerWriter {
 public:
  using Ticket = ledger::Ledger::Ticket;

  // Ended requests in `projections` are read back from `ledger` from now on.
  LedgerWriter(ledger::Ledger& ledger, Projections& projections, const Clock& clock);

  // The sequencing lock: held from reading the state a write depends on until Sequence.
  std::unique_lock<std::mutex> Lock() { return std::unique_lock<std::mutex>(mu_); }

  // Under `lock`: appends `entries` to the ledger's queue (the actor, when given, recorded on
  // the first: who caused the batch) and applies them to the projections, in log order.
  // Returns the ticket to wait on, after releasing the lock. Fails with nothing changed
  // unless the projections refuse an entry the ledger already took (a bug: the writer then
  // refuses everything until lethed restarts).
  absl::StatusOr<Ticket> Sequence(const std::unique_lock<std::mutex>& lock,
                                  std::vector<v1::LedgerEntry> entries,
                                  const v1::Actor* actor = nullptr);
  // Waits, without the lock, until the sequenced entries are durable.
  absl::Status WaitDurable(const Ticket& ticket) const;

  // Lock, Sequence and WaitDurable, for entries that depend on no recorded state.
  absl::Status Write(std::vector<v1::LedgerEntry> entries, const v1::Actor* actor = nullptr);

  // Waits until everything sequenced so far is durable: call it after reading state and
  // before showing it. kUnavailable when the ledger failed.
  absl::Status AwaitDurable() const;

  // Entries durable so far (the ledger's size as its readers see it).
  uint64_t durable_size() const { return ledger_.size(); }

 private:
  ledger::Ledger& ledger_;
  Projections& projections_;
  const Clock& clock_;
  std::mutex mu_;
  std::atomic<bool> diverged_{false};  // the projections refused an entry the ledger took
};

}  // namespace lethe::controlplane
