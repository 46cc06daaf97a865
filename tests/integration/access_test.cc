// Access requests end to end on real PostgreSQL and the Kafka protocol: the agents gather the
// subject's rows read-only, the parts travel sealed and chunked, lethed keeps them under the
// request key, the package is exported once and verifies offline; the key goes at export or
// at expiry.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "audit/access_package.h"
#include "base/clock.h"
#include "base/file_system.h"
#include "base/status.h"
#include "cli/zip_reader.h"
#include "cli/zip_writer.h"
#include "crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;
using JsonValue = nlohmann::json;

constexpr absl::Duration kWait = absl::Seconds(90);

std::string Q(Mesh& m, const std::string& db, const std::string& sql) {
  auto r = m.pg().Query(db, sql);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "";
}

absl::StatusOr<std::string> SubmitAccess(Mesh& mesh, const Person& p) {
  v1::SubmitRequest req = Mesh::ErasureOf(p, "subject asked for a copy");
  req.set_kind(v1::ACCESS);
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = mesh.Requests()->Submit(&ctx, req, &resp);
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return resp.request_id();
}

// Submits an access request for `p` and waits until it has COMPLETED; returns its id.
absl::StatusOr<std::string> AccessAndWait(Mesh& mesh, const Person& p) {
  LETHE_ASSIGN_OR_RETURN(std::string id, SubmitAccess(mesh, p));
  LETHE_ASSIGN_OR_RETURN(v1::RequestView done, mesh.WaitDone(id, kWait));
  if (done.state() != v1::COMPLETED)
    return absl::InternalError("access request " + id + " ended " + v1::RequestState_Name(done.state()));
  return id;
}

// The records of lethe.receipts, and how many of them are chunks of a part.
struct ReceiptsTopic {
  std::vector<kafka::Message> records;
  int chunks = 0;
};
absl::StatusOr<ReceiptsTopic> ReadReceipts(Mesh& mesh) {
  ReceiptsTopic out;
  LETHE_ASSIGN_OR_RETURN(out.records, ReadTopic(mesh.kafka_bootstrap(), "lethe.receipts"));
  for (const auto& r : out.records) out.chunks += r.value.value_or("").find("lethe.v1.AccessPartChunk") != std::string::npos;
  return out;
}

struct Exported {
  grpc::Status status;
  v1::ExportResponse resp;
};
Exported Export(Mesh& mesh, const std::string& id) {
  Exported out;
  v1::ExportRequest req;
  req.set_request_id(id);
  grpc::ClientContext ctx;
  out.status = mesh.Requests()->Export(&ctx, req, &out.resp);
  return out;
}

grpc::Status Confirm(Mesh& mesh, const std::string& id, const std::string& digest,
                     v1::ConfirmExportResponse* resp) {
  v1::ConfirmExportRequest req;
  req.set_request_id(id);
  req.set_package_sha256(digest);
  grpc::ClientContext ctx;
  return mesh.Requests()->ConfirmExport(&ctx, req, resp);
}

crypto::Ed25519PublicKey LethedKey(Mesh& mesh) { return crypto::Ed25519PublicKey::LoadFile(mesh.lethed_pub()).value(); }

const JsonValue* Table(const JsonValue& package, const std::string& domain, const std::string& table) {
  for (const auto& d : package["domains"])
    if (d["domain"] == domain)
      for (const auto& t : d["part"]["tables"])
        if (t["table"] == table) return &t;
  return nullptr;
}

// Every file under `dir`, read whole, holds none of `needles`.
void ExpectNoFileHolds(const std::string& dir, const std::vector<std::string>& needles) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    auto bytes = ReadFile(e.path().string());
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    for (const auto& n : needles) EXPECT_EQ(bytes->find(n), std::string::npos) << e.path() << " holds " << n;
  }
}

