// One case per rule of ledger/FORMAT.md §7: a small valid log, changed so that it breaks
// exactly that rule and nothing else, must fail the Auditor at the entry the table names,
// saying what is wrong. The case names are the rule ids of the table, so that the table and
// the tests can be read side by side; a rule without a case here is a rule nobody checks.
//
// With LETHE_RULE_CASES_DIR set, every case is also written there as a ledger directory
// (DIR/<id>/ledger/: one segment and the checkpoint), with DIR/<id>/expect ("OK", or "FAILED"
// and the entry) and DIR/lethed.pub, so that another verifier can be run on the same logs.
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "audit/auditor.h"
#include "controlplane/request_store.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/record_format.h"
#include "lethe/v1/ledger.pb.h"
#include "lethe/v1/messages.pb.h"
#include "policies/policy.h"
#include "proto/envelope.h"
#include "tests/support/assertions.h"
#include "tests/support/files.h"

// The cases name only the members they change; the others keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace lethe::audit {
namespace {

using ::testing::HasSubstr;
using E = v1::LedgerEntry;
using Entries = std::vector<E>;

constexpr char kOrigin[] = "rules-test.example/log";

// d1 keyed by email, d2 by user_id; marketing erases on withdrawal in d1, research does not.
constexpr char kPolicy[] =
    "version: 1\nname: rules\nidentities: [email, user_id]\n"
    "purposes:\n  - name: marketing\n    description: x\n    domains: [d1]\n    erase_on_withdrawal: true\n"
    "  - name: research\n    description: y\n    domains: [d1]\n"
    "deadlines:\n  erasure: 30d\n  max_extension: 60d\n"
    "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
    "          identity: email\n          action: delete\n"
    // d1's topic feeds a sink its table covers; d2's a sink nothing erases (a gap, D5).
    "    kafka:\n      topics:\n        - topic: mesh.d1.people\n          key: \"{email}\"\n"
    "          sinks: [{name: archive, kind: s3, deletes_on_tombstone: false, covered_by: {table: t}}]\n"
    "  - name: d2\n    postgres:\n      tables:\n        - table: u\n          key: user_id\n"
    "          identity: user_id\n          action: delete\n"
    "    kafka:\n      topics:\n        - topic: mesh.d2.people\n          key: \"{user_id}\"\n"
    "          sinks: [{name: warehouse, kind: jdbc, deletes_on_tombstone: false}]\n";

const crypto::Ed25519PrivateKey& LethedKey() {
  static const auto* k = new crypto::Ed25519PrivateKey(crypto::Ed25519PrivateKey::Generate().value());
  return *k;
}
const crypto::Ed25519PrivateKey& AgentKey() {
  static const auto* k = new crypto::Ed25519PrivateKey(crypto::Ed25519PrivateKey::Generate().value());
  return *k;
}
const crypto::Ed25519PrivateKey& OtherKey() {
  static const auto* k = new crypto::Ed25519PrivateKey(crypto::Ed25519PrivateKey::Generate().value());
  return *k;
}
const policies::Policy& Policy() {
  static const auto* p = new policies::Policy(policies::Policy::Parse(kPolicy, "rules").value());
  return *p;
}
std::string Sealed(int n = 60) { return crypto::Sha256(absl::StrCat("sealed ", n)) + crypto::RandomBytes(n); }
const std::string& Token(const std::string& what = "alice") {
  static std::map<std::string, std::string> tokens;
  auto [it, fresh] = tokens.emplace(what, crypto::Sha256("token of " + what));
  return it->second;
}

E As(E e, const std::string& role, const std::string& name) {
  e.mutable_actor()->set_role(role);
  e.mutable_actor()->set_name(name);
  return e;
}
E Activated(int64_t n = 1) {
  E e;
  auto* pa = e.mutable_policy_activated();
  pa->set_activation(n);
  pa->set_format_version(1);
  pa->set_name("rules");
  pa->set_policy_yaml(kPolicy);
  pa->set_policy_hash(Policy().Hash());
  pa->set_source("policy activate rules.yaml");
  return As(e, "admin", "root");
}
E Enrolled(const std::string& domain, const crypto::Ed25519PrivateKey& k) {
  E e;
  e.mutable_agent_enrolled()->set_domain(domain);
  e.mutable_agent_enrolled()->set_public_key(k.public_key().raw());
  e.mutable_agent_enrolled()->set_key_id(k.public_key().KeyId());
  return As(e, "admin", "root");
}
E Revoked(const std::string& domain, const crypto::Ed25519PrivateKey& k) {
  E e;
  e.mutable_agent_key_revoked()->set_domain(domain);
  e.mutable_agent_key_revoked()->set_key_id(k.public_key().KeyId());
  e.mutable_agent_key_revoked()->set_reason("key rotated");
  return As(e, "admin", "root");
}
// An erasure of alice's email: d1 is targeted, d2 waits for a user_id.
E Submitted(const std::string& id = "r1") {
  E e;
  auto* r = e.mutable_request_submitted();
  r->set_request_id(id);
  r->set_kind(v1::RequestSubmitted::ERASURE);
  r->add_subject()->set_type("email");
  r->mutable_subject(0)->set_token(Token());
  r->set_sealed(Sealed());
  r->set_policy_hash(Policy().Hash());
  r->add_target_domains("d1");
  auto* need = r->add_needs_identity();
  need->set_domain("d2");
  need->add_identity_types("user_id");
  r->set_received_unix_ms(1000);
  r->set_due_unix_ms(1000 + 30LL * 86400 * 1000);
  return As(e, "operator", "olga");
}
std::string Digest(const std::string& command) { return crypto::Sha256("DeleteCommand " + command); }
E Issued(const std::string& command, const std::string& domain, const std::string& request = "r1") {
  E e;
  auto* c = e.mutable_command_issued();
  c->set_command_id(command);
  c->set_request_id(request);
  c->set_domain(domain);
  c->set_command_digest(Digest(command));
  c->set_sealed_envelope(Sealed(120));
  c->set_domain_policy_hash(Policy().DomainHash(domain));
  return e;
}
v1::Receipt ReceiptFor(const std::string& command, const std::string& domain, const std::string& request = "r1") {
  v1::Receipt r;
  r.set_command_id(command);
  r.set_request_id(request);
  r.set_domain(domain);
  r.set_command_digest(Digest(command));
  r.set_outcome(v1::Receipt::COMPLETED);
  r.set_verified_zero_remaining(true);
  r.set_completed_at_unix_ms(2000);
  // The sinks of the domain's topics, as its agent reports them (T16).
  for (const v1::SinkResult& s : audit::PolicySinks(Policy(), domain)) *r.add_sinks() = s;
  return r;
}
E Recorded(const v1::Receipt& r, const crypto::Ed25519PrivateKey& signer = AgentKey()) {
  E e;
  auto* rr = e.mutable_receipt_recorded();
  *rr->mutable_receipt() = proto::SignEnvelope(proto::kReceiptType, r.SerializeAsString(), signer);
  rr->set_command_id(r.command_id());
  rr->set_request_id(r.request_id());
  rr->set_domain(r.domain());
  return e;
}
E Added(const std::string& request = "r1") {
  E e;
  auto* a = e.mutable_identities_added();
  a->set_request_id(request);
  a->add_subject()->set_type("user_id");
  a->mutable_subject(0)->set_token(Token("alice's user id"));
  a->set_sealed(Sealed(48));
  a->add_target_domains("d2");
  return As(e, "operator", "olga");
}
// r1 is answered by d2, whose warehouse sink keeps the copy: DONE_WITH_GAPS when ok.
E Completed(const std::string& request = "r1", bool ok = true) {
  E e;
  e.mutable_request_completed()->set_request_id(request);
  e.mutable_request_completed()->set_outcome(!ok               ? v1::RequestCompleted::FAILED
                                             : request == "r1" ? v1::RequestCompleted::DONE_WITH_GAPS
                                                               : v1::RequestCompleted::COMPLETED);
  return e;
}
E Extended(int64_t days, int64_t from_due, const std::string& request = "r1") {
  E e;
  auto* x = e.mutable_deadline_extended();
  x->set_request_id(request);
  x->set_extension_seconds(days * 86400);
  x->set_new_due_unix_ms(from_due + days * 86400 * 1000);
  x->set_sealed_reason(Sealed(40));
  return As(e, "operator", "olga");
}
E Consent(const std::string& change, v1::ConsentStatus status, const std::string& purpose = "marketing",
          const std::string& erasure = "") {
  E e;
  auto* c = e.mutable_consent_changed();
  c->set_change_id(change);
  c->mutable_subject()->set_type("email");
  c->mutable_subject()->set_token(Token());
  c->set_purpose(purpose);
  c->set_status(status);
  c->set_source("preference-centre");
  c->set_policy_hash(Policy().Hash());
  c->set_erasure_request_id(erasure);
  return As(e, "operator", "olga");
}
// The erasure a withdrawal of marketing plans (scope: d1 only).
E PlannedBy(const std::string& change, const std::string& id) {
  E e = Submitted(id);
  auto* r = e.mutable_request_submitted();
  r->clear_needs_identity();
  r->set_consent_change_id(change);
  r->set_scope_purpose("marketing");
  e.clear_actor();
  return e;
}

const int64_t kDue = 1000 + 30LL * 86400 * 1000;

// An access command's receipt: no purge, the digests of its part.
v1::Receipt AccessReceiptFor(const std::string& command, const std::string& domain, const std::string& request) {
  v1::Receipt r = ReceiptFor(command, domain, request);
  r.clear_sinks();  // an access command reads: its receipt names no sink (T15)
  r.set_verified_zero_remaining(false);
  r.set_part_sha256(crypto::Sha256("part of " + command));
  r.set_part_sealed_sha256(crypto::Sha256("sealed part of " + command));
  r.set_part_size(120);
  r.set_part_chunks(1);
  auto* t = r.add_tables();
  t->set_table("s.t");
  t->set_action("delete");
  t->set_rows_exported(2);
  return r;
}
E Released(const std::string& request, v1::PackageReleased::Reason reason = v1::PackageReleased::EXPORTED) {
  E e;
  auto* p = e.mutable_package_released();
  p->set_request_id(request);
  p->set_reason(reason);
  if (reason == v1::PackageReleased::EXPORTED) {
    p->set_package_sha256(crypto::Sha256("package of " + request));
    return As(e, "operator", "olga");
  }
  return e;
}

// The valid log every case starts from (entries 1..; entry 0 is LogCreated): a policy, two
// agents, an erasure that waits for d2's identity until one is added, with an extension, a
// consent grant and a withdrawal that plans an erasure of its own, and a revoked key.
Entries ValidLog() {
  v1::Receipt r1 = ReceiptFor("c1", "d1"), r2 = ReceiptFor("c2", "d2"), r3 = ReceiptFor("c3", "d1", "r2");
  return {Activated(),                    // 1
          Enrolled("d1", AgentKey()),     // 2
          Enrolled("d2", OtherKey()),     // 3
          Submitted(),                    // 4
          Issued("c1", "d1"),             // 5
          Extended(10, kDue),             // 6
          Recorded(r1),                   // 7
          Added(),                        // 8
          Issued("c2", "d2"),             // 9
          Recorded(r2, OtherKey()),       // 10
          Completed(),                    // 11
          Consent("ch1", v1::GRANTED),    // 12
          Consent("ch2", v1::WITHDRAWN, "marketing", "r2"),  // 13
          PlannedBy("ch2", "r2"),         // 14
          Issued("c3", "d1", "r2"),       // 15
          Recorded(r3),                   // 16
          Completed("r2"),                // 17
          Revoked("d2", OtherKey())};     // 18
}

// ValidLog with an access request before the revocation: alice by both identities (r3),
// answered by both domains with their parts, completed, and its package exported (19..25).
Entries AccessLog() {
  Entries e = ValidLog();
  E revoked = e.back();
  e.pop_back();
  E submitted = Submitted("r3");
  auto* r = submitted.mutable_request_submitted();
  r->set_kind(v1::RequestSubmitted::ACCESS);
  r->clear_needs_identity();
  r->add_target_domains("d2");
  auto* u = r->add_subject();
  u->set_type("user_id");
  u->set_token(Token("alice's user id"));
  e.push_back(submitted);                                               // 18
  e.push_back(Issued("c4", "d1", "r3"));                                // 19
  e.push_back(Issued("c5", "d2", "r3"));                                // 20
  e.push_back(Recorded(AccessReceiptFor("c4", "d1", "r3")));            // 21
  e.push_back(Recorded(AccessReceiptFor("c5", "d2", "r3"), OtherKey()));  // 22
  e.push_back(Completed("r3"));                                         // 23
  e.push_back(Released("r3"));                                          // 24
  e.push_back(revoked);                                                 // 25
  return e;
}

// A COMPLETED receipt whose purge deleted a row of public.t (a table to vacuum, §7).
v1::Receipt PurgingReceiptFor(const std::string& command, const std::string& domain, const std::string& request) {
  v1::Receipt r = ReceiptFor(command, domain, request);
  auto* t = r.add_tables();
  t->set_table("public.t");
  t->set_action("delete");
  t->set_rows_affected(1);
  return r;
}
// Its PHYSICALLY_PURGED receipt: public.t vacuumed at 3000, after the purge (2000).
v1::Receipt PhysicalFor(const std::string& command, const std::string& domain, const std::string& request = "r1") {
  v1::Receipt r;
  r.set_command_id(command);
  r.set_request_id(request);
  r.set_domain(domain);
  r.set_command_digest(Digest(command));
  r.set_outcome(v1::Receipt::PHYSICALLY_PURGED);
  auto* t = r.add_tables();
  t->set_table("public.t");
  t->set_action("delete");
  t->set_vacuum("vacuum");
  t->set_vacuumed_unix_ms(3000);
  r.set_physically_gone_by_unix_ms(3000);
  r.set_completed_at_unix_ms(3001);
  return r;
}

// ValidLog whose d1 purges deleted rows, each followed by its PHYSICALLY_PURGED receipt after
// its request completed (18, 19), before the revocation (20).
Entries PhysicalLog() {
  Entries e = ValidLog();
  E revoked = e.back();
  e.pop_back();
  e[7 - 1] = Recorded(PurgingReceiptFor("c1", "d1", "r1"));
  e[16 - 1] = Recorded(PurgingReceiptFor("c3", "d1", "r2"));
  e.push_back(Recorded(PhysicalFor("c1", "d1")));        // 18
  e.push_back(Recorded(PhysicalFor("c3", "d1", "r2")));  // 19
  e.push_back(revoked);                                  // 20
  return e;
}
// The same with c1's PHYSICALLY_PURGED receipt while r1 is open (8), the rest one later.
Entries PhysicalOpenLog() {
  Entries e = ValidLog();
  e[7 - 1] = Recorded(PurgingReceiptFor("c1", "d1", "r1"));
  e.insert(e.begin() + 7, Recorded(PhysicalFor("c1", "d1")));  // 8
  return e;
}

struct Written {
  std::vector<std::string> bytes;
  ledger::MerkleTree tree;
};
// Entry 0, then `entries` with seq, prev_hash and times 1000 + i set, unless `keep_header`.
Written Chain(Entries entries, const std::function<void(std::vector<E>&)>& after_header = nullptr) {
  E created;
  created.mutable_log_created()->set_origin(kOrigin);
  created.mutable_log_created()->set_control_plane_public_key(LethedKey().public_key().raw());
  entries.insert(entries.begin(), created);
  for (size_t i = 0; i < entries.size(); ++i) entries[i].set_time_unix_ms(1000 + static_cast<int64_t>(i));
  for (size_t i = 0; i < entries.size(); ++i) entries[i].set_seq(i);
  if (after_header) after_header(entries);
  Written w;
  std::string prev(32, '\0');
  for (E& e : entries) {
    if (e.prev_hash().empty()) e.set_prev_hash(prev);  // a case may have set a wrong one
    w.bytes.push_back(e.SerializeAsString());
    prev = ledger::LeafHash(w.bytes.back());
    w.tree.Append(prev);
  }
  return w;
}

struct Case {
  std::string id;          // the rule's id in FORMAT.md §7
  std::string says;        // part of the failure message
  std::optional<uint64_t> entry;  // where Add fails; nullopt: Finish fails (or OK if says is empty)
  std::function<Entries()> entries = ValidLog;
  std::function<void(std::vector<E>&)> header;  // changes seq, time, prev_hash, marks
  std::function<void(std::vector<std::string>&)> bytes;  // changes the stored bytes
  std::optional<uint64_t> checkpoint_size;
  const crypto::Ed25519PrivateKey* checkpoint_key = nullptr;
  AuditOptions options = {};
};

void WriteCase(const std::string& dir, const Case& c, const std::vector<std::string>& bytes,
               const std::string& note) {
  namespace fs = std::filesystem;
  const std::string ledger = dir + "/" + c.id + "/ledger";
  fs::create_directories(ledger);
  std::string seg = ledger::format::EncodeSegmentHeader(0);
  for (const auto& b : bytes) ledger::format::AppendRecord(&seg, b);
  testing::WriteBytes(ledger + "/" + ledger::format::SegmentFileName(0), seg);
  testing::WriteBytes(ledger + "/" + ledger::Ledger::kCheckpointFile, note);
  testing::WriteBytes(dir + "/" + c.id + "/expect",
                      c.says.empty() ? "OK\n"
                                     : absl::StrCat("FAILED ", c.entry ? std::to_string(*c.entry) : "finish",
                                                    " ", c.says, "\n"));
  testing::WriteBytes(dir + "/lethed.pub", LethedKey().public_key().ToPem());
  if (c.options.accept_unauthenticated) testing::WriteBytes(dir + "/" + c.id + "/accept-unauthenticated", "");
}

class RuleTest : public ::testing::TestWithParam<Case> {};

TEST_P(RuleTest, BreakingTheRuleFailsTheAuditAtItsEntry) {
  const Case& c = GetParam();
  Written w = Chain(c.entries(), c.header);
  // The checkpoint is signed over the log as chained; a change to the bytes comes after.
  const ledger::MerkleTree& tree = w.tree;
  if (c.bytes) c.bytes(w.bytes);
  const uint64_t size = c.checkpoint_size.value_or(w.bytes.size());
  const std::string note = ledger::SignCheckpoint(
      ledger::Checkpoint{kOrigin, size, size <= tree.size() ? tree.Root(size) : tree.Root()},
      c.checkpoint_key ? *c.checkpoint_key : LethedKey());
  if (const char* dir = std::getenv("LETHE_RULE_CASES_DIR")) WriteCase(dir, c, w.bytes, note);

  Auditor auditor(LethedKey().public_key(), note, c.options);
  absl::Status st;
  uint64_t at = 0;
  for (; at < w.bytes.size() && st.ok(); ++at) st = auditor.Add(at, w.bytes[at]);
  if (st.ok()) {
    auto report = auditor.Finish();
    st = report.status();
    if (c.says.empty()) {
      EXPECT_TRUE(st.ok()) << st;
      return;
    }
    ASSERT_FALSE(st.ok()) << "rule " << c.id << " was broken and nothing noticed";
    EXPECT_FALSE(c.entry.has_value()) << "failed at Finish, not at entry " << *c.entry << ": " << st;
  } else {
    ASSERT_FALSE(c.says.empty()) << "the valid log fails: " << st;
    ASSERT_TRUE(c.entry.has_value()) << "failed at entry " << at - 1 << ", expected at Finish: " << st;
    EXPECT_EQ(at - 1, *c.entry) << st;
    EXPECT_THAT(std::string(st.message()), ::testing::StartsWith(absl::StrCat("entry ", *c.entry, ": ")));
  }
  EXPECT_THAT(std::string(st.message()), HasSubstr(c.says));
}

// The rules of a request's story (audit/request_lifecycle.h), which lethed's replay applies as
// the auditor does. The others are the auditor's own reading: framing and chain (S, P), entry
// 0 (L), who made an entry (W), what stands in clear (K6, Q4, M6, T12, T13, I6, X6, N4).
// M8 is judged at the end of a whole log, which lethed's replay never reaches mid-batch.
bool IsStoryRule(const std::string& id) {
  static const std::set<std::string> kOthers = {"K6", "Q4", "M6", "M8", "T12", "T13", "I6", "X6", "N4"};
  if (id == "valid" || kOthers.count(id)) return false;
  return std::string("KQMTDIXANRV").find(id[0]) != std::string::npos;
}

// The ledger as lethed's RequestStore reads entries back: only those written.
controlplane::RequestStore::EntryReader ReaderOf(const Written& w) {
  return [&w](uint64_t seq) -> absl::StatusOr<std::string> {
    if (seq >= w.bytes.size()) return absl::OutOfRangeError(absl::StrCat("entry ", seq, " is beyond the log"));
    return w.bytes[seq];
  };
}

// lethed's replay (RequestStore::Apply) and the auditor reach the same verdict on every case:
// a story rule broken at entry N stops the replay at N, naming the same rule; and the replay
// is never stricter than the auditor (it accepts every entry before the auditor's failure).
TEST_P(RuleTest, LethedsReplayReachesTheSameVerdictAsTheAuditor) {
  const Case& c = GetParam();
  Written w = Chain(c.entries(), c.header);
  if (c.bytes) c.bytes(w.bytes);
  controlplane::RequestStore store;
  store.SetEntryReader(ReaderOf(w));
  // Where the auditor fails (the whole log when it accepts it, or fails only at Finish).
  const uint64_t audited = c.entry.value_or(w.bytes.size());
  absl::Status st;
  uint64_t at = 0;
  for (; at < audited && st.ok(); ++at) {
    E e;
    ASSERT_TRUE(e.ParseFromString(w.bytes[at])) << "entry " << at;
    st = store.Apply(at, e);
  }
  ASSERT_TRUE(st.ok()) << "lethed's replay refuses entry " << at - 1 << " of case " << c.id
                       << ", which the auditor accepts: " << st;
  if (!IsStoryRule(c.id) || !c.entry.has_value()) return;
  E broken;
  ASSERT_TRUE(broken.ParseFromString(w.bytes[*c.entry]));
  st = store.Apply(*c.entry, broken);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << "lethed's replay accepts what rule " << c.id << " forbids";
  EXPECT_THAT(std::string(st.message()), ::testing::StartsWith(absl::StrCat("ledger entry ", *c.entry, ": ")));
  EXPECT_THAT(std::string(st.message()), HasSubstr(c.says));
}

// Helpers that make a case out of a change to ValidLog().
std::function<Entries()> Changed(std::function<void(Entries&)> f) {
  return [f] {
    Entries e = ValidLog();
    f(e);
    return e;
  };
}
// The same, of AccessLog().
std::function<Entries()> AccessChanged(std::function<void(Entries&)> f) {
  return [f] {
    Entries e = AccessLog();
    f(e);
    return e;
  };
}
std::function<Entries()> PhysicalChanged(std::function<void(Entries&)> f) {
  return [f] {
    Entries e = PhysicalLog();
    f(e);
    return e;
  };
}
std::function<Entries()> PhysicalOpenChanged(std::function<void(Entries&)> f) {
  return [f] {
    Entries e = PhysicalOpenLog();
    f(e);
    return e;
  };
}
// Entry i of the case's log is entries[i - 1] of ValidLog().
#define AT(i) e[(i) - 1]

std::vector<Case> Cases() {
  std::vector<Case> c;
  c.push_back({"valid", "", std::nullopt});
  c.push_back({"valid_access", "", std::nullopt, AccessLog});
  c.push_back({"valid_physical", "", std::nullopt, PhysicalLog});
  c.push_back({"valid_physical_open", "", std::nullopt, PhysicalOpenLog});
  // Structure (§1, §2, §5).
  c.push_back({"S1", "does not parse", 5, ValidLog, nullptr, [](auto& b) { b[5] = std::string("\xff\xff\xff", 3); }});
  c.push_back({"S2", "says it is entry", 5, ValidLog, [](auto& e) { e[5].set_seq(50); }});
  c.push_back({"S3", "chain broken", 5, ValidLog, [](auto& e) { e[5].set_prev_hash(std::string(32, 'x')); }});
  c.push_back({"S4", "breaks its batch", 5, ValidLog, [](auto& e) { e[4].set_batch_remaining(2); }});
  c.push_back({"S5", "holds field", 5, ValidLog, [](auto& e) {
                 e[5].GetReflection()->MutableUnknownFields(&e[5])->AddVarint(99, 1);
               }});
  c.push_back({"S6", "before the time of the entry before it", 5, ValidLog, [](auto& e) { e[5].set_time_unix_ms(3); }});
  c.push_back({"S7", "entry has no body", 18, Changed([](Entries& e) { AT(18).clear_body(); })});
  // The checkpoint (§4, §5.3).
  Case sig{"P1", "checkpoint", std::nullopt};
  sig.checkpoint_key = &OtherKey();
  c.push_back(sig);
  Case over{"P2", "covers 30 entries", std::nullopt};
  over.checkpoint_size = 30;
  c.push_back(over);
  c.push_back({"P3", "differs from the signed checkpoint", std::nullopt, ValidLog, nullptr, [](auto& b) {
                 // The checkpoint is signed over the log as written; its last entry is then
                 // rewritten (the last, so that no chain link shows it).
                 E last;
                 last.ParseFromString(b.back());
                 last.mutable_agent_key_revoked()->set_reason("key rotated again");
                 b.back() = last.SerializeAsString();
               }});
  Case mid{"P4", "ends inside a batch", std::nullopt, Changed([](Entries& e) {
             AT(14).set_batch_remaining(1);  // the erasure and its command: one batch
           })};
  mid.checkpoint_size = 15;
  c.push_back(mid);
  // Entry 0.
  c.push_back({"L1", "entry 0 is not LogCreated", 0, ValidLog, [](auto& e) {
                 e[0] = Activated();
                 e[0].set_seq(0);
               }});
  c.push_back({"L2", "another control-plane key", 0, ValidLog, [](auto& e) {
                 e[0].mutable_log_created()->set_control_plane_public_key(OtherKey().public_key().raw());
               }});
  c.push_back({"L3", "LogCreated may only be entry 0", 18, Changed([](Entries& e) {
                 AT(18).mutable_log_created()->set_origin(kOrigin);
               })});
  // Who did it.
  c.push_back({"W1", "only admin may", 2, Changed([](Entries& e) { AT(2) = As(AT(2), "operator", "olga"); })});
  c.push_back({"W2", "no authenticated caller", 4, Changed([](Entries& e) { AT(4).clear_actor(); })});
  Case accepted{"W3", "", std::nullopt, Changed([](Entries& e) { AT(4).clear_actor(); })};
  accepted.options.accept_unauthenticated = true;
  c.push_back(accepted);
  c.push_back({"W4", "only operator may", 13, Changed([](Entries& e) { AT(13) = As(AT(13), "auditor", "audrey"); })});
  // Agent keys.
  c.push_back({"K1", "no valid Ed25519 key", 2, Changed([](Entries& e) {
                 // y = 2: 32 bytes, but no x satisfies the curve equation.
                 std::string y2(32, '\0');
                 y2[0] = 2;
                 AT(2).mutable_agent_enrolled()->set_public_key(y2);
               })});
  c.push_back({"K2", "key_id mismatch", 2, Changed([](Entries& e) {
                 AT(2).mutable_agent_enrolled()->set_key_id("0000000000000000");
               })});
  c.push_back({"K3", "enrolled twice", 3, Changed([](Entries& e) { AT(3) = Enrolled("d1", AgentKey()); })});
  c.push_back({"K4", "never enrolled for its domain", 18, Changed([](Entries& e) { AT(18) = Revoked("d1", OtherKey()); })});
  c.push_back({"K5", "revoked twice", 19, Changed([](Entries& e) { e.push_back(Revoked("d2", OtherKey())); })});
  c.push_back({"K6", "AgentKeyRevoked.reason", 18, Changed([](Entries& e) {
                 AT(18).mutable_agent_key_revoked()->set_reason("lost by bob@example.com");
               })});
  // Requests and their plans.
  c.push_back({"Q1", "submitted twice", 14, Changed([](Entries& e) { AT(14) = Submitted("r1"); })});
  c.push_back({"Q2", "no domain in scope", 4, Changed([](Entries& e) {
                 AT(4).mutable_request_submitted()->clear_target_domains();
                 AT(4).mutable_request_submitted()->clear_needs_identity();
               })});
  c.push_back({"Q3", "not 32 bytes", 4, Changed([](Entries& e) {
                 AT(4).mutable_request_submitted()->mutable_subject(0)->set_token("alice@example.com");
               })});
  c.push_back({"Q4", "RequestSubmitted.sealed", 4, Changed([](Entries& e) {
                 AT(4).mutable_request_submitted()->set_sealed("alice@example.com in clear, padded to 28+");
               })});
  c.push_back({"Q5", "plan drops domain d2", 4, Changed([](Entries& e) {
                 AT(4).mutable_request_submitted()->clear_needs_identity();  // d2 dropped
               })});
  c.push_back({"Q6", "not the active policy", 4, Changed([](Entries& e) {
                 AT(4).mutable_request_submitted()->set_policy_hash(crypto::Sha256("old policy"));
               })});
  c.push_back({"Q7", "both targeted and waiting", 4, Changed([](Entries& e) {
                 AT(4).mutable_request_submitted()->add_target_domains("d2");
               })});
  c.push_back({"Q8", "before any policy was activated", 4, Changed([](Entries& e) { AT(1) = Enrolled("d3", AgentKey()); })});
  c.push_back({"Q9", "no known kind", 18, AccessChanged([](Entries& e) {
                 AT(18).mutable_request_submitted()->clear_kind();
               })});
  c.push_back({"Q9_consent", "an access request names a consent change", 14, Changed([](Entries& e) {
                 AT(14).mutable_request_submitted()->set_kind(v1::RequestSubmitted::ACCESS);
               })});
  // Commands.
  c.push_back({"M1", "command for an unknown request", 5, Changed([](Entries& e) { AT(5) = Issued("c1", "d1", "r9"); })});
  c.push_back({"M2", "outside the plan", 5, Changed([](Entries& e) { AT(5) = Issued("c1", "d2"); })});
  c.push_back({"M3", "after the request completed", 12, Changed([](Entries& e) { AT(12) = Issued("c9", "d1"); })});
  c.push_back({"M4", "issued twice", 9, Changed([](Entries& e) {
                 AT(9) = Issued("c1", "d2");
                 AT(10) = Recorded(ReceiptFor("c1", "d2"), OtherKey());
               })});
  c.push_back({"M5", "digest is not 32 bytes", 5, Changed([](Entries& e) {
                 AT(5).mutable_command_issued()->set_command_digest("short");
               })});
  c.push_back({"M6", "CommandIssued.sealed_envelope", 5, Changed([](Entries& e) {
                 AT(5).mutable_command_issued()->set_sealed_envelope("email=alice@example.com (in clear)");
               })});
  c.push_back({"M7", "domain_policy_hash", 5, Changed([](Entries& e) {
                 AT(5).mutable_command_issued()->set_domain_policy_hash(Policy().DomainHash("d2"));
               })});
  c.push_back({"M8", "no command was issued", std::nullopt, Changed([](Entries& e) {
                 e.erase(e.begin() + 14, e.end());  // r2 planned, its command (15) missing
               })});
  c.push_back({"M9", "issued twice", 15, Changed([](Entries& e) {
                 e.insert(e.begin() + 14, Issued("c1", "d1", "r2"));  // c1 was r1's, which has ended
               })});
  // Receipts.
  c.push_back({"T1", "receipt for an unknown command", 7, Changed([](Entries& e) {
                 AT(7) = Recorded(ReceiptFor("c9", "d1"));
               })});
  c.push_back({"T2", "does not match its command", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 AT(7) = Recorded(r);
                 AT(7).mutable_receipt_recorded()->set_domain("d2");
               })});
  c.push_back({"T3", "second receipt for a command", 8, Changed([](Entries& e) {
                 e.insert(e.begin() + 7, Recorded(ReceiptFor("c1", "d1")));
               })});
  c.push_back({"T4", "second receipt from domain d1", 9, Changed([](Entries& e) {
                 e.insert(e.begin() + 5, Issued("c1b", "d1"));  // re-issued: 6
                 e.insert(e.begin() + 7, Recorded(ReceiptFor("c1b", "d1")));  // 8 after 7
               })});
  c.push_back({"T5", "not enrolled for domain", 7, Changed([](Entries& e) {
                 AT(7) = Recorded(ReceiptFor("c1", "d1"), OtherKey());
               })});
  c.push_back({"T6", "revoked before the receipt", 17, Changed([](Entries& e) {
                 e.insert(e.begin() + 15, Revoked("d1", AgentKey()));  // 16; c3's receipt is 17
               })});
  c.push_back({"T7", "signature", 7, Changed([](Entries& e) {
                 auto* env = AT(7).mutable_receipt_recorded()->mutable_receipt();
                 std::string sig = env->signature();
                 sig[0] ^= 1;
                 env->set_signature(sig);
               })});
  c.push_back({"T8", "names another command", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 r.set_request_id("r2");
                 AT(7) = Recorded(r);
                 AT(7).mutable_receipt_recorded()->set_request_id("r1");
               })});
  c.push_back({"T9", "different command bytes", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 r.set_command_digest(Digest("c9"));
                 AT(7) = Recorded(r);
               })});
  c.push_back({"T10", "without the zero-remaining check", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 r.set_verified_zero_remaining(false);
                 AT(7) = Recorded(r);
               })});
  c.push_back({"T10_s3", "remaining in S3 bucket", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 auto* b = r.add_s3();
                 b->set_bucket("exports");
                 b->set_lines_remaining(1);
                 AT(7) = Recorded(r);
               })});
  // A receipt that leaves out a sink of its domain's policy section (here d2's warehouse, a
  // gap) would turn DONE_WITH_GAPS into COMPLETED.
  c.push_back({"T16", "sinks differ", 10, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c2", "d2");
                 r.clear_sinks();
                 AT(10) = Recorded(r, OtherKey());
               })});
  c.push_back({"T11", "no outcome", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 r.set_outcome(v1::Receipt::REJECTED);
                 AT(7) = Recorded(r);
               })});
  c.push_back({"T12", "signed receipt holds field", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 r.GetReflection()->MutableUnknownFields(&r)->AddLengthDelimited(99, "alice@example.com");
                 AT(7) = Recorded(r);
               })});
  c.push_back({"T13", "Receipt.error", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 r.set_outcome(v1::Receipt::FAILED);
                 r.set_verified_zero_remaining(false);
                 r.set_error("row of alice@example.com is locked");
                 AT(7) = Recorded(r);
               })});
  c.push_back({"T14", "a command of a request that has ended", 12, Changed([](Entries& e) {
                 e.insert(e.begin() + 11, Recorded(ReceiptFor("c1", "d1")));  // r1 completed at 11
               })});
  c.push_back({"T15", "reports rows changed or remaining", 21, AccessChanged([](Entries& e) {
                 v1::Receipt r = AccessReceiptFor("c4", "d1", "r3");
                 r.mutable_tables(0)->set_rows_affected(2);  // a purge, for an access request
                 AT(21) = Recorded(r);
               })});
  c.push_back({"T15_tombstone", "reports tombstones", 21, AccessChanged([](Entries& e) {
                 v1::Receipt r = AccessReceiptFor("c4", "d1", "r3");
                 r.add_tombstones()->set_topic("mesh.d1.people");
                 AT(21) = Recorded(r);
               })});
  c.push_back({"T15_s3", "reports S3 buckets", 21, AccessChanged([](Entries& e) {
                 v1::Receipt r = AccessReceiptFor("c4", "d1", "r3");
                 r.add_s3()->set_bucket("exports");
                 AT(21) = Recorded(r);
               })});
  c.push_back({"T15_sinks", "reports sinks", 21, AccessChanged([](Entries& e) {
                 v1::Receipt r = AccessReceiptFor("c4", "d1", "r3");
                 r.add_sinks()->set_name("people-archive");
                 AT(21) = Recorded(r);
               })});
  c.push_back({"T15_no_part", "without its part's digests", 21, AccessChanged([](Entries& e) {
                 v1::Receipt r = AccessReceiptFor("c4", "d1", "r3");
                 r.clear_part_sha256();
                 AT(21) = Recorded(r);
               })});
  c.push_back({"T15_erasure", "erasure receipt carries a part", 7, Changed([](Entries& e) {
                 v1::Receipt r = ReceiptFor("c1", "d1");
                 r.set_part_sha256(crypto::Sha256("a part"));
                 AT(7) = Recorded(r);
               })});
  // PHYSICALLY_PURGED receipts.
  c.push_back({"V1", "before its command's COMPLETED receipt", 7, PhysicalChanged([](Entries& e) {
                 e.insert(e.begin() + 6, Recorded(PhysicalFor("c1", "d1")));  // before c1's receipt
               })});
  c.push_back({"V1_no_rows", "left no dead rows to vacuum", 11, PhysicalChanged([](Entries& e) {
                 e.insert(e.begin() + 10, Recorded(PhysicalFor("c2", "d2"), OtherKey()));  // c2 deleted nothing
               })});
  c.push_back({"V1_ended", "a command of a request that has ended", 20, PhysicalChanged([](Entries& e) {
                 e.insert(e.begin() + 19, Recorded(PhysicalFor("c2", "d2"), OtherKey()));  // before the revocation
               })});
  c.push_back({"V2", "second PHYSICALLY_PURGED receipt", 9, PhysicalOpenChanged([](Entries& e) {
                 e.insert(e.begin() + 8, Recorded(PhysicalFor("c1", "d1")));
               })});
  c.push_back({"V3", "not the tables its COMPLETED receipt", 18, PhysicalChanged([](Entries& e) {
                 v1::Receipt r = PhysicalFor("c1", "d1");
                 r.mutable_tables(0)->set_table("public.u");
                 AT(18) = Recorded(r);
               })});
  c.push_back({"V3_early", "vacuumed before the purge committed", 18, PhysicalChanged([](Entries& e) {
                 v1::Receipt r = PhysicalFor("c1", "d1");
                 r.mutable_tables(0)->set_vacuumed_unix_ms(1999);
                 r.set_physically_gone_by_unix_ms(1999);
                 AT(18) = Recorded(r);
               })});
  c.push_back({"V3_signed", "signed before its last vacuum", 18, PhysicalChanged([](Entries& e) {
                 v1::Receipt r = PhysicalFor("c1", "d1");
                 r.set_completed_at_unix_ms(2999);
                 AT(18) = Recorded(r);
               })});
  c.push_back({"V4", "carries more than its tables' vacuums", 18, PhysicalChanged([](Entries& e) {
                 v1::Receipt r = PhysicalFor("c1", "d1");
                 r.add_tombstones()->set_topic("mesh.d1.people");
                 AT(18) = Recorded(r);
               })});
  c.push_back({"V4_kind", "no known vacuum", 18, PhysicalChanged([](Entries& e) {
                 v1::Receipt r = PhysicalFor("c1", "d1");
                 r.mutable_tables(0)->set_vacuum("truncate");
                 AT(18) = Recorded(r);
               })});
  c.push_back({"V4_rows", "reports rows", 18, PhysicalChanged([](Entries& e) {
                 v1::Receipt r = PhysicalFor("c1", "d1");
                 r.mutable_tables(0)->set_rows_affected(1);
                 AT(18) = Recorded(r);
               })});
  c.push_back({"V4_gone_by", "not its latest vacuum time", 18, PhysicalChanged([](Entries& e) {
                 v1::Receipt r = PhysicalFor("c1", "d1");
                 r.set_physically_gone_by_unix_ms(2500);
                 AT(18) = Recorded(r);
               })});
  c.push_back({"V4_answer", "reports a vacuum", 7, PhysicalChanged([](Entries& e) {
                 v1::Receipt r = PurgingReceiptFor("c1", "d1", "r1");
                 r.mutable_tables(0)->set_vacuumed_unix_ms(2000);
                 AT(7) = Recorded(r);
               })});
  c.push_back({"V4_access", "access receipt reports a physical purge", 22, AccessChanged([](Entries& e) {
                 e.insert(e.begin() + 21, Recorded(PhysicalFor("c4", "d1", "r3")));
               })});
  // Completions.
  c.push_back({"D1", "completion of an unknown request", 11, Changed([](Entries& e) { AT(11) = Completed("r9"); })});
  c.push_back({"D2", "completed twice", 12, Changed([](Entries& e) { AT(12) = Completed(); })});
  c.push_back({"D3", "still needed an identity", 8, Changed([](Entries& e) { AT(8) = Completed(); })});
  c.push_back({"D4", "without a receipt from domain d2", 10, Changed([](Entries& e) { AT(10) = Completed(); })});
  c.push_back({"D5", "contradicts the receipts", 11, Changed([](Entries& e) { AT(11) = Completed("r1", false); })});
  // d2's receipt names a sink that keeps the copy, yet the completion says COMPLETED.
  c.push_back({"D5_gaps", "contradicts the receipts", 11, Changed([](Entries& e) {
                 AT(11).mutable_request_completed()->set_outcome(v1::RequestCompleted::COMPLETED);
               })});
  // d1's sink is covered by its table: r2 (answered by d1 alone) has no gap to claim.
  c.push_back({"D5_covered", "contradicts the receipts", 17, Changed([](Entries& e) {
                 AT(17).mutable_request_completed()->set_outcome(v1::RequestCompleted::DONE_WITH_GAPS);
               })});
  // Access package releases.
  c.push_back({"R1", "no completed access request with a package held", 26, AccessChanged([](Entries& e) {
                 e.push_back(Released("r1"));  // an erasure
               })});
  c.push_back({"R1_twice", "no completed access request with a package held", 26, AccessChanged([](Entries& e) {
                 e.push_back(Released("r3", v1::PackageReleased::EXPIRED));
               })});
  c.push_back({"R1_open", "no completed access request with a package held", 23, AccessChanged([](Entries& e) {
                 std::swap(AT(23), AT(24));  // released before it completed
               })});
  c.push_back({"R2", "has no reason", 24, AccessChanged([](Entries& e) {
                 AT(24).mutable_package_released()->clear_reason();
               })});
  c.push_back({"R2_digest", "digest is not 32 bytes", 24, AccessChanged([](Entries& e) {
                 AT(24).mutable_package_released()->clear_package_sha256();
               })});
  c.push_back({"W4_export", "only operator may", 24, AccessChanged([](Entries& e) {
                 AT(24) = As(AT(24), "auditor", "audrey");
               })});
  // Identities added.
  c.push_back({"I1", "identities added to an unknown request", 8, Changed([](Entries& e) { AT(8) = Added("r9"); })});
  c.push_back({"I2", "added after the request completed", 12, Changed([](Entries& e) { AT(12) = Added(); })});
  c.push_back({"I3", "not 32 bytes", 8, Changed([](Entries& e) {
                 AT(8).mutable_identities_added()->mutable_subject(0)->set_token("73310042");
               })});
  c.push_back({"I4", "for no domain", 8, Changed([](Entries& e) {
                 AT(8).mutable_identities_added()->clear_target_domains();
               })});
  c.push_back({"I5", "which did not wait for one", 8, Changed([](Entries& e) {
                 AT(8).mutable_identities_added()->add_target_domains("d1");
               })});
  c.push_back({"I6", "IdentitiesAdded.sealed", 8, Changed([](Entries& e) {
                 AT(8).mutable_identities_added()->set_sealed("user_id=73310042, not sealed at all");
               })});
  // Extensions.
  c.push_back({"X1", "extension of an unknown request", 6, Changed([](Entries& e) { AT(6) = Extended(10, kDue, "r9"); })});
  c.push_back({"X2", "extension of a request that had completed", 12, Changed([](Entries& e) {
                 AT(12) = Extended(10, kDue + 10LL * 86400 * 1000);
               })});
  c.push_back({"X3", "not positive", 6, Changed([](Entries& e) { AT(6) = Extended(0, kDue); })});
  c.push_back({"X4", "max_extension", 6, Changed([](Entries& e) { AT(6) = Extended(61, kDue); })});
  c.push_back({"X5", "previous due date plus the extension", 6, Changed([](Entries& e) { AT(6) = Extended(10, kDue + 1); })});
  c.push_back({"X6", "DeadlineExtended.sealed_reason", 6, Changed([](Entries& e) {
                 AT(6).mutable_deadline_extended()->set_sealed_reason("the subject, alice, asked us to wait");
               })});
  // Policy activations.
  c.push_back({"A1", "does not validate", 1, Changed([](Entries& e) {
                 AT(1).mutable_policy_activated()->set_policy_yaml("version: 1\nname: broken\n");
               })});
  c.push_back({"A2", "does not hash to its policy_hash", 1, Changed([](Entries& e) {
                 AT(1).mutable_policy_activated()->set_policy_hash(crypto::Sha256("another"));
               })});
  c.push_back({"A3", "follows activation", 1, Changed([](Entries& e) { AT(1) = Activated(2); })});
  // Consent.
  c.push_back({"N1", "not 32 bytes", 12, Changed([](Entries& e) {
                 AT(12).mutable_consent_changed()->mutable_subject()->set_token("alice@example.com");
               })});
  c.push_back({"N2", "has no status", 12, Changed([](Entries& e) {
                 AT(12).mutable_consent_changed()->set_status(v1::CONSENT_STATUS_UNSPECIFIED);
               })});
  c.push_back({"N3", "names no purpose", 12, Changed([](Entries& e) { AT(12).mutable_consent_changed()->clear_purpose(); })});
  c.push_back({"N4", "ConsentChanged.source", 12, Changed([](Entries& e) {
                 AT(12).mutable_consent_changed()->set_source("web form, phone +44 20 7946 0958");
               })});
  c.push_back({"N5", "before any policy was activated", 1, Changed([](Entries& e) { AT(1) = Consent("ch0", v1::GRANTED); })});
  c.push_back({"N6", "not the active policy", 12, Changed([](Entries& e) {
                 AT(12).mutable_consent_changed()->set_policy_hash(crypto::Sha256("old policy"));
               })});
  c.push_back({"N7", "does not declare", 12, Changed([](Entries& e) {
                 AT(12).mutable_consent_changed()->set_purpose("profiling");
               })});
  c.push_back({"N8", "planned no erasure", 13, Changed([](Entries& e) {
                 AT(13).mutable_consent_changed()->clear_erasure_request_id();
                 e.erase(e.begin() + 13, e.begin() + 17);
               })});
  c.push_back({"N9", "a consent grant planned an erasure", 12, Changed([](Entries& e) {
                 AT(12).mutable_consent_changed()->set_erasure_request_id("r2");
               })});
  c.push_back({"N10", "without erase_on_withdrawal planned an erasure", 13, Changed([](Entries& e) {
                 AT(13).mutable_consent_changed()->set_purpose("research");
               })});
  c.push_back({"N11", "second withdrawal in a row", 18, Changed([](Entries& e) {
                 AT(18) = Consent("ch3", v1::WITHDRAWN, "marketing", "r3");
               })});
  c.push_back({"N12", "which the log does not hold", std::nullopt, Changed([](Entries& e) {
                 e.erase(e.begin() + 13, e.begin() + 17);  // the planned erasure is gone
               })});
  c.push_back({"N13", "did not plan it", 14, Changed([](Entries& e) {
                 AT(14).mutable_request_submitted()->set_consent_change_id("ch1");
               })});
  c.push_back({"N14", "scope purpose differs", 14, Changed([](Entries& e) {
                 AT(14).mutable_request_submitted()->set_scope_purpose("research");
               })});
  return c;
}
#undef AT

