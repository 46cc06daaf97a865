#include "kafka/kafka.h"

#include "kafka/conf.h"
#include "nlohmann/json.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <atomic>
#include <deque>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file_system.h"
#include "base/status.h"
#include "spdlog/spdlog.h"

namespace lethe::kafka {
namespace {

// An owned librdkafka partition list.
using PartitionList =
    std::unique_ptr<rd_kafka_topic_partition_list_t, decltype(&rd_kafka_topic_partition_list_destroy)>;
PartitionList Own(rd_kafka_topic_partition_list_t* list) {
  return PartitionList(list, rd_kafka_topic_partition_list_destroy);
}
PartitionList NewPartitionList(size_t size) {
  return Own(rd_kafka_topic_partition_list_new(static_cast<int>(size)));
}
// The partitions assigned to the consumer now.
absl::StatusOr<PartitionList> Assignment(rd_kafka_t* rk) {
  rd_kafka_topic_partition_list_t* assigned = nullptr;
  if (rd_kafka_resp_err_t e = rd_kafka_assignment(rk, &assigned); e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(absl::StrCat("kafka assignment: ", rd_kafka_err2str(e)));
  return Own(assigned);
}

void LogCallback(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  // librdkafka syslog levels: 0..3 errors, 4 warning, 5..6 info, 7 debug.
  if (level <= 3) {
    spdlog::error("kafka {}: {}", fac, buf);
  } else if (level == 4) {
    spdlog::warn("kafka {}: {}", fac, buf);
  } else {
    spdlog::debug("kafka {}: {}", fac, buf);
  }
}

struct DeliveryState {
  std::atomic<bool> done{false};
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  int32_t partition = 0;
  int64_t offset = 0;
};

void DeliveryCallback(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* st = static_cast<DeliveryState*>(m->_private);
  if (st == nullptr) return;
  st->err = m->err;
  st->partition = m->partition;
  st->offset = m->offset;
  st->done.store(true, std::memory_order_release);
}

}  // namespace

absl::StatusOr<rd_kafka_conf_t*> MakeConf(const Config& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      // librdkafka may quote the value, which can be a secret (sasl.password): never repeat it.
      std::string why = err;
      if (!v.empty() && why.find(v) != std::string::npos) why = "invalid value";
      return absl::InvalidArgumentError(absl::StrCat("kafka setting ", k, ": ", why));
    }
  }
  rd_kafka_conf_set_log_cb(conf, LogCallback);
  return conf;
}

Config Merge(Config base, const Config& extra) {
  for (const auto& [k, v] : extra) base[k] = v;
  return base;
}


absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  constexpr size_t kMaxBytes = 1 << 20;
  auto text = lethe::ReadFile(path);
  if (!text.ok()) return text.status();
  if (text->size() > kMaxBytes) return absl::InvalidArgumentError(path + ": larger than 1 MiB");
  Config out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos || eq == 0)
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": expected name=value"));
    std::string name(absl::StripAsciiWhitespace(line.substr(0, eq)));
    std::string value(absl::StripAsciiWhitespace(line.substr(eq + 1)));
    if (name == "bootstrap.servers" || name == "group.id")
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", name,
                                                     " is set by lethe itself (use --kafka-bootstrap)"));
    out[std::move(name)] = std::move(value);
  }
  return out;
}

std::string CommandTopic(const std::string& domain) { return "lethe.commands." + domain; }

// ---- EmbeddedKafka ----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<EmbeddedKafka>> EmbeddedKafka::Start(int brokers) {
  auto conf = MakeConf({{"client.id", "lethe-embedded-kafka"}});
  if (!conf.ok()) return conf.status();
  char err[512];
  std::unique_ptr<EmbeddedKafka> k(new EmbeddedKafka());
  k->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, err, sizeof(err));
  if (k->rk_ == nullptr) return absl::InternalError(absl::StrCat("rd_kafka_new: ", err));
  k->cluster_ = rd_kafka_mock_cluster_new(k->rk_, brokers);
  if (k->cluster_ == nullptr) return absl::InternalError("cannot start the mock Kafka cluster");
  k->brokers_ = brokers;
  k->bootstrap_ = rd_kafka_mock_cluster_bootstraps(k->cluster_);
  return k;
}

