// Unit tests for the independent Auditor (audit.h), behind `lethectl ledger verify`: logs
// written by a real Ledger (or chained by hand where Append would refuse), then audited from
// their bytes and a signed checkpoint: the chain, the Merkle root, receipts and the keys that
// signed them, policies, consent, deadlines, identity mapping, who did it, and the plan.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "audit/auditor.h"
#include "audit/certificate.h"
#include "audit/physical.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"
#include "tests/support/ledger_fixture.h"

namespace lethe::audit {
namespace {

using ::lethe::testing::kNow;
using ::lethe::testing::kOrigin;
using ::lethe::testing::NewKey;
using ::lethe::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// ---- policies, consent, deadlines and identity mapping in the audit ------------------------

constexpr char kAuditPolicy[] =
    "version: 1\nname: audit\nidentities: [email, user_id]\n"
    "purposes:\n  - name: marketing\n    description: x\n    domains: [d1]\n    erase_on_withdrawal: true\n"
    "deadlines:\n  erasure: 30d\n  max_extension: 60d\n"
    "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
    "          identity: email\n          action: delete\n";

v1::LedgerEntry Activated(uint64_t activation, const std::string& yaml, const std::string& hash) {
  v1::LedgerEntry e;
  auto* pa = e.mutable_policy_activated();
  pa->set_activation(activation);
  pa->set_format_version(1);
  pa->set_policy_yaml(yaml);
  pa->set_policy_hash(hash);
  pa->set_source("test");
  e.mutable_actor()->set_role("admin");
  e.mutable_actor()->set_name("root");
  return e;
}

std::string AuditPolicyHash() {
  auto p = policies::Policy::Parse(kAuditPolicy, "audit");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->Hash() : "";
}

// Two domains keyed by email.
constexpr char kAuditPolicy2Email[] =
    "version: 1\nname: audit2e\nidentities: [email, user_id]\n"
    "deadlines:\n  erasure: 30d\n  max_extension: 60d\n"
    "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
    "          identity: email\n          action: delete\n"
    "  - name: d2\n    postgres:\n      tables:\n        - table: v\n          key: email\n"
    "          identity: email\n          action: delete\n";

// Both domains, d2 keyed by user_id.
constexpr char kTwoDomainPolicy[] =
    "version: 1\nname: audit2\nidentities: [email, user_id]\n"
    "deadlines:\n  erasure: 30d\n  max_extension: 60d\n"
    "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
    "          identity: email\n          action: delete\n"
    "  - name: d2\n    postgres:\n      tables:\n        - table: u\n          key: user_id\n"
    "          identity: user_id\n          action: delete\n";

std::string PolicyHash(const char* yaml) {
  auto p = policies::Policy::Parse(yaml, "audit");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->Hash() : "";
}

// The domain hash a command for `domain` carries in these tests: its section in the policy
// the test activates. d1's section is the same in every audit policy; d2's is keyed by
// user_id (kTwoDomainPolicy) unless a test sets another.
std::string DomainHashIn(const std::string& domain, const char* yaml = nullptr);

std::string DomainHashIn(const std::string& domain, const char* yaml) {
  if (yaml == nullptr) yaml = domain == "d2" ? kTwoDomainPolicy : kAuditPolicy;
  auto p = policies::Policy::Parse(yaml, "audit");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->DomainHash(domain) : "";
}

v1::LedgerEntry Operator(v1::LedgerEntry e) {
  e.mutable_actor()->set_role("operator");
  e.mutable_actor()->set_name("olga");
  return e;
}

// What an auditor is handed: every entry's bytes, and the signed checkpoints.
struct WrittenLog {
  std::vector<std::string> bytes;
  std::vector<std::string> checkpoints;  // after each append: [i] covers i + 1 entries
  std::string root;
};

// Writes `entries` after entry 0 into a real Ledger signed by `key` (one Append each).
WrittenLog WriteLog(const crypto::Ed25519PrivateKey& key, const std::vector<v1::LedgerEntry>& entries) {
  WrittenLog out;
  TempDir dir;
  ledger::LedgerOptions o;
  o.dir = dir.path();
  o.origin = kOrigin;
  o.signing_key = &key;
  o.checkpoint_every = 1;  // one checkpoint per entry, for the prefix tests
  o.checkpoint_interval = absl::ZeroDuration();
  auto ledger = ledger::Ledger::Open(o, nullptr);
  EXPECT_TRUE(ledger.ok()) << ledger.status();
  if (!ledger.ok()) return out;
  out.checkpoints.push_back((*ledger)->LatestCheckpoint());
  for (const auto& e : entries) {
    auto a = (*ledger)->Append({e}, kNow);
    EXPECT_TRUE(a.ok()) << a.status();
    out.checkpoints.push_back((*ledger)->LatestCheckpoint());
  }
  for (uint64_t s = 0; s < (*ledger)->size(); ++s) out.bytes.push_back((*ledger)->ReadEntry(s).value());
  out.root = *(*ledger)->Root();
  return out;
}

struct AuditOutcome {
  absl::Status status;
  std::optional<uint64_t> failed_entry;  // Add failed on it; nullopt: Finish's verdict
  std::optional<AuditReport> report;
};

AuditOutcome Audit(const crypto::Ed25519PublicKey& key, const std::string& checkpoint,
                   const std::vector<std::string>& bytes) {
  Auditor auditor(key, checkpoint);
  for (uint64_t s = 0; s < bytes.size(); ++s) {
    absl::Status st = auditor.Add(s, bytes[s]);
    if (!st.ok()) return {st, s, std::nullopt};
  }
  auto report = auditor.Finish();
  if (!report.ok()) return {report.status(), std::nullopt, std::nullopt};
  return {absl::OkStatus(), std::nullopt, *report};
}

class AuditorTest : public ::testing::Test {
 protected:
  static v1::LedgerEntry Enrolled(const std::string& domain, const crypto::Ed25519PublicKey& k) {
    v1::LedgerEntry e;
    e.mutable_actor()->set_role("admin");
    e.mutable_actor()->set_name("root");
    e.mutable_agent_enrolled()->set_domain(domain);
    e.mutable_agent_enrolled()->set_public_key(k.raw());
    e.mutable_agent_enrolled()->set_key_id(k.KeyId());
    return e;
  }
  // Planned with `policy_yaml` (kAuditPolicy by default), by an operator, with an email token.
  static v1::LedgerEntry Submitted(const std::string& request, const std::vector<std::string>& targets,
                                   const char* policy_yaml = kAuditPolicy) {
    v1::LedgerEntry e;
    auto* r = e.mutable_request_submitted();
    r->set_request_id(request);
    r->set_kind(v1::RequestSubmitted::ERASURE);
    auto* t = r->add_subject();
    t->set_type("email");
    t->set_token(crypto::Sha256("token"));
    for (const auto& d : targets) r->add_target_domains(d);
    r->set_policy_hash(PolicyHash(policy_yaml));
    r->set_sealed(crypto::RandomBytes(60));  // stands for the AES-GCM blob of the identities
    return Operator(e);
  }
  static v1::LedgerEntry Issued(const std::string& command, const std::string& request,
                                const std::string& domain, const std::string& digest,
                                const char* policy_yaml = nullptr) {
    v1::LedgerEntry e;
    auto* c = e.mutable_command_issued();
    c->set_command_id(command);
    c->set_request_id(request);
    c->set_domain(domain);
    c->set_command_digest(digest);
    c->set_sealed_envelope(crypto::RandomBytes(120));
    c->set_domain_policy_hash(DomainHashIn(domain, policy_yaml));
    return e;
  }
  static v1::LedgerEntry Recorded(const std::string& command, const std::string& request,
                                  const std::string& domain, const std::string& digest,
                                  v1::Receipt::Outcome outcome,
                                  const crypto::Ed25519PrivateKey& signer) {
    v1::Receipt r;
    r.set_command_id(command);
    r.set_request_id(request);
    r.set_domain(domain);
    r.set_command_digest(digest);
    r.set_outcome(outcome);
    r.set_verified_zero_remaining(outcome == v1::Receipt::COMPLETED);
    r.set_completed_at_unix_ms(absl::ToUnixMillis(kNow));
    v1::LedgerEntry e;
    auto* rr = e.mutable_receipt_recorded();
    *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), signer);
    rr->set_command_id(command);
    rr->set_request_id(request);
    rr->set_domain(domain);
    return e;
  }
  static v1::LedgerEntry Completed(const std::string& request, v1::RequestCompleted::Outcome o) {
    v1::LedgerEntry e;
    e.mutable_request_completed()->set_request_id(request);
    e.mutable_request_completed()->set_outcome(o);
    return e;
  }

