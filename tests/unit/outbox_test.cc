// OutboxPublisher (controlplane/outbox.h) driven pass by pass on a ManualClock, publishing to
// a FakePublisher: what it publishes and where, the backoff between re-publishes, delivery
// failures, re-issue and re-seal of commands, and the stop at the request's due date. Also the
// ConsentPublisher's use of the Publisher seam. No Kafka, no sleeps.
#include "controlplane/outbox.h"

#include "controlplane/consent_publisher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "proto/envelope.h"
#include "tests/fakes/control_plane.h"
#include "tests/fakes/fake_publisher.h"
#include "tests/support/envelopes.h"

namespace lethe::controlplane {
namespace {

using ::lethe::testing::ControlPlane;
using ::lethe::testing::FakePublisher;
using ::lethe::testing::Identities;
using ::lethe::testing::OperatorActor;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr absl::Duration kDue = absl::Hours(24 * 30);  // the sample policy's deadlines.erasure

class OutboxTest : public ::testing::Test {
 protected:
  // A command TTL longer than the due date unless a test is about re-issue.
  explicit OutboxTest(absl::Duration ttl = absl::Hours(24 * 90)) : cp_(WithTtl(ttl)) {}
  static RequestManagerOptions WithTtl(absl::Duration ttl) {
    RequestManagerOptions o;
    o.command_ttl = ttl;
    return o;
  }
  void SetUp() override {
    cp_.ActivateSample();
    growth_ = cp_.Enroll("growth");
    outbox_ = std::make_unique<OutboxPublisher>(cp_.store(), cp_.manager(), fake_, cp_.clock());
  }
  std::string Submit() {
    auto id = cp_.manager().SubmitErasure(Identities({{"email", "alice@example.com"}}), "", OperatorActor());
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }
  absl::Time Now() { return cp_.clock().Now(); }

