// `lethectl agent enroll|revoke|list`: lethed's Agents service, which records agent keys in
// the ledger.
#include "cli/agents.h"

#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "cli/render.h"
#include "crypto/crypto.h"
#include "lethe/v1/api.grpc.pb.h"

namespace lethe::cli {
namespace {

namespace v1 = lethe::v1;

int AgentEnroll(const Global& g, const std::string& domain, const std::string& pub_path) {
  auto pem = lethe::ReadFile(pub_path);
  if (!pem.ok()) return Fail("agent enroll", pem.status());
  auto api = v1::Agents::NewStub(Connect(g));
  v1::EnrollAgentRequest req;
  req.set_domain(domain);
  req.set_public_key_pem(*pem);
  v1::AgentView resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->Enroll(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("agent enroll", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    std::cout << "enrolled agent key " << resp.key_id() << " for domain " << resp.domain()
              << " (ledger entry " << resp.entry() << ")\n";
  }
  return 0;
}

int AgentRevoke(const Global& g, const std::string& domain, const std::string& key_id,
                const std::string& reason) {
  auto api = v1::Agents::NewStub(Connect(g));
  v1::RevokeAgentKeyRequest req;
  req.set_domain(domain);
  req.set_key_id(key_id);
  req.set_reason(reason);
  v1::AgentView resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->Revoke(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("agent revoke", s);
  if (g.json()) {
    std::cout << Json(resp);
  } else {
    std::cout << "revoked agent key " << resp.key_id() << " of domain " << resp.domain()
              << " (ledger entry " << resp.revoked_entry()
              << "); receipts it signs from now on are refused\n";
  }
  return 0;
}

int AgentList(const Global& g) {
  auto api = v1::Agents::NewStub(Connect(g));
  v1::ListAgentsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->List(&ctx, v1::ListAgentsRequest(), &resp);
  if (!s.ok()) return FailGrpc("agent list", s);
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  std::cout << absl::StrFormat("%-16s %-18s %-8s %-6s %-20s %s\n", "DOMAIN", "KEY ID", "STATE",
                               "ENTRY", "ENROLLED", "BY");
  for (const auto& a : resp.agents()) {
    std::cout << absl::StrFormat("%-16s %-18s %-8s %-6d %-20s %s\n", a.domain(), a.key_id(),
                                 a.state() == v1::REVOKED ? "REVOKED" : "ACTIVE", a.entry(),
                                 Time(a.enrolled_unix_ms()), ActorLine(a.enrolled_by()));
    if (a.state() == v1::REVOKED)
      std::cout << absl::StrFormat("  revoked %s by %s (ledger entry %d)%s\n", Time(a.revoked_unix_ms()),
                                   ActorLine(a.revoked_by()), a.revoked_entry(),
                                   a.revocation_reason().empty() ? "" : ": " + a.revocation_reason());
  }
  return 0;
}

}  // namespace

void AddAgentCommands(CLI::App& app, Context& ctx) {
  // The flags' values, kept alive by the callbacks that read them.
  struct Flags {
    std::string domain, pub, key_id, revoke_reason;
  };
  auto f = std::make_shared<Flags>();
  auto* agent = app.add_subcommand("agent", "agent keys")->require_subcommand(1);
  ctx.examples[agent] = "lethectl agent list";
  auto* enroll = agent->add_subcommand("enroll", "record an agent's receipt-signing key in the ledger");
  enroll->add_option("--domain", f->domain, "policy domain")->required();
  enroll->add_option("--public-key", f->pub, "agent public key (PEM)")->required();
  enroll->callback([&ctx, f] { ctx.rc = AgentEnroll(ctx.g, f->domain, f->pub); });
  ctx.examples[enroll] = "lethectl --certs-dir root agent enroll --domain growth --public-key keys/growth.pub";
  auto* revoke = agent->add_subcommand("revoke", "record AgentKeyRevoked: refuse the key's receipts from now on");
  revoke->add_option("--domain", f->domain, "policy domain")->required();
  revoke->add_option("--key-id", f->key_id, "the key id `agent list` shows")->required();
  revoke->add_option("--reason", f->revoke_reason, "why (recorded in clear; no personal data)");
  revoke->callback([&ctx, f] { ctx.rc = AgentRevoke(ctx.g, f->domain, f->key_id, f->revoke_reason); });
  ctx.examples[revoke] =
      "lethectl --certs-dir root agent revoke --domain growth --key-id 3f2a9c0d1e2b4a5c --reason rotated";
  auto* list = agent->add_subcommand("list", "enrolled agent keys, with state and who enrolled them");
  list->callback([&ctx] { ctx.rc = AgentList(ctx.g); });
  ctx.examples[list] = "lethectl agent list -o json | jq '.agents[] | select(.state == \"ACTIVE\")'";
}

}  // namespace lethe::cli
