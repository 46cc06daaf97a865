// Tests of cli/zip_writer.h: the ZIP archives that `request export --format csv-zip` writes,
// read back by Python's zipfile (a reader written by others) and by a strict parser here that
// holds every field to APPNOTE 6.3.x, and the RFC 4180 CSV rows that go in them, read back by
// Python's csv module. Needs python3 (its standard library only): a missing python3 fails the
// tests that use it, never skips them.
#include "cli/zip_writer.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/files.h"
#include "tests/support/subprocess.h"

namespace lethe::cli {
namespace {

using ::lethe::testing::RunCommand;
using ::lethe::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

// The tests run in a zone other than UTC (set before anything asks absl for the local zone),
// so that a writer stamping local time instead of UTC would show.
const bool kInTokyo = setenv("TZ", "Asia/Tokyo", 1) == 0;

// 2024-05-17 13:42:59 UTC: DOS date 0x58b1, DOS time 0x6d5d (the odd second rounded down).
const absl::Time kTime = absl::FromCivil(absl::CivilSecond(2024, 5, 17, 13, 42, 59), absl::UTCTimeZone());
constexpr uint16_t kDate = (44 << 9) | (5 << 5) | 17;
constexpr uint16_t kClock = (13 << 11) | (42 << 5) | 29;

std::string AllByteValues() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

// ---- an independent reader ---------------------------------------------------------------

// CRC-32 (ISO-HDLC, the one ZIP uses), bit by bit: no zlib.
uint32_t BitwiseCrc32(std::string_view data) {
  uint32_t crc = 0xffffffffu;
  for (char c : data) {
    crc ^= static_cast<unsigned char>(c);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint16_t Le16(std::string_view z, size_t at) {
  const auto lo = static_cast<unsigned char>(z[at]);
  const auto hi = static_cast<unsigned char>(z[at + 1]);
  return static_cast<uint16_t>(lo | (hi << 8));
}
uint32_t Le32(std::string_view z, size_t at) { return Le16(z, at) | (uint32_t{Le16(z, at + 2)} << 16); }

struct Parsed {
  std::string name;
  std::string data;
  uint16_t version_made_by = 0;
  uint16_t version_needed = 0;
  uint16_t flags = 0;
  uint16_t method = 0;
  uint16_t time = 0;
  uint16_t date = 0;
  uint32_t crc = 0;
  uint32_t external_attributes = 0;
};

absl::Status Bad(std::string what) { return absl::DataLossError(std::move(what)); }

// Every entry of a single-disk archive with no ZIP64, no comments and no extra fields, as
// APPNOTE 6.3.x lays it out: local headers and data back to back from offset 0, then the
// central directory, then the end record, and nothing else. Each local header must repeat its
// central header's fields, and each CRC must be the data's.
absl::StatusOr<std::vector<Parsed>> ParseZip(std::string_view z) {
  if (z.size() < 22) return Bad("shorter than an end record");
  const size_t end = z.size() - 22;
  if (Le32(z, end) != 0x06054b50) return Bad("no end record signature in the last 22 bytes");
  if (Le16(z, end + 4) != 0 || Le16(z, end + 6) != 0) return Bad("end record names another disk");
  const uint16_t count = Le16(z, end + 10);
  if (Le16(z, end + 8) != count) return Bad("end record: entries on this disk != entries");
  const uint32_t cd_size = Le32(z, end + 12);
  const uint32_t cd_offset = Le32(z, end + 16);
  if (Le16(z, end + 20) != 0) return Bad("end record has a comment");
  if (uint64_t{cd_offset} + cd_size != end) return Bad("central directory does not end at the end record");

  std::vector<Parsed> out;
  std::vector<uint32_t> offsets;
  size_t at = cd_offset;
  for (int i = 0; i < count; ++i) {
    if (at + 46 > end) return Bad(absl::StrCat("central header ", i, " runs past the directory"));
    if (Le32(z, at) != 0x02014b50) return Bad(absl::StrCat("central header ", i, ": bad signature"));
    Parsed p;
    p.version_made_by = Le16(z, at + 4);
    p.version_needed = Le16(z, at + 6);
    p.flags = Le16(z, at + 8);
    p.method = Le16(z, at + 10);
    p.time = Le16(z, at + 12);
    p.date = Le16(z, at + 14);
    p.crc = Le32(z, at + 16);
    const uint32_t csize = Le32(z, at + 20);
    const uint32_t usize = Le32(z, at + 24);
    const uint16_t name_len = Le16(z, at + 28);
    if (Le16(z, at + 30) != 0 || Le16(z, at + 32) != 0) return Bad("central header: extra field or comment");
    if (Le16(z, at + 34) != 0) return Bad("central header: disk number start");
    if (Le16(z, at + 36) != 0) return Bad("central header: internal attributes");
    p.external_attributes = Le32(z, at + 38);
    offsets.push_back(Le32(z, at + 42));
    if (csize != usize) return Bad("central header: compressed size != size (not STORED)");
    if (at + 46 + name_len > end) return Bad("central header name runs past the directory");
    p.name = std::string(z.substr(at + 46, name_len));
    p.data.resize(usize);  // filled from the local record below
    out.push_back(std::move(p));
    at += 46 + name_len;
  }
  if (at != end) return Bad("bytes between the central directory and the end record");

  size_t pos = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    Parsed& p = out[i];
    if (offsets[i] != pos)
      return Bad(absl::StrCat("entry ", i, ": local header not where the directory says"));
    if (pos + 30 > cd_offset) return Bad(absl::StrCat("entry ", i, ": local header runs into the directory"));
    if (Le32(z, pos) != 0x04034b50) return Bad(absl::StrCat("entry ", i, ": bad local signature"));
    if (Le16(z, pos + 4) != p.version_needed) return Bad("local/central differ: version needed");
    if (Le16(z, pos + 6) != p.flags) return Bad("local/central differ: flags");
    if (Le16(z, pos + 8) != p.method) return Bad("local/central differ: method");
    if (Le16(z, pos + 10) != p.time) return Bad("local/central differ: time");
    if (Le16(z, pos + 12) != p.date) return Bad("local/central differ: date");
    if (Le32(z, pos + 14) != p.crc) return Bad("local/central differ: CRC-32");
    if (Le32(z, pos + 18) != p.data.size() || Le32(z, pos + 22) != p.data.size())
      return Bad("local/central differ: sizes");
    if (Le16(z, pos + 26) != p.name.size()) return Bad("local/central differ: name length");
    if (Le16(z, pos + 28) != 0) return Bad("local header has an extra field");
    const size_t data_at = pos + 30 + p.name.size();
    if (data_at + p.data.size() > cd_offset) return Bad("entry data runs into the directory");
    if (z.substr(pos + 30, p.name.size()) != p.name) return Bad("local/central differ: name");
    p.data = std::string(z.substr(data_at, p.data.size()));
    if (BitwiseCrc32(p.data) != p.crc) return Bad(absl::StrCat("entry ", i, ": CRC-32 is not the data's"));
    pos = data_at + p.data.size();
  }
  if (pos != cd_offset) return Bad("bytes between the last entry and the central directory");
  return out;
}

// ---- Python ------------------------------------------------------------------------------

// $LETHE_PYTHON3, /usr/bin/python3, or a python3 on PATH; "" (and a failure) if none runs.
std::string FindPython() {
  std::string why;
  const std::string py = ::lethe::testing::FindPython3("csv, hashlib, zipfile", &why);
  if (py.empty()) ADD_FAILURE() << "no python3 with zipfile found:" << why;
  return py;
}

// Runs `script` with the given arguments; its output, or "" and a failure if it fails.
std::string RunPython(const std::string& script, std::vector<std::string> args) {
  const std::string py = FindPython();
  if (py.empty()) return "";
  std::vector<std::string> argv = {py, "-c", script};
  for (std::string& a : args) argv.push_back(std::move(a));
  auto r = RunCommand(std::move(argv), absl::Seconds(120));
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return "";
  EXPECT_EQ(r->exit_code, 0) << r->output;
  return r->exit_code == 0 ? r->output : "";
}

// What Python's zipfile makes of the archive at argv[1]: testzip()'s verdict, then a line per
// entry in directory order: the name (UTF-8, hex), the SHA-256 of the bytes read (zipfile
// checks each CRC-32 as it reads), size, flag bits, method, date and time, the system that
// made it and the Unix mode.
constexpr char kListZip[] = R"(
import hashlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    print("testzip", z.testzip())
    for i in z.infolist():
        data = z.read(i)
        print(i.filename.encode("utf-8").hex(), hashlib.sha256(data).hexdigest(), len(data),
              i.flag_bits, i.compress_type, "%d-%02d-%02d %02d:%02d:%02d" % i.date_time,
              i.create_system, oct(i.external_attr >> 16))
)";

std::string ExpectedLine(std::string_view name, std::string_view data, bool utf8) {
  return absl::StrCat(crypto::Hex(name), " ", crypto::Hex(crypto::Sha256(data)), " ", data.size(), " ",
                      utf8 ? 2048 : 0, " 0 2024-05-17 13:42:58 3 0o100644\n");
}

std::string SaveZip(const TempDir& dir, std::string_view bytes) {
  const std::string path = dir.File("archive.zip");
  testing::WriteBytes(path, bytes);
  return path;
}

// ---- the archive -------------------------------------------------------------------------

struct Input {
  std::string name;
  std::string data;
  bool utf8;
};

std::vector<Input> Inputs() {
  return {
      {"manifest.json", "{\"tables\": [\"users\", \"orders\"]}\n", false},
      {"tables/users.csv",
       CsvRow({"id", "email", "note"}) + CsvRow({"1", "carol@example.com", std::nullopt}) +
           CsvRow({"2", "", "says \"hi\", then\r\nleaves"}),
       false},
      {"tables/empty.csv", "", false},
      {"binary.bin", AllByteValues() + AllByteValues(), false},
      {"donn\xc3\xa9" "es/\xc3\xa9t\xc3\xa9.csv", "caf\xc3\xa9\r\n", true},          // données/été.csv
      {"\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x93\x84.txt", "\xe6\x97\xa5\xe6\x9c\xac", true},  // 日本/📄.txt
  };
}

std::string Build(const std::vector<Input>& inputs, absl::Time t = kTime) {
  ZipWriter w(t);
  for (const Input& in : inputs) EXPECT_TRUE(w.Add(in.name, in.data).ok()) << in.name;
  EXPECT_EQ(w.entries(), inputs.size());
  const uint64_t size = w.size();
  std::string zip = w.Finish();
  EXPECT_EQ(zip.size(), size);
  return zip;
}

TEST(ZipWriterTest, PythonZipfileReadsEveryEntryBackInOrder) {
  const std::vector<Input> inputs = Inputs();
  TempDir dir;
  const std::string path = SaveZip(dir, Build(inputs));
  std::string expected = "testzip None\n";
  for (const Input& in : inputs) expected += ExpectedLine(in.name, in.data, in.utf8);
  EXPECT_EQ(RunPython(kListZip, {path}), expected);
}

TEST(ZipWriterTest, EveryFieldIsWhatAppnoteSays) {
  const std::vector<Input> inputs = Inputs();
  const std::string zip = Build(inputs);
  auto parsed = ParseZip(zip);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Parsed& p = (*parsed)[i];
    SCOPED_TRACE(inputs[i].name);
    EXPECT_EQ(p.name, inputs[i].name);
    EXPECT_EQ(p.data, inputs[i].data);
    EXPECT_EQ(p.version_made_by, (3 << 8) | 63);  // Unix, APPNOTE 6.3
    EXPECT_EQ(p.version_needed, 10);
    EXPECT_EQ(p.flags, inputs[i].utf8 ? 0x0800 : 0);  // bit 11: the name is UTF-8
    EXPECT_EQ(p.method, 0);                            // STORED
    EXPECT_EQ(p.date, kDate);
    EXPECT_EQ(p.time, kClock);
    EXPECT_EQ(p.crc, BitwiseCrc32(inputs[i].data));
    EXPECT_EQ(p.external_attributes, 0100644u << 16);
  }
}

TEST(ZipWriterTest, CrcIsTheStandardCheckValue) {
  // CRC-32's check value: "123456789" -> 0xcbf43926.
  ZipWriter w(kTime);
  ASSERT_TRUE(w.Add("check.txt", "123456789").ok());
  const std::string zip = w.Finish();
  EXPECT_EQ(Le32(zip, 14), 0xcbf43926u);                 // local header
  EXPECT_EQ(Le32(zip, 30 + 9 + 9 + 16), 0xcbf43926u);    // central header
}

// One entry, byte for byte, written out field by field from APPNOTE 6.3.x.
TEST(ZipWriterTest, OneEntryByteForByte) {
  ZipWriter w(kTime);
  ASSERT_TRUE(w.Add("a.txt", "hi").ok());
  const std::string expected = std::string(
      "PK\x03\x04"           // local file header
      "\x0a\x00"             // version needed: 1.0
      "\x00\x00"             // flags
      "\x00\x00"             // method: STORED
      "\x5d\x6d"             // time 13:42:58
      "\xb1\x58"             // date 2024-05-17
      "\xac\x2a\x93\xd8"     // CRC-32 of "hi"
      "\x02\x00\x00\x00"     // compressed size
      "\x02\x00\x00\x00"     // size
      "\x05\x00"             // name length
      "\x00\x00"             // extra field length
      "a.txt"
      "hi"
      "PK\x01\x02"           // central directory header
      "\x3f\x03"             // made by: Unix, 6.3
      "\x0a\x00"             // version needed: 1.0
      "\x00\x00"             // flags
      "\x00\x00"             // method
      "\x5d\x6d"             // time
      "\xb1\x58"             // date
      "\xac\x2a\x93\xd8"     // CRC-32
      "\x02\x00\x00\x00"     // compressed size
      "\x02\x00\x00\x00"     // size
      "\x05\x00"             // name length
      "\x00\x00"             // extra field length
      "\x00\x00"             // comment length
      "\x00\x00"             // disk number start
      "\x00\x00"             // internal attributes
      "\x00\x00\xa4\x81"     // external attributes: mode 0100644 << 16
      "\x00\x00\x00\x00"     // local header offset
      "a.txt"
      "PK\x05\x06"           // end of central directory
      "\x00\x00"             // this disk
      "\x00\x00"             // disk of the central directory
      "\x01\x00"             // entries on this disk
      "\x01\x00"             // entries
      "\x33\x00\x00\x00"     // central directory size: 46 + 5
      "\x25\x00\x00\x00"     // central directory offset: 30 + 5 + 2
      "\x00\x00",            // comment length
      37 + 51 + 22);
  EXPECT_EQ(crypto::Hex(w.Finish()), crypto::Hex(expected));
}

TEST(ZipWriterTest, EmptyArchiveIsTheEndRecordAlone) {
  ZipWriter w(kTime);
  EXPECT_EQ(w.size(), 22u);
  const std::string zip = w.Finish();
  EXPECT_EQ(zip, std::string("PK\x05\x06", 4) + std::string(18, '\0'));
  TempDir dir;
  EXPECT_EQ(RunPython(kListZip, {SaveZip(dir, zip)}), "testzip None\n");
}

TEST(ZipWriterTest, FinishLeavesTheWriterEmpty) {
  ZipWriter w(kTime);
  ASSERT_TRUE(w.Add("a.csv", "1").ok());
  const std::string first = w.Finish();
  EXPECT_EQ(w.entries(), 0u);
  EXPECT_EQ(w.size(), 22u);
  ASSERT_TRUE(w.Add("a.csv", "1").ok()) << "a name of the previous archive is free again";
  EXPECT_EQ(w.Finish(), first);
}

TEST(ZipWriterTest, SameInputSameBytes) {
  const std::vector<Input> inputs = Inputs();
  const std::string a = Build(inputs);
  const std::string b = Build(inputs);
  EXPECT_EQ(crypto::Hex(crypto::Sha256(a)), crypto::Hex(crypto::Sha256(b)));
  EXPECT_EQ(a, b);
  // The time given is the only time in it: another one changes the bytes.
  EXPECT_NE(a, Build(inputs, kTime + absl::Hours(24)));
  // The order of Add is the order in the archive.
  std::vector<Input> reversed(inputs.rbegin(), inputs.rend());
  const std::string c = Build(reversed);
  EXPECT_NE(a, c);
  auto parsed = ParseZip(c);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), reversed.size());
  for (size_t i = 0; i < reversed.size(); ++i) EXPECT_EQ((*parsed)[i].name, reversed[i].name);
}

