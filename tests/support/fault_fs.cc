#include "tests/support/fault_fs.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace lethe::testing {
namespace fsys = std::filesystem;

namespace {

std::string ParentOf(const std::string& path) {
  std::string dir = fsys::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// Writes `data` at `offset` of `s`, growing it with zeros as a file grows.
void Overlay(std::string* s, uint64_t offset, std::string_view data) {
  if (s->size() < offset + data.size()) s->resize(offset + data.size(), '\0');
  s->replace(offset, data.size(), data.data(), data.size());
}

}  // namespace

class FaultInjectionFileSystem::FaultFile final : public lethe::File {
 public:
  FaultFile(FaultInjectionFileSystem* fs, std::unique_ptr<lethe::File> base,
            std::shared_ptr<Node> node)
      : fs_(fs), base_(std::move(base)), node_(std::move(node)) {}

  absl::Status WriteAt(uint64_t offset, std::string_view data) override {
    const Call c{0, Kind::kWrite, path(), offset, data.size(),
                 data.find_first_not_of('\0') == std::string_view::npos};
    fs_->RunHook(c);
    std::lock_guard<std::mutex> l(fs_->mu_);
    const Decision d = fs_->Next(c);
    if (d.fault == Fault::kTear) {
      const std::string_view kept = data.substr(0, std::min<uint64_t>(d.keep, data.size()));
      if (absl::Status s = base_->WriteAt(offset, kept); !s.ok()) return s;
      Overlay(&node_->written, offset, kept);
      Overlay(&node_->durable, offset, kept);  // these sectors reached the disk
      return fs_->Injected(d, c);
    }
    if (d.fault != Fault::kNone) return fs_->Injected(d, c);
    if (absl::Status s = base_->WriteAt(offset, data); !s.ok()) return s;
    Overlay(&node_->written, offset, data);
    return absl::OkStatus();
  }

  absl::Status ReadAt(uint64_t offset, size_t n, char* out) const override {
    return base_->ReadAt(offset, n, out);
  }

