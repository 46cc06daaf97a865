// The S3 side of an erasure on a real S3 API server (s3rver, tests/support/s3rver.h): the
// client's signed calls and canonical URLs (s3::Client), the eraser's work per bucket entry
// (agents::S3Eraser: objects under the subject's prefixes, the subject's lines in JSON-lines
// objects, retain), its checks before anything is deleted, and a PostgresPurger command whose
// receipt carries the buckets, on a real PostgreSQL.
#include <filesystem>
#include <fstream>
#include <memory>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <vector>

#include "agents/postgres_purger.h"
#include "agents/s3_eraser.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policies/policy.h"
#include "s3/client.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/s3rver.h"

namespace lethe {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using testing::S3rver;

s3::Credentials S3rverCredentials() {
  s3::Credentials c;
  c.access_key_id = S3rver::kAccessKeyId;
  c.secret_access_key = SecretBytes(S3rver::kSecretAccessKey);
  return c;
}

std::unique_ptr<s3::Client> ClientFor(const S3rver& server, int page_size = 0, size_t max_listed = 1'000'000) {
  s3::ClientOptions o;
  o.endpoint = server.endpoint();
  o.region = "us-east-1";
  o.list_page_size = page_size;
  o.max_listed = max_listed;
  return std::make_unique<s3::Client>(o, [] { return absl::StatusOr<s3::Credentials>(S3rverCredentials()); });
}

std::vector<std::string> Keys(const std::vector<s3::ObjectEntry>& objects) {
  std::vector<std::string> keys;
  for (const auto& o : objects) keys.push_back(o.key);
  return keys;
}

// Every byte s3rver keeps on disk, for "is it physically gone" checks.
std::string EverythingOnDisk(const std::string& dir) {
  std::string all;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    all += ss.str();
  }
  return all;
}

TEST(S3Client, CanonicalUrlsEncodeAsSigV4Wants) {
  EXPECT_EQ(s3::CanonicalPath("users/a b/{x}+y=é~._-"), "users/a%20b/%7Bx%7D%2By%3D%C3%A9~._-");
  EXPECT_EQ(s3::CanonicalQuery({{"prefix", "dir/{t}"}, {"list-type", "2"}, {"versions", ""}}),
            "list-type=2&prefix=dir%2F%7Bt%7D&versions=");
}

TEST(S3Client, ReadsTheSharedCredentialsFileFormat) {
  auto c = s3::ParseCredentialsFile(
      "# comment\n[other]\naws_access_key_id = NOPE\n[default]\naws_access_key_id = AKID\n"
      "aws_secret_access_key=SECRET \naws_session_token = TOKEN\n",
      "default");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "AKID");
  EXPECT_EQ(RevealSecret(c->secret_access_key), "SECRET");
  EXPECT_EQ(RevealSecret(c->session_token), "TOKEN");
  auto missing = s3::ParseCredentialsFile("[default]\naws_access_key_id = AKID\n", "default");
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), Not(HasSubstr("AKID")));
  EXPECT_TRUE(absl::IsNotFound(s3::ParseCredentialsFile("[a]\n", "default").status()));
  auto file = s3::CredentialsFromFile("/nonexistent/creds", "default");
  EXPECT_THAT(file.status().message(), HasSubstr("/nonexistent/creds"));
}

TEST(S3Client, PutsListsGetsAndDeletesOnS3rver) {
  auto server = S3rver::Start({"b1"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = ClientFor(**server, /*page_size=*/2);  // several pages
  const std::vector<std::string> keys = {"users/a b/{x}+y=é.txt", "users/a b/2", "users/a b/3",
                                         "users/a b/4", "users/a bc/5"};
  for (const auto& k : keys) {
    auto etag = client->PutIfMatch("b1", k, "body of " + k, "", "text/plain");
    ASSERT_TRUE(etag.ok()) << etag.status();
    EXPECT_EQ(etag->front(), '"');
  }
  auto listed = client->List("b1", "users/a b/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(Keys(*listed), UnorderedElementsAre(keys[0], keys[1], keys[2], keys[3]));
  auto got = client->Get("b1", keys[0], "", 1024);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->data, "body of " + keys[0]);
  EXPECT_EQ(got->content_type, "text/plain");
  EXPECT_TRUE(absl::IsResourceExhausted(client->Get("b1", keys[0], "", 4).status()));
  ASSERT_TRUE(client->Delete("b1", keys[0], "").ok());
  EXPECT_TRUE(client->Delete("b1", keys[0], "").ok()) << "deleting what is gone succeeds";
  EXPECT_TRUE(absl::IsNotFound(client->Get("b1", keys[0], "", 1024).status()));
  auto after = client->List("b1", "users/");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), 4u);
}

