#include "base/log_format.h"

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

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Whether a word (ECMAScript regex \b) boundary lies before s[i].
bool BoundaryAt(std::string_view s, size_t i) {
  const bool before = i > 0 && IsWordChar(s[i - 1]);
  const bool after = i < s.size() && IsWordChar(s[i]);
  return before != after;
}

// The first value that follows `keyword` (a word, then one space) in `s`, with a double quote
// between them if `quoted` allows one, where `value_at` takes a value starting at a position
// (the length it matched, or 0). The keyword must start a word. This is what the pattern
// \b<keyword> "?(<value>) finds, searched from the left, without std::regex: with it the json
// formatter took 16-33 us a line (three searches; bench/log_bench), most of a line's cost.
std::string_view FirstAfter(std::string_view s, std::string_view keyword, bool quoted,
                            size_t (*value_at)(std::string_view, size_t)) {
  for (size_t at = s.find(keyword); at != std::string_view::npos; at = s.find(keyword, at + 1)) {
    if (!BoundaryAt(s, at)) continue;
    size_t v = at + keyword.size();
    if (quoted && v < s.size() && s[v] == '"') ++v;
    if (const size_t n = value_at(s, v); n > 0) return s.substr(v, n);
  }
  return {};
}

// [0-9a-f]{32}\b: a request id.
size_t RequestIdAt(std::string_view s, size_t v) {
  if (s.size() - v < 32) return 0;
  for (size_t i = v; i < v + 32; ++i)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return BoundaryAt(s, v + 32) ? 32 : 0;
}

// [a-z0-9_-]{1,200}\b, longest first: a domain name.
size_t DomainAt(std::string_view s, size_t v) {
  auto in_name = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; };
  size_t n = 0;
  while (n < 200 && v + n < s.size() && in_name(s[v + n])) ++n;
  for (; n > 0; --n)
    if (BoundaryAt(s, v + n)) return n;
  return 0;
}

// [0-9]{1,20}\b: a ledger entry.
size_t EntryAt(std::string_view s, size_t v) {
  size_t n = 0;
  while (n < 20 && v + n < s.size() && s[v + n] >= '0' && s[v + n] <= '9') ++n;
  return n > 0 && BoundaryAt(s, v + n) ? n : 0;
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
    if (auto id = FirstAfter(text, "request ", true, RequestIdAt); !id.empty())
      line.append(",\"request_id\":\"").append(id).append("\"");
    if (!domain_.empty()) {
      line += ",\"domain\":\"";
      AppendEscaped(line, domain_);
      line += "\"";
    } else if (auto d = FirstAfter(text, "domain ", true, DomainAt); !d.empty()) {
      line.append(",\"domain\":\"").append(d).append("\"");
    }
    if (auto e = FirstAfter(text, "entry ", false, EntryAt); !e.empty()) {
      // A json number has no leading zeros.
      while (e.size() > 1 && e.front() == '0') e.remove_prefix(1);
      line.append(",\"entry\":").append(e);
    }
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

std::unique_ptr<spdlog::formatter> MakeTextLogFormatter(const std::string& service, const std::string& domain) {
  const std::string who = domain.empty() ? service : absl::StrCat(service, "[", domain, "]");
  return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ " + who + ": %v",
                                                     spdlog::pattern_time_type::utc);
}

void ConfigureLogging(LogFormat format, const std::string& service, const std::string& domain) {
  spdlog::set_formatter(format == LogFormat::kJson ? MakeJsonLogFormatter(service, domain)
                                                   : MakeTextLogFormatter(service, domain));
}

}  // namespace lethe
