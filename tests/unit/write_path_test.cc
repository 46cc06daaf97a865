// The control plane's write path under concurrency (controlplane/ledger_writer.h): no change
// holds the writer's lock through its fdatasync, so changes share one; the state follows the
// ledger's order exactly; nothing is answered before it is durable.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "audit/auditor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/checkpoint.h"
#include "tests/fakes/control_plane.h"
#include "tests/support/fault_fs.h"
#include "tests/support/subprocess.h"

namespace lethe::controlplane {
namespace {

using ::lethe::testing::ControlPlane;
using ::lethe::testing::FaultInjectionFileSystem;
using ::lethe::testing::Identities;
using ::lethe::testing::OperatorActor;

// Holds every fdatasync of the ledger until Release().
class SyncGate {
 public:
  explicit SyncGate(FaultInjectionFileSystem& fs) {
    fs.OnCall([this](const FaultInjectionFileSystem::Call& c) {
      if (c.kind != FaultInjectionFileSystem::Kind::kSync) return;
      std::unique_lock<std::mutex> l(mu_);
      ++held_;
      cv_.notify_all();
      cv_.wait(l, [this] { return open_; });
    });
  }
  ~SyncGate() { Release(); }
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = false;
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until an fdatasync is held at the gate.
  bool WaitHeld(absl::Duration timeout) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, absl::ToChronoSeconds(timeout), [this] { return held_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int held_ = 0;
};

absl::StatusOr<ConsentRecord> Change(ControlPlane& cp, const std::string& email,
                                     const std::string& purpose, v1::ConsentStatus status) {
  return cp.manager().ChangeConsent(SubjectIdentity{"email", SecretBytes(email)}, purpose, status,
                                    "signup-form-v3", OperatorActor());
}

TEST(WritePath, AChangeIsSequencedWhileAnotherWaitsForItsFdatasync) {
  FaultInjectionFileSystem fs;
  ControlPlane cp({}, &fs);
  cp.ActivateSample();
  SyncGate gate(fs);
  gate.Close();
  absl::StatusOr<ConsentRecord> first, second;
  std::atomic<int> answered{0};
  std::thread a([&] {
    first = Change(cp, "ann@example.com", "marketing", v1::GRANTED);
    answered.fetch_add(1);
  });
  ASSERT_TRUE(gate.WaitHeld(absl::Seconds(30)));
  // The first change's fdatasync is stuck. A writer holding its lock through that wait would
  // keep the second change from taking its place in the log.
  std::thread b([&] {
    second = Change(cp, "ben@example.com", "marketing", v1::GRANTED);
    answered.fetch_add(1);
  });
  const bool both_queued = testing::WaitFor([&] { return cp.ledger().pending() == 2; }, absl::Seconds(10));
  // Neither is answered while its entry is not durable.
  const int answered_early = answered.load();
  gate.Release();
  a.join();
  b.join();
  EXPECT_TRUE(both_queued) << "the second change waited for the first one's fdatasync";
  EXPECT_EQ(answered_early, 0);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_LT(first->entry, second->entry);
  EXPECT_EQ(cp.ledger().pending(), 0u);
}

TEST(WritePath, ReadersSeeNothingUntilItIsDurable) {
  FaultInjectionFileSystem fs;
  ControlPlane cp({}, &fs);
  cp.ActivateSample();
  SyncGate gate(fs);
  gate.Close();
  absl::StatusOr<ConsentRecord> change;
  std::thread a([&] { change = Change(cp, "cai@example.com", "marketing", v1::GRANTED); });
  ASSERT_TRUE(gate.WaitHeld(absl::Seconds(30)));
  ASSERT_TRUE(testing::WaitFor([&] { return cp.ledger().pending() == 1; }, absl::Seconds(10)));
  // The change is in the projections already; a reader's barrier holds until it is durable.
  std::atomic<bool> passed{false};
  std::thread reader([&] {
    EXPECT_TRUE(cp.writer().AwaitDurable().ok());
    passed = true;
  });
  const bool early = testing::WaitFor([&] { return passed.load(); }, absl::Milliseconds(300));
  gate.Release();
  reader.join();
  a.join();
  EXPECT_FALSE(early) << "a reader passed the barrier before the entry was durable";
  EXPECT_TRUE(passed);
  ASSERT_TRUE(change.ok()) << change.status();
}

// Many writers at once on the same consent (withdrawals of an erasing purpose plan erasures,
// so each depends on the one before), on other subjects, and submissions: the live state must
// equal what a replay of the ledger builds, which checks every request's story, and an
// auditor must accept the log.
TEST(WritePath, ConcurrentChangesLeaveTheStateAReplayBuildsAndAnAuditorAccepts) {
  ControlPlane cp;
  cp.ActivateSample();
  cp.Enroll("growth");
  cp.Enroll("assessments");
  constexpr int kThreads = 8, kEach = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        absl::Status s;
        if (t % 4 == 0) {
          s = cp.manager()
                  .SubmitErasure(Identities({{"email", absl::StrCat("s", t, "-", i, "@example.com")}}),
                                 "", OperatorActor())
                  .status();
        } else {
          // Half the threads fight over one subject's marketing consent.
          const std::string who = t % 2 == 1 ? "shared@example.com" : absl::StrCat("p", t, "@example.com");
          s = Change(cp, who, "marketing", (i + t) % 2 == 0 ? v1::WITHDRAWN : v1::GRANTED).status();
        }
        if (!s.ok()) {
          ADD_FAILURE() << s;
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  ASSERT_EQ(failures.load(), 0);
  EXPECT_GT(cp.ledger().syncs(), 0u);

  // What a restart would rebuild.
  Projections replayed;
  for (uint64_t seq = 0; seq < cp.ledger().size(); ++seq)
    ASSERT_TRUE(replayed.Apply(seq, cp.Entry(seq)).ok()) << "entry " << seq;
  auto history = [](const ConsentStore& s, const std::string& email, ControlPlane& cp) {
    std::vector<std::pair<uint64_t, int>> out;
    const std::string token = cp.vault().Tokenize("email", SecretBytes(email));
    const std::vector<ConsentRecord> history = s.History("email", token).value();
    for (const auto& r : history) out.emplace_back(r.entry, r.status);
    return out;
  };
  EXPECT_EQ(history(cp.projections().consent, "shared@example.com", cp),
            history(replayed.consent, "shared@example.com", cp));
  EXPECT_EQ(cp.store().List().value().size(), replayed.requests.List().value().size());
  const std::vector<RequestRecord> listed = cp.store().List().value();
  for (const auto& r : listed) {
    auto other = replayed.requests.Get(r.request_id);
    ASSERT_TRUE(other.ok()) << other.status() << r.request_id;
    EXPECT_EQ(other->submitted_entry, r.submitted_entry);
    EXPECT_EQ(other->consent_entry, r.consent_entry);
  }

  auto note = cp.ledger().Checkpoint();
  ASSERT_TRUE(note.ok()) << note.status();
  audit::AuditOptions options;
  options.accept_unauthenticated = true;  // the unit test's actor has no certificate
  audit::Auditor auditor(cp.key().public_key(), *note, options);
  for (uint64_t seq = 0; seq < cp.ledger().size(); ++seq) {
    absl::Status added = auditor.Add(seq, cp.ledger().ReadEntry(seq).value());
    ASSERT_TRUE(added.ok()) << added;
  }
  auto report = auditor.Finish();
  EXPECT_TRUE(report.ok()) << report.status();
}

}  // namespace
}  // namespace lethe::controlplane
