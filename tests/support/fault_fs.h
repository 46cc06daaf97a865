// A FileSystem (base/file_system.h) for tests that models what survives a power loss, and
// injects faults, in the manner of leveldb's fault_injection_test: it passes every call on
// to the real file system and keeps, for each file it has seen, the bytes its last completed
// sync made durable, and for each directory, the names its last directory sync made durable.
//
// PowerLoss() then puts the real files in the state a machine that lost power would find:
// each file holds what its last sync covered, and a file created, renamed or removed since
// its directory was last synced is back as it was (a new file is gone). Reads of the files
// afterwards, by anyone, see that state.
//
// Faults are given by a predicate over the calls, counted from 0 in the order they run:
// - Fail(): the call fails with the given errno and changes nothing (a failed fdatasync makes
//   nothing durable; the bytes stay in the file until a power loss, as in a page cache).
// - Die(): the machine stops just before the call: it and every later call fail with EIO and
//   change nothing, until PowerLoss().
// - Tear(): the call, a write, writes only its first `keep` bytes, which reach the disk (a
//   power loss keeps them), and the machine stops.
// Thread-safe: calls are serialised.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/file_system.h"

namespace lethe::testing {

class FaultInjectionFileSystem final : public lethe::FileSystem {
 public:
  enum class Kind { kCreate, kWrite, kSync, kTruncate, kRemove, kRename, kSyncDir };
  struct Call {
    uint64_t index = 0;  // counted from 0 over every call that changes something
    Kind kind = Kind::kWrite;
    std::string path;    // the file (kRename: the new name; kSyncDir: the directory)
    uint64_t offset = 0;  // kWrite: where; kTruncate: the new size
    uint64_t bytes = 0;   // kWrite: how many
    bool zeros = false;   // kWrite: all of them zero
  };
  using Match = std::function<bool(const Call&)>;

  explicit FaultInjectionFileSystem(lethe::FileSystem* base = lethe::FileSystem::Default());
  ~FaultInjectionFileSystem() override;

  void Fail(Match match, int err = 5 /* EIO */);
  void Die(Match match);
  void Tear(Match match, uint64_t keep);
  // Drops every fault not yet injected (a dead machine stays dead).
  void Heal();
  // Runs `hook` at the start of every later call, on the caller's thread, before the call
  // is numbered or decided (index is 0): a test can make something happen "during" a call.
  void OnCall(std::function<void(const Call&)> hook);
  // Matches call number n.
  static Match At(uint64_t n);

  // Every call so far (also those that failed), in order.
  std::vector<Call> calls() const;
  uint64_t call_count() const;
  bool dead() const;
  // How many calls a fault was injected into.
  uint64_t faults() const;

  // Every file the fake has seen back to its durable state (see above); clears the faults and
  // revives the machine. Call it with no file of the fake open (the ledger closed).
  void PowerLoss();

  absl::StatusOr<std::unique_ptr<lethe::File>> Open(const std::string& path, OpenMode how,
                                                     int mode) override;
  absl::Status Remove(const std::string& path) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status TruncateFile(const std::string& path, uint64_t size) override;
  absl::Status SyncDir(const std::string& dir) override;

 private:
  class FaultFile;
  struct Node {
    std::string written;  // what the file holds now (the page cache)
    std::string durable;  // what a power loss leaves of it
  };
  enum class Fault { kNone, kFail, kDie, kTear };
  struct Decision {
    Fault fault = Fault::kNone;
    int err = 0;
    uint64_t keep = 0;
  };

  // Numbers the call, records it, and says which fault (if any) it gets. Under mu_.
  Decision Next(Call call);
  // The node of a file the fake has not seen yet, read from disk as durable. Under mu_.
  std::shared_ptr<Node> Track(const std::string& path);
  absl::Status Injected(const Decision& d, const Call& c) const;

  lethe::FileSystem* const base_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Node>> live_;     // names as they are now
  std::map<std::string, std::shared_ptr<Node>> durable_;  // names as a power loss leaves them
  std::vector<Call> calls_;
  struct Rule {
    Match match;
    Fault fault;
    int err;
    uint64_t keep;
  };
  std::vector<Rule> rules_;
  std::function<void(const Call&)> hook_;
  // Runs hook_ (outside mu_).
  void RunHook(const Call& c);
  bool dead_ = false;
  uint64_t last_ = 0;  // number of the call being made
  uint64_t faults_ = 0;
};

}  // namespace lethe::testing
