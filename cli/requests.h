// `lethectl request`: data-subject requests (erase, follow, extend, add identities) and
// their erasure certificates.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

// request erase, get, list, extend, add-identity, certificate and watch.
void AddRequestCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
