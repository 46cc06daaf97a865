// RequestManager, the control plane's write path, on a real Ledger, IdentityVault and
// Projections in a temp dir (tests/fakes/control_plane.h), without PostgreSQL or Kafka:
// submission and planning, a failed append, receipt intake, extensions and consent.
#include "controlplane/request_manager.h"

#include <filesystem>
#include <fstream>

#include "base/file_system.h"
#include "base/status.h"
#include "controlplane/identity_vault.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/envelope.h"
#include "tests/fakes/control_plane.h"
#include "tests/support/envelopes.h"
#include "tests/support/fault_fs.h"

namespace lethe::controlplane {
namespace {

using ::lethe::testing::ControlPlane;
using ::lethe::testing::Identities;
using ::lethe::testing::OperatorActor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

std::vector<std::string> DomainNames(const RequestRecord& r) {
  std::vector<std::string> out;
  for (const auto& d : r.domains) out.push_back(d.domain);
  return out;
}

const DomainRecord& DomainOf(const RequestRecord& r, const std::string& domain) {
  for (const auto& d : r.domains)
    if (d.domain == domain) return d;
  ADD_FAILURE() << "no domain " << domain;
  static DomainRecord none;
  return none;
}

// Request keys on disk: the vault's slots that are not all zeros (identity_vault.h).
size_t KeyFiles(const ControlPlane& cp) {
  auto bytes = lethe::ReadFile(cp.dir().File("vault") + "/" + controlplane::IdentityVault::kKeysFile);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return 0;
  EXPECT_EQ(bytes->size() % controlplane::IdentityVault::kSlotSize, 0u);
  size_t n = 0;
  for (size_t at = 0; at < bytes->size(); at += controlplane::IdentityVault::kSlotSize)
    n += std::string_view(*bytes).substr(at, controlplane::IdentityVault::kSlotSize).find_first_not_of('\0') !=
         std::string_view::npos;
  return n;
}

class RequestManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cp_.ActivateSample();
    growth_ = cp_.Enroll("growth");
    assessments_ = cp_.Enroll("assessments");
  }
  std::string Submit(std::vector<std::pair<std::string, std::string>> ids) {
    auto id = cp_.manager().SubmitErasure(Identities(std::move(ids)), "asked by email", OperatorActor());
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  ControlPlane cp_;
  testing::AgentKeyPair growth_;
  testing::AgentKeyPair assessments_;
};

TEST_F(RequestManagerTest, SubmitRecordsTheRequestAndOneSealedCommandPerTargetDomain) {
  const uint64_t before = cp_.ledger().size();
  const std::string id = Submit({{"email", "alice@example.com"}, {"user_id", "u-1"}});
  // RequestSubmitted and a CommandIssued for each target, in one batch.
  ASSERT_EQ(cp_.ledger().size(), before + 3);
  const v1::LedgerEntry submitted = cp_.Entry(before);
  ASSERT_TRUE(submitted.has_request_submitted());
  EXPECT_EQ(submitted.request_submitted().request_id(), id);
  EXPECT_EQ(submitted.batch_remaining(), 2u);
  EXPECT_EQ(submitted.actor().name(), "unit-test");
  EXPECT_THAT(submitted.request_submitted().target_domains(), ElementsAre("assessments", "growth"));
  // The ledger holds tokens and sealed bytes, never the identity in clear.
  EXPECT_EQ(cp_.ledger().ReadEntry(before).value().find("alice@example.com"), std::string::npos);
  EXPECT_TRUE(cp_.Entry(before + 1).has_command_issued());
  EXPECT_TRUE(cp_.Entry(before + 2).has_command_issued());

  auto r = cp_.store().Get(id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, v1::IN_PROGRESS);
  EXPECT_EQ(absl::FromUnixMillis(r->due_unix_ms), cp_.clock().Now() + absl::Hours(24 * 30));
  EXPECT_THAT(DomainNames(*r), ElementsAre("assessments", "growth"));
  EXPECT_EQ(cp_.store().Pending(cp_.clock().Now(), absl::Hours(1)).size(), 2u);
  EXPECT_TRUE(cp_.vault().HasRequestKey(id));

  // growth's command carries only the email, sealed to growth's agent, signed by lethed.
  const CommandRecord growth = cp_.CommandFor(id, "growth");
  auto wire = cp_.manager().CommandWire(growth);
  ASSERT_TRUE(wire.ok()) << wire.status();
  v1::DeleteCommand cmd;
  std::string body;
  ASSERT_TRUE(testing::OpenEnvelope(*wire, proto::kDeleteCommandType, cp_.key().public_key(), &cmd, &body).ok());
  EXPECT_EQ(crypto::Sha256(body), growth.digest);
  EXPECT_EQ(cmd.recipient_key_id(), growth_.enc.public_key().KeyId());
  auto plain = growth_.enc.Open(cmd.sealed_identities());
  ASSERT_TRUE(plain.ok()) << plain.status();
  v1::SealedIdentities ids;
  ASSERT_TRUE(ids.ParseFromString(std::string(RevealSecret(*plain))));
  ASSERT_EQ(ids.identities_size(), 1);
  EXPECT_EQ(ids.identities(0).type(), "email");
  EXPECT_EQ(ids.identities(0).value(), "alice@example.com");
  EXPECT_FALSE(assessments_.enc.Open(cmd.sealed_identities()).ok());  // not sealed to them
}

TEST_F(RequestManagerTest, ADomainKeyedByAMissingTypeWaitsForAnIdentity) {
  const std::string id = Submit({{"email", "bob@example.com"}});
  auto r = cp_.store().Get(id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(DomainOf(*r, "growth").state, v1::PENDING);
  EXPECT_EQ(DomainOf(*r, "assessments").state, v1::NEEDS_IDENTITY);
  EXPECT_THAT(DomainOf(*r, "assessments").needed_types, ElementsAre("user_id"));
  EXPECT_EQ(cp_.store().Pending(cp_.clock().Now(), absl::Hours(1)).size(), 1u);
  // The missing identity then plans the waiting domain.
  ASSERT_TRUE(cp_.manager().AddIdentities(id, Identities({{"user_id", "u-2"}}), OperatorActor()).ok());
  EXPECT_EQ(cp_.store().Get(id)->domains.size(), 2u);
  EXPECT_EQ(DomainOf(*cp_.store().Get(id), "assessments").state, v1::PENDING);
  EXPECT_EQ(cp_.store().Pending(cp_.clock().Now(), absl::Hours(1)).size(), 2u);
}

TEST_F(RequestManagerTest, InvalidSubmissionRecordsNothing) {
  const uint64_t before = cp_.ledger().size();
  auto s = cp_.manager().SubmitErasure(Identities({{"phone", "+15550100"}}), "", OperatorActor());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("identities[0].type"));
  EXPECT_EQ(cp_.ledger().size(), before);
  EXPECT_TRUE(cp_.store().List().value().empty());
  EXPECT_EQ(KeyFiles(cp_), 0u);
}

// What lethed would rebuild from the ledger's files at its next start.
std::unique_ptr<Projections> Replayed(const ControlPlane& cp) {
  auto p = std::make_unique<Projections>();
  ledger::LedgerOptions lo;
  lo.dir = cp.dir().File("ledger");
  lo.signing_key = &cp.key();
  lo.checkpoint_interval = absl::ZeroDuration();
  lo.prezero_bytes = 0;
  auto reopened = ledger::Ledger::Open(lo, [&p](uint64_t seq, std::string_view, const v1::LedgerEntry& e) {
    return p->Apply(seq, e);
  });
  EXPECT_TRUE(reopened.ok()) << reopened.status();
  return p;
}

TEST(RequestManagerFaults, AFailedAppendLeavesLedgerAndKeysUnchangedAndShowsNothing) {
  testing::FaultInjectionFileSystem fs;
  ControlPlane cp({}, &fs);
  cp.ActivateSample();
  cp.Enroll("growth");
  const uint64_t before = cp.ledger().size();
  const uint64_t from = fs.call_count();
  fs.Fail([from](const testing::FaultInjectionFileSystem::Call& c) { return c.index >= from; });
  auto s = cp.manager().SubmitErasure(Identities({{"email", "carol@example.com"}}), "", OperatorActor());
  ASSERT_FALSE(s.ok());
  EXPECT_GT(fs.faults(), 0u);
  EXPECT_EQ(cp.ledger().size(), before);
  EXPECT_EQ(KeyFiles(cp), 0u);  // the request key made for it is destroyed again
  // The state ran ahead of the failed write (ledger_writer.h); nothing shows it: every answer
  // and publication waits for durability first, which now fails.
  EXPECT_EQ(cp.writer().AwaitDurable().code(), absl::StatusCode::kUnavailable);

  // A consent withdrawal that would plan an erasure: neither the change nor the erasure shows.
  auto c = cp.manager().ChangeConsent(SubjectIdentity{"email", SecretBytes("carol@example.com")},
                                      "marketing", v1::WITHDRAWN, "signup-form-v3", OperatorActor());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(cp.ledger().size(), before);
  EXPECT_TRUE(cp.projections().consent.CurrentAfter(0).empty());
  EXPECT_EQ(KeyFiles(cp), 0u);

  // The next start finds neither call.
  std::unique_ptr<Projections> after = Replayed(cp);
  EXPECT_TRUE(after->requests.List().value().empty());
  EXPECT_TRUE(after->requests.Pending(cp.clock().Now(), absl::Hours(1)).empty());
  EXPECT_TRUE(after->consent.CurrentAfter(0).empty());
  EXPECT_EQ(after->requests.Agents().size(), 1u);
}

TEST_F(RequestManagerTest, ReceiptSignedByAnUnenrolledKeyIsRefused) {
  const std::string id = Submit({{"email", "dan@example.com"}});
  const CommandRecord c = cp_.CommandFor(id, "growth");
  const uint64_t before = cp_.ledger().size();
  const auto stranger = crypto::Ed25519PrivateKey::Generate().value();
  absl::Status s = cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(c, stranger));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(s.message(), HasSubstr(", which is not enrolled"));  // refused before the body is read
  EXPECT_EQ(cp_.ledger().size(), before);
  EXPECT_EQ(DomainOf(*cp_.store().Get(id), "growth").state, v1::PENDING);
  EXPECT_EQ(cp_.manager().receipt_counters().rejected.load(), 1u);
}

