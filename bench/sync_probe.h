// SingleSyncRate: how many write+fdatasync pairs of one record a second the filesystem under
// `dir` takes, one after another, measured for `seconds`. Appending extends the file each
// time, as a naive log does; over a pre-zeroed file it writes over zeros, as the ledger does,
// which is faster on ext4 (no size or block-map update to sync). Benchmarks that wait for the
// ledger's fdatasync measure it in the same run as their baseline.
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

inline double SingleSyncRate(const std::string& dir, double seconds, size_t record, bool over_zeros) {
  using Clock = std::chrono::steady_clock;
  auto elapsed = [](Clock::time_point since) {
    return std::chrono::duration<double>(Clock::now() - since).count();
  };
  const std::string path = dir + "/sync-probe";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror("sync probe");
    std::exit(1);
  }
  if (over_zeros) {
    // More than enough for `seconds` at 20,000 syncs/s.
    const std::string zeros(1u << 20, '\0');
    const size_t need = static_cast<size_t>(seconds * 20000 * record) + zeros.size();
    for (size_t off = 0; off < need; off += zeros.size())
      if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(off)) < 0) perror("sync probe");
    if (::fsync(fd) != 0) perror("sync probe");
  }
  std::string buf(record, 'x');
  uint64_t n = 0;
  const auto start = Clock::now();
  while (elapsed(start) < seconds) {
    if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(n * record)) !=
            static_cast<ssize_t>(buf.size()) ||
        ::fdatasync(fd) != 0) {
      perror("sync probe");
      break;
    }
    ++n;
  }
  const double rate = static_cast<double>(n) / elapsed(start);
  ::close(fd);
  std::filesystem::remove(path);
  return rate;
}

}  // namespace lethe::bench