TEST(ZipWriterTest, DosTimestampIsUtcAndClamped) {
  using absl::CivilSecond;
  const absl::TimeZone utc = absl::UTCTimeZone();
  ASSERT_TRUE(kInTokyo);
  ASSERT_EQ(absl::LocalTimeZone().name(), "Asia/Tokyo")
      << "needs tzdata (postgresql-15, in tests/scripts/deps.sh, depends on it)";
  EXPECT_EQ(ZipWriter::DosDate(kTime), kDate);
  EXPECT_EQ(ZipWriter::DosTime(kTime), kClock);
  // Before 1980: 1980-01-01 00:00:00.
  for (absl::Time t : {absl::UnixEpoch(), absl::InfinitePast(),
                       absl::FromCivil(CivilSecond(1979, 12, 31, 23, 59, 59), utc)}) {
    EXPECT_EQ(ZipWriter::DosDate(t), (0 << 9) | (1 << 5) | 1);
    EXPECT_EQ(ZipWriter::DosTime(t), 0);
  }
  const absl::Time first = absl::FromCivil(CivilSecond(1980, 1, 1, 0, 0, 0), utc);
  EXPECT_EQ(ZipWriter::DosDate(first), 0x21);
  EXPECT_EQ(ZipWriter::DosTime(first), 0);
  // After 2107: 2107-12-31 23:59:58.
  for (absl::Time t : {absl::InfiniteFuture(), absl::FromCivil(CivilSecond(2108, 1, 1, 0, 0, 0), utc)}) {
    EXPECT_EQ(ZipWriter::DosDate(t), (127 << 9) | (12 << 5) | 31);
    EXPECT_EQ(ZipWriter::DosTime(t), (23 << 11) | (59 << 5) | 29);
  }
  // Sub-second parts and odd seconds round down.
  const absl::Time odd = absl::FromCivil(CivilSecond(2024, 1, 2, 3, 4, 5), utc) + absl::Milliseconds(999);
  EXPECT_EQ(ZipWriter::DosTime(odd), (3 << 11) | (4 << 5) | 2);
  // An archive made before 1980 is stamped 1980-01-01 00:00:00.
  ZipWriter w(absl::UnixEpoch());
  ASSERT_TRUE(w.Add("a", "").ok());
  auto parsed = ParseZip(w.Finish());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)[0].date, 0x21);
  EXPECT_EQ((*parsed)[0].time, 0);
}

