// FakePurger: an in-memory agents::Purger for unit tests. It records every call, answers each
// Purge with the next scripted answer (COMPLETED by default, a FAILED receipt, or an error
// such as kUnavailable) and, like PostgresPurger, remembers every command it answered with a
// receipt: a redelivery of one returns the stored receipt with replayed = true and purges
// nothing. Receipts are signed with the key it is given, as PostgresPurger signs them.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agents/purger.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "crypto/secret.h"
#include "proto/envelope.h"

namespace lethe::fakes {

class FakePurger final : public agents::Purger {
 public:
  // One Purge call, as the purger saw it. Identity values are copied out of their
  // SecretBytes so that tests can check them.
  struct Call {
    std::string command_id;
    std::string request_id;
    std::string digest;
    std::vector<std::pair<std::string, std::string>> identities;  // (type, value)
  };

  // What one Purge of a new command answers.
  struct Answer {
    enum Kind { kCompleted, kFailed, kError } kind = kCompleted;
    std::string failure;  // kFailed: the receipt's error
    absl::Status error;   // kError: returned as it is; nothing is stored
  };

  FakePurger(const crypto::Ed25519PrivateKey& key, const Clock& clock,
             std::vector<std::string> tables = {"public.customers"})
      : key_(&key), clock_(clock), tables_(std::move(tables)) {}

  // Later receipts are signed by `key` (a rotated agent key); stored ones stay as they are.
  void set_key(const crypto::Ed25519PrivateKey& key) { key_ = &key; }
  void ScriptCompleted() { script_.push_back({Answer::kCompleted, {}, {}}); }
  void ScriptFailed(std::string error) { script_.push_back({Answer::kFailed, std::move(error), {}}); }
  void ScriptError(absl::Status error) { script_.push_back({Answer::kError, {}, std::move(error)}); }
  void set_schema_status(absl::Status s) { schema_status_ = std::move(s); }
  void set_rows_per_table(int64_t rows) { rows_per_table_ = rows; }

  absl::Status EnsureSchema() override {
    ++schema_calls_;
    return schema_status_;
  }

  absl::StatusOr<agents::PurgeResult> Purge(const agents::VerifiedCommand& vc) override {
    Call call{vc.command.command_id(), vc.command.request_id(), vc.digest, {}};
    for (const auto& id : vc.identities.identities())
      call.identities.emplace_back(id.type, std::string(RevealSecret(id.value)));
    calls_.push_back(std::move(call));
    if (auto it = stored_.find(vc.command.command_id()); it != stored_.end()) {
      agents::PurgeResult r;
      r.receipt_wire = it->second;
      v1::SignedEnvelope env;
      env.ParseFromString(r.receipt_wire);
      r.receipt.ParseFromString(env.body());
      r.replayed = true;
      return r;
    }
    Answer answer;
    if (!script_.empty()) {
      answer = std::move(script_.front());
      script_.pop_front();
    }
    if (answer.kind == Answer::kError) return answer.error;
    v1::Receipt receipt;
    receipt.set_command_id(vc.command.command_id());
    receipt.set_request_id(vc.command.request_id());
    receipt.set_domain(vc.command.domain());
    receipt.set_command_digest(vc.digest);
    if (answer.kind == Answer::kCompleted) {
      for (const auto& t : tables_) {
        auto* tr = receipt.add_tables();
        tr->set_table(t);
        tr->set_action("delete");
        tr->set_rows_affected(rows_per_table_);
        tr->set_rows_remaining(0);  // the re-check
      }
      receipt.set_outcome(v1::Receipt::COMPLETED);
      receipt.set_verified_zero_remaining(true);
      ++purges_;
    } else {
      receipt.set_outcome(v1::Receipt::FAILED);
      receipt.set_error(answer.failure);
    }
    receipt.set_completed_at_unix_ms(absl::ToUnixMillis(clock_.Now()));
    agents::PurgeResult r;
    r.receipt_wire =
        proto::SignEnvelope(proto::kReceiptType, receipt.SerializeAsString(), *key_).SerializeAsString();
    r.receipt = std::move(receipt);
    stored_[vc.command.command_id()] = r.receipt_wire;
    return r;
  }

  // Records how many commands each PurgeAll was given, then purges them one by one.
  std::vector<absl::StatusOr<agents::PurgeResult>> PurgeAll(
      const std::vector<const agents::VerifiedCommand*>& commands) override {
    batches_.push_back(commands.size());
    return Purger::PurgeAll(commands);
  }

  const std::vector<Call>& calls() const { return calls_; }
  const std::vector<size_t>& batches() const { return batches_; }
  int purges() const { return purges_; }  // COMPLETED purges carried out (not replays)
  int schema_calls() const { return schema_calls_; }

 private:
  const crypto::Ed25519PrivateKey* key_;
  const Clock& clock_;
  const std::vector<std::string> tables_;
  std::deque<Answer> script_;
  std::map<std::string, std::string> stored_;  // command id -> signed receipt
  std::vector<Call> calls_;
  std::vector<size_t> batches_;  // commands per PurgeAll call
  int purges_ = 0;
  int64_t rows_per_table_ = 1;
  absl::Status schema_status_;
  int schema_calls_ = 0;
};

}  // namespace lethe::fakes
