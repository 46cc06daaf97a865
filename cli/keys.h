// `lethectl keys`: Ed25519 key pairs (signing) with their X25519 keys (sealing), as files.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

// keys generate.
void AddKeysCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
