// Publisher: what the control plane's publishers (the command outbox and the consent
// publisher) need from Kafka — produce one keyed record to a topic and learn whether the
// broker acknowledged it. kafka::Producer implements it; tests use tests/fakes/fake_publisher.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lethe::kafka {

// Where an acknowledged record landed.
struct Delivered {
  int32_t partition = 0;
  int64_t offset = 0;
};

class Publisher {
 public:
  virtual ~Publisher() = default;
  // Produces one record to `topic` under `key` and waits up to `timeout` for the broker's
  // acknowledgement. value nullopt produces a tombstone. An error means "not delivered"
  // (kUnavailable when the broker did not acknowledge in time); the caller retries.
  virtual absl::StatusOr<Delivered> Publish(const std::string& topic,
                                            const std::optional<std::string>& key,
                                            const std::optional<std::string>& value,
                                            absl::Duration timeout) = 0;

  struct Record {
    std::string topic;
    std::optional<std::string> key;
    std::optional<std::string> value;  // nullopt: a tombstone
  };
  // Produces every record (in order) and waits up to `timeout` for all their
  // acknowledgements: one result per record, in order, each as Publish would give it. Records
  // of one partition are acknowledged in order, but after a failure later ones may still be
  // acknowledged. This default publishes one after another.
  virtual std::vector<absl::StatusOr<Delivered>> PublishAll(const std::vector<Record>& records,
                                                            absl::Duration timeout) {
    std::vector<absl::StatusOr<Delivered>> out;
    for (const Record& r : records) out.push_back(Publish(r.topic, r.key, r.value, timeout));
    return out;
  }
};

}  // namespace lethe::kafka