EmbeddedKafka::~EmbeddedKafka() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  if (rk_) rd_kafka_destroy(rk_);
}

absl::Status EmbeddedKafka::SetBrokersUp(bool up) {
  for (int id = 1; id <= brokers_; ++id) {
    const rd_kafka_resp_err_t e =
        up ? rd_kafka_mock_broker_set_up(cluster_, id) : rd_kafka_mock_broker_set_down(cluster_, id);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
      return absl::InternalError(absl::StrCat("mock broker ", id, up ? " up: " : " down: ", rd_kafka_err2str(e)));
  }
  return absl::OkStatus();
}

absl::Status EmbeddedKafka::SetBrokersRtt(absl::Duration rtt) {
  const int64_t ms = absl::ToInt64Milliseconds(rtt);
  if (ms < 0 || ms > 600'000)
    return absl::InvalidArgumentError(absl::StrCat("rtt: ", ms, " ms is outside 0..600000"));
  for (int id = 1; id <= brokers_; ++id) {
    if (const rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_rtt(cluster_, id, static_cast<int>(ms));
        e != RD_KAFKA_RESP_ERR_NO_ERROR)
      return absl::InternalError(absl::StrCat("mock broker ", id, " rtt: ", rd_kafka_err2str(e)));
  }
  return absl::OkStatus();
}

absl::Status EmbeddedKafka::PushRequestErrors(int32_t api_key, const std::vector<int32_t>& error_codes) {
  if (api_key < 0 || api_key > 67)
    return absl::InvalidArgumentError(absl::StrCat("api_key: ", api_key, " is not a Kafka API key (0..67)"));
  if (error_codes.empty() || error_codes.size() > 64)
    return absl::InvalidArgumentError(absl::StrCat("error_codes: ", error_codes.size(), " codes, want 1..64"));
  std::vector<rd_kafka_resp_err_t> errs;
  for (int32_t c : error_codes) {
    if (c < 1 || c > 127)
      return absl::InvalidArgumentError(absl::StrCat("error_codes: ", c, " is not a Kafka error code (1..127)"));
    errs.push_back(static_cast<rd_kafka_resp_err_t>(c));
  }
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, errs.size(), errs.data());
  return absl::OkStatus();
}

absl::Status EmbeddedKafka::CreateTopic(const std::string& topic, int partitions) {
  rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
    return absl::InternalError(absl::StrCat("create topic ", topic, ": ", rd_kafka_err2str(e)));
  std::lock_guard<std::mutex> l(topics_mu_);
  topics_.emplace(topic, partitions);
  return absl::OkStatus();
}

absl::Status EmbeddedKafka::SetPartitionLeader(const std::string& topic, int32_t partition, int32_t broker_id) {
  {
    // The mock creates a topic it is asked about: only topics made here are moved.
    std::lock_guard<std::mutex> l(topics_mu_);
    auto it = topics_.find(topic);
    if (it == topics_.end())
      return absl::NotFoundError(absl::StrCat("topic: \"", Quote(topic, 40), "\" is not a topic of this cluster"));
    if (partition < 0 || partition >= it->second)
      return absl::NotFoundError(absl::StrCat("partition: ", partition, " is not a partition of ", topic, " (0..",
                                              it->second - 1, ")"));
  }
  if (broker_id < 1 || broker_id > brokers_)
    return absl::InvalidArgumentError(absl::StrCat("broker_id: ", broker_id, " is not a broker (1..", brokers_, ")"));
  const rd_kafka_resp_err_t e = rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::InternalError(absl::StrCat("move the leader of ", topic, "[", partition, "]: ", rd_kafka_err2str(e)));
  return absl::OkStatus();
}