TEST(S3Client, TellsWhatTheServerLacksAndRefuses) {
  auto server = S3rver::Start({"b1"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = ClientFor(**server);
  // s3rver answers GET ?versioning with an object listing: no versioning at all.
  auto v = client->GetVersioning("b1");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, s3::Versioning::kUnsupported);
  auto missing = client->List("no-such-bucket", "");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("no-such-bucket does not exist"));
  s3::ClientOptions o;
  o.endpoint = (*server)->endpoint();
  o.region = "us-east-1";
  s3::Client stranger(o, [] {
    s3::Credentials c;
    c.access_key_id = "NOPE";
    c.secret_access_key = SecretBytes("x");
    return absl::StatusOr<s3::Credentials>(std::move(c));
  });
  EXPECT_TRUE(absl::IsPermissionDenied(stranger.List("b1", "").status()));
}

constexpr char kS3Policy[] = R"yaml(
version: 1
name: s3-test
identities:
  - {name: email, normalize: [trim, lowercase]}
  - user_id
domains:
  - name: growth
    postgres:
      tables:
        - table: growth.contacts
          key: email
          identity: email
          action: delete
    s3:
      endpoint: ENDPOINT
      region: us-east-1
      buckets:
        - bucket: exports
          objects: "users/{user_id}/"
          action: delete
        - bucket: events
          jsonl: "events/"
          field: email
          identity: email
          action: delete
        - bucket: archive
          objects: "invoices/{user_id}/"
          action: retain
          basis: "Tax records (Art. 17(3)(b))"
          period: 7y
)yaml";

policies::Policy PolicyFor(const S3rver& server, const std::string& extra_bucket = "") {
  std::string yaml = kS3Policy;
  yaml.replace(yaml.find("ENDPOINT"), 8, server.endpoint());
  if (!extra_bucket.empty())
    yaml += "        - bucket: " + extra_bucket + "\n          objects: \"x/{user_id}/\"\n          action: delete\n";
  auto p = policies::Policy::Parse(yaml, "s3-test.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

agents::OpenedIdentities Alice() {
  agents::OpenedIdentities ids;
  ids.Add("email", SecretBytes("alice@example.com"));
  ids.Add("user_id", SecretBytes("42"));
  return ids;
}

// Alice (user 42) and her neighbours in every bucket: user 420 and user 4, whose prefixes
// share her digits, and Bob's lines beside hers.
void Seed(s3::Client& c) {
  for (const auto& [bucket, key, body] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"exports", "users/42/profile.json", "{\"email\":\"alice@example.com\"}"},
           {"exports", "users/42/2026/export.csv", "alice@example.com,42\n"},
           {"exports", "users/420/profile.json", "{\"email\":\"carol@example.com\"}"},
           {"exports", "users/4/profile.json", "{\"email\":\"dan@example.com\"}"},
           {"events", "events/2026-01.jsonl",
            "{\"email\":\"bob@example.com\",\"n\":1}\n"
            "{\"email\":\"Alice@Example.com\",\"n\":2}\n"
            "\n"
            "{\"n\":3,\"nested\":{\"email\":\"alice@example.com\"}}\n"
            "not json at all\n"
            "{\"email\":\"alice@example.com\",\"n\":4}"},
           {"events", "events/2026-02.jsonl", "{\"email\":\"bob@example.com\",\"n\":5}\n"},
           {"events", "other/2026-01.jsonl", "{\"email\":\"alice@example.com\",\"n\":6}\n"},
           {"archive", "invoices/42/inv-1.pdf", "alice's invoice"},
           {"archive", "invoices/42/inv-2.pdf", "alice's invoice"},
       }) {
    ASSERT_TRUE(c.PutIfMatch(bucket, key, body, "", "").ok());
  }
}