  ControlPlane cp_;
  testing::AgentKeyPair growth_;
  FakePublisher fake_;
  std::unique_ptr<OutboxPublisher> outbox_;
};

TEST_F(OutboxTest, PublishesEachPendingCommandToItsDomainsTopicKeyedByRequest) {
  EXPECT_EQ(outbox_->PublishDue(), absl::InfiniteFuture());  // nothing pending
  EXPECT_THAT(fake_.records(), SizeIs(0));
  const std::string id = Submit();
  const CommandRecord c = cp_.CommandFor(id, "growth");
  outbox_->PublishDue();
  auto sent = fake_.delivered();
  ASSERT_THAT(sent, SizeIs(1));
  EXPECT_EQ(sent[0].topic, kafka::CommandTopic("growth"));
  EXPECT_EQ(sent[0].key, id);
  EXPECT_EQ(sent[0].value, cp_.manager().CommandWire(c).value());
  EXPECT_EQ(outbox_->passes(), 2u);
}

TEST_F(OutboxTest, RepublishesWithExponentialBackoffCappedAtMaxRetry) {
  Submit();
  const absl::Time t0 = Now();
  // OutboxOptions: 15 s after the first publish, doubling, at most 10 min.
  EXPECT_EQ(outbox_->PublishDue(), t0 + absl::Seconds(15));
  ASSERT_THAT(fake_.records(), SizeIs(1));
  cp_.clock().Advance(absl::Seconds(14));
  EXPECT_EQ(outbox_->PublishDue(), t0 + absl::Seconds(15));  // not yet due
  EXPECT_THAT(fake_.records(), SizeIs(1));
  const absl::Duration expected[] = {absl::Seconds(30), absl::Seconds(60), absl::Seconds(120),
                                     absl::Seconds(240), absl::Seconds(480), absl::Minutes(10),
                                     absl::Minutes(10)};
  size_t n = 1;
  for (absl::Duration gap : expected) {
    const absl::Time next = outbox_->PublishDue();
    if (next > Now()) cp_.clock().Set(next);
    const absl::Time at = Now();
    EXPECT_EQ(outbox_->PublishDue(), at + gap) << "after publish " << n + 1;
    EXPECT_THAT(fake_.records(), SizeIs(++n));
  }
}

TEST_F(OutboxTest, AFailedDeliveryIsRetriedSoonWithItsOwnBackoffAndThenResumes) {
  Submit();
  fake_.FailNext(3);
  const absl::Time t0 = Now();
  EXPECT_EQ(outbox_->PublishDue(), t0 + absl::Seconds(1));  // error_retry
  cp_.clock().Advance(absl::Seconds(1));
  EXPECT_EQ(outbox_->PublishDue(), Now() + absl::Seconds(2));  // doubles
  cp_.clock().Advance(absl::Seconds(2));
  EXPECT_EQ(outbox_->PublishDue(), Now() + absl::Seconds(4));
  EXPECT_THAT(fake_.records(), SizeIs(3));
  EXPECT_THAT(fake_.delivered(), SizeIs(0));
  cp_.clock().Advance(absl::Seconds(4));
  // Delivered: the failures are forgotten and the success backoff starts at first_retry.
  EXPECT_EQ(outbox_->PublishDue(), Now() + absl::Seconds(15));
  EXPECT_THAT(fake_.delivered(), SizeIs(1));
}

// A command the domain's agent refused (drift) goes out again as soon as the domain answers
// another one, not at the backoff's next turn (which grows to minutes); a command that was not
// refused, merely waiting in the topic, keeps its schedule. Found by the chaos run: after a
// drifted agent was fixed, its refused commands waited up to minutes for their next publish.
TEST_F(OutboxTest, ARefusedCommandGoesOutAgainOnceItsDomainAnswersAnother) {
  const std::string refused = Submit();
  const absl::Time t0 = Now();
  outbox_->PublishDue();  // published at t0, next at t0 + 15 s
  cp_.clock().Set(t0 + absl::Seconds(15));
  EXPECT_EQ(outbox_->PublishDue(), t0 + absl::Seconds(45));  // second publish, next 30 s later
  ASSERT_THAT(fake_.records(), SizeIs(2));
  const controlplane::CommandRecord command = cp_.CommandFor(refused, "growth");
  ASSERT_TRUE(cp_.manager()
                  .RecordReceipt(ControlPlane::ReceiptWire(command, growth_.sign, v1::Receipt::REJECTED))
                  .ok());
  // Another request, waiting in the topic and never refused (next publish at t0 + 40 s).
  cp_.clock().Set(t0 + absl::Seconds(25));
  auto waiting = cp_.manager().SubmitErasure(Identities({{"email", "bob@example.com"}}), "", OperatorActor());
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  outbox_->PublishDue();
  ASSERT_THAT(fake_.records(), SizeIs(3));
  // Nobody answered yet: the refused command keeps its turn.
  cp_.clock().Set(t0 + absl::Seconds(35));
  outbox_->PublishDue();
  EXPECT_THAT(fake_.records(), SizeIs(3));
  // The domain answers a third request's command: the refused one goes out now, at t0 + 36 s
  // rather than t0 + 45 s; the waiting one does not.
  cp_.clock().Set(t0 + absl::Seconds(36));
  auto third = cp_.manager().SubmitErasure(Identities({{"email", "carol@example.com"}}), "", OperatorActor());
  ASSERT_TRUE(third.ok()) << third.status();
  outbox_->PublishDue();
  ASSERT_THAT(fake_.records(), SizeIs(4));
  ASSERT_TRUE(cp_.manager()
                  .RecordReceipt(ControlPlane::ReceiptWire(cp_.CommandFor(*third, "growth"), growth_.sign))
                  .ok());
  outbox_->PublishDue();
  ASSERT_THAT(fake_.records(), SizeIs(5));
  EXPECT_EQ(fake_.records().back().key, refused);
  // Once, not at every pass.
  outbox_->PublishDue();
  EXPECT_THAT(fake_.records(), SizeIs(5));
}

TEST_F(OutboxTest, AnAnsweredCommandIsNoLongerPublished) {
  const std::string id = Submit();
  outbox_->PublishDue();
  ASSERT_THAT(fake_.records(), SizeIs(1));
  ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(cp_.CommandFor(id, "growth"), growth_.sign)).ok());
  cp_.clock().Advance(absl::Hours(1));
  EXPECT_EQ(outbox_->PublishDue(), absl::InfiniteFuture());
  EXPECT_THAT(fake_.records(), SizeIs(1));
}

