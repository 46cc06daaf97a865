#include "agents/postgres_gatherer.h"

#include <openssl/crypto.h>
#include <sodium.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace lethe::agents {
namespace {

// An allocator that wipes what it frees: the part's strings, arrays and object nodes hold
// personal data, and each buffer a string or vector outgrows is freed through it too.
template <typename T>
struct GatherWipingAllocator {
  using value_type = T;
  GatherWipingAllocator() noexcept = default;
  template <typename U>
  GatherWipingAllocator(const GatherWipingAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, size_t n) noexcept {
    OPENSSL_cleanse(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const GatherWipingAllocator<U>&) const noexcept {
    return true;
  }
};

using WipedString = std::basic_string<char, std::char_traits<char>, GatherWipingAllocator<char>>;
// nlohmann::json with every allocation wiped when freed; objects keep std::map's sorted keys.
using PartJson = nlohmann::basic_json<std::map, std::vector, WipedString, bool, std::int64_t,
                                      std::uint64_t, double, GatherWipingAllocator>;

constexpr char kPartFormat[] = "lethe.access-part/1";
constexpr char kAnonymizeNote[] =
    "Only rows still keyed by the identity are included: rows already anonymized no longer "
    "name the subject.";

// Canonical text: no white space, UTF-8 as is, invalid UTF-8 replaced by U+FFFD.
WipedString CanonicalPartText(const PartJson& j) {
  return j.dump(-1, ' ', false, PartJson::error_handler_t::replace);
}

// The parameters bound to a statement: copies of identity values, wiped when done (libpq's own
// copies are not ours to wipe).
struct WipedParams {
  std::vector<std::string> values;
  ~WipedParams() {
    for (std::string& v : values)
      if (!v.empty()) OPENSSL_cleanse(v.data(), v.size());
  }
};

// How a column's value is selected and rendered.
enum class ValueRender { kBool, kInteger, kFloat4, kFloat8, kTimestampTz, kTimestamp, kDate, kBytea, kJson, kText };

ValueRender RenderFor(const std::string& base_type) {
  static const std::map<std::string, ValueRender, std::less<>> kByType = {
      {"bool", ValueRender::kBool},          {"int2", ValueRender::kInteger},     {"int4", ValueRender::kInteger},
      {"int8", ValueRender::kInteger},       {"float4", ValueRender::kFloat4},    {"float8", ValueRender::kFloat8},
      {"timestamptz", ValueRender::kTimestampTz}, {"timestamp", ValueRender::kTimestamp},
      {"date", ValueRender::kDate},          {"bytea", ValueRender::kBytea},      {"json", ValueRender::kJson},
      {"jsonb", ValueRender::kJson}};
  const auto it = kByType.find(base_type);
  return it == kByType.end() ? ValueRender::kText : it->second;  // numeric too: its exact text
}

struct GatherColumn {
  std::string name;       // attname
  std::string type;       // pg_type.typname of the column's type
  std::string sql_type;   // format_type(atttypid, atttypmod)
  ValueRender render = ValueRender::kText;  // by the base type, for a domain
};

// The table's columns in order, each with its type and, for a domain, its base type (through
// domains over domains).
std::vector<GatherColumn> GatherColumns(pqxx::transaction_base& tx, const std::string& qualified) {
  const pqxx::result r = tx.exec_params(
      "SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod), "
      "  (WITH RECURSIVE d(typtype, typbasetype, typname) AS ("
      "     SELECT t.typtype, t.typbasetype, t.typname "
      "     UNION ALL SELECT b.typtype, b.typbasetype, b.typname "
      "       FROM pg_type b JOIN d ON b.oid = d.typbasetype WHERE d.typtype = 'd') "
      "   SELECT d.typname FROM d WHERE d.typtype <> 'd') "
      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
      "ORDER BY a.attnum",
      qualified);
  std::vector<GatherColumn> out;
  for (const auto& row : r) {
    GatherColumn c;
    c.name = row[0].as<std::string>();
    c.type = row[1].as<std::string>();
    c.sql_type = row[2].as<std::string>();
    c.render = RenderFor(row[3].is_null() ? c.type : row[3].as<std::string>());
    out.push_back(std::move(c));
  }
  return out;
}

// A timestamp (without time zone) expression `ts` as ISO 8601 text with microseconds,
// followed by `suffix`, and " BC" before year 1.
std::string IsoTimestamp(const std::string& ts, const std::string& suffix) {
  return absl::StrCat("to_char(", ts, ", 'YYYY-MM-DD\"T\"HH24:MI:SS.US", suffix, "') || CASE WHEN ",
                      ts, " < timestamp '0001-01-01' THEN ' BC' ELSE '' END");
}

// The SQL that selects `c` (quoted `q`) as text for its ValueRender, whatever the session's settings.
std::string SelectExpression(const GatherColumn& c, const std::string& q) {
  // 'infinity' and '-infinity' of the three date and time types, spelled out; NULL stays NULL
  // (no branch holds).
  auto infinite = [&](const std::string& finite, const char* type) {
    return absl::StrCat("CASE WHEN isfinite(", q, ") THEN ", finite, " WHEN ", q, " > ", type,
                        " 'epoch' THEN 'infinity' WHEN ", q, " < ", type, " 'epoch' THEN '-infinity' END");
  };
  switch (c.render) {
    case ValueRender::kFloat4:  // the IEEE bits, independent of extra_float_digits
      return absl::StrCat("encode(float4send(", q, "), 'hex')");
    case ValueRender::kFloat8:
      return absl::StrCat("encode(float8send(", q, "), 'hex')");
    case ValueRender::kTimestampTz:  // UTC, whatever the session's TimeZone
      return infinite(IsoTimestamp(absl::StrCat("(", q, " AT TIME ZONE 'UTC')"), "\"Z\""),
                      "timestamptz");
    case ValueRender::kTimestamp:
      return infinite(IsoTimestamp(q, ""), "timestamp");
    case ValueRender::kDate:
      return infinite(absl::StrCat("to_char(", q, ", 'YYYY-MM-DD') || CASE WHEN ", q,
                                   " < date '0001-01-01' THEN ' BC' ELSE '' END"),
                      "date");
    case ValueRender::kBytea:  // independent of bytea_output
      return absl::StrCat("encode(", q, ", 'hex')");
    case ValueRender::kBool:
    case ValueRender::kInteger:
    case ValueRender::kJson:
    case ValueRender::kText:
      // The column itself: libpq hands over the type's output text. Not col::text, which for
      // some types is a cast function of its own: inet's adds the netmask ("192.0.2.1/32"),
      // char(n)'s drops the padding, bool's spells "true".
      return q;
  }
  return q;
}

int GatherHexDigit(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

// Lower-case hex from encode(..., 'hex') as raw bytes; false when it is not hex.
bool FromGatherHex(std::string_view hex, WipedString& out) {
  if (hex.size() % 2 != 0) return false;
  out.clear();
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = GatherHexDigit(hex[i]), lo = GatherHexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

PartJson NonFiniteFloat(double v) {
  if (std::isnan(v)) return PartJson("NaN");
  return PartJson(v > 0 ? "Infinity" : "-Infinity");
}

// The big-endian IEEE bits of float4send/float8send, hex, as a JSON number or string.
PartJson RenderFloat(std::string_view hex, bool single) {
  WipedString bits;
  if (!FromGatherHex(hex, bits) || bits.size() != (single ? 4u : 8u))
    throw std::runtime_error("unexpected float encoding from PostgreSQL");
  uint64_t u = 0;
  for (char b : bits) u = (u << 8) | static_cast<unsigned char>(b);
  if (!single) {
    const double d = std::bit_cast<double>(u);
    return std::isfinite(d) ? PartJson(d) : NonFiniteFloat(d);
  }
  const float f = std::bit_cast<float>(static_cast<uint32_t>(u));
  if (!std::isfinite(f)) return NonFiniteFloat(f);
  // The shortest decimal that reads back as this float4, then the double nearest to it: 0.1
  // stays 0.1 instead of the float's exact 0.100000001490116...
  char text[64];
  const auto [end, ec] = std::to_chars(text, text + sizeof(text), f);
  double d = f;
  if (ec == std::errc()) std::from_chars(text, end, d);
  OPENSSL_cleanse(text, sizeof(text));
  return PartJson(d);
}

PartJson RenderBytea(std::string_view hex) {
  WipedString raw;
  if (!FromGatherHex(hex, raw)) throw std::runtime_error("unexpected bytea encoding from PostgreSQL");
  WipedString b64(sodium_base64_ENCODED_LEN(raw.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                    raw.size(), sodium_base64_VARIANT_ORIGINAL);
  b64.resize(b64.size() - 1);  // the terminating NUL
  return PartJson(std::move(b64));
}

PartJson RenderValue(const pqxx::field& f, ValueRender render) {
  if (f.is_null()) return PartJson(nullptr);
  const std::string_view text(f.c_str(), f.size());
  switch (render) {
    case ValueRender::kBool:  // bool's output: "t" or "f"
      return PartJson(text == "t");
    case ValueRender::kInteger: {
      int64_t v = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec == std::errc() && end == text.data() + text.size()) return PartJson(v);
      break;  // cannot happen for int2/4/8; keep the text
    }
    case ValueRender::kFloat4:
    case ValueRender::kFloat8:
      return RenderFloat(text, render == ValueRender::kFloat4);
    case ValueRender::kBytea:
      return RenderBytea(text);
    case ValueRender::kJson: {
      PartJson parsed = PartJson::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_discarded()) return parsed;
      break;  // not JSON nlohmann can hold (a number beyond a double, say): the text
    }
    case ValueRender::kTimestampTz:
    case ValueRender::kTimestamp:
    case ValueRender::kDate:
    case ValueRender::kText:
      break;
  }
  return PartJson(WipedString(text));
}

// One table's object: its policy fields, its columns and the subject's rows, sorted.
PartJson GatherTable(pqxx::transaction_base& tx, const policies::Table& t, const OpenedIdentities& ids,
                     GatheredTable& summary) {
  const std::string qualified = tx.quote_name(t.schema) + "." + tx.quote_name(t.name);
  const std::string key = tx.quote_name(t.key_column);
  const std::vector<GatherColumn> columns = GatherColumns(tx, qualified);

  PartJson table = PartJson::object();
  table["table"] = t.QualifiedName();
  table["action"] = policies::Table::ActionName(t.action);
  table["identity"] = t.identity;
  table["key_column"] = t.key_column;
  table["match"] = policies::MatchName(t.match);
  if (t.action == policies::TableAction::kRetain) {
    table["basis"] = t.basis;
    table["retention_period_seconds"] = absl::ToInt64Seconds(t.period);
  }
  if (t.action == policies::TableAction::kAnonymize) {
    PartJson set = PartJson::array();
    for (const auto& rw : t.set) set.push_back(rw.column);
    table["anonymized_columns"] = std::move(set);
    table["note"] = kAnonymizeNote;
  }
  PartJson cols = PartJson::array();
  for (const GatherColumn& c : columns)
    cols.push_back(PartJson{{"name", c.name}, {"type", c.type}, {"sql_type", c.sql_type}});
  table["columns"] = std::move(cols);

  // The subject's rows: one comparison per identity of the table's type, as the purge makes
  // it (ApplyToTable, postgres_purger.cc), ORed, so that a row two identities match is one row.
  WipedParams params;
  params.values.reserve(ids.identities().size());  // no reallocation leaves a copy behind
  std::vector<std::string> conditions;
  for (const auto& id : ids.identities()) {
    if (id.type != t.identity) continue;
    // The one place this file reads an identity value: it is bound as a parameter.
    params.values.emplace_back(RevealSecret(id.value));
    const std::string p = absl::StrCat("$", params.values.size());
    conditions.push_back(t.match == policies::Match::kCaseInsensitive
                             ? absl::StrCat("lower(", key, "::text) = lower(", p, "::text)")
                             : absl::StrCat(key, " = ", p));
  }
  std::vector<std::pair<WipedString, PartJson>> rows;  // (canonical text, row)
  if (!conditions.empty()) {
    std::vector<std::string> selects;
    for (const GatherColumn& c : columns) selects.push_back(SelectExpression(c, tx.quote_name(c.name)));
    const std::string sql =
        absl::StrCat("SELECT ", absl::StrJoin(selects, ", "), " FROM ", qualified, " WHERE (",
                     absl::StrJoin(conditions, ") OR ("), ")");
    const pqxx::result r = tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params.values));
    rows.reserve(r.size());
    for (const auto& row : r) {
      PartJson obj = PartJson::object();
      for (size_t i = 0; i < columns.size(); ++i) {
        const pqxx::field f = row[static_cast<pqxx::row::size_type>(i)];
        obj[WipedString(columns[i].name)] = RenderValue(f, columns[i].render);
      }
      WipedString text = CanonicalPartText(obj);
      rows.emplace_back(std::move(text), std::move(obj));
    }
  }
  // Sorted by their canonical text: the same data gives the same bytes, whatever order the
  // server returned the rows in.
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  PartJson out_rows = PartJson::array();
  for (auto& [text, row] : rows) out_rows.push_back(std::move(row));
  table["rows"] = std::move(out_rows);
  table["row_count"] = static_cast<int64_t>(rows.size());
  table["searched"] = !conditions.empty();

