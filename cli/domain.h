// `lethectl domain`: onboarding a domain with one command, and checking it for drift.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

// domain init.
void AddDomainCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
