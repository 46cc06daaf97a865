// lethectl describing itself: version, shell completion, help footers with examples, and
// the nearest command to a mistyped one (cli/help.h).
#include "cli/help.h"

#include <algorithm>
#include <functional>
#include <iostream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/exit_codes.h"

namespace lethe::cli {
namespace {

constexpr char kVersion[] = "0.9.0";

// The names of `app`'s subcommands.
std::vector<std::string> CommandNames(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* sub : app.get_subcommands({})) out.push_back(sub->get_name());
  return out;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// A completion script for bash or zsh (through bashcompinit): command words per level, and
// the flags of the deepest command given.
int PrintCompletion(const CLI::App& app, const std::string& shell) {
  std::string cases;
  std::function<void(const CLI::App&, const std::string&)> walk = [&](const CLI::App& a, const std::string& key) {
    std::vector<std::string> words = CommandNames(a);
    for (const CLI::Option* o : a.get_options({}))
      for (const auto& n : o->get_lnames()) words.push_back("--" + n);
    absl::StrAppend(&cases, "    \"", key, "\") words=\"", absl::StrJoin(words, " "), "\" ;;\n");
    for (const CLI::App* sub : a.get_subcommands({}))
      walk(*sub, key.empty() ? sub->get_name() : key + " " + sub->get_name());
  };
  walk(app, "");
  std::cout << (shell == "zsh" ? "autoload -U +X bashcompinit && bashcompinit\n" : "")
            << "_lethectl() {\n"
               "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" key=\"\" w words\n"
               "  for w in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do\n"
               "    case \"$w\" in -*) ;; *) key=\"${key:+$key }$w\" ;; esac\n"
               "  done\n"
               "  case \"$key\" in\n"
            << cases
            << "    *) words=\"\" ;;\n"
               "  esac\n"
               "  COMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") )\n"
               "}\n"
               "complete -o default -F _lethectl lethectl\n";
  return 0;
}
}  // namespace

void AddHelpCommands(CLI::App& app, Context& ctx) {
  auto* version = app.add_subcommand("version", "print lethectl's version");
  version->callback([&ctx] {
    std::cout << "lethectl " << kVersion << "\n";
    ctx.rc = 0;
  });
  ctx.examples[version] = "lethectl version";
  // The shell's value, kept alive by the callback that reads it.
  auto shell = std::make_shared<std::string>();
  auto* completion = app.add_subcommand("completion", "print a completion script: source <(lethectl completion bash)");
  completion->add_option("shell", *shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  completion->callback([&ctx, &app, shell] { ctx.rc = PrintCompletion(app, *shell); });
  ctx.examples[completion] = "source <(lethectl completion bash)";
  app.set_version_flag("--version", std::string("lethectl ") + kVersion);
}

void AddHelpFooters(CLI::App& app, const std::map<const CLI::App*, std::string>& examples) {
  const std::string footer = absl::StrCat(
      "Global flags (before or after the command): --addr HOST:PORT (LETHE_ADDR), -o text|json, "
      "--certs-dir DIR (LETHE_CERTS_DIR), --cert FILE --key FILE, --insecure\n\n",
      kExitCodesHelp);
  std::function<void(CLI::App*)> add_footer = [&](CLI::App* a) {
    auto ex = examples.find(a);
    a->footer(ex == examples.end() ? footer : "Example:\n  " + ex->second + "\n\n" + footer);
    for (CLI::App* sub : a->get_subcommands({})) add_footer(sub);
  };
  add_footer(&app);
}

std::optional<int> UnknownCommand(CLI::App& app, int argc, char** argv) {
  static const std::vector<std::string> kValued = {"--addr", "-o", "--output", "--certs-dir", "--cert", "--key"};
  CLI::App* level = &app;
  std::string path = "lethectl";
  for (int i = 1; i < argc; ++i) {
    const std::string w = argv[i];
    if (w == "--") break;
    if (!w.empty() && w[0] == '-') {
      if (std::find(kValued.begin(), kValued.end(), w) != kValued.end()) ++i;
      continue;
    }
    const std::vector<std::string> names = CommandNames(*level);
    if (names.empty()) return std::nullopt;  // a leaf: the rest are its arguments
    if (w == "help") {
      std::cout << level->help();
      return 0;
    }
    if (std::find(names.begin(), names.end(), w) != names.end()) {
      level = level->get_subcommand(w);
      path += " " + w;
      continue;
    }
    std::string best;
    size_t best_d = 3;  // suggest only what is close
    for (const auto& n : names) {
      const size_t d = EditDistance(w, n);
      if (d < best_d) best_d = d, best = n;
    }
    std::cerr << path << ": unknown command \"" << w << "\"";
    if (!best.empty()) std::cerr << "; did you mean \"" << best << "\"?";
    std::cerr << "\n  commands: " << absl::StrJoin(names, ", ") << "\n  see: " << path << " --help\n";
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace lethe::cli