// ---- Producer ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(const std::string& bootstrap,
                                                           const Config& extra) {
  auto conf = MakeConf(Merge({{"bootstrap.servers", bootstrap},
                              {"enable.idempotence", "true"},
                              {"acks", "all"},
                              {"linger.ms", "0"},
                              {"message.timeout.ms", "30000"}},
                             extra));
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_dr_msg_cb(*conf, DeliveryCallback);
  char err[512];
  std::unique_ptr<Producer> p(new Producer());
  p->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, err, sizeof(err));
  if (p->rk_ == nullptr) return absl::InvalidArgumentError(absl::StrCat("kafka producer: ", err));
  return p;
}

void Producer::WarmUp(const std::vector<std::string>& topics, absl::Duration timeout) {
  for (const auto& name : topics) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, name.c_str(), nullptr);
    if (t == nullptr) continue;
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e =
        rd_kafka_metadata(rk_, 0, t, &md, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_metadata_destroy(md);
    } else {
      spdlog::debug("kafka: no metadata yet for {}: {}", name, rd_kafka_err2str(e));
    }
    topics_.push_back(t);  // keeps the topic (and its partition leaders) cached
  }
}

absl::Status Producer::CheckReachable(absl::Duration timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  // all_topics = 0 and no topic: the brokers and the topics this client knows, nothing more.
  const rd_kafka_resp_err_t e =
      rd_kafka_metadata(rk_, 0, nullptr, &md, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(std::string("Kafka: no broker answered: ") + rd_kafka_err2str(e));
  const int brokers = md->broker_cnt;
  rd_kafka_metadata_destroy(md);
  if (brokers == 0) return absl::UnavailableError("Kafka: the cluster reports no broker");
  return absl::OkStatus();
}

Producer::~Producer() {
  for (rd_kafka_topic_t* t : topics_) rd_kafka_topic_destroy(t);
  if (rk_) {
    rd_kafka_flush(rk_, 5000);
    rd_kafka_destroy(rk_);
  }
}

void Producer::PurgeAll() {
  rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(rk_, 0);  // serve the purged records' delivery reports
}

absl::StatusOr<Delivered> Producer::ProduceSync(const std::string& topic,
                                                const std::optional<std::string>& key,
                                                const std::optional<std::string>& value,
                                                absl::Duration timeout) {
  std::vector<absl::StatusOr<Delivered>> one = PublishAll({Record{topic, key, value}}, timeout);
  return std::move(one.front());
}

std::vector<absl::StatusOr<Delivered>> Producer::PublishAll(const std::vector<Record>& records,
                                                            absl::Duration timeout) {
  std::vector<absl::StatusOr<Delivered>> out;
  // A deque: the states are not movable, and librdkafka holds their addresses.
  std::deque<DeliveryState> states(records.size());
  std::vector<bool> queued(records.size(), false);
  const int64_t timeout_ms = absl::ToInt64Milliseconds(timeout);
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    const void* key_ptr = r.key ? r.key->data() : nullptr;
    const size_t key_len = r.key ? r.key->size() : 0;
    void* value_ptr = r.value ? const_cast<char*>(r.value->data()) : nullptr;
    const size_t value_len = r.value ? r.value->size() : 0;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(r.topic.c_str()), RD_KAFKA_V_KEY(key_ptr, key_len),
        RD_KAFKA_V_VALUE(value_ptr, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(&states[i]), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      states[i].err = e;
      states[i].done = true;
      continue;
    }
    queued[i] = true;
  }
  // Every delivery report arrives (message.timeout.ms bounds it, and the purge below), so
  // `states` outlives the callbacks that write them.
  const absl::Time deadline = absl::Now() + timeout;
  bool purged = false;
  auto all_done = [&] {
    for (const DeliveryState& st : states)
      if (!st.done.load(std::memory_order_acquire)) return false;
    return true;
  };
  while (!all_done()) {
    rd_kafka_poll(rk_, 20);
    if (!purged && ((absl::Now() > deadline && timeout_ms > 0) || (abandon_ && abandon_()))) {
      rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      purged = true;
    }
  }
  for (size_t i = 0; i < records.size(); ++i) {
    const DeliveryState& st = states[i];
    if (st.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.push_back(absl::UnavailableError(absl::StrCat(
          queued[i] ? "kafka did not acknowledge the record on " : "produce to ", records[i].topic,
          ": ", rd_kafka_err2str(st.err))));
    } else {
      out.push_back(Delivered{st.partition, st.offset});
    }
  }
  return out;
}