// I7 needs two domains waiting for the same identity type, which ValidLog's policy has not.
// lethed keeps a command that awaits its PHYSICALLY_PURGED receipt in memory while its request
// is open, and once the request has ended as the ledger index of its COMPLETED receipt, which
// it reads back when the second receipt comes (rule V1 against a log that keeps growing).
TEST(RuleV1, LethedKeepsWhatEndedRequestsAwaitOnDiskAndReadsItBack) {
  Written w = Chain(PhysicalLog());
  controlplane::RequestStore store;
  store.SetEntryReader(ReaderOf(w));
  for (uint64_t at = 0; at <= 7; ++at) {
    E e;
    ASSERT_TRUE(e.ParseFromString(w.bytes[at]));
    ASSERT_TRUE(store.Apply(at, e).ok()) << "entry " << at;
  }
  EXPECT_EQ(store.held().awaiting_vacuum, 1u) << "c1's COMPLETED receipt deleted a row; r1 is open";
  for (uint64_t at = 8; at <= 17; ++at) {
    E e;
    ASSERT_TRUE(e.ParseFromString(w.bytes[at]));
    ASSERT_TRUE(store.Apply(at, e).ok()) << "entry " << at;
  }
  EXPECT_EQ(store.held().awaiting_vacuum, 0u) << "r1 and r2 ended: c1 and c3 wait on disk";
  E physical;
  ASSERT_TRUE(physical.ParseFromString(w.bytes[18]));
  // Read back from entry 7: with that entry unreadable, the receipt waits (kUnavailable).
  store.SetEntryReader([](uint64_t seq) -> absl::StatusOr<std::string> {
    return absl::OutOfRangeError(absl::StrCat("entry ", seq, " is not durable yet"));
  });
  EXPECT_EQ(store.Apply(18, physical).code(), absl::StatusCode::kUnavailable);
  store.SetEntryReader(ReaderOf(w));
  ASSERT_TRUE(store.Apply(18, physical).ok());
  // Done: a second PHYSICALLY_PURGED receipt for c1 is old news.
  absl::Status again = store.Apply(19, physical);
  EXPECT_EQ(again.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(again.message()), HasSubstr("a command of a request that has ended"));
  // c3's wait points at entry 16; should it read back as another receipt (c1's, entry 7), that
  // is reported as such.
  E c3;
  ASSERT_TRUE(c3.ParseFromString(w.bytes[19]));
  store.SetEntryReader([&w](uint64_t) -> absl::StatusOr<std::string> { return w.bytes[7]; });
  absl::Status wrong = store.Apply(19, c3);
  EXPECT_EQ(wrong.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(wrong.message()), HasSubstr("is not that receipt"));
}

