#include "kafka/topics.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "kafka/conf.h"
#include "spdlog/spdlog.h"

namespace lethe::kafka {
namespace {

// cleanup.policy is a list: "compact,delete" and "delete,compact" are the same setting.
std::set<std::string> PolicySet(const std::string& v) {
  std::set<std::string> out;
  for (absl::string_view p : absl::StrSplit(v, ',', absl::SkipWhitespace()))
    out.insert(std::string(absl::StripAsciiWhitespace(p)));
  return out;
}

int Ms(absl::Duration d) {
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), 1 << 30));
}

// One Admin request's result event, waited for up to `timeout` (plus a margin for librdkafka
// to report its own timeout). nullptr when nothing came.
rd_kafka_event_t* Await(rd_kafka_queue_t* q, absl::Duration timeout) {
  return rd_kafka_queue_poll(q, Ms(timeout) + 1000);
}

struct Queue {
  explicit Queue(rd_kafka_t* rk) : q(rd_kafka_queue_new(rk)) {}
  ~Queue() { rd_kafka_queue_destroy(q); }
  rd_kafka_queue_t* q;
};

struct Options {
  Options(rd_kafka_t* rk, rd_kafka_admin_op_t op, absl::Duration timeout)
      : o(rd_kafka_AdminOptions_new(rk, op)) {
    char err[256];
    rd_kafka_AdminOptions_set_request_timeout(o, Ms(timeout), err, sizeof(err));
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
      rd_kafka_AdminOptions_set_operation_timeout(o, Ms(timeout), err, sizeof(err));
  }
  ~Options() { rd_kafka_AdminOptions_destroy(o); }
  rd_kafka_AdminOptions_t* o;
};

absl::Status NoAnswer(const char* request, absl::Duration timeout, rd_kafka_event_t* ev) {
  std::string why = ev ? rd_kafka_event_error_string(ev) : "no answer";
  return absl::UnavailableError(absl::StrCat("kafka ", request, ": the cluster did not answer within ",
                                             absl::FormatDuration(timeout), " (", why, ")"));
}

}  // namespace

std::vector<TopicSpec> LetheTopics(const std::vector<std::string>& domains, absl::Duration retention) {
  const int64_t ms = absl::ToInt64Milliseconds(retention);
  std::vector<TopicSpec> out;
  for (const auto& d : domains) out.push_back({CommandTopic(d), "delete", ms});
  out.push_back({kReceiptTopic, "delete", ms});
  out.push_back({kConsentTopic, "compact", -1});
  return out;
}

absl::StatusOr<TopicPlan> PlanTopics(const std::vector<TopicSpec>& wanted,
                                     const std::map<std::string, TopicState>& existing) {
  TopicPlan plan;
  for (const auto& spec : wanted) {
    auto it = existing.find(spec.name);
    if (it == existing.end()) {
      plan.create.push_back(spec);
      continue;
    }
    const TopicState& have = it->second;
    if (PolicySet(have.cleanup_policy) != PolicySet(spec.cleanup_policy)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "kafka topic ", spec.name, " exists with cleanup.policy=",
          have.cleanup_policy.empty() ? "(unset)" : have.cleanup_policy, "; Lethe needs cleanup.policy=",
          spec.cleanup_policy,
          spec.cleanup_policy == "compact"
              ? " (the latest consent state per subject and purpose must never expire)"
              : " (records are deleted by age; compaction would drop keyless records)",
          ": alter it (kafka-configs --alter --entity-type topics --entity-name ", spec.name,
          " --add-config cleanup.policy=", spec.cleanup_policy, ") or delete it"));
    }
    if (spec.retention_ms > 0 && have.retention_ms != spec.retention_ms) {
      plan.notices.push_back(absl::StrCat(
          "kafka topic ", spec.name, " has retention.ms=", have.retention_ms, "; the policy gives ",
          spec.retention_ms, " (its longest deadline plus the largest extension)",
          have.retention_ms < 0 || have.retention_ms > spec.retention_ms
              ? ": records outlive what they can be used for"
              : ": a command may expire before an agent that is down for that long reads it"));
    }
  }
  return plan;
}

