#include "agents/subject_keys.h"

#include <map>

namespace lethe::agents {
namespace {

struct Part {
  bool is_identity = false;
  std::string_view text;  // the literal text, or the identity type it stands for
};

// Literal text and {type} placeholders, in order; false for a malformed template.
bool Split(std::string_view tmpl, std::vector<Part>* parts) {
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find_first_of("{}", i);
    if (open == std::string_view::npos) {
      parts->push_back({false, tmpl.substr(i)});
      break;
    }
    if (tmpl[open] == '}') return false;
    if (open > i) parts->push_back({false, tmpl.substr(i, open - i)});
    const size_t close = tmpl.find_first_of("{}", open + 1);
    if (close == std::string_view::npos || tmpl[close] != '}') return false;
    parts->push_back({true, tmpl.substr(open + 1, close - open - 1)});
    i = close + 1;
  }
  return true;
}

}  // namespace

std::vector<std::string> SubjectKeys(std::string_view key_template, const std::vector<std::string>& types,
                                     const OpenedIdentities& ids) {
  std::vector<Part> parts;
  if (!Split(key_template, &parts)) return {};
  std::vector<std::map<std::string_view, const SecretBytes*>> combos(1);
  for (const auto& type : types) {
    std::vector<std::map<std::string_view, const SecretBytes*>> next;
    for (const auto& id : ids.identities()) {
      if (id.type != type) continue;
      for (auto c : combos) {
        c[type] = &id.value;
        next.push_back(std::move(c));
      }
    }
    combos = std::move(next);
  }
  std::vector<std::string> keys;
  for (const auto& c : combos) {
    std::string key;
    bool complete = true;
    for (const Part& part : parts) {
      if (!part.is_identity) {
        key += part.text;
        continue;
      }
      const auto it = c.find(part.text);
      if (it == c.end()) {
        complete = false;
        break;
      }
      key += RevealSecret(*it->second);  // the raw identity goes into the key
    }
    if (complete) keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace lethe::agents