// ---- names -------------------------------------------------------------------------------

// Add's refusal of `name`: InvalidArgument, the problem, the name's start, nothing added.
void ExpectRefused(std::string_view name, std::string_view problem, std::string_view shown) {
  SCOPED_TRACE(absl::StrCat("name \"", crypto::Hex(name), "\" (hex)"));
  ZipWriter w(kTime);
  ASSERT_TRUE(w.Add("ok.csv", "x").ok());
  const uint64_t size = w.size();
  const absl::Status s = w.Add(name, "data");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr(std::string(problem)));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("\"", std::string(shown), "\"")));
  EXPECT_EQ(w.entries(), 1u);
  EXPECT_EQ(w.size(), size);
}

TEST(ZipWriterTest, RefusesAnEmptyName) { ExpectRefused("", "is empty", ""); }

TEST(ZipWriterTest, RefusesALeadingSlash) {
  ExpectRefused("/etc/passwd", "starts with '/'", "/etc/passwd");
  ExpectRefused("/", "starts with '/'", "/");
}

TEST(ZipWriterTest, RefusesABackslash) {
  ExpectRefused("tables\\users.csv", "backslash", "tables\\users.csv");
  ExpectRefused("..\\..\\evil", "backslash", "..\\..\\evil");
}

TEST(ZipWriterTest, RefusesADotDotComponent) {
  ExpectRefused("..", "'..' path component", "..");
  ExpectRefused("../evil.csv", "'..' path component", "../evil.csv");
  ExpectRefused("tables/../../evil.csv", "'..' path component", "tables/../../evil.csv");
  ExpectRefused("tables/..", "'..' path component", "tables/..");
}