// Ended requests are read back through the entries reader (Ledger::ReadEntries in lethed): a
// request in one call, a page of them in one call, each entry asked for once and in ascending
// order, and shown as the entry-by-entry reader shows them; a reader that answers fewer
// entries than asked is an error, never a shorter story.
TEST(RuleV1, EndedRequestsAreReadBackInOneCallOfTheEntriesReader) {
  Written w = Chain(PhysicalLog());
  std::vector<std::vector<uint64_t>> calls;
  bool short_answer = false;
  auto entries = [&](absl::Span<const uint64_t> seqs) -> absl::StatusOr<std::vector<std::string>> {
    calls.emplace_back(seqs.begin(), seqs.end());
    std::vector<std::string> out;
    for (const uint64_t seq : seqs) out.push_back(w.bytes.at(seq));
    if (short_answer) out.pop_back();
    return out;
  };
  controlplane::RequestStore batched, plain;
  batched.SetEntryReader(ReaderOf(w), entries);
  plain.SetEntryReader(ReaderOf(w));
  for (uint64_t at = 0; at <= 17; ++at) {
    E e;
    ASSERT_TRUE(e.ParseFromString(w.bytes[at]));
    ASSERT_TRUE(batched.Apply(at, e).ok()) << "entry " << at;
    ASSERT_TRUE(plain.Apply(at, e).ok()) << "entry " << at;
  }
  batched.MarkDurable(18);
  plain.MarkDurable(18);
  ASSERT_EQ(batched.held().compacted, 2u);
  bool more = false;
  ASSERT_OK_AND_ASSIGN(const std::vector<controlplane::RequestRecord> page,
                       batched.ListPage(0, 10, std::nullopt, &more));
  ASSERT_OK_AND_ASSIGN(const std::vector<controlplane::RequestRecord> want, plain.ListPage(0, 10, std::nullopt, &more));
  ASSERT_EQ(page.size(), 2u);
  ASSERT_EQ(calls.size(), 1u) << "one call for the page";
  std::set<uint64_t> asked(calls[0].begin(), calls[0].end());
  EXPECT_EQ(asked.size(), calls[0].size()) << "each entry once";
  EXPECT_TRUE(std::is_sorted(calls[0].begin(), calls[0].end()));
  for (size_t i = 0; i < page.size(); ++i) {
    EXPECT_EQ(controlplane::ToView(page[i], batched, absl::UnixEpoch()).DebugString(),
              controlplane::ToView(want[i], plain, absl::UnixEpoch()).DebugString());
    EXPECT_TRUE(asked.count(page[i].submitted_entry) && asked.count(page[i].completed_entry)) << i;
  }
  calls.clear();
  ASSERT_OK_AND_ASSIGN(const controlplane::RequestRecord one, batched.Get(page[1].request_id));
  EXPECT_EQ(calls.size(), 1u) << "one call for a request";
  EXPECT_EQ(controlplane::ToView(one, batched, absl::UnixEpoch()).DebugString(),
            controlplane::ToView(want[1], plain, absl::UnixEpoch()).DebugString());
  short_answer = true;
  const absl::Status s = batched.Get(page[1].request_id).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("asked for"));
}

