#include "ledger/ledger.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "ledger/record_format.h"
#include "spdlog/spdlog.h"

namespace lethe::ledger {
namespace fs = std::filesystem;
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(absl::string_view(what.data(), what.size()), " ",
                                             path, ": ", std::strerror(errno)));
}

absl::StatusOr<std::vector<std::string>> ListSegments(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("seg-", 0) != 0) continue;
    // Anything named like a segment must be one: a reader that skipped it would skip entries.
    if (name.size() != 28 || name.substr(24) != ".log" ||
        !std::all_of(name.begin() + 4, name.begin() + 24, [](char c) { return c >= '0' && c <= '9'; }))
      return absl::DataLossError("ledger corrupt: " + Quote(name) + " in " + dir +
                                 " is named like a segment but not as one (seg-<20 digits>.log)");
    names.push_back(name);
  }
  if (ec) return absl::UnavailableError("cannot list ledger directory " + dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status Corrupt(const std::string& segment, uint64_t offset, uint64_t entry,
                     std::string_view what) {
  return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", entry, " at ", segment,
                                          " offset ", offset, ": ",
                                          absl::string_view(what.data(), what.size())));
}

bool AllZero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

// The first run of zeros in a segment, and the size of the run below which a write asks
// for the next one.
uint64_t FirstZeroRun(uint64_t prezero_bytes) { return std::min<uint64_t>(64u << 10, prezero_bytes); }

// Whether the record at [begin, end) of a segment overlaps a 512-byte sector of the file
// whose part from the record's start (or the sector's start) to the sector's end (or the
// file's end) is at least 8 bytes and reads as zeros: a sector the crash kept from being
// written (writers only write records over zeros). Bit rot does not zero whole runs. This is
// how etcd's WAL tells a torn write from corruption; the 8-byte minimum keeps a record that
// merely ends in a few legitimate zero bytes from passing as torn, except where those bytes
// begin a sector and end the file: a sector the crash lost from a write that extended it.
bool HasUnwrittenSector(std::string_view data, uint64_t begin, uint64_t end) {
  constexpr uint64_t kSector = 512, kMinPiece = 8;
  end = std::min<uint64_t>(end, data.size());
  for (uint64_t s = begin - begin % kSector; s < end; s += kSector) {
    // The piece runs on past the record's end to the end of the sector (or file): a record
    // whose last few bytes fall into a sector that was never written is torn as well, and
    // what follows it in that sector (the next record of the write, or pre-zeroed space)
    // was not written either.
    const uint64_t a = std::max(s, begin), b = std::min<uint64_t>(s + kSector, data.size());
    // Shorter pieces count only where the file ends inside a sector that the record runs
    // into: the write that extended the file lost its last sector.
    const bool at_file_end = a == s && b == data.size() && b > a;
    if ((b - a >= kMinPiece || at_file_end) && AllZero(data.substr(a, b - a))) return true;
  }
  return false;
}

// Whether the file's bytes from some point inside the record at [begin, end) to the end of
// the file are all zero, and either go on past the record's end (pre-zeroed space) or are at
// least 8: a write torn at that byte, of which nothing later reached the disk. Unlike the
// sector rule this holds for a tear at any byte, not only at a sector's edge. A damaged record
// passes as torn only if its own last bytes are zeros.
bool EndsInZeros(std::string_view data, uint64_t begin, uint64_t end) {
  constexpr uint64_t kMinPiece = 8;
  uint64_t z = data.size();
  while (z > begin && data[z - 1] == 0) --z;
  return z < std::min<uint64_t>(end, data.size()) &&
         (data.size() > end || data.size() - z >= kMinPiece);
}