TEST(ZipWriterTest, RefusesANul) {
  ExpectRefused(std::string_view("a\0b.csv", 7), "NUL", "a?b.csv");
  ExpectRefused(std::string_view("\0", 1), "NUL", "?");
}

TEST(ZipWriterTest, RefusesADuplicate) {
  ZipWriter w(kTime);
  ASSERT_TRUE(w.Add("users.csv", "1").ok());
  ASSERT_TRUE(w.Add("orders.csv", "2").ok());
  const absl::Status s = w.Add("users.csv", "3");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("already in the archive"));
  EXPECT_THAT(s.message(), HasSubstr("\"users.csv\""));
  EXPECT_EQ(w.entries(), 2u);
  auto parsed = ParseZip(w.Finish());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].data, "1");
  // Names are bytes: another case is another name.
  ZipWriter v(kTime);
  ASSERT_TRUE(v.Add("users.csv", "1").ok());
  EXPECT_TRUE(v.Add("Users.csv", "1").ok());
}

TEST(ZipWriterTest, RefusesDirectoriesAndEmptyOrDotComponents) {
  ExpectRefused("tables/", "ends with '/'", "tables/");
  ExpectRefused("tables//users.csv", "empty path component", "tables//users.csv");
  ExpectRefused("./users.csv", "'.' path component", "./users.csv");
  ExpectRefused("tables/./users.csv", "'.' path component", "tables/./users.csv");
}