absl::Status ValidateLayout(const TopicLayout& layout) {
  if (layout.partitions < 1 || layout.partitions > 10000)
    return absl::InvalidArgumentError(
        absl::StrCat("--kafka-partitions: ", layout.partitions, " is out of range (1..10000)"));
  if (layout.replication_factor != -1 && (layout.replication_factor < 1 || layout.replication_factor > 32))
    return absl::InvalidArgumentError(absl::StrCat("--kafka-replication-factor: ", layout.replication_factor,
                                                   " is out of range (1..32, or -1 for the broker's default)"));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TopicAdmin>> TopicAdmin::Create(const std::string& bootstrap,
                                                               const Config& extra) {
  LETHE_ASSIGN_OR_RETURN(rd_kafka_conf_t * conf,
                         MakeConf(Merge({{"bootstrap.servers", bootstrap}, {"client.id", "lethed-admin"}}, extra)));
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(absl::StrCat("kafka admin client: ", err));
  }
  auto admin = std::unique_ptr<TopicAdmin>(new TopicAdmin());
  admin->rk_ = rk;
  return admin;
}

TopicAdmin::~TopicAdmin() {
  if (rk_) rd_kafka_destroy(rk_);
}

absl::StatusOr<std::set<std::string>> TopicAdmin::ListTopics(absl::Duration timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, /*all_topics=*/1, nullptr, &md, Ms(timeout));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(absl::StrCat("kafka Metadata: ", rd_kafka_err2str(e)));
  std::set<std::string> out;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) out.insert(md->topics[i].topic);
  rd_kafka_metadata_destroy(md);
  return out;
}

