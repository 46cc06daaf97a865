// ReadZip (cli/zip_reader.h): what `request export --verify` reads a csv-zip package with. It
// reads back whatever ZipWriter writes and refuses, naming the problem, every archive that is
// damaged or is not one ZipWriter's kind of archive.
#include "cli/zip_reader.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cli/zip_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lethe::cli {
namespace {

using ::testing::HasSubstr;

std::string Archive(const std::vector<std::pair<std::string, std::string>>& entries) {
  ZipWriter w(absl::FromUnixSeconds(1'795'608'000));
  for (const auto& [name, data] : entries) EXPECT_TRUE(w.Add(name, data).ok()) << name;
  return w.Finish();
}

std::string AllBytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

TEST(ReadZip, ReadsBackWhatZipWriterWroteInOrder) {
  const std::vector<std::pair<std::string, std::string>> in = {
      {"package.json", "{\"format\":\"lethe.access-package/1\"}"},
      {"csv/growth/growth.contacts.csv", "email,name\r\nbob@example.com,Bob\r\n"},
      {"empty", ""},
      {"bytes", AllBytes()}};
  auto out = ReadZip(Archive(in));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ((*out)[i].name, in[i].first);
    EXPECT_EQ((*out)[i].data, in[i].second);
  }
  auto empty = ReadZip(Archive({}));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
}

TEST(ReadZip, AChangedDataByteFailsItsCrc) {
  std::string a = Archive({{"a.csv", "bob@example.com,called\r\n"}});
  const size_t at = a.find("called");
  ASSERT_NE(at, std::string::npos);
  a[at] = 'C';
  auto r = ReadZip(a);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("CRC-32"));
}

TEST(ReadZip, EveryTruncationIsRefusedAndNoneCrashes) {
  const std::string a = Archive({{"a", "alpha"}, {"b", "beta"}});
  for (size_t n = 0; n < a.size(); ++n) EXPECT_FALSE(ReadZip(a.substr(0, n)).ok()) << "prefix of " << n;
}

TEST(ReadZip, RefusesWhatZipWriterNeverWrites) {
  const std::string a = Archive({{"a1", "alpha"}, {"a2", "beta"}});
  // A compressed entry: method 8 in both headers.
  {
    std::string b = a;
    b[8] = 8;  // local header of the first entry
    const size_t cd = b.find(std::string("PK\x01\x02", 4));
    ASSERT_NE(cd, std::string::npos);
    b[cd + 10] = 8;
    auto r = ReadZip(b);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("compressed"));
  }
  // Two entries of one name.
  {
    std::string b = a;
    for (size_t at = b.find("a2"); at != std::string::npos; at = b.find("a2", at + 1)) b[at + 1] = '1';
    auto r = ReadZip(b);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("repeated name"));
  }
  // A central directory that points past the archive.
  {
    std::string b = a;
    const size_t end = b.size() - 22;
    b[end + 16] = '\xff';
    b[end + 17] = '\xff';
    EXPECT_FALSE(ReadZip(b).ok());
  }
  // Local header and central directory disagree on the size.
  {
    std::string b = a;
    b[18] = static_cast<char>(b[18] + 1);  // compressed size in the first local header
    auto r = ReadZip(b);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("disagrees"));
  }
  // An entry whose sizes (agreeing in both headers) run into the central directory.
  {
    std::string b = Archive({{"a", "alpha"}});
    b[18] = b[22] = static_cast<char>(b[18] + 10);  // local: compressed and uncompressed size
    const size_t cd = b.find(std::string("PK\x01\x02", 4));
    ASSERT_NE(cd, std::string::npos);
    b[cd + 20] = b[cd + 24] = static_cast<char>(b[cd + 20] + 10);
    auto r = ReadZip(b);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("runs past the archive"));
  }
  EXPECT_FALSE(ReadZip("not a zip at all, not even close to one").ok());
}

}  // namespace
}  // namespace lethe::cli
