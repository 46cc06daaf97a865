// Internal to lethe_kafka: librdkafka configuration objects built from name=value settings.
#pragma once

#include <librdkafka/rdkafka.h>

#include "absl/status/statusor.h"
#include "kafka/kafka.h"

namespace lethe::kafka {

// A configuration with every setting applied and librdkafka's log routed to spdlog. An invalid
// setting is kInvalidArgument naming it, never its value (sasl.password may be one).
absl::StatusOr<rd_kafka_conf_t*> MakeConf(const Config& settings);
// `base` with every entry of `extra` set over it.
Config Merge(Config base, const Config& extra);

}  // namespace lethe::kafka
