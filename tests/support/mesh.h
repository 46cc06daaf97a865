// A small data mesh for integration tests, on real components: one throwaway PostgreSQL
// cluster with a database per domain, lethed in this process with its embedded Kafka (the
// librdkafka mock cluster on loopback), and one lethe-agent per domain (in process, or as a
// child process when a test needs to kill it).
//
// Domains (all three hold both test people):
//   assessments  keyed by user_id (text):   assessments.responses, assessments.scores
//   growth       keyed by email (text):     growth.campaign_events -> growth.contacts (FK)
//   billing      keyed by user_id (bigint): billing.invoices, and by email: billing.accounts
//   crm          every action in one domain: delete (child crm.notes before parent crm.people),
//                anonymize crm.events (user_id hash, ip null, country constant), retain
//                crm.invoices under a tax basis for 7y
//   crm_badorder crm.people listed before crm.notes, which references it
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agents/agent.h"
#include "controlplane/lethed.h"
#include <grpcpp/grpcpp.h>

#include "lethe/v1/api.grpc.pb.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {

struct Person {
  std::string user_id;  // digits, so that it also fits billing's bigint column
  std::string email;
};
// Distinctive values, so that grepping files for them cannot match by chance.
inline const Person kAlice{"73310042", "alice@example.com"};
inline const Person kBob{"58820017", "bob@example.com"};

class Mesh {
 public:
  struct Options {
    std::vector<std::string> domains = {"assessments", "growth", "billing"};
    // The policy's identities: (flow YAML).
    std::string identities = "[email, user_id]";
    bool start_lethed = true;
    bool start_agents = true;
    // PostgreSQL with fsync on (PgCluster::Options), for runs that crash it.
    bool pg_fsync = false;
    // Adjusts lethed's options (clock, outbox timings) before it starts.
    std::function<void(controlplane::LethedOptions&)> lethed_options;
    // Applied to each agent's options (AgentOptionsFor), after the mesh's own.
    std::function<void(agents::AgentOptions&)> agent_options;
  };
  static absl::StatusOr<std::unique_ptr<Mesh>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<Mesh>> Start() { return Start(Options()); }
  ~Mesh();

  // Paths of the files the binaries use.
  const std::string& work_dir() const { return work_; }
  std::string data_dir() const { return work_ + "/lethed"; }
  std::string policy_path() const { return work_ + "/policy.yaml"; }
  std::string lethed_key() const { return work_ + "/keys/lethed.key"; }
  std::string lethed_pub() const { return work_ + "/keys/lethed.pub"; }
  std::string agent_key(const std::string& d) const { return work_ + "/keys/" + d + ".key"; }
  std::string agent_pub(const std::string& d) const { return work_ + "/keys/" + d + ".pub"; }
  // Mutual TLS: the CA, lethed's server certificate (127.0.0.1) and one client certificate
  // per role ("admin" root, "operator" olga, "auditor" audrey), made with lethectl's code.
  std::string certs_dir() const { return work_ + "/certs"; }
  static std::string ClientName(const std::string& role);
  std::string client_cert(const std::string& role) const {
    return certs_dir() + "/client." + ClientName(role) + ".crt";
  }
  std::string client_key(const std::string& role) const {
    return certs_dir() + "/client." + ClientName(role) + ".key";
  }
  // A channel to lethed presenting the certificate of `role`.
  std::shared_ptr<grpc::Channel> Channel(const std::string& role) const;
  // The same with these channel arguments (reconnect backoff, ...).
  std::shared_ptr<grpc::Channel> Channel(const std::string& role, const grpc::ChannelArguments& args) const;
  const std::vector<std::string>& domains() const { return options_.domains; }

  PgCluster& pg() { return *pg_; }
  controlplane::Lethed& lethed() { return *lethed_; }
  controlplane::LethedOptions LethedOptionsForTest() const;
  absl::Status StartLethed();
  void StopLethed() { lethed_.reset(); }
  // Talk to a lethed running elsewhere (a child process) instead of the in-process one.
  void UseExternalLethed(std::string addr) { external_addr_ = std::move(addr); }
  std::string addr() const;

