// `lethectl certs create-ca|create-server|create-client`: the files of mutual TLS, written by
// crypto/x509.h into --certs-dir.
#include "cli/certs.h"

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "crypto/x509.h"
#include "nlohmann/json.hpp"

namespace lethe::cli {
namespace {

bool NeedDir(const Global& g) {
  if (g.certs_dir.empty()) {
    std::cerr << "lethectl certs: --certs-dir DIR is required\n";
    return false;
  }
  return true;
}

// What a certs command wrote, in words or (-o json) as {"wrote": [files]}.
void Wrote(const Global& g, const std::vector<std::string>& files, const std::string& words) {
  if (g.json()) {
    std::vector<std::string> paths;
    for (const auto& f : files) paths.push_back(g.certs_dir + "/" + f);
    std::cout << nlohmann::json{{"wrote", paths}}.dump(2) << "\n";
  } else {
    std::cout << words << "\n";
  }
}

}  // namespace

void AddCertsCommands(CLI::App& app, Context& ctx) {
  // The flags' values, kept alive by the callbacks that read them.
  struct Flags {
    std::string trust_domain = "lethe.local";
    std::vector<std::string> hosts;
    std::string role, cert_name;
  };
  auto f = std::make_shared<Flags>();
  auto* certs = app.add_subcommand("certs", "the CA and certificates for mutual TLS (in --certs-dir)")
                    ->require_subcommand(1);
  ctx.examples[certs] = "lethectl certs create-ca --certs-dir certs --trust-domain example.org";
  auto* mkca = certs->add_subcommand("create-ca", "write ca.crt and ca.key (0600); never overwrites");
  mkca->add_option("--trust-domain", f->trust_domain, "SPIFFE trust domain")->capture_default_str();
  mkca->callback([&ctx, f] {
    const Global& g = ctx.g;
    if (!NeedDir(g)) { ctx.rc = 2; return; }
    absl::Status s = lethe::crypto::CreateCa(g.certs_dir, f->trust_domain);
    ctx.rc = s.ok() ? 0 : Fail("certs create-ca", s);
    if (s.ok())
      Wrote(g, {"ca.crt", "ca.key"}, "wrote " + g.certs_dir + "/ca.crt and ca.key (mode 0600) for trust domain " +
                                         f->trust_domain);
  });
  ctx.examples[mkca] = "lethectl certs create-ca --certs-dir certs --trust-domain example.org";
  auto* mksrv = certs->add_subcommand("create-server", "write server.crt and server.key signed by the CA");
  mksrv->add_option("--host", f->hosts, "DNS name or IP address lethed is reached at, repeatable")->required();
  mksrv->callback([&ctx, f] {
    const Global& g = ctx.g;
    if (!NeedDir(g)) { ctx.rc = 2; return; }
    absl::Status s = lethe::crypto::CreateServerCert(g.certs_dir, f->hosts);
    ctx.rc = s.ok() ? 0 : Fail("certs create-server", s);
    if (s.ok())
      Wrote(g, {"server.crt", "server.key"},
            "wrote " + g.certs_dir + "/server.crt and server.key for " + absl::StrJoin(f->hosts, ", "));
  });
  ctx.examples[mksrv] =
      "lethectl certs create-server --certs-dir certs --host lethe.example.org --host 127.0.0.1";
  auto* mkcli = certs->add_subcommand(
      "create-client", "write client.NAME.crt and .key: spiffe://TRUST_DOMAIN/lethe/ROLE/NAME");
  mkcli->add_option("--role", f->role, "admin, operator or auditor")->required();
  mkcli->add_option("--name", f->cert_name, "who holds it, e.g. alice or ci-audit")->required();
  mkcli->callback([&ctx, f] {
    const Global& g = ctx.g;
    if (!NeedDir(g)) { ctx.rc = 2; return; }
    absl::Status s = lethe::crypto::CreateClientCert(g.certs_dir, f->role, f->cert_name);
    ctx.rc = s.ok() ? 0 : Fail("certs create-client", s);
    if (s.ok())
      Wrote(g, {"client." + f->cert_name + ".crt", "client." + f->cert_name + ".key"},
            "wrote " + g.certs_dir + "/client." + f->cert_name + ".crt and .key (role " + f->role + ")");
  });
  ctx.examples[mkcli] = "lethectl certs create-client --certs-dir certs --role operator --name olga";
}

}  // namespace lethe::cli
