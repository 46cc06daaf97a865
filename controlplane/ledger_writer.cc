#include "controlplane/ledger_writer.h"

#include "base/status.h"
#include "spdlog/spdlog.h"

namespace lethe::controlplane {
namespace {

absl::Status Diverged() {
  return absl::InternalError(
      "lethed's state no longer follows its ledger (an entry was recorded that its state "
      "refused); restart lethed, which rebuilds the state from the ledger");
}

}  // namespace

LedgerWriter::LedgerWriter(ledger::Ledger& ledger, Projections& projections, const Clock& clock)
    : ledger_(ledger), projections_(projections), clock_(clock) {
  auto read = [&ledger](uint64_t seq) { return ledger.ReadEntry(seq); };
  projections_.requests.SetEntryReader(
      read, [&ledger](absl::Span<const uint64_t> seqs) { return ledger.ReadEntries(seqs); });
  projections_.consent.SetEntryReader(read);
}

absl::StatusOr<LedgerWriter::Ticket> LedgerWriter::Sequence(const std::unique_lock<std::mutex>& lock,
                                                            std::vector<v1::LedgerEntry> entries,
                                                            const v1::Actor* actor) {
  if (!lock.owns_lock() || lock.mutex() != &mu_)
    return absl::InternalError("LedgerWriter::Sequence called without its lock");
  if (diverged_.load()) return Diverged();
  if (actor != nullptr && !entries.empty()) *entries.front().mutable_actor() = *actor;
  Ticket ticket;
  LETHE_ASSIGN_OR_RETURN(auto queued, ledger_.Enqueue(std::move(entries), clock_.Now(), &ticket));
  for (const auto& a : queued) {
    if (absl::Status s = projections_.Apply(a.seq, a.entry); !s.ok()) {
      diverged_ = true;
      spdlog::critical("ledger entry {} was recorded but lethed's state refused it: {}; "
                       "refusing every request until restarted",
                       a.seq, s.ToString());
      return s;
    }
  }
  return ticket;
}

absl::Status LedgerWriter::WaitDurable(const Ticket& ticket) const {
  LETHE_RETURN_IF_ERROR(ledger_.WaitDurable(ticket));
  if (diverged_.load()) return Diverged();
  // What is now durable can be read back from the ledger.
  projections_.MarkDurable(ticket.end);
  return absl::OkStatus();
}

absl::Status LedgerWriter::Write(std::vector<v1::LedgerEntry> entries, const v1::Actor* actor) {
  auto lock = Lock();
  LETHE_ASSIGN_OR_RETURN(Ticket ticket, Sequence(lock, std::move(entries), actor));
  lock.unlock();
  return WaitDurable(ticket);
}

absl::Status LedgerWriter::AwaitDurable() const { return WaitDurable(ledger_.Tail()); }

}  // namespace lethe::controlplane
