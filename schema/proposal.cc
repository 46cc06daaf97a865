#include "schema/proposal.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <climits>
#include <map>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "nlohmann/json.hpp"

namespace lethe::schema {
namespace {

using policies::Policy;

bool IsLowerName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// "[schema.]name" as a policy reads it: the schema defaults to public.
bool SplitTableName(const std::string& s, std::string* schema, std::string* name) {
  const std::vector<std::string> parts = absl::StrSplit(s, '.');
  if (parts.size() == 1) {
    *schema = "public";
    *name = parts[0];
  } else if (parts.size() == 2) {
    *schema = parts[0];
    *name = parts[1];
  } else {
    return false;
  }
  return IsPolicyIdentifier(*schema) && IsPolicyIdentifier(*name);
}

// Which `match` a table keyed by `type` gets when it writes none (policies/policy.h).
policies::Match DefaultMatch(const Policy* policy, const std::string& type) {
  if (policy != nullptr)
    for (policies::Normalizer n : policy->Normalizers(type))
      if (n == policies::Normalizer::kLowercase) return policies::Match::kCaseInsensitive;
  return policies::Match::kExact;
}

policies::Table DeleteTable(const Table& t, const std::string& key, const std::string& identity,
                            const Policy* policy) {
  policies::Table out;
  out.schema = t.schema;
  out.name = t.name;
  out.key_column = key;
  out.identity = identity;
  out.action = policies::TableAction::kDelete;
  out.match = DefaultMatch(policy, identity);
  return out;
}

std::string List(const std::vector<std::string>& names, size_t max = 12) {
  if (names.empty()) return "none";
  if (names.size() <= max) return absl::StrJoin(names, ", ");
  return absl::StrCat(absl::StrJoin(names.begin(), names.begin() + max, ", "), ", and ",
                      names.size() - max, " more");
}

std::vector<std::string> ColumnNames(const Table& t) {
  std::vector<std::string> out;
  for (const Column& c : t.columns) out.push_back(c.name);
  return out;
}

std::string JsonQuoted(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A policy duration for `d`: the largest of y (365 days), w, d and h that divides it.
std::string DurationText(absl::Duration d) {
  const int64_t hours = absl::ToInt64Hours(d);
  if (hours % (24 * 365) == 0) return absl::StrCat(hours / (24 * 365), "y");
  if (hours % (24 * 7) == 0) return absl::StrCat(hours / (24 * 7), "w");
  if (hours % 24 == 0) return absl::StrCat(hours / 24, "d");
  return absl::StrCat(hours, "h");
}

void RenderTable(const ProposedTable& pt, const Policy* policy, const std::string& ind, std::string* out) {
  const policies::Table& t = pt.table;
  if (!pt.why.empty()) absl::StrAppend(out, ind, "# ", pt.why, "\n");
  if (!pt.also.empty())
    absl::StrAppend(out, ind, "# also holds likely identity column", pt.also.size() == 1 ? " " : "s ",
                    absl::StrJoin(pt.also, ", "), "\n");
  absl::StrAppend(out, ind, "- table: ", YamlScalar(t.QualifiedName()), "\n");
  absl::StrAppend(out, ind, "  key: ", YamlScalar(t.key_column), "\n");
  absl::StrAppend(out, ind, "  identity: ", YamlScalar(t.identity), "\n");
  absl::StrAppend(out, ind, "  action: ", policies::Table::ActionName(t.action), "\n");
  if (t.match != DefaultMatch(policy, t.identity))
    absl::StrAppend(out, ind, "  match: ", policies::MatchName(t.match), "\n");
  switch (t.action) {
    case policies::TableAction::kDelete:
      break;
    case policies::TableAction::kAnonymize:
      absl::StrAppend(out, ind, "  set:\n");
      for (const policies::ColumnRewrite& rw : t.set) {
        absl::StrAppend(out, ind, "    ", YamlScalar(rw.column), ": ");
        switch (rw.kind) {
          case policies::ColumnRewrite::Kind::kNull: absl::StrAppend(out, "null\n"); break;
          case policies::ColumnRewrite::Kind::kHash: absl::StrAppend(out, "hash\n"); break;
          case policies::ColumnRewrite::Kind::kConstant: absl::StrAppend(out, JsonQuoted(rw.constant), "\n"); break;
        }
      }
      break;
    case policies::TableAction::kRetain:
      absl::StrAppend(out, ind, "  basis: ", JsonQuoted(t.basis), "\n");
      absl::StrAppend(out, ind, "  period: ", DurationText(t.period), "\n");
      break;
  }
}

// Lines of `text`, each with its '\n' (the last one may lack it).
std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size() - 1;
    out.emplace_back(text.substr(at, nl - at + 1));
    at = nl + 1;
  }
  return out;
}

bool BlankOrComment(const std::string& line, size_t* indent) {
  const size_t first = line.find_first_not_of(" \t\r\n");
  *indent = first == std::string::npos ? 0 : first;
  return first == std::string::npos || line[first] == '#';
}

}  // namespace

