// The YAML reader behind Policy::Parse and Policy::Validate.
//
// It walks the yaml-cpp node tree once and records every problem it meets, each at the
// position of the node at fault, instead of stopping at the first. It reads nodes only
// through Type(), Scalar(), Mark() and iteration, none of which throws on a parsed tree;
// yaml-cpp's parser does throw, and BuildPolicy catches that (and anything else) at the edge.
#include "policies/policy_builder.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "base/utf8.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace lethe::policies {

// Where in the file a value was written. Outside the anonymous namespace because PolicyBuilder
// (a friend of Policy, so not in it) keeps positions in a field.
struct Position {
  int line = 0;  // 1-based; 0 when unknown
  int column = 0;
};

namespace {

constexpr size_t kMaxDomainNameLength = 200;  // the topic lethe.commands.<name> must fit
constexpr size_t kMaxIdentifierLength = 63;   // PostgreSQL truncates longer names
constexpr int64_t kMaxDurationCount = 1'000'000;
constexpr char kDurationForms[] = "expected <n>h, <n>d, <n>w or <n>y";
constexpr char kIdentifierRule[] = "[A-Za-z_][A-Za-z0-9_]* (at most 63 characters)";
constexpr char kLowerNameRule[] = "lowercase letters, digits, _ and - ([a-z0-9_-]+)";
constexpr size_t kMaxBasisLength = 500;      // characters (code points)
constexpr size_t kMaxTopicNameLength = 249;  // Kafka's own limit
constexpr size_t kMaxKeyTemplateLength = 1000;
constexpr char kTopicNameRule[] =
    "[A-Za-z0-9._-]+ (at most 249 characters, and not \".\" or \"..\")";
constexpr char kActions[] = "delete, anonymize or retain";
constexpr char kBucketNameRule[] =
    "3 to 63 of [a-z0-9.-], starting and ending with a letter or digit";
constexpr char kSetForm[] = "a map of column: null | hash | \"constant\"";

Position PositionOf(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

// A value for a message: quoted, control characters escaped (one diagnostic stays on one
// line), long values cut short at a character boundary.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (i >= kMaxShown && (c & 0xC0) != 0x80) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

// What a node is, for "..., got <this>" messages.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// [a-z0-9_]+, or [a-z0-9_-]+ with allow_dash.
bool IsLowerName(std::string_view s, bool allow_dash) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [allow_dash](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || (allow_dash && c == '-');
  });
}

// [A-Za-z_][A-Za-z0-9_]*, at most 63 characters: safe to splice into SQL as an identifier.
bool IsIdentifier(std::string_view s) {
  if (s.empty() || s.size() > kMaxIdentifierLength) return false;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!letter(s[0])) return false;
  return std::all_of(s.begin() + 1, s.end(),
                     [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

// "[schema.]name" into its parts; the schema defaults to "public".
bool SplitTableName(const std::string& s, std::string* schema, std::string* name) {
  const size_t dot = s.find('.');
  if (dot == std::string::npos) {
    if (!IsIdentifier(s)) return false;
    *schema = "public";
    *name = s;
    return true;
  }
  std::string first = s.substr(0, dot);
  std::string second = s.substr(dot + 1);  // a second dot makes this part invalid
  if (!IsIdentifier(first) || !IsIdentifier(second)) return false;
  *schema = std::move(first);
  *name = std::move(second);
  return true;
}

// A Kafka topic name: [A-Za-z0-9._-]+, at most 249 characters, not "." or "..".
bool IsTopicName(std::string_view s) {
  if (s.empty() || s.size() > kMaxTopicNameLength || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// An S3 bucket name as AWS allows it for new buckets: 3 to 63 characters of [a-z0-9.-],
// starting and ending with a letter or digit, no "..".
bool IsBucketName(std::string_view s) {
  if (s.size() < 3 || s.size() > 63 || s.find("..") != std::string_view::npos) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '.' || c == '-'; });
}

// An S3 endpoint: "http://" or "https://", a host ([A-Za-z0-9.-]+ or a bracketed IPv6
// address), an optional ":port" (1-65535) and at most a trailing "/". Returns it without the
// trailing "/", or "" when it is not one.
std::string CanonicalEndpoint(std::string_view s) {
  std::string_view rest = s;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else {
    return "";
  }
  if (rest.ends_with("/")) rest.remove_suffix(1);
  size_t host_end = 0;
  if (!rest.empty() && rest[0] == '[') {
    host_end = rest.find(']');
    if (host_end == std::string_view::npos || host_end == 1) return "";
    for (char c : rest.substr(1, host_end - 1)) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return "";
    }
    ++host_end;
  } else {
    while (host_end < rest.size() && (absl::ascii_isalnum(static_cast<unsigned char>(rest[host_end])) ||
                                      rest[host_end] == '.' || rest[host_end] == '-')) {
      ++host_end;
    }
    if (host_end == 0) return "";
  }
  std::string_view port = rest.substr(host_end);
  if (!port.empty()) {
    if (port[0] != ':' || port.size() < 2 || port.size() > 6) return "";
    int value = 0;
    for (char c : port.substr(1)) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return "";
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) return "";
  }
  return std::string(s.substr(0, s.size() - (s.ends_with("/") ? 1 : 0)));
}

// The number of characters (code points) in valid UTF-8 text.
size_t CountCharacters(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// A Kafka key template split into its placeholders, or why it is malformed.
struct KeyTemplate {
  std::vector<std::string> placeholders;  // every {name} in order, repeats included
  std::string error;                      // empty when well formed
};

// Placeholders are {name}; the text around them is literal. A "{" inside a placeholder, a
// "{" never closed, a "}" never opened and an empty {} are errors, and so is a template
// without any placeholder: its key would be the same for every person.
KeyTemplate ParseKeyTemplate(std::string_view text) {
  KeyTemplate out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find_first_of("{}", i);
    if (open == std::string_view::npos) break;
    if (text[open] == '}') {
      out.error = "\"}\" at offset " + std::to_string(open) + " closes no placeholder";
      return out;
    }
    const size_t close = text.find_first_of("{}", open + 1);
    if (close == std::string_view::npos) {
      out.error = "\"{\" at offset " + std::to_string(open) + " is never closed";
      return out;
    }
    if (text[close] == '{') {
      out.error = "\"{\" at offset " + std::to_string(close) +
                  " is inside a placeholder (placeholders do not nest)";
      return out;
    }
    if (close == open + 1) {
      out.error = "empty placeholder {} at offset " + std::to_string(open);
      return out;
    }
    out.placeholders.emplace_back(text.substr(open + 1, close - open - 1));
    i = close + 1;
  }
  if (out.placeholders.empty()) {
    out.error = "it has no placeholder, so every person's key would be the same";
  }
  return out;
}

// Edit distance counting a swap of neighbours as one edit ("nmae" is one away from "name").
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The candidate closest to `word` when it is close enough to be a typo of it, else "".
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  constexpr size_t kMaxWordForSuggestions = 100;  // keeps EditDistance cheap on hostile input
  if (word.size() > kMaxWordForSuggestions) return "";
  std::string lower(word);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  std::string best;
  size_t best_distance = 3;  // at most two edits
  for (const std::string& candidate : candidates) {
    const size_t d = EditDistance(lower, candidate);
    if (d < best_distance && d < word.size()) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

// Lists names for a message, cutting long lists short.
std::string ListNames(const std::vector<std::string>& names) {
  constexpr size_t kMaxListed = 10;
  if (names.size() <= kMaxListed) return absl::StrJoin(names, ", ");
  std::vector<std::string> head(names.begin(), names.begin() + kMaxListed);
  return absl::StrJoin(head, ", ") + ", ... (" + std::to_string(names.size()) + " in all)";
}

// One key of a YAML map, with the nodes for positions.
struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

// The entries of a YAML map in file order. Duplicate keys stay visible (yaml-cpp keeps
// both), so CheckKeys can report them instead of silently using the first.
class MapView {
 public:
  explicit MapView(const YAML::Node& map) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (it->first.IsScalar()) {
        entries_.push_back(Entry{it->first.Scalar(), it->first, it->second});
      } else {
        bad_keys_.push_back(it->first);
      }
    }
  }
  // The first entry with this key, or nullptr.
  const Entry* Find(std::string_view key) const {
    for (const Entry& e : entries_) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
  const std::vector<Entry>& entries() const { return entries_; }
  const std::vector<YAML::Node>& bad_keys() const { return bad_keys_; }

 private:
  std::vector<Entry> entries_;
  std::vector<YAML::Node> bad_keys_;
};

// An anchor (&name) or alias (*name) met by the document pre-pass.
struct AnchorUse {
  YAML::Mark mark;
  std::string name;
};

