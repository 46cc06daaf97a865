// The lethe.* topics on a real cluster (kafka/topics.h): which topics with which settings, the
// refusal of a topic set up for another job, and the Admin API calls.
//
// librdkafka's mock cluster (the embedded broker) answers Metadata but implements neither
// DescribeConfigs nor CreateTopics: both time out against it. So EnsureTopics' decisions are
// tested here through a recording TopicAdminApi, and TopicAdmin itself against the mock for
// what the mock can do (listing topics) and for how it reports a broker that does not answer.
#include "kafka/topics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/fakes/fake_topic_admin.h"
#include "tests/support/assertions.h"

namespace lethe::kafka {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Duration kWeek = absl::Hours(24 * 7);

TEST(LetheTopics, CommandAndReceiptTopicsBoundedConsentCompacted) {
  auto topics = LetheTopics({"growth", "assessments"}, kWeek);
  ASSERT_EQ(topics.size(), 4u);
  EXPECT_EQ(topics[0].name, "lethe.commands.growth");
  EXPECT_EQ(topics[0].cleanup_policy, "delete");
  EXPECT_EQ(topics[0].retention_ms, 7 * 24 * 3600 * 1000LL);
  EXPECT_EQ(topics[1].name, "lethe.commands.assessments");
  EXPECT_EQ(topics[2].name, "lethe.receipts");
  EXPECT_EQ(topics[2].cleanup_policy, "delete");
  EXPECT_EQ(topics[2].retention_ms, 7 * 24 * 3600 * 1000LL);
  EXPECT_EQ(topics[3].name, "lethe.consent");
  EXPECT_EQ(topics[3].cleanup_policy, "compact");
  EXPECT_EQ(topics[3].retention_ms, -1);
}

TEST(PlanTopics, MissingTopicsAreCreated) {
  auto plan = PlanTopics(LetheTopics({"growth"}, kWeek), {});
  ASSERT_OK(plan);
  ASSERT_EQ(plan->create.size(), 3u);
  EXPECT_THAT(plan->notices, IsEmpty());
}

TEST(PlanTopics, MatchingTopicsAreLeftAlone) {
  const int64_t ms = absl::ToInt64Milliseconds(kWeek);
  auto plan = PlanTopics(LetheTopics({"growth"}, kWeek),
                         {{"lethe.commands.growth", {"delete", ms}},
                          {"lethe.receipts", {"delete", ms}},
                          {"lethe.consent", {"compact", 604800000}}});
  ASSERT_OK(plan);
  EXPECT_THAT(plan->create, IsEmpty());
  EXPECT_THAT(plan->notices, IsEmpty());
}

TEST(PlanTopics, ConsentTopicThatIsNotCompactedIsRefusedByName) {
  auto plan = PlanTopics(LetheTopics({"growth"}, kWeek), {{"lethe.consent", {"delete", 604800000}}});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plan.status().message(), HasSubstr("lethe.consent exists with cleanup.policy=delete"));
  EXPECT_THAT(plan.status().message(), HasSubstr("needs cleanup.policy=compact"));
}

TEST(PlanTopics, CompactAndDeleteIsNotCompact) {
  // Old consent states would be deleted by age even while they are the latest.
  auto plan = PlanTopics(LetheTopics({}, kWeek), {{"lethe.consent", {"compact,delete", -1}}});
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(), HasSubstr("cleanup.policy=compact,delete"));
}

TEST(PlanTopics, CleanupPolicyIsASet) {
  const std::vector<TopicSpec> wanted = {{"t", "compact,delete", -1}};
  ASSERT_OK(PlanTopics(wanted, {{"t", {"delete, compact", -1}}}));
}

TEST(PlanTopics, CompactedCommandTopicIsRefused) {
  auto plan = PlanTopics(LetheTopics({"growth"}, kWeek), {{"lethe.commands.growth", {"compact", -1}}});
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(), HasSubstr("lethe.commands.growth exists with cleanup.policy=compact"));
}

TEST(PlanTopics, OtherRetentionIsANoticeNotARefusal) {
  auto plan = PlanTopics(LetheTopics({"growth"}, kWeek), {{"lethe.commands.growth", {"delete", -1}}});
  ASSERT_OK(plan);
  ASSERT_EQ(plan->notices.size(), 1u);
  EXPECT_THAT(plan->notices[0], HasSubstr("lethe.commands.growth has retention.ms=-1"));
  EXPECT_THAT(plan->notices[0], HasSubstr("outlive"));
  EXPECT_EQ(plan->create.size(), 2u);
}