// ---- Consumer ---------------------------------------------------------------------------

void ConsumerStats::Update(std::string_view json) {
  // librdkafka's statistics (STATISTICS.md): topics.<t>.partitions.<p>.consumer_lag per
  // assigned partition (-1 while unknown; partition "-1" is the unassigned placeholder), and
  // cgrp.join_state, "steady" once the group has settled with this member in it.
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return;
  int64_t sum = 0;
  bool known = false;
  if (auto topics = j.find("topics"); topics != j.end() && topics->is_object()) {
    for (const auto& [name, topic] : topics->items()) {
      auto parts = topic.find("partitions");
      if (parts == topic.end() || !parts->is_object()) continue;
      for (const auto& [id, p] : parts->items()) {
        if (id == "-1") continue;
        auto lag = p.find("consumer_lag");
        if (lag == p.end() || !lag->is_number_integer() || lag->get<int64_t>() < 0) continue;
        sum += lag->get<int64_t>();
        known = true;
      }
    }
  }
  lag_.store(known ? sum : -1);
  if (auto cgrp = j.find("cgrp"); cgrp != j.end() && cgrp->is_object()) {
    auto state = cgrp->find("state");
    auto join = cgrp->find("join_state");
    joined_.store(state != cgrp->end() && state->is_string() && *state == "up" && join != cgrp->end() &&
                  join->is_string() && *join == "steady");
  }
  // brokers.<b>.req.Fetch: the Fetch requests sent to each broker.
  if (auto brokers = j.find("brokers"); brokers != j.end() && brokers->is_object()) {
    int64_t fetches = 0;
    for (const auto& [name, b] : brokers->items()) {
      auto req = b.find("req");
      if (req == b.end() || !req->is_object()) continue;
      auto f = req->find("Fetch");
      if (f != req->end() && f->is_number_integer()) fetches += f->get<int64_t>();
    }
    fetch_requests_.store(fetches);
  }
  updates_.fetch_add(1);
}


absl::StatusOr<std::unique_ptr<Consumer>> Consumer::Create(const std::string& bootstrap,
                                                           const std::string& group,
                                                           const std::vector<std::string>& topics,
                                                           const Config& extra) {
  auto conf = MakeConf(Merge({{"bootstrap.servers", bootstrap},
                              {"group.id", group},
                              {"enable.auto.commit", "false"},
                              {"enable.auto.offset.store", "false"},
                              {"auto.offset.reset", "earliest"},
                              {"enable.partition.eof", "false"},
                              // Control traffic is sparse and latency-bound: do not let the
                              // broker hold a fetch for the default 500 ms (kFetchWait).
                              {"fetch.wait.max.ms", FetchWaitMs(kFetchWait)},
                              // lag() and joined() come from librdkafka's statistics.
                              {"statistics.interval.ms", "2000"}},
                             extra));
  if (!conf.ok()) return conf.status();
  char err[512];
  std::unique_ptr<Consumer> c(new Consumer());
  c->stats_ = std::make_unique<ConsumerStats>();
  rd_kafka_conf_set_opaque(*conf, c->stats_.get());
  rd_kafka_conf_set_stats_cb(*conf, [](rd_kafka_t*, char* json, size_t len, void* opaque) -> int {
    static_cast<ConsumerStats*>(opaque)->Update(std::string_view(json, len));
    return 0;  // librdkafka frees json
  });
  c->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, err, sizeof(err));
  if (c->rk_ == nullptr) return absl::InvalidArgumentError(absl::StrCat("kafka consumer: ", err));
  rd_kafka_poll_set_consumer(c->rk_);
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()));
  for (const auto& t : topics) rd_kafka_topic_partition_list_add(list, t.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::InvalidArgumentError(absl::StrCat("kafka subscribe: ", rd_kafka_err2str(e)));
  return c;
}

