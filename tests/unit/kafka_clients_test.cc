// The Kafka clients (kafka/kafka.h) against librdkafka's mock cluster, the embedded broker:
// how the producer and the consumer end their waits for a broker that does not answer, and
// the embedded cluster's own fault injection.
#include "kafka/kafka.h"

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/assertions.h"

namespace lethe::kafka {
namespace {

using ::testing::HasSubstr;

// The agent's group settings: a member that left without a goodbye is noticed in seconds.
const Config kQuickGroup = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};

// Polls until `want` messages came, waiting on the broker rather than on a clock (each poll
// blocks until a message arrives or a second passes; a minute of nothing fails the test).
std::vector<Message> PollUntil(Consumer& consumer, size_t want) {
  std::vector<Message> got;
  for (int idle = 0; got.size() < want && idle < 60;) {
    absl::Status error;
    std::vector<Message> batch = consumer.PollBatch(absl::Seconds(1), want - got.size(), &error);
    EXPECT_OK(error);
    if (batch.empty()) ++idle;
    for (Message& m : batch) got.push_back(std::move(m));
  }
  return got;
}

// CommitThrough commits, in one request, the last handled message of each partition: a new
// member of the group starts right after it, on every partition.
TEST(Consumer, CommitThroughMovesEachPartitionsOffset) {
  auto broker = EmbeddedKafka::Start(1);
  ASSERT_OK(broker);
  ASSERT_OK((*broker)->CreateTopic("lethe.commands.crm", 2));
  auto producer = Producer::Create((*broker)->bootstrap());
  ASSERT_OK(producer);
  for (int i = 0; i < 12; ++i)
    ASSERT_OK((*producer)->ProduceSync("lethe.commands.crm", "k" + std::to_string(i), "v", absl::Seconds(30)).status());
  std::map<int32_t, int64_t> next;  // per partition: the offset the group must start from
  {
    auto consumer = Consumer::Create((*broker)->bootstrap(), "lethe-agent.crm", {"lethe.commands.crm"}, kQuickGroup);
    ASSERT_OK(consumer);
    std::vector<Message> got = PollUntil(**consumer, 12);
    ASSERT_EQ(got.size(), 12u);
    std::set<int32_t> partitions;
    for (const Message& m : got) partitions.insert(m.partition);
    ASSERT_EQ(partitions.size(), 2u) << "the keys must spread over both partitions for this test to say anything";
    // Handled: the first 7 in delivery order. Per partition, the group resumes after the last
    // of them, or at the start of a partition none of them came from.
    next = {{0, 0}, {1, 0}};
    for (size_t i = 0; i < 7; ++i) next[got[i].partition] = got[i].offset + 1;
    ASSERT_OK((*consumer)->CommitThrough(got, 7, absl::Seconds(30)));
  }  // leaves the group
  auto second = Consumer::Create((*broker)->bootstrap(), "lethe-agent.crm", {"lethe.commands.crm"}, kQuickGroup);
  ASSERT_OK(second);
  std::vector<Message> again = PollUntil(**second, 5);
  ASSERT_EQ(again.size(), 5u);
  std::map<int32_t, int64_t> first;
  for (const Message& m : again)
    if (!first.count(m.partition)) first[m.partition] = m.offset;
  for (const auto& [partition, offset] : first) EXPECT_EQ(offset, next[partition]) << "partition " << partition;
}

// A paused consumer asks the broker for nothing and delivers nothing; resumed, it goes on from
// where it was, a rewind before the pause included: no record is lost or skipped.
TEST(Consumer, PausedItFetchesNothingAndResumedItGoesOnWhereItWas) {
  auto broker = EmbeddedKafka::Start(1);
  ASSERT_OK(broker);
  ASSERT_OK((*broker)->CreateTopic("lethe.receipts", 1));
  auto producer = Producer::Create((*broker)->bootstrap());
  ASSERT_OK(producer);
  for (int i = 0; i < 4; ++i)
    ASSERT_OK((*producer)->ProduceSync("lethe.receipts", "k" + std::to_string(i), "v", absl::Seconds(30)).status());
  Config config = kQuickGroup;
  config["statistics.interval.ms"] = "100";
  config["fetch.wait.max.ms"] = "10";  // unpaused, about 100 fetches a second
  auto consumer = Consumer::Create((*broker)->bootstrap(), "lethed", {"lethe.receipts"}, config);
  ASSERT_OK(consumer);
  Consumer& c = **consumer;
  std::vector<Message> got = PollUntil(c, 4);
  ASSERT_EQ(got.size(), 4u);
  ASSERT_OK(c.Rewind(got[2]));  // k2 and k3 are to come again
  EXPECT_FALSE(c.paused());
  ASSERT_OK(c.Pause());
  EXPECT_TRUE(c.paused());
  ASSERT_OK(c.Pause());  // again: nothing more to stop
  ASSERT_OK((*producer)->ProduceSync("lethe.receipts", "k4", "v", absl::Seconds(30)).status());

  // Statistics come through polls, every 100 ms: a fetch in flight at the pause may still be
  // counted in the first two; then 20 more (2 s) must count none.
  const ConsumerStats& stats = c.stats();
  auto poll_through = [&](uint64_t updates) {
    const uint64_t until = stats.updates() + updates;
    for (int polls = 0; stats.updates() < until && polls < 600; ++polls) {
      auto m = c.Poll(absl::Milliseconds(50));
      ASSERT_OK(m);
      ASSERT_FALSE(m->has_value()) << "a paused partition delivered " << *(*m)->key;
    }
    ASSERT_GE(stats.updates(), until) << "no statistics for 30 s";
  };
  ASSERT_NO_FATAL_FAILURE(poll_through(2));
  const int64_t before = stats.fetch_requests();
  ASSERT_GT(before, 0);
  ASSERT_NO_FATAL_FAILURE(poll_through(20));
  EXPECT_EQ(stats.fetch_requests(), before) << "fetched while paused";

  ASSERT_OK(c.Resume());
  EXPECT_FALSE(c.paused());
  ASSERT_OK(c.Resume());  // again: nothing to restart
  // Fetching starts at once: left alone, librdkafka 2.0's broker thread would notice the
  // resume only at its next timeout, about a second later (Resume wakes it with a seek).
  auto first = c.Poll(absl::Milliseconds(400));
  ASSERT_OK(first);
  ASSERT_TRUE(first->has_value()) << "nothing 400 ms after the resume";
  std::vector<Message> rest = {**first};
  for (Message& m : PollUntil(c, 2)) rest.push_back(std::move(m));
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0].key, "k2");
  EXPECT_EQ(rest[1].key, "k3");
  EXPECT_EQ(rest[2].key, "k4");
}