  // Stubs with the role their calls need: operator, admin, admin, operator, auditor.
  std::unique_ptr<v1::SubjectRequests::Stub> Requests() const;
  std::unique_ptr<v1::Agents::Stub> Agents() const;
  std::unique_ptr<v1::Policies::Stub> Policies() const;
  std::unique_ptr<v1::Consent::Stub> Consent() const;
  std::unique_ptr<v1::Ledger::Stub> LedgerStub() const;

  absl::Status EnrollAgent(const std::string& domain);
  agents::AgentOptions AgentOptionsFor(const std::string& domain) const;
  absl::Status StartAgent(const std::string& domain);
  void StopAgent(const std::string& domain) { agents_.erase(domain); }
  agents::Agent& agent(const std::string& domain) { return *agents_.at(domain); }
  std::string kafka_bootstrap() const;

  // Inserts the person's rows in every domain (2 + 1 + 2 in assessments, 2 + 1 in growth,
  // 2 + 1 in billing).
  absl::Status Plant(const Person& p);
  // Plant for many people at once: one round of statements per domain and chunk of 500.
  absl::Status PlantMany(const std::vector<Person>& people);
  // Rows of the person still present in the domain, over all its tables.
  absl::StatusOr<int64_t> Rows(const std::string& domain, const Person& p);

  // The Submit request for an erasure of `p`: both identities, `reason`.
  static v1::SubmitRequest ErasureOf(const Person& p, const std::string& reason = "test");
  // Submits an erasure of `p` (both identities) and returns the request id.
  absl::StatusOr<std::string> Erase(const Person& p);
  // Waits until the request leaves IN_PROGRESS or `timeout` passes; returns its last view.
  absl::StatusOr<v1::RequestView> WaitDone(const std::string& id, absl::Duration timeout);
  // Erase(p), then WaitDone.
  absl::StatusOr<v1::RequestView> EraseAndWait(const Person& p, absl::Duration timeout);

 private:
  Mesh() = default;
  Options options_;
  std::string work_;
  std::unique_ptr<PgCluster> pg_;
  std::unique_ptr<controlplane::Lethed> lethed_;
  std::string external_addr_;
  std::map<std::string, std::unique_ptr<agents::Agent>> agents_;
};

// Every record of the topic (all partitions) from the beginning up to the end offsets it has
// when called, read with an assigned (not group) consumer; kDeadlineExceeded when they are not
// all read within `timeout`. A record published after the call is not waited for: wait for
// it first (WaitForRecords, or a condition of the publisher).
absl::StatusOr<std::vector<kafka::Message>> ReadTopic(const std::string& bootstrap,
                                                      const std::string& topic,
                                                      absl::Duration timeout = absl::Seconds(30));
// Waits until the topic holds at least `n` records over all its partitions (end minus start
// offsets); kDeadlineExceeded, saying how many it holds, at `timeout`.
absl::Status WaitForRecords(const std::string& bootstrap, const std::string& topic, int64_t n,
                            absl::Duration timeout);

// Runs build/cli/lethectl with `args`; a command that cannot be run fails the test and
// returns exit code -1 with the reason as output.
CommandResult Lethectl(std::vector<std::string> args);
// The same with --addr of the mesh's lethed and the client certificate of the role the
// command needs (RoleFor) first.
CommandResult RunLethectl(const Mesh& mesh, const std::vector<std::string>& args);
// The same with the certificate of `role` ("admin", "operator" or "auditor").
CommandResult RunLethectlAs(const Mesh& mesh, const std::string& role,
                            const std::vector<std::string>& args);
// The role a lethectl command needs: request/consent commands are an operator's (except
// `request certificate`, an auditor's), policy activate and agent enroll/revoke an admin's,
// everything else an auditor's.
std::string RoleFor(const std::vector<std::string>& args);
// `lethectl request certificate ID --out FILE`, then `--verify FILE` offline with lethed's
// public key; fails the test unless both succeed. Returns the verification's output.
CommandResult CertifyAndVerify(const Mesh& mesh, const std::string& request_id);

// Policy text for the given domains. Purposes: "marketing" (growth, erase_on_withdrawal) when
// growth is among them, "research" (assessments, no erasure) when assessments is.
std::string MeshPolicy(const std::vector<std::string>& domains,
                       const std::string& identities = "[email, user_id]");

}  // namespace lethe::testing