Consumer::~Consumer() {
  if (rk_) {
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
  }
}

void Consumer::Discard(std::unique_ptr<Consumer> c) {
  if (!c || c->rk_ == nullptr) return;
  rd_kafka_destroy_flags(c->rk_, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  c->rk_ = nullptr;
}

absl::StatusOr<std::optional<Message>> Consumer::Poll(absl::Duration timeout) {
  rd_kafka_message_t* m =
      rd_kafka_consumer_poll(rk_, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (m == nullptr) return std::optional<Message>();
  std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> guard(
      m, rd_kafka_message_destroy);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
      return absl::InternalError(absl::StrCat("kafka fatal error: ", rd_kafka_message_errstr(m)));
    spdlog::debug("kafka consumer: {}", rd_kafka_message_errstr(m));
    return std::optional<Message>();
  }
  Message out;
  out.topic = rd_kafka_topic_name(m->rkt);
  out.partition = m->partition;
  out.offset = m->offset;
  next_[{out.topic, out.partition}] = out.offset + 1;
  if (m->key) out.key = std::string(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) out.value = std::string(static_cast<const char*>(m->payload), m->len);
  return std::optional<Message>(std::move(out));
}

std::vector<Message> Consumer::PollBatch(absl::Duration wait, size_t max, absl::Status* error) {
  std::vector<Message> batch;
  auto polled = Poll(wait);
  while (polled.ok() && polled->has_value()) {
    batch.push_back(**std::move(polled));
    if (batch.size() >= max) break;
    polled = Poll(absl::ZeroDuration());
  }
  *error = polled.status();
  return batch;
}

absl::Status Consumer::CommitThrough(const std::vector<Message>& batch, size_t n, absl::Duration timeout) {
  std::map<int32_t, const Message*> last;
  for (size_t i = 0; i < n && i < batch.size(); ++i) last[batch[i].partition] = &batch[i];
  if (last.empty()) return absl::OkStatus();
  return CommitOffsets(last, timeout);
}

absl::Status Consumer::RewindFrom(const std::vector<Message>& batch, size_t from) {
  std::map<int32_t, const Message*> earliest;
  for (size_t i = batch.size(); i-- > from;) earliest[batch[i].partition] = &batch[i];
  absl::Status first;
  for (const auto& [partition, m] : earliest) first.Update(Rewind(*m));
  return first;
}

absl::Status Consumer::CommitOffsets(const std::map<int32_t, const Message*>& last, absl::Duration timeout) {
  PartitionList list = NewPartitionList(last.size());
  for (const auto& [partition, m] : last)
    rd_kafka_topic_partition_list_add(list.get(), m->topic.c_str(), partition)->offset = m->offset + 1;
  // Not rd_kafka_commit(async=0): it waits for the coordinator's answer without a bound. The
  // answer is posted on a queue of our own instead, polled up to `timeout`; destroying the
  // queue disables it, so an answer that comes later is dropped by librdkafka.
  std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue(rd_kafka_queue_new(rk_),
                                                                             rd_kafka_queue_destroy);
  rd_kafka_resp_err_t e = rd_kafka_commit_queue(rk_, list.get(), queue.get(), nullptr, nullptr);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(absl::StrCat("kafka offset commit: ", rd_kafka_err2str(e)));
  const int ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(timeout)));
  std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)> ev(rd_kafka_queue_poll(queue.get(), ms),
                                                                          rd_kafka_event_destroy);
  if (ev == nullptr)
    return absl::UnavailableError(absl::StrCat("kafka offset commit: the group coordinator did not answer within ",
                                               absl::FormatDuration(timeout)));
  // A partition the coordinator refused is the event's error too (librdkafka sets it to
  // a refused partition's).
  e = rd_kafka_event_error(ev.get());
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(absl::StrCat("kafka offset commit: ", rd_kafka_err2str(e)));
  return absl::OkStatus();
}