// What the document pre-pass needs to know about one document.
class DocumentShape : public YAML::EventHandler {
 public:
  // Starts a new document. The first anchor and alias seen are kept across documents.
  void Reset() {
    events_ = 0;
    start_ = YAML::Mark::null_mark();
    first_null_ = YAML::Mark::null_mark();
    anchor_names_.clear();
    pending_anchor_.clear();
  }
  // True when the document is nothing but one empty value.
  bool lone_null() const { return events_ == 1 && !first_null_.is_null(); }
  const YAML::Mark& null_mark() const { return first_null_; }
  const YAML::Mark& start() const { return start_; }
  const std::optional<AnchorUse>& first_anchor() const { return first_anchor_; }
  const std::optional<AnchorUse>& first_alias() const { return first_alias_; }

  void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
  void OnDocumentEnd() override {}
  // Called with the anchor's name just before the event of the node it names.
  void OnAnchor(const YAML::Mark& mark, const std::string& name) override {
    if (!first_anchor_.has_value()) first_anchor_ = AnchorUse{mark, name};
    pending_anchor_ = name;
  }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (events_++ == 0) first_null_ = mark;
    NameAnchor(mark, anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    ++events_;
    if (!first_alias_.has_value()) {
      const auto it = anchor_names_.find(anchor);
      first_alias_ = AnchorUse{mark, it == anchor_names_.end() ? std::string() : it->second};
    }
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string&) override {
    ++events_;
    NameAnchor(mark, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    ++events_;
    NameAnchor(mark, anchor);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    ++events_;
    NameAnchor(mark, anchor);
  }
  void OnMapEnd() override {}

 private:
  // Links the id yaml-cpp gave an anchored node to the name OnAnchor announced, so that an
  // alias can be reported by name. Any anchored node counts as an anchor, even if yaml-cpp
  // did not announce it.
  void NameAnchor(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor == YAML::NullAnchor) return;
    if (!first_anchor_.has_value()) first_anchor_ = AnchorUse{mark, pending_anchor_};
    anchor_names_[anchor] = pending_anchor_;
    pending_anchor_.clear();
  }

  int events_ = 0;
  YAML::Mark start_ = YAML::Mark::null_mark();
  YAML::Mark first_null_ = YAML::Mark::null_mark();
  std::map<YAML::anchor_t, std::string> anchor_names_;  // of the current document
  std::string pending_anchor_;
  std::optional<AnchorUse> first_anchor_;
  std::optional<AnchorUse> first_alias_;
};

struct StreamShape {
  int documents = 0;                            // counted up to 1000
  YAML::Mark second = YAML::Mark::null_mark();  // where the second document starts
  std::optional<YAML::Mark> stuck_at;           // see CountDocuments
  // The first anchor (&name) and the first alias (*name) of the stream, if any.
  std::optional<AnchorUse> anchor;
  std::optional<AnchorUse> alias;
};

// Counts the documents in `yaml` (stopping at 1000), without building them, and finds the
// first anchor and alias.
//
// This replaces YAML::LoadAll, which in yaml-cpp 0.7 loops forever, allocating, on a token
// its parser cannot place, such as a "," at block level (jbeder/yaml-cpp#1040, fixed
// upstream after 0.7): the parser reports an empty document there without consuming the
// token, again and again. Two empty documents in a row at the same position are that state;
// it is returned in stuck_at. Throws what yaml-cpp's parser throws.
//
// Anchors and aliases are found here, from parser events, because a node tree built from
// them is where the cost lies: a few kilobytes of nested aliases ("billion laughs") make a
// tree whose walk never ends in practice. The pre-pass itself is linear in the text.
StreamShape CountDocuments(std::string_view yaml) {
  constexpr int kMaxCounted = 1000;
  StreamShape out;
  std::istringstream in{std::string(yaml)};
  YAML::Parser parser(in);
  DocumentShape shape;
  int previous_null_pos = -1;  // where the previous document, a lone empty value, was; -1: none
  while (out.documents < kMaxCounted) {
    shape.Reset();
    const bool more = parser.HandleNextDocument(shape);
    out.anchor = shape.first_anchor();
    out.alias = shape.first_alias();
    if (!more) break;
    if (shape.lone_null()) {
      if (previous_null_pos >= 0 && previous_null_pos == shape.null_mark().pos) {
        out.stuck_at = shape.null_mark();
        return out;
      }
      previous_null_pos = shape.null_mark().pos;
    } else {
      previous_null_pos = -1;
    }
    if (++out.documents == 2) out.second = shape.start();
  }
  return out;
}

// The name of the alias at `pos` of `yaml` ("*name"): up to the next blank, line end or
// flow indicator. Empty when there is no alias there.
std::string AliasNameAt(std::string_view yaml, size_t pos) {
  if (pos >= yaml.size() || yaml[pos] != '*') return "";
  const size_t end = yaml.find_first_of(" \t\r\n,[]{}", pos + 1);
  return std::string(yaml.substr(pos + 1, end == std::string_view::npos ? end : end - pos - 1));
}

// Why anchors and aliases are refused, appended to their diagnostics.
constexpr char kNoAnchorsRule[] =
    "is not allowed in a policy (YAML anchors and aliases are rejected: write each value out)";

const std::vector<std::string> kTopLevelKeys = {"version",  "name",      "identities",
                                                "purposes", "deadlines", "domains"};
const std::vector<std::string> kPurposeKeys = {"name", "description", "domains",
                                               "erase_on_withdrawal"};
const std::vector<std::string> kDeadlineKeys = {"erasure", "max_extension", "access", "access_retention"};
const std::vector<std::string> kDomainKeys = {"name", "postgres", "kafka", "s3"};
const std::vector<std::string> kPostgresKeys = {"tables"};
const std::vector<std::string> kIdentityKeys = {"name", "normalize"};
const std::vector<std::string> kTableKeys = {"table", "key",    "identity", "action", "basis",
                                             "period", "set",   "match",    "vacuum"};
const std::vector<std::string> kKafkaKeys = {"topics"};
const std::vector<std::string> kTopicKeys = {"topic", "key", "sinks"};
const std::vector<std::string> kSinkKeys = {"name", "kind", "deletes_on_tombstone", "covered_by"};
const std::vector<std::string> kCoveredByKeys = {"s3_bucket", "table"};
const std::vector<std::string> kS3Keys = {"endpoint", "region", "buckets"};
const std::vector<std::string> kBucketKeys = {"bucket",   "objects", "jsonl",  "field", "identity",
                                              "match",    "action",  "basis",  "period"};

}  // namespace

// Builds one Policy; a friend of Policy, so it fills the private fields directly.
class PolicyBuilder {
 public:
  explicit PolicyBuilder(std::vector<Diagnostic>* diagnostics) : diagnostics_(diagnostics) {}

  std::optional<Policy> Build(std::string_view yaml) {
    const size_t before = diagnostics_->size();
    try {
      const StreamShape stream = CountDocuments(yaml);
      if (stream.stuck_at.has_value()) {
        const auto pos = static_cast<size_t>(stream.stuck_at->pos);
        const std::string what = pos < yaml.size() && static_cast<unsigned char>(yaml[pos]) < 0x80
                                     ? Quote(yaml.substr(pos, 1))
                                     : std::string("content");
        Error(PositionOf(*stream.stuck_at), "malformed YAML: unexpected " + what);
      } else if (stream.anchor.has_value() || stream.alias.has_value()) {
        // Refused before any node tree is built (see CountDocuments).
        if (stream.anchor.has_value()) {
          Error(PositionOf(stream.anchor->mark),
                "YAML anchor " + Quote("&" + stream.anchor->name) + " " + kNoAnchorsRule);
        }
        if (stream.alias.has_value()) {
          Error(PositionOf(stream.alias->mark),
                "YAML alias " + Quote("*" + stream.alias->name) + " " + kNoAnchorsRule);
        }
        ReportDocuments(stream);
      } else {
        const YAML::Node root = YAML::Load(std::string(yaml));  // the first document
        ReportDocuments(stream);
        if (root.IsNull()) {
          Error(Position{},
                "policy is empty: expected a YAML map with version, identities and "
                "domains");
        } else {
          ReadDocument(root);
        }
      }
    } catch (const YAML::Exception& e) {
      if (e.msg == YAML::ErrorMsg::UNKNOWN_ANCHOR) {
        // An alias of an anchor that is not there: refused as an alias, like any other.
        const std::string name =
            e.mark.is_null() ? "" : AliasNameAt(yaml, static_cast<size_t>(e.mark.pos));
        Error(PositionOf(e.mark), "YAML alias " + Quote("*" + name) + " " + kNoAnchorsRule);
      } else {
        Error(PositionOf(e.mark), "malformed YAML: " + e.msg);
      }
    } catch (const std::exception& e) {
      Error(Position{}, std::string("cannot read policy: ") + e.what());
    } catch (...) {
      Error(Position{}, "cannot read policy: unknown error");
    }
    std::stable_sort(diagnostics_->begin() + static_cast<std::ptrdiff_t>(before),
                     diagnostics_->end(), [](const Diagnostic& a, const Diagnostic& b) {
                       return std::pair(a.line, a.column) < std::pair(b.line, b.column);
                     });
    if (diagnostics_->size() != before) return std::nullopt;
    policy_.Seal();
    return std::optional<Policy>(std::move(policy_));
  }