TEST_F(RequestManagerTest, AReceiptIsAuthenticatedBeforeItsBodyIsRead) {
  // Named by an enrolled key but not signed by it, with a body that is not a Receipt: the
  // signature is what refuses it, never the parser.
  v1::SignedEnvelope env;
  env.set_payload_type(std::string(proto::kReceiptType));
  env.set_body("\xff\xff\xff not a receipt");
  env.set_signature(std::string(64, '\x01'));
  env.set_key_id(growth_.sign.public_key().KeyId());
  const uint64_t before = cp_.ledger().size();
  absl::Status s = cp_.manager().RecordReceipt(env.SerializeAsString());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(s.message(), Not(HasSubstr("parse")));
  EXPECT_EQ(cp_.ledger().size(), before);
}

TEST_F(RequestManagerTest, ReceiptSignedByAnotherDomainsKeyIsRefused) {
  const std::string id = Submit({{"email", "erin@example.com"}});
  const CommandRecord c = cp_.CommandFor(id, "growth");
  const uint64_t before = cp_.ledger().size();
  // assessments' key is enrolled, but not for growth.
  absl::Status s = cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(c, assessments_.sign));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(s.message(), HasSubstr("not enrolled for domain growth"));
  EXPECT_EQ(cp_.ledger().size(), before);
  EXPECT_EQ(DomainOf(*cp_.store().Get(id), "growth").state, v1::PENDING);
}

