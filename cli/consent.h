// `lethectl consent`: consent per data subject and purpose, recorded in lethed's ledger.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

// consent grant, withdraw, show and list.
void AddConsentCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