 private:
  void ReportDocuments(const StreamShape& stream) {
    if (stream.documents > 1) {
      Error(PositionOf(stream.second),
            "the file holds " + std::string(stream.documents >= 1000 ? "at least " : "") +
                std::to_string(stream.documents) +
                " YAML documents (separated by ---); a policy is exactly one");
    }
  }
  void Error(Position p, std::string message) {
    diagnostics_->push_back(Diagnostic{p.line, p.column, std::move(message)});
  }
  void Error(const YAML::Node& node, std::string message) {
    Error(PositionOf(node.Mark()), std::move(message));
  }
  // A problem with an entry's value. An empty value is reported at its key: yaml-cpp places
  // it at the next token, which may be lines further down.
  void ValueError(const Entry& e, std::string message) {
    Error(e.value.IsNull() ? e.key_node : e.value, std::move(message));
  }
  // The entry's value when it is a scalar; otherwise reports "<what>, got <value>".
  const std::string* ScalarOrError(const Entry& e, const std::string& what) {
    if (e.value.IsScalar()) return &e.value.Scalar();
    ValueError(e, what + ", got " + Describe(e.value));
    return nullptr;
  }

  // Reports keys that are not plain strings, duplicate keys and unknown keys. `context`
  // places the map ("in domain \"growth\""); `under` narrows it ("postgres").
  void CheckKeys(const MapView& map, const std::vector<std::string>& allowed,
                 const std::string& context, const std::string& under = "") {
    for (const YAML::Node& key : map.bad_keys()) {
      Error(key, "keys must be plain names, got " + Describe(key) + " as a key " + context);
    }
    std::map<std::string, int> first_line;
    for (const Entry& e : map.entries()) {
      const Position p = PositionOf(e.key_node.Mark());
      const auto [it, inserted] = first_line.emplace(e.key, p.line);
      if (!inserted) {
        Error(p, "duplicate key " + Quote(e.key) + " " + context + " (first at line " +
                     std::to_string(it->second) + ")");
        continue;
      }
      if (std::find(allowed.begin(), allowed.end(), e.key) != allowed.end()) continue;
      std::string hint = under.empty() ? "" : "under " + under + ": ";
      if (e.key == "<<") {
        hint += "YAML merge keys are not supported";
      } else if (std::string close = ClosestMatch(e.key, allowed); !close.empty()) {
        hint += "did you mean " + Quote(close) + "?";
      } else {
        hint += "expected one of: " + absl::StrJoin(allowed, ", ");
      }
      Error(p, "unknown key " + Quote(e.key) + " " + context + " (" + hint + ")");
    }
  }

  void ReadDocument(const YAML::Node& root) {
    if (!root.IsMap()) {
      Error(root,
            "a policy must be a YAML map with version, name, identities, purposes, "
            "deadlines and domains, got " +
                Describe(root));
      return;
    }
    const MapView top(root);
    CheckKeys(top, kTopLevelKeys, "at the top level");
    ReadVersion(root, top);
    ReadName(top);
    ReadIdentities(root, top);
    ReadDomains(root, top);  // before purposes, which refer to domains
    ReadPurposes(top);
    ReadDeadlines(top);
  }

  void ReadVersion(const YAML::Node& root, const MapView& top) {
    const Entry* e = top.Find("version");
    if (e == nullptr) {
      Error(root, "missing required key \"version\" (this build reads version 1)");
      return;
    }
    const std::string* v = ScalarOrError(*e, "version must be 1");
    if (v != nullptr && *v != "1") {
      ValueError(*e, "unsupported policy version " + Quote(*v) + " (this build reads version 1)");
    }
    policy_.version_ = 1;
  }

  void ReadName(const MapView& top) {
    const Entry* e = top.Find("name");
    if (e == nullptr) return;
    const std::string* name = ScalarOrError(*e, "name must be a string");
    if (name == nullptr) return;
    if (!IsValidUtf8(*name)) {
      ValueError(*e, "name must be valid UTF-8 text");
      return;
    }
    policy_.name_ = *name;
  }

  void ReadIdentities(const YAML::Node& root, const MapView& top) {
    const Entry* e = top.Find("identities");
    if (e == nullptr) {
      Error(root,
            "missing required key \"identities\": the identity types a request may carry, "
            "e.g. [email, user_id]");
      return;
    }
    if (!e->value.IsSequence()) {
      ValueError(*e, "identities must be a list of identity types, got " + Describe(e->value));
      return;
    }
    if (e->value.size() == 0) ValueError(*e, "identities must list at least one identity type");
    size_t index = 0;
    for (const YAML::Node& item : e->value) ReadIdentity(item, index++);
  }

  // One item of identities: a type name, or {name: TYPE, normalize: [STEP, ...]}.
  void ReadIdentity(const YAML::Node& item, size_t index) {
    std::string label = "identity type #" + std::to_string(index + 1);
    const YAML::Node* name_node = &item;
    std::vector<Normalizer> steps;
    if (item.IsMap()) {
      const MapView map(item);
      const Entry* name = map.Find("name");
      // Named by its name in what follows, when it has one that reads as text.
      if (name != nullptr && name->value.IsScalar()) label = "identity type " + Quote(name->value.Scalar());
      CheckKeys(map, kIdentityKeys, "in " + label);
      if (name == nullptr) {
        Error(item, label + " is missing \"name\" (the identity type, e.g. email)");
        return;
      }
      if (ScalarOrError(*name, "name of " + label + " must be an identity type name") == nullptr) return;
      name_node = &name->value;
      // A bad step is reported; the type is still declared, so that the tables using it do
      // not each report it missing as well.
      if (const Entry* n = map.Find("normalize"); n != nullptr) ReadNormalizers(*n, label, &steps);
    } else if (!item.IsScalar()) {
      Error(item, "identities must hold identity type names or {name, normalize} maps, got " +
                      Describe(item));
      return;
    }
    const std::string& type = name_node->Scalar();
    if (!IsLowerName(type, /*allow_dash=*/false)) {
      Error(*name_node, "bad identity type " + Quote(type) +
                            ": expected lowercase letters, digits and _ ([a-z0-9_]+)");
    } else if (policy_.HasIdentity(type)) {
      Error(*name_node, "duplicate identity type " + Quote(type));
    } else {
      policy_.identities_.push_back(type);
      policy_.normalizers_.push_back(std::move(steps));
    }
  }

  // normalize: a list of distinct steps, applied in the order written.
  void ReadNormalizers(const Entry& e, const std::string& label, std::vector<Normalizer>* steps) {
    static const std::vector<std::string> kNames = {"trim", "lowercase"};
    if (!e.value.IsSequence()) {
      ValueError(e, "normalize of " + label + " must be a list of steps (trim, lowercase), got " +
                        Describe(e.value));
      return;
    }
    for (const YAML::Node& step : e.value) {
      if (!step.IsScalar()) {
        Error(step, "normalize of " + label + " must hold step names (trim, lowercase), got " +
                        Describe(step));
        continue;
      }
      const std::string& name = step.Scalar();
      std::optional<Normalizer> n;
      if (name == "trim") n = Normalizer::kTrim;
      if (name == "lowercase") n = Normalizer::kLowercase;
      if (!n) {
        const std::string close = ClosestMatch(name, kNames);
        Error(step, "unknown normalizer " + Quote(name) + " for " + label +
                        ": expected trim or lowercase" +
                        (close.empty() ? "" : " (did you mean " + Quote(close) + "?)"));
      } else if (std::find(steps->begin(), steps->end(), *n) != steps->end()) {
        Error(step, "normalizer " + Quote(name) + " twice for " + label);
      } else {
        steps->push_back(*n);
      }
    }
  }

  void ReadDomains(const YAML::Node& root, const MapView& top) {
    const Entry* e = top.Find("domains");
    if (e == nullptr) {
      Error(root, "missing required key \"domains\": the list of domains and their tables");
      return;
    }
    if (!e->value.IsSequence()) {
      ValueError(*e, "domains must be a list of domains, got " + Describe(e->value));
      return;
    }
    domains_readable_ = true;
    if (e->value.size() == 0) ValueError(*e, "domains must list at least one domain");
    std::map<std::string, int> first_line;
    size_t index = 0;
    for (const YAML::Node& item : e->value) ReadDomain(item, index++, &first_line);
  }