  absl::Status SyncData() override {
    const Call c{0, Kind::kSync, path(), 0, 0};
    fs_->RunHook(c);
    std::lock_guard<std::mutex> l(fs_->mu_);
    const Decision d = fs_->Next(c);
    if (d.fault != Fault::kNone) return fs_->Injected(d, c);
    if (absl::Status s = base_->SyncData(); !s.ok()) return s;
    node_->durable = node_->written;
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    const Call c{0, Kind::kTruncate, path(), size, 0};
    fs_->RunHook(c);
    std::lock_guard<std::mutex> l(fs_->mu_);
    const Decision d = fs_->Next(c);
    if (d.fault != Fault::kNone) return fs_->Injected(d, c);
    if (absl::Status s = base_->Truncate(size); !s.ok()) return s;
    node_->written.resize(size, '\0');
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Size() const override { return base_->Size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultInjectionFileSystem* const fs_;
  const std::unique_ptr<lethe::File> base_;
  const std::shared_ptr<Node> node_;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(lethe::FileSystem* base) : base_(base) {}
FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

void FaultInjectionFileSystem::Fail(Match match, int err) {
  std::lock_guard<std::mutex> l(mu_);
  rules_.push_back(Rule{std::move(match), Fault::kFail, err, 0});
}

void FaultInjectionFileSystem::Die(Match match) {
  std::lock_guard<std::mutex> l(mu_);
  rules_.push_back(Rule{std::move(match), Fault::kDie, EIO, 0});
}

void FaultInjectionFileSystem::Tear(Match match, uint64_t keep) {
  std::lock_guard<std::mutex> l(mu_);
  rules_.push_back(Rule{std::move(match), Fault::kTear, EIO, keep});
}

void FaultInjectionFileSystem::OnCall(std::function<void(const Call&)> hook) {
  std::lock_guard<std::mutex> l(mu_);
  hook_ = std::move(hook);
}

void FaultInjectionFileSystem::RunHook(const Call& c) {
  std::function<void(const Call&)> hook;
  {
    std::lock_guard<std::mutex> l(mu_);
    hook = hook_;
  }
  if (hook) hook(c);
}

void FaultInjectionFileSystem::Heal() {
  std::lock_guard<std::mutex> l(mu_);
  rules_.clear();
}

FaultInjectionFileSystem::Match FaultInjectionFileSystem::At(uint64_t n) {
  return [n](const Call& c) { return c.index == n; };
}

std::vector<FaultInjectionFileSystem::Call> FaultInjectionFileSystem::calls() const {
  std::lock_guard<std::mutex> l(mu_);
  return calls_;
}

uint64_t FaultInjectionFileSystem::call_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return calls_.size();
}

bool FaultInjectionFileSystem::dead() const {
  std::lock_guard<std::mutex> l(mu_);
  return dead_;
}

uint64_t FaultInjectionFileSystem::faults() const {
  std::lock_guard<std::mutex> l(mu_);
  return faults_;
}

FaultInjectionFileSystem::Decision FaultInjectionFileSystem::Next(Call call) {
  call.index = calls_.size();
  calls_.push_back(call);
  last_ = call.index;
  if (dead_) return Decision{Fault::kDie, EIO, 0};
  for (const Rule& r : rules_) {
    if (!r.match(call)) continue;
    // A torn write needs a write; on any other call it is a plain stop.
    const Fault f = r.fault == Fault::kTear && call.kind != Kind::kWrite ? Fault::kDie : r.fault;
    if (f != Fault::kFail) dead_ = true;
    ++faults_;
    return Decision{f, r.err, r.keep};
  }
  return Decision{};
}

absl::Status FaultInjectionFileSystem::Injected(const Decision& d, const Call& c) const {
  const char* what = d.fault == Fault::kFail ? "injected failure" : "the machine is down";
  return absl::UnavailableError(absl::StrCat(what, " (call ", last_, ") on ", c.path, ": ",
                                             std::strerror(d.err)));
}

std::shared_ptr<FaultInjectionFileSystem::Node> FaultInjectionFileSystem::Track(
    const std::string& path) {
  auto it = live_.find(path);
  if (it != live_.end()) return it->second;
  // First seen: whatever is on disk now is durable (it was there before the fake).
  auto node = std::make_shared<Node>();
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  node->written = ss.str();
  node->durable = node->written;
  live_[path] = node;
  durable_[path] = node;
  return node;
}

absl::StatusOr<std::unique_ptr<lethe::File>> FaultInjectionFileSystem::Open(
    const std::string& path, OpenMode how, int mode) {
  std::lock_guard<std::mutex> l(mu_);
  std::shared_ptr<Node> node;
  if (how == OpenMode::kCreateExclusive) {
    const Call c{0, Kind::kCreate, path, 0, 0};
    const Decision d = Next(c);
    if (d.fault != Fault::kNone) return Injected(d, c);
    auto f = base_->Open(path, how, mode);
    if (!f.ok()) return f.status();
    node = std::make_shared<Node>();
    live_[path] = node;  // durable once its directory is synced
    return std::unique_ptr<lethe::File>(new FaultFile(this, std::move(*f), node));
  }
  auto f = base_->Open(path, how, mode);
  if (!f.ok()) return f.status();
  node = Track(path);
  return std::unique_ptr<lethe::File>(new FaultFile(this, std::move(*f), node));
}

absl::Status FaultInjectionFileSystem::Remove(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  const Call c{0, Kind::kRemove, path, 0, 0};
  const Decision d = Next(c);
  if (d.fault != Fault::kNone) return Injected(d, c);
  Track(path);
  if (absl::Status s = base_->Remove(path); !s.ok()) return s;
  live_.erase(path);
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(mu_);
  const Call c{0, Kind::kRename, to, 0, 0};
  const Decision d = Next(c);
  if (d.fault != Fault::kNone) return Injected(d, c);
  std::shared_ptr<Node> node = Track(from);
  if (fsys::exists(to)) Track(to);
  if (absl::Status s = base_->Rename(from, to); !s.ok()) return s;
  live_.erase(from);
  live_[to] = node;
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::TruncateFile(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> l(mu_);
  const Call c{0, Kind::kTruncate, path, size, 0};
  const Decision d = Next(c);
  if (d.fault != Fault::kNone) return Injected(d, c);
  std::shared_ptr<Node> node = Track(path);
  if (absl::Status s = base_->TruncateFile(path, size); !s.ok()) return s;
  node->written.resize(size, '\0');
  node->durable = node->written;  // TruncateFile syncs
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  const Call c{0, Kind::kSyncDir, dir, 0, 0};
  const Decision d = Next(c);
  if (d.fault != Fault::kNone) return Injected(d, c);
  if (absl::Status s = base_->SyncDir(dir); !s.ok()) return s;
  for (auto it = durable_.begin(); it != durable_.end();) {
    it = ParentOf(it->first) == dir ? durable_.erase(it) : std::next(it);
  }
  for (const auto& [path, node] : live_) {
    if (ParentOf(path) == dir) durable_[path] = node;
  }
  return absl::OkStatus();
}

void FaultInjectionFileSystem::PowerLoss() {
  std::lock_guard<std::mutex> l(mu_);
  std::error_code ec;
  for (const auto& [path, node] : live_) fsys::remove(path, ec);
  for (const auto& [path, node] : durable_) fsys::remove(path, ec);
  for (const auto& [path, node] : durable_) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(node->durable.data(), static_cast<std::streamsize>(node->durable.size()));
    node->written = node->durable;
  }
  live_ = durable_;
  rules_.clear();
  dead_ = false;
}

}  // namespace lethe::testing