absl::StatusOr<std::map<std::string, TopicState>> TopicAdmin::Describe(
    const std::vector<std::string>& topics, absl::Duration timeout) {
  std::map<std::string, TopicState> out;
  if (topics.empty()) return out;
  std::vector<rd_kafka_ConfigResource_t*> res;
  for (const auto& t : topics) res.push_back(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, t.c_str()));
  Queue q(rk_);
  Options opts(rk_, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout);
  rd_kafka_DescribeConfigs(rk_, res.data(), res.size(), opts.o, q.q);
  for (auto* r : res) rd_kafka_ConfigResource_destroy(r);
  rd_kafka_event_t* ev = Await(q.q, timeout);
  if (ev == nullptr || rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    absl::Status st = NoAnswer("DescribeConfigs", timeout, ev);
    if (ev) rd_kafka_event_destroy(ev);
    return st;
  }
  const rd_kafka_DescribeConfigs_result_t* r = rd_kafka_event_DescribeConfigs_result(ev);
  size_t n = 0;
  const rd_kafka_ConfigResource_t** rs = r ? rd_kafka_DescribeConfigs_result_resources(r, &n) : nullptr;
  absl::Status st;
  for (size_t i = 0; i < n && st.ok(); ++i) {
    const std::string name = rd_kafka_ConfigResource_name(rs[i]);
    if (rd_kafka_ConfigResource_error(rs[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      st = absl::UnavailableError(absl::StrCat("kafka DescribeConfigs ", name, ": ",
                                               rd_kafka_ConfigResource_error_string(rs[i])));
      break;
    }
    TopicState s;
    size_t m = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(rs[i], &m);
    for (size_t j = 0; j < m; ++j) {
      const char* v = rd_kafka_ConfigEntry_value(entries[j]);
      if (v == nullptr) continue;
      const std::string key = rd_kafka_ConfigEntry_name(entries[j]);
      if (key == "cleanup.policy") s.cleanup_policy = v;
      if (key == "retention.ms") s.retention_ms = std::atoll(v);
    }
    out[name] = s;
  }
  rd_kafka_event_destroy(ev);
  if (!st.ok()) return st;
  for (const auto& t : topics)
    if (!out.count(t)) return absl::UnavailableError("kafka DescribeConfigs: no answer for topic " + t);
  return out;
}

absl::Status TopicAdmin::CreateTopics(const std::vector<TopicSpec>& topics, const TopicLayout& layout,
                                      absl::Duration timeout) {
  if (topics.empty()) return absl::OkStatus();
  LETHE_RETURN_IF_ERROR(ValidateLayout(layout));
  std::vector<rd_kafka_NewTopic_t*> nts;
  absl::Status st;
  char err[512];
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), layout.partitions,
                                                    layout.replication_factor, err, sizeof(err));
    if (nt == nullptr) {
      st = absl::InvalidArgumentError(absl::StrCat("kafka topic ", t.name, ": ", err));
      break;
    }
    nts.push_back(nt);
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", t.cleanup_policy.c_str());
    if (t.retention_ms > 0)
      rd_kafka_NewTopic_set_config(nt, "retention.ms", std::to_string(t.retention_ms).c_str());
  }
  if (st.ok()) {
    Queue q(rk_);
    Options opts(rk_, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout);
    rd_kafka_CreateTopics(rk_, nts.data(), nts.size(), opts.o, q.q);
    rd_kafka_event_t* ev = Await(q.q, timeout);
    if (ev == nullptr || rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      st = NoAnswer("CreateTopics", timeout, ev);
    } else {
      const rd_kafka_CreateTopics_result_t* r = rd_kafka_event_CreateTopics_result(ev);
      size_t n = 0;
      const rd_kafka_topic_result_t** rs = r ? rd_kafka_CreateTopics_result_topics(r, &n) : nullptr;
      for (size_t i = 0; i < n; ++i) {
        const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(rs[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
        const char* why = rd_kafka_topic_result_error_string(rs[i]);
        st = absl::FailedPreconditionError(absl::StrCat("kafka CreateTopics ", rd_kafka_topic_result_name(rs[i]),
                                                        ": ", why ? why : rd_kafka_err2str(e)));
        break;
      }
      if (st.ok() && n != topics.size())
        st = absl::UnavailableError(absl::StrCat("kafka CreateTopics: ", n, " results for ", topics.size(), " topics"));
    }
    if (ev) rd_kafka_event_destroy(ev);
  }
  for (auto* nt : nts) rd_kafka_NewTopic_destroy(nt);
  return st;
}

absl::StatusOr<std::vector<std::string>> EnsureTopics(TopicAdminApi& admin, const std::vector<TopicSpec>& wanted,
                                                      const TopicLayout& layout, absl::Duration timeout) {
  LETHE_RETURN_IF_ERROR(ValidateLayout(layout));
  LETHE_ASSIGN_OR_RETURN(std::set<std::string> names, admin.ListTopics(timeout));
  std::vector<std::string> present;
  for (const auto& w : wanted)
    if (names.count(w.name)) present.push_back(w.name);
  LETHE_ASSIGN_OR_RETURN(auto existing, admin.Describe(present, timeout));
  LETHE_ASSIGN_OR_RETURN(TopicPlan plan, PlanTopics(wanted, existing));
  for (const auto& n : plan.notices) spdlog::warn("{}", n);
  LETHE_RETURN_IF_ERROR(admin.CreateTopics(plan.create, layout, timeout));
  std::vector<std::string> created;
  for (const auto& t : plan.create) created.push_back(t.name);
  if (!created.empty())
    spdlog::info("kafka: created {} ({} partition(s), replication factor {})", absl::StrJoin(created, ", "),
                 layout.partitions, layout.replication_factor == -1 ? std::string("broker default")
                                                                    : std::to_string(layout.replication_factor));
  return created;
}

}  // namespace lethe::kafka