  void ReadDomain(const YAML::Node& node, size_t index, std::map<std::string, int>* first_line) {
    std::string label = "domain #" + std::to_string(index + 1);
    if (!node.IsMap()) {
      Error(node,
            label + " must be a map with name and postgres, kafka and/or s3, got " + Describe(node));
      return;
    }
    const MapView map(node);
    Domain domain;
    if (const Entry* e = map.Find("name"); e == nullptr) {
      Error(node, label + " is missing \"name\"");
    } else if (const std::string* name = ScalarOrError(
                   *e, "name of " + label + " must be a string of " + kLowerNameRule)) {
      label = "domain " + Quote(*name);
      domain.name = *name;
      if (std::find(domain_names_.begin(), domain_names_.end(), *name) == domain_names_.end()) {
        domain_names_.push_back(*name);
      }
      const Position p = PositionOf(e->value.Mark());
      if (!IsLowerName(*name, /*allow_dash=*/true)) {
        ValueError(*e, "bad domain name " + Quote(*name) + ": expected " + kLowerNameRule);
      } else if (name->size() > kMaxDomainNameLength) {
        ValueError(*e, "domain name " + Quote(*name) + " is too long: " +
                           std::to_string(name->size()) + " characters (at most 200)");
      } else if (const auto [it, inserted] = first_line->emplace(*name, p.line); !inserted) {
        ValueError(*e, "duplicate domain " + Quote(*name) + " (first defined at line " +
                           std::to_string(it->second) + ")");
      }
    }
    CheckKeys(map, kDomainKeys, "in " + label);
    const Entry* postgres = map.Find("postgres");
    const Entry* kafka = map.Find("kafka");
    const Entry* s3 = map.Find("s3");
    if (postgres == nullptr && kafka == nullptr && s3 == nullptr) {
      Error(node, label +
                      " has no postgres, kafka or s3 section (expected postgres: with a list of "
                      "tables, kafka: with a list of topics, s3: with a list of buckets, or several)");
    }
    if (postgres != nullptr) {
      if (!postgres->value.IsMap()) {
        ValueError(*postgres, "postgres in " + label + " must be a map with tables, got " +
                                  Describe(postgres->value));
      } else {
        ReadPostgres(postgres->value, label, &domain);
      }
    }
    if (kafka != nullptr) {
      if (!kafka->value.IsMap()) {
        ValueError(*kafka, "kafka in " + label + " must be a map with topics, got " +
                               Describe(kafka->value));
      } else {
        ReadKafka(kafka->value, label, &domain);
      }
    }
    if (s3 != nullptr) {
      if (!s3->value.IsMap()) {
        ValueError(*s3, "s3 in " + label + " must be a map with region and buckets, got " +
                            Describe(s3->value));
      } else {
        ReadS3(s3->value, label, &domain);
      }
    }
    CheckCoverReferences(domain, label);
    policy_.domains_.push_back(std::move(domain));
  }

  void ReadPostgres(const YAML::Node& node, const std::string& domain_label, Domain* domain) {
    const MapView map(node);
    CheckKeys(map, kPostgresKeys, "in " + domain_label, "postgres");
    const Entry* e = map.Find("tables");
    if (e == nullptr) {
      Error(node, "postgres section of " + domain_label +
                      " has no tables (expected tables: with a list of tables)");
      return;
    }
    if (!e->value.IsSequence()) {
      ValueError(
          *e, "tables in " + domain_label + " must be a list of tables, got " + Describe(e->value));
      return;
    }
    if (e->value.size() == 0) {
      ValueError(*e, "tables in " + domain_label + " must list at least one table");
    }
    std::map<std::string, int> first_line;
    size_t index = 0;
    for (const YAML::Node& item : e->value) {
      ReadTable(item, index++, domain_label, &first_line, domain);
    }
  }

  // How values of `type` are compared when a table or bucket does not say: case-insensitively
  // for a type normalized with lowercase, else exactly.
  Match DefaultMatch(const std::string& type) const {
    const auto& steps = policy_.Normalizers(type);
    return std::find(steps.begin(), steps.end(), Normalizer::kLowercase) != steps.end() ? Match::kCaseInsensitive
                                                                                         : Match::kExact;
  }

  // An identity type a table, topic or bucket uses (`where`: "", " in its key", ...) that the
  // policy's identities do not list, with the closest listed one when there is one.
  void ReportUnknownIdentity(const Entry& at, const std::string& label, const std::string& type,
                             const std::string& where) {
    if (policy_.identities_.empty() || policy_.HasIdentity(type)) return;
    const std::string close = ClosestMatch(type, policy_.identities_);
    ValueError(at, label + " uses identity type " + Quote(type) + where + ", which is not listed in identities (" +
                       (close.empty() ? "listed: " + ListNames(policy_.identities_)
                                      : "did you mean " + Quote(close) + "?") +
                       ")");
  }

  // A table's or bucket's `match`, when written, into *out.
  void ReadMatch(const MapView& map, const std::string& label, Match* out) {
    const Entry* e = map.Find("match");
    if (e == nullptr) return;
    const std::string* m = ScalarOrError(*e, "match of " + label + " must be exact or case_insensitive");
    if (m == nullptr) return;
    if (*m == "exact") {
      *out = Match::kExact;
    } else if (*m == "case_insensitive") {
      *out = Match::kCaseInsensitive;
    } else {
      std::string close = ClosestMatch(*m, {"exact", "case_insensitive"});
      ValueError(*e, "unknown match " + Quote(*m) + " for " + label + ": expected exact or case_insensitive" +
                         (close.empty() ? "" : " (did you mean " + Quote(close) + "?)"));
    }
  }

  // A true/false value (true, True, TRUE, false, False, FALSE) into *out; `what` says what it
  // must be, for the error.
  void ReadBool(const Entry& e, const std::string& what, bool* out) {
    const std::string* v = ScalarOrError(e, what);
    if (v == nullptr) return;
    if (*v == "true" || *v == "True" || *v == "TRUE") {
      *out = true;
    } else if (*v == "false" || *v == "False" || *v == "FALSE") {
      *out = false;
    } else {
      ValueError(e, what + ", got " + Quote(*v));
    }
  }

  void ReadTable(const YAML::Node& node, size_t index, const std::string& domain_label,
                 std::map<std::string, int>* first_line, Domain* domain) {
    const std::string entry_label = "table #" + std::to_string(index + 1) + " of " + domain_label;
    if (!node.IsMap()) {
      Error(node, entry_label + " must be a map with table, key, identity and action, got " +
                      Describe(node));
      return;
    }
    const MapView map(node);
    Table table;
    std::string label = entry_label;
    const Entry* table_entry = map.Find("table");
    bool named = false;
    if (table_entry == nullptr) {
      Error(node, entry_label + " is missing \"table\" (its [schema.]name)");
    } else if (const std::string* name =
                   ScalarOrError(*table_entry, "bad table name in " + domain_label +
                                                   ": expected [schema.]name")) {
      if (SplitTableName(*name, &table.schema, &table.name)) {
        label = "table " + table.QualifiedName();
        named = true;
      } else {
        label = "table " + Quote(*name);
        ValueError(*table_entry, "bad table name " + Quote(*name) + " in " + domain_label +
                                     ": expected [schema.]name, each part matching " +
                                     kIdentifierRule);
      }
    }
    CheckKeys(map, kTableKeys, "in " + label);

    if (const Entry* e = map.Find("key"); e == nullptr) {
      Error(node, label + " is missing \"key\" (the column that holds the subject's identifier)");
    } else if (const std::string* column =
                   ScalarOrError(*e, "key of " + label + " must be a column name")) {
      if (IsIdentifier(*column)) {
        table.key_column = *column;
      } else {
        ValueError(*e, "bad key column " + Quote(*column) + " for " + label +
                           ": expected a column name matching " + kIdentifierRule);
      }
    }

    const std::string known = ListNames(policy_.identities_);
    if (const Entry* e = map.Find("identity"); e == nullptr) {
      Error(node, label + " is missing \"identity\" (the identity type its key column holds" +
                      (known.empty() ? "" : ": one of " + known) + ")");
    } else if (const std::string* type =
                   ScalarOrError(*e, "identity of " + label + " must be an identity type")) {
      table.identity = *type;
      ReportUnknownIdentity(*e, label, *type, "");
    }

    // match: written, or the identity type's default.
    table.match = DefaultMatch(table.identity);
    ReadMatch(map, label, &table.match);

    std::optional<TableAction> action;
    if (const Entry* e = map.Find("action"); e == nullptr) {
      Error(node, label + " is missing \"action\" (expected " + kActions + ")");
    } else if (const std::string* a =
                   ScalarOrError(*e, "action of " + label + " must be " + kActions)) {
      if (*a == "delete") {
        action = TableAction::kDelete;
      } else if (*a == "anonymize") {
        action = TableAction::kAnonymize;
      } else if (*a == "retain") {
        action = TableAction::kRetain;
      } else {
        std::string close = ClosestMatch(*a, {"delete", "anonymize", "retain"});
        ValueError(*e, "unknown action " + Quote(*a) + " for " + label + ": expected " + kActions +
                           (close.empty() ? "" : " (did you mean " + Quote(close) + "?)"));
      }
    }
    if (action.has_value()) {
      table.action = *action;
      // Keys that belong to another action. With no valid action, the error about the
      // action says enough.
      static const std::pair<const char*, TableAction> kActionKeys[] = {
          {"set", TableAction::kAnonymize},
          {"basis", TableAction::kRetain},
          {"period", TableAction::kRetain}};
      for (const auto& [key, owner] : kActionKeys) {
        const Entry* e = map.Find(key);
        if (e != nullptr && *action != owner) {
          Error(e->key_node, "key " + Quote(key) + " is only for action " +
                                 Table::ActionName(owner) + " (" + label + ")");
        }
      }
      if (*action == TableAction::kAnonymize) ReadSet(node, map, label, &table);
      if (*action == TableAction::kRetain) ReadRetention(node, map, label, &table.basis, &table.period);
      ReadVacuum(map, label, *action, &table.vacuum);
    }

    if (named) {
      const Position p = PositionOf(table_entry->value.Mark());
      const auto [it, inserted] = first_line->emplace(table.QualifiedName(), p.line);
      if (!inserted) {
        ValueError(*table_entry, "duplicate table " + table.QualifiedName() + " in " +
                                     domain_label + " (first listed at line " +
                                     std::to_string(it->second) + ")");
      }
    }
    domain->tables.push_back(std::move(table));
  }