  // Entries 1..6 of a one-domain erasure: activate the policy, enrol, submit, issue, receipt,
  // complete.
  std::vector<v1::LedgerEntry> Erasure(v1::Receipt::Outcome receipt_outcome,
                                       v1::RequestCompleted::Outcome completion,
                                       const crypto::Ed25519PrivateKey& receipt_signer,
                                       const std::string& receipt_digest) const {
    return {Activated(1, kAuditPolicy, AuditPolicyHash()), Enrolled("d1", agent_.public_key()),
            Submitted("r1", {"d1"}),
            Issued("c1", "r1", "d1", digest_),
            Recorded("c1", "r1", "d1", receipt_digest, receipt_outcome, receipt_signer),
            Completed("r1", completion)};
  }
  std::vector<v1::LedgerEntry> HappyErasure() const {
    return Erasure(v1::Receipt::COMPLETED, v1::RequestCompleted::COMPLETED, agent_, digest_);
  }

  static void ExpectDataLossAt(const AuditOutcome& out, uint64_t entry) {
    EXPECT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
    EXPECT_EQ(out.failed_entry, std::optional<uint64_t>(entry)) << out.status;
    EXPECT_THAT(std::string(out.status.message()), StartsWith(absl::StrCat("entry ", entry, ": ")));
  }

  const crypto::Ed25519PrivateKey key_ = NewKey();
  const crypto::Ed25519PrivateKey agent_ = NewKey();
  const std::string digest_ = crypto::Sha256("DeleteCommand body of c1");
};

TEST_F(AuditorTest, CompleteErasureLogPassesAudit) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  ASSERT_EQ(log.bytes.size(), 7u);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_TRUE(out.report.has_value());
  EXPECT_EQ(out.report->entries, 7u);
  EXPECT_EQ(out.report->agents, 1u);
  EXPECT_EQ(out.report->requests, 1u);
  EXPECT_EQ(out.report->requests_completed, 1u);
  EXPECT_EQ(out.report->requests_failed, 0u);
  EXPECT_EQ(out.report->commands, 1u);
  EXPECT_EQ(out.report->receipts, 1u);
  EXPECT_EQ(out.report->checkpoint_size, 7u);
  EXPECT_EQ(out.report->root, log.root);
  // Who activated the policy and who enrolled the key.
  ASSERT_EQ(out.report->governance.size(), 2u);
  EXPECT_EQ(out.report->governance[0].entry, 1u);
  EXPECT_EQ(out.report->governance[0].actor.role(), "admin");
  EXPECT_THAT(out.report->governance[1].what, HasSubstr("enrolled for domain d1"));
  EXPECT_EQ(out.report->unauthenticated, 0u);
  EXPECT_EQ(out.report->origin, kOrigin);
}