TEST_F(RequestManagerTest, ReceiptForOtherCommandBytesIsRefused) {
  const std::string id = Submit({{"email", "frank@example.com"}});
  const CommandRecord c = cp_.CommandFor(id, "growth");
  const uint64_t before = cp_.ledger().size();
  absl::Status s = cp_.manager().RecordReceipt(
      ControlPlane::ReceiptWire(c, growth_.sign, v1::Receipt::COMPLETED, crypto::Sha256("other bytes")));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(s.message(), HasSubstr("different command bytes"));
  EXPECT_EQ(cp_.ledger().size(), before);
}

TEST_F(RequestManagerTest, ReceiptFromARevokedKeyIsRefused) {
  const std::string id = Submit({{"email", "gina@example.com"}});
  const CommandRecord c = cp_.CommandFor(id, "growth");
  ASSERT_TRUE(cp_.enrolment().Revoke("growth", growth_.sign.public_key().KeyId(), "laptop lost",
                                           OperatorActor()).ok());
  const uint64_t before = cp_.ledger().size();
  absl::Status s = cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(c, growth_.sign));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_EQ(cp_.ledger().size(), before);
}

TEST_F(RequestManagerTest, GoodReceiptsAreRecordedAndTheLastCompletesTheRequestAndShredsItsKey) {
  const std::string id = Submit({{"email", "hank@example.com"}, {"user_id", "u-3"}});
  const CommandRecord growth = cp_.CommandFor(id, "growth");
  const CommandRecord assessments = cp_.CommandFor(id, "assessments");
  uint64_t before = cp_.ledger().size();
  ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(growth, growth_.sign)).ok());
  ASSERT_EQ(cp_.ledger().size(), before + 1);
  EXPECT_EQ(cp_.Entry(before).receipt_recorded().command_id(), growth.command_id);
  auto r = cp_.store().Get(id);
  EXPECT_EQ(DomainOf(*r, "growth").state, v1::DONE);
  EXPECT_EQ(r->state, v1::IN_PROGRESS);  // assessments has not answered
  EXPECT_TRUE(cp_.vault().HasRequestKey(id));

  // A redelivery is accepted silently and records nothing.
  before = cp_.ledger().size();
  ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(growth, growth_.sign)).ok());
  EXPECT_EQ(cp_.ledger().size(), before);
  EXPECT_EQ(cp_.manager().receipt_counters().duplicates.load(), 1u);

  ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(assessments, assessments_.sign)).ok());
  ASSERT_EQ(cp_.ledger().size(), before + 2);  // the receipt, then RequestCompleted
  EXPECT_EQ(cp_.Entry(before + 1).request_completed().outcome(), v1::RequestCompleted::COMPLETED);
  EXPECT_EQ(cp_.store().Get(id)->state, v1::COMPLETED);
  EXPECT_FALSE(cp_.vault().HasRequestKey(id));
  EXPECT_TRUE(cp_.store().Pending(cp_.clock().Now(), absl::Hours(1)).empty());
  EXPECT_EQ(cp_.manager().receipt_counters().recorded.load(), 2u);
}