  // vacuum: after_purge | full_after_purge, for the tables a purge changes (delete, anonymize).
  void ReadVacuum(const MapView& map, const std::string& label, TableAction action, Table::Vacuum* out) {
    const Entry* e = map.Find("vacuum");
    if (e == nullptr) return;
    if (action == TableAction::kRetain) {
      Error(e->key_node, "key \"vacuum\" is only for actions delete and anonymize (" + label +
                             " keeps its rows: a purge leaves nothing to vacuum)");
      return;
    }
    static constexpr char kVacuums[] = "\"after_purge\" or \"full_after_purge\"";
    const std::string* v = ScalarOrError(*e, "vacuum of " + label + " must be " + kVacuums);
    if (v == nullptr) return;
    if (*v == "after_purge") {
      *out = Table::Vacuum::kAfterPurge;
    } else if (*v == "full_after_purge") {
      *out = Table::Vacuum::kFullAfterPurge;
    } else {
      std::string close = ClosestMatch(*v, {"after_purge", "full_after_purge"});
      ValueError(*e, "unknown vacuum " + Quote(*v) + " for " + label + ": expected " + kVacuums +
                         (close.empty() ? "" : " (did you mean " + Quote(close) + "?)"));
    }
  }

  // The set: of an anonymize action. The key column must be among the columns, rewritten to
  // null or hash: otherwise the rows would stay keyed by the person's identifier.
  void ReadSet(const YAML::Node& node, const MapView& map, const std::string& label, Table* table) {
    const Entry* e = map.Find("set");
    if (e == nullptr) {
      Error(node, label + " has action anonymize but no \"set\" (expected " + kSetForm + ")");
      return;
    }
    if (!e->value.IsMap()) {
      ValueError(*e, "set of " + label + " must be " + kSetForm + ", got " + Describe(e->value));
      return;
    }
    const MapView columns(e->value);
    if (columns.entries().empty() && columns.bad_keys().empty()) {
      ValueError(*e, "set of " + label + " must list at least one column");
      return;
    }
    for (const YAML::Node& key : columns.bad_keys()) {
      Error(key, "columns in set of " + label + " must be column names, got " + Describe(key));
    }
    std::map<std::string, int> first_line;
    bool key_rewritten = false;
    for (const Entry& c : columns.entries()) {
      const Position p = PositionOf(c.key_node.Mark());
      if (!IsIdentifier(c.key)) {
        Error(p, "bad column " + Quote(c.key) + " in set of " + label +
                     ": expected a column name matching " + kIdentifierRule);
        continue;
      }
      if (const auto [it, inserted] = first_line.emplace(c.key, p.line); !inserted) {
        Error(p, "duplicate column " + Quote(c.key) + " in set of " + label + " (first at line " +
                     std::to_string(it->second) + ")");
        continue;
      }
      const bool is_key = c.key == table->key_column;
      if (is_key) key_rewritten = true;  // a bad value for it is reported as such
      ColumnRewrite rewrite;
      rewrite.column = c.key;
      if (c.value.IsNull() || (c.value.IsScalar() && c.value.Tag() == "tag:yaml.org,2002:null")) {
        rewrite.kind = ColumnRewrite::Kind::kNull;
      } else if (!c.value.IsScalar()) {
        ValueError(c, "value for column " + Quote(c.key) + " in set of " + label +
                          " must be null, hash or a \"constant\" string, got " + Describe(c.value));
        continue;
      } else if (c.value.Tag() == "?" && c.value.Scalar() == "hash") {
        rewrite.kind = ColumnRewrite::Kind::kHash;  // plain hash; a quoted "hash" is text
      } else {
        const std::string& text = c.value.Scalar();
        if (!IsValidUtf8(text)) {
          ValueError(c, "constant for column " + Quote(c.key) + " in set of " + label +
                            " must be valid UTF-8 text");
          continue;
        }
        if (text.find('\0') != std::string::npos) {
          ValueError(c, "constant for column " + Quote(c.key) + " in set of " + label +
                            " must not contain a NUL character");
          continue;
        }
        rewrite.kind = ColumnRewrite::Kind::kConstant;
        rewrite.constant = text;
      }
      if (is_key && rewrite.kind == ColumnRewrite::Kind::kConstant) {
        ValueError(c, "key column " + Quote(c.key) + " of " + label +
                          " must be set to null or hash, not a constant (every person's rows "
                          "would share one key)");
      }
      table->set.push_back(std::move(rewrite));
    }
    if (!key_rewritten && !table->key_column.empty() && !first_line.empty()) {
      Error(e->key_node, "anonymize on " + label + " must rewrite its key column " +
                             Quote(table->key_column) +
                             " (to null or hash), or the rows stay keyed by the person");
    }
  }

  // The basis: and period: of a retain action.
  void ReadRetention(const YAML::Node& node, const MapView& map, const std::string& label,
                     std::string* basis_out, absl::Duration* period_out) {
    if (const Entry* e = map.Find("basis"); e == nullptr) {
      Error(node, label +
                      " has action retain but no \"basis\" (the legal basis for keeping its "
                      "rows, e.g. \"Tax records (Art. 17(3)(b))\")");
    } else if (const std::string* basis = ScalarOrError(
                   *e, "basis of " + label + " must be a non-empty string (the legal basis)")) {
      if (!IsValidUtf8(*basis)) {
        ValueError(*e, "basis of " + label + " must be valid UTF-8 text");
      } else if (basis->find_first_not_of(" \t\r\n") == std::string::npos) {
        ValueError(*e, "basis of " + label + " must be a non-empty string (the legal basis)");
      } else if (const size_t n = CountCharacters(*basis); n > kMaxBasisLength) {
        ValueError(*e, "basis of " + label + " is too long: " + std::to_string(n) +
                           " characters (at most " + std::to_string(kMaxBasisLength) + ")");
      } else {
        *basis_out = *basis;
      }
    }
    const std::string field = "period of " + label;
    if (const Entry* e = map.Find("period"); e == nullptr) {
      Error(node, label +
                      " has action retain but no \"period\" (how long its rows are kept: "
                      "<n>h, <n>d, <n>w or <n>y)");
    } else if (!e->value.IsScalar()) {
      ValueError(
          *e, "bad duration for " + field + ": " + kDurationForms + ", got " + Describe(e->value));
    } else if (absl::StatusOr<absl::Duration> d =
                   internal::ParseDurationFor(e->value.Scalar(), field);
               !d.ok()) {
      ValueError(*e, std::string(d.status().message()));
    } else {
      *period_out = *d;
    }
  }

  void ReadKafka(const YAML::Node& node, const std::string& domain_label, Domain* domain) {
    const MapView map(node);
    CheckKeys(map, kKafkaKeys, "in " + domain_label, "kafka");
    const Entry* e = map.Find("topics");
    if (e == nullptr) {
      Error(node, "kafka section of " + domain_label +
                      " has no topics (expected topics: with a list of topics)");
      return;
    }
    if (!e->value.IsSequence()) {
      ValueError(
          *e, "topics in " + domain_label + " must be a list of topics, got " + Describe(e->value));
      return;
    }
    if (e->value.size() == 0) {
      ValueError(*e, "topics in " + domain_label + " must list at least one topic");
    }
    std::map<std::string, int> first_line;
    size_t index = 0;
    for (const YAML::Node& item : e->value) {
      ReadTopic(item, index++, domain_label, &first_line, domain);
    }
  }