TEST_F(AuditorTest, FailedReceiptWithFailedCompletionPassesAudit) {
  const WrittenLog log = WriteLog(
      key_, Erasure(v1::Receipt::FAILED, v1::RequestCompleted::FAILED, agent_, digest_));
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_EQ(out.report->requests_failed, 1u);
  EXPECT_EQ(out.report->requests_completed, 0u);
}

TEST_F(AuditorTest, OlderCheckpointVerifiesItsPrefix) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints[4], log.bytes);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_EQ(out.report->checkpoint_size, 5u);
  EXPECT_EQ(out.report->entries, 7u);
}

TEST_F(AuditorTest, ReceiptSignedByKeyNotEnrolledIsDataLoss) {
  const auto stranger = NewKey();
  const WrittenLog log = WriteLog(
      key_, Erasure(v1::Receipt::COMPLETED, v1::RequestCompleted::COMPLETED, stranger, digest_));
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 5);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("not enrolled"));
}

TEST_F(AuditorTest, ReceiptByKeyEnrolledForAnotherDomainIsDataLoss) {
  const auto other_agent = NewKey();
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  entries.insert(entries.begin() + 2, Enrolled("d2", other_agent.public_key()));
  entries[5] = Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, other_agent);
  const WrittenLog log = WriteLog(key_, entries);
  ExpectDataLossAt(Audit(key_.public_key(), log.checkpoints.back(), log.bytes), 6);
}

TEST_F(AuditorTest, ReceiptForDifferentCommandBytesIsDataLoss) {
  const WrittenLog log =
      WriteLog(key_, Erasure(v1::Receipt::COMPLETED, v1::RequestCompleted::COMPLETED, agent_,
                             crypto::Sha256("some other command body")));
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 5);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("command bytes"));
}

TEST_F(AuditorTest, CompletionBeforeReceiptFromEveryTargetIsDataLoss) {
  const auto agent2 = NewKey();
  const std::string digest2 = crypto::Sha256("DeleteCommand body of c2");
  const WrittenLog log = WriteLog(
      key_, {Activated(1, kAuditPolicy2Email, PolicyHash(kAuditPolicy2Email)),
             Enrolled("d1", agent_.public_key()), Enrolled("d2", agent2.public_key()),
             Submitted("r1", {"d1", "d2"}, kAuditPolicy2Email), Issued("c1", "r1", "d1", digest_),
             Issued("c2", "r1", "d2", digest2, kAuditPolicy2Email),
             Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, agent_),
             Completed("r1", v1::RequestCompleted::COMPLETED)});
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 8);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("d2"));
}

TEST_F(AuditorTest, CompletedOutcomeDespiteFailedReceiptIsDataLoss) {
  const WrittenLog log = WriteLog(
      key_, Erasure(v1::Receipt::FAILED, v1::RequestCompleted::COMPLETED, agent_, digest_));
  ExpectDataLossAt(Audit(key_.public_key(), log.checkpoints.back(), log.bytes), 6);
}

TEST_F(AuditorTest, FlippedPrevHashByteIsDataLossAtThatEntry) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  std::vector<std::string> bytes = log.bytes;
  v1::LedgerEntry e;
  ASSERT_TRUE(e.ParseFromString(bytes[3]));
  const size_t at = bytes[3].find(e.prev_hash());
  ASSERT_NE(at, std::string::npos);
  bytes[3][at + 7] ^= 0x04;
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), bytes);
  ExpectDataLossAt(out, 3);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("chain"));
}

TEST_F(AuditorTest, AnyFlippedByteIsDataLoss) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  const uint64_t last = log.bytes.size() - 1;
  // A middle entry (caught by it or the chain link after it) and the last one (caught by it
  // or by the checkpoint's root).
  for (uint64_t victim : {uint64_t{2}, last}) {
    for (size_t pos = 0; pos < log.bytes[victim].size(); ++pos) {
      SCOPED_TRACE(absl::StrCat("entry ", victim, " byte ", pos));
      std::vector<std::string> bytes = log.bytes;
      bytes[victim][pos] ^= 0x01;
      const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), bytes);
      ASSERT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
      if (out.failed_entry) {
        EXPECT_TRUE(*out.failed_entry == victim || *out.failed_entry == victim + 1)
            << out.status;
        EXPECT_THAT(std::string(out.status.message()),
                    StartsWith(absl::StrCat("entry ", *out.failed_entry, ": ")));
      } else {
        EXPECT_EQ(victim, last) << out.status;
      }
    }
  }
}

TEST_F(AuditorTest, LogCreatedForAnotherKeyIsDataLoss) {
  // The log was created for `other`, and a checkpoint over those very entries is signed by
  // key_, so only entry 0 gives it away.
  const auto other = NewKey();
  const WrittenLog log = WriteLog(other, HappyErasure());
  ASSERT_OK_AND_ASSIGN(ledger::Checkpoint cp, ledger::ParseCheckpointUnverified(log.checkpoints.back()));
  const std::string resigned = ledger::SignCheckpoint(cp, key_);
  ExpectDataLossAt(Audit(key_.public_key(), resigned, log.bytes), 0);
}

TEST_F(AuditorTest, CheckpointSignedByAnotherKeyIsPermissionDenied) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  ASSERT_OK_AND_ASSIGN(ledger::Checkpoint cp, ledger::ParseCheckpointUnverified(log.checkpoints.back()));
  const AuditOutcome out = Audit(key_.public_key(), ledger::SignCheckpoint(cp, NewKey()), log.bytes);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kPermissionDenied) << out.status;
  EXPECT_FALSE(out.failed_entry.has_value()) << "every entry is fine; Finish must refuse";
}

TEST_F(AuditorTest, CheckpointCoveringMoreEntriesThanFedIsDataLoss) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  std::vector<std::string> fewer(log.bytes.begin(), log.bytes.end() - 1);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), fewer);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
  EXPECT_FALSE(out.failed_entry.has_value());
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("covers 7"));
}

