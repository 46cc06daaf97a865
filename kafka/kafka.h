// Thin, Status-returning wrappers over librdkafka's C API, shared by lethed and lethe-agent.
// The same code talks to a production Kafka cluster or to the embedded mock cluster: only
// the bootstrap address differs.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/publisher.h"

struct rd_kafka_mock_cluster_s;

namespace lethe::kafka {

// How long a broker may hold a consumer's fetch while it has nothing to send
// (fetch.wait.max.ms). A real broker answers as soon as a record arrives, so against one this
// only paces idle polling. The embedded broker (librdkafka's mock cluster) holds every empty
// fetch for the whole wait, so against it the wait is the latency of each hop: its clients
// use the short one, which costs an idle consumer about 1000/wait fetches a second.
inline constexpr absl::Duration kFetchWait = absl::Milliseconds(100);
inline constexpr absl::Duration kEmbeddedFetchWait = absl::Milliseconds(10);
// How long an offset commit may wait for the group coordinator. librdkafka's synchronous
// commit waits without a bound: a coordinator that went away with the request in its queue
// held an agent's loop for minutes, so it never read the bootstrap file naming the new
// cluster (found by the chaos run).
inline constexpr absl::Duration kCommitTimeout = absl::Seconds(10);
// The wait as the fetch.wait.max.ms property's value.
inline std::string FetchWaitMs(absl::Duration wait) {
  return std::to_string(absl::ToInt64Milliseconds(wait));
}

using Config = std::map<std::string, std::string>;

// Reads librdkafka properties (`--kafka-config FILE`): one `name=value` per line; blank lines
// and lines starting with '#' are skipped; whitespace around name and value is trimmed.
// Values are passed through untouched (security.protocol, ssl.*, sasl.*); they are never
// logged, since sasl.password and ssl.key.password are secrets. Errors name the file and line.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

struct Message {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;  // nullopt for a tombstone
};

// librdkafka's mock cluster, in this process: a broker speaking the Kafka protocol on
// loopback. Data lives in memory and dies with the object.
class EmbeddedKafka {
 public:
  static absl::StatusOr<std::unique_ptr<EmbeddedKafka>> Start(int brokers = 1);
  ~EmbeddedKafka();
  const std::string& bootstrap() const { return bootstrap_; }
  absl::Status CreateTopic(const std::string& topic, int partitions);
  // Fault injection (tests): takes every broker of the cluster down (its connections closed,
  // new ones refused) or brings them back up.
  absl::Status SetBrokersUp(bool up);
  // Fault injection (tests): every broker answers each request `rtt` late (0 for no delay).
  // kInvalidArgument outside 0..10 minutes.
  absl::Status SetBrokersRtt(absl::Duration rtt);
  // Fault injection (tests): the cluster answers the next requests of Kafka API `api_key`
  // with these error codes, one request each, in order. kInvalidArgument for an API key
  // outside 0..67, no codes, more than 64, or a code outside 1..127.
  absl::Status PushRequestErrors(int32_t api_key, const std::vector<int32_t>& error_codes);
  // Fault injection (tests): makes broker `broker_id` (1..the brokers Start made) the leader of
  // a partition of a topic made by CreateTopic. kNotFound for any other topic or partition.
  absl::Status SetPartitionLeader(const std::string& topic, int32_t partition, int32_t broker_id);

