// `lethectl domain init`: reads a domain's database schema (schema/introspect.h), proposes its
// policy section (schema/proposal.h), makes the agent's keys (crypto/seal.h), writes the
// kustomize overlay that adds the agent as a sidecar, and prints the commands that finish the
// onboarding. With --check it writes nothing and reports drift (schema/drift.h). The files and
// the exit codes: docs/onboarding.md.
#include "cli/domain.h"

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/file_system.h"
#include "base/status.h"
#include "cli/exit_codes.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "nlohmann/json.hpp"
#include "policies/policy.h"
#include "schema/drift.h"
#include "schema/introspect.h"
#include "schema/proposal.h"

namespace lethe::cli {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

struct Flags {
  std::string name, dsn, policy, out, deployment, component, control_plane_key, namespace_, kafka_bootstrap;
  std::vector<std::string> tables, keys, identities, resources;
  bool check = false;
};

// The files domain init writes into DIR, by role.
struct Files {
  std::string section, policy, key, pub, kustomization, label_dir, label_kustomization, label_patch, readme,
      gitignore;
};

Files FilesIn(const std::string& dir, bool with_policy) {
  auto in = [&](const std::string& name) { return (fs::path(dir) / name).string(); };
  Files f;
  f.section = in("policy-section.yaml");
  if (with_policy) f.policy = in("policy.yaml");
  f.key = in("agent.key");
  f.pub = in("agent.pub");
  f.kustomization = in("kustomization.yaml");
  f.label_dir = in("domain-label");
  f.label_kustomization = in("domain-label/kustomization.yaml");
  f.label_patch = in("domain-label/agent-patch.yaml");
  f.readme = in("README.txt");
  f.gitignore = in(".gitignore");
  return f;
}

// A word for a POSIX shell: as it is when it needs no quoting, else in single quotes.
std::string Sh(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=:@%+,-") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A path or kustomize URL as a YAML scalar: plain when it has a '/' and nothing YAML reads
// specially (it cannot then be read as a number, a boolean or null), else as YamlScalar says.
std::string YamlPath(const std::string& s) {
  const bool plain = s.find('/') != std::string::npos && s[0] != '-' &&
                     s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-") ==
                         std::string::npos;
  return plain ? s : schema::YamlScalar(s);
}

bool ValidDomainName(const std::string& s) {
  return !s.empty() && s.size() <= 200 && s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos;
}

Json DriftJson(const std::optional<schema::DriftReport>& drift, const std::string& policy_path) {
  Json j = {{"checked", drift.has_value()}, {"policy", policy_path}, {"tables", Json::array()},
            {"columns", Json::array()}, {"missing", Json::array()}};
  if (!drift) return j;
  for (const auto& t : drift->tables) {
    Json cols = Json::array();
    for (const auto& c : t.columns) cols.push_back({{"column", c.column}, {"identity", c.identity}});
    j["tables"].push_back({{"table", t.table}, {"columns", cols}});
  }
  for (const auto& c : drift->columns)
    j["columns"].push_back({{"table", c.table}, {"column", c.column}, {"identity", c.identity}});
  for (const auto& m : drift->missing) j["missing"].push_back({{"table", m.table}, {"column", m.column}});
  return j;
}

void PrintDrift(const schema::DriftReport& drift, const std::string& domain, const std::string& policy_path) {
  const std::vector<std::string> lines = schema::DescribeDrift(drift, domain);
  if (lines.empty()) {
    std::cout << "no drift: domain " << domain << " of " << policy_path
              << " covers every table and column of the database that likely holds an identity\n";
    return;
  }
  std::cout << "drift: " << drift.tables.size() << " table(s) and " << drift.columns.size()
            << " column(s) of the database likely hold identities that domain " << domain << " of "
            << policy_path << " does not cover" << (drift.missing.empty() ? "" : ", and it names what the database lacks")
            << ":\n";
  for (const std::string& l : lines) std::cout << "  " << l << "\n";
}

// --check: the drift of the domain's section against the database, and nothing written.
int Check(const Global& g, const Flags& f, const policies::Policy& policy, const schema::Snapshot& db) {
  const policies::Domain* domain = policy.FindDomain(f.name);
  const schema::DriftReport drift = schema::ComputeDrift(db, policy, *domain);
  if (g.json()) {
    Json j = {{"domain", f.name}, {"drift", DriftJson(drift, f.policy)}, {"drift_found", !drift.empty()}};
    std::cout << j.dump(2) << "\n";
  } else {
    PrintDrift(drift, f.name, f.policy);
    if (!drift.empty())
      std::cout << "to propose a section that covers them, run domain init again with --out NEWDIR (it keeps "
                   "the section's tables as they are and adds the new ones)\n";
  }
  return drift.empty() ? kExitOk : kExitFailed;
}

std::string Kustomization(const Flags& f, const std::string& deployment, const std::string& component) {
  std::string out = absl::StrCat(
      "# Written by `lethectl domain init ", f.name, "`: Deployment ", deployment, " with the lethe-agent sidecar\n",
      "# of domain ", f.name, ". README.txt beside this file says what each file is. Render: kubectl kustomize .\n",
      "apiVersion: kustomize.config.k8s.io/v1beta1\n", "kind: Kustomization\n");
  if (f.resources.empty()) {
    absl::StrAppend(&out, "# Add the kustomization or manifests that define Deployment ", deployment,
                    ", e.g. - ../../apps/", deployment, "\n", "resources: []\n");
  } else {
    absl::StrAppend(&out, "resources:  # the manifests that define Deployment ", deployment, "\n");
    for (const std::string& r : f.resources) absl::StrAppend(&out, "  - ", YamlPath(r), "\n");
  }
  absl::StrAppend(
      &out, "components:\n",
      "  # 1. Labels Deployment ", deployment, " with lethe.dev/domain: ", f.name, ". A component, not a patch of\n",
      "  #    this file: kustomize applies components before a kustomization's own patches, and the\n",
      "  #    label must be there when the next component looks for it.\n", "  - domain-label\n",
      "  # 2. k8s/base/agent: adds lethe-agent as a native sidecar (an initContainers entry with\n",
      "  #    restartPolicy: Always) to Deployments labelled lethe.dev/domain, with the keys of\n",
      "  #    Secret lethe-agent-key, the connection string of Secret lethe-agent-postgres and the\n",
      "  #    policy of ConfigMap lethe-policy, all in the Deployment's namespace.\n", "  - ",
      YamlPath(component), "\n",
      "configMapGenerator:\n",
      "  # Read by the sidecar: the Kafka brokers it consumes its commands from.\n",
      "  - name: lethe-agent-settings\n", "    literals:\n", "      - kafka-bootstrap=", f.kafka_bootstrap, "\n");
  return out;
}

std::string LabelKustomization(const std::string& deployment) {
  return absl::StrCat("# Written by `lethectl domain init`: the label k8s/base/agent selects Deployments by.\n",
                      "apiVersion: kustomize.config.k8s.io/v1alpha1\n", "kind: Component\n", "patches:\n",
                      "  - path: agent-patch.yaml\n", "    target:\n", "      kind: Deployment\n",
                      "      name: ", schema::YamlScalar(deployment), "\n");
}

std::string LabelPatch(const std::string& domain, const std::string& deployment) {
  return absl::StrCat("# Deployment ", deployment, " serves domain ", domain,
                      ": k8s/base/agent adds the lethe-agent sidecar to it.\n", "apiVersion: apps/v1\n",
                      "kind: Deployment\n", "metadata:\n", "  name: ", schema::YamlScalar(deployment), "\n",
                      "  labels:\n", "    lethe.dev/domain: ", schema::YamlScalar(domain), "\n", "spec:\n",
                      "  template:\n", "    metadata:\n", "      labels:\n", "        lethe.dev/domain: ",
                      schema::YamlScalar(domain), "\n");
}

struct Commands {
  std::string secret, postgres_secret, enroll, configmap, apply, activate;
};

std::string Readme(const Flags& f, const Files& files, const std::string& deployment, const Commands& c) {
  std::string out = absl::StrCat(
      "Onboarding of Lethe domain ", f.name, ", written by `lethectl domain init ", f.name, "`.\n",
      "The database's connection string given to it is written nowhere.\n\n", "FILES\n\n",
      "policy-section.yaml\n",
      "    A PROPOSAL of the domain's policy section (one item of the policy's domains: list), made\n",
      "    from the schema of the database. Review it before use: its header says what to check, and\n",
      "    lists the tables with likely identity columns it leaves out.\n");
  if (!files.policy.empty())
    absl::StrAppend(&out, "policy.yaml\n", "    ", f.policy, " with this section added (or, if it had one, with the\n",
                    "    tables the database gained), validated. The policy to deploy and activate once reviewed.\n");
  absl::StrAppend(
      &out, "agent.key\n",
      "    The agent's private keys, mode 0600: Ed25519 (signs its receipts) and X25519 (opens the\n",
      "    identities sealed into its commands). NEVER commit it: .gitignore here lists it. It goes\n",
      "    into the Secret lethe-agent-key of namespace ", f.namespace_, " only (below).\n", "agent.pub\n",
      "    Its public keys, which `lethectl agent enroll` records in the ledger.\n", "kustomization.yaml\n",
      "    A kustomize overlay: the manifests of Deployment ", deployment, " (resources:), the component\n",
      "    domain-label, then the component k8s/base/agent, which adds lethe-agent as a native sidecar\n",
      "    to Deployments labelled lethe.dev/domain. Render it with `kubectl kustomize DIR`.\n",
      "domain-label/kustomization.yaml, domain-label/agent-patch.yaml\n",
      "    A kustomize Component that labels Deployment ", deployment, " (and its pods) with\n",
      "    lethe.dev/domain: ", f.name, ". It is a component so that it runs before k8s/base/agent.\n",
      ".gitignore\n", "    Keeps agent.key out of git.\n\n", "KUBERNETES OBJECTS THE SIDECAR USES\n\n",
      "All in namespace ", f.namespace_, ", the Deployment's.\n",
      "Secret lethe-agent-key (not generated into a file: a private key does not belong in git)\n",
      "    agent.key    this directory's agent.key\n",
      "    lethed.pub   lethed's public key: commands signed by any other key are refused\n",
      "Secret lethe-agent-postgres\n",
      "    dsn          the agent's libpq connection string (written nowhere by domain init)\n",
      "    password     optional: the role's password, kept out of the DSN (libpq reads PGPASSWORD)\n",
      "ConfigMap lethe-agent-settings (generated by kustomization.yaml)\n",
      "    kafka-bootstrap  the Kafka brokers: ", f.kafka_bootstrap, "\n",
      "ConfigMap lethe-policy\n", "    policy.yaml  the policy file\n\n",
      "STEPS (an admin's; `lethectl` needs an admin client certificate: --certs-dir or LETHE_CERTS_DIR)\n\n",
      "1. Review policy-section.yaml", files.policy.empty() ? "" : " and policy.yaml", ".\n", "2. ", c.secret,
      "\n   ", c.postgres_secret, "\n   (AGENT-DSN-FILE: a file holding the agent's libpq connection string)\n");
  // lethed enrolls keys of the active policy's domains only: the policy goes first.
  if (!files.policy.empty()) {
    absl::StrAppend(&out, "3. ", c.configmap, "\n", "4. ", c.activate, "\n");
  } else {
    absl::StrAppend(&out, "3. Add policy-section.yaml to your policy's domains: (its identities: must list the\n",
                    "   types the section uses) and put the policy into ConfigMap lethe-policy\n",
                    "4. lethectl policy activate YOUR-POLICY.yaml\n");
  }
  absl::StrAppend(&out, "5. ", c.enroll, "\n", "6. ", c.apply, "\n");
  absl::StrAppend(&out, "\nDRIFT\n\n", "When the schema changes, check the domain against the active policy file (writes\n",
                  "nothing; exit code 1 when the database holds uncovered tables or identity columns):\n",
                  "    lethectl domain init ", f.name, " --postgres DSN --policy POLICY.yaml --check\n",
                  "lethe-agent reports the same at start: warnings in its log and the gauge\n",
                  "lethe_agent_schema_drift{kind=\"table\"|\"column\"}. See docs/onboarding.md.\n");
  return out;
}

int Init(const Global& g, const Flags& f) {
  const std::string what = "domain init";
  if (!ValidDomainName(f.name))
    return Fail(what, absl::InvalidArgumentError("NAME \"" + Quote(f.name, 60) +
                                                 "\": expected a policy domain name, [a-z0-9_-]+, at most 200 characters"));
  if (f.tables.size() != f.keys.size() || f.tables.size() != f.identities.size())
    return Fail(what, absl::InvalidArgumentError(absl::StrFormat(
                          "--table, --key and --identity go together, once per table, in order; got %d --table, "
                          "%d --key, %d --identity",
                          f.tables.size(), f.keys.size(), f.identities.size())));
  if (f.check) {
    if (f.policy.empty())
      return Fail(what, absl::InvalidArgumentError("--check compares the database with the domain's section of "
                                                   "--policy FILE: give --policy"));
    if (!f.out.empty() || !f.tables.empty())
      return Fail(what, absl::InvalidArgumentError("--check writes and proposes nothing: leave out --out and --table"));
  } else if (f.out.empty()) {
    return Fail(what, absl::InvalidArgumentError("--out DIR is required (or --check, with --policy, to report drift "
                                                 "without writing anything)"));
  }

  std::optional<policies::Policy> policy;
  std::string policy_text;
  if (!f.policy.empty()) {
    auto text = lethe::ReadFile(f.policy);
    if (!text.ok()) return Fail(what, Annotate(text.status(), "--policy"));
    auto p = policies::Policy::Parse(*text, f.policy);
    if (!p.ok()) return Fail(what, Annotate(p.status(), "--policy"));
    policy = std::move(*p);
    policy_text = std::move(*text);
    if (f.check && policy->FindDomain(f.name) == nullptr) {
      std::vector<std::string> names;
      for (const auto& d : policy->domains()) names.push_back(d.name);
      return Fail(what, absl::InvalidArgumentError("--check: policy " + f.policy + " has no domain " + f.name +
                                                   " (it has: " + absl::StrJoin(names, ", ") + ")"));
    }
  }
  if (!f.control_plane_key.empty()) {
    auto k = crypto::Ed25519PublicKey::LoadFile(f.control_plane_key);
    if (!k.ok()) return Fail(what, Annotate(k.status(), "--control-plane-key"));
  }

  absl::StatusOr<schema::Snapshot> db = schema::Introspect(f.dsn);
  if (!db.ok()) return Fail(what, db.status());
  if (f.check) return Check(g, f, *policy, *db);

  std::optional<schema::DriftReport> drift;
  if (policy)
    if (const policies::Domain* d = policy->FindDomain(f.name)) drift = schema::ComputeDrift(*db, *policy, *d);

  schema::ProposalOptions options;
  options.domain = f.name;
  options.policy = policy ? &*policy : nullptr;
  for (size_t i = 0; i < f.tables.size(); ++i) options.tables.push_back({f.tables[i], f.keys[i], f.identities[i]});
  absl::StatusOr<schema::Proposal> proposal = schema::Propose(*db, options);
  if (!proposal.ok()) return Fail(what, proposal.status());
  const std::string section = schema::RenderSection(*proposal, options.policy, f.policy);
  std::string merged;
  if (policy) {
    auto m = schema::MergeIntoPolicy(policy_text, f.policy, *proposal);
    if (!m.ok()) return Fail(what, m.status());
    merged = std::move(*m);
  }

  // Every file is new: nothing is replaced, a key least of all.
  const Files files = FilesIn(f.out, policy.has_value());
  for (const std::string& path : {files.key, files.pub, files.section, files.policy, files.kustomization,
                                  files.label_kustomization, files.label_patch, files.readme, files.gitignore}) {
    std::error_code ec;
    if (path.empty() || !fs::exists(fs::symlink_status(path, ec))) continue;
    if (path == files.key || path == files.pub)
      return Fail(what, absl::AlreadyExistsError(
                            path + " exists; domain init never replaces a key (it may be the key of a running "
                                   "agent). To check an onboarded domain for drift, run it with --policy FILE "
                                   "--check (writes nothing); to start over, use another --out"));
    return Fail(what, absl::AlreadyExistsError(path + " exists; domain init writes only new files: use another --out"));
  }
  std::error_code ec;
  fs::create_directories(files.label_dir, ec);
  if (ec) return Fail(what, absl::FailedPreconditionError("--out: cannot create " + files.label_dir + ": " + ec.message()));
  absl::StatusOr<std::string> key_id = crypto::GenerateKeyFiles((fs::path(f.out) / "agent").string());
  if (!key_id.ok()) return Fail(what, key_id.status());

  const std::string deployment = f.deployment.empty() ? f.name : f.deployment;
  std::string component = f.component;
  if (component.empty())
    component = fs::absolute("k8s/base/agent").lexically_normal().lexically_relative(fs::absolute(f.out).lexically_normal()).string();
  const bool component_found =
      f.component.find("://") != std::string::npos || f.component.rfind("github.com/", 0) == 0 ||
      fs::is_directory(fs::path(component).is_absolute() ? fs::path(component) : fs::path(f.out) / component, ec);

  Commands c;
  c.secret = absl::StrCat("kubectl -n ", f.namespace_, " create secret generic lethe-agent-key --from-file=agent.key=", Sh(files.key),
                          " --from-file=lethed.pub=",
                          f.control_plane_key.empty() ? "\"${LETHED_PUB:?set LETHED_PUB to the public key file of lethed}\""
                                                      : Sh(f.control_plane_key));
  // The DSN may hold a password: it goes from a file of the operator's into the Secret, never
  // through this command's output.
  c.postgres_secret = absl::StrCat("kubectl -n ", f.namespace_,
                                   " create secret generic lethe-agent-postgres --from-file=dsn=AGENT-DSN-FILE");
  c.enroll = absl::StrCat("lethectl agent enroll --domain ", f.name, " --public-key ", Sh(files.pub));
  c.apply = absl::StrCat("kubectl apply -k ", Sh(f.out));
  if (policy) {
    c.configmap = absl::StrCat("kubectl -n ", f.namespace_, " create configmap lethe-policy --from-file=policy.yaml=",
                               Sh(files.policy), " --dry-run=client -o yaml | kubectl apply -f -");
    c.activate = absl::StrCat("lethectl policy activate ", Sh(files.policy));
  }
  std::vector<std::pair<std::string, std::string>> writes = {
      {files.section, section},
      {files.policy, merged},
      {files.kustomization, Kustomization(f, deployment, component)},
      {files.label_kustomization, LabelKustomization(deployment)},
      {files.label_patch, LabelPatch(f.name, deployment)},
      {files.readme, Readme(f, files, deployment, c)},
      {files.gitignore, "# Written by lethectl domain init: the agent's private key never goes into git.\nagent.key\n"},
  };
  for (const auto& [path, text] : writes) {
    if (path.empty()) continue;
    if (absl::Status s = WriteNewFile(path, text, 0644); !s.ok()) return Fail(what, s);
  }

  if (g.json()) {
    Json tables = Json::array();
    for (const auto& t : proposal->tables)
      tables.push_back({{"table", t.table.QualifiedName()}, {"key", t.table.key_column}, {"identity", t.table.identity},
                        {"action", policies::Table::ActionName(t.table.action)}, {"why", t.why}});
    Json left_out = Json::array();
    for (const auto& l : proposal->left_out) {
      Json cols = Json::array();
      for (const auto& col : l.columns) cols.push_back({{"column", col.column}, {"identity", col.identity}});
      left_out.push_back({{"table", l.table}, {"columns", cols}, {"why", l.why}});
    }
    Json unmapped = Json::array();
    for (const auto& c : proposal->unmapped)
      unmapped.push_back({{"table", c.table}, {"column", c.column}, {"identity", c.identity}});
    Json j = {{"domain", f.name},
              {"out", f.out},
              {"tables", tables},
              {"identities", proposal->identities},
              {"not_covered", left_out},
              {"unmapped_columns", unmapped},
              {"notes", proposal->notes},
              {"drift", DriftJson(drift, f.policy)},
              {"key_id", *key_id},
              {"files",
               {{"policy_section", files.section}, {"policy", files.policy}, {"key", files.key}, {"pub", files.pub},
                {"kustomization", files.kustomization}, {"label_kustomization", files.label_kustomization},
                {"label_patch", files.label_patch}, {"readme", files.readme}, {"gitignore", files.gitignore}}},
              {"component", component},
              {"commands",
               {{"create_secret", c.secret}, {"create_postgres_secret", c.postgres_secret}, {"enroll", c.enroll}, {"configmap", c.configmap}, {"apply", c.apply},
                {"activate", c.activate}}}};
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }

  std::cout << "domain " << f.name << ": PROPOSED " << proposal->tables.size()
            << " table(s), children first (review " << files.section << " before use):\n";
  for (const auto& t : proposal->tables)
    std::cout << absl::StrFormat("  %-32s key %-16s identity %-12s %-9s %s\n", t.table.QualifiedName(),
                                 t.table.key_column, t.table.identity, policies::Table::ActionName(t.table.action), t.why);
  std::cout << "  identity types used: " << absl::StrJoin(proposal->identities, ", ") << "\n";
  if (!proposal->left_out.empty()) {
    std::cout << "NOT COVERED: tables with likely identity columns that the section leaves out (also comments in "
              << files.section << "):\n";
    for (const auto& l : proposal->left_out) {
      std::vector<std::string> cols;
      for (const auto& col : l.columns) cols.push_back(col.column + " (" + col.identity + ")");
      std::cout << "  " << l.table << ": " << absl::StrJoin(cols, ", ") << ": " << l.why << "\n";
    }
  }
  if (!proposal->unmapped.empty()) {
    std::cout << "likely identity columns of types " << f.policy << " does not list:\n";
    for (const auto& c : proposal->unmapped)
      std::cout << "  " << c.table << "." << c.column << " (" << c.identity << ")\n";
  }
  if (!proposal->notes.empty()) {
    std::cout << "notes:\n";
    for (const auto& n : proposal->notes) std::cout << "  " << n << "\n";
  }
  if (drift) PrintDrift(*drift, f.name, f.policy);
  std::cout << "wrote:\n"
            << "  " << files.section << "  the proposed section\n";
  if (policy) std::cout << "  " << files.policy << "  " << f.policy << " with it, validated\n";
  std::cout << "  " << files.key << "  the agent's private keys (mode 0600; listed in " << files.gitignore
            << ": never commit it)\n"
            << "  " << files.pub << "  its public keys: Ed25519 signing key " << *key_id << ", X25519 sealing key\n"
            << "  " << files.kustomization << ", " << files.label_kustomization << ", " << files.label_patch
            << "  the sidecar's kustomize overlay (component " << component << ")\n"
            << "  " << files.readme << "  what each file is, and these steps\n";
  if (!component_found)
    std::cout << "note: " << component << " is not a directory seen from " << f.out
              << ": give --component with the path of k8s/base/agent relative to " << f.out
              << " (or a kustomize URL)\n";
  std::cout << "next, as an admin (lethectl needs an admin certificate: --certs-dir or LETHE_CERTS_DIR):\n"
            << "  " << c.secret << "\n"
            << "  " << c.postgres_secret << "   # AGENT-DSN-FILE: the agent's libpq connection string\n";
  // lethed enrolls keys of the active policy's domains only: the policy goes first.
  if (policy) {
    std::cout << "  " << c.configmap << "\n"
              << "  " << c.activate << "\n";
  } else {
    std::cout << "  # add " << files.section << " to your policy's domains: (identities: must list "
              << absl::StrJoin(proposal->identities, ", ") << "), put it into ConfigMap lethe-policy, then:\n"
              << "  lethectl policy activate YOUR-POLICY.yaml\n";
  }
  std::cout << "  " << c.enroll << "\n"
            << "  " << c.apply << "\n";
  return kExitOk;
}

}  // namespace

void AddDomainCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<Flags>();
  auto* domain = app.add_subcommand("domain", "onboard a domain: policy section, agent keys, sidecar")
                     ->require_subcommand(1);
  ctx.examples[domain] = "lethectl domain init growth --postgres 'host=db dbname=growth user=lethe' --out k8s/domains/growth";
  auto* init = domain->add_subcommand(
      "init",
      "read the domain's database schema (catalog only, no rows) and write into --out: a PROPOSED policy "
      "section to review (policy-section.yaml; with --policy, also policy.yaml: the policy with it), the "
      "agent's keys (agent.key, mode 0600, and agent.pub; never replaces a key), and a kustomize overlay "
      "adding the lethe-agent sidecar; then print the commands that finish the onboarding. Tables are "
      "ordered children first (a foreign key cycle is an error naming the tables); tables with likely "
      "identity columns left out are printed. With --policy, drift against the domain's section is "
      "reported; --check only reports it and writes nothing: exit 0 without drift, 1 with drift. "
      "docs/onboarding.md");
  init->add_option("name", f->name, "the domain's name in the policy, [a-z0-9_-]+")->required();
  init->add_option("--postgres", f->dsn,
                   "libpq connection string of the domain's database (never printed; keep the password "
                   "out of it with PGPASSWORD or ~/.pgpass)")
      ->required();
  init->add_option("--table", f->tables, "[schema.]table to include, with --key and --identity; repeatable, "
                                         "in order (default: tables with likely identity columns)")
      ->allow_extra_args(false);
  init->add_option("--key", f->keys, "the key column of the --table at the same position")->allow_extra_args(false);
  init->add_option("--identity", f->identities, "the identity type of the --table at the same position")
      ->allow_extra_args(false);
  init->add_option("--policy", f->policy,
                   "policy file: its identity types bound the proposal, its section of NAME is kept and "
                   "checked for drift, and DIR/policy.yaml is it with the section");
  init->add_option("--out", f->out, "directory to write into (created if absent; files in it are never replaced)");
  init->add_flag("--check", f->check, "with --policy: only report drift, write nothing; exit 1 if there is any");
  init->add_option("--deployment", f->deployment, "the Deployment the sidecar joins (default: NAME)");
  init->add_option("--namespace", f->namespace_,
                   "the Deployment's namespace, where the printed commands create the sidecar's Secret and "
                   "ConfigMap (default: NAME)");
  init->add_option("--kafka-bootstrap", f->kafka_bootstrap,
                   "the Kafka brokers the sidecar consumes from, written to ConfigMap lethe-agent-settings")
      ->default_val("kafka.lethe.svc.cluster.local:9092")
      ->capture_default_str();
  init->add_option("--component", f->component,
                   "k8s/base/agent as the kustomization names it, relative to --out or a kustomize URL "
                   "(default: ./k8s/base/agent, written relative to --out)");
  init->add_option("--resource", f->resources,
                   "a kustomize resource (relative to --out) that defines the Deployment; repeatable")
      ->allow_extra_args(false);
  init->add_option("--control-plane-key", f->control_plane_key,
                   "lethed's public key file, named in the printed `kubectl create secret` command");
  init->callback([&ctx, f] {
    if (f->namespace_.empty()) f->namespace_ = f->name;
    ctx.rc = Init(ctx.g, *f);
  });
  ctx.examples[init] =
      "lethectl domain init growth --postgres 'host=db dbname=growth user=lethe' --policy policy.yaml "
      "--out k8s/domains/growth   # then, after a schema change: ... --policy policy.yaml --check";
}

}  // namespace lethe::cli