TEST_F(AuditorTest, CheckpointOverOtherEntriesIsDataLoss) {
  const WrittenLog log = WriteLog(key_, HappyErasure());
  const std::string forged = ledger::SignCheckpoint({kOrigin, 7, crypto::Sha256("other")}, key_);
  const AuditOutcome out = Audit(key_.public_key(), forged, log.bytes);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
  EXPECT_FALSE(out.failed_entry.has_value());
}


v1::LedgerEntry Extended(const std::string& request, int64_t seconds, int64_t new_due) {
  v1::LedgerEntry e;
  auto* x = e.mutable_deadline_extended();
  x->set_request_id(request);
  x->set_extension_seconds(seconds);
  x->set_new_due_unix_ms(new_due);
  x->set_sealed_reason(crypto::RandomBytes(44));
  return Operator(e);
}

v1::LedgerEntry ConsentWithdrawn(const std::string& change, const std::string& request,
                                 v1::ConsentStatus status = v1::WITHDRAWN) {
  v1::LedgerEntry e;
  auto* c = e.mutable_consent_changed();
  c->set_change_id(change);
  c->mutable_subject()->set_type("email");
  c->mutable_subject()->set_token(crypto::Sha256("token"));
  c->set_purpose("marketing");
  c->set_status(status);
  c->set_source("test");
  c->set_erasure_request_id(request);
  c->set_policy_hash(AuditPolicyHash());
  return Operator(e);
}

TEST_F(AuditorTest, ActivatedPolicyMustHashToItsRecordedHash) {
  const std::string hash = AuditPolicyHash();
  auto good = WriteLog(key_, {Activated(1, kAuditPolicy, hash)});
  const AuditOutcome ok = Audit(key_.public_key(), good.checkpoints.back(), good.bytes);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.report->policy_activations, 1u);
  auto bad = WriteLog(key_, {Activated(1, kAuditPolicy, crypto::Sha256("another policy"))});
  ExpectDataLossAt(Audit(key_.public_key(), bad.checkpoints.back(), bad.bytes), 1);
  auto skipped = WriteLog(key_, {Activated(1, kAuditPolicy, hash), Activated(3, kAuditPolicy, hash)});
  ExpectDataLossAt(Audit(key_.public_key(), skipped.checkpoints.back(), skipped.bytes), 2);
}

TEST_F(AuditorTest, ExtensionsBeyondTheActivePolicysCapAreDataLoss) {
  const std::string hash = AuditPolicyHash();
  v1::LedgerEntry submitted = Submitted("r1", {"d1"});
  submitted.mutable_request_submitted()->set_due_unix_ms(1000);
  constexpr int64_t kDay = 86400;
  auto within = WriteLog(key_, {Activated(1, kAuditPolicy, hash), submitted, Issued("c1", "r1", "d1", digest_),
                                Extended("r1", 20 * kDay, 1000 + 20 * kDay * 1000),
                                Extended("r1", 40 * kDay, 1000 + 60 * kDay * 1000)});
  const AuditOutcome ok = Audit(key_.public_key(), within.checkpoints.back(), within.bytes);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.report->extensions, 2u);
  auto beyond = WriteLog(key_, {Activated(1, kAuditPolicy, hash), submitted, Issued("c1", "r1", "d1", digest_),
                                Extended("r1", 20 * kDay, 1000 + 20 * kDay * 1000),
                                Extended("r1", 41 * kDay, 1000 + 61 * kDay * 1000)});
  const AuditOutcome out = Audit(key_.public_key(), beyond.checkpoints.back(), beyond.bytes);
  ExpectDataLossAt(out, 5);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("max_extension"));
  auto wrong_due = WriteLog(key_, {Activated(1, kAuditPolicy, hash), submitted, Extended("r1", kDay, 5)});
  ExpectDataLossAt(Audit(key_.public_key(), wrong_due.checkpoints.back(), wrong_due.bytes), 3);
}

TEST_F(AuditorTest, CompletionWhileADomainNeedsAnIdentityIsDataLossUntilOneIsAdded) {
  v1::LedgerEntry submitted = Submitted("r1", {"d1"}, kTwoDomainPolicy);
  auto* need = submitted.mutable_request_submitted()->add_needs_identity();
  need->set_domain("d2");
  need->add_identity_types("user_id");
  const auto agent2 = NewKey();
  const std::string digest2 = crypto::Sha256("DeleteCommand body of c2");
  const v1::LedgerEntry activated = Activated(1, kTwoDomainPolicy, PolicyHash(kTwoDomainPolicy));
  std::vector<v1::LedgerEntry> early = {
      activated, Enrolled("d1", agent_.public_key()), submitted, Issued("c1", "r1", "d1", digest_),
      Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, agent_),
      Completed("r1", v1::RequestCompleted::COMPLETED)};
  const WrittenLog log = WriteLog(key_, early);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 6);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("d2 still needed an identity"));

  v1::LedgerEntry added;
  added = Operator(added);
  added.mutable_identities_added()->set_request_id("r1");
  auto* t = added.mutable_identities_added()->add_subject();
  t->set_type("user_id");
  t->set_token(crypto::Sha256("user token"));
  added.mutable_identities_added()->add_target_domains("d2");
  added.mutable_identities_added()->set_sealed(crypto::RandomBytes(48));
  std::vector<v1::LedgerEntry> resolved = early;
  resolved.pop_back();
  resolved.insert(resolved.begin() + 2, Enrolled("d2", agent2.public_key()));
  resolved.push_back(added);
  resolved.push_back(Issued("c2", "r1", "d2", digest2));
  resolved.push_back(Recorded("c2", "r1", "d2", digest2, v1::Receipt::COMPLETED, agent2));
  resolved.push_back(Completed("r1", v1::RequestCompleted::COMPLETED));
  const WrittenLog ok_log = WriteLog(key_, resolved);
  const AuditOutcome ok = Audit(key_.public_key(), ok_log.checkpoints.back(), ok_log.bytes);
  EXPECT_TRUE(ok.status.ok()) << ok.status;
  // A command for the waiting domain before any identity was added is outside the plan.
  std::vector<v1::LedgerEntry> premature = {activated, Enrolled("d1", agent_.public_key()), submitted,
                                            Issued("c2", "r1", "d2", digest2)};
  const WrittenLog bad = WriteLog(key_, premature);
  ExpectDataLossAt(Audit(key_.public_key(), bad.checkpoints.back(), bad.bytes), 4);
}