// The format version in a segment's header (checked by ScanSegments already).
absl::StatusOr<uint32_t> SegmentVersion(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open segment", path);
  char header[12];
  const ssize_t n = ::pread(fd, header, sizeof(header), 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof(header))) return Errno("cannot read segment header", path);
  return format::GetU32(header + 8);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> StrayLedgerFiles(const std::string& dir) {
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> segments, ListSegments(dir));
  (void)segments;  // listed for its check of seg- names
  auto known = [](const std::string& name) {
    if (name == "checkpoint" || name == "checkpoint-history.log") return true;
    // A temporary file of lethe::WriteFileAtomic replacing the checkpoint: .tmp-<16 hex>.
    const std::string prefix = "checkpoint.tmp-";
    if (name.size() == prefix.size() + 16 && name.rfind(prefix, 0) == 0 &&
        std::all_of(name.begin() + prefix.size(), name.end(),
                    [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }))
      return true;
    return name.rfind("seg-", 0) == 0;  // valid, or ListSegments failed
  };
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (!known(name)) out.push_back(std::move(name));
  }
  if (ec) return absl::UnavailableError("cannot list ledger directory " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<ScanResult> ScanSegments(
    const std::string& dir, const std::function<absl::Status(const ScannedRecord&)>& fn) {
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> names, ListSegments(dir));
  ScanResult result;
  uint64_t index = 0;
  if (!names.empty()) result.last_segment = names.back();
  for (size_t i = 0; i < names.size(); ++i) {
    const bool last = i + 1 == names.size();
    const std::string& name = names[i];
    LETHE_ASSIGN_OR_RETURN(std::string data, lethe::ReadFile(dir + "/" + name));
    auto torn = [&](uint64_t off, bool zeros) -> absl::Status {
      if (!last) return Corrupt(name, off, index, "incomplete record in a sealed segment");
      result.torn_tail = TornTail{name, off, data.size() - off, zeros};
      return absl::OkStatus();
    };
    if (data.size() < format::kSegmentHeaderSize) {
      LETHE_RETURN_IF_ERROR(torn(0, AllZero(data)));
      break;
    }
    const char* h = data.data();
    if (std::memcmp(h, format::kMagic, sizeof(format::kMagic)) != 0)
      return Corrupt(name, 0, index, "bad segment magic");
    if (crypto::Crc32c(std::string_view(h, 28)) != format::GetU32(h + 28))
      return Corrupt(name, 0, index, "segment header checksum mismatch");
    const uint32_t version = format::GetU32(h + 8);
    if (version < format::kOldestVersion || version > format::kVersion)
      return Corrupt(name, 0, index, absl::StrCat("unsupported segment version ", version));
    if (format::GetU32(h + 12) != 0) return Corrupt(name, 0, index, "unknown segment flags");
    if (format::GetU32(h + 24) != 0)
      return Corrupt(name, 0, index, "reserved field of the segment header is not zero");
    if (format::SegmentFileName(format::GetU64(h + 16)) != name)
      return Corrupt(name, 0, index, absl::StrCat("the header says the segment starts at entry ",
                                                  format::GetU64(h + 16),
                                                  ", which its file name does not"));
    if (format::GetU64(h + 16) != index)
      return Corrupt(name, 0, index, absl::StrCat("segment starts at entry ",
                                                  format::GetU64(h + 16)));
    result.last_version = version;
    uint64_t off = format::kSegmentHeaderSize;
    while (off < data.size()) {
      const std::string_view rest = std::string_view(data).substr(off);
      if (last && AllZero(rest)) {
        LETHE_RETURN_IF_ERROR(torn(off, /*zeros=*/true));
        break;
      }
      // From here on, an incomplete record, or (last segment only) a header that was never
      // written, or a record with a sector that was never written, is an unacknowledged
      // write torn by a crash; anything else that fails a check is corruption.
      if (rest.size() < format::kRecordHeaderSize ||
          (last && AllZero(rest.substr(0, format::kRecordHeaderSize)))) {
        LETHE_RETURN_IF_ERROR(torn(off, false));
        break;
      }
      const uint32_t len = format::GetU32(rest.data());
      if (len > rest.size() - format::kRecordHeaderSize) {
        LETHE_RETURN_IF_ERROR(torn(off, false));
        break;
      }
      const std::string_view framed = rest.substr(0, format::kRecordHeaderSize + len);
      std::string problem;
      if (len == 0 || len > format::kMaxPayload) {
        problem = absl::StrCat("bad record length ", len);
      } else if (crypto::Crc32c(framed.substr(8), crypto::Crc32c(framed.substr(0, 4))) !=
                 format::GetU32(rest.data() + 4)) {
        problem = "record checksum mismatch";
      }
      if (!problem.empty()) {
        if (last && (HasUnwrittenSector(data, off, off + framed.size()) ||
                     EndsInZeros(data, off, off + framed.size()))) {
          LETHE_RETURN_IF_ERROR(torn(off, false));
          break;
        }
        return Corrupt(name, off, index, problem);
      }
      LETHE_RETURN_IF_ERROR(fn(ScannedRecord{index, name, off, framed.substr(8), version}));
      ++index;
      ++result.records;
      off += framed.size();
    }
    if (result.torn_tail) break;
  }
  return result;
}

absl::Status CheckChainLink(const ScannedRecord& rec, std::string_view prev_hash,
                            v1::LedgerEntry* entry, std::string* leaf_hash) {
  if (!entry->ParseFromArray(rec.payload.data(), static_cast<int>(rec.payload.size())))
    return Corrupt(rec.segment, rec.offset, rec.index, "payload is not a LedgerEntry");
  if (entry->seq() != rec.index)
    return Corrupt(rec.segment, rec.offset, rec.index,
                   absl::StrCat("entry says it is number ", entry->seq()));
  if (entry->prev_hash() != prev_hash)
    return Corrupt(rec.segment, rec.offset, rec.index,
                   "prev_hash does not match the previous entry (chain broken)");
  if (entry->body_case() == v1::LedgerEntry::BODY_NOT_SET)
    return Corrupt(rec.segment, rec.offset, rec.index, "entry has no body");
  *leaf_hash = LeafHash(rec.payload);
  return absl::OkStatus();
}

absl::Status BatchTracker::Next(uint64_t seq, uint32_t batch_remaining, std::string_view segment,
                                uint32_t version) {
  const std::string where =
      segment.empty() ? "" : absl::StrCat(" (", absl::string_view(segment.data(), segment.size()), ")");
  if (version == 1 && batch_remaining != 0)
    return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", seq, where,
                                            " has a batch mark in a version 1 segment"));
  if (remaining_ > 0) {
    if (batch_remaining != remaining_ - 1)
      return absl::DataLossError(absl::StrCat(
          "ledger corrupt: entry ", seq, where, " breaks its batch: the entry before it says ",
          remaining_, " more follow, this one says ", batch_remaining));
    if (!segment.empty() && segment != segment_)
      return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", seq, where,
                                              " continues a batch begun in ", segment_,
                                              ": a batch never spans two segments"));
  } else {
    segment_.assign(segment.data(), segment.size());
  }
  remaining_ = batch_remaining;
  if (batch_remaining == 0) complete_ = seq + 1;
  return absl::OkStatus();
}