TEST_F(OutboxTest, StopsAtTheDueDateAndResumesAfterAnExtension) {
  const std::string id = Submit();
  outbox_->PublishDue();
  ASSERT_THAT(fake_.records(), SizeIs(1));
  cp_.clock().Advance(kDue - absl::Minutes(1));
  outbox_->PublishDue();  // still due: published
  ASSERT_THAT(fake_.records(), SizeIs(2));
  cp_.clock().Advance(absl::Minutes(1) + absl::Seconds(1));  // overdue
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(outbox_->PublishDue(), absl::InfiniteFuture());
    cp_.clock().Advance(absl::Hours(1));
  }
  EXPECT_THAT(fake_.records(), SizeIs(2));
  // An extension moves the due date: publishing resumes.
  ASSERT_TRUE(cp_.manager().Extend(id, absl::Hours(24 * 10), "complex request", OperatorActor()).ok());
  outbox_->PublishDue();
  EXPECT_THAT(fake_.records(), SizeIs(3));
}

class OutboxReissueTest : public OutboxTest {
 protected:
  OutboxReissueTest() : OutboxTest(absl::Hours(24)) {}  // the default command TTL
};

TEST_F(OutboxReissueTest, ACommandNearExpiryIsReplacedByAFreshlySignedOne) {
  const std::string id = Submit();
  const CommandRecord first = cp_.CommandFor(id, "growth");
  outbox_->PublishDue();
  const uint64_t before = cp_.ledger().size();
  // Re-issued expiry_margin (1 h) before not_after, not earlier.
  cp_.clock().Set(absl::FromUnixMillis(first.not_after_unix_ms) - absl::Hours(1) - absl::Seconds(1));
  outbox_->PublishDue();
  EXPECT_EQ(cp_.ledger().size(), before);
  EXPECT_EQ(cp_.CommandFor(id, "growth").command_id, first.command_id);
  cp_.clock().Advance(absl::Seconds(1));
  fake_.Clear();
  outbox_->PublishDue();
  ASSERT_EQ(cp_.ledger().size(), before + 1);
  const v1::LedgerEntry e = cp_.Entry(before);
  ASSERT_TRUE(e.has_command_issued());
  EXPECT_FALSE(e.has_actor());  // lethed's own doing
  const CommandRecord second = cp_.CommandFor(id, "growth");
  EXPECT_NE(second.command_id, first.command_id);
  EXPECT_EQ(absl::FromUnixMillis(second.not_after_unix_ms), Now() + absl::Hours(24));
  // The fresh command is the one published, at once; the old one is not pending any more.
  ASSERT_THAT(fake_.records(), SizeIs(1));
  EXPECT_EQ(fake_.records()[0].value, cp_.manager().CommandWire(second).value());
  auto pending = cp_.store().Pending(Now(), absl::Hours(1));
  ASSERT_THAT(pending, SizeIs(1));
  EXPECT_EQ(pending[0].command.command_id, second.command_id);
}

TEST_F(OutboxReissueTest, ACommandIsResealedToTheDomainsNewAgentKey) {
  const std::string id = Submit();
  const CommandRecord first = cp_.CommandFor(id, "growth");
  outbox_->PublishDue();
  const testing::AgentKeyPair rotated = cp_.Enroll("growth");
  fake_.Clear();
  outbox_->PublishDue();  // far from expiry, but the old key can no longer be the recipient
  const CommandRecord second = cp_.CommandFor(id, "growth");
  EXPECT_NE(second.command_id, first.command_id);
  EXPECT_EQ(second.recipient_key_id, rotated.enc.public_key().KeyId());
  ASSERT_THAT(fake_.records(), SizeIs(1));
  v1::DeleteCommand cmd;
  ASSERT_TRUE(testing::OpenEnvelope(fake_.records()[0].value.value(), proto::kDeleteCommandType,
                                  cp_.key().public_key(), &cmd).ok());
  EXPECT_TRUE(rotated.enc.Open(cmd.sealed_identities()).ok());
  EXPECT_FALSE(growth_.enc.Open(cmd.sealed_identities()).ok());
}