std::string YamlScalar(std::string_view s) {
  static const std::set<std::string> kSpecial = {"null", "true", "false", "yes", "no", "on", "off", "y", "n", "~"};
  const bool plain =
      !s.empty() && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_') &&
      std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '.' || c == '-';
      }) &&
      !kSpecial.count(absl::AsciiStrToLower(absl::string_view(s.data(), s.size())));
  return plain ? std::string(s) : JsonQuoted(s);
}

absl::StatusOr<Proposal> Propose(const Snapshot& db, const ProposalOptions& o) {
  Proposal p;
  p.domain = o.domain;
  const Policy* policy = o.policy;
  const std::vector<std::string> policy_types = policy ? policy->identities() : std::vector<std::string>{};
  auto allowed = [&](const std::string& type) { return policy == nullptr || policy->HasIdentity(type); };
  std::vector<ProposedTable> included;
  auto find = [&](const std::string& qualified) -> ProposedTable* {
    for (ProposedTable& pt : included)
      if (pt.table.QualifiedName() == qualified) return &pt;
    return nullptr;
  };

  // The policy's own section of the domain is where a re-run starts: what was reviewed stays.
  if (const policies::Domain* d = policy ? policy->FindDomain(o.domain) : nullptr) {
    p.kept_section = true;
    p.kafka_topics = d->kafka_topics;
    for (const policies::Table& t : d->tables) {
      included.push_back({t, "kept from the policy's section of domain " + o.domain, {}});
      if (db.FindTable(t.QualifiedName()) == nullptr)
        p.notes.push_back(t.QualifiedName() + " is in the policy's section but not in the database: kept; "
                          "remove it if the table is gone (the agent's purges fail on it)");
    }
  }

  if (!o.tables.empty()) {
    std::set<std::string> named;
    for (const ExplicitTable& e : o.tables) {
      std::string schema, name;
      if (!SplitTableName(e.table, &schema, &name))
        return absl::InvalidArgumentError("--table \"" + Quote(e.table, 80) +
                                          "\": expected [schema.]table, each part [A-Za-z_][A-Za-z0-9_]*, "
                                          "at most 63 characters");
      const std::string q = schema + "." + name;
      if (!named.insert(q).second) return absl::InvalidArgumentError("--table " + q + " is given twice");
      const Table* t = db.FindTable(q);
      if (t == nullptr) {
        std::vector<std::string> names;
        for (const Table& x : db.tables) names.push_back(x.QualifiedName());
        return absl::InvalidArgumentError("--table " + q + ": the database has no such table (it has: " +
                                          List(names) + ")");
      }
      if (t->FindColumn(e.key) == nullptr)
        return absl::InvalidArgumentError("--key \"" + Quote(e.key, 80) + "\" (of --table " + q +
                                          "): the table has no such column (it has: " + List(ColumnNames(*t)) + ")");
      if (!IsPolicyIdentifier(e.key))
        return absl::InvalidArgumentError("--key \"" + Quote(e.key, 80) + "\" (of --table " + q +
                                          "): a policy cannot name this column (expected [A-Za-z_][A-Za-z0-9_]*)");
      if (!IsLowerName(e.identity))
        return absl::InvalidArgumentError("--identity \"" + Quote(e.identity, 80) + "\" (of --table " + q +
                                          "): expected an identity type name, [a-z0-9_]+");
      if (!allowed(e.identity))
        return absl::InvalidArgumentError("--identity " + e.identity + " (of --table " + q +
                                          "): not an identity type of the policy (it has: " +
                                          List(policy_types) + ")");
      ProposedTable pt{DeleteTable(*t, e.key, e.identity, policy), "named by --table", {}};
      if (ProposedTable* existing = find(q)) {
        *existing = std::move(pt);
      } else {
        included.push_back(std::move(pt));
      }
    }
  } else {
    // From the heuristic: each table that can be keyed by a likely identity column of an
    // allowed type. A domain purges only when a request carries every type its tables use,
    // so the types are chosen to be as few as they can: those the section already uses, then
    // each time the type that keys the most tables still open (ties: KeyPreference).
    struct Candidate {
      const Table* table;
      std::map<std::string, std::string> column_of;  // type -> the first column of that type
    };
    std::vector<Candidate> open;
    for (const Table& t : db.tables) {
      if (find(t.QualifiedName()) != nullptr || !IsPolicyIdentifier(t.schema) || !IsPolicyIdentifier(t.name))
        continue;
      Candidate c{&t, {}};
      for (const Column& col : t.columns) {
        auto guess = LikelyIdentity(col.name, policy_types);
        if (guess && guess->keyable && allowed(guess->type) && IsPolicyIdentifier(col.name))
          c.column_of.emplace(guess->type, col.name);
      }
      if (!c.column_of.empty()) open.push_back(std::move(c));
    }
    std::map<const Table*, std::string> type_of;
    auto assign = [&](const std::string& type) {
      for (const Candidate& c : open)
        if (!type_of.count(c.table) && c.column_of.count(type)) type_of[c.table] = type;
    };
    for (const ProposedTable& pt : included) assign(pt.table.identity);
    while (true) {
      std::map<std::string, int> count;
      for (const Candidate& c : open)
        if (!type_of.count(c.table))
          for (const auto& [type, column] : c.column_of) ++count[type];
      if (count.empty()) break;
      auto best = count.begin();
      for (auto it = count.begin(); it != count.end(); ++it)
        if (it->second > best->second ||
            (it->second == best->second && KeyPreference(it->first) < KeyPreference(best->first)))
          best = it;
      assign(best->first);
    }
    std::set<std::string> guessed;
    for (const Candidate& c : open) {  // in the database's order
      const std::string& type = type_of.at(c.table);
      const std::string& column = c.column_of.at(type);
      included.push_back({DeleteTable(*c.table, column, type, policy),
                          "column " + column + " looks like identity type " + type, {}});
      guessed.insert(c.table->QualifiedName());
    }
    // A guessed table that references a deleted one through the parent's key column is keyed
    // by that column: then every row that would block the parent's delete goes first, whatever
    // the table's other identity columns hold (a NULL, another spelling).
    for (bool changed = true; changed;) {
      changed = false;
      for (const ForeignKey& fk : db.foreign_keys) {
        ProposedTable* child = guessed.count(fk.table) ? find(fk.table) : nullptr;
        const ProposedTable* parent = find(fk.references);
        if (child == nullptr || parent == nullptr || fk.columns.size() != 1 || fk.table == fk.references ||
            parent->table.action != policies::TableAction::kDelete ||
            fk.referenced_columns[0] != parent->table.key_column || child->table.key_column == fk.columns[0] ||
            !IsPolicyIdentifier(fk.columns[0]))
          continue;
        const Table* t = db.FindTable(fk.table);
        child->table = DeleteTable(*t, fk.columns[0], parent->table.identity, policy);
        child->why = "references " + fk.references + " by foreign key " + fk.name + " (" + fk.columns[0] + ")";
        guessed.erase(fk.table);  // keyed once: no cycle of foreign keys can flip it back and forth
        changed = true;
      }
    }
  }

  // Tables whose rows would block a proposed delete: those that reference a deleted table
  // through a column holding an identity (the parent's key, or a likely identity column).
  for (bool grew = true; grew;) {
    grew = false;
    for (const ForeignKey& fk : db.foreign_keys) {
      if (fk.columns.size() != 1 || fk.table == fk.references || find(fk.table) != nullptr) continue;
      const ProposedTable* parent = find(fk.references);
      const Table* child = db.FindTable(fk.table);
      if (parent == nullptr || child == nullptr || parent->table.action != policies::TableAction::kDelete ||
          !IsPolicyIdentifier(child->schema) || !IsPolicyIdentifier(child->name) ||
          !IsPolicyIdentifier(fk.columns[0]))
        continue;
      std::string type;
      if (fk.referenced_columns[0] == parent->table.key_column) {
        type = parent->table.identity;
      } else if (auto guess = LikelyIdentity(fk.columns[0], policy_types);
                 guess && guess->keyable && allowed(guess->type)) {
        type = guess->type;
      } else {
        continue;
      }
      included.push_back({DeleteTable(*child, fk.columns[0], type, policy),
                          "references " + fk.references + " by foreign key " + fk.name + " (" + fk.columns[0] + ")",
                          {}});
      grew = true;
    }
  }

  if (included.empty())
    return absl::FailedPreconditionError(
        "no table of the database has a column that likely holds an identity" +
        std::string(policy ? " of a type of the policy (" + List(policy_types) + ")" : "") +
        "; name the tables with --table T --key COLUMN --identity TYPE");

  std::vector<std::string> names;
  for (const ProposedTable& pt : included) names.push_back(pt.table.QualifiedName());
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> order, OrderChildrenFirst(names, db.foreign_keys));
  for (const std::string& name : order) p.tables.push_back(*find(name));

  for (ProposedTable& pt : p.tables) {
    if (std::find(p.identities.begin(), p.identities.end(), pt.table.identity) == p.identities.end())
      p.identities.push_back(pt.table.identity);
    const Table* t = db.FindTable(pt.table.QualifiedName());
    if (t == nullptr) continue;
    for (const Column& c : t->columns)
      if (c.name != pt.table.key_column)
        if (auto guess = LikelyIdentity(c.name, policy_types)) pt.also.push_back(c.name + " (" + guess->type + ")");
  }
  for (const policies::KafkaTopic& topic : p.kafka_topics)
    for (const std::string& type : topic.identities)
      if (std::find(p.identities.begin(), p.identities.end(), type) == p.identities.end()) p.identities.push_back(type);

  if (policy != nullptr)
    for (const Table& t : db.tables)
      for (const Column& c : t.columns)
        if (auto guess = LikelyIdentity(c.name, policy_types); guess && !allowed(guess->type))
          p.unmapped.push_back({t.QualifiedName(), c.name, guess->type});

  for (const Table& t : db.tables) {
    if (find(t.QualifiedName()) != nullptr) continue;
    LeftOut l{t.QualifiedName(), {}, ""};
    bool keyable = false, keyable_allowed = false;
    std::vector<std::string> other_types;
    for (const Column& c : t.columns) {
      auto guess = LikelyIdentity(c.name, policy_types);
      if (!guess) continue;
      l.columns.push_back({l.table, c.name, guess->type});
      keyable = keyable || guess->keyable;
      keyable_allowed = keyable_allowed || (guess->keyable && allowed(guess->type));
      if (!allowed(guess->type)) other_types.push_back(guess->type);
    }
    if (l.columns.empty()) continue;
    if (!IsPolicyIdentifier(t.schema) || !IsPolicyIdentifier(t.name)) {
      l.why = "a policy cannot name this table (names are [A-Za-z_][A-Za-z0-9_]*, at most 63 characters)";
    } else if (!o.tables.empty()) {
      l.why = "not named by --table";
    } else if (!keyable) {
      l.why = "values of " + l.columns.front().identity +
              " are shared by several people, so no column keys one person's rows";
    } else if (!keyable_allowed) {
      l.why = "its identity type" + std::string(other_types.size() == 1 ? " " : "s ") + List(other_types) +
              (other_types.size() == 1 ? " is" : " are") + " not among the policy's identities (" +
              List(policy_types) + ")";
    } else {
      l.why = "a policy cannot name its identity column (names are [A-Za-z_][A-Za-z0-9_]*)";
    }
    p.left_out.push_back(std::move(l));
  }

  for (const ForeignKey& fk : db.foreign_keys) {
    const ProposedTable* parent = find(fk.references);
    if (parent == nullptr || fk.table == fk.references || find(fk.table) != nullptr ||
        parent->table.action != policies::TableAction::kDelete)
      continue;
    p.notes.push_back(fk.table + " references " + fk.references + " by foreign key " + fk.name + " (" +
                      absl::StrJoin(fk.columns, ", ") + ") and is not in the section: deleting a person's rows from " +
                      fk.references + " fails while rows of " + fk.table +
                      " reference them (or, ON DELETE CASCADE, deletes those unlisted)");
  }
  return p;
}

