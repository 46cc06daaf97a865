// File helpers for tests: a self-removing temp directory and whole-file reads and writes.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "base/file_system.h"
#include "crypto/crypto.h"
#include "gtest/gtest.h"

namespace lethe::testing {

// A fresh directory under the system temp dir; removed, with everything in it, at scope exit.
class TempDir {
 public:
  TempDir() : TempDir(std::filesystem::temp_directory_path()) {}
  // Under `parent` instead (e.g. /dev/shm).
  explicit TempDir(const std::filesystem::path& parent)
      : path_(parent / ("lethe-test-" + crypto::Hex(crypto::RandomBytes(8)))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path() const { return path_.string(); }
  std::string File(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The file's bytes; a failed read fails the test and yields "".
inline std::string ReadBytes(const std::string& path) {
  auto data = lethe::ReadFile(path);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *data : std::string();
}

// Replaces the file (creating its parent directories); a failed write fails the test.
inline void WriteBytes(const std::string& path, std::string_view data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  f.close();
  EXPECT_TRUE(f.good()) << "cannot write " << path;
}

// Every regular file under `dir` (recursively) whose bytes contain `needle`.
inline std::vector<std::string> FilesContaining(const std::string& dir, std::string_view needle) {
  std::vector<std::string> hits;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    if (ReadBytes(e.path().string()).find(needle) != std::string::npos) hits.push_back(e.path().string());
  }
  return hits;
}

}  // namespace lethe::testing