TEST_F(OutboxReissueTest, ACommandIsNotReissuedWithPartOfTheIdentitiesTheDomainIsNowKeyedBy) {
  const std::string id = Submit();  // email only
  const CommandRecord first = cp_.CommandFor(id, "growth");
  outbox_->PublishDue();
  // A new policy keys growth's invoices by user_id as well: the planner would not target growth
  // with this request's identities, so neither may the re-issue.
  auto yaml = lethe::ReadFile(std::string(LETHE_SOURCE_DIR) + "/policies/sample.yaml");
  ASSERT_TRUE(yaml.ok());
  const std::string from = "        - table: growth.invoices         # kept for tax law, reported in the receipt\n"
                           "          key: email\n          identity: email\n";
  const size_t at = yaml->find(from);
  ASSERT_NE(at, std::string::npos);
  std::string changed = *yaml;
  changed.replace(at, from.size(),
                  "        - table: growth.invoices\n          key: user_id\n          identity: user_id\n");
  ASSERT_TRUE(cp_.activator().Activate(changed, "changed.yaml", "unit test", testing::AdminActor()).ok());
  cp_.clock().Set(absl::FromUnixMillis(first.not_after_unix_ms) - absl::Minutes(30));
  const uint64_t before = cp_.ledger().size();
  outbox_->PublishDue();
  EXPECT_EQ(cp_.ledger().size(), before);  // nothing re-signed
  EXPECT_EQ(cp_.CommandFor(id, "growth").command_id, first.command_id);
  EXPECT_THAT(cp_.store().LastRejection(first.command_id), HasSubstr("user_id, which the request lacks"));
  // The note is made once: it does not wake the outbox into a loop.
  const uint64_t version = cp_.store().version();
  ASSERT_TRUE(cp_.manager().ReissueExpiring(absl::Hours(1)).ok());
  EXPECT_EQ(cp_.store().version(), version);
}

TEST_F(OutboxReissueTest, AnOverdueRequestsCommandIsNotReissued) {
  const std::string id = Submit();
  const CommandRecord first = cp_.CommandFor(id, "growth");
  // Keep it alive until just before the due date by passes every 23 h.
  while (Now() + absl::Hours(23) < absl::FromUnixMillis(cp_.store().Get(id)->due_unix_ms)) {
    outbox_->PublishDue();
    cp_.clock().Advance(absl::Hours(23));
  }
  cp_.clock().Set(absl::FromUnixMillis(cp_.store().Get(id)->due_unix_ms) + absl::Seconds(1));
  const uint64_t before = cp_.ledger().size();
  const std::string last = cp_.CommandFor(id, "growth").command_id;
  EXPECT_NE(last, first.command_id);
  fake_.Clear();
  EXPECT_EQ(outbox_->PublishDue(), absl::InfiniteFuture());
  EXPECT_EQ(cp_.ledger().size(), before);  // nothing re-signed
  EXPECT_EQ(cp_.CommandFor(id, "growth").command_id, last);
  EXPECT_THAT(fake_.records(), SizeIs(0));
  // A pass that does re-issue (another request's command is near expiry) still leaves the
  // overdue request's command as it is.
  const std::string other = Submit();
  const std::string other_first = cp_.CommandFor(other, "growth").command_id;
  cp_.clock().Advance(absl::Hours(23) + absl::Seconds(1));
  const uint64_t from = cp_.ledger().size();
  outbox_->PublishDue();
  ASSERT_GT(cp_.ledger().size(), from);
  for (uint64_t i = from; i < cp_.ledger().size(); ++i) {
    const v1::LedgerEntry e = cp_.Entry(i);
    ASSERT_TRUE(e.has_command_issued()) << i;
    EXPECT_EQ(e.command_issued().request_id(), other) << "the overdue request's command was re-issued";
  }
  EXPECT_NE(cp_.CommandFor(other, "growth").command_id, other_first);
  EXPECT_EQ(cp_.CommandFor(id, "growth").command_id, last);
}

