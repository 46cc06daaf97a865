#include "base/log_format.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "spdlog/formatter.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/spdlog.h"

namespace lethe {
namespace {

// JSON string escaping (RFC 8259 §7): quote, backslash and control characters.
void AppendEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

class JsonFormatter : public spdlog::formatter {
 public:
  JsonFormatter(std::string service, std::string domain) : service_(std::move(service)), domain_(std::move(domain)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    const auto since_epoch = msg.time.time_since_epoch();
    const absl::Time t = absl::FromChrono(std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch)));
    std::string line = "{\"time\":\"";
    line += absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
    line += "\",\"level\":\"";
    const auto lv = spdlog::level::to_string_view(msg.level);
    line.append(lv.data(), lv.size());
    line += "\",\"service\":\"";
    AppendEscaped(line, service_);
    line += "\",\"msg\":\"";
    AppendEscaped(line, text);
    line += "\"";
    std::string s(text);
    std::smatch m;
    static const std::regex kRequest("\\brequest \"?([0-9a-f]{32})\\b");
    static const std::regex kDomain("\\bdomain \"?([a-z0-9_-]{1,200})\\b");
    static const std::regex kEntry("\\bentry ([0-9]{1,20})\\b");
    if (std::regex_search(s, m, kRequest)) absl::StrAppend(&line, ",\"request_id\":\"", m[1].str(), "\"");
    if (!domain_.empty()) {
      line += ",\"domain\":\"";
      AppendEscaped(line, domain_);
      line += "\"";
    } else if (std::regex_search(s, m, kDomain)) {
      absl::StrAppend(&line, ",\"domain\":\"", m[1].str(), "\"");
    }
    if (std::regex_search(s, m, kEntry)) absl::StrAppend(&line, ",\"entry\":", m[1].str());
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(service_, domain_);
  }

 private:
  const std::string service_;
  const std::string domain_;
};

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(const std::string& text) {
  if (text == "text") return LogFormat::kText;
  if (text == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("--log-format: \"", text.substr(0, 16), "\" is not a log format (text or json)"));
}

std::unique_ptr<spdlog::formatter> MakeJsonLogFormatter(const std::string& service, const std::string& domain) {
  return std::make_unique<JsonFormatter>(service, domain);
}

void ConfigureLogging(LogFormat format, const std::string& service, const std::string& domain) {
  if (format == LogFormat::kJson) {
    spdlog::set_formatter(MakeJsonLogFormatter(service, domain));
    return;
  }
  const std::string who = domain.empty() ? service : absl::StrCat(service, "[", domain, "]");
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ " + who + ": %v", spdlog::pattern_time_type::utc);
}

}  // namespace lethe