TEST(S3Eraser, ErasesTheSubjectsObjectsAndLinesAndNothingElse) {
  auto server = S3rver::Start({"exports", "events", "archive"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto seed = ClientFor(**server);
  Seed(*seed);
  const policies::Policy policy = PolicyFor(**server);
  agents::S3Eraser eraser(policy.FindDomain("growth")->s3, ClientFor(**server, 2));
  auto erased = eraser.Erase(Alice());
  ASSERT_TRUE(erased.ok()) << erased.status();
  ASSERT_EQ(erased->failure, "");
  ASSERT_EQ(erased->buckets.size(), 3u);

  const v1::S3Result& exports = erased->buckets[0];
  EXPECT_EQ(exports.bucket(), "exports");
  EXPECT_EQ(exports.kind(), "objects");
  EXPECT_EQ(exports.action(), "delete");
  EXPECT_FALSE(exports.versioned());
  EXPECT_EQ(exports.objects_deleted(), 2);
  EXPECT_EQ(exports.objects_remaining(), 0);
  EXPECT_GT(exports.physically_gone_by_unix_ms(), 0);
  EXPECT_THAT(Keys(*seed->List("exports", "")), UnorderedElementsAre("users/420/profile.json", "users/4/profile.json"));

  const v1::S3Result& events = erased->buckets[1];
  EXPECT_EQ(events.kind(), "jsonl");
  EXPECT_EQ(events.objects_rewritten(), 1);
  EXPECT_EQ(events.lines_removed(), 2) << "both spellings: email is case-insensitive";
  EXPECT_EQ(events.lines_remaining(), 0);
  EXPECT_EQ(events.objects_remaining(), 0);
  EXPECT_EQ(events.lines_unreadable(), 1);
  auto jan = seed->Get("events", "events/2026-01.jsonl", "", 1 << 20);
  ASSERT_TRUE(jan.ok());
  EXPECT_EQ(jan->data,
            "{\"email\":\"bob@example.com\",\"n\":1}\n\n{\"n\":3,\"nested\":{\"email\":\"alice@example.com\"}}\n"
            "not json at all\n");
  EXPECT_EQ(seed->Get("events", "events/2026-02.jsonl", "", 1 << 20)->data, "{\"email\":\"bob@example.com\",\"n\":5}\n");
  EXPECT_THAT(seed->Get("events", "other/2026-01.jsonl", "", 1 << 20)->data, HasSubstr("alice"))
      << "outside the prefix: not the policy's";

  const v1::S3Result& archive = erased->buckets[2];
  EXPECT_EQ(archive.action(), "retain");
  EXPECT_EQ(archive.objects_withheld(), 2);
  EXPECT_EQ(archive.physically_gone_by_unix_ms(), 0) << "retained: not erased";
  EXPECT_EQ(archive.objects_deleted(), 0);
  EXPECT_EQ(archive.basis(), "Tax records (Art. 17(3)(b))");
  EXPECT_EQ(archive.retention_period_seconds(), 7 * 365 * 86400);
  EXPECT_EQ(seed->List("archive", "")->size(), 2u);

  // On s3rver's disk, the deleted objects and removed lines are gone (no versions to keep them).
  const std::string disk = EverythingOnDisk((*server)->data_dir() + "/exports");
  EXPECT_THAT(disk, Not(HasSubstr("alice@example.com")));
  EXPECT_THAT(EverythingOnDisk((*server)->data_dir() + "/events/events"), Not(HasSubstr("\"n\":4")));

  // Again: nothing left to do, and it says so.
  auto again = eraser.Erase(Alice());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->buckets[0].objects_deleted(), 0);
  EXPECT_EQ(again->buckets[1].lines_removed(), 0);
  EXPECT_EQ(again->buckets[1].lines_remaining(), 0);
}

TEST(S3Eraser, AMissingBucketFailsTheCommandBeforeAnythingIsDeleted) {
  auto server = S3rver::Start({"exports", "events", "archive"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto seed = ClientFor(**server);
  Seed(*seed);
  const policies::Policy policy = PolicyFor(**server, "gone-bucket");
  agents::S3Eraser eraser(policy.FindDomain("growth")->s3, ClientFor(**server));
  auto erased = eraser.Erase(Alice());
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->failure, "S3 bucket gone-bucket does not exist");
  EXPECT_EQ(seed->List("exports", "users/42/")->size(), 2u);
  EXPECT_THAT(seed->Get("events", "events/2026-01.jsonl", "", 1 << 20)->data, HasSubstr("\"n\":4"));
}

TEST(S3Eraser, AJsonlObjectOverTheLimitFailsTheCommandBeforeAnythingIsDeleted) {
  auto server = S3rver::Start({"exports", "events", "archive"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto seed = ClientFor(**server);
  Seed(*seed);
  const policies::Policy policy = PolicyFor(**server);
  agents::S3EraserOptions small;
  small.max_object_bytes = 100;
  agents::S3Eraser eraser(policy.FindDomain("growth")->s3, ClientFor(**server), small);
  auto erased = eraser.Erase(Alice());
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_THAT(erased->failure, HasSubstr("over the agent's limit of 100"));
  EXPECT_THAT(erased->failure, Not(HasSubstr("2026-01"))) << "no object key in a receipt";
  EXPECT_EQ(seed->List("exports", "users/42/")->size(), 2u);
}

TEST(S3Eraser, AListingOverTheClientsBoundFailsTheCommandBeforeAnythingIsDeleted) {
  auto server = S3rver::Start({"exports", "events", "archive"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto seed = ClientFor(**server);
  Seed(*seed);
  const policies::Policy policy = PolicyFor(**server);
  // events/ holds two objects: one more than this client may list.
  agents::S3Eraser eraser(policy.FindDomain("growth")->s3, ClientFor(**server, 1, 1));
  auto erased = eraser.Erase(Alice());
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->failure, "S3 ListObjectsV2 in bucket events: more than 1 objects under one prefix");
  EXPECT_EQ(seed->List("exports", "users/42/")->size(), 2u);
}

TEST(S3Eraser, ACommandWithoutTheBucketsIdentityFails) {
  auto server = S3rver::Start({"exports", "events", "archive"});
  ASSERT_TRUE(server.ok()) << server.status();
  const policies::Policy policy = PolicyFor(**server);
  agents::S3Eraser eraser(policy.FindDomain("growth")->s3, ClientFor(**server));
  agents::OpenedIdentities email_only;
  email_only.Add("email", SecretBytes("alice@example.com"));
  auto erased = eraser.Erase(email_only);
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_THAT(erased->failure, HasSubstr("no user_id identity"));
}

TEST(S3Eraser, AnUnreachableServerIsRetriedNotFailed) {
  auto server = S3rver::Start({"exports"});
  ASSERT_TRUE(server.ok()) << server.status();
  const policies::Policy policy = PolicyFor(**server);
  const std::string endpoint = (*server)->endpoint();
  server->reset();  // stopped: connection refused
  s3::ClientOptions o;
  o.endpoint = endpoint;
  o.region = "us-east-1";
  agents::S3Eraser eraser(policy.FindDomain("growth")->s3,
                          std::make_unique<s3::Client>(o, [] { return absl::StatusOr<s3::Credentials>(S3rverCredentials()); }));
  auto erased = eraser.Erase(Alice());
  EXPECT_TRUE(absl::IsUnavailable(erased.status())) << erased.status();
}

TEST(S3Jsonl, ScansLinesByFieldWithTheBucketsComparison) {
  const std::string object =
      "{\"email\":\"A@x.io\"}\n{\"email\":\" a@x.io \"}\r\n{\"id\":42}\n{\"id\":\"42\"}\n[1]\n\n"
      "{\"email\":null,\"id\":1.5,\"ok\":true}\n{\"email\":";
  auto exact = agents::ScanJsonl(object, "email", {"a@x.io"}, policies::Match::kExact);
  EXPECT_EQ(exact.matched, 0);
  EXPECT_EQ(exact.near_match, 2);
  EXPECT_EQ(exact.unreadable, 2) << "[1] and the cut-off last line";
  EXPECT_EQ(exact.kept, object);
  auto folded = agents::ScanJsonl(object, "email", {"a@x.io"}, policies::Match::kCaseInsensitive);
  EXPECT_EQ(folded.matched, 1);
  EXPECT_EQ(folded.near_match, 1);
  auto ids = agents::ScanJsonl(object, "id", {"42"}, policies::Match::kExact);
  EXPECT_EQ(ids.matched, 2) << "an integer by its decimal form, and a string";
  EXPECT_EQ(ids.kept.find("42"), std::string::npos);
}

}  // namespace
}  // namespace lethe