TEST_F(AuditorTest, ConsentWithdrawalAndItsErasureMustNameEachOther) {
  v1::LedgerEntry planned = Submitted("r1", {"d1"});
  planned.mutable_request_submitted()->set_consent_change_id("ch1");
  planned.mutable_request_submitted()->set_scope_purpose("marketing");
  planned.clear_actor();  // caused by the consent change before it
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy, AuditPolicyHash());
  auto linked = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "r1"), planned,
                                Issued("c1", "r1", "d1", digest_)});
  const AuditOutcome ok = Audit(key_.public_key(), linked.checkpoints.back(), linked.bytes);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.report->consent_changes, 1u);
  // The planned erasure is missing from the log.
  auto missing = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "r1")});
  const AuditOutcome out = Audit(key_.public_key(), missing.checkpoints.back(), missing.bytes);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kDataLoss) << out.status;
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("does not hold"));
  // A request claiming a consent change that planned another request.
  auto other = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "r9"), planned});
  ExpectDataLossAt(Audit(key_.public_key(), other.checkpoints.back(), other.bytes), 3);
  // A grant never plans an erasure.
  auto grant = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "r1", v1::GRANTED)});
  ExpectDataLossAt(Audit(key_.public_key(), grant.checkpoints.back(), grant.bytes), 2);
}

// ---- who did it, revoked keys and the plan ----------------------------------------------------

TEST_F(AuditorTest, KeyEnrolledWithoutAnAuthenticatedAdminFailsUnlessAccepted) {
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  entries[1].clear_actor();  // as lethed --insecure (or before mTLS) wrote it
  const WrittenLog log = WriteLog(key_, entries);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("no authenticated caller"));
  Auditor lenient(key_.public_key(), log.checkpoints.back(), AuditOptions{.accept_unauthenticated = true});
  for (uint64_t i = 0; i < log.bytes.size(); ++i) ASSERT_TRUE(lenient.Add(i, log.bytes[i]).ok());
  auto report = lenient.Finish();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->unauthenticated, 1u);
}

TEST_F(AuditorTest, KeyEnrolledByAnOperatorIsDataLoss) {
  // The forged-completion attack: a non-admin enrols their own key for a domain.
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  entries[1] = Operator(entries[1]);
  const WrittenLog log = WriteLog(key_, entries);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("only admin may"));
}

TEST_F(AuditorTest, ReceiptByARevokedKeyIsDataLossButEarlierOnesVerify) {
  v1::LedgerEntry revoked;
  revoked.mutable_agent_key_revoked()->set_domain("d1");
  revoked.mutable_agent_key_revoked()->set_key_id(agent_.public_key().KeyId());
  revoked.mutable_actor()->set_role("admin");
  revoked.mutable_actor()->set_name("root");
  std::vector<v1::LedgerEntry> before = HappyErasure();
  before.push_back(revoked);  // after the receipt: it still verifies
  const WrittenLog ok_log = WriteLog(key_, before);
  const AuditOutcome ok = Audit(key_.public_key(), ok_log.checkpoints.back(), ok_log.bytes);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.report->key_revocations, 1u);
  std::vector<v1::LedgerEntry> after = HappyErasure();
  after.insert(after.begin() + 4, revoked);  // before the receipt
  const WrittenLog bad = WriteLog(key_, after);
  const AuditOutcome out = Audit(key_.public_key(), bad.checkpoints.back(), bad.bytes);
  ExpectDataLossAt(out, 6);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("revoked"));
}

TEST_F(AuditorTest, APlanThatDropsOrAddsADomainIsDataLoss) {
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy2Email, PolicyHash(kAuditPolicy2Email));
  // d2 is in scope (keyed by email, which the request carries) but the plan leaves it out.
  const WrittenLog dropped = WriteLog(key_, {activated, Submitted("r1", {"d1"}, kAuditPolicy2Email)});
  const AuditOutcome out = Audit(key_.public_key(), dropped.checkpoints.back(), dropped.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("r1: plan drops domain d2"));
  // A domain the policy does not have.
  const WrittenLog added = WriteLog(
      key_, {Activated(1, kAuditPolicy, AuditPolicyHash()), Submitted("r1", {"d1", "d9"})});
  const AuditOutcome out2 = Audit(key_.public_key(), added.checkpoints.back(), added.bytes);
  ExpectDataLossAt(out2, 2);
  EXPECT_THAT(std::string(out2.status.message()), HasSubstr("plan adds domain d9"));
  // Planned with a policy that is not the active one.
  const WrittenLog stale = WriteLog(key_, {activated, Submitted("r1", {"d1"}, kAuditPolicy)});
  const AuditOutcome out3 = Audit(key_.public_key(), stale.checkpoints.back(), stale.bytes);
  ExpectDataLossAt(out3, 2);
  EXPECT_THAT(std::string(out3.status.message()), HasSubstr("not the active policy"));
  // A target that never got a command.
  const WrittenLog silent = WriteLog(key_, {Activated(1, kAuditPolicy, AuditPolicyHash()), Submitted("r1", {"d1"})});
  const AuditOutcome out4 = Audit(key_.public_key(), silent.checkpoints.back(), silent.bytes);
  EXPECT_EQ(out4.status.code(), absl::StatusCode::kDataLoss) << out4.status;
  EXPECT_THAT(std::string(out4.status.message()), HasSubstr("no command was issued"));
}

