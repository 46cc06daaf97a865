// How lethectl describes itself: `version`, `completion` (a shell completion script), the
// example, global flags and exit codes at the end of every --help, and the nearest command
// when a command word is not one.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

// version and completion (which reads the commands of `app` as they are when it runs).
void AddHelpCommands(CLI::App& app, Context& ctx);

// Every command's --help ends with its example (from `examples`), the global flags and the
// exit codes.
void AddHelpFooters(CLI::App& app, const std::map<const CLI::App*, std::string>& examples);

// Walks the command words of argv (skipping global flags and their values): at the first word
// that is not a command of its level, prints "unknown command" with the nearest one and
// returns the usage exit code. `help` prints the help of the level it is at.
std::optional<int> UnknownCommand(CLI::App& app, int argc, char** argv);

}  // namespace lethe::cli