absl::Status BatchTracker::CheckEnd(std::string_view last_segment) const {
  if (remaining_ == 0 || segment_ == last_segment) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("ledger corrupt: entry ", complete_,
                                          " begins a batch that ends in no later entry, in the sealed "
                                          "segment ", segment_));
}

absl::Status CheckChainLinkFast(const ScannedRecord& rec, std::string_view prev_hash,
                                std::string* leaf_hash, uint32_t* batch_remaining) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(rec.payload.data()),
                                            static_cast<int>(rec.payload.size()));
  uint64_t seq = 0, batch = 0;
  std::string_view prev;
  bool have_prev = false, have_body = false;
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto type = WireFormatLite::GetTagWireType(tag);
    if (field == 1 && type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&seq)) break;
    } else if (field == 5 && type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&batch)) break;
    } else if (field == 3 && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t len = 0;
      const void* data = nullptr;
      int avail = 0;
      if (!in.ReadVarint32(&len) || !in.GetDirectBufferPointer(&data, &avail) ||
          static_cast<uint32_t>(avail) < len)
        break;
      prev = std::string_view(static_cast<const char*>(data), len);
      have_prev = true;
      in.Skip(static_cast<int>(len));
    } else if (field >= 10 && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      // Fields 10.. are the body oneof: skipped, not parsed. lethed writes seq and prev_hash
      // before it, but any field order is valid protobuf and CheckChainLink's parser takes
      // the last seq and prev_hash wherever they are, so this reads on to the end as well.
      have_body = true;
      if (!WireFormatLite::SkipField(&in, tag)) break;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      break;
    }
  }
  if (!have_body) return Corrupt(rec.segment, rec.offset, rec.index, "entry has no body");
  if (seq != rec.index)
    return Corrupt(rec.segment, rec.offset, rec.index, absl::StrCat("entry says it is number ", seq));
  if (!have_prev || prev != prev_hash)
    return Corrupt(rec.segment, rec.offset, rec.index,
                   "prev_hash does not match the previous entry (chain broken)");
  *leaf_hash = LeafHash(rec.payload);
  *batch_remaining = static_cast<uint32_t>(batch);  // uint32 on the wire: the low 32 bits
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const LedgerOptions& options,
                                                     const ReplayFn& replay) {
  if (options.signing_key == nullptr)
    return absl::InvalidArgumentError("ledger needs a signing key for checkpoints");
  if (!IsValidKeyName(options.origin))
    return absl::InvalidArgumentError(
        "ledger origin " + Quote(options.origin) +
        " is not a valid checkpoint key name: it must be UTF-8 without spaces or '+'");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return absl::UnavailableError("cannot create ledger directory " + options.dir);

  std::unique_ptr<Ledger> ledger(new Ledger(options));
  Ledger& l = *ledger;
  std::unique_lock<std::mutex> lock(l.mu_);

  // The stored checkpoint, if any, must be ours and must match the entries below it.
  std::optional<ledger::Checkpoint> stored_cp;
  const std::string cp_path = options.dir + "/" + kCheckpointFile;
  if (fs::exists(cp_path)) {
    LETHE_ASSIGN_OR_RETURN(std::string note, lethe::ReadFile(cp_path));
    auto cp = VerifyCheckpoint(note, options.origin, options.signing_key->public_key());
    if (!cp.ok())
      return absl::DataLossError("stored checkpoint does not verify: " +
                                 std::string(cp.status().message()));
    stored_cp = *cp;
    std::lock_guard<std::mutex> cl(l.cp_note_mu_);
    l.checkpoint_ = note;
    l.checkpoint_size_ = cp->size;
    l.checkpoint_root_ = cp->root;
    l.has_checkpoint_ = true;
  }

  // Entries join the log a whole batch at a time: those of a batch still open are held back
  // (not replayed, not in the tree) until its last entry is read. An incomplete batch at the
  // end was never acknowledged, and is cut.
  struct Held {
    uint64_t seq;
    uint32_t segment;
    uint64_t offset;  // of the record header
    uint32_t length;
    std::string leaf;
    std::string bytes;  // with a replay callback only
    v1::LedgerEntry entry;
  };
  std::vector<Held> held;
  BatchTracker batches;
  bool checkpoint_in_batch = false;
  std::string last_hash(32, '\0');    // of the entry before the one being checked
  std::string batch_hash(32, '\0');   // of the last entry of the last complete batch
  std::string current_segment;
  auto scan = ScanSegments(options.dir, [&](const ScannedRecord& rec) -> absl::Status {
    Held h{rec.index, 0, rec.offset, static_cast<uint32_t>(rec.payload.size()), {}, {}, {}};
    uint32_t batch_remaining = 0;
    // Without a replay callback nobody needs the parsed entry: check the link alone.
    if (replay) {
      LETHE_RETURN_IF_ERROR(CheckChainLink(rec, last_hash, &h.entry, &h.leaf));
      batch_remaining = h.entry.batch_remaining();
      h.bytes.assign(rec.payload.data(), rec.payload.size());
    } else {
      LETHE_RETURN_IF_ERROR(CheckChainLinkFast(rec, last_hash, &h.leaf, &batch_remaining));
    }
    LETHE_RETURN_IF_ERROR(batches.Next(rec.index, batch_remaining, rec.segment, rec.segment_version));
    if (rec.segment != current_segment) {
      current_segment = rec.segment;
      l.segments_.push_back(options.dir + "/" + rec.segment);
    }
    h.segment = static_cast<uint32_t>(l.segments_.size() - 1);
    last_hash = h.leaf;
    held.push_back(std::move(h));
    if (batch_remaining > 0) return absl::OkStatus();
    if (stored_cp && stored_cp->size > held.front().seq && stored_cp->size <= rec.index)
      checkpoint_in_batch = true;
    for (Held& e : held) {
      l.locations_.push_back(Location{e.segment, e.length, e.offset + format::kRecordHeaderSize});
      l.tree_.Append(e.leaf);
      if (replay) LETHE_RETURN_IF_ERROR(replay(e.seq, e.bytes, e.entry));
    }
    batch_hash = last_hash;
    held.clear();
    return absl::OkStatus();
  });
  if (!scan.ok()) return scan.status();

  // Segments that exist but hold no complete record (a fresh or torn one) are still ours.
  LETHE_ASSIGN_OR_RETURN(std::vector<std::string> names, ListSegments(options.dir));
  if (!names.empty() && (l.segments_.empty() ||
                         l.segments_.back() != options.dir + "/" + names.back())) {
    l.segments_.push_back(options.dir + "/" + names.back());
  }

  // Check the signed checkpoint before cutting anything: if it covers entries that are not
  // on disk, or the entries do not hash to its root, the damage is not a crash artefact and
  // the files must stay as they are for inspection. A checkpoint is only ever signed where a
  // batch ends, so one that covers part of an incomplete batch is not one either.
  if (stored_cp) {
    if (stored_cp->size > l.tree_.size())
      return absl::DataLossError(absl::StrCat(
          "ledger corrupt: the signed checkpoint covers ", stored_cp->size, " entries but only ",
          l.tree_.size(), " complete ones are on disk",
          held.empty() ? "" : absl::StrCat(" (and ", held.size(), " of an incomplete batch)"),
          " (acknowledged entries lost)"));
    if (l.tree_.Root(stored_cp->size) != stored_cp->root)
      return absl::DataLossError(absl::StrCat(
          "ledger corrupt: the entries do not hash to the root of the signed checkpoint at size ",
          stored_cp->size, " (the log was rewritten)"));
    if (checkpoint_in_batch)
      return absl::DataLossError(absl::StrCat(
          "ledger corrupt: the signed checkpoint at size ", stored_cp->size,
          " ends inside a batch, where lethed never signs one"));
  }

  // Every checkpoint signed before, from the history, is checked the same way (a log cut back
  // below one of them is DATA_LOSS), also before anything is cut. The history lacks the
  // stored checkpoint only if a lethed that kept none wrote it: it is added.
  {
    auto history = CheckpointHistory::Open(options.dir, options.origin,
                                           options.signing_key->public_key(), l.tree_.size(),
                                           [&l](uint64_t size) { return l.tree_.Root(size); },
                                           l.fs_);
    if (!history.ok()) return history.status();
    l.history_ = std::move(*history);
    if (stored_cp && l.history_->last_size() < stored_cp->size) {
      std::lock_guard<std::mutex> cl(l.cp_note_mu_);
      LETHE_RETURN_IF_ERROR(l.history_->Append(*stored_cp, l.checkpoint_));
    }
  }

  std::optional<TornTail> cut = scan->torn_tail;
  if (!held.empty()) {
    // The incomplete batch's records come first in what is cut; they are all in the last
    // segment (BatchTracker refuses a batch that spans two), which must be the last one.
    const Held& first = held.front();
    const std::string& path = l.segments_[first.segment];
    LETHE_RETURN_IF_ERROR(batches.CheckEnd(names.back()));
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Errno("cannot stat segment", path);
    cut = TornTail{fs::path(path).filename().string(), first.offset,
                   static_cast<uint64_t>(st.st_size) - first.offset, false, held.size()};
  }
  if (cut) {
    const TornTail& t = *cut;
    const std::string path = options.dir + "/" + t.segment;
    if (t.offset == 0) {
      LETHE_RETURN_IF_ERROR(l.fs_.Remove(path));
      l.segments_.pop_back();
    } else {
      LETHE_RETURN_IF_ERROR(l.fs_.TruncateFile(path, t.offset));
    }
    LETHE_RETURN_IF_ERROR(l.fs_.SyncDir(options.dir));
    if (t.zeros) {
      spdlog::info("ledger: removed {} pre-zeroed bytes at the end of {} (offset {})", t.bytes,
                   t.segment, t.offset);
    } else if (t.batch_entries > 0) {
      spdlog::warn("ledger: cut an incomplete batch off {} at offset {} ({} entries from entry "
                   "{}, {} bytes in all of an unacknowledged write); the log now holds {} entries",
                   t.segment, t.offset, t.batch_entries, held.front().seq, t.bytes,
                   l.tree_.size());
    } else {
      spdlog::warn("ledger: cut torn tail of {} at offset {} ({} bytes of an unacknowledged "
                   "write); the log now holds {} entries",
                   t.segment, t.offset, t.bytes, l.tree_.size());
    }
    l.torn_tail_cut_ = t;
  }
  last_hash = batch_hash;
  // A ledger written before batches were marked goes on in a new segment of the current
  // version, so that a reader that does not know the marks refuses the entries that have them.
  while (!l.segments_.empty()) {
    LETHE_ASSIGN_OR_RETURN(uint32_t version, SegmentVersion(l.segments_.back()));
    if (version >= format::kVersion) break;
    if (l.locations_.empty() || l.locations_.back().segment + 1 != l.segments_.size()) {
      // It holds no entry: start it again in the current version.
      const std::string path = l.segments_.back();
      LETHE_RETURN_IF_ERROR(l.fs_.Remove(path));
      LETHE_RETURN_IF_ERROR(l.fs_.SyncDir(options.dir));
      l.segments_.pop_back();
      continue;
    }
    LETHE_RETURN_IF_ERROR(l.StartSegment(l.tree_.size()));
    l.file_.reset();  // OpenSegmentForAppend opens it again
    break;
  }

  // Entry times never go back, even if the clock does: the next entry is no earlier than the
  // last one in the log.
  int64_t last_ms = 0;
  if (!l.locations_.empty()) {
    const Location& loc = l.locations_.back();
    const std::string& path = l.segments_[loc.segment];
    std::string bytes(loc.length, '\0');
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open segment", path);
    const ssize_t n = ::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(loc.offset));
    ::close(fd);
    v1::LedgerEntry last;
    if (n != static_cast<ssize_t>(bytes.size()) || !last.ParseFromString(bytes))
      return Errno("cannot read the last entry of", path);
    last_ms = last.time_unix_ms();
  }
  LETHE_RETURN_IF_ERROR(l.OpenSegmentForAppend());
  {
    std::lock_guard<std::mutex> w(l.write_mu_);
    l.write_last_ms_ = last_ms;
    l.write_next_seq_ = l.tree_.size();
    std::memcpy(l.write_prev_hash_.data(), last_hash.data(), l.write_prev_hash_.size());
    l.write_segment_ = static_cast<uint32_t>(l.segments_.size() - 1);
  }
  l.durable_end_ = l.tree_.size();
  const bool empty = l.tree_.size() == 0;
  lock.unlock();
  l.syncer_ = std::thread([&l] { l.SyncLoop(); });
  if (options.prezero_bytes > 0) l.zeroer_ = std::thread([&l] { l.PrezeroLoop(); });
  if (empty) {
    // Entry 0 names the log and the key that signs its checkpoints and commands.
    v1::LedgerEntry created;
    created.mutable_log_created()->set_origin(options.origin);
    created.mutable_log_created()->set_control_plane_public_key(
        options.signing_key->public_key().raw());
    LETHE_ASSIGN_OR_RETURN(auto appended, l.Append({created}, absl::Now()));
    if (replay) LETHE_RETURN_IF_ERROR(replay(0, appended[0].bytes, appended[0].entry));
  }
  LETHE_RETURN_IF_ERROR(l.SignCheckpointNow());
  if (options.checkpoint_interval > absl::ZeroDuration())
    l.checkpointer_ = std::thread([&l] { l.CheckpointLoop(); });
  return ledger;
}

