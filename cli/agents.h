// `lethectl agent`: the agents' receipt-signing keys that lethed's ledger records.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

// agent enroll, revoke and list.
void AddAgentCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
