#include "base/file_system.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace lethe {
namespace {

absl::Status Errno(std::string_view what, const std::string& path, int err = errno) {
  return absl::UnavailableError(absl::StrCat(absl::string_view(what.data(), what.size()), " ",
                                             path, ": ", std::strerror(err)));
}

class PosixFile final : public File {
 public:
  PosixFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixFile() override { ::close(fd_); }

  absl::Status WriteAt(uint64_t offset, std::string_view data) override {
    for (size_t done = 0; done < data.size();) {
      const ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done,
                                 static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("cannot write", path_);
      if (n == 0) return Errno("cannot write", path_, EIO);
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status ReadAt(uint64_t offset, size_t n, char* out) const override {
    for (size_t done = 0; done < n;) {
      const ssize_t r = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Errno("cannot read", path_);
      if (r == 0)
        return absl::DataLossError(absl::StrCat(path_, " is shorter than ", offset + n, " bytes"));
      done += static_cast<size_t>(r);
    }
    return absl::OkStatus();
  }

  absl::Status SyncData() override {
    if (::fdatasync(fd_) != 0) return Errno("cannot fdatasync", path_);
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return Errno("cannot truncate", path_);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Size() const override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return Errno("cannot stat", path_);
    return static_cast<uint64_t>(st.st_size);
  }

  const std::string& path() const override { return path_; }

 private:
  const std::string path_;
  const int fd_;
};

class PosixFileSystem final : public FileSystem {
 public:
  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path, OpenMode how,
                                             int mode) override {
    int flags = O_CLOEXEC;
    switch (how) {
      case OpenMode::kWrite: flags |= O_WRONLY; break;
      case OpenMode::kReadWrite: flags |= O_RDWR | O_NOFOLLOW; break;
      case OpenMode::kCreateExclusive: flags |= O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW; break;
    }
    const int fd = ::open(path.c_str(), flags, mode);
    if (fd < 0) {
      if (how == OpenMode::kCreateExclusive && errno == EEXIST)
        return absl::AlreadyExistsError(absl::StrCat("will not overwrite ", path));
      return Errno(how == OpenMode::kCreateExclusive ? "cannot create" : "cannot open", path);
    }
    // umask must not widen or narrow what was asked for.
    if (how == OpenMode::kCreateExclusive && ::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
      absl::Status s = Errno("cannot set the mode of", path);
      ::close(fd);
      ::unlink(path.c_str());
      return s;
    }
    return std::unique_ptr<File>(new PosixFile(path, fd));
  }

  absl::Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Errno("cannot remove", path);
    return absl::OkStatus();
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Errno("cannot rename to", to);
    return absl::OkStatus();
  }

  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    LETHE_ASSIGN_OR_RETURN(std::unique_ptr<File> f, Open(path, OpenMode::kWrite, 0));
    LETHE_RETURN_IF_ERROR(f->Truncate(size));
    return f->SyncData();
  }

  absl::Status SyncDir(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open directory", dir);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return Errno("cannot fsync directory", dir, err);
    return absl::OkStatus();
  }
};

// 16 hex digits from the kernel's random source, for a temporary file name.
std::string UnpredictableSuffix() {
  char bytes[8];
  size_t done = 0;
  while (done < sizeof(bytes)) {
    const ssize_t n = ::getrandom(bytes + done, sizeof(bytes) - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) std::abort();  // no randomness at all: nothing safe to do
    done += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

std::string DirOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace

FileSystem* FileSystem::Default() {
  static PosixFileSystem* fs = new PosixFileSystem();
  return fs;
}

absl::Status WriteFileAtomic(FileSystem& fs, const std::string& path, std::string_view data,
                             int mode) {
  // An unpredictable temporary name, created exclusively: a planted file or symlink at a
  // predictable name cannot redirect the write.
  const std::string tmp = path + ".tmp-" + UnpredictableSuffix();
  {
    LETHE_ASSIGN_OR_RETURN(std::unique_ptr<File> f, fs.Open(tmp, FileSystem::OpenMode::kCreateExclusive, mode));
    absl::Status st = f->WriteAt(0, data);
    if (st.ok()) st = f->SyncData();
    if (!st.ok()) {
      f.reset();
      (void)fs.Remove(tmp);
      return st;
    }
  }
  if (absl::Status st = fs.Rename(tmp, path); !st.ok()) {
    (void)fs.Remove(tmp);
    return st;
  }
  return fs.SyncDir(DirOf(path));
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view data, int mode) {
  return WriteFileAtomic(*FileSystem::Default(), path, data, mode);
}

absl::Status WriteNewFile(const std::string& path, std::string_view data, int mode) {
  FileSystem& fs = *FileSystem::Default();
  {
    LETHE_ASSIGN_OR_RETURN(std::unique_ptr<File> f,
                           fs.Open(path, FileSystem::OpenMode::kCreateExclusive, mode));
    absl::Status st = f->WriteAt(0, data);
    if (st.ok()) st = f->SyncData();
    if (!st.ok()) {
      f.reset();
      (void)fs.Remove(path);
      return st;
    }
  }
  return fs.SyncDir(DirOf(path));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    absl::Status s = Errno("cannot stat", path);
    ::close(fd);
    return s;
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (true) {
    if (done == out.size()) out.resize(out.size() + 4096);  // the file grew, or st_size was 0
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("cannot read", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

}  // namespace lethe