absl::Status Consumer::Pause() {
  LETHE_ASSIGN_OR_RETURN(PartitionList assigned, Assignment(rk_));
  PartitionList stop = NewPartitionList(assigned->cnt);
  for (int i = 0; i < assigned->cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = assigned->elems[i];
    if (!paused_.contains({tp.topic, tp.partition})) rd_kafka_topic_partition_list_add(stop.get(), tp.topic, tp.partition);
  }
  if (stop->cnt == 0) return absl::OkStatus();
  if (rd_kafka_resp_err_t e = rd_kafka_pause_partitions(rk_, stop.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(absl::StrCat("kafka pause: ", rd_kafka_err2str(e)));
  for (int i = 0; i < stop->cnt; ++i) {
    // Per partition: one that is no longer assigned is not paused.
    if (stop->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) paused_.insert({stop->elems[i].topic, stop->elems[i].partition});
  }
  return absl::OkStatus();
}

std::map<std::pair<std::string, int32_t>, int64_t> Consumer::NextOffsets(const rd_kafka_topic_partition_list_t& parts,
                                                                         absl::Duration timeout, absl::Status* lookup) {
  *lookup = absl::OkStatus();
  std::map<std::pair<std::string, int32_t>, int64_t> out;
  PartitionList ask = NewPartitionList(parts.cnt);
  for (int i = 0; i < parts.cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = parts.elems[i];
    if (auto it = next_.find({tp.topic, tp.partition}); it != next_.end())
      out.emplace(it->first, it->second);
    else
      rd_kafka_topic_partition_list_add(ask.get(), tp.topic, tp.partition);
  }
  const int ms = static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 1, 60'000));
  if (ask->cnt == 0) return out;
  if (rd_kafka_resp_err_t e = rd_kafka_committed(rk_, ask.get(), ms); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *lookup = absl::UnavailableError(absl::StrCat("kafka committed offsets: ", rd_kafka_err2str(e)));
  } else {
    for (int i = 0; i < ask->cnt; ++i) {
      const rd_kafka_topic_partition_t& tp = ask->elems[i];
      if (tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.offset >= 0) out[{tp.topic, tp.partition}] = tp.offset;
    }
  }
  return out;
}

absl::Status Consumer::Resume() {
  if (paused_.empty()) return absl::OkStatus();
  PartitionList list = NewPartitionList(paused_.size());
  for (const auto& [topic, partition] : paused_) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  if (rd_kafka_resp_err_t e = rd_kafka_resume_partitions(rk_, list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(absl::StrCat("kafka resume: ", rd_kafka_err2str(e)));
  // A partition librdkafka no longer knows (revoked since) starts unpaused when assigned again.
  paused_.clear();
  // librdkafka 2.0 clears the pause in its main thread and does not wake the broker's thread,
  // which then starts fetching at its next timeout, up to a second later. A seek does wake it,
  // once done, so after the resume queued before it: each partition is sought to where it
  // stands (NextOffsets). One with no such offset starts when its broker's thread next wakes.
  PartitionList resumed = NewPartitionList(list->cnt);
  for (int i = 0; i < list->cnt; ++i)
    if (list->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      rd_kafka_topic_partition_list_add(resumed.get(), list->elems[i].topic, list->elems[i].partition);
  PartitionList seek = NewPartitionList(resumed->cnt);
  absl::Status lookup;  // without the committed offsets, the partitions polled are still sought
  for (const auto& [tp, offset] : NextOffsets(*resumed, absl::Seconds(5), &lookup))
    rd_kafka_topic_partition_list_add(seek.get(), tp.first.c_str(), tp.second)->offset = offset;
  if (seek->cnt == 0) return absl::OkStatus();
  if (rd_kafka_error_t* err = rd_kafka_seek_partitions(rk_, seek.get(), 5000)) {
    std::string msg = rd_kafka_error_string(err);
    rd_kafka_error_destroy(err);
    return absl::UnavailableError("kafka seek after resume: " + msg);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Consumer::Backlog(absl::Duration timeout) {
  LETHE_ASSIGN_OR_RETURN(PartitionList assigned, Assignment(rk_));
  if (assigned->cnt == 0) return 0;
  absl::Status lookup;
  const std::map<std::pair<std::string, int32_t>, int64_t> next = NextOffsets(*assigned, timeout, &lookup);
  LETHE_RETURN_IF_ERROR(lookup);
  const int ms = static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 1, 60'000));
  int64_t backlog = 0;
  for (int i = 0; i < assigned->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = assigned->elems[i];
    int64_t low = 0, high = 0;
    if (rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk_, p.topic, p.partition, &low, &high, ms);
        e != RD_KAFKA_RESP_ERR_NO_ERROR)
      return absl::UnavailableError(absl::StrCat("kafka end offsets of ", p.topic, ": ", rd_kafka_err2str(e)));
    auto it = next.find({p.topic, p.partition});
    backlog += std::max<int64_t>(0, high - (it != next.end() ? it->second : low));
  }
  return backlog;
}

absl::Status Consumer::Rewind(const Message& m) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, m.topic.c_str(), m.partition)->offset = m.offset;
  rd_kafka_error_t* err = rd_kafka_seek_partitions(rk_, list, 5000);
  rd_kafka_topic_partition_list_destroy(list);
  if (err) {
    std::string msg = rd_kafka_error_string(err);
    rd_kafka_error_destroy(err);
    return absl::UnavailableError("kafka seek: " + msg);
  }
  next_[{m.topic, m.partition}] = m.offset;
  return absl::OkStatus();
}

std::optional<TopicRetention> DescribeTopicRetention(const std::string& bootstrap,
                                                     const std::string& topic,
                                                     absl::Duration timeout, const Config& extra) {
  auto conf = MakeConf(Merge({{"bootstrap.servers", bootstrap}}, extra));
  if (!conf.ok()) return std::nullopt;
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, err, sizeof(err));
  if (rk == nullptr) return std::nullopt;
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_ConfigResource_t* res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  rd_kafka_AdminOptions_set_request_timeout(opts, ms, err, sizeof(err));
  rd_kafka_DescribeConfigs(rk, &res, 1, opts, q);
  std::optional<TopicRetention> out;
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, ms + 500);
  if (ev != nullptr && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const rd_kafka_DescribeConfigs_result_t* r = rd_kafka_event_DescribeConfigs_result(ev);
    size_t n = 0;
    const rd_kafka_ConfigResource_t** rs = r ? rd_kafka_DescribeConfigs_result_resources(r, &n) : nullptr;
    if (n == 1 && rd_kafka_ConfigResource_error(rs[0]) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      TopicRetention t;
      size_t m = 0;
      const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(rs[0], &m);
      for (size_t i = 0; i < m; ++i) {
        const std::string name = rd_kafka_ConfigEntry_name(entries[i]);
        const char* v = rd_kafka_ConfigEntry_value(entries[i]);
        if (v == nullptr) continue;
        if (name == "cleanup.policy") t.cleanup_policy = v;
        if (name == "delete.retention.ms") t.delete_retention_ms = std::atoll(v);
        if (name == "max.compaction.lag.ms") t.max_compaction_lag_ms = std::atoll(v);
      }
      out = t;
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_ConfigResource_destroy(res);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return out;
}

absl::StatusOr<int64_t> CommittedOffset(const std::string& bootstrap, const std::string& group,
                                        const std::string& topic, int32_t partition) {
  auto conf = MakeConf({{"bootstrap.servers", bootstrap}, {"group.id", group}});
  if (!conf.ok()) return conf.status();
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, err, sizeof(err));
  if (rk == nullptr) return absl::InternalError(err);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
  rd_kafka_resp_err_t e = rd_kafka_committed(rk, list, 10000);
  int64_t off = list->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(absl::StrCat("kafka committed(): ", rd_kafka_err2str(e)));
  return off;
}

}  // namespace lethe::kafka