// lethed replays its ledger before it can read entries back: what ended requests await stays in
// memory until it can, then moves to disk.
TEST(RuleV1, AReplayWithoutAReaderParksTheWaitsOnceItHasOne) {
  Written w = Chain(PhysicalLog());
  controlplane::RequestStore store;
  for (uint64_t at = 0; at <= 17; ++at) {
    E e;
    ASSERT_TRUE(e.ParseFromString(w.bytes[at]));
    ASSERT_TRUE(store.Apply(at, e).ok()) << "entry " << at;
  }
  EXPECT_EQ(store.held().awaiting_vacuum, 2u) << "c1 and c3, held while nothing can be read back";
  store.SetEntryReader(ReaderOf(w));
  EXPECT_EQ(store.held().awaiting_vacuum, 0u);
  for (uint64_t at = 18; at <= 20; ++at) {
    E e;
    ASSERT_TRUE(e.ParseFromString(w.bytes[at]));
    ASSERT_TRUE(store.Apply(at, e).ok()) << "entry " << at;
  }
}

TEST(RuleI7, IdentitiesAddedMustTargetEveryDomainTheyComplete) {
  constexpr char kThree[] =
      "version: 1\nname: three\nidentities: [email, user_id]\n"
      "domains:\n  - name: d1\n    postgres:\n      tables:\n        - table: t\n          key: email\n"
      "          identity: email\n          action: delete\n"
      "  - name: d2\n    postgres:\n      tables:\n        - table: u\n          key: user_id\n"
      "          identity: user_id\n          action: delete\n"
      "  - name: d3\n    postgres:\n      tables:\n        - table: w\n          key: user_id\n"
      "          identity: user_id\n          action: delete\n";
  const auto three = policies::Policy::Parse(kThree, "three").value();
  E activated = Activated();
  activated.mutable_policy_activated()->set_policy_yaml(kThree);
  activated.mutable_policy_activated()->set_policy_hash(three.Hash());
  E submitted = Submitted();
  submitted.mutable_request_submitted()->set_policy_hash(three.Hash());
  auto* need = submitted.mutable_request_submitted()->add_needs_identity();
  need->set_domain("d3");
  need->add_identity_types("user_id");
  E issued = Issued("c1", "d1");
  issued.mutable_command_issued()->set_domain_policy_hash(three.DomainHash("d1"));
  for (bool both : {true, false}) {
    SCOPED_TRACE(both ? "targets d2 and d3" : "targets d2 only");
    E added = Added();
    if (both) added.mutable_identities_added()->add_target_domains("d3");
    Written w = Chain({activated, submitted, issued, added});
    const std::string note = ledger::SignCheckpoint(ledger::Checkpoint{kOrigin, w.tree.size(), w.tree.Root()}, LethedKey());
    Auditor auditor(LethedKey().public_key(), note);
    absl::Status st;
    for (uint64_t i = 0; i < w.bytes.size() && st.ok(); ++i) st = auditor.Add(i, w.bytes[i]);
    if (both) {
      EXPECT_TRUE(st.ok()) << st;
    } else {
      EXPECT_THAT(std::string(st.message()), ::testing::StartsWith("entry 4: "));
      EXPECT_THAT(std::string(st.message()), HasSubstr("plan drops domain d3"));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Format7, RuleTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.id; });

}  // namespace
}  // namespace lethe::audit