std::string RenderDomainItem(const Proposal& p, const Policy* policy) {
  std::string out = "- name: " + YamlScalar(p.domain) + "\n";
  absl::StrAppend(&out, "  postgres:\n    tables:\n");
  for (const ProposedTable& pt : p.tables) RenderTable(pt, policy, "      ", &out);
  if (!p.kafka_topics.empty()) {
    absl::StrAppend(&out, "  kafka:\n    topics:\n");
    for (const policies::KafkaTopic& t : p.kafka_topics)
      absl::StrAppend(&out, "      - topic: ", YamlScalar(t.topic), "\n        key: ", JsonQuoted(t.key_template), "\n");
  }
  return out;
}

std::string RenderSection(const Proposal& p, const Policy* policy, std::string_view policy_name) {
  std::string out = absl::StrCat(
      "# PROPOSAL, to review before use: the policy section of domain ", p.domain, ",\n",
      "# generated by `lethectl domain init` from the schema of the domain's database (the\n",
      "# catalog only: no row was read). Check before you activate it:\n",
      "#   - each table's key column and identity type;\n",
      "#   - each action: every proposed table is `delete`; where rows must stay, make it\n",
      "#     `anonymize` or `retain` (docs/policy.md);\n",
      "#   - the order: tables come children first (one that references another by a foreign key\n",
      "#     comes before it), as the agent must purge them; keep that order;\n",
      p.kafka_topics.empty() ? "#   - Kafka: topics are not proposed; add the domain's compacted topics under kafka:.\n"
                             : "#   - Kafka: the topics are kept from the policy's section.\n");
  if (p.kept_section)
    absl::StrAppend(&out, "# The tables of domain ", p.domain, " in ", std::string(policy_name),
                    " are kept as they were; tables the database gained are added.\n");
  absl::StrAppend(&out, "# It is one item of the policy's `domains:` list; the policy's `identities:` must list\n",
                  "# the identity types it uses: ", absl::StrJoin(p.identities, ", "), "\n");
  if (!p.left_out.empty()) {
    absl::StrAppend(&out, "#\n# NOT COVERED: tables with likely identity columns that this section leaves out\n",
                    "# (add them, or leave them out knowingly; `lethectl domain init --check` reports them):\n");
    for (const LeftOut& l : p.left_out) {
      std::vector<std::string> cols;
      for (const DriftColumn& c : l.columns) cols.push_back(c.column + " (" + c.identity + ")");
      absl::StrAppend(&out, "#   ", l.table, ": ", absl::StrJoin(cols, ", "), ": ", l.why, "\n");
    }
  }
  if (!p.unmapped.empty()) {
    absl::StrAppend(&out, "#\n# Likely identity columns of types the policy does not list (", std::string(policy_name),
                    "):\n");
    for (const DriftColumn& c : p.unmapped)
      absl::StrAppend(&out, "#   ", c.table, ".", c.column, " (", c.identity, ")\n");
  }
  if (!p.notes.empty()) {
    absl::StrAppend(&out, "#\n# NOTES:\n");
    for (const std::string& n : p.notes) absl::StrAppend(&out, "#   ", n, "\n");
  }
  absl::StrAppend(&out, "\n", RenderDomainItem(p, policy));
  return out;
}

