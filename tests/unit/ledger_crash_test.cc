// Crash safety of the ledger under concurrent load: a forked writer with several appending
// threads is SIGKILLed at random moments, over and over; after each kill the ledger must
// reopen with every acknowledged entry present, byte for byte, and the chain, the tree and
// the last checkpoint must verify.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>

#include "audit/auditor.h"
#include "crypto/crypto.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"

namespace lethe::ledger {
namespace {
namespace fs = std::filesystem;

// Kill rounds per run; LETHE_CRASH_ROUNDS=N runs more (or fewer). The deterministic power-loss
// cases at every call of the write path are ledger_fault_test's; this adds real processes,
// real threads and kills at moments nobody chose.
constexpr int kDefaultRounds = 60;
constexpr int kWriterThreads = 8;

struct Ack {
  uint64_t seq;
  char leaf[32];
};
static_assert(sizeof(Ack) == 40, "acks are written atomically to a pipe (<= PIPE_BUF)");

LedgerOptions Options(const std::string& dir, const crypto::Ed25519PrivateKey* key) {
  LedgerOptions o;
  o.dir = dir;
  o.origin = "crash-test.example/log";
  o.signing_key = key;
  o.max_segment_bytes = 256 << 10;  // many segment rollovers, too
  o.checkpoint_every = 50;
  o.checkpoint_interval = absl::Milliseconds(3);
  return o;
}

// The child: append from several threads until killed, reporting each acknowledged entry.
[[noreturn]] void Writer(const std::string& dir, const crypto::Ed25519PrivateKey& key,
                         const crypto::Ed25519PublicKey& agent, int ack_fd, int ready_fd) {
  auto ledger = Ledger::Open(Options(dir, &key), nullptr);
  if (!ledger.ok()) {
    fprintf(stderr, "child: open failed: %s\n", ledger.status().ToString().c_str());
    _exit(3);
  }
  char one = 1;
  if (write(ready_fd, &one, 1) != 1) _exit(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriterThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0;; ++i) {
        std::vector<v1::LedgerEntry> batch(1 + (i + t) % 3);
        for (size_t k = 0; k < batch.size(); ++k) {
          // An admin's key enrolment, for a domain of its own: an entry the auditor accepts
          // anywhere in a log, with no policy.
          auto* a = batch[k].mutable_agent_enrolled();
          a->set_domain(absl::StrCat("d-", getpid(), "-", t, "-", i, "-", k));
          a->set_public_key(agent.raw());
          a->set_key_id(agent.KeyId());
          batch[k].mutable_actor()->set_role("admin");
          batch[k].mutable_actor()->set_name("crash-test");
        }
        auto appended = (*ledger)->Append(std::move(batch), absl::Now());
        if (!appended.ok()) _exit(5);
        for (const auto& a : *appended) {
          Ack ack{a.seq, {}};
          std::string leaf = LeafHash(a.bytes);
          memcpy(ack.leaf, leaf.data(), 32);
          if (write(ack_fd, &ack, sizeof(ack)) != sizeof(ack)) _exit(6);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  _exit(0);
}

TEST(LedgerCrash, EveryAcknowledgedEntrySurvivesRandomSigkills) {
  const std::string dir =
      (fs::temp_directory_path() / ("lethe-crash-" + crypto::Hex(crypto::RandomBytes(6)))).string();
  auto key = crypto::Ed25519PrivateKey::Generate();
  auto agent = crypto::Ed25519PrivateKey::Generate();
  // LETHE_CRASH_SEED=N replays a run; the seed is printed either way.
  uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("LETHE_CRASH_SEED"); env != nullptr && *env != '\0')
    seed = std::strtoull(env, nullptr, 10);
  std::cout << "ledger_crash_test: seed " << seed << " (LETHE_CRASH_SEED=" << seed << " replays it)\n";
  SCOPED_TRACE("seed " + std::to_string(seed));
  int rounds = kDefaultRounds;
  if (const char* env = std::getenv("LETHE_CRASH_ROUNDS"); env != nullptr && *env != '\0')
    rounds = std::max(1, std::atoi(env));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> delay_us(0, 40000);

  std::map<uint64_t, std::string> acked;  // every entry ever acknowledged, by seq
  uint64_t torn_tails = 0, zero_tails = 0;
  for (int round = 0; round < rounds; ++round) {
    int ack_pipe[2], ready_pipe[2];
    ASSERT_EQ(pipe(ack_pipe), 0);
    ASSERT_EQ(pipe(ready_pipe), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(ack_pipe[0]);
      close(ready_pipe[0]);
      Writer(dir, *key, agent->public_key(), ack_pipe[1], ready_pipe[1]);
    }
    close(ack_pipe[1]);
    close(ready_pipe[1]);
    char ready = 0;
    ASSERT_EQ(read(ready_pipe[0], &ready, 1), 1) << "round " << round << ": writer did not start";
    close(ready_pipe[0]);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));  // the random moment
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "round " << round << ": writer exited " << status;
    // Every ack the writer managed to send before dying.
    Ack ack;
    while (read(ack_pipe[0], &ack, sizeof(ack)) == sizeof(ack))
      acked[ack.seq] = std::string(ack.leaf, 32);
    close(ack_pipe[0]);

    // Reopen: torn tails may be cut, nothing acknowledged may be missing or different.
    auto ledger = Ledger::Open(Options(dir, &*key), nullptr);
    ASSERT_TRUE(ledger.ok()) << "round " << round << ": " << ledger.status();
    if (const auto& cut = (*ledger)->torn_tail_cut()) ++(cut->zeros ? zero_tails : torn_tails);
    const uint64_t size = (*ledger)->size();
    ASSERT_TRUE(acked.empty() || acked.rbegin()->first < size)
        << "round " << round << ": entry " << acked.rbegin()->first
        << " was acknowledged but the reopened log has " << size;
    // Check the newest acknowledgements of this round byte for byte, and a sample of older ones.
    for (auto it = acked.rbegin(); it != acked.rend() && it->first + 400 > size; ++it) {
      auto bytes = (*ledger)->ReadEntry(it->first);
      ASSERT_TRUE(bytes.ok());
      ASSERT_EQ(LeafHash(*bytes), it->second) << "round " << round << ": entry " << it->first;
    }
    // Full audit every 20 rounds and at the end: chain, tree and the last checkpoint.
    if (round % 20 == 19 || round == rounds - 1) {
      const std::string note = (*ledger)->LatestCheckpoint();
      audit::Auditor auditor(key->public_key(), note);
      for (uint64_t i = 0; i < size; ++i) {
        auto bytes = (*ledger)->ReadEntry(i);
        ASSERT_TRUE(bytes.ok());
        ASSERT_TRUE(auditor.Add(i, *bytes).ok()) << "round " << round << ", entry " << i;
        auto want = acked.find(i);
        if (want != acked.end()) {
          ASSERT_EQ(LeafHash(*bytes), want->second);
        }
      }
      auto report = auditor.Finish();
      ASSERT_TRUE(report.ok()) << "round " << round << ": " << report.status();
    }
  }
  // The rounds really exercised the interesting cases.
  EXPECT_GT(acked.size(), 1000u);
  printf("%d rounds: %zu entries acknowledged; on reopen %llu torn tails cut, %llu pre-zeroed "
         "tails removed\n", rounds, acked.size(), static_cast<unsigned long long>(torn_tails),
         static_cast<unsigned long long>(zero_tails));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lethe::ledger