// An erasure certificate whose plan left a domain out fails --verify, naming both.
TEST_F(AuditorTest, CertificateOfAPlanThatDropsADomainFailsVerification) {
  const auto agent2 = NewKey();
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy2Email, PolicyHash(kAuditPolicy2Email));
  const std::vector<v1::LedgerEntry> entries = {
      activated, Enrolled("d1", agent_.public_key()), Submitted("r1", {"d1"}, kAuditPolicy2Email),
      Issued("c1", "r1", "d1", digest_), Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, agent_),
      Completed("r1", v1::RequestCompleted::COMPLETED)};
  TempDir dir;
  ledger::LedgerOptions o;
  o.dir = dir.path();
  o.origin = kOrigin;
  o.signing_key = &key_;
  auto ledger = ledger::Ledger::Open(o, nullptr);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  for (const auto& e : entries) ASSERT_TRUE((*ledger)->Append({e}, kNow).ok());
  auto note = (*ledger)->Checkpoint();
  ASSERT_TRUE(note.ok()) << note.status();
  v1::ErasureCertificate cert;
  cert.set_format("lethe.erasure-certificate/v1");
  cert.set_request_id("r1");
  cert.set_checkpoint(*note);
  for (uint64_t i = 1; i <= entries.size(); ++i) {
    auto* pe = cert.add_entries();
    pe->set_index(i);
    pe->set_entry((*ledger)->ReadEntry(i).value());
    const std::vector<std::string> proof = (*ledger)->InclusionProof(i, entries.size() + 1).value();
    for (const auto& h : proof) pe->add_proof(h);
  }
  auto report = VerifyCertificate(cert, key_.public_key());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kDataLoss) << report.status();
  EXPECT_THAT(std::string(report.status().message()), HasSubstr("r1: plan drops domain d2"));
  // Without the policy's activation the plan cannot be checked: the certificate is incomplete.
  cert.mutable_entries()->DeleteSubrange(0, 1);
  EXPECT_EQ(VerifyCertificate(cert, key_.public_key()).status().code(), absl::StatusCode::kInvalidArgument);
}


// ---- rules added with the verifier verdicts (FORMAT.md §2.1, §5.3, §7) ------------------------

// Entries chained by hand, with the times given: Ledger::Append never writes a time earlier
// than the entry before, so a log that has one can only be made this way.
WrittenLog ChainByHand(const crypto::Ed25519PrivateKey& key, std::vector<v1::LedgerEntry> entries,
                       const std::vector<int64_t>& times) {
  WrittenLog out;
  ledger::MerkleTree tree;
  std::string prev(32, '\0');
  v1::LedgerEntry created;
  created.mutable_log_created()->set_origin(kOrigin);
  created.mutable_log_created()->set_control_plane_public_key(key.public_key().raw());
  entries.insert(entries.begin(), created);
  for (size_t i = 0; i < entries.size(); ++i) {
    v1::LedgerEntry& e = entries[i];
    e.set_seq(i);
    e.set_time_unix_ms(i == 0 ? 0 : times.at(i - 1));
    e.set_prev_hash(prev);
    out.bytes.push_back(e.SerializeAsString());
    prev = ledger::LeafHash(out.bytes.back());
    tree.Append(prev);
  }
  out.checkpoints.push_back(ledger::SignCheckpoint(ledger::Checkpoint{kOrigin, tree.size(), tree.Root()}, key));
  out.root = tree.Root();
  return out;
}

TEST_F(AuditorTest, AnEntryEarlierThanTheOneBeforeItIsDataLoss) {
  const std::vector<v1::LedgerEntry> entries = {Activated(1, kAuditPolicy, AuditPolicyHash()),
                                                Enrolled("d1", agent_.public_key())};
  const WrittenLog in_order = ChainByHand(key_, entries, {1000, 1000});
  ASSERT_OK(Audit(key_.public_key(), in_order.checkpoints.back(), in_order.bytes).status);
  const WrittenLog back = ChainByHand(key_, entries, {1000, 999});
  const AuditOutcome out = Audit(key_.public_key(), back.checkpoints.back(), back.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("before the time of the entry before it"));
}

TEST_F(AuditorTest, FreeTextThatLooksLikeAnIdentifierIsDataLoss) {
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy, AuditPolicyHash());
  auto grant = [](const std::string& source) {
    v1::LedgerEntry e = ConsentWithdrawn("ch1", "", v1::GRANTED);
    e.mutable_consent_changed()->set_source(source);
    return e;
  };
  for (const std::string ok : {"signup-form-v3", "import 2026-12-04", "batch 123456", "crm/eu-1"}) {
    const WrittenLog log = WriteLog(key_, {activated, grant(ok)});
    SCOPED_TRACE(ok);
    EXPECT_OK(Audit(key_.public_key(), log.checkpoints.back(), log.bytes).status);
  }
  for (const std::string bad : {"alice@example.com", "call +44 20 7946 0958", "user 73310042",
                                "(555) 555-0100", "line\nbreak"}) {
    const WrittenLog log = WriteLog(key_, {activated, grant(bad)});
    const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
    ExpectDataLossAt(out, 2);
    EXPECT_THAT(std::string(out.status.message()), HasSubstr("ConsentChanged.source"));
  }
  // The same rule for a revocation's reason (and a receipt's error: audit_rules_test T13).
  v1::LedgerEntry revoked;
  revoked.mutable_actor()->set_role("admin");
  revoked.mutable_agent_key_revoked()->set_domain("d1");
  revoked.mutable_agent_key_revoked()->set_key_id(agent_.public_key().KeyId());
  revoked.mutable_agent_key_revoked()->set_reason("laptop of bob@example.com stolen");
  const WrittenLog rev = WriteLog(key_, {activated, Enrolled("d1", agent_.public_key()), revoked});
  ExpectDataLossAt(Audit(key_.public_key(), rev.checkpoints.back(), rev.bytes), 3);
}

