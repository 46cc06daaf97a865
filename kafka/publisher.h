// Publisher: what the control plane's publishers (the command outbox and the consent
// publisher) need from Kafka — produce one keyed record to a topic and learn whether the
// broker acknowledged it. kafka::Producer implements it; tests use tests/fakes/fake_publisher.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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
};

}  // namespace lethe::kafka