Ledger::~Ledger() {
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> w(write_mu_);
      stop_sync_ = true;  // the sync thread drains what is pending first
    }
    written_cv_.notify_all();
    syncer_.join();
  }
  StopPrezeroing();
  if (zeroer_.joinable()) zeroer_.join();
  // A clean close leaves no pre-zeroed space behind (an unclean one is tidied by Open).
  if (file_ != nullptr && !sync_failed_.load()) {
    if (absl::Status s = file_->Truncate(write_offset_); !s.ok())
      spdlog::warn("ledger: cannot remove pre-zeroed space: {}", s.ToString());
  }
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
  // A clean close leaves a checkpoint that covers every entry.
  if (absl::Status s = SignCheckpointNow(); !s.ok())
    spdlog::error("ledger: cannot write the closing checkpoint: {}", s.ToString());
}

void Ledger::CheckpointLoop() {
  std::unique_lock<std::mutex> l(stop_mu_);
  while (!stop_) {
    stop_cv_.wait_for(l, absl::ToChronoMilliseconds(options_.checkpoint_interval));
    if (stop_) break;
    l.unlock();
    if (absl::Status s = SignCheckpointNow(); !s.ok())
      spdlog::error("ledger: cannot write checkpoint: {}", s.ToString());
    l.lock();
  }
}