 private:
  EmbeddedKafka() = default;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  int brokers_ = 0;
  std::string bootstrap_;
  mutable std::mutex topics_mu_;
  std::map<std::string, int> topics_;  // made by CreateTopic: partitions
};

// Thread safety: ProduceSync may be called concurrently from several threads (each call waits
// for its own delivery report), but a call that times out purges every record still queued,
// so concurrent calls may then fail with kUnavailable too. WarmUp is not thread-safe: call it
// after Create, before the producer is shared.
class Producer : public Publisher {
 public:
  // Idempotent producer with acks=all. `extra` overrides defaults.
  static absl::StatusOr<std::unique_ptr<Producer>> Create(const std::string& bootstrap,
                                                          const Config& extra = {});
  ~Producer() override;
  // Publisher: ProduceSync.
  absl::StatusOr<Delivered> Publish(const std::string& topic, const std::optional<std::string>& key,
                                    const std::optional<std::string>& value,
                                    absl::Duration timeout) override {
    return ProduceSync(topic, key, value, timeout);
  }
  // Produces one record and waits for the broker's acknowledgement. value nullopt produces
  // a tombstone. kUnavailable when the broker did not acknowledge in time.
  absl::StatusOr<Delivered> ProduceSync(const std::string& topic,
                                        const std::optional<std::string>& key,
                                        const std::optional<std::string>& value,
                                        absl::Duration timeout = absl::Seconds(30));
  // Publisher: produces every record at once and waits for all the acknowledgements, so that
  // they travel in as few produce requests as the broker allows.
  std::vector<absl::StatusOr<Delivered>> PublishAll(const std::vector<Record>& records,
                                                    absl::Duration timeout) override;
  // Fetches the topics' metadata now, so that the first record to each is not held back
  // until librdkafka's next periodic topic scan (about a second). Failures are harmless.
  void WarmUp(const std::vector<std::string>& topics, absl::Duration timeout = absl::Seconds(5));
  // Whether a broker answers a metadata request within `timeout` (kUnavailable otherwise):
  // what lethed's health service reports as Kafka being reachable.
  absl::Status CheckReachable(absl::Duration timeout);
  // While PublishAll (and ProduceSync) waits for acknowledgements it asks `abandon` at every
  // poll (20 ms); true purges what is still queued or in flight and ends the wait, those
  // records failing with kUnavailable. For a client whose cluster may be replaced (an agent
  // following lethed's embedded broker), so that it does not wait out message.timeout.ms on
  // a broker that is gone. Set it before the producer is shared.
  void SetAbandon(std::function<bool()> abandon) { abandon_ = std::move(abandon); }
  // Drops every record still queued or in flight without waiting, so that destroying the
  // producer does not wait for a broker that is gone.
  void PurgeAll();

 private:
  Producer() = default;
  rd_kafka_t* rk_ = nullptr;
  std::function<bool()> abandon_;
  std::vector<rd_kafka_topic_t*> topics_;
};

// What a consumer's statistics say, updated every statistics.interval.ms (2 s by default)
// while it polls; read from any thread.
class ConsumerStats {
 public:
  // Parses one librdkafka statistics document; anything unexpected leaves a value as it was.
  void Update(std::string_view json);
  // Messages on the assigned partitions past the committed offsets; -1 while unknown.
  int64_t lag() const { return lag_.load(); }
  // Whether the consumer is a member of its group with the group settled (its assignment,
  // possibly empty, received).
  bool joined() const { return joined_.load(); }
  // Fetch requests sent so far, over every broker; -1 until the first statistics.
  int64_t fetch_requests() const { return fetch_requests_.load(); }
  // Statistics documents parsed so far.
  uint64_t updates() const { return updates_.load(); }

 private:
  std::atomic<int64_t> lag_{-1};
  std::atomic<bool> joined_{false};
  std::atomic<int64_t> fetch_requests_{-1};
  std::atomic<uint64_t> updates_{0};
};

// Thread safety: not thread-safe; Poll, Commit and Rewind are called from one thread (the
// loop that owns the consumer), never concurrently. stats() may be read from any thread.
class Consumer {
 public:
  // A member of consumer group `group`, subscribed to `topics`, with automatic offset
  // commits off: offsets move only through CommitThrough().
  static absl::StatusOr<std::unique_ptr<Consumer>> Create(const std::string& bootstrap,
                                                          const std::string& group,
                                                          const std::vector<std::string>& topics,
                                                          const Config& extra = {});
  ~Consumer();  // leaves the group
  // Destroys `c` without leaving its group: for a consumer whose broker is gone (a restarted
  // embedded broker), where leaving would wait for an answer that never comes.
  static void Discard(std::unique_ptr<Consumer> c);
  // Waits up to `timeout` for a message; nullopt when none came. Transient broker errors are
  // logged and reported as nullopt; fatal ones as an error.
  absl::StatusOr<std::optional<Message>> Poll(absl::Duration timeout);
  // Rewinds m's partition so that m is delivered again.
  absl::Status Rewind(const Message& m);

