#include "ledger/checkpoint_history.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "ledger/record_format.h"
#include "spdlog/spdlog.h"

namespace lethe::ledger {
namespace {

constexpr char kMagic[8] = {'L', 'E', 'T', 'H', 'E', 'C', 'P', 'H'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kChunk = 256u << 10;

std::string Header() {
  std::string h(kMagic, sizeof(kMagic));
  format::PutU32(&h, kVersion);
  format::PutU32(&h, crypto::Crc32c(h));
  return h;
}

absl::Status PreadAll(const File& file, char* out, size_t n, uint64_t offset) {
  absl::Status st = file.ReadAt(offset, n, out);
  if (absl::IsDataLoss(st))
    return absl::DataLossError(absl::StrCat("ledger corrupt: checkpoint history ", file.path(),
                                            " is shorter than ", offset + n, " bytes"));
  return st;
}

// Where a scan of records stopped: at `end`, at a record `fn` declined (stopped == true), or
// at a record that does not check (problem set).
struct ScanEnd {
  uint64_t offset = 0;
  std::string problem;
  bool incomplete = false;  // the problem: fewer bytes left than the record needs
};

// Reads the records in [from, end) of the file in chunks, calling fn(offset, payload) for each
// record that checks until fn returns false.
absl::StatusOr<ScanEnd> ScanRecords(
    const File& file, uint64_t from, uint64_t end,
    const std::function<absl::StatusOr<bool>(uint64_t offset, std::string_view payload)>& fn) {
  std::string buf;          // the file's bytes [buf_start, buf_start + buf.size())
  uint64_t buf_start = from;
  uint64_t off = from;
  // Makes buf hold at least [off, off + n); n <= end - off.
  auto need = [&](uint64_t n) -> absl::Status {
    if (off + n <= buf_start + buf.size()) return absl::OkStatus();
    buf.erase(0, off - buf_start);
    buf_start = off;
    const uint64_t want = std::min(end - off, std::max(n, kChunk));
    const size_t have = buf.size();
    buf.resize(want);
    return PreadAll(file, buf.data() + have, want - have, buf_start + have);
  };
  while (off < end) {
    if (end - off < format::kRecordHeaderSize) return ScanEnd{off, "incomplete record header", true};
    LETHE_RETURN_IF_ERROR(need(format::kRecordHeaderSize));
    const char* h = buf.data() + (off - buf_start);
    const uint32_t len = format::GetU32(h);
    if (len == 0 || len > CheckpointHistory::kMaxNote)
      return ScanEnd{off, absl::StrCat("bad record length ", len)};
    if (end - off - format::kRecordHeaderSize < len) return ScanEnd{off, "incomplete record", true};
    LETHE_RETURN_IF_ERROR(need(format::kRecordHeaderSize + len));
    h = buf.data() + (off - buf_start);
    const std::string_view payload(h + format::kRecordHeaderSize, len);
    if (crypto::Crc32c(payload, crypto::Crc32c(std::string_view(h, 4))) != format::GetU32(h + 4))
      return ScanEnd{off, "record checksum mismatch"};
    LETHE_ASSIGN_OR_RETURN(bool go_on, fn(off, payload));
    if (!go_on) return ScanEnd{off, "", false};
    off += format::kRecordHeaderSize + len;
  }
  return ScanEnd{end, "", false};
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointHistory>> CheckpointHistory::Open(
    const std::string& dir, const std::string& origin, const crypto::Ed25519PublicKey& key,
    uint64_t log_size, const std::function<absl::StatusOr<std::string>(uint64_t size)>& root_at,
    FileSystem& fs) {
  const std::string path = dir + "/" + kFileName;
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) {
    // Created whole (temp file, rename) so that it is never seen without its header.
    LETHE_RETURN_IF_ERROR(WriteFileAtomic(fs, path, Header(), 0600));
  }
  LETHE_ASSIGN_OR_RETURN(std::unique_ptr<File> file, fs.Open(path, FileSystem::OpenMode::kReadWrite));
  LETHE_ASSIGN_OR_RETURN(const uint64_t file_size, file->Size());
  std::unique_ptr<CheckpointHistory> h(new CheckpointHistory(path, std::move(file)));
  const File& f = *h->file_;
  auto corrupt = [&](uint64_t record, uint64_t offset, std::string_view what) {
    return absl::DataLossError(absl::StrCat("ledger corrupt: checkpoint history ", kFileName,
                                            " record ", record, " at offset ", offset, ": ",
                                            absl::string_view(what.data(), what.size())));
  };
  std::string header(kHeaderSize, '\0');
  LETHE_RETURN_IF_ERROR(PreadAll(f, header.data(), header.size(), 0));  // kDataLoss if short
  if (header != Header())
    return absl::DataLossError(absl::StrCat("ledger corrupt: checkpoint history ", kFileName,
                                            " has a bad header (magic, version or checksum)"));

  uint64_t count = 0, last_size = 0;
  std::string last_root;
  std::vector<IndexPoint> index;
  LETHE_ASSIGN_OR_RETURN(
      ScanEnd stop,
      ScanRecords(f, kHeaderSize, file_size,
                  [&](uint64_t offset, std::string_view note) -> absl::StatusOr<bool> {
                    auto cp = VerifyCheckpoint(note, origin, key);
                    if (!cp.ok())
                      return corrupt(count, offset, "the checkpoint does not verify: " +
                                                        std::string(cp.status().message()));
                    if (count > 0 && cp->size <= last_size)
                      return corrupt(count, offset,
                                     absl::StrCat("a checkpoint of size ", cp->size,
                                                  " follows one of size ", last_size));
                    if (cp->size > log_size)
                      return corrupt(count, offset,
                                     absl::StrCat("a signed checkpoint covers ", cp->size,
                                                  " entries but only ", log_size,
                                                  " are on disk (the log was cut back below a "
                                                  "checkpoint it signed)"));
                    LETHE_ASSIGN_OR_RETURN(const std::string root, root_at(cp->size));
                    if (root != cp->root)
                      return corrupt(count, offset,
                                     absl::StrCat("the entries do not hash to the root of the "
                                                  "signed checkpoint at size ",
                                                  cp->size, " (the log was rewritten)"));
                    if (count % kIndexEvery == 0) index.push_back(IndexPoint{cp->size, offset});
                    ++count;
                    last_size = cp->size;
                    last_root = cp->root;
                    return true;
                  }));

  if (stop.offset < file_size) {
    // What follows the last good record must be the remains of one interrupted append.
    const uint64_t rest = file_size - stop.offset;
    bool torn = stop.incomplete;
    if (!torn && rest <= format::kRecordHeaderSize + kMaxNote) {
      std::string tail(rest, '\0');
      LETHE_RETURN_IF_ERROR(PreadAll(f, tail.data(), tail.size(), stop.offset));
      torn = tail.find(std::string(8, '\0')) != std::string::npos;
    }
    if (!torn) return corrupt(count, stop.offset, stop.problem);
    if (absl::Status st = h->file_->Truncate(stop.offset); !st.ok()) return st;
    LETHE_RETURN_IF_ERROR(h->file_->SyncData());
    spdlog::warn("ledger: cut the torn tail of {} at offset {} ({} bytes of an interrupted "
                 "append: {}); it holds {} checkpoints",
                 kFileName, stop.offset, rest, stop.problem, count);
    h->cut_ = CutTail{stop.offset, rest};
  }
  std::lock_guard<std::mutex> l(h->mu_);
  h->end_ = stop.offset;
  h->count_ = count;
  h->last_size_ = last_size;
  h->last_root_ = std::move(last_root);
  h->index_ = std::move(index);
  return h;
}

CheckpointHistory::~CheckpointHistory() = default;

absl::Status CheckpointHistory::Append(const Checkpoint& cp, std::string_view note) {
  std::lock_guard<std::mutex> l(mu_);
  if (failed_)
    return absl::UnavailableError(absl::StrCat("checkpoint history ", path_,
                                               " could not be restored after a failed write; "
                                               "restart lethed"));
  if (count_ > 0 && cp.size == last_size_) {
    if (cp.root == last_root_) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint history: a checkpoint of size ", cp.size, " with another root is kept already"));
  }
  if (count_ > 0 && cp.size < last_size_)
    return absl::FailedPreconditionError(absl::StrCat("checkpoint history: a checkpoint of size ",
                                                      cp.size, " is older than the last one kept, of size ",
                                                      last_size_));
  if (note.empty() || note.size() > kMaxNote)
    return absl::InvalidArgumentError(absl::StrCat("checkpoint history: a note of ", note.size(),
                                                   " bytes (1 to ", kMaxNote, " are kept)"));
  std::string record;
  format::AppendRecord(&record, note);
  absl::Status st = file_->WriteAt(end_, record);
  if (st.ok()) st = file_->SyncData();
  if (!st.ok()) {
    absl::Status cut = file_->Truncate(end_);
    if (cut.ok()) cut = file_->SyncData();
    if (!cut.ok()) {
      failed_ = true;
      spdlog::error("ledger: cannot cut a failed append off {}: {}; no more checkpoints are "
                    "signed until lethed restarts",
                    path_, cut.ToString());
    }
    return st;
  }
  if (count_ % kIndexEvery == 0) index_.push_back(IndexPoint{cp.size, end_});
  ++count_;
  end_ += record.size();
  last_size_ = cp.size;
  last_root_ = cp.root;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CheckpointHistory::Entry>> CheckpointHistory::List(uint64_t from_size,
                                                                               size_t max) const {
  std::vector<Entry> out;
  if (max == 0) return out;
  uint64_t start = kHeaderSize, end = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    end = end_;
    // The last index point at or below from_size: every record before it is smaller.
    auto it = std::upper_bound(index_.begin(), index_.end(), from_size,
                               [](uint64_t s, const IndexPoint& p) { return s < p.size; });
    if (it != index_.begin()) start = std::prev(it)->offset;
  }
  LETHE_ASSIGN_OR_RETURN(
      ScanEnd stop,
      ScanRecords(*file_, start, end,
                  [&](uint64_t offset, std::string_view note) -> absl::StatusOr<bool> {
                    auto cp = ParseCheckpointUnverified(note);
                    if (!cp.ok())
                      return absl::DataLossError(absl::StrCat("checkpoint history ", path_,
                                                              " at offset ", offset, ": ",
                                                              cp.status().message()));
                    if (cp->size >= from_size) out.push_back(Entry{cp->size, std::string(note)});
                    return out.size() < max;
                  }));
  if (!stop.problem.empty())
    return absl::DataLossError(absl::StrCat("checkpoint history ", path_, " at offset ",
                                            stop.offset, ": ", stop.problem));
  return out;
}

uint64_t CheckpointHistory::count() const {
  std::lock_guard<std::mutex> l(mu_);
  return count_;
}

uint64_t CheckpointHistory::last_size() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_size_;
}

}  // namespace lethe::ledger