  summary.table = t.QualifiedName();
  summary.rows = static_cast<int64_t>(rows.size());
  summary.searched = !conditions.empty();
  return table;
}

}  // namespace

GatheredPart GatherSubject(pqxx::transaction_base& tx, const policies::Domain& domain,
                           const OpenedIdentities& ids, const std::vector<TopicKeys>& topics,
                           const PartHeader& header) {
  if (header.domain != domain.name)
    throw std::invalid_argument("the part's header names domain " + header.domain +
                                ", but the policy section is domain " + domain.name);
  GatheredPart part;
  PartJson doc = PartJson::object();
  doc["format"] = kPartFormat;
  doc["request_id"] = header.request_id;
  doc["command_id"] = header.command_id;
  doc["domain"] = header.domain;
  doc["gathered_at"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", header.gathered_at, absl::UTCTimeZone());
  {
    WipedString salt(sodium_base64_ENCODED_LEN(header.salt.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(salt.data(), salt.size(), reinterpret_cast<const unsigned char*>(header.salt.data()),
                      header.salt.size(), sodium_base64_VARIANT_ORIGINAL);
    salt.resize(salt.size() - 1);
    doc["salt"] = std::move(salt);
  }

  PartJson tables = PartJson::array();
  for (const policies::Table& t : domain.tables) {
    GatheredTable summary;
    tables.push_back(GatherTable(tx, t, ids, summary));
    part.tables.push_back(std::move(summary));
  }
  doc["tables"] = std::move(tables);

  PartJson topic_list = PartJson::array();
  for (const TopicKeys& tk : topics) {
    std::vector<WipedString> keys;
    keys.reserve(tk.keys.size());
    for (const SecretBytes& k : tk.keys) keys.emplace_back(RevealSecret(k));  // the raw key
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    PartJson key_list = PartJson::array();
    for (WipedString& k : keys) key_list.push_back(std::move(k));
    topic_list.push_back(PartJson{{"topic", tk.topic}, {"keys", std::move(key_list)}});
  }
  doc["topics"] = std::move(topic_list);

  const WipedString text = CanonicalPartText(doc);
  part.json = SecretBytes(std::string(text.data(), text.size()));
  return part;
}

}  // namespace lethe::agents