// One record on a one-partition topic, received by a member of the agent's group: what the
// commit tests below then commit.
class OneReceived : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = EmbeddedKafka::Start(1);
    ASSERT_OK(broker);
    broker_ = *std::move(broker);
    ASSERT_OK(broker_->CreateTopic("lethe.commands.crm", 1));
    auto producer = Producer::Create(broker_->bootstrap());
    ASSERT_OK(producer);
    ASSERT_OK((*producer)->ProduceSync("lethe.commands.crm", "k", "v", absl::Seconds(30)).status());
    auto consumer = Consumer::Create(broker_->bootstrap(), "lethe-agent.crm", {"lethe.commands.crm"}, kQuickGroup);
    ASSERT_OK(consumer);
    consumer_ = *std::move(consumer);
    got_ = PollUntil(*consumer_, 1);
    ASSERT_EQ(got_.size(), 1u);
  }
  std::unique_ptr<EmbeddedKafka> broker_;
  std::unique_ptr<Consumer> consumer_;
  std::vector<Message> got_;
};

// A partition the coordinator refuses makes the commit fail, naming the broker's error.
TEST_F(OneReceived, OffsetCommitRefusedForAPartitionFails) {
  // OffsetCommit (API key 8) answered TOPIC_AUTHORIZATION_FAILED (29) for the partition.
  ASSERT_OK(broker_->PushRequestErrors(8, {29}));
  absl::Status refused = consumer_->CommitThrough(got_, 1, absl::Seconds(30));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("kafka offset commit: Broker: Topic authorization failed"));
  // The next commit goes through.
  EXPECT_OK(consumer_->CommitThrough(got_, 1, absl::Seconds(30)));
}