TEST(ZipWriterTest, RefusesANameThatIsNotUtf8) {
  ExpectRefused("\xff.csv", "not valid UTF-8", "?.csv");
  ExpectRefused("caf\xc3", "not valid UTF-8", "caf?");              // cut short
  ExpectRefused("\xc0\xaf.csv", "not valid UTF-8", "??.csv");       // overlong '/'
  ExpectRefused("\xed\xa0\x80.csv", "not valid UTF-8", "???.csv");  // a surrogate
  ExpectRefused("\xf4\x90\x80\x80", "not valid UTF-8", "????");     // past U+10FFFF
  ExpectRefused("caf\xc3\x28", "not valid UTF-8", "caf?(");         // not a continuation
  // Cut short where the bytes after the name (not part of it) would complete it.
  const std::string longer = "caf\xc3\xa9";
  ExpectRefused(std::string_view(longer).substr(0, 4), "not valid UTF-8", "caf?");
}

TEST(ZipWriterTest, RefusesANameLongerThanItsField) {
  ExpectRefused(std::string(65536, 'n'), "longer than 65535 bytes", std::string(32, 'n') + "...");
  ZipWriter w(kTime);
  const std::string longest(65535, 'n');
  ASSERT_TRUE(w.Add(longest, "x").ok());
  auto parsed = ParseZip(w.Finish());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)[0].name, longest);
}