TEST_F(RequestManagerTest, RecoverDestroysEveryKeyWhoseRequestIsNotOpenAndKeepsTheOpenOnes) {
  const std::string open = Submit({{"email", "olive@example.com"}});
  const std::string done = Submit({{"email", "otto@example.com"}, {"user_id", "u-otto"}});
  ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(cp_.CommandFor(done, "growth"), growth_.sign)).ok());
  ASSERT_TRUE(cp_.manager()
                  .RecordReceipt(ControlPlane::ReceiptWire(cp_.CommandFor(done, "assessments"), assessments_.sign))
                  .ok());
  ASSERT_EQ(cp_.store().Get(done)->state, v1::COMPLETED);
  ASSERT_FALSE(cp_.vault().HasRequestKey(done));
  // What a crash can leave: the key of an ended request (destroyed after the ledger said so)
  // and the key of a submission that was never recorded.
  ASSERT_TRUE(cp_.vault().CreateRequestKey(done).ok());
  ASSERT_TRUE(cp_.vault().CreateRequestKey("never-recorded").ok());
  ASSERT_TRUE(cp_.vault().HasRequestKey(done));
  ASSERT_EQ(KeyFiles(cp_), 3u);

  ASSERT_TRUE(cp_.manager().Recover().ok());
  EXPECT_TRUE(cp_.vault().HasRequestKey(open));
  EXPECT_FALSE(cp_.vault().HasRequestKey(done));
  EXPECT_FALSE(cp_.vault().HasRequestKey("never-recorded"));
  EXPECT_THAT(cp_.vault().StoredRequestKeys().value(), ElementsAre(open));
  EXPECT_EQ(KeyFiles(cp_), 1u) << "the destroyed keys' slots are zeros on disk";
  // The open request still publishes: its key is the one it was sealed under.
  EXPECT_TRUE(cp_.manager().CommandWire(cp_.CommandFor(open, "growth")).ok());
}

