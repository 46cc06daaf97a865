// What one durable write costs on the filesystem under a directory, for benchmarks whose
// figures wait for the ledger's fdatasync and so measure it in the same run as their baseline.
//
// SyncedRecords writes records one after another into one file, each with a write and an
// fdatasync. Appending extends the file each time, as a naive log does; over a pre-zeroed
// file it writes over zeros, as the ledger does, which is faster on ext4 (no size or
// block-map update to sync). SingleSyncRate measures how many such records a second it takes.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace lethe::bench {

class SyncedRecords {
 public:
  // `zeroed`: bytes of zeros written and synced first (0: append); records wrap around to
  // the start of them, over blocks as allocated as the zeros were.
  SyncedRecords(std::string path, size_t record, size_t zeroed)
      : path_(std::move(path)), record_(record), zeroed_(zeroed) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) Fail();
    const std::string zeros(1u << 20, '\0');
    for (size_t off = 0; off < zeroed_; off += zeros.size())
      if (::pwrite(fd_, zeros.data(), zeros.size(), static_cast<off_t>(off)) < 0) Fail();
    if (zeroed_ > 0 && ::fsync(fd_) != 0) Fail();
  }
  ~SyncedRecords() {
    ::close(fd_);
    std::filesystem::remove(path_);
  }
  SyncedRecords(const SyncedRecords&) = delete;
  SyncedRecords& operator=(const SyncedRecords&) = delete;

  // `n` records written with one write, then fdatasynced. Not thread safe.
  void Write(size_t n = 1) {
    const size_t bytes = n * record_;
    if (batch_.size() < bytes) batch_ = std::string(bytes, 'x');
    if (zeroed_ > 0 && offset_ + bytes > zeroed_) offset_ = 0;
    if (::pwrite(fd_, batch_.data(), bytes, static_cast<off_t>(offset_)) != static_cast<ssize_t>(bytes) ||
        ::fdatasync(fd_) != 0)
      Fail();
    offset_ += bytes;
  }

 private:
  [[noreturn]] void Fail() {
    perror(path_.c_str());
    std::exit(1);
  }

  const std::string path_;
  const size_t record_;  // bytes a record
  const size_t zeroed_;
  std::string batch_;
  int fd_ = -1;
  uint64_t offset_ = 0;
};

inline double SingleSyncRate(const std::string& dir, double seconds, size_t record, bool over_zeros) {
  using Clock = std::chrono::steady_clock;
  auto elapsed = [](Clock::time_point since) {
    return std::chrono::duration<double>(Clock::now() - since).count();
  };
  // More than enough for `seconds` at 20,000 syncs/s.
  SyncedRecords records(dir + "/sync-probe", record,
                        over_zeros ? static_cast<size_t>(seconds * 20000 * record) + (1u << 20) : 0);
  uint64_t n = 0;
  const auto start = Clock::now();
  while (elapsed(start) < seconds) {
    records.Write();
    ++n;
  }
  return static_cast<double>(n) / elapsed(start);
}

}  // namespace lethe::bench
