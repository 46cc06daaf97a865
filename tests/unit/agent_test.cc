// The agent's handling of one command (agents/command_handler.h, what Agent runs for each
// Kafka message), in memory: a real CommandVerifier, a FakePurger (tests/fakes/fake_purger.h)
// and a receipt sink that records what would go to lethe.receipts. It proves which receipt
// each kind of command gets, that a failure to purge or to publish leaves the command to be
// retried, and that a refused command reaches no purger.
#include "agents/command_handler.h"
#include "agents/agent.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "gtest/gtest.h"
#include "proto/envelope.h"
#include "tests/fakes/fake_purger.h"
#include "tests/fakes/signed_commands.h"
#include "tests/support/assertions.h"
#include "tests/support/envelopes.h"

namespace lethe::agents {
namespace {

using fakes::CommandSpec;
using fakes::FakePurger;

struct SentReceipt {
  std::string request_id;
  std::string wire;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(cp_key_, crypto::Ed25519PrivateKey::Generate());
    ASSERT_OK_AND_ASSIGN(other_cp_key_, crypto::Ed25519PrivateKey::Generate());
    ASSERT_OK_AND_ASSIGN(agent_key_, crypto::Ed25519PrivateKey::Generate());
    ASSERT_OK_AND_ASSIGN(rotated_agent_key_, crypto::Ed25519PrivateKey::Generate());
    ASSERT_OK_AND_ASSIGN(encryption_key_, crypto::X25519PrivateKey::Generate());
    ASSERT_OK_AND_ASSIGN(other_encryption_key_, crypto::X25519PrivateKey::Generate());
    verifier_ = std::make_unique<CommandVerifier>(cp_key_->public_key(), "shop", spec_.domain_policy_hash,
                                                  *encryption_key_, clock_);
    purger_ = std::make_unique<FakePurger>(*agent_key_, clock_,
                                           std::vector<std::string>{"public.orders", "public.customers"});
    handler_ = Handler(*agent_key_);
    clock_.Advance(absl::Minutes(1));
  }

  std::unique_ptr<CommandHandler> Handler(const crypto::Ed25519PrivateKey& key) {
    return std::make_unique<CommandHandler>(
        "shop", *verifier_, *purger_, key, clock_,
        [this](const std::string& request_id, const std::string& wire) {
          if (!sink_errors_.empty()) {
            absl::Status s = sink_errors_.front();
            sink_errors_.erase(sink_errors_.begin());
            return s;
          }
          sent_.push_back({request_id, wire});
          return absl::OkStatus();
        },
        stats_, [this](const std::string& result) { counted_.push_back(result); });
  }

  std::string Wire() const {
    return fakes::SignedWire(fakes::MakeCommand(spec_, encryption_key_->public_key()), *cp_key_);
  }

  absl::Status Handle(const std::string& wire) { return handler_->Handle(wire, "lethe.commands.shop/0@7"); }

  // The receipt in `sent`, checked against the agent's public key `by`.
  v1::Receipt Open(const SentReceipt& sent, const crypto::Ed25519PrivateKey& by) {
    v1::Receipt r;
    EXPECT_OK(testing::OpenEnvelope(sent.wire, proto::kReceiptType, by.public_key(), &r));
    EXPECT_EQ(sent.request_id, spec_.request_id);
    return r;
  }

