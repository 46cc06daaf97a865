// A TopicAdminApi that keeps its topics in memory and records every call: EnsureTopics' and
// lethed's decisions about topics, tested without a cluster whose Admin API answers (the
// embedded broker's does not: kafka/topics.h).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kafka/topics.h"

namespace lethe::kafka::testing {

// Records the calls; answers from `topics`.
class RecordingTopicAdmin : public TopicAdminApi {
 public:
  std::map<std::string, TopicState> topics;
  std::vector<std::string> described;
  std::vector<TopicSpec> created;  // every topic created, in order
  TopicLayout layout;
  absl::Status create_error;
  absl::Status list_error;

  absl::StatusOr<std::set<std::string>> ListTopics(absl::Duration) override {
    if (!list_error.ok()) return list_error;
    std::set<std::string> out;
    for (const auto& [k, v] : topics) out.insert(k);
    out.insert("some.other.topic");
    return out;
  }
  absl::StatusOr<std::map<std::string, TopicState>> Describe(const std::vector<std::string>& names,
                                                             absl::Duration) override {
    described = names;
    std::map<std::string, TopicState> out;
    for (const auto& n : names) out[n] = topics.at(n);
    return out;
  }
  absl::Status CreateTopics(const std::vector<TopicSpec>& specs, const TopicLayout& l, absl::Duration) override {
    if (!create_error.ok()) return create_error;
    created.insert(created.end(), specs.begin(), specs.end());
    layout = l;
    for (const auto& s : specs) topics[s.name] = {s.cleanup_policy, s.retention_ms};
    return absl::OkStatus();
  }
};

// What lethed owns (TopicAdminApi) forwarding to a RecordingTopicAdmin the test keeps.
class SharedTopicAdmin : public TopicAdminApi {
 public:
  explicit SharedTopicAdmin(std::shared_ptr<RecordingTopicAdmin> a) : a_(std::move(a)) {}
  absl::StatusOr<std::set<std::string>> ListTopics(absl::Duration t) override { return a_->ListTopics(t); }
  absl::StatusOr<std::map<std::string, TopicState>> Describe(const std::vector<std::string>& names,
                                                             absl::Duration t) override {
    return a_->Describe(names, t);
  }
  absl::Status CreateTopics(const std::vector<TopicSpec>& specs, const TopicLayout& l, absl::Duration t) override {
    return a_->CreateTopics(specs, l, t);
  }

 private:
  std::shared_ptr<RecordingTopicAdmin> a_;
};

}  // namespace lethe::kafka::testing
