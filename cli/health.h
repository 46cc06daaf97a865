// `lethectl health`: lethed's grpc.health.v1 status, service by service, and the services its
// server reflection lists: what a kubelet's probe and grpcurl see, from the CLI operators have.
#pragma once

#include "CLI/CLI.hpp"
#include "cli/flags.h"

namespace lethe::cli {

void AddHealthCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