absl::Status Ledger::OpenSegmentForAppend() {
  if (segments_.empty()) {
    LETHE_RETURN_IF_ERROR(StartSegment(tree_.size()));
  } else {
    LETHE_ASSIGN_OR_RETURN(file_, fs_.Open(segments_.back(), FileSystem::OpenMode::kWrite));
    LETHE_ASSIGN_OR_RETURN(write_offset_, file_->Size());
  }
  PrezeroFrom(file_.get(), write_offset_);
  return absl::OkStatus();
}

void Ledger::PrezeroFrom(File* file, uint64_t offset) {
  std::lock_guard<std::mutex> z(zero_mu_);
  zero_file_ = file;
  zero_end_ = offset;
  zero_run_ = 0;  // the first write asks for zeros: an idle ledger's files stay as they are
}

void Ledger::WaitForZeroingPause(std::unique_lock<std::mutex>& z) {
  ++zero_waiters_;
  zero_cv_.wait(z, [&] { return !zero_busy_; });
  --zero_waiters_;
}

void Ledger::StopPrezeroing() {
  std::unique_lock<std::mutex> z(zero_mu_);
  zero_stop_ = true;
  zero_cv_.notify_all();
  WaitForZeroingPause(z);
}

void Ledger::PrezeroLoop() {
  // A run is written and made durable a piece at a time, so that a batch's fdatasync, which
  // also waits for any zeros in flight, never waits for more than one piece. At 64 appenders
  // 256 KiB pieces gave a p99 ack of 1.1-1.2 ms against 1.9-2.3 ms for 1 MiB ones, at the
  // same rate.
  constexpr uint64_t kPiece = 256u << 10;
  static const std::string kZeros(kPiece, '\0');
  std::unique_lock<std::mutex> z(zero_mu_);
  while (true) {
    zero_cv_.wait(z, [&] { return zero_wanted_ || zero_stop_; });
    if (zero_stop_) return;
    zero_wanted_ = false;
    const uint64_t run =
        std::clamp(2 * zero_run_, FirstZeroRun(options_.prezero_bytes), options_.prezero_bytes);
    const uint64_t run_end = std::min(zero_end_ + run, options_.max_segment_bytes);
    // Between pieces, give way to a writer waiting for the zeroing to pause.
    while (!zero_stop_ && zero_file_ != nullptr && zero_end_ < run_end && zero_waiters_ == 0) {
      File* const file = zero_file_;
      const uint64_t from = zero_end_;
      const uint64_t to = std::min(from + kPiece, run_end);
      zero_busy_ = true;
      z.unlock();
      absl::Status st = file->WriteAt(from, std::string_view(kZeros).substr(0, to - from));
      if (st.ok()) st = file->SyncData();
      z.lock();
      zero_busy_ = false;
      zero_cv_.notify_all();
      if (!st.ok()) {
        // Appends work without it, at the cost of slower syncs; zeros already written are a
        // zero tail that the next write covers or Open removes.
        spdlog::warn("ledger: cannot pre-zero space in the last segment ({}); appends go on "
                     "without it", st.ToString());
        zero_stop_ = true;
        break;
      }
      zero_end_ = to;
    }
    zero_run_ = run;
  }
}