TEST_F(RequestManagerTest, ARefusalKeepsTheCommandOpenAndRecordsNothing) {
  const std::string id = Submit({{"email", "ivy@example.com"}});
  const CommandRecord c = cp_.CommandFor(id, "growth");
  const uint64_t before = cp_.ledger().size();
  ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(c, growth_.sign, v1::Receipt::REJECTED)).ok());
  EXPECT_EQ(cp_.ledger().size(), before);
  EXPECT_EQ(DomainOf(*cp_.store().Get(id), "growth").state, v1::PENDING);
  EXPECT_EQ(cp_.manager().receipt_counters().refused.load(), 1u);
}

TEST_F(RequestManagerTest, ExtensionsAddUpToAtMostThePolicysMaximum) {
  const std::string id = Submit({{"email", "jack@example.com"}});
  const int64_t due = cp_.store().Get(id)->due_unix_ms;
  const uint64_t before = cp_.ledger().size();
  // deadlines.max_extension is 60d: one day more is refused outright...
  absl::Status s = cp_.manager().Extend(id, absl::Hours(24 * 61), "complex request", OperatorActor());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("max_extension"));
  EXPECT_EQ(cp_.ledger().size(), before);
  // ...and so is a second extension that would take the sum beyond it.
  ASSERT_TRUE(cp_.manager().Extend(id, absl::Hours(24 * 40), "complex request", OperatorActor()).ok());
  EXPECT_EQ(cp_.store().Get(id)->due_unix_ms, due + absl::ToInt64Milliseconds(absl::Hours(24 * 40)));
  s = cp_.manager().Extend(id, absl::Hours(24 * 21), "still complex", OperatorActor());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(cp_.ledger().size(), before + 1);
  // Exactly up to the maximum is allowed.
  ASSERT_TRUE(cp_.manager().Extend(id, absl::Hours(24 * 20), "still complex", OperatorActor()).ok());
  EXPECT_EQ(cp_.store().Get(id)->due_unix_ms, due + absl::ToInt64Milliseconds(absl::Hours(24 * 60)));
}

TEST_F(RequestManagerTest, WithdrawingAnEraseOnWithdrawalPurposePlansAnErasureInTheSameBatch) {
  const SubjectIdentity kim{"email", SecretBytes("kim@example.com")};
  ASSERT_TRUE(cp_.manager().ChangeConsent(SubjectIdentity{kim.type, kim.value}, "marketing", v1::GRANTED,
                                          "signup-form-v3", OperatorActor()).ok());
  EXPECT_TRUE(cp_.store().List().value().empty());  // a grant plans nothing

  const uint64_t before = cp_.ledger().size();
  auto rec = cp_.manager().ChangeConsent(SubjectIdentity{kim.type, kim.value}, "marketing", v1::WITHDRAWN,
                                         "preference-center", OperatorActor());
  ASSERT_TRUE(rec.ok()) << rec.status();
  ASSERT_FALSE(rec->erasure_request_id.empty());
  // ConsentChanged, RequestSubmitted, CommandIssued(growth): one batch.
  ASSERT_EQ(cp_.ledger().size(), before + 3);
  const v1::LedgerEntry change = cp_.Entry(before);
  ASSERT_TRUE(change.has_consent_changed());
  EXPECT_EQ(change.batch_remaining(), 2u);
  EXPECT_EQ(change.consent_changed().erasure_request_id(), rec->erasure_request_id);
  const v1::LedgerEntry submitted = cp_.Entry(before + 1);
  ASSERT_TRUE(submitted.has_request_submitted());
  EXPECT_EQ(submitted.batch_remaining(), 1u);
  EXPECT_EQ(submitted.request_submitted().scope_purpose(), "marketing");
  EXPECT_EQ(submitted.request_submitted().consent_change_id(), change.consent_changed().change_id());
  // Scoped to the purpose's domains: growth only, not assessments.
  EXPECT_THAT(submitted.request_submitted().target_domains(), ElementsAre("growth"));
  EXPECT_EQ(cp_.Entry(before + 2).command_issued().domain(), "growth");
  EXPECT_EQ(cp_.Entry(before + 2).batch_remaining(), 0u);

  // Withdrawing again plans nothing more.
  auto again = cp_.manager().ChangeConsent(SubjectIdentity{kim.type, kim.value}, "marketing", v1::WITHDRAWN,
                                           "preference-center", OperatorActor());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->erasure_request_id.empty());
  EXPECT_EQ(cp_.store().List().value().size(), 1u);
}

