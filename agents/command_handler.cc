// CommandHandler (command_handler.h): one command, from its wire bytes to its published receipt.
#include "agents/command_handler.h"

#include <chrono>

#include "base/status.h"
#include "proto/envelope.h"
#include "spdlog/spdlog.h"

namespace lethe::agents {
namespace {
// An access command's answer: its COMPLETED receipt names a part.
bool CarriesPart(const PurgeResult& r) { return !r.receipt.part_sha256().empty(); }
}  // namespace

CommandHandler::CommandHandler(std::string domain, const CommandVerifier& verifier, Purger& purger,
                               const crypto::Ed25519PrivateKey& key, const Clock& clock,
                               ReceiptSink receipts, AgentStats& stats,
                               std::function<void(const std::string&)> count)
    : domain_(std::move(domain)),
      verifier_(verifier),
      purger_(purger),
      key_(key),
      clock_(clock),
      receipts_(std::move(receipts)),
      stats_(stats),
      count_(std::move(count)) {}

uint64_t CommandHandler::rejected(Rejection r) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = rejections_.find(r);
  return it == rejections_.end() ? 0 : it->second;
}

absl::Status CommandHandler::Handle(std::string_view wire, const std::string& where) {
  size_t settled = 0;
  return HandleAll({Incoming{wire, where}}, &settled);
}

absl::Status CommandHandler::HandleAll(const std::vector<Incoming>& commands, size_t* settled) {
  *settled = 0;
  // Verified commands in a row go to the purger together; a rejected one ends the run.
  std::vector<VerifiedCommand> run;
  auto purge_run = [&]() -> absl::Status {
    if (run.empty()) return absl::OkStatus();
    std::vector<const VerifiedCommand*> ptrs;
    for (const auto& vc : run) ptrs.push_back(&vc);
    const auto started = std::chrono::steady_clock::now();
    std::vector<absl::StatusOr<PurgeResult>> results = purger_.PurgeAll(ptrs);
    if (observe_transaction_)
      observe_transaction_(absl::FromChrono(std::chrono::steady_clock::now() - started));
    absl::Status st;
    for (size_t i = 0; i < results.size() && st.ok(); ++i) {
      st = results[i].ok() ? Answer(run[i].command, *std::move(results[i])) : results[i].status();
      if (st.ok()) ++*settled;
    }
    if (st.ok() && results.size() < run.size()) st = absl::InternalError("the purger left commands unanswered");
    run.clear();  // holds identities
    return st;
  };
  for (const Incoming& in : commands) {
    VerifyResult v = verifier_.Verify(in.wire);
    if (v.command.ok()) {
      run.push_back(*std::move(v.command));
      continue;
    }
    LETHE_RETURN_IF_ERROR(purge_run());
    LETHE_RETURN_IF_ERROR(Reject(v, in.where));
    ++*settled;
  }
  return purge_run();
}

absl::Status CommandHandler::Reject(VerifyResult& v, const std::string& where) {
  {
    std::lock_guard<std::mutex> l(mu_);
    ++rejections_[v.rejection];
  }
  stats_.rejected.fetch_add(1);
  Count(std::string("rejected_") + RejectionName(v.rejection));
  // The status text names ids and domains only, never identities.
  spdlog::warn("domain {}: rejected command at {} ({}): {}", domain_, where, RejectionName(v.rejection),
               v.command.status().ToString());
  if (!v.authentic) return absl::OkStatus();  // nothing to retry: commit past it
  // An authentic command this agent will not run as it stands: tell lethed why, signed,
  // so that the request shows it. Nothing is stored: once the agent runs the right
  // policy, the re-published command is processed normally.
  v1::Receipt refusal;
  refusal.set_command_id(v.authentic->command.command_id());
  refusal.set_request_id(v.authentic->command.request_id());
  refusal.set_domain(domain_);
  refusal.set_command_digest(v.authentic->digest);
  refusal.set_outcome(v1::Receipt::REJECTED);
  refusal.set_error(std::string(v.command.status().message()));
  refusal.set_completed_at_unix_ms(absl::ToUnixMillis(clock_.Now()));
  const std::string request_id = refusal.request_id();
  v.authentic.reset();  // holds identities
  const std::string signed_wire =
      proto::SignEnvelope(proto::kReceiptType, refusal.SerializeAsString(), key_).SerializeAsString();
  return receipts_(request_id, signed_wire);
}

absl::Status CommandHandler::Answer(const v1::DeleteCommand& cmd, PurgeResult r) {
  if (r.replayed) {
    stats_.replayed.fetch_add(1);
    Count("replayed");
    spdlog::info("domain {}: command {} was already processed; re-sending its receipt", domain_,
                 cmd.command_id());
    // After a key rotation the stored receipt may carry the old, possibly revoked key's
    // signature: sign the very same body bytes again with the current key.
    v1::SignedEnvelope stored;
    if (stored.ParseFromString(r.receipt_wire) && stored.key_id() != key_.public_key().KeyId()) {
      spdlog::info("domain {}: re-signing the stored receipt of command {} with the current key {}",
                   domain_, cmd.command_id(), key_.public_key().KeyId());
      r.receipt_wire = proto::SignEnvelope(proto::kReceiptType, stored.body(), key_).SerializeAsString();
    }
  } else if (CarriesPart(r) && r.receipt.outcome() == v1::Receipt::COMPLETED) {
    int64_t rows = 0;
    for (const auto& t : r.receipt.tables()) rows += t.rows_exported();
    stats_.gathered.fetch_add(1);
    Count("gathered");
    spdlog::info("domain {}: command {} (request {}) gathered {} row(s) from {} table(s): a part of {} bytes in {} "
                 "chunk(s)",
                 domain_, cmd.command_id(), cmd.request_id(), rows, r.receipt.tables_size(), r.receipt.part_size(),
                 r.part_chunks.size());
  } else if (r.receipt.outcome() == v1::Receipt::COMPLETED) {
    int64_t rows = 0;
    for (const auto& t : r.receipt.tables()) rows += t.rows_affected();
    stats_.purged.fetch_add(1);
    Count("purged");
    spdlog::info("domain {}: command {} (request {}) purged {} row(s) in {} table(s)", domain_,
                 cmd.command_id(), cmd.request_id(), rows, r.receipt.tables_size());
  } else {
    stats_.failed.fetch_add(1);
    Count("failed");
    spdlog::error("domain {}: command {} failed: {}", domain_, cmd.command_id(), r.receipt.error());
  }
  // The part first, chunk by chunk, each acknowledged: lethed takes the receipt only once it
  // holds the whole part.
  for (const std::string& chunk : r.part_chunks) LETHE_RETURN_IF_ERROR(receipts_(cmd.request_id(), chunk));
  LETHE_RETURN_IF_ERROR(receipts_(cmd.request_id(), r.receipt_wire));
  stats_.receipts_sent.fetch_add(1);
  return absl::OkStatus();
}

}  // namespace lethe::agents