// ConsentPublisher on the same seam: its thread publishes each change to lethe.consent,
// signed, under "<type>:<hex token>:<purpose>", and retries a failed delivery.
TEST(ConsentPublisherTest, PublishesEachChangeSignedAndRetriesAFailedDelivery) {
  ControlPlane cp;
  cp.ActivateSample();
  auto rec = cp.manager().ChangeConsent(SubjectIdentity{"email", SecretBytes("lee@example.com")},
                                        "marketing", v1::GRANTED, "signup-form-v3", OperatorActor());
  ASSERT_TRUE(rec.ok()) << rec.status();
  FakePublisher fake;
  fake.FailNext(1);
  ConsentPublisherOptions o;
  o.error_retry = absl::Milliseconds(1);
  ConsentPublisher publisher(cp.projections().consent, cp.writer(), fake, cp.key(), o);
  publisher.Start();
  fake.WaitForCalls(2);
  publisher.Stop();
  auto records = fake.records();
  ASSERT_GE(records.size(), 2u);
  EXPECT_FALSE(records[0].delivered);
  EXPECT_TRUE(records[1].delivered);
  EXPECT_EQ(records[1].topic, kafka::kConsentTopic);
  EXPECT_EQ(records[1].key, rec->TopicKey());
  EXPECT_EQ(records[1].value, ConsentPublisher::Wire(*rec, cp.key()));
  v1::ConsentState state;
  ASSERT_TRUE(testing::OpenEnvelope(records[1].value.value(), proto::kConsentStateType,
                                  cp.key().public_key(), &state).ok());
  EXPECT_EQ(state.purpose(), "marketing");
  EXPECT_EQ(state.status(), v1::GRANTED);
  EXPECT_EQ(publisher.published_through(), rec->entry);
}

// A change counts as published only once the broker acknowledged it: while the delivery is
// held, nothing is counted; changes are published in ledger order.
TEST(ConsentPublisherTest, CountsAChangeOnlyOnceDeliveredAndKeepsLedgerOrder) {
  ControlPlane cp;
  cp.ActivateSample();
  std::vector<uint64_t> entries;
  for (const char* who : {"mo@example.com", "ned@example.com"}) {
    auto rec = cp.manager().ChangeConsent(SubjectIdentity{"email", SecretBytes(who)}, "marketing",
                                          v1::GRANTED, "signup-form-v3", OperatorActor());
    ASSERT_TRUE(rec.ok()) << rec.status();
    entries.push_back(rec->entry);
  }
  FakePublisher fake;
  fake.Hold();
  ConsentPublisher publisher(cp.projections().consent, cp.writer(), fake, cp.key());
  publisher.Start();
  fake.WaitForHeld(1);
  EXPECT_EQ(publisher.published_through(), 0u);
  EXPECT_EQ(publisher.published(), 0u);
  EXPECT_THAT(fake.records(), SizeIs(0));
  fake.Release();
  fake.WaitForCalls(2);
  publisher.Stop();
  auto records = fake.records();
  ASSERT_THAT(records, SizeIs(2));
  v1::ConsentState first, second;
  ASSERT_TRUE(testing::OpenEnvelope(records[0].value.value(), proto::kConsentStateType,
                                  cp.key().public_key(), &first).ok());
  ASSERT_TRUE(testing::OpenEnvelope(records[1].value.value(), proto::kConsentStateType,
                                  cp.key().public_key(), &second).ok());
  EXPECT_EQ(first.ledger_entry(), entries[0]);
  EXPECT_EQ(second.ledger_entry(), entries[1]);
  EXPECT_EQ(publisher.published(), 2u);
  EXPECT_EQ(publisher.published_through(), entries[1]);
}

}  // namespace
}  // namespace lethe::controlplane