TEST_F(AuditorTest, ASealedFieldThatIsNotCiphertextIsDataLoss) {
  v1::LedgerEntry plain = Submitted("r1", {"d1"});
  plain.mutable_request_submitted()->set_sealed("alice@example.com, user 73310042, in clear");
  const WrittenLog log = WriteLog(key_, {Activated(1, kAuditPolicy, AuditPolicyHash()), plain});
  AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("RequestSubmitted.sealed is not a sealed envelope"));
  v1::LedgerEntry empty = Submitted("r1", {"d1"});
  empty.mutable_request_submitted()->clear_sealed();
  const WrittenLog log2 = WriteLog(key_, {Activated(1, kAuditPolicy, AuditPolicyHash()), empty});
  ExpectDataLossAt(Audit(key_.public_key(), log2.checkpoints.back(), log2.bytes), 2);
  std::vector<v1::LedgerEntry> cmd = HappyErasure();
  cmd[3].mutable_command_issued()->set_sealed_envelope("identities: alice@example.com (not sealed)");
  const WrittenLog log3 = WriteLog(key_, cmd);
  ExpectDataLossAt(Audit(key_.public_key(), log3.checkpoints.back(), log3.bytes), 4);
}

TEST_F(AuditorTest, UnknownFieldsFailUnlessAllowed) {
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  // Field 99 of RequestSubmitted: a later lethed's, or a smuggled identifier.
  entries[2].mutable_request_submitted()->GetReflection()->MutableUnknownFields(
      entries[2].mutable_request_submitted())->AddLengthDelimited(99, "alice@example.com");
  const WrittenLog log = WriteLog(key_, entries);
  const AuditOutcome strict = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(strict, 3);
  EXPECT_THAT(std::string(strict.status.message()), HasSubstr("request_submitted.#99"));
  Auditor lenient(key_.public_key(), log.checkpoints.back(), AuditOptions{.allow_unknown_fields = true});
  for (uint64_t i = 0; i < log.bytes.size(); ++i) ASSERT_OK(lenient.Add(i, log.bytes[i]));
  ASSERT_OK_AND_ASSIGN(AuditReport report, lenient.Finish());
  EXPECT_EQ(report.unknown_field_entries, 1u);
}

TEST_F(AuditorTest, ConsentRulesFollowTheActivePolicy) {
  const v1::LedgerEntry activated = Activated(1, kAuditPolicy, AuditPolicyHash());
  v1::LedgerEntry planned = Submitted("r1", {"d1"});
  planned.mutable_request_submitted()->set_consent_change_id("ch1");
  planned.mutable_request_submitted()->set_scope_purpose("marketing");
  planned.clear_actor();
  // marketing erases on withdrawal: a first withdrawal that plans nothing fails...
  const WrittenLog unplanned = WriteLog(key_, {activated, ConsentWithdrawn("ch1", "")});
  const AuditOutcome out = Audit(key_.public_key(), unplanned.checkpoints.back(), unplanned.bytes);
  ExpectDataLossAt(out, 2);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("planned no erasure"));
  // ...a second one in a row plans nothing, and must not.
  const std::vector<v1::LedgerEntry> twice = {activated, ConsentWithdrawn("ch1", "r1"), planned,
                                              Issued("c1", "r1", "d1", digest_),
                                              ConsentWithdrawn("ch2", "")};
  const WrittenLog ok = WriteLog(key_, twice);
  EXPECT_OK(Audit(key_.public_key(), ok.checkpoints.back(), ok.bytes).status);
  std::vector<v1::LedgerEntry> replanned = twice;
  replanned.back() = ConsentWithdrawn("ch2", "r2");
  const WrittenLog bad = WriteLog(key_, replanned);
  ExpectDataLossAt(Audit(key_.public_key(), bad.checkpoints.back(), bad.bytes), 5);
  // A change recorded under another policy than the active one, or for an undeclared purpose.
  v1::LedgerEntry stale = ConsentWithdrawn("ch1", "", v1::GRANTED);
  stale.mutable_consent_changed()->set_policy_hash(crypto::Sha256("an older policy"));
  const WrittenLog s = WriteLog(key_, {activated, stale});
  ExpectDataLossAt(Audit(key_.public_key(), s.checkpoints.back(), s.bytes), 2);
  v1::LedgerEntry undeclared = ConsentWithdrawn("ch1", "", v1::GRANTED);
  undeclared.mutable_consent_changed()->set_purpose("profiling");
  const WrittenLog u = WriteLog(key_, {activated, undeclared});
  ExpectDataLossAt(Audit(key_.public_key(), u.checkpoints.back(), u.bytes), 2);
}

TEST_F(AuditorTest, ACommandMustCarryTheActivePolicysDomainHash) {
  std::vector<v1::LedgerEntry> entries = HappyErasure();
  entries[3].mutable_command_issued()->set_domain_policy_hash(crypto::Sha256("another section"));
  const WrittenLog log = WriteLog(key_, entries);
  const AuditOutcome out = Audit(key_.public_key(), log.checkpoints.back(), log.bytes);
  ExpectDataLossAt(out, 4);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("domain_policy_hash"));
}