absl::StatusOr<std::string> MergeIntoPolicy(std::string_view policy_yaml, std::string_view source_name,
                                            const Proposal& p) {
  const std::string source(source_name);
  // Valid to begin with; it decides which match is each identity type's default.
  LETHE_ASSIGN_OR_RETURN(const Policy original, Policy::Parse(policy_yaml, source_name));
  const auto cannot = [&](const std::string& why) {
    return absl::InvalidArgumentError("domains in " + source + ": " + why +
                                      "; add policy-section.yaml to the policy by hand");
  };
  YAML::Node root;
  try {
    root = YAML::Load(std::string(policy_yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(source + ": not YAML: " + e.what());
  }
  if (!root.IsMap()) return cannot("the policy is not a YAML map");
  YAML::Node domains;
  int domains_line = -1;
  for (auto it = root.begin(); it != root.end(); ++it)
    if (it->first.IsScalar() && it->first.Scalar() == "domains") {
      domains = it->second;
      domains_line = it->first.Mark().line;
    }
  if (domains_line < 0 || !domains.IsSequence() || domains.size() == 0 ||
      domains.Style() != YAML::EmitterStyle::Block)
    return cannot("not a block list (\"- name: ...\" items, one under the other)");
  // Where the domains end: the next top-level key, or the end of the file.
  std::vector<std::string> lines = Lines(policy_yaml);
  int end_of_domains = static_cast<int>(lines.size());
  for (auto it = root.begin(); it != root.end(); ++it)
    if (it->first.Mark().line > domains_line) end_of_domains = std::min(end_of_domains, it->first.Mark().line);

  struct Item {
    int line;
    size_t dash;
    bool ours;
  };
  std::vector<Item> items;
  for (const YAML::Node& item : domains) {
    const YAML::Mark m = item.Mark();
    if (!item.IsMap() || m.line < 0 || m.line >= static_cast<int>(lines.size())) return cannot("an item is not a map");
    // "<spaces>- <first key>": the item starts on its dash's line.
    const std::string& line = lines[m.line];
    const size_t dash = line.find_first_not_of(' ');
    if (dash == std::string::npos || line[dash] != '-' || static_cast<size_t>(m.column) <= dash ||
        line.find_first_not_of(' ', dash + 1) != static_cast<size_t>(m.column))
      return cannot("item at line " + std::to_string(m.line + 1) + " does not start with \"- \" on its first key's line");
    const YAML::Node name = item["name"];
    items.push_back({m.line, dash, name.IsScalar() && name.Scalar() == p.domain});
  }
  // An item's lines run to the next item's first line (or the end of the domains), less the
  // blank lines and the comments at or left of its dash just before it: those belong to what
  // follows.
  auto end_of = [&](size_t i) {
    int end = i + 1 < items.size() ? items[i + 1].line : end_of_domains;
    size_t indent = 0;
    while (end - 1 > items[i].line && BlankOrComment(lines[end - 1], &indent) &&
           (indent <= items[i].dash || lines[end - 1].find_first_not_of(" \t\r\n") == std::string::npos))
      --end;
    return end;
  };
  size_t target = items.size();
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i].ours) target = i;
  const size_t dash = items[target == items.size() ? items.size() - 1 : target].dash;
  std::string item;
  for (const std::string& line : Lines(RenderDomainItem(p, &original)))
    item += (line == "\n" ? "" : std::string(dash, ' ')) + line;

  std::string out;
  int from, to;
  if (target < items.size()) {
    from = items[target].line;
    to = end_of(target);
  } else {
    from = to = end_of(items.size() - 1);
    if (!lines[from - 1].empty() && lines[from - 1].back() != '\n') item = "\n" + item;
    if (lines[from - 1].find_first_not_of(" \t\r\n") != std::string::npos) item = "\n" + item;
  }
  for (int i = 0; i < from; ++i) out += lines[i];
  out += item;
  for (int i = to; i < static_cast<int>(lines.size()); ++i) out += lines[i];

  auto merged = Policy::Parse(out, source);
  if (!merged.ok())
    return absl::FailedPreconditionError("the policy with the proposed section of domain " + p.domain +
                                         " does not validate: " + std::string(merged.status().message()));
  const policies::Domain* d = merged->FindDomain(p.domain);
  bool same = d != nullptr && d->tables.size() == p.tables.size();
  for (size_t i = 0; same && i < p.tables.size(); ++i)
    same = d->tables[i].QualifiedName() == p.tables[i].table.QualifiedName() &&
           d->tables[i].key_column == p.tables[i].table.key_column;
  if (!same)
    return absl::InternalError("the policy with the proposed section of domain " + p.domain +
                               " does not read back as proposed");
  return out;
}

}  // namespace lethe::schema