TEST(Access, GathersExactlyTheSubjectsRowsChangesNothingAndIsExportedOnce) {
  Mesh::Options o;
  o.domains = {"crm", "assessments"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  const int64_t crm_bob = *mesh.Rows("crm", kBob), crm_alice = *mesh.Rows("crm", kAlice);
  const int64_t as_bob = *mesh.Rows("assessments", kBob), as_alice = *mesh.Rows("assessments", kAlice);

  auto id = SubmitAccess(mesh, kBob);
  ASSERT_TRUE(id.ok()) << id.status();
  auto done = mesh.WaitDone(*id, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::COMPLETED);
  EXPECT_EQ(done->kind(), "access");
  ASSERT_EQ(done->domains_size(), 2);
  for (const auto& d : done->domains()) {
    EXPECT_EQ(d.state(), v1::DONE) << d.domain();
    EXPECT_EQ(d.part_sha256().size(), 64u) << d.domain();
    EXPECT_TRUE(d.tombstones().empty()) << d.domain();
    for (const auto& t : d.tables()) EXPECT_EQ(t.rows_affected(), 0) << t.table();
  }
  // A read: nothing changed, for either person.
  EXPECT_EQ(*mesh.Rows("crm", kBob), crm_bob);
  EXPECT_EQ(*mesh.Rows("crm", kAlice), crm_alice);
  EXPECT_EQ(*mesh.Rows("assessments", kBob), as_bob);
  EXPECT_EQ(*mesh.Rows("assessments", kAlice), as_alice);
  EXPECT_EQ(Q(mesh, "crm", "SELECT count(*) FROM lethe_agent.processed_commands"), "0");

  // No topic carries the part, or any value of the subject, in clear.
  auto receipts = ReadReceipts(mesh);
  ASSERT_TRUE(receipts.ok()) << receipts.status();
  for (const auto& r : receipts->records) {
    const std::string v = r.value.value_or("");
    for (const std::string& needle : {kBob.email, kBob.user_id, std::string("called"), std::string("10.1.2.3")})
      EXPECT_EQ(v.find(needle), std::string::npos) << "a record of lethe.receipts holds " << needle;
  }
  EXPECT_GE(receipts->chunks, 2) << "one chunk per domain at least";

  // The package: verified offline with lethed's key.
  Exported ex = Export(mesh, *id);
  ASSERT_TRUE(ex.status.ok()) << ex.status.error_message();
  EXPECT_EQ(crypto::Sha256(ex.resp.package()), ex.resp.package_sha256());
  auto report = audit::VerifyAccessPackage(ex.resp.package(), LethedKey(mesh));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->domains.size(), 2u);
  const JsonValue package = JsonValue::parse(ex.resp.package());
  // Exactly Bob's rows: his values are there, none of Alice's.
  EXPECT_THAT(ex.resp.package(), HasSubstr(kBob.email));
  EXPECT_THAT(ex.resp.package(), HasSubstr(kBob.user_id));
  EXPECT_THAT(ex.resp.package(), Not(HasSubstr(kAlice.email)));
  EXPECT_THAT(ex.resp.package(), Not(HasSubstr(kAlice.user_id)));
  const JsonValue* notes = Table(package, "crm", "crm.notes");
  const JsonValue* events = Table(package, "crm", "crm.events");
  const JsonValue* invoices = Table(package, "crm", "crm.invoices");
  const JsonValue* responses = Table(package, "assessments", "assessments.responses");
  ASSERT_TRUE(notes && events && invoices && responses);
  EXPECT_EQ((*notes)["rows"].size(), 2u);
  EXPECT_EQ((*events)["rows"].size(), 3u);
  EXPECT_EQ((*invoices)["rows"].size(), 2u);
  // retain: the basis and period, so the person learns why the rows are kept.
  EXPECT_EQ((*invoices)["action"], "retain");
  EXPECT_EQ((*invoices)["basis"], "Tax records (Art. 17(3)(b))");
  EXPECT_EQ((*invoices)["retention_period_seconds"], 7 * 365 * 86400);
  // anonymize: the columns rewritten on erasure, and only rows still keyed by the identity.
  EXPECT_EQ((*events)["action"], "anonymize");
  EXPECT_EQ((*events)["anonymized_columns"], JsonValue::array({"user_id", "ip", "country"}));
  for (const auto& row : (*events)["rows"]) EXPECT_EQ(row["user_id"], kBob.user_id);
  // The compacted topic and the subject's key on it.
  bool topic = false;
  for (const auto& d : package["domains"])
    if (d["domain"] == "crm")
      for (const auto& t : d["part"]["topics"])
        topic = topic || (t["topic"] == "mesh.crm.people" && t["keys"] == JsonValue::array({"person:" + kBob.email}));
  EXPECT_TRUE(topic) << "the part lists the subject's key on mesh.crm.people";

  // The part is held encrypted under the request key until the export is confirmed.
  const std::string parts_dir = mesh.data_dir() + "/parts/" + *id;
  ASSERT_TRUE(std::filesystem::exists(parts_dir + "/crm.part"));
  ExpectNoFileHolds(mesh.data_dir(), {kBob.email, kBob.user_id, "10.1.2.3"});

  // Only a digest lethed handed out releases it.
  v1::ConfirmExportResponse released;
  grpc::Status wrong = Confirm(mesh, *id, crypto::Sha256("another package"), &released);
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(std::filesystem::exists(parts_dir + "/crm.part"));
  grpc::Status ok = Confirm(mesh, *id, ex.resp.package_sha256(), &released);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_GT(released.released_entry(), done->completed_entry());
  EXPECT_FALSE(std::filesystem::exists(parts_dir));
  EXPECT_FALSE(mesh.lethed().manager().OpenParts(*id).ok());

  // Once: the next export says when and how it went.
  Exported again = Export(mesh, *id);
  EXPECT_EQ(again.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(again.status.error_message(), HasSubstr("was exported at"));
  EXPECT_THAT(again.status.error_message(), HasSubstr("key destroyed"));
  auto view = mesh.WaitDone(*id, kWait);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->package_release(), "exported");
  EXPECT_EQ(view->package_released_entry(), released.released_entry());

  // The ledger still verifies, by both roles' tools, with the release in it.
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("1 package(s) exported"));
  ExpectNoFileHolds(mesh.data_dir(), {kBob.email, kBob.user_id, "10.1.2.3"});
}