  void ReadTopic(const YAML::Node& node, size_t index, const std::string& domain_label,
                 std::map<std::string, int>* first_line, Domain* domain) {
    const std::string entry_label = "topic #" + std::to_string(index + 1) + " of " + domain_label;
    if (!node.IsMap()) {
      Error(node, entry_label + " must be a map with topic and key, got " + Describe(node));
      return;
    }
    const MapView map(node);
    KafkaTopic topic;
    std::string label = entry_label;
    if (const Entry* e = map.Find("topic"); e == nullptr) {
      Error(node, entry_label + " is missing \"topic\" (the Kafka topic's name)");
    } else if (const std::string* name = ScalarOrError(
                   *e, "bad topic name in " + domain_label + ": expected " + kTopicNameRule)) {
      if (IsTopicName(*name)) {
        label = "topic " + *name;
        topic.topic = *name;
        const Position p = PositionOf(e->value.Mark());
        if (const auto [it, inserted] = first_line->emplace(*name, p.line); !inserted) {
          ValueError(*e, "duplicate topic " + *name + " in " + domain_label +
                             " (first listed at line " + std::to_string(it->second) + ")");
        }
      } else {
        label = "topic " + Quote(*name);
        ValueError(*e, "bad topic name " + Quote(*name) + " in " + domain_label + ": expected " +
                           kTopicNameRule);
      }
    }
    CheckKeys(map, kTopicKeys, "in " + label);

    const std::string example = " (a template over identity types, e.g. \"{user_id}\")";
    if (const Entry* e = map.Find("key"); e == nullptr) {
      Error(node, label + " is missing \"key\"" + example);
    } else if (const std::string* text =
                   ScalarOrError(*e, "key of " + label + " must be a string" + example)) {
      const KeyTemplate parsed = ParseKeyTemplate(*text);
      if (!IsValidUtf8(*text)) {
        ValueError(*e, "key of " + label + " must be valid UTF-8 text");
      } else if (text->size() > kMaxKeyTemplateLength) {
        ValueError(*e, "key of " + label + " is too long: " + std::to_string(text->size()) +
                           " bytes (at most " + std::to_string(kMaxKeyTemplateLength) + ")");
      } else if (!parsed.error.empty()) {
        ValueError(*e, "bad key template " + Quote(*text) + " for " + label + ": " + parsed.error +
                           example);
      } else {
        topic.key_template = *text;
        for (const std::string& type : parsed.placeholders) {
          if (std::find(topic.identities.begin(), topic.identities.end(), type) !=
              topic.identities.end()) {
            continue;  // a repeat: reported, if at all, at its first use
          }
          topic.identities.push_back(type);
          ReportUnknownIdentity(*e, label, type, " in its key");
        }
      }
    }
    if (const Entry* e = map.Find("sinks"); e != nullptr) ReadSinks(*e, label + " of " + domain_label, &topic);
    domain->kafka_topics.push_back(std::move(topic));
  }

  // A sink's covered_by, checked once the domain's tables and buckets are all read.
  struct CoverReference {
    Position at;
    std::string label;   // "sink X of topic T of domain D"
    std::string bucket;  // or
    std::string table;
  };
  std::vector<CoverReference> cover_references_;

  void ReadSinks(const Entry& e, const std::string& topic_label, KafkaTopic* topic) {
    if (!e.value.IsSequence()) {
      ValueError(e, "sinks of " + topic_label + " must be a list of sinks, got " + Describe(e.value));
      return;
    }
    if (e.value.size() == 0) ValueError(e, "sinks of " + topic_label + " must list at least one sink");
    std::map<std::string, int> first_line;
    size_t index = 0;
    for (const YAML::Node& node : e.value) {
      const std::string entry_label = "sink #" + std::to_string(++index) + " of " + topic_label;
      if (!node.IsMap()) {
        Error(node, entry_label + " must be a map with name, kind and deletes_on_tombstone, got " + Describe(node));
        continue;
      }
      const MapView map(node);
      Sink sink;
      std::string label = entry_label;
      if (const Entry* n = map.Find("name"); n == nullptr) {
        Error(node, entry_label + " is missing \"name\" (e.g. the Kafka Connect connector's name)");
      } else if (const std::string* name = ScalarOrError(*n, "name of " + entry_label + " must be a string")) {
        if (IsTopicName(*name)) {
          sink.name = *name;
          label = "sink " + *name + " of " + topic_label;
          const Position p = PositionOf(n->value.Mark());
          if (const auto [it, inserted] = first_line.emplace(*name, p.line); !inserted)
            ValueError(*n, "duplicate sink " + *name + " in " + topic_label + " (first listed at line " +
                               std::to_string(it->second) + ")");
        } else {
          ValueError(*n, "bad sink name " + Quote(*name) + " in " + topic_label + ": expected [A-Za-z0-9._-]+ " +
                             "(at most 249 characters)");
        }
      }
      CheckKeys(map, kSinkKeys, "in " + label);
      if (const Entry* k = map.Find("kind"); k == nullptr) {
        Error(node, label + " is missing \"kind\" (elasticsearch, jdbc, s3 or other)");
      } else if (const std::string* kind = ScalarOrError(*k, "kind of " + label + " must be elasticsearch, jdbc, s3 or other")) {
        if (*kind == "elasticsearch") {
          sink.kind = Sink::Kind::kElasticsearch;
        } else if (*kind == "jdbc") {
          sink.kind = Sink::Kind::kJdbc;
        } else if (*kind == "s3") {
          sink.kind = Sink::Kind::kS3;
        } else if (*kind == "other") {
          sink.kind = Sink::Kind::kOther;
        } else {
          std::string close = ClosestMatch(*kind, {"elasticsearch", "jdbc", "s3", "other"});
          ValueError(*k, "unknown kind " + Quote(*kind) + " for " + label + ": expected elasticsearch, jdbc, s3 or other" +
                             (close.empty() ? "" : " (did you mean " + Quote(close) + "?)"));
        }
      }
      if (const Entry* d = map.Find("deletes_on_tombstone"); d == nullptr) {
        Error(node, label + " is missing \"deletes_on_tombstone\" (true when the sink deletes the record on a "
                            "tombstone; false makes every erasure in the domain DONE_WITH_GAPS unless covered_by "
                            "names what erases it)");
      } else {
        ReadBool(*d, "deletes_on_tombstone of " + label + " must be true or false", &sink.deletes_on_tombstone);
      }
      if (const Entry* c = map.Find("covered_by"); c != nullptr) {
        const std::string form = "a map with s3_bucket: BUCKET or table: [schema.]table";
        if (sink.deletes_on_tombstone) {
          Error(c->key_node, "covered_by of " + label + " is for a sink that does not delete on tombstones");
        } else if (!c->value.IsMap()) {
          ValueError(*c, "covered_by of " + label + " must be " + form + ", got " + Describe(c->value));
        } else {
          const MapView cover(c->value);
          CheckKeys(cover, kCoveredByKeys, "in covered_by of " + label);
          const Entry* bucket = cover.Find("s3_bucket");
          const Entry* table = cover.Find("table");
          if ((bucket == nullptr) == (table == nullptr)) {
            ValueError(*c, "covered_by of " + label + " must name exactly one of s3_bucket and table");
          } else if (bucket != nullptr) {
            if (const std::string* b = ScalarOrError(*bucket, "s3_bucket in covered_by of " + label + " must be a bucket name")) {
              sink.covered_by_bucket = *b;
              cover_references_.push_back({PositionOf(bucket->value.Mark()), label, *b, ""});
            }
          } else if (const std::string* t = ScalarOrError(*table, "table in covered_by of " + label + " must be [schema.]table")) {
            std::string schema, name;
            if (SplitTableName(*t, &schema, &name)) {
              sink.covered_by_table = schema + "." + name;
              cover_references_.push_back({PositionOf(table->value.Mark()), label, "", sink.covered_by_table});
            } else {
              ValueError(*table, "bad table name " + Quote(*t) + " in covered_by of " + label + ": expected [schema.]name");
            }
          }
        }
      }
      topic->sinks.push_back(std::move(sink));
    }
  }