void Ledger::ClaimForWrite(uint64_t end) {
  if (options_.prezero_bytes == 0) return;
  std::unique_lock<std::mutex> z(zero_mu_);
  if (end > zero_end_) {
    // Past the zeros: let the piece being written there finish first (it may cover us); the
    // rest of the batch simply extends the file, and zeros resume after it.
    WaitForZeroingPause(z);
    zero_end_ = std::max(zero_end_, end);
  }
  if (!zero_busy_ && !zero_stop_ &&
      zero_end_ - end < std::max(zero_run_, FirstZeroRun(options_.prezero_bytes))) {
    zero_wanted_ = true;
    zero_cv_.notify_all();
  }
}

absl::Status Ledger::RollSegment(uint64_t first_seq) {
  {
    std::unique_lock<std::mutex> z(zero_mu_);
    WaitForZeroingPause(z);
    zero_file_ = nullptr;  // nothing more for the old segment
  }
  // A sealed segment ends with its last record: cut the zeros past it, and make it durable.
  absl::Status sealed = file_->Truncate(write_offset_);
  if (sealed.ok()) sealed = file_->SyncData();
  if (!sealed.ok()) return absl::UnavailableError("cannot seal the ledger segment: " + sealed.ToString());
  {
    std::lock_guard<std::mutex> l(mu_);
    LETHE_RETURN_IF_ERROR(StartSegment(first_seq));
  }
  PrezeroFrom(file_.get(), write_offset_);
  return absl::OkStatus();
}

absl::Status Ledger::StartSegment(uint64_t first_seq) {
  const std::string path = options_.dir + "/" + format::SegmentFileName(first_seq);
  // 0600: the ledger holds tokens and sealed data; only lethed (and its backups) read it.
  LETHE_ASSIGN_OR_RETURN(std::unique_ptr<File> file,
                   fs_.Open(path, FileSystem::OpenMode::kCreateExclusive, 0600));
  std::string header = format::EncodeSegmentHeader(first_seq);
  absl::Status st = file->WriteAt(0, header);
  if (st.ok()) st = file->SyncData();
  if (st.ok()) st = fs_.SyncDir(options_.dir);
  if (!st.ok()) {
    file.reset();
    (void)fs_.Remove(path);
    return absl::UnavailableError("cannot start a segment: " + st.ToString());
  }
  if (file_ != nullptr) retired_files_.push_back(std::move(file_));  // the sync thread may still be syncing it
  file_ = std::move(file);
  write_offset_ = header.size();
  segments_.push_back(path);
  write_segment_ = static_cast<uint32_t>(segments_.size() - 1);
  return absl::OkStatus();
}

