// `lethectl certs`: the CA and the certificates of mutual TLS, written to --certs-dir.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

// certs create-ca, create-server and create-client.
void AddCertsCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