  // Every covered_by of `domain` names one of its buckets or tables.
  void CheckCoverReferences(const Domain& domain, const std::string& domain_label) {
    for (const CoverReference& r : cover_references_) {
      // The purger named must erase: a bucket entry that deletes, a table that deletes or
      // anonymizes (a retained copy is still a copy).
      if (!r.bucket.empty()) {
        bool found = false, erases = false;
        for (const S3Bucket& b : domain.s3.buckets) {
          if (b.bucket != r.bucket) continue;
          found = true;
          erases = erases || b.action == TableAction::kDelete;
        }
        if (!found)
          Error(r.at, "covered_by of " + r.label + " names S3 bucket " + Quote(r.bucket) + ", which is not in the s3 "
                      "section of " + domain_label + " (the purger that erases the sink's copy must be the domain's own)");
        else if (!erases)
          Error(r.at, "covered_by of " + r.label + " names S3 bucket " + Quote(r.bucket) +
                      ", whose entries in " + domain_label + " retain rather than delete");
      } else {
        const Table* found = nullptr;
        for (const Table& t : domain.tables)
          if (t.QualifiedName() == r.table) found = &t;
        if (found == nullptr)
          Error(r.at, "covered_by of " + r.label + " names table " + r.table + ", which is not in the postgres "
                      "section of " + domain_label);
        else if (found->action == TableAction::kRetain)
          Error(r.at, "covered_by of " + r.label + " names table " + r.table + ", whose action in " + domain_label +
                      " is retain: it keeps the copy");
      }
    }
    cover_references_.clear();
  }

  void ReadS3(const YAML::Node& node, const std::string& domain_label, Domain* domain) {
    const MapView map(node);
    CheckKeys(map, kS3Keys, "in " + domain_label, "s3");
    if (const Entry* e = map.Find("region"); e == nullptr) {
      Error(node, "s3 section of " + domain_label +
                      " has no region (the region requests are signed for, e.g. eu-west-1)");
    } else if (const std::string* region = ScalarOrError(
                   *e, "region in " + domain_label + " must be a region name such as eu-west-1")) {
      if (region->empty() || region->size() > 50 ||
          !std::all_of(region->begin(), region->end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
          })) {
        ValueError(*e, "bad region " + Quote(*region) + " in " + domain_label +
                           ": expected lowercase letters, digits and - (e.g. eu-west-1)");
      } else {
        domain->s3.region = *region;
      }
    }
    if (const Entry* e = map.Find("endpoint"); e != nullptr) {
      const std::string form = "http[s]://host[:port], e.g. http://127.0.0.1:4568";
      if (const std::string* endpoint =
              ScalarOrError(*e, "endpoint in " + domain_label + " must be " + form)) {
        std::string canonical = CanonicalEndpoint(*endpoint);
        if (canonical.empty()) {
          ValueError(*e, "bad endpoint " + Quote(*endpoint) + " in " + domain_label + ": expected " +
                             form + " (no path, user or query)");
        } else {
          domain->s3.endpoint = std::move(canonical);
        }
      }
    }
    const Entry* e = map.Find("buckets");
    if (e == nullptr) {
      Error(node, "s3 section of " + domain_label +
                      " has no buckets (expected buckets: with a list of buckets)");
      return;
    }
    if (!e->value.IsSequence()) {
      ValueError(*e, "buckets in " + domain_label + " must be a list of buckets, got " +
                         Describe(e->value));
      return;
    }
    if (e->value.size() == 0) {
      ValueError(*e, "buckets in " + domain_label + " must list at least one bucket");
    }
    std::map<std::string, int> first_line;
    size_t index = 0;
    for (const YAML::Node& item : e->value) ReadBucket(item, index++, domain_label, &first_line, domain);
  }

  void ReadBucket(const YAML::Node& node, size_t index, const std::string& domain_label,
                  std::map<std::string, int>* first_line, Domain* domain) {
    const std::string entry_label = "bucket #" + std::to_string(index + 1) + " of " + domain_label;
    const std::string shape = "bucket, objects or jsonl, and action";
    if (!node.IsMap()) {
      Error(node, entry_label + " must be a map with " + shape + ", got " + Describe(node));
      return;
    }
    const MapView map(node);
    S3Bucket bucket;
    std::string label = entry_label;
    const Entry* name_entry = map.Find("bucket");
    if (name_entry == nullptr) {
      Error(node, entry_label + " is missing \"bucket\" (the bucket's name)");
    } else if (const std::string* name = ScalarOrError(
                   *name_entry, "bad bucket name in " + domain_label + ": expected " + kBucketNameRule)) {
      label = "bucket " + Quote(*name) + " of " + domain_label;
      if (IsBucketName(*name)) {
        bucket.bucket = *name;
      } else {
        ValueError(*name_entry,
                   "bad bucket name " + Quote(*name) + " in " + domain_label + ": expected " + kBucketNameRule);
      }
    }
    CheckKeys(map, kBucketKeys, "in " + label);

    const Entry* objects = map.Find("objects");
    const Entry* jsonl = map.Find("jsonl");
    bool prefix_ok = false;  // the entry's prefix was read: it takes part in the duplicate check
    const std::string known = ListNames(policy_.identities_);
    if (objects != nullptr && jsonl != nullptr) {
      Error(jsonl->key_node, label + " has both objects and jsonl (one entry says one of them: write "
                                     "two entries for the same bucket)");
    } else if (objects == nullptr && jsonl == nullptr) {
      Error(node, label + " has neither objects (a key prefix template, e.g. \"users/{user_id}/\") "
                          "nor jsonl (the prefix of JSON-lines objects, e.g. \"events/\")");
    } else if (objects != nullptr) {
      bucket.kind = S3Bucket::Kind::kObjects;
      const std::string example = " (a key prefix template over identity types, e.g. \"users/{user_id}/\")";
      if (const std::string* text = ScalarOrError(*objects, "objects of " + label + " must be a string" + example)) {
        const KeyTemplate parsed = ParseKeyTemplate(*text);
        if (!IsValidUtf8(*text)) {
          ValueError(*objects, "objects of " + label + " must be valid UTF-8 text");
        } else if (text->size() > kMaxKeyTemplateLength) {
          ValueError(*objects, "objects of " + label + " is too long: " + std::to_string(text->size()) +
                                   " bytes (at most " + std::to_string(kMaxKeyTemplateLength) + ")");
        } else if (!parsed.error.empty()) {
          ValueError(*objects, "bad key prefix template " + Quote(*text) + " for " + label + ": " +
                                   parsed.error + example);
        } else if (text->ends_with("}")) {
          ValueError(*objects, "key prefix template " + Quote(*text) + " for " + label +
                                   " ends with a placeholder: end it with literal text such as \"/\", "
                                   "or the prefix of user 4 would also match the objects of user 42");
        } else {
          bucket.prefix = *text;
          prefix_ok = true;
          for (const std::string& type : parsed.placeholders) {
            if (std::find(bucket.identities.begin(), bucket.identities.end(), type) != bucket.identities.end())
              continue;
            bucket.identities.push_back(type);
            ReportUnknownIdentity(*objects, label, type, " in its key prefix");
          }
        }
      }
    } else {
      bucket.kind = S3Bucket::Kind::kJsonl;
      if (const std::string* text =
              ScalarOrError(*jsonl, "jsonl of " + label + " must be a key prefix (e.g. \"events/\")")) {
        if (!IsValidUtf8(*text)) {
          ValueError(*jsonl, "jsonl of " + label + " must be valid UTF-8 text");
        } else if (text->size() > kMaxKeyTemplateLength) {
          ValueError(*jsonl, "jsonl of " + label + " is too long: " + std::to_string(text->size()) +
                                 " bytes (at most " + std::to_string(kMaxKeyTemplateLength) + ")");
        } else if (text->find_first_of("{}") != std::string::npos) {
          ValueError(*jsonl, "jsonl prefix " + Quote(*text) + " of " + label +
                                 " holds a brace: it is a literal key prefix (the lines are matched by field "
                                 "and identity)");
        } else {
          bucket.prefix = *text;
          prefix_ok = true;
        }
      }
      if (const Entry* f = map.Find("field"); f == nullptr) {
        Error(node, label + " has jsonl but no \"field\" (the JSON field of each line that holds the "
                            "identity, e.g. email)");
      } else if (const std::string* field = ScalarOrError(*f, "field of " + label + " must be a JSON field name")) {
        if (field->empty() || field->size() > 255 || !IsValidUtf8(*field)) {
          ValueError(*f, "bad field " + Quote(*field) + " for " + label +
                             ": expected a top-level JSON field name (1 to 255 bytes of UTF-8)");
        } else {
          bucket.field = *field;
        }
      }
      if (const Entry* i = map.Find("identity"); i == nullptr) {
        Error(node, label + " has jsonl but no \"identity\" (the identity type its field holds" +
                        (known.empty() ? "" : ": one of " + known) + ")");
      } else if (const std::string* type = ScalarOrError(*i, "identity of " + label + " must be an identity type")) {
        bucket.identity = *type;
        bucket.identities.push_back(*type);
        ReportUnknownIdentity(*i, label, *type, "");
        bucket.match = DefaultMatch(*type);
      }
      ReadMatch(map, label, &bucket.match);
    }
    if (jsonl == nullptr) {
      for (const char* key : {"field", "identity", "match"}) {
        if (const Entry* e = map.Find(key); e != nullptr)
          Error(e->key_node, "key " + Quote(key) + " is only for jsonl buckets (" + label + ")");
      }
    }

    if (const Entry* e = map.Find("action"); e == nullptr) {
      Error(node, label + " is missing \"action\" (expected delete or retain)");
    } else if (const std::string* a = ScalarOrError(*e, "action of " + label + " must be delete or retain")) {
      if (*a == "delete") {
        bucket.action = TableAction::kDelete;
        for (const char* key : {"basis", "period"}) {
          if (const Entry* k = map.Find(key); k != nullptr)
            Error(k->key_node, "key " + Quote(key) + " is only for action retain (" + label + ")");
        }
      } else if (*a == "retain") {
        bucket.action = TableAction::kRetain;
        ReadRetention(node, map, label, &bucket.basis, &bucket.period);
      } else {
        std::string close = ClosestMatch(*a, {"delete", "retain"});
        ValueError(*e, "unknown action " + Quote(*a) + " for " + label + ": expected delete or retain" +
                           (*a == "anonymize" ? " (an object or line cannot be anonymized in place)"
                                              : close.empty() ? "" : " (did you mean " + Quote(close) + "?)"));
      }
    }

    if (!bucket.bucket.empty() && prefix_ok) {
      const std::string id = bucket.bucket + "\n" + S3Bucket::KindName(bucket.kind) + "\n" + bucket.prefix;
      const Position p = PositionOf(name_entry->value.Mark());
      if (const auto [it, inserted] = first_line->emplace(id, p.line); !inserted) {
        ValueError(*name_entry, "duplicate entry for bucket " + Quote(bucket.bucket) + " with " +
                                    S3Bucket::KindName(bucket.kind) + " " + Quote(bucket.prefix) + " in " +
                                    domain_label + " (first listed at line " + std::to_string(it->second) + ")");
      }
    }
    domain->s3.buckets.push_back(std::move(bucket));
  }

  void ReadPurposes(const MapView& top) {
    const Entry* e = top.Find("purposes");
    if (e == nullptr) return;
    if (!e->value.IsSequence()) {
      ValueError(*e, "purposes must be a list of purposes, got " + Describe(e->value));
      return;
    }
    std::map<std::string, int> first_line;
    size_t index = 0;
    for (const YAML::Node& item : e->value) ReadPurpose(item, index++, &first_line);
  }

  void ReadPurpose(const YAML::Node& node, size_t index, std::map<std::string, int>* first_line) {
    std::string label = "purpose #" + std::to_string(index + 1);
    if (!node.IsMap()) {
      Error(node, label +
                      " must be a map with name, description, domains and "
                      "erase_on_withdrawal, got " +
                      Describe(node));
      return;
    }
    const MapView map(node);
    Purpose purpose;
    if (const Entry* e = map.Find("name"); e == nullptr) {
      Error(node, label + " is missing \"name\"");
    } else if (const std::string* name = ScalarOrError(
                   *e, "name of " + label + " must be a string of " + kLowerNameRule)) {
      label = "purpose " + Quote(*name);
      purpose.name = *name;
      const Position p = PositionOf(e->value.Mark());
      if (!IsLowerName(*name, /*allow_dash=*/true)) {
        ValueError(*e, "bad purpose name " + Quote(*name) + ": expected " + kLowerNameRule);
      } else if (const auto [it, inserted] = first_line->emplace(*name, p.line); !inserted) {
        ValueError(*e, "duplicate purpose " + Quote(*name) + " (first defined at line " +
                           std::to_string(it->second) + ")");
      }
    }
    CheckKeys(map, kPurposeKeys, "in " + label);

    if (const Entry* e = map.Find("description")) {
      if (const std::string* text =
              ScalarOrError(*e, "description of " + label + " must be a string")) {
        if (IsValidUtf8(*text)) {
          purpose.description = *text;
        } else {
          ValueError(*e, "description of " + label + " must be valid UTF-8 text");
        }
      }
    }

    const Entry* erase = map.Find("erase_on_withdrawal");
    if (erase != nullptr) {
      ReadBool(*erase, "erase_on_withdrawal in " + label + " must be true or false", &purpose.erase_on_withdrawal);
    }

    if (const Entry* e = map.Find("domains"); e == nullptr) {
      Error(node, label +
                      " is missing \"domains\" (the domains that process data for it; "
                      "[] for none)");
    } else if (!e->value.IsSequence()) {
      ValueError(
          *e, "domains of " + label + " must be a list of domain names, got " + Describe(e->value));
    } else {
      for (const YAML::Node& item : e->value) {
        if (!item.IsScalar()) {
          Error(item, "domains of " + label + " must be domain names, got " + Describe(item));
          continue;
        }
        const std::string& domain = item.Scalar();
        if (std::find(purpose.domains.begin(), purpose.domains.end(), domain) !=
            purpose.domains.end()) {
          Error(item, label + " lists domain " + Quote(domain) + " twice");
          continue;
        }
        purpose.domains.push_back(domain);
        if (domains_readable_ &&
            std::find(domain_names_.begin(), domain_names_.end(), domain) == domain_names_.end()) {
          std::string close = ClosestMatch(domain, domain_names_);
          Error(item, label + " names unknown domain " + Quote(domain) + " (" +
                          (close.empty() ? "defined domains: " + ListNames(domain_names_)
                                         : "did you mean " + Quote(close) + "?") +
                          ")");
        }
      }
      if (purpose.erase_on_withdrawal && purpose.domains.empty()) {
        ValueError(*erase, label +
                               " has erase_on_withdrawal: true but lists no domains, so "
                               "withdrawing consent would erase nothing");
      }
    }
    policy_.purposes_.push_back(std::move(purpose));
  }

  void ReadDeadlines(const MapView& top) {
    const Entry* e = top.Find("deadlines");
    if (e == nullptr) return;
    if (!e->value.IsMap()) {
      ValueError(
          *e, "deadlines must be a map of erasure, max_extension, access and access_retention, got " + Describe(e->value));
      return;
    }
    const MapView map(e->value);
    CheckKeys(map, kDeadlineKeys, "in deadlines");
    ReadDeadline(map, "erasure", &policy_.deadlines_.erasure);
    ReadDeadline(map, "max_extension", &policy_.deadlines_.max_extension);
    policy_.deadlines_.access_written = ReadDeadline(map, "access", &policy_.deadlines_.access);
    policy_.deadlines_.access_retention_written =
        ReadDeadline(map, "access_retention", &policy_.deadlines_.access_retention);
  }

  // Whether the key was written (valid or not: an invalid one is reported).
  bool ReadDeadline(const MapView& map, const std::string& key, absl::Duration* out) {
    const Entry* e = map.Find(key);
    if (e == nullptr) return false;  // the default stays
    const std::string field = "deadlines." + key;
    if (!e->value.IsScalar()) {
      ValueError(
          *e, "bad duration for " + field + ": " + kDurationForms + ", got " + Describe(e->value));
      return true;
    }
    absl::StatusOr<absl::Duration> d = internal::ParseDurationFor(e->value.Scalar(), field);
    if (!d.ok()) {
      ValueError(*e, std::string(d.status().message()));
      return true;
    }
    *out = *d;
    return true;
  }

  std::vector<Diagnostic>* diagnostics_;
  Policy policy_;
  // domains: was a list, so references to domains can be checked. When it was not, that is
  // reported once and the references are not flagged one by one. (Identity references are
  // checked only against a non-empty identities: list, for the same reason.)
  bool domains_readable_ = false;
  std::vector<std::string> domain_names_;  // every domain name written, valid or not
};

