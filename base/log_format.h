// How lethed and lethe-agent write their logs (--log-format text|json).
//
// json: one object per line, for log pipelines (Loki, Elasticsearch, Cloud Logging):
//   {"time":"2026-12-06T11:05:01.123Z","level":"info","service":"lethed","msg":"...",
//    "request_id":"b081…","domain":"growth","entry":7}
// request_id, domain and entry are taken from the message when it names them ("request
// <32 hex>", "domain <name>", "entry <n>"), which is how every log line of Lethe names them;
// `domain` is the agent's own for lethe-agent. Messages never hold an identity (they quote
// ids, digests and counts only), so neither does any field.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace spdlog {
class formatter;
}

namespace lethe {

enum class LogFormat { kText, kJson };

// "text" or "json"; anything else is kInvalidArgument naming --log-format.
absl::StatusOr<LogFormat> ParseLogFormat(const std::string& text);

// Sets the default logger's format. `service` names the binary; `domain`, when not empty, is
// put in every json line (the agent's domain) and in the text prefix.
void ConfigureLogging(LogFormat format, const std::string& service, const std::string& domain = "");

// The formatters themselves (for tests and bench/log_bench): one line per message.
std::unique_ptr<spdlog::formatter> MakeJsonLogFormatter(const std::string& service, const std::string& domain);
std::unique_ptr<spdlog::formatter> MakeTextLogFormatter(const std::string& service, const std::string& domain);

}  // namespace lethe