TEST(ZipWriterTest, MessagesQuoteOnlyTheStartOfAName) {
  const std::string name = std::string(100, 'x') + "/../evil.csv";
  ZipWriter w(kTime);
  const absl::Status s = w.Add(name, "");
  EXPECT_THAT(s.message(), HasSubstr("\"" + std::string(32, 'x') + "...\""));
  EXPECT_THAT(s.message(), Not(HasSubstr(std::string(33, 'x'))));
  EXPECT_THAT(s.message(), HasSubstr("'..'"));
}

TEST(ZipWriterTest, AcceptsNamesThatOnlyLookOdd) {
  ZipWriter w(kTime);
  for (std::string_view name : {"...", "..a", "a..", "a..b/c", ".hidden", "a/.b/c.csv", "tables/users.csv",
                                "with space.csv", "x:y.csv"})
    EXPECT_TRUE(w.Add(name, "").ok()) << name;
  auto parsed = ParseZip(w.Finish());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->size(), 9u);
}

TEST(ZipWriterTest, Utf8FlagOnlyForNonAsciiNames) {
  ZipWriter w(kTime);
  ASSERT_TRUE(w.Add("plain.csv", "").ok());
  ASSERT_TRUE(w.Add("\xc3\xa9.csv", "").ok());       // é.csv
  ASSERT_TRUE(w.Add("ascii~\x7f.csv", "").ok());     // DEL is still ASCII
  const std::string zip = w.Finish();
  auto parsed = ParseZip(zip);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[0].flags, 0);
  EXPECT_EQ((*parsed)[1].flags, 0x0800);
  EXPECT_EQ((*parsed)[2].flags, 0);
  // Without bit 11 zipfile would decode "é" as CP437 ("Ã©").
  TempDir dir;
  const std::string out = RunPython(R"(
import sys, zipfile
print([i.filename for i in zipfile.ZipFile(sys.argv[1]).infolist()][1] == "\u00e9.csv")
)", {SaveZip(dir, zip)});
  EXPECT_EQ(out, "True\n");
}

// ---- ZIP64 -------------------------------------------------------------------------------

TEST(ZipWriterTest, RefusesMoreThan65535Entries) {
  ZipWriter w(kTime);
  ZipWriter over(kTime, {.max_archive_bytes = uint64_t{1} << 40, .max_entries = 1 << 20});
  for (int i = 0; i < 65535; ++i) {
    const std::string name = absl::StrCat("t", absl::Dec(i, absl::kZeroPad5));
    ASSERT_TRUE(w.Add(name, "").ok()) << i;
    ASSERT_TRUE(over.Add(name, "").ok()) << i;
  }
  // Limits above the format's are the format's.
  EXPECT_THAT(over.Add("one-too-many.csv", "").message(), HasSubstr("the most without ZIP64"));
  EXPECT_EQ(over.entries(), 65535u);
  const uint64_t size = w.size();
  const absl::Status s = w.Add("one-too-many.csv", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("already holds 65535 entries, the most without ZIP64"));
  EXPECT_THAT(s.message(), HasSubstr("\"one-too-many.csv\""));
  EXPECT_EQ(w.entries(), 65535u);
  EXPECT_EQ(w.size(), size);
  const std::string zip = w.Finish();
  EXPECT_EQ(Le16(zip, zip.size() - 12), 65535);  // entries, in the end record
  auto parsed = ParseZip(zip);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->size(), 65535u);
  TempDir dir;
  EXPECT_EQ(RunPython("import sys, zipfile\nprint(len(zipfile.ZipFile(sys.argv[1]).infolist()))",
                      {SaveZip(dir, zip)}),
            "65535\n");
}

