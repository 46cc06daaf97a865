// `lethectl ledger`: the ledger verified online or offline (audit/offline_verify.h), its
// checkpoints kept and checked, inclusion proofs and exports; and the checkpoint fetch that
// other commands verify against.
#pragma once

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "lethe/v1/api.grpc.pb.h"

namespace lethe::cli {

// lethed's latest checkpoint with its public key (`fresh`: signed for the current size first).
absl::StatusOr<lethe::v1::CheckpointView> FetchCheckpoint(const Global& g, bool fresh);

// ledger verify, checkpoint, verifier-key, proof and export.
void AddLedgerCommands(CLI::App& app, Context& ctx);

}  // namespace lethe::cli
