// A control plane's write path for unit tests, without PostgreSQL, Kafka or gRPC: a real
// Ledger and IdentityVault in a temp dir, real Projections, a RequestManager on a
// ManualClock, the sample policy (policies/sample.yaml) activated, and agent keys that can
// be enrolled and sign receipts. Everything is in-process and takes milliseconds.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/clock.h"
#include "base/file_system.h"
#include "controlplane/agent_enrolment.h"
#include "controlplane/authorizer.h"
#include "controlplane/identity_vault.h"
#include "controlplane/policy_activator.h"
#include "controlplane/projections.h"
#include "controlplane/request_manager.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "proto/envelope.h"
#include "tests/support/files.h"

namespace lethe::testing {

// An agent's two key pairs, as `lethectl keys generate` makes them.
struct AgentKeyPair {
  crypto::Ed25519PrivateKey sign = crypto::Ed25519PrivateKey::Generate().value();
  crypto::X25519PrivateKey enc = crypto::X25519PrivateKey::Generate().value();
  // The .pub file: both public keys, Ed25519 first.
  std::string Pem() const { return sign.public_key().ToPem() + enc.public_key().ToPem(); }
};

inline v1::Actor OperatorActor() {
  v1::Actor a;
  a.set_role(controlplane::kRoleOperator);
  a.set_name("unit-test");
  return a;
}

// Policy activation and agent enrolment are an admin's.
inline v1::Actor AdminActor() {
  v1::Actor a;
  a.set_role(controlplane::kRoleAdmin);
  a.set_name("unit-test-admin");
  return a;
}

inline std::vector<controlplane::SubjectIdentity> Identities(
    std::vector<std::pair<std::string, std::string>> in) {
  std::vector<controlplane::SubjectIdentity> out;
  for (auto& [t, v] : in) out.push_back(controlplane::SubjectIdentity{t, SecretBytes(v)});
  return out;
}

class ControlPlane {
 public:
  // `fs`: the ledger's file system (nullptr: the real one).
  explicit ControlPlane(controlplane::RequestManagerOptions options = {}, FileSystem* fs = nullptr) {
    vault_ = controlplane::IdentityVault::Open(dir_.File("vault"), true).value();
    // Access requests' parts under DIR/parts, unless the test brings its own place.
    parts_ = controlplane::AccessParts::Open(dir_.path()).value();
    if (options.parts == nullptr) options.parts = parts_.get();
    ledger::LedgerOptions lo;
    lo.dir = dir_.File("ledger");
    lo.signing_key = &key_;
    lo.checkpoint_interval = absl::ZeroDuration();  // no timer thread: checkpoints on demand
    lo.prezero_bytes = 0;
    lo.file_system = fs;
    auto l = ledger::Ledger::Open(lo, [this](uint64_t seq, std::string_view, const v1::LedgerEntry& e) {
      return projections_.Replay(seq, e);
    });
    EXPECT_TRUE(l.ok()) << l.status();
    ledger_ = std::move(*l);
    writer_ = std::make_unique<controlplane::LedgerWriter>(*ledger_, projections_, clock_);
    activator_ = std::make_unique<controlplane::PolicyActivator>(*writer_, projections_);
    enrolment_ = std::make_unique<controlplane::AgentEnrolment>(*writer_, projections_);
    manager_ = std::make_unique<controlplane::RequestManager>(*writer_, projections_, *vault_, key_,
                                                              clock_, options);
  }

  // Activates policies/sample.yaml (domains assessments and growth; purpose marketing,
  // erase_on_withdrawal; erasure due in 30d, extensions up to 60d).
  void ActivateSample() {
    auto yaml = lethe::ReadFile(std::string(LETHE_SOURCE_DIR) + "/policies/sample.yaml");
    ASSERT_TRUE(yaml.ok()) << yaml.status();
    auto a = activator_->Activate(*yaml, "sample.yaml", "unit test", AdminActor());
    ASSERT_TRUE(a.ok()) << a.status();
  }

  // Enrolls a fresh agent key for `domain` and returns it.
  AgentKeyPair Enroll(const std::string& domain) {
    AgentKeyPair k;
    auto rec = enrolment_->Enroll(domain, k.Pem(), AdminActor());
    EXPECT_TRUE(rec.ok()) << rec.status();
    return k;
  }

  // A signed receipt for `command`, as an agent sends it to lethe.receipts.
  static std::string ReceiptWire(const controlplane::CommandRecord& command,
                                 const crypto::Ed25519PrivateKey& signer,
                                 v1::Receipt::Outcome outcome = v1::Receipt::COMPLETED,
                                 std::string digest = "") {
    v1::Receipt r;
    r.set_command_id(command.command_id);
    r.set_request_id(command.request_id);
    r.set_domain(command.domain);
    r.set_command_digest(digest.empty() ? command.digest : digest);
    r.set_outcome(outcome);
    r.set_verified_zero_remaining(outcome == v1::Receipt::COMPLETED);
    if (outcome == v1::Receipt::FAILED || outcome == v1::Receipt::REJECTED) r.set_error("table missing");
    return proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), signer).SerializeAsString();
  }

  // The latest command issued for `domain` of the request.
  controlplane::CommandRecord CommandFor(const std::string& request_id, const std::string& domain) const {
    auto r = projections_.requests.Get(request_id);
    EXPECT_TRUE(r.ok()) << request_id << ": " << r.status();
    if (r.ok())
      for (const auto& d : r->domains)
        if (d.domain == domain && !d.command_id.empty()) {
          auto c = projections_.requests.Command(d.command_id);
          EXPECT_TRUE(c.has_value());
          if (c) return *c;
        }
    ADD_FAILURE() << "no command for domain " << domain;
    return {};
  }

  v1::LedgerEntry Entry(uint64_t seq) const {
    v1::LedgerEntry e;
    EXPECT_TRUE(e.ParseFromString(ledger_->ReadEntry(seq).value()));
    return e;
  }

  ManualClock& clock() { return clock_; }
  ledger::Ledger& ledger() { return *ledger_; }
  controlplane::Projections& projections() { return projections_; }
  controlplane::RequestStore& store() { return projections_.requests; }
  controlplane::IdentityVault& vault() { return *vault_; }
  controlplane::AccessParts& parts() { return *parts_; }
  controlplane::RequestManager& manager() { return *manager_; }
  controlplane::LedgerWriter& writer() { return *writer_; }
  controlplane::PolicyActivator& activator() { return *activator_; }
  controlplane::AgentEnrolment& enrolment() { return *enrolment_; }
  const crypto::Ed25519PrivateKey& key() const { return key_; }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  ManualClock clock_;
  crypto::Ed25519PrivateKey key_ = crypto::Ed25519PrivateKey::Generate().value();
  controlplane::Projections projections_;
  std::unique_ptr<controlplane::IdentityVault> vault_;
  std::unique_ptr<controlplane::AccessParts> parts_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<controlplane::LedgerWriter> writer_;
  std::unique_ptr<controlplane::PolicyActivator> activator_;
  std::unique_ptr<controlplane::AgentEnrolment> enrolment_;
  std::unique_ptr<controlplane::RequestManager> manager_;
};

}  // namespace lethe::testing