namespace internal {

std::optional<Policy> BuildPolicy(std::string_view yaml, std::vector<Diagnostic>* diagnostics) {
  return PolicyBuilder(diagnostics).Build(yaml);
}

absl::StatusOr<absl::Duration> ParseDurationFor(std::string_view text, std::string_view field) {
  const std::string where = field.empty() ? "" : " for " + std::string(field);
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError("bad duration " + Quote(text) + where + ": " + why);
  };
  if (text.size() < 2) return bad(kDurationForms);
  int64_t hours_per_unit = 0;
  switch (text.back()) {
    case 'h':
      hours_per_unit = 1;
      break;
    case 'd':
      hours_per_unit = 24;
      break;
    case 'w':
      hours_per_unit = 24 * 7;
      break;
    case 'y':
      hours_per_unit = 24 * 365;
      break;
    default:
      return bad(kDurationForms);
  }
  int64_t n = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return bad(kDurationForms);
    n = std::min<int64_t>(n * 10 + (c - '0'), kMaxDurationCount + 1);
  }
  if (n == 0) return bad(kDurationForms);
  if (n > kMaxDurationCount) {
    return bad("the number is too large (at most " + std::to_string(kMaxDurationCount) + ")");
  }
  return absl::Hours(n * hours_per_unit);
}

}  // namespace internal
}  // namespace lethe::policies