absl::Status Ledger::SignCheckpointNow() {
  std::lock_guard<std::mutex> signing(cp_mu_);
  ledger::Checkpoint cp;
  cp.origin = options_.origin;
  {
    std::lock_guard<std::mutex> l(mu_);
    cp.size = locations_.size();  // durable entries only: the tree may run ahead
    cp.root = tree_.Root(cp.size);
  }
  uint64_t prev_size = 0;
  std::string prev_root;
  bool has_prev = false;
  {
    std::lock_guard<std::mutex> l(cp_note_mu_);
    if (has_checkpoint_ && cp.size == checkpoint_size_) return absl::OkStatus();
    has_prev = has_checkpoint_;
    prev_size = checkpoint_size_;
    prev_root = checkpoint_root_;
  }
  // Never sign two checkpoints that are inconsistent: prove the new tree extends the one
  // last signed before signing it.
  if (has_prev && prev_size > 0) {
    if (cp.size < prev_size)
      return absl::InternalError(absl::StrCat("refusing to sign a checkpoint of size ", cp.size,
                                              " after one of size ", prev_size));
    std::vector<std::string> proof;
    {
      std::lock_guard<std::mutex> l(mu_);
      LETHE_ASSIGN_OR_RETURN(proof, tree_.ConsistencyProof(prev_size, cp.size));
    }
    if (absl::Status s = VerifyConsistency(prev_size, cp.size, proof, prev_root, cp.root); !s.ok())
      return absl::InternalError("refusing to sign an inconsistent checkpoint: " + s.ToString());
  }
  std::string note = SignCheckpoint(cp, *options_.signing_key);
  // The history first: it must hold every checkpoint the file ever holds. A crash between the
  // two leaves it one ahead; signing that size again appends nothing.
  if (history_ == nullptr) return absl::FailedPreconditionError("the ledger did not open");
  LETHE_RETURN_IF_ERROR(history_->Append(cp, note));
  LETHE_RETURN_IF_ERROR(WriteFileAtomic(fs_, options_.dir + "/" + kCheckpointFile, note, 0600));
  std::lock_guard<std::mutex> l(cp_note_mu_);
  checkpoint_ = std::move(note);
  checkpoint_size_ = cp.size;
  checkpoint_root_ = cp.root;
  has_checkpoint_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> Ledger::Checkpoint() {
  LETHE_RETURN_IF_ERROR(SignCheckpointNow());
  return LatestCheckpoint();
}

absl::StatusOr<std::vector<AppendedEntry>> Ledger::Append(std::vector<v1::LedgerEntry> entries,
                                                          absl::Time now) {
  std::vector<AppendedEntry> out(entries.size());
  if (entries.empty()) return out;
  absl::InlinedVector<std::array<char, 32>, 4> leaves(entries.size());
  uint64_t end = 0;
  uint64_t batch = 0;
  {
    std::lock_guard<std::mutex> w(write_mu_);
    batch = batches_taken_;
    if (write_failed_)
      return absl::UnavailableError("ledger is read-only after a failed write; restart lethed");
    // Everything that can fail comes before anything shared changes.
    const int64_t ms = std::max(absl::ToUnixMillis(now), write_last_ms_);
    const char* prev = write_prev_hash_.data();
    for (size_t i = 0; i < entries.size(); ++i) {
      v1::LedgerEntry& e = entries[i];
      AppendedEntry& a = out[i];
      a.seq = write_next_seq_ + i;
      e.set_seq(a.seq);
      e.set_time_unix_ms(ms);
      e.set_batch_remaining(static_cast<uint32_t>(entries.size() - 1 - i));
      e.set_prev_hash(prev, leaves[i].size());
      if (!e.SerializeToString(&a.bytes)) return absl::InternalError("cannot serialize ledger entry");
      if (a.bytes.size() > format::kMaxPayload)
        return absl::InvalidArgumentError("ledger entry larger than 16 MiB");
      LeafHashInto(a.bytes, leaves[i].data());
      prev = leaves[i].data();
    }
    for (size_t i = 0; i < out.size(); ++i) {
      format::AppendRecord(&queued_, out[i].bytes);
      queued_lengths_.push_back(static_cast<uint32_t>(out[i].bytes.size()));
      out[i].entry = std::move(entries[i]);
    }
    {
      // The tree runs ahead of the durable entries; readers only see the durable ones.
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& leaf : leaves) tree_.Append(std::string_view(leaf.data(), leaf.size()));
    }
    write_next_seq_ += out.size();
    write_prev_hash_ = leaves.back();
    write_last_ms_ = ms;
    end = write_next_seq_;
  }
  written_cv_.notify_one();

  // Wait for the sync that covers these entries.
  std::atomic<uint32_t>& word = sync_generation_[batch % kSyncWords];
  uint32_t gen = word.load();
  while (durable_end_.load() < end) {
    if (sync_failed_.load())
      return absl::UnavailableError("ledger: a write or fdatasync failed; the ledger is read-only until restarted");
    word.wait(gen);
    gen = word.load();
  }
  return out;
}