TEST_F(RequestManagerTest, EnrolmentIsRefusedForUnknownDomainsAndTwiceForOneKey) {
  testing::AgentKeyPair k;
  const uint64_t before = cp_.ledger().size();
  auto s = cp_.enrolment().Enroll("billing", k.Pem(), OperatorActor());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("domain: \"billing\""));
  s = cp_.enrolment().Enroll("growth", growth_.Pem(), OperatorActor());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kAlreadyExists);
  // Only a signing key: commands could not be sealed to it.
  s = cp_.enrolment().Enroll("growth", k.sign.public_key().ToPem(), OperatorActor());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("public_key_pem: holds no X25519"));
  EXPECT_EQ(cp_.ledger().size(), before);
}

}  // namespace
}  // namespace lethe::controlplane

namespace lethe::controlplane {
namespace {

TEST_F(RequestManagerTest, ListPageCopiesOnePageAndSaysWhetherMoreFollow) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Submit({{"email", absl::StrCat("page", i, "@example.com")}}));
    cp_.clock().Advance(absl::Hours(24));  // due one day after the one before
  }
  auto page_ids = [](const absl::StatusOr<std::vector<RequestRecord>>& page) {
    std::vector<std::string> out;
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok())
      for (const auto& r : *page) out.push_back(r.request_id);
    return out;
  };
  bool more = false;
  auto first = cp_.store().ListPage(0, 2, std::nullopt, &more);
  EXPECT_THAT(page_ids(first), ElementsAre(ids[0], ids[1]));
  EXPECT_TRUE(more);
  auto second = cp_.store().ListPage(first->back().submitted_entry, 2, std::nullopt, &more);
  EXPECT_THAT(page_ids(second), ElementsAre(ids[2], ids[3]));
  EXPECT_TRUE(more);
  auto last = cp_.store().ListPage(second->back().submitted_entry, 2, std::nullopt, &more);
  EXPECT_THAT(page_ids(last), ElementsAre(ids[4]));
  EXPECT_FALSE(more);
  // Overdue only: at the first request's due date plus 36 h, the first two are overdue;
  // `more` counts overdue ones only.
  const absl::Time at = absl::FromUnixMillis(cp_.store().Get(ids[0])->due_unix_ms) + absl::Hours(36);
  auto overdue = cp_.store().ListPage(0, 1, at, &more);
  EXPECT_THAT(page_ids(overdue), ElementsAre(ids[0]));
  EXPECT_TRUE(more);
  overdue = cp_.store().ListPage(overdue->back().submitted_entry, 1, at, &more);
  EXPECT_THAT(page_ids(overdue), ElementsAre(ids[1]));
  EXPECT_FALSE(more);
}

}  // namespace
}  // namespace lethe::controlplane

