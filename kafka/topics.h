// The lethe.* topics on a real Kafka cluster: which ones lethed needs, with which settings, and
// the Admin API calls that create the missing ones and refuse a topic set up for the wrong job.
//
//   lethe.commands.<domain>  cleanup.policy=delete, retention.ms = the longest a request can
//                            stay open under the policy (its longest deadline plus the
//                            largest extension): a command older than that can do no good,
//                            and a bounded topic is what keeps sealed identities from piling up
//   lethe.receipts           cleanup.policy=delete, the same retention
//   lethe.consent            cleanup.policy=compact: the latest state per subject and purpose
//                            must stay readable for as long as it is the latest
//
// The decision (PlanTopics) is a pure function, tested alone; TopicAdmin is the librdkafka
// Admin API (Metadata, DescribeConfigs, CreateTopics) around it. librdkafka's mock cluster, the
// embedded broker, answers Metadata but not DescribeConfigs or CreateTopics, so with
// --embedded-kafka lethed creates its topics through the mock's own API instead.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/kafka.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace lethe::kafka {

struct TopicSpec {
  std::string name;
  std::string cleanup_policy;  // "compact" or "delete"
  int64_t retention_ms = -1;   // -1: not set by Lethe (the broker's default applies)
};

// An existing topic's settings, as DescribeConfigs reports them.
struct TopicState {
  std::string cleanup_policy;
  int64_t retention_ms = -1;
};

// How new topics are laid out (lethed --kafka-partitions, --kafka-replication-factor).
struct TopicLayout {
  int partitions = 1;
  int replication_factor = -1;  // -1: the broker's default.replication.factor
};

// What lethed needs for these domains: one command topic per domain, the receipt topic and the
// consent topic. `retention` bounds the command and receipt topics.
std::vector<TopicSpec> LetheTopics(const std::vector<std::string>& domains, absl::Duration retention);

struct TopicPlan {
  std::vector<TopicSpec> create;     // missing: to be created
  std::vector<std::string> notices;  // existing, usable, but not as Lethe would create them
};
// Compares what is wanted with what exists (name -> settings; absent = missing). Fails with
// kFailedPrecondition, naming the topic, the policy found and the one required, when an
// existing topic's cleanup.policy differs from the spec's ("compact,delete" is not "compact":
// it would delete consent states that are still current).
absl::StatusOr<TopicPlan> PlanTopics(const std::vector<TopicSpec>& wanted,
                                     const std::map<std::string, TopicState>& existing);

// Range checks of the layout flags, naming the flag.
absl::Status ValidateLayout(const TopicLayout& layout);

// The three Admin API calls EnsureTopics makes; TopicAdmin is librdkafka's.
class TopicAdminApi {
 public:
  virtual ~TopicAdminApi() = default;
  // Names of every topic on the cluster (a Metadata request).
  virtual absl::StatusOr<std::set<std::string>> ListTopics(absl::Duration timeout) = 0;
  // cleanup.policy and retention.ms of each topic (one DescribeConfigs request).
  virtual absl::StatusOr<std::map<std::string, TopicState>> Describe(const std::vector<std::string>& topics,
                                                                     absl::Duration timeout) = 0;
  // Creates the topics (one CreateTopics request); a topic that appeared meanwhile is fine.
  virtual absl::Status CreateTopics(const std::vector<TopicSpec>& topics, const TopicLayout& layout,
                                    absl::Duration timeout) = 0;
};

class TopicAdmin : public TopicAdminApi {
 public:
  static absl::StatusOr<std::unique_ptr<TopicAdmin>> Create(const std::string& bootstrap,
                                                            const Config& extra = {});
  ~TopicAdmin() override;
  absl::StatusOr<std::set<std::string>> ListTopics(absl::Duration timeout) override;
  absl::StatusOr<std::map<std::string, TopicState>> Describe(const std::vector<std::string>& topics,
                                                             absl::Duration timeout) override;
  absl::Status CreateTopics(const std::vector<TopicSpec>& topics, const TopicLayout& layout,
                            absl::Duration timeout) override;

 private:
  TopicAdmin() = default;
  rd_kafka_t* rk_ = nullptr;
};

// Lists, describes the ones that exist, plans, refuses a wrong cleanup.policy, creates the
// missing. Each step is bounded by `timeout`; a broker that does not answer is kUnavailable
// naming the request. Returns the names created.
absl::StatusOr<std::vector<std::string>> EnsureTopics(TopicAdminApi& admin,
                                                      const std::vector<TopicSpec>& wanted,
                                                      const TopicLayout& layout,
                                                      absl::Duration timeout);

}  // namespace lethe::kafka