  // For loops that take several messages at a time. PollBatch waits up to `wait` for the
  // first message, then takes what is already fetched, up to `max` in all; a fatal error
  // ends the batch and is put in *error (what came before it is returned).
  std::vector<Message> PollBatch(absl::Duration wait, size_t max, absl::Status* error);
  // Commits, per partition, the last message of batch[0, n), in one request, and waits up to
  // `timeout` for the broker. kUnavailable when it did not answer in time (the commit may still
  // land later: the offsets are those of handled messages, so either outcome is safe) or
  // refused any partition.
  absl::Status CommitThrough(const std::vector<Message>& batch, size_t n,
                             absl::Duration timeout = kCommitTimeout);
  // Rewinds each partition to its first message in batch[from, end), so that everything
  // from there is delivered again; the first error, if any.
  absl::Status RewindFrom(const std::vector<Message>& batch, size_t from);

  // Pause stops fetching the partitions assigned now: the broker is asked nothing for them
  // until Resume, which fetches them again from the message after the last one polled.
  // Partitions assigned later (a rebalance) are fetched until the next Pause. Resume touches
  // only the partitions Pause stopped (librdkafka 2.0 may re-read from an older offset when
  // resuming one that was not paused). Both are local to this client and cheap.
  absl::Status Pause();
  absl::Status Resume();
  // Whether Pause has partitions stopped that Resume has not restarted.
  bool paused() const { return !paused_.empty(); }
  // The messages on the assigned partitions past this consumer's position (NextOffsets; the
  // partition's first without one), from
  // the partitions' end offsets asked of their leaders now: one ListOffsets request each,
  // paused or not. 0 with nothing assigned.
  absl::StatusOr<int64_t> Backlog(absl::Duration timeout);

  const ConsumerStats& stats() const { return *stats_; }

 private:
  Consumer() = default;
  absl::Status CommitOffsets(const std::map<int32_t, const Message*>& last, absl::Duration timeout);
  // Where each of `parts` goes on: the message after the last one polled or rewound to (next_);
  // for a partition with none, its committed offset (asked of the coordinator, up to
  // `timeout`; *lookup is its error, if any). A partition with neither is left out.
  std::map<std::pair<std::string, int32_t>, int64_t> NextOffsets(const rd_kafka_topic_partition_list_t& parts,
                                                                 absl::Duration timeout, absl::Status* lookup);
  rd_kafka_t* rk_ = nullptr;
  std::unique_ptr<ConsumerStats> stats_;
  std::set<std::pair<std::string, int32_t>> paused_;  // (topic, partition) stopped by Pause
  // Per (topic, partition): the offset of the message after the last one polled, or of the
  // one rewound to since. Where Resume seeks to.
  std::map<std::pair<std::string, int32_t>, int64_t> next_;
};

// The settings of `topic` that bound how long erased records may linger. nullopt when the
// broker does not answer within `timeout` (librdkafka's mock cluster never does).
struct TopicRetention {
  std::string cleanup_policy;
  int64_t delete_retention_ms = -1;
  int64_t max_compaction_lag_ms = -1;
};
std::optional<TopicRetention> DescribeTopicRetention(const std::string& bootstrap,
                                                     const std::string& topic,
                                                     absl::Duration timeout,
                                                     const Config& extra = {});

// Committed offset of `group` on topic/partition, read without joining the group; -1001
// (RD_KAFKA_OFFSET_INVALID) when nothing was committed. For tests and operators.
absl::StatusOr<int64_t> CommittedOffset(const std::string& bootstrap, const std::string& group,
                                        const std::string& topic, int32_t partition);

std::string CommandTopic(const std::string& domain);  // "lethe.commands.<domain>"
inline constexpr char kReceiptTopic[] = "lethe.receipts";
// Compacted topic with the current consent per subject identity and purpose (ConsentState).
inline constexpr char kConsentTopic[] = "lethe.consent";

}  // namespace lethe::kafka