namespace lethe::controlplane {
namespace {

// lethed's replay skips re-verifying receipt signatures only below the size of its own signed
// checkpoint (RequestStore::TrustReceiptSignaturesBelow): a receipt whose signature does not
// verify stops the replay at and above it.
TEST_F(RequestManagerTest, ReplayTrustsReceiptSignaturesOnlyBelowTheTrustedSize) {
  const std::string id = Submit({{"email", "tess@example.com"}, {"user_id", "u-77"}});
  const CommandRecord c = cp_.CommandFor(id, "growth");
  // A receipt recorded without the intake's checks, its signature broken.
  v1::SignedEnvelope env;
  ASSERT_TRUE(env.ParseFromString(ControlPlane::ReceiptWire(c, growth_.sign)));
  std::string sig = env.signature();
  sig[0] ^= 1;
  env.set_signature(sig);
  v1::LedgerEntry e;
  auto* rr = e.mutable_receipt_recorded();
  *rr->mutable_receipt() = env;
  rr->set_command_id(c.command_id);
  rr->set_request_id(c.request_id);
  rr->set_domain(c.domain);
  auto appended = cp_.ledger().Append({e}, cp_.clock().Now());
  ASSERT_TRUE(appended.ok()) << appended.status();
  const uint64_t bad = appended->front().seq;

  auto replay = [&](uint64_t trusted_below) -> absl::Status {
    Projections p;
    p.requests.TrustReceiptSignaturesBelow(trusted_below);
    for (uint64_t seq = 0; seq < cp_.ledger().size(); ++seq)
      LETHE_RETURN_IF_ERROR(p.Apply(seq, cp_.Entry(seq)));
    return absl::OkStatus();
  };
  absl::Status untrusted = replay(0);
  EXPECT_EQ(untrusted.code(), absl::StatusCode::kDataLoss) << untrusted;
  EXPECT_THAT(untrusted.message(), HasSubstr(absl::StrCat("ledger entry ", bad)));
  EXPECT_THAT(untrusted.message(), HasSubstr("signature"));
  EXPECT_EQ(replay(bad).code(), absl::StatusCode::kDataLoss) << "the receipt at the trusted size itself";
  EXPECT_TRUE(replay(bad + 1).ok()) << "below the trusted size the signature is not checked again";
}

// An ended request is compacted to the ledger indices of its entries once its completion is
// durable (RequestStore, "Memory"), and read back from the ledger: it must show exactly what
// the same request held whole shows, in every shape a request can end in.
TEST_F(RequestManagerTest, AnEndedRequestReadBackFromTheLedgerShowsWhatItShowedWhole) {
  auto answer = [&](const std::string& id, const std::string& domain, v1::Receipt::Outcome outcome) {
    const auto& key = domain == "growth" ? growth_ : assessments_;
    ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(cp_.CommandFor(id, domain), key.sign, outcome)).ok());
  };
  // Extended, refused once, then one domain failed: FAILED.
  const std::string failed = Submit({{"email", "una@example.com"}, {"user_id", "u-31"}});
  ASSERT_TRUE(cp_.manager().Extend(failed, absl::Hours(24), "complex", OperatorActor()).ok());
  answer(failed, "growth", v1::Receipt::REJECTED);
  answer(failed, "growth", v1::Receipt::COMPLETED);
  answer(failed, "assessments", v1::Receipt::FAILED);
  // Waited for an identity, which was added: COMPLETED.
  const std::string added = Submit({{"email", "vic@example.com"}});
  ASSERT_TRUE(cp_.manager().AddIdentities(added, Identities({{"user_id", "u-32"}}), OperatorActor()).ok());
  answer(added, "growth", v1::Receipt::COMPLETED);
  answer(added, "assessments", v1::Receipt::COMPLETED);
  // Planned by a withdrawal of consent: COMPLETED.
  auto withdrawn = cp_.manager().ChangeConsent(SubjectIdentity{"email", SecretBytes("wes@example.com")}, "marketing",
                                               v1::WITHDRAWN, "preference-center", OperatorActor());
  ASSERT_TRUE(withdrawn.ok()) << withdrawn.status();
  const std::string planned = withdrawn->erasure_request_id;
  answer(planned, "growth", v1::Receipt::COMPLETED);
  // Still open.
  const std::string open = Submit({{"email", "xia@example.com"}, {"user_id", "u-33"}});