TEST(ValidateLayout, NamesTheFlag) {
  EXPECT_OK(ValidateLayout({1, -1}));
  EXPECT_OK(ValidateLayout({12, 3}));
  EXPECT_THAT(ValidateLayout({0, 3}).message(), HasSubstr("--kafka-partitions: 0"));
  EXPECT_THAT(ValidateLayout({1, 0}).message(), HasSubstr("--kafka-replication-factor: 0"));
  EXPECT_THAT(ValidateLayout({1, -2}).message(), HasSubstr("--kafka-replication-factor: -2"));
}

TEST(EnsureTopics, CreatesTheMissingWithTheLayoutAndDescribesOnlyLetheTopics) {
  testing::RecordingTopicAdmin admin;
  admin.topics["lethe.receipts"] = {"delete", absl::ToInt64Milliseconds(kWeek)};
  auto created = EnsureTopics(admin, LetheTopics({"growth"}, kWeek), {6, 3}, absl::Seconds(5));
  ASSERT_OK(created);
  EXPECT_THAT(*created, ElementsAre("lethe.commands.growth", "lethe.consent"));
  EXPECT_THAT(admin.described, ElementsAre("lethe.receipts"));
  EXPECT_EQ(admin.layout.partitions, 6);
  EXPECT_EQ(admin.layout.replication_factor, 3);
  ASSERT_EQ(admin.created.size(), 2u);
  EXPECT_EQ(admin.created[1].cleanup_policy, "compact");
  // Run again (the next start): nothing to create.
  admin.created.clear();
  created = EnsureTopics(admin, LetheTopics({"growth"}, kWeek), {6, 3}, absl::Seconds(5));
  ASSERT_OK(created);
  EXPECT_THAT(*created, IsEmpty());
  EXPECT_THAT(admin.created, IsEmpty());
}

TEST(EnsureTopics, WrongCleanupPolicyCreatesNothing) {
  testing::RecordingTopicAdmin admin;
  admin.topics["lethe.consent"] = {"delete", -1};
  auto created = EnsureTopics(admin, LetheTopics({"growth"}, kWeek), {1, -1}, absl::Seconds(5));
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(created.status().message(), HasSubstr("lethe.consent exists with cleanup.policy=delete"));
  EXPECT_THAT(admin.created, IsEmpty());
}

TEST(EnsureTopics, BadLayoutIsRefusedBeforeAnyCall) {
  testing::RecordingTopicAdmin admin;
  auto created = EnsureTopics(admin, LetheTopics({"growth"}, kWeek), {0, -1}, absl::Seconds(5));
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(admin.described, IsEmpty());
}

TEST(EnsureTopics, CreateFailureIsReported) {
  testing::RecordingTopicAdmin admin;
  admin.create_error = absl::FailedPreconditionError("kafka CreateTopics lethe.consent: Authorization failed");
  auto created = EnsureTopics(admin, LetheTopics({"growth"}, kWeek), {1, -1}, absl::Seconds(5));
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(created.status().message(), HasSubstr("Authorization failed"));
}

// TopicAdmin against librdkafka's mock cluster: Metadata works, so the topics it holds are
// listed; DescribeConfigs and CreateTopics are not implemented by the mock, and the calls end
// at their timeout with kUnavailable naming the request, never hang.
TEST(TopicAdmin, AgainstTheEmbeddedBroker) {
  auto broker = EmbeddedKafka::Start(1);
  ASSERT_OK(broker);
  ASSERT_OK((*broker)->CreateTopic("lethe.receipts", 1));
  ASSERT_OK((*broker)->CreateTopic("lethe.commands.growth", 2));
  auto admin = TopicAdmin::Create((*broker)->bootstrap());
  ASSERT_OK(admin);
  auto names = (*admin)->ListTopics(absl::Seconds(10));
  ASSERT_OK(names);
  EXPECT_TRUE(names->count("lethe.receipts"));
  EXPECT_TRUE(names->count("lethe.commands.growth"));
  EXPECT_FALSE(names->count("lethe.consent"));

  auto described = (*admin)->Describe({"lethe.receipts"}, absl::Seconds(1));
  ASSERT_FALSE(described.ok());
  EXPECT_EQ(described.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(described.status().message(), HasSubstr("kafka DescribeConfigs: the cluster did not answer"));

  auto made = (*admin)->CreateTopics({{"lethe.consent", "compact", -1}}, {1, -1}, absl::Seconds(1));
  EXPECT_EQ(made.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(made.message(), HasSubstr("kafka CreateTopics: the cluster did not answer"));
}

}  // namespace
}  // namespace lethe::kafka