// An offset commit whose coordinator does not answer ends at its timeout with kUnavailable.
// librdkafka's synchronous commit waits without a bound; found by the chaos run: an agent's
// loop sat for minutes in a commit to a broker that went down and then away with lethed, and
// never read the bootstrap file that named lethed's new cluster.
TEST_F(OneReceived, OffsetCommitEndsAtItsTimeoutWhenTheCoordinatorIsSlow) {
  // Answers come 30 s late: a commit bounded at half a second gives up long before.
  ASSERT_OK(broker_->SetBrokersRtt(absl::Seconds(30)));
  absl::Status late = consumer_->CommitThrough(got_, 1, absl::Milliseconds(500));
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable) << late;
  EXPECT_THAT(late.message(), HasSubstr("the group coordinator did not answer within 500ms"));
  // Leaving the group would wait for the slow broker, and so would destroying a client with
  // an answer due from it: the broker goes first, as lethed's does when it restarts.
  broker_.reset();
  Consumer::Discard(std::move(consumer_));
}

// A producer waiting for a broker that is gone gives up when its abandon check says so (an
// agent whose bootstrap file names lethed's new broker) instead of waiting out
// message.timeout.ms (30 s): its record fails as purged. Found by the chaos run: an agent sat
// 30 s on a receipt for a broker lethed's restart had replaced.
TEST(Producer, GivesUpWaitingWhenItsAbandonCheckSaysSo) {
  auto broker = EmbeddedKafka::Start(1);
  ASSERT_OK(broker);
  ASSERT_OK((*broker)->CreateTopic("lethe.receipts", 1));
  auto producer = Producer::Create((*broker)->bootstrap());
  ASSERT_OK(producer);
  ASSERT_OK((*producer)->ProduceSync("lethe.receipts", "k", "delivered", absl::Seconds(30)).status());
  ASSERT_OK((*broker)->SetBrokersUp(false));
  std::atomic<int> asked{0};
  (*producer)->SetAbandon([&] { return ++asked > 5; });
  auto r = (*producer)->ProduceSync("lethe.receipts", "k", "never", absl::Minutes(10));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("Purged")) << "waited out the message timeout instead";
  EXPECT_GT(asked.load(), 5);
}

// The embedded cluster moves the leaders of its own topics only (the mock would create any
// other topic it is asked about), to brokers it has.
TEST(EmbeddedKafka, MovesTheLeadersOfItsOwnTopicsOnly) {
  auto broker = EmbeddedKafka::Start(3);
  ASSERT_OK(broker);
  ASSERT_OK((*broker)->CreateTopic("lethe.receipts", 2));
  EXPECT_OK((*broker)->SetPartitionLeader("lethe.receipts", 1, 3));
  EXPECT_EQ((*broker)->SetPartitionLeader("lethe.other", 0, 2).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*broker)->SetPartitionLeader("lethe.receipts", 2, 2).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*broker)->SetPartitionLeader("lethe.receipts", 0, 4).code(), absl::StatusCode::kInvalidArgument);
  // A record still goes through to the moved partition's new leader.
  auto producer = Producer::Create((*broker)->bootstrap());
  ASSERT_OK(producer);
  EXPECT_OK((*producer)->ProduceSync("lethe.receipts", "k", "v", absl::Seconds(30)).status());
}

TEST(EmbeddedKafka, RefusesARoundTripOutsideItsBounds) {
  auto broker = EmbeddedKafka::Start(1);
  ASSERT_OK(broker);
  EXPECT_EQ((*broker)->SetBrokersRtt(absl::Milliseconds(-1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*broker)->SetBrokersRtt(absl::Minutes(11)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_OK((*broker)->SetBrokersRtt(absl::ZeroDuration()));
}

}  // namespace
}  // namespace lethe::kafka