TEST(ZipWriterTest, LimitsCapEntriesAndBytes) {
  ZipWriter few(kTime, {.max_entries = 2});
  ASSERT_TRUE(few.Add("a", "").ok());
  ASSERT_TRUE(few.Add("b", "").ok());
  absl::Status s = few.Add("c", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("already holds 2 entries"));
  EXPECT_THAT(s.message(), Not(HasSubstr("ZIP64")));

  // One entry "a" of 10 bytes makes 22 + (30 + 1 + 10) + (46 + 1) = 110 bytes.
  ZipWriter exact(kTime, {.max_archive_bytes = 110});
  ASSERT_TRUE(exact.Add("a", std::string(10, 'z')).ok());
  EXPECT_EQ(exact.size(), 110u);
  s = exact.Add("b", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("would make the archive 188 bytes, more than 110"));
  EXPECT_EQ(exact.Finish().size(), 110u);

  ZipWriter under(kTime, {.max_archive_bytes = 109});
  s = under.Add("a", std::string(10, 'z'));
  EXPECT_THAT(s.message(), HasSubstr("would make the archive 110 bytes, more than 109"));
  EXPECT_EQ(under.entries(), 0u);

}

// Lowers RLIMIT_AS to what the process maps now plus `room`, for a scope: code that copied a
// 4 GiB entry would get bad_alloc (a failed test) rather than the machine's memory.
class AddressSpaceCap {
 public:
  explicit AddressSpaceCap(uint64_t room) {
    EXPECT_EQ(getrlimit(RLIMIT_AS, &old_), 0);
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0;
    statm >> pages;
    EXPECT_GT(pages, 0u);
    rlimit cap = old_;
    cap.rlim_cur = pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) + room;
    if (old_.rlim_cur != RLIM_INFINITY && cap.rlim_cur > old_.rlim_cur) cap.rlim_cur = old_.rlim_cur;
    EXPECT_EQ(setrlimit(RLIMIT_AS, &cap), 0) << std::strerror(errno);
  }
  ~AddressSpaceCap() { setrlimit(RLIMIT_AS, &old_); }

 private:
  rlimit old_{};
};

TEST(ZipWriterTest, RefusesEntriesAndArchivesOf4GiB) {
  // 4 GiB - 1 of readable zeros that take no memory: Add must refuse them by their size,
  // without reading or copying them.
  const size_t len = 0xFFFFFFFFu;
  void* p = mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED) << "mmap of 4 GiB of address space: " << std::strerror(errno);
  const std::string_view huge(static_cast<const char*>(p), len);
  {
    AddressSpaceCap cap(uint64_t{256} << 20);
    ZipWriter w(kTime);
    ASSERT_TRUE(w.Add("small.csv", "x").ok());
    const uint64_t size = w.size();

    absl::Status s = w.Add("huge.bin", huge);  // 0xFFFFFFFF bytes: the marker value
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr("its 4294967295 bytes need ZIP64"));
    EXPECT_THAT(s.message(), HasSubstr("\"huge.bin\""));

    s = w.Add("almost.bin", huge.substr(0, len - 1));  // fits its field, not the archive's
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr("would make the archive"));
    EXPECT_THAT(s.message(), HasSubstr("more than 4294967294 (ZIP64 is not written)"));
    EXPECT_THAT(s.message(), HasSubstr("\"almost.bin\""));

    // The largest entry that still fits, but for the name's bytes: one byte too many.
    const uint64_t room = ZipWriter::kMaxArchiveBytes - size - 30 - 46 - 2 * 5;
    s = w.Add("b.bin", huge.substr(0, room + 1));
    EXPECT_THAT(s.message(),
                HasSubstr(absl::StrCat("would make the archive ", ZipWriter::kMaxArchiveBytes + 1, " bytes")));
    EXPECT_EQ(w.entries(), 1u);
    EXPECT_EQ(w.size(), size);

    // Limits above the format's are the format's.
    ZipWriter over(kTime, {.max_archive_bytes = uint64_t{1} << 40, .max_entries = 1 << 20});
    s = over.Add("almost.bin", huge.substr(0, len - 1));
    EXPECT_THAT(s.message(), HasSubstr("more than 4294967294 (ZIP64 is not written)"));
    EXPECT_EQ(over.entries(), 0u);
  }
  munmap(p, len);
}

