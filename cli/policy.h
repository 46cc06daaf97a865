// `lethectl policy`: policy files checked locally, activated in lethed, and the active policy
// with its history.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

// policy validate, activate and show.
void AddPolicyCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