void Ledger::SyncLoop() {
  // A batch taken from the queue. Two of them, whose buffers are swapped with queued_ and
  // reused, so that none is reallocated.
  struct Batch {
    std::string bytes;
    std::vector<uint32_t> lengths;
    uint64_t first_seq = 0;
    std::atomic<uint32_t>* word = nullptr;
  };
  Batch cur, next;
  auto take = [&](Batch& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    b.first_seq = write_next_seq_ - queued_lengths_.size();
    b.bytes.clear();
    b.lengths.clear();
    b.bytes.swap(queued_);
    b.lengths.swap(queued_lengths_);
    b.word = &sync_generation_[batches_taken_ % kSyncWords];
    ++batches_taken_;
  };
  auto wake = [](Batch& b) {
    b.word->fetch_add(1);
    b.word->notify_all();
  };

  std::unique_lock<std::mutex> w(write_mu_);
  bool have = false;  // cur holds a batch taken while the previous one was acknowledged
  while (true) {
    if (!have) {
      written_cv_.wait(w, [&] { return !queued_lengths_.empty() || stop_sync_; });
      if (queued_lengths_.empty()) break;  // stopping, and nothing left to make durable
      take(cur);
    }
    have = false;
    if (write_failed_) {
      // Queued before an earlier write or sync failed: these entries chain on entries that
      // may not be on disk, and the file offset was not advanced past them. Never write them;
      // their appenders see sync_failed_.
      wake(cur);
      continue;
    }
    w.unlock();

    const uint64_t bytes = cur.bytes.size();
    absl::Status st;
    // Entries do not span segments.
    if (write_offset_ > format::kSegmentHeaderSize && write_offset_ + bytes > options_.max_segment_bytes)
      st = RollSegment(cur.first_seq);
    const uint64_t start = write_offset_;
    if (st.ok()) {
      ClaimForWrite(start + bytes);
      // One write for the whole batch.
      st = file_->WriteAt(start, cur.bytes);
      if (!st.ok()) st = absl::UnavailableError("cannot append to the ledger: " + st.ToString());
    }
    if (st.ok()) {
      st = file_->SyncData();
      if (!st.ok()) st = absl::UnavailableError("cannot fdatasync the ledger: " + st.ToString());
    }
    if (!st.ok()) {
      // The queued appends chain on these entries; after a failed fdatasync the kernel may also
      // have dropped dirty pages. Refuse further writes until a restart re-reads the files,
      // which cuts whatever of this batch reached them.
      spdlog::error("ledger: {}; the ledger is read-only until restarted", st.ToString());
      StopPrezeroing();
      if (absl::Status cut = file_->Truncate(start); !cut.ok())
        spdlog::error("ledger: cannot cut the failed batch off the segment ({}); the next start "
                      "finds it past the last acknowledged record and cuts it",
                      cut.ToString());
      w.lock();
      write_failed_ = true;
      sync_failed_ = true;
      for (auto& g : sync_generation_) {
        g.fetch_add(1);
        g.notify_all();
      }
      continue;
    }
    write_offset_ = start + bytes;
    syncs_.fetch_add(1, std::memory_order_relaxed);

    // Take the next batch before acknowledging this one, while none of this batch's
    // appenders, once woken, competes for the lock.
    w.lock();
    if (!queued_lengths_.empty()) {
      take(next);
      have = true;
    }
    w.unlock();

    const uint64_t end = cur.first_seq + cur.lengths.size();
    uint64_t uncovered = 0;
    {
      std::lock_guard<std::mutex> l(mu_);
      uint64_t off = start;
      for (uint32_t len : cur.lengths) {
        locations_.push_back(Location{write_segment_, len, off + format::kRecordHeaderSize});
        off += format::kRecordHeaderSize + len;
      }
      std::lock_guard<std::mutex> cl(cp_note_mu_);
      uncovered = end - (has_checkpoint_ ? checkpoint_size_ : 0);
    }
    entries_written_.fetch_add(cur.lengths.size(), std::memory_order_relaxed);
    // A due checkpoint is signed before the batch is acknowledged, so that it is there when
    // the Append that crossed the threshold returns.
    if (uncovered >= options_.checkpoint_every) {
      if (absl::Status s = SignCheckpointNow(); !s.ok())
        spdlog::error("ledger: cannot write checkpoint: {}", s.ToString());
    }
    durable_end_.store(end);
    wake(cur);
    std::swap(cur, next);
    w.lock();
  }
}

uint64_t Ledger::pending() const {
  std::lock_guard<std::mutex> w(write_mu_);
  return write_next_seq_ - durable_end_.load();
}

uint64_t Ledger::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return locations_.size();
}

std::string Ledger::Root() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tree_.Root(locations_.size());
}

absl::StatusOr<std::string> Ledger::RootAt(uint64_t size) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (size > locations_.size())
    return absl::OutOfRangeError(absl::StrCat("size ", size, " is beyond the log size ", locations_.size()));
  return tree_.Root(size);
}

absl::StatusOr<std::vector<std::string>> Ledger::InclusionProof(uint64_t index, uint64_t size) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (index < size && size > locations_.size())
    return absl::OutOfRangeError(absl::StrCat("inclusion proof: tree size ", size,
                                              " is beyond the log size ", locations_.size()));
  return tree_.InclusionProof(index, size);
}

absl::StatusOr<std::vector<std::string>> Ledger::ConsistencyProof(uint64_t size1,
                                                                  uint64_t size2) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (size1 != 0 && size1 <= size2 && size2 > locations_.size())
    return absl::OutOfRangeError(absl::StrCat("consistency proof: size2 ", size2,
                                              " is beyond the log size ", locations_.size()));
  return tree_.ConsistencyProof(size1, size2);
}

std::string Ledger::LatestCheckpoint() const {
  std::lock_guard<std::mutex> lock(cp_note_mu_);
  return checkpoint_;
}

absl::StatusOr<std::string> Ledger::ReadEntry(uint64_t seq) const {
  std::string path;
  Location loc{};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (seq >= locations_.size())
      return absl::OutOfRangeError(absl::StrCat("entry ", seq, " is beyond the log size ",
                                                locations_.size()));
    loc = locations_[seq];
    path = segments_[loc.segment];
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open segment", path);
  std::string out(loc.length, '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(loc.offset));
  ::close(fd);
  if (n != static_cast<ssize_t>(out.size())) return Errno("cannot read segment", path);
  return out;
}

}  // namespace lethe::ledger