TEST_F(AuditorTest, OneReceiptPerDomainDecidesItsOutcome) {
  // A re-issued command (c2) for the same domain: the receipt of either may come first and
  // decides the outcome; a second receipt for the domain is never recorded.
  const std::string digest2 = crypto::Sha256("DeleteCommand body of c2");
  std::vector<v1::LedgerEntry> entries = {
      Activated(1, kAuditPolicy, AuditPolicyHash()), Enrolled("d1", agent_.public_key()),
      Submitted("r1", {"d1"}), Issued("c1", "r1", "d1", digest_), Issued("c2", "r1", "d1", digest2),
      Recorded("c1", "r1", "d1", digest_, v1::Receipt::COMPLETED, agent_),
      Completed("r1", v1::RequestCompleted::COMPLETED)};
  const WrittenLog ok = WriteLog(key_, entries);
  EXPECT_OK(Audit(key_.public_key(), ok.checkpoints.back(), ok.bytes).status);
  entries.insert(entries.end() - 1, Recorded("c2", "r1", "d1", digest2, v1::Receipt::FAILED, agent_));
  const WrittenLog two = WriteLog(key_, entries);
  const AuditOutcome out = Audit(key_.public_key(), two.checkpoints.back(), two.bytes);
  ExpectDataLossAt(out, 7);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("second receipt from domain d1"));
}

// audit/physical.h: a domain's two times from its receipts, and a request's bound.
v1::Receipt Answer(int64_t at) {
  v1::Receipt r;
  r.set_outcome(v1::Receipt::COMPLETED);
  r.set_completed_at_unix_ms(at);
  auto* t = r.add_tables();
  t->set_table("public.users");
  t->set_action("delete");
  t->set_rows_affected(1);
  return r;
}

TEST(PhysicalBound, PostgreSQLWaitsForTheSecondReceiptThenTheLatestStoreBounds) {
  v1::Receipt answer = Answer(1000);
  PhysicalBound b = DomainPhysicalBound(answer, nullptr, false);
  EXPECT_EQ(b.state, PhysicalBound::State::kPending);
  EXPECT_EQ(b.logically_erased_unix_ms, 1000);
  EXPECT_EQ(b.reason, "waiting for vacuum of public.users");
  v1::Receipt physical;
  physical.set_outcome(v1::Receipt::PHYSICALLY_PURGED);
  physical.set_physically_gone_by_unix_ms(5000);
  b = DomainPhysicalBound(answer, &physical, false);
  EXPECT_EQ(b.state, PhysicalBound::State::kBounded);
  EXPECT_EQ(b.gone_by_unix_ms, 5000);
  // A bucket and a compacted topic bound later: the latest wins.
  auto* s3 = answer.add_s3();
  s3->set_action("delete");
  s3->set_physically_gone_by_unix_ms(1200);
  auto* t = answer.add_tombstones();
  t->set_topic("mesh.people");
  t->set_physically_gone_by_unix_ms(9000);
  EXPECT_EQ(DomainPhysicalBound(answer, &physical, false).gone_by_unix_ms, 9000);
  // A purge that changed no row needs no second receipt.
  v1::Receipt untouched = Answer(1000);
  untouched.mutable_tables(0)->set_rows_affected(0);
  EXPECT_EQ(DomainPhysicalBound(untouched, nullptr, false).state, PhysicalBound::State::kBounded);
}

TEST(PhysicalBound, ATopicWithoutABoundIsAGapThatOutranksPending) {
  v1::Receipt answer = Answer(1000);
  auto* t = answer.add_tombstones();
  t->set_topic("mesh.people");
  t->set_config_read(true);
  t->set_cleanup_policy("compact");
  t->set_max_compaction_lag_ms(INT64_MAX);
  const PhysicalBound b = DomainPhysicalBound(answer, nullptr, false);
  EXPECT_EQ(b.state, PhysicalBound::State::kUnbounded);
  EXPECT_THAT(b.reason, HasSubstr("topic mesh.people (max.compaction.lag.ms is unset"));
  EXPECT_THAT(b.reason, HasSubstr("waiting for vacuum of public.users"));
  v1::Receipt unread = Answer(1000);
  unread.add_tombstones()->set_topic("mesh.people");
  EXPECT_THAT(DomainPhysicalBound(unread, nullptr, false).reason, HasSubstr("could not be read"));

  // The request: unbounded when one domain is, else pending when one is, else the latest.
  v1::Receipt done = Answer(2000);
  done.clear_tables();
  const PhysicalBound bounded = DomainPhysicalBound(done, nullptr, false);
  EXPECT_EQ(RequestPhysicalBound({{"a", bounded}, {"b", b}}).state, PhysicalBound::State::kUnbounded);
  EXPECT_EQ(RequestPhysicalBound({{"a", bounded}, {"b", DomainPhysicalBound(Answer(1), nullptr, false)}}).state,
            PhysicalBound::State::kPending);
  const PhysicalBound whole = RequestPhysicalBound({{"a", bounded}, {"c", DomainPhysicalBound(done, nullptr, false)}});
  EXPECT_EQ(whole.state, PhysicalBound::State::kBounded);
  EXPECT_EQ(whole.gone_by_unix_ms, 2000);
}

TEST(PhysicalBound, FailedAndAccessAnswersHaveNone) {
  v1::Receipt failed = Answer(1000);
  failed.set_outcome(v1::Receipt::FAILED);
  EXPECT_EQ(DomainPhysicalBound(failed, nullptr, false).state, PhysicalBound::State::kNotApplicable);
  EXPECT_EQ(DomainPhysicalBound(Answer(1000), nullptr, true).state, PhysicalBound::State::kNotApplicable);
  EXPECT_EQ(RequestPhysicalBound({{"a", DomainPhysicalBound(failed, nullptr, false)}}).state,
            PhysicalBound::State::kNotApplicable);
}

}  // namespace
}  // namespace lethe::audit
