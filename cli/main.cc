// lethectl: the command line of privacy operators and auditors. This file builds the app
// from the command groups (one file each: certs, keys, agents, requests, ledger, policy,
// consent, domain) and runs it.
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/agents.h"
#include "cli/certs.h"
#include "cli/consent.h"
#include "cli/domain.h"
#include "cli/exit_codes.h"
#include "cli/flags.h"
#include "cli/health.h"
#include "cli/help.h"
#include "cli/json.h"
#include "cli/keys.h"
#include "cli/ledger.h"
#include "cli/policy.h"
#include "cli/requests.h"
#include "crypto/process.h"

int main(int argc, char** argv) {
  namespace cli = lethe::cli;
  cli::Context ctx;
  lethe::DisableCoreDumps();
  CLI::App app{"lethectl: submit and track data-subject requests; verify the Lethe ledger", "lethectl"};
  app.require_subcommand(1);
  // Global flags may follow the subcommand too: `lethectl consent list --purpose p -o json`.
  app.fallthrough();
  cli::AddGlobalFlags(app, ctx.g);
  cli::AddCertsCommands(app, ctx);
  cli::AddKeysCommands(app, ctx);
  cli::AddAgentCommands(app, ctx);
  cli::AddRequestCommands(app, ctx);
  cli::AddLedgerCommands(app, ctx);
  cli::AddPolicyCommands(app, ctx);
  cli::AddConsentCommands(app, ctx);
  cli::AddHealthCommands(app, ctx);
  cli::AddDomainCommands(app, ctx);
  cli::AddHelpCommands(app, ctx);
  cli::AddHelpFooters(app, ctx.examples);

  // A command word that is not one: say so, with the nearest command, instead of CLI11's
  // "A subcommand is required".
  if (std::optional<int> r = cli::UnknownCommand(app, argc, argv)) return *r;
  // -o yaml: what the command prints (JSON) is collected and converted when it is done.
  std::ostringstream collected;
  std::streambuf* terminal = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a == "-oyaml" || a == "--output=yaml" ||
        ((a == "-o" || a == "--output") && i + 1 < argc && std::string(argv[i + 1]) == "yaml"))
      terminal = std::cout.rdbuf(collected.rdbuf());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (terminal != nullptr) std::cout.rdbuf(terminal);
    const int code = app.exit(e);
    return code == 0 ? 0 : cli::kExitUsage;
  }
  if (terminal != nullptr) {
    std::cout.rdbuf(terminal);
    std::cout << cli::JsonTextToYaml(collected.str());
  }
  return ctx.rc;
}