// ---- CSV ---------------------------------------------------------------------------------

TEST(CsvTest, PlainValuesAreWrittenAsTheyAre) {
  EXPECT_EQ(CsvField("abc"), "abc");
  EXPECT_EQ(CsvField("in side"), "in side");
  EXPECT_EQ(CsvField("42"), "42");
  EXPECT_EQ(CsvField("=1+1"), "=1+1");
}

TEST(CsvTest, CommasQuotesAndLineBreaksAreQuoted) {
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField(","), "\",\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("\""), "\"\"\"\"");
  EXPECT_EQ(CsvField("a\nb"), "\"a\nb\"");
  EXPECT_EQ(CsvField("a\rb"), "\"a\rb\"");
  EXPECT_EQ(CsvField("a\r\nb"), "\"a\r\nb\"");
}

TEST(CsvTest, LeadingAndTrailingSpaceIsQuoted) {
  EXPECT_EQ(CsvField(" lead"), "\" lead\"");
  EXPECT_EQ(CsvField("trail "), "\"trail \"");
  EXPECT_EQ(CsvField("\tlead"), "\"\tlead\"");
  EXPECT_EQ(CsvField("trail\t"), "\"trail\t\"");
  EXPECT_EQ(CsvField(" "), "\" \"");
}

TEST(CsvTest, NullIsEmptyAndEmptyIsQuoted) {
  EXPECT_EQ(CsvField(""), "\"\"");
  EXPECT_EQ(CsvRow({std::nullopt}), "\r\n");
  EXPECT_EQ(CsvRow({""}), "\"\"\r\n");
  EXPECT_EQ(CsvRow({"a", std::nullopt, "", "x,y", std::nullopt}), "a,,\"\",\"x,y\",\r\n");
  EXPECT_EQ(CsvRow({}), "\r\n");
}

TEST(CsvTest, Utf8PassesThrough) {
  EXPECT_EQ(CsvField("na\xc3\xafve"), "na\xc3\xafve");                                  // naïve
  // Zoë, 東京
  EXPECT_EQ(CsvField("Zo\xc3\xab, \xe6\x9d\xb1\xe4\xba\xac"), "\"Zo\xc3\xab, \xe6\x9d\xb1\xe4\xba\xac\"");
  EXPECT_EQ(CsvRow({"\xf0\x9f\x93\x84", "\xc3\xa9"}), "\xf0\x9f\x93\x84,\xc3\xa9\r\n");
}

TEST(CsvTest, RowsEndInCrlf) {
  EXPECT_EQ(CsvRow({"a", "b"}), "a,b\r\n");
  EXPECT_EQ(CsvRow({"a\r\n"}), "\"a\r\n\"\r\n");
}

// Python's csv module (RFC 4180 dialect "excel") reads every field back as it was written.
TEST(CsvTest, PythonCsvReadsTheFieldsBack) {
  const std::vector<std::vector<std::optional<std::string>>> rows = {
      {"id", "email", "note"},
      {"1", "carol@example.com", std::nullopt},
      {"2", "", "says \"hi\", then\r\nleaves"},
      {" lead", "trail ", "\ttab"},
      {"a\rb", "c\nd", "\""},
      {"Zo\xc3\xab, \xe6\x9d\xb1\xe4\xba\xac", "=1+1", ","},
  };
  std::string csv, expected;
  for (const auto& row : rows) {
    csv += CsvRow(row);
    std::vector<std::string> hex;
    for (const auto& f : row) hex.push_back(crypto::Hex(f.value_or("")));
    expected += absl::StrJoin(hex, " ") + "\n";
  }
  TempDir dir;
  const std::string path = dir.File("rows.csv");
  testing::WriteBytes(path, csv);
  EXPECT_EQ(RunPython(R"(
import csv, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    for row in csv.reader(f, strict=True):
        print(" ".join(v.encode("utf-8").hex() for v in row))
)",
                      {path}),
            expected);
}

}  // namespace
}  // namespace lethe::cli
