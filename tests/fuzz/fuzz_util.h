// Shared helpers of the fuzz targets (tests/fuzz/*_fuzz.cc) and of make_corpus.cc: fixed
// keys, a byte reader, a self-removing temp directory. fuzz_ledger.h adds what the ledger
// targets share.
//
// Everything here is deterministic: the keys are constants, Ed25519 signatures are
// deterministic, and nothing reads the clock.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "crypto/crypto.h"
#include "crypto/seal.h"

namespace lethe::fuzz {

// Inputs longer than this are ignored (the targets return at once).
inline constexpr size_t kMaxInput = size_t{1} << 20;

// Test keys, generated once with `openssl genpkey -algorithm ed25519` for the fuzz targets
// only. They sign nothing outside tests/fuzz.
inline constexpr char kControlPlaneKeyPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIGwS92Iwq/m+PgGbHKFaAGDTwj1tFdQwxigXxxOUR1hG\n"
    "-----END PRIVATE KEY-----\n";
inline constexpr char kAgentKeyPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIPeQ86r1QeGVO8X6C2ownVeRWtTXNxgw4U/o88v59VeO\n"
    "-----END PRIVATE KEY-----\n";

// What the seeds and the command verifier agree on.
inline constexpr char kDomain[] = "growth";
inline constexpr char kOrigin[] = "lethe.local/ledger";
// The command time the verifier's clock shows: 2026-11-25T12:00:00Z.
inline constexpr int64_t kNowUnixMs = 1'795'608'000'000;

inline const crypto::Ed25519PrivateKey& LoadKey(const char* pem) {
  auto key = crypto::Ed25519PrivateKey::FromPem(pem);
  if (!key.ok()) {
    std::fprintf(stderr, "fuzz: cannot load a fixed key: %s\n", key.status().ToString().c_str());
    std::abort();
  }
  return *new crypto::Ed25519PrivateKey(*std::move(key));  // lives until exit
}
// The agent's X25519 key that commands are sealed to (a fixed key, so that seeds replay).
inline constexpr char kAgentEncryptionKeyPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VuBCIEIAkD5Eb9/vEDE2fKTw9/h7cUnyASSa+qQ3t/EgwachFS\n"
    "-----END PRIVATE KEY-----\n";
inline const crypto::X25519PrivateKey& AgentEncryptionKey() {
  static const crypto::X25519PrivateKey& key =
      *new crypto::X25519PrivateKey(crypto::X25519PrivateKey::FromPem(kAgentEncryptionKeyPem).value());
  return key;
}
inline const crypto::Ed25519PrivateKey& ControlPlaneKey() {
  static const crypto::Ed25519PrivateKey& key = LoadKey(kControlPlaneKeyPem);
  return key;
}
inline const crypto::Ed25519PrivateKey& AgentKey() {
  static const crypto::Ed25519PrivateKey& key = LoadKey(kAgentKeyPem);
  return key;
}
// The domain policy hash the command verifier expects, and the command digest a receipt
// must name: fixed values the seeds use.
inline const std::string& DomainPolicyHash() {
  static const std::string& h = *new std::string(crypto::Sha256("lethe fuzz domain policy"));
  return h;
}
inline const std::string& CommandDigest() {
  static const std::string& h = *new std::string(crypto::Sha256("lethe fuzz command"));
  return h;
}

// Reads an input front to back. Reads past the end yield zeros and empty strings.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(reinterpret_cast<const char*>(data)), size_(size) {}
  explicit Reader(std::string_view s) : data_(s.data()), size_(s.size()) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return size_ - pos_; }
  uint8_t U8() {
    if (empty()) return 0;
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint16_t U16() {
    const uint16_t lo = U8();
    return static_cast<uint16_t>(lo | (U8() << 8));
  }
  uint32_t U32() {
    const uint32_t lo = U16();
    return lo | (uint32_t{U16()} << 16);
  }
  std::string_view Bytes(size_t n) {
    n = std::min(n, remaining());
    std::string_view out(data_ + pos_, n);
    pos_ += n;
    return out;
  }
  // A little-endian u16 length, then that many bytes (fewer at the end of the input).
  std::string_view Chunk16() { return Bytes(U16()); }
  // The same with a u32 length.
  std::string_view Chunk32() { return Bytes(U32()); }
  std::string_view Rest() { return Bytes(remaining()); }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A fresh directory, removed with everything in it when this goes out of scope. It lives on
// tmpfs (/dev/shm) when there is one, where the fsyncs of the code under test cost nothing;
// LETHE_FUZZ_TMPDIR overrides the parent.
class TempDir {
 public:
  TempDir() {
    std::string parent;
    if (const char* env = std::getenv("LETHE_FUZZ_TMPDIR"); env != nullptr && *env != '\0') {
      parent = env;
    } else if (::access("/dev/shm", W_OK | X_OK) == 0) {
      parent = "/dev/shm";
    } else {
      const char* tmp = std::getenv("TMPDIR");
      parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string templ = parent + "/lethe-fuzz-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      std::perror("fuzz: mkdtemp");
      std::abort();
    }
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes `data` to `path` (mode 0644), replacing it. False on any failure.
inline bool WriteWholeFile(const std::string& path, std::string_view data) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  return std::fclose(f) == 0 && ok;
}

// Aborts with a message: an invariant of the code under test does not hold.
[[noreturn]] inline void Violated(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz: invariant violated: %s %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace lethe::fuzz
