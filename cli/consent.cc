// `lethectl consent grant|withdraw|show|list`: consent per data subject and purpose through
// lethed's Consent service.
#include "cli/consent.h"

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "cli/render.h"
#include "lethe/v1/api.grpc.pb.h"

namespace lethe::cli {
namespace {

namespace v1 = lethe::v1;

const char* ConsentName(v1::ConsentStatus s) {
  return s == v1::GRANTED ? "GRANTED" : s == v1::WITHDRAWN ? "WITHDRAWN" : "UNKNOWN";
}

// Exactly one identity, from --identity or --identities-from.
absl::StatusOr<v1::Identity> OneIdentity(const std::string& arg, const std::string& from) {
  google::protobuf::RepeatedPtrField<v1::Identity> ids;
  std::vector<std::string> flags;
  if (!arg.empty()) flags.push_back(arg);
  LETHE_RETURN_IF_ERROR(ParseIdentities(flags, from, &ids));
  if (ids.size() != 1)
    return absl::InvalidArgumentError(absl::StrCat("consent is per identity: give exactly one, not ", ids.size()));
  return ids[0];
}

int ConsentChange(const Global& g, v1::ConsentStatus status, const std::string& identity,
                  const std::string& identities_from, const std::string& purpose,
                  const std::string& source) {
  const std::string what = status == v1::GRANTED ? "consent grant" : "consent withdraw";
  auto id = OneIdentity(identity, identities_from);
  if (!id.ok()) return Fail(what, id.status());
  v1::ChangeConsentRequest req;
  *req.mutable_identity() = *id;
  req.set_purpose(purpose);
  req.set_status(status);
  req.set_source(source);
  auto api = v1::Consent::NewStub(Connect(g));
  v1::ConsentChangeView resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->Change(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc(what, s);
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  const auto& c = resp.change();
  std::cout << "consent " << (status == v1::GRANTED ? "granted" : "withdrawn") << " for purpose "
            << c.purpose() << ": ledger entry " << c.entry() << ", subject " << c.identity_type()
            << " token " << c.subject_token().substr(0, 16) << "\n";
  if (!c.erasure_request_id().empty())
    std::cout << "erasure planned in the purpose's domains: request " << c.erasure_request_id()
              << " (lethectl request get " << c.erasure_request_id() << ")\n";
  return 0;
}

std::string ConsentLine(const v1::ConsentRecordView& c) {
  return absl::StrFormat("  %-14s %-10s %-20s entry %-6d %s%s", c.purpose(), ConsentName(c.status()),
                         Time(c.changed_unix_ms()), c.entry(), c.source(),
                         c.erasure_request_id().empty() ? "" : "  -> erasure " + c.erasure_request_id());
}

int ConsentShow(const Global& g, const std::string& identity, const std::string& identities_from) {
  auto id = OneIdentity(identity, identities_from);
  if (!id.ok()) return Fail("consent show", id.status());
  v1::ShowConsentRequest req;
  *req.mutable_identity() = *id;
  auto api = v1::Consent::NewStub(Connect(g));
  v1::ShowConsentResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = api->Show(&ctx, req, &resp);
  if (!s.ok()) return FailGrpc("consent show", s);
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  std::cout << "subject " << resp.identity_type() << " token " << resp.subject_token() << "\n";
  if (resp.history().empty()) {
    std::cout << "no consent recorded\n";
    return 0;
  }
  std::cout << "current:\n";
  for (const auto& c : resp.current()) std::cout << ConsentLine(c) << "\n";
  std::cout << "history:\n";
  for (const auto& c : resp.history()) std::cout << ConsentLine(c) << "\n";
  return 0;
}

int ConsentList(const Global& g, const std::string& purpose, const std::string& status) {
  v1::ListConsentRequest req;
  req.set_purpose(purpose);
  if (status == "granted") req.set_status(v1::GRANTED);
  if (status == "withdrawn") req.set_status(v1::WITHDRAWN);
  auto api = v1::Consent::NewStub(Connect(g));
  v1::ListConsentResponse resp;
  req.set_page_size(1000);
  do {  // every page
    v1::ListConsentResponse page;
    grpc::ClientContext ctx;
    grpc::Status s = api->List(&ctx, req, &page);
    if (!s.ok()) return FailGrpc("consent list", s);
    for (auto& r : *page.mutable_records()) *resp.add_records() = std::move(r);
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  if (g.json()) {
    std::cout << Json(resp);
    return 0;
  }
  std::cout << absl::StrFormat("%-10s %-18s %-10s %-20s %-6s %s\n", "TYPE", "TOKEN", "STATUS",
                               "CHANGED", "ENTRY", "SOURCE");
  for (const auto& c : resp.records())
    std::cout << absl::StrFormat("%-10s %-18s %-10s %-20s %-6d %s\n", c.identity_type(),
                                 c.subject_token().substr(0, 16), ConsentName(c.status()),
                                 Time(c.changed_unix_ms()), c.entry(), c.source());
  return 0;
}

}  // namespace

void AddConsentCommands(CLI::App& app, Context& ctx) {
  // The flags' values, kept alive by the callbacks that read them.
  struct Flags {
    std::string identity, identities_from, purpose, source, status_filter;
  };
  auto f = std::make_shared<Flags>();
  auto* consent = app.add_subcommand("consent", "consent per data subject and purpose")
                      ->require_subcommand(1);
  ctx.examples[consent] =
      "echo email=carol@example.com | lethectl consent grant --identities-from - --purpose marketing --source signup-form-v3";
  for (const char* verb : {"grant", "withdraw"}) {
    const bool grant = std::string(verb) == "grant";
    auto* c = consent->add_subcommand(verb, grant ? "record that a person granted consent for a purpose"
                                                  : "record a withdrawal; plans an erasure when the "
                                                    "purpose is marked erase_on_withdrawal");
    c->add_option("--identity", f->identity, "TYPE=VALUE (or --identities-from)");
    c->add_option("--identities-from", f->identities_from, "FILE, or - for standard input: one TYPE=VALUE line");
    c->add_option("--purpose", f->purpose, "a purpose of the active policy")->required();
    c->add_option("--source", f->source,
                  "where the change came from, e.g. signup-form-v3 (recorded in the ledger: "
                  "no personal data)")->required();
    c->callback([&ctx, f, grant] {
      ctx.rc = ConsentChange(ctx.g, grant ? v1::GRANTED : v1::WITHDRAWN, f->identity, f->identities_from,
                             f->purpose, f->source);
    });
    ctx.examples[c] =
        grant ? "echo email=carol@example.com | lethectl consent grant --identities-from - --purpose marketing --source signup-form-v3"
              : "echo email=carol@example.com | lethectl consent withdraw --identities-from - --purpose marketing --source unsubscribe-link";
  }
  auto* cshow = consent->add_subcommand("show", "current consent per purpose and the history of one identity");
  cshow->add_option("--identity", f->identity, "TYPE=VALUE (or --identities-from)");
  cshow->add_option("--identities-from", f->identities_from, "FILE, or - for standard input: one TYPE=VALUE line");
  cshow->callback([&ctx, f] { ctx.rc = ConsentShow(ctx.g, f->identity, f->identities_from); });
  ctx.examples[cshow] = "echo email=carol@example.com | lethectl consent show --identities-from -";
  auto* clist = consent->add_subcommand("list", "current consent of every subject for one purpose");
  clist->add_option("--purpose", f->purpose, "purpose")->required();
  clist->add_option("--status", f->status_filter, "only granted or withdrawn")
      ->check(CLI::IsMember({"granted", "withdrawn"}));
  clist->callback([&ctx, f] { ctx.rc = ConsentList(ctx.g, f->purpose, f->status_filter); });
  ctx.examples[clist] = "lethectl consent list --purpose marketing --status withdrawn -o json";
}

}  // namespace lethe::cli