  const RequestStore::Held held = cp_.store().held();
  EXPECT_EQ(held.whole, 1u);
  EXPECT_EQ(held.compacted, 3u);
  // The reference: the same log applied with nothing compacted.
  std::unique_ptr<Projections> whole = Replayed(cp_);
  EXPECT_EQ(whole->requests.held().compacted, 0u);
  const absl::Time now = cp_.clock().Now();
  for (const std::string& id : {failed, added, planned, open}) {
    SCOPED_TRACE(id);
    auto read_back = cp_.store().Get(id);
    auto reference = whole->requests.Get(id);
    ASSERT_TRUE(read_back.ok()) << read_back.status();
    ASSERT_TRUE(reference.ok()) << reference.status();
    EXPECT_EQ(ToView(*read_back, cp_.store(), now).DebugString(),
              ToView(*reference, whole->requests, now).DebugString());
    EXPECT_EQ(read_back->command_entries, reference->command_entries);
    EXPECT_EQ(read_back->addition_entries, reference->addition_entries);
    EXPECT_EQ(cp_.store().EvidenceEntries(id).value(), whole->requests.EvidenceEntries(id).value());
  }
  EXPECT_EQ(cp_.store().Get(failed)->state, v1::FAILED);
  EXPECT_NE(cp_.store().Get(planned)->consent_entry, 0u);
  // Listed in submission order, compacted and whole alike.
  std::vector<std::string> listed;
  const std::vector<RequestRecord> all = cp_.store().List().value();
  for (const auto& r : all) listed.push_back(r.request_id);
  EXPECT_THAT(listed, ElementsAre(failed, added, planned, open));
  // Whatever names an ended request is still refused.
  EXPECT_EQ(cp_.manager().Extend(planned, absl::Hours(1), "late", OperatorActor()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cp_.store().Get("0123456789abcdef0123456789abcdef").status().code(), absl::StatusCode::kNotFound);
}

// A compacted request is read back from the ledger's files: bytes that changed there since
// are reported as corruption, never shown. The entry was read once before the change.
TEST_F(RequestManagerTest, AnEndedRequestWhoseEntryChangedOnDiskIsReportedNotShown) {
  const std::string id = Submit({{"email", "yan@example.com"}, {"user_id", "u-34"}});
  for (const std::string domain : {"growth", "assessments"}) {
    const auto& key = domain == "growth" ? growth_ : assessments_;
    ASSERT_TRUE(cp_.manager().RecordReceipt(ControlPlane::ReceiptWire(cp_.CommandFor(id, domain), key.sign)).ok());
  }
  ASSERT_EQ(cp_.store().held().compacted, 1u);
  const RequestRecord before = cp_.store().Get(id).value();
  // Change one byte of the growth receipt's entry in its segment file, so that it still
  // parses: only its Merkle leaf can tell.
  const DomainRecord& growth = DomainOf(before, "growth");
  const std::string bytes = cp_.ledger().ReadEntry(growth.receipt_entry).value();
  bool changed = false;
  for (const auto& f : std::filesystem::directory_iterator(cp_.dir().File("ledger"))) {
    auto content = lethe::ReadFile(f.path().string());
    if (!content.ok()) continue;
    const size_t at = content->find(bytes);
    if (at == std::string::npos) continue;
    // The request id inside the receipt entry: a hex digit changed to another stays a valid
    // protobuf string.
    const size_t in = content->find(id, at);
    ASSERT_NE(in, std::string::npos);
    // Changed in place, as a disk or a stray write would (the ledger keeps each segment open
    // for reading, so a file put in its place by a rename is never read).
    std::fstream file(f.path(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(in));
    file.put((*content)[in] == 'a' ? 'b' : 'a');
    file.close();
    ASSERT_TRUE(file.good());
    changed = true;
  }
  ASSERT_TRUE(changed);
  auto after = cp_.store().Get(id);
  EXPECT_EQ(after.status().code(), absl::StatusCode::kDataLoss) << after.status();
  EXPECT_THAT(after.status().message(), HasSubstr(absl::StrCat("entry ", growth.receipt_entry)));
}

}  // namespace
}  // namespace lethe::controlplane