  ManualClock clock_{absl::FromUnixSeconds(1'700'000'000)};
  CommandSpec spec_;
  std::optional<crypto::Ed25519PrivateKey> cp_key_, other_cp_key_, agent_key_, rotated_agent_key_;
  std::optional<crypto::X25519PrivateKey> encryption_key_, other_encryption_key_;
  std::unique_ptr<CommandVerifier> verifier_;
  std::unique_ptr<FakePurger> purger_;
  AgentStats stats_;
  std::unique_ptr<CommandHandler> handler_;
  std::vector<SentReceipt> sent_;
  std::vector<absl::Status> sink_errors_;  // the next publishes fail with these, in order
  std::vector<std::string> counted_;
};

TEST_F(AgentTest, VerifiedCommandIsPurgedAndItsCompletedReceiptPublished) {
  spec_.identities = {{"email", "alice@example.com"}, {"user_id", "u-1001"}};
  const std::string wire = Wire();
  ASSERT_OK(Handle(wire));

  ASSERT_EQ(purger_->calls().size(), 1u);
  const FakePurger::Call& call = purger_->calls()[0];
  EXPECT_EQ(call.command_id, spec_.command_id);
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(wire));
  EXPECT_EQ(call.digest, crypto::Sha256(env.body()));
  const std::vector<std::pair<std::string, std::string>> want = {{"email", "alice@example.com"},
                                                                 {"user_id", "u-1001"}};
  EXPECT_EQ(call.identities, want);

  ASSERT_EQ(sent_.size(), 1u);
  const v1::Receipt r = Open(sent_[0], *agent_key_);
  EXPECT_EQ(r.outcome(), v1::Receipt::COMPLETED);
  EXPECT_EQ(r.command_id(), spec_.command_id);
  EXPECT_EQ(r.command_digest(), call.digest);
  EXPECT_TRUE(r.verified_zero_remaining());
  ASSERT_EQ(r.tables_size(), 2);
  for (const auto& t : r.tables()) EXPECT_EQ(t.rows_remaining(), 0) << t.table();
  EXPECT_EQ(stats_.purged.load(), 1u);
  EXPECT_EQ(stats_.receipts_sent.load(), 1u);
  EXPECT_EQ(counted_, std::vector<std::string>{"purged"});
}

TEST_F(AgentTest, PurgeThatFailsIsAnsweredWithItsFailedReceipt) {
  purger_->ScriptFailed("table public.orders does not exist");
  ASSERT_OK(Handle(Wire()));
  ASSERT_EQ(sent_.size(), 1u);
  const v1::Receipt r = Open(sent_[0], *agent_key_);
  EXPECT_EQ(r.outcome(), v1::Receipt::FAILED);
  EXPECT_EQ(r.error(), "table public.orders does not exist");
  EXPECT_FALSE(r.verified_zero_remaining());
  EXPECT_EQ(stats_.failed.load(), 1u);
  EXPECT_EQ(stats_.purged.load(), 0u);
  EXPECT_EQ(counted_, std::vector<std::string>{"failed"});
}

TEST_F(AgentTest, UnavailableDatabaseLeavesTheCommandToRetryWithNothingSent) {
  purger_->ScriptError(absl::UnavailableError("PostgreSQL unreachable"));
  const std::string wire = Wire();
  const absl::Status first = Handle(wire);
  EXPECT_TRUE(absl::IsUnavailable(first)) << first;
  EXPECT_TRUE(sent_.empty());
  EXPECT_EQ(purger_->purges(), 0);
  // The redelivered command is then purged once.
  ASSERT_OK(Handle(wire));
  EXPECT_EQ(purger_->purges(), 1);
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(Open(sent_[0], *agent_key_).outcome(), v1::Receipt::COMPLETED);
}

TEST_F(AgentTest, ReceiptTheBrokerDidNotAcknowledgeIsRetriedFromTheStoredReceipt) {
  sink_errors_ = {absl::UnavailableError("broker down")};
  const std::string wire = Wire();
  const absl::Status first = Handle(wire);
  EXPECT_TRUE(absl::IsUnavailable(first)) << first;
  EXPECT_EQ(stats_.receipts_sent.load(), 0u);
  ASSERT_OK(Handle(wire));
  EXPECT_EQ(purger_->purges(), 1) << "the retry purged again";
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(Open(sent_[0], *agent_key_).outcome(), v1::Receipt::COMPLETED);
  EXPECT_EQ(stats_.replayed.load(), 1u);
}

TEST_F(AgentTest, ReplayOfACompletedCommandResendsTheSameReceiptAndDoesNotPurgeAgain) {
  const std::string wire = Wire();
  ASSERT_OK(Handle(wire));
  ASSERT_OK(Handle(wire));
  EXPECT_EQ(purger_->purges(), 1);
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[1].wire, sent_[0].wire) << "the stored receipt, byte for byte";
  EXPECT_EQ(stats_.purged.load(), 1u);
  EXPECT_EQ(stats_.replayed.load(), 1u);
  EXPECT_EQ(counted_, (std::vector<std::string>{"purged", "replayed"}));
}

TEST_F(AgentTest, ReplayAfterAKeyRotationIsReSignedWithTheCurrentKey) {
  const std::string wire = Wire();
  ASSERT_OK(Handle(wire));  // stored under agent_key_
  handler_ = Handler(*rotated_agent_key_);
  ASSERT_OK(Handle(wire));
  ASSERT_EQ(sent_.size(), 2u);
  v1::SignedEnvelope before, after;
  ASSERT_TRUE(before.ParseFromString(sent_[0].wire));
  ASSERT_TRUE(after.ParseFromString(sent_[1].wire));
  EXPECT_EQ(after.key_id(), rotated_agent_key_->public_key().KeyId());
  EXPECT_EQ(after.body(), before.body()) << "the same receipt, signed again";
  EXPECT_EQ(Open(sent_[1], *rotated_agent_key_).outcome(), v1::Receipt::COMPLETED);
  EXPECT_EQ(purger_->purges(), 1);
}

TEST_F(AgentTest, PolicyDriftIsAnsweredWithASignedRejectedReceiptAndPurgesNothing) {
  spec_.domain_policy_hash = std::string(32, '\x22');
  ASSERT_OK(Handle(Wire()));
  EXPECT_TRUE(purger_->calls().empty());
  ASSERT_EQ(sent_.size(), 1u);
  const v1::Receipt r = Open(sent_[0], *agent_key_);
  EXPECT_EQ(r.outcome(), v1::Receipt::REJECTED);
  EXPECT_EQ(r.command_id(), spec_.command_id);
  EXPECT_EQ(r.domain(), "shop");
  EXPECT_NE(r.error().find("policy drift"), std::string::npos) << r.error();
  EXPECT_EQ(handler_->rejected(Rejection::kPolicyDrift), 1u);
  EXPECT_EQ(stats_.rejected.load(), 1u);
  EXPECT_EQ(counted_, std::vector<std::string>{"rejected_policy_drift"});
}

TEST_F(AgentTest, CommandSealedToAnotherKeyIsAnsweredRejectedAndPurgesNothing) {
  const std::string wire =
      fakes::SignedWire(fakes::MakeCommand(spec_, other_encryption_key_->public_key()), *cp_key_);
  ASSERT_OK(Handle(wire));
  EXPECT_TRUE(purger_->calls().empty());
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(Open(sent_[0], *agent_key_).outcome(), v1::Receipt::REJECTED);
  EXPECT_EQ(handler_->rejected(Rejection::kNotForThisKey), 1u);
}

TEST_F(AgentTest, RejectedReceiptTheBrokerDidNotAcknowledgeIsRetried) {
  spec_.domain_policy_hash = std::string(32, '\x22');
  sink_errors_ = {absl::UnavailableError("broker down")};
  const absl::Status first = Handle(Wire());
  EXPECT_TRUE(absl::IsUnavailable(first)) << first;
  ASSERT_OK(Handle(Wire()));
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(Open(sent_[0], *agent_key_).outcome(), v1::Receipt::REJECTED);
}

TEST_F(AgentTest, ForgedCommandIsCountedAndSkippedWithoutAReceipt) {
  ASSERT_OK(Handle(fakes::SignedWire(fakes::MakeCommand(spec_, encryption_key_->public_key()),
                                     *other_cp_key_)));
  EXPECT_TRUE(purger_->calls().empty());
  EXPECT_TRUE(sent_.empty()) << "a forgery is not answered";
  EXPECT_EQ(handler_->rejected(Rejection::kBadSignature), 1u);
  EXPECT_EQ(stats_.rejected.load(), 1u);
}

TEST_F(AgentTest, ExpiredCommandIsCountedAndSkippedWithoutAReceipt) {
  clock_.Advance(absl::Hours(2));
  ASSERT_OK(Handle(Wire()));
  EXPECT_TRUE(purger_->calls().empty());
  EXPECT_TRUE(sent_.empty());
  EXPECT_EQ(handler_->rejected(Rejection::kExpired), 1u);
}

// A batch as the agent's loop hands it over: verified commands in a row go to the purger
// together, a refused one ends the run, and a purge error stops the batch there. Everything
// before the error is settled and answered once; the error's command and those after it are
// not, and are handled whole when the batch is read again from there.
TEST_F(AgentTest, ABatchGoesToThePurgerInRunsAndStopsAtTheFirstCommandItCannotSettle) {
  auto wire_of = [&](const std::string& id) {
    spec_.command_id = id;
    return Wire();
  };
  const std::string first = wire_of("cmd-1"), second = wire_of("cmd-2"), third = wire_of("cmd-3"),
                    fourth = wire_of("cmd-4");
  const std::string forged =
      fakes::SignedWire(fakes::MakeCommand(spec_, encryption_key_->public_key()), *other_cp_key_);
  purger_->ScriptCompleted();
  purger_->ScriptCompleted();
  purger_->ScriptError(absl::UnavailableError("PostgreSQL unreachable"));
  const std::vector<std::string> batch = {first, second, forged, third, fourth};
  auto incoming = [&](size_t from) {
    std::vector<CommandHandler::Incoming> in;
    for (size_t i = from; i < batch.size(); ++i) in.push_back({batch[i], "lethe.commands.shop/0@" + std::to_string(i)});
    return in;
  };
  size_t settled = 99;
  const absl::Status st = handler_->HandleAll(incoming(0), &settled);
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_EQ(settled, 3u) << "two purged, the forgery skipped; the third not settled";
  EXPECT_EQ(purger_->batches(), (std::vector<size_t>{2, 2}));
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(Open(sent_[0], *agent_key_).command_id(), "cmd-1");
  EXPECT_EQ(Open(sent_[1], *agent_key_).command_id(), "cmd-2");
  EXPECT_EQ(handler_->rejected(Rejection::kBadSignature), 1u);

  // Read again from the command not settled: the two left are purged and answered.
  ASSERT_OK(handler_->HandleAll(incoming(settled), &settled));
  EXPECT_EQ(settled, 2u);
  ASSERT_EQ(sent_.size(), 4u);
  EXPECT_EQ(Open(sent_[2], *agent_key_).command_id(), "cmd-3");
  EXPECT_EQ(Open(sent_[3], *agent_key_).command_id(), "cmd-4");
  EXPECT_EQ(purger_->purges(), 4);
  EXPECT_EQ(stats_.receipts_sent.load(), 4u);
}

TEST(TombstoneGoneBy, IsTheAppendTimePlusTheTopicsLagAndRetentionOrNoBound) {
  v1::TombstoneResult t;
  t.set_appended_unix_ms(1'000'000);
  EXPECT_EQ(TombstoneGoneBy(t), 0) << "configuration not read";
  t.set_config_read(true);
  t.set_cleanup_policy("compact");
  t.set_max_compaction_lag_ms(600'000);
  t.set_delete_retention_ms(86'400'000);
  EXPECT_EQ(TombstoneGoneBy(t), 1'000'000 + 600'000 + 86'400'000);
  t.set_cleanup_policy("delete,compact");
  EXPECT_EQ(TombstoneGoneBy(t), 1'000'000 + 600'000 + 86'400'000);
  t.set_max_compaction_lag_ms(INT64_MAX);  // Kafka's default: no bound
  EXPECT_EQ(TombstoneGoneBy(t), 0);
  t.set_max_compaction_lag_ms(-1);
  EXPECT_EQ(TombstoneGoneBy(t), 0);
  t.set_max_compaction_lag_ms(600'000);
  t.set_cleanup_policy("delete");
  EXPECT_EQ(TombstoneGoneBy(t), 0) << "not compacted: the records go by retention, not by the tombstone";
}

}  // namespace
}  // namespace lethe::agents
