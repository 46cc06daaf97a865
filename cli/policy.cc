// `lethectl policy validate|activate|show`: a policy file checked locally (policies/policy.h)
// and activated through lethed's Policies service, and the active policy with its history.
#include "cli/policy.h"

#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/render.h"
#include "crypto/crypto.h"
#include "lethe/v1/api.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "policies/policy.h"

namespace lethe::cli {
namespace {

namespace v1 = lethe::v1;

int PolicyValidate(const Global& g, const std::string& path) {
  auto text = lethe::ReadFile(path);
  if (!text.ok()) return Fail("policy validate", text.status());
  auto diags = lethe::policies::Policy::Validate(*text);
  if (g.json()) {
    nlohmann::json out = {{"file", path}, {"valid", diags.empty()}, {"errors", nlohmann::json::array()}};
    for (const auto& d : diags)
      out["errors"].push_back({{"line", d.line}, {"column", d.column}, {"message", d.message}});
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& d : diags) std::cerr << d.ToString(path) << "\n";
    if (diags.empty()) {
      auto p = lethe::policies::Policy::Parse(*text, path);
      if (!p.ok()) return Fail("policy validate", p.status());
      std::cout << path << ": valid (policy \"" << p->name() << "\", " << p->domains().size()
                << " domain(s), sha256 " << lethe::crypto::Hex(p->Hash()) << ")\n";
    } else {
      std::cerr << path << ": " << diags.size() << " error(s)\n";
    }
  }
  return diags.empty() ? 0 : 1;
}

int PolicyActivate(const Global& g, const std::string& path) {
  auto text = lethe::ReadFile(path);
  if (!text.ok()) return Fail("policy activate", text.status());
  // Check locally first: every error at once, with line and column, without a round trip.
  auto diags = lethe::policies::Policy::Validate(*text);
  if (!diags.empty()) {
    for (const auto& d : diags) std::cerr << d.ToString(path) << "\n";
    std::cerr << path << ": " << diags.size() << " error(s); nothing activated\n";
    return 2;
  }
  v1::ActivatePolicyRequest req;
  req.set_yaml(*text);
  req.set_source_name(path);
  auto api = v1::Policies::NewStub(Connect(g));
  v1::PolicyView resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->Activate(&ctx, req, &resp);
  bool unchanged = false;
  if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    // The file is the active policy already: nothing to do, as `kubectl apply` says of an
    // object that matches. A pipeline may activate on every deploy. The active policy is
    // fetched and its hash compared with the file's, so "unchanged" is never said of a
    // different policy.
    auto parsed = lethe::policies::Policy::Parse(*text, path);
    if (!parsed.ok()) return Fail("policy activate", parsed.status());
    v1::ShowPolicyResponse shown;
    grpc::ClientContext show_ctx;
    grpc::Status ss = api->Show(&show_ctx, v1::ShowPolicyRequest(), &shown);
    if (!ss.ok()) return FailGrpc("policy activate", ss);
    if (shown.active().policy_hash() != crypto::Hex(parsed->Hash())) return FailGrpc("policy activate", s);
    resp = shown.active();
    resp.clear_yaml();
    unchanged = true;
  } else if (!s.ok()) {
    return FailGrpc("policy activate", s);
  }
  if (g.json()) {
    nlohmann::json out = nlohmann::json::parse(Json(resp));
    out["unchanged"] = unchanged;
    std::cout << out.dump(2) << "\n";
  } else if (unchanged) {
    std::cout << "policy \"" << resp.name() << "\" unchanged: " << path
              << " is the active policy (activation " << resp.activation() << ", sha256 "
              << resp.policy_hash() << ", ledger entry " << resp.entry() << ")\n";
  } else {
    std::cout << "policy \"" << resp.name() << "\" activated: activation " << resp.activation()
              << ", sha256 " << resp.policy_hash() << ", ledger entry " << resp.entry() << "\n"
              << "  domains: " << absl::StrJoin(resp.domains(), ", ") << "\n"
              << "  agents whose local policy section differs will refuse new commands "
                 "(policy drift) until they run this file\n";
  }
  return 0;
}

int PolicyShow(const Global& g, bool with_yaml) {
  auto api = v1::Policies::NewStub(Connect(g));
  v1::ShowPolicyResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->Show(&ctx, v1::ShowPolicyRequest(), &resp);
  if (!s.ok()) return FailGrpc("policy show", s);
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  const auto& a = resp.active();
  std::cout << "active policy: \"" << a.name() << "\" (format version " << a.format_version()
            << "), activation " << a.activation() << "\n"
            << "  sha256     " << a.policy_hash() << "\n"
            << "  activated  " << Time(a.activated_unix_ms()) << " by " << ActorLine(a.activated_by())
            << " via " << a.source() << " (ledger entry " << a.entry() << ")\n"
            << "  domains    " << absl::StrJoin(a.domains(), ", ") << "\n"
            << "  purposes   " << (a.purposes().empty() ? "-" : absl::StrJoin(a.purposes(), ", ")) << "\n"
            << "history:\n"
            << absl::StrFormat("  %-4s %-20s %-16s %-6s %s\n", "#", "ACTIVATED", "SHA256", "ENTRY", "SOURCE");
  for (const auto& h : resp.history())
    std::cout << absl::StrFormat("  %-4d %-20s %-16s %-6d %s, by %s\n", h.activation(),
                                 Time(h.activated_unix_ms()), h.policy_hash().substr(0, 16), h.entry(),
                                 h.source(), ActorLine(h.activated_by()));
  if (with_yaml) std::cout << "---\n" << a.yaml();
  return 0;
}

}  // namespace

void AddPolicyCommands(CLI::App& app, Context& ctx) {
  // The flags' values, kept alive by the callbacks that read them.
  struct Flags {
    std::string policy_file;
    bool with_yaml = false;
  };
  auto f = std::make_shared<Flags>();
  auto* pol = app.add_subcommand("policy", "validate, activate and show policies")->require_subcommand(1);
  ctx.examples[pol] = "lethectl policy validate policies/sample.yaml";
  auto* validate = pol->add_subcommand("validate", "check a policy file; print every error");
  validate->add_option("file", f->policy_file, "policy YAML")->required();
  validate->callback([&ctx, f] { ctx.rc = PolicyValidate(ctx.g, f->policy_file); });
  ctx.examples[validate] = "lethectl policy validate policies/sample.yaml";
  auto* activate = pol->add_subcommand(
      "activate", "make a policy file the active policy (recorded in the ledger as PolicyActivated)");
  activate->add_option("file", f->policy_file, "policy YAML")->required();
  activate->callback([&ctx, f] { ctx.rc = PolicyActivate(ctx.g, f->policy_file); });
  ctx.examples[activate] = "lethectl --certs-dir root policy activate policies/sample.yaml";
  auto* show = pol->add_subcommand("show", "the active policy and every earlier activation");
  show->add_flag("--yaml", f->with_yaml, "also print the active policy's YAML as activated");
  show->callback([&ctx, f] { ctx.rc = PolicyShow(ctx.g, f->with_yaml); });
  ctx.examples[show] = "lethectl policy show --yaml";
}

}  // namespace lethe::cli