TEST(Access, APartOverTheBrokersMessageSizeArrivesWholeInChunks) {
  Mesh::Options o;
  o.domains = {"crm"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  // 3 MB of notes: three times librdkafka's default message.max.bytes.
  ASSERT_TRUE(mesh.pg()
                  .Exec("crm", "INSERT INTO crm.notes (person_email, note) SELECT '" + kBob.email +
                                   "', repeat(md5(i::text), 32768) FROM generate_series(1, 3) AS i")
                  .ok());
  auto id = SubmitAccess(mesh, kBob);
  ASSERT_TRUE(id.ok()) << id.status();
  auto done = mesh.WaitDone(*id, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::COMPLETED);
  EXPECT_GT(done->domains(0).part_size(), 3'000'000u);
  Exported ex = Export(mesh, *id);
  ASSERT_TRUE(ex.status.ok()) << ex.status.error_message();
  auto report = audit::VerifyAccessPackage(ex.resp.package(), LethedKey(mesh));
  ASSERT_TRUE(report.ok()) << report.status();
  const JsonValue package = JsonValue::parse(ex.resp.package());
  const JsonValue* notes = Table(package, "crm", "crm.notes");
  ASSERT_NE(notes, nullptr);
  EXPECT_EQ((*notes)["rows"].size(), 5u);
  size_t longest = 0;
  for (const auto& row : (*notes)["rows"]) longest = std::max(longest, row["note"].get<std::string>().size());
  EXPECT_EQ(longest, 32u * 32768u);
  auto receipts = ReadReceipts(mesh);
  ASSERT_TRUE(receipts.ok()) << receipts.status();
  EXPECT_GE(receipts->chunks, 6) << "3 MB in chunks of 512 KiB";
}

TEST(Access, ATamperedPackageFailsVerification) {
  Mesh::Options o;
  o.domains = {"crm"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  auto id = AccessAndWait(mesh, kBob);
  ASSERT_TRUE(id.ok()) << id.status();
  Exported ex = Export(mesh, *id);
  ASSERT_TRUE(ex.status.ok()) << ex.status.error_message();
  const auto key = LethedKey(mesh);
  ASSERT_TRUE(audit::VerifyAccessPackage(ex.resp.package(), key).ok());
  auto tamper = [&](const std::function<void(JsonValue&)>& change) {
    JsonValue doc = JsonValue::parse(ex.resp.package());
    change(doc);
    return audit::VerifyAccessPackage(doc.dump(2), key).status();
  };
  // One value of one row.
  absl::Status value = tamper([](JsonValue& d) { d["domains"][0]["part"]["tables"][0]["rows"][0]["note"] = "edited"; });
  EXPECT_TRUE(absl::IsDataLoss(value)) << value;
  EXPECT_THAT(std::string(value.message()), HasSubstr("not the one its agent signed"));
  // A row left out.
  absl::Status row = tamper([](JsonValue& d) { d["domains"][0]["part"]["tables"][0]["rows"].erase(0); });
  EXPECT_TRUE(absl::IsDataLoss(row)) << row;
  // A part dropped, a domain added.
  absl::Status dropped = tamper([](JsonValue& d) { d["domains"][0].erase("part"); });
  EXPECT_TRUE(absl::IsDataLoss(dropped)) << dropped;
  EXPECT_THAT(std::string(dropped.message()), HasSubstr("lacks the part of domain crm"));
  absl::Status extra =
      tamper([](JsonValue& d) { d["domains"].push_back({{"domain", "extra"}, {"outcome", "COMPLETED"}}); });
  EXPECT_THAT(std::string(extra.message()), HasSubstr("which the certificate does not target"));
  // The certificate swapped for garbage.
  EXPECT_FALSE(tamper([](JsonValue& d) { d["manifest"]["certificate"] = "AAAA"; }).ok());
  // ... or for a valid certificate of an erasure (which has no parts to vouch for).
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  auto erased = mesh.EraseAndWait(kAlice, kWait);
  ASSERT_TRUE(erased.ok()) << erased.status();
  v1::GetCertificateRequest creq;
  creq.set_request_id(erased->request_id());
  v1::ErasureCertificate erasure_cert;
  grpc::ClientContext cctx;
  ASSERT_TRUE(mesh.LedgerStub()->GetCertificate(&cctx, creq, &erasure_cert).ok());
  absl::Status swapped = tamper([&](JsonValue& d) {
    d["manifest"]["certificate"] = crypto::Base64(erasure_cert.SerializeAsString());
    d["request_id"] = erased->request_id();
  });
  EXPECT_TRUE(absl::IsInvalidArgument(swapped)) << swapped;
  EXPECT_THAT(std::string(swapped.message()), HasSubstr("an erasure's"));
  // The real document still verifies: the failures above are the tampering's.
  EXPECT_TRUE(audit::VerifyAccessPackage(ex.resp.package(), key).ok());
}

TEST(Access, AnUnexportedPackageIsDestroyedAtItsDueDatePlusRetention) {
  ManualClock clock(absl::Now());
  Mesh::Options o;
  o.domains = {"crm"};
  o.lethed_options = [&](controlplane::LethedOptions& lo) { lo.clock = &clock; };
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  auto id = AccessAndWait(mesh, kBob);
  ASSERT_TRUE(id.ok()) << id.status();
  const std::string parts_dir = mesh.data_dir() + "/parts/" + *id;
  ASSERT_TRUE(std::filesystem::exists(parts_dir));
  // The sample deadlines: due in 30 days, kept 30 more. A day short, nothing happens.
  clock.Advance(absl::Hours(24 * 59));
  ASSERT_TRUE(mesh.lethed().manager().ReleaseExpired().ok());
  EXPECT_TRUE(std::filesystem::exists(parts_dir));
  EXPECT_TRUE(mesh.lethed().manager().OpenParts(*id).ok());
  clock.Advance(absl::Hours(24 * 2));
  ASSERT_TRUE(mesh.lethed().manager().ReleaseExpired().ok());
  EXPECT_FALSE(std::filesystem::exists(parts_dir));
  Exported ex = Export(mesh, *id);
  EXPECT_EQ(ex.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(ex.status.error_message(), HasSubstr("left unexported past its retention"));
  auto view = mesh.WaitDone(*id, kWait);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->package_release(), "expired");
  auto verify = RunLethectl(mesh, {"ledger", "verify", "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("1 expired"));
}

TEST(Access, TheCliRequestsExportsAsCsvZipAndVerifiesOffline) {
  Mesh::Options o;
  o.domains = {"crm"};
  auto m = Mesh::Start(o);
  ASSERT_TRUE(m.ok()) << m.status();
  Mesh& mesh = **m;
  ASSERT_TRUE(mesh.Plant(kAlice).ok());
  ASSERT_TRUE(mesh.Plant(kBob).ok());
  auto submitted = RunLethectl(mesh, {"request", "access", "--identity", "email=" + kBob.email, "--identity",
                                      "user_id=" + kBob.user_id, "--wait", "--timeout", "90s"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  auto listed = RunLethectl(mesh, {"request", "list", "--kind", "access", "-o", "json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  const JsonValue list = JsonValue::parse(listed.output);
  ASSERT_EQ(list["requests"].size(), 1u);
  const std::string id = list["requests"][0]["request_id"];
  EXPECT_EQ(RunLethectl(mesh, {"request", "list", "--kind", "erasure", "-o", "json"}).output.find(id),
            std::string::npos);
  auto get = RunLethectl(mesh, {"request", "get", id});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("crm.notes 2 row(s) exported"));
  EXPECT_THAT(get.output, HasSubstr("package held until exported"));
  EXPECT_THAT(get.output, HasSubstr("or destroyed unexported at "));

  const std::string zip = mesh.work_dir() + "/bob.zip";
  auto exported = RunLethectl(mesh, {"request", "export", id, "--out", zip, "--format", "csv-zip", "--public-key",
                                     mesh.lethed_pub()});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_THAT(exported.output, HasSubstr("lethed destroyed its copy"));
  EXPECT_EQ(std::filesystem::status(zip).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto verified = Lethectl({"request", "export", "--verify", zip, "--public-key", mesh.lethed_pub()});
  ASSERT_EQ(verified.exit_code, 0) << verified.output;
  EXPECT_THAT(verified.output, HasSubstr("package: VALID"));
  auto bytes = ReadFile(zip);
  ASSERT_TRUE(bytes.ok());
  EXPECT_THAT(*bytes, HasSubstr("csv/crm/crm.notes.csv"));
  EXPECT_THAT(*bytes, HasSubstr("person_email,note"));
  EXPECT_THAT(*bytes, Not(HasSubstr(kAlice.email)));

  // One byte of a CSV changed: its CRC no longer matches; with the CRC fixed up, the CSV is
  // no longer the one package.json gives. Either way: INVALID.
  std::string edited = *bytes;
  const size_t at = edited.find(kBob.email + ",called");
  ASSERT_NE(at, std::string::npos);
  edited[at + kBob.email.size() + 1] = 'C';
  const std::string bad = mesh.work_dir() + "/bad.zip";
  ASSERT_TRUE(WriteFileAtomic(bad, edited, 0600).ok());
  auto rejected = Lethectl({"request", "export", "--verify", bad, "--public-key", mesh.lethed_pub()});
  EXPECT_NE(rejected.exit_code, 0) << rejected.output;
  EXPECT_THAT(rejected.output, HasSubstr("CRC-32"));
  // The same edit in a well-formed archive: the CSV is not the one package.json gives.
  auto entries = cli::ReadZip(*bytes);
  ASSERT_TRUE(entries.ok()) << entries.status();
  cli::ZipWriter rewritten(absl::Now());
  for (auto& e : *entries) {
    if (e.name == "csv/crm/crm.notes.csv") {
      const size_t n = e.data.find(",called");
      ASSERT_NE(n, std::string::npos);
      e.data[n + 1] = 'C';
    }
    ASSERT_TRUE(rewritten.Add(e.name, e.data).ok());
  }
  ASSERT_TRUE(WriteFileAtomic(bad, rewritten.Finish(), 0600).ok());
  rejected = Lethectl({"request", "export", "--verify", bad, "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(rejected.exit_code, 1) << rejected.output;
  EXPECT_THAT(rejected.output, HasSubstr("not the ones its package.json gives"));

  // Exported once: the second export fails and says why, and writes nothing.
  const std::string again = mesh.work_dir() + "/again.json";
  auto second = RunLethectl(mesh, {"request", "export", id, "--out", again, "--public-key", mesh.lethed_pub()});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.output, HasSubstr("was exported at"));
  EXPECT_FALSE(std::filesystem::exists(again));
}

}  // namespace
}  // namespace lethe::testing
