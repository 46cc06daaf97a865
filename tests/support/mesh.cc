#include "tests/support/mesh.h"

#include "base/file_system.h"
#include "gtest/gtest.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "base/status.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"
#include "crypto/x509.h"
#include "tests/support/subprocess.h"

namespace lethe::testing {
namespace fs = std::filesystem;
namespace {

struct DomainFixture {
  std::string policy;
  std::string ddl;
  std::string plant;   // $U = user_id, $E = email
  std::string count;   // one number: the person's rows over all tables
};

constexpr char kCrmDdl[] =
    "CREATE SCHEMA crm;"
    "CREATE TABLE crm.people (email text PRIMARY KEY, name text);"
    "CREATE TABLE crm.notes (id serial PRIMARY KEY, person_email text NOT NULL "
    "  REFERENCES crm.people(email), note text);"
    "CREATE TABLE crm.events (id serial PRIMARY KEY, user_id text, ip text, country text, kind text);"
    "CREATE TABLE crm.invoices (id serial PRIMARY KEY, email text NOT NULL, cents int);";
constexpr char kCrmPlant[] =
    "INSERT INTO crm.people VALUES ('$E', 'someone');"
    "INSERT INTO crm.notes (person_email, note) VALUES ('$E', 'called'), ('$E', 'wrote');"
    "INSERT INTO crm.events (user_id, ip, country, kind) VALUES "
    "  ('$U', '10.1.2.3', 'NL', 'login'), ('$U', '10.1.2.4', 'NL', 'view'), ('$U', '10.1.2.5', 'BE', 'buy');"
    "INSERT INTO crm.invoices (email, cents) VALUES ('$E', 1000), ('$E', 2500);";
// Rows that still identify the person directly (retained invoices included).
constexpr char kCrmCount[] =
    "SELECT (SELECT count(*) FROM crm.people WHERE email = '$E') + "
    "(SELECT count(*) FROM crm.notes WHERE person_email = '$E') + "
    "(SELECT count(*) FROM crm.events WHERE user_id = '$U') + "
    "(SELECT count(*) FROM crm.invoices WHERE email = '$E')";

const std::map<std::string, DomainFixture>& Fixtures() {
  static const auto* fixtures = [] {
  auto* m = new std::map<std::string, DomainFixture>{
      {"assessments",
       {R"(  - name: assessments
    postgres:
      tables:
        - table: assessments.responses
          key: user_id
          identity: user_id
          action: delete
        - table: assessments.scores
          key: user_id
          identity: user_id
          action: delete
)",
        "CREATE SCHEMA assessments;"
        "CREATE TABLE assessments.responses (id serial PRIMARY KEY, user_id text NOT NULL, answer text);"
        "CREATE TABLE assessments.scores (user_id text NOT NULL, dimension text, score int);",
        "INSERT INTO assessments.responses (user_id, answer) VALUES ('$U', 'a'), ('$U', 'b');"
        "INSERT INTO assessments.scores VALUES ('$U', 'focus', 5);",
        "SELECT (SELECT count(*) FROM assessments.responses WHERE user_id = '$U') + "
        "(SELECT count(*) FROM assessments.scores WHERE user_id = '$U')"}},
      {"growth",
       {R"(  - name: growth
    postgres:
      tables:
        - table: growth.campaign_events
          key: email
          identity: email
          action: delete
        - table: growth.contacts
          key: email
          identity: email
          action: delete
)",
        "CREATE SCHEMA growth;"
        "CREATE TABLE growth.contacts (email text PRIMARY KEY, name text);"
        "CREATE TABLE growth.campaign_events (id serial PRIMARY KEY, "
        "  email text NOT NULL REFERENCES growth.contacts(email), event text);",
        "INSERT INTO growth.contacts VALUES ('$E', 'someone');"
        "INSERT INTO growth.campaign_events (email, event) VALUES ('$E', 'opened'), ('$E', 'clicked');",
        "SELECT (SELECT count(*) FROM growth.contacts WHERE email = '$E') + "
        "(SELECT count(*) FROM growth.campaign_events WHERE email = '$E')"}},
      {"billing",
       {R"(  - name: billing
    postgres:
      tables:
        - table: billing.invoices
          key: customer_id
          identity: user_id
          action: delete
        - table: billing.accounts
          key: email
          identity: email
          action: delete
)",
        "CREATE SCHEMA billing;"
        "CREATE TABLE billing.invoices (id serial PRIMARY KEY, customer_id bigint NOT NULL, cents int);"
        "CREATE TABLE billing.accounts (email text PRIMARY KEY, plan text);",
        "INSERT INTO billing.invoices (customer_id, cents) VALUES ($U, 1200), ($U, 800);"
        "INSERT INTO billing.accounts VALUES ('$E', 'pro');",
        "SELECT (SELECT count(*) FROM billing.invoices WHERE customer_id = $U) + "
        "(SELECT count(*) FROM billing.accounts WHERE email = '$E')"}},
      {"crm",
       {R"yaml(  - name: crm
    postgres:
      tables:
        - table: crm.notes
          key: person_email
          identity: email
          action: delete
        - table: crm.people
          key: email
          identity: email
          action: delete
        - table: crm.events
          key: user_id
          identity: user_id
          action: anonymize
          set:
            user_id: hash
            ip: null
            country: "redacted"
        - table: crm.invoices
          key: email
          identity: email
          action: retain
          basis: "Tax records (Art. 17(3)(b))"
          period: 7y
    kafka:
      topics:
        - topic: mesh.crm.people
          key: "person:{email}"
)yaml",
        kCrmDdl, kCrmPlant, kCrmCount}},
      // crm's tables, and a topic copied into three sinks: a search index that deletes on the
      // tombstone, a JDBC copy the agent purges as crm.people, and an archive nothing erases.
      {"crm_sinks",
       {R"yaml(  - name: crm_sinks
    postgres:
      tables:
        - table: crm.notes
          key: person_email
          identity: email
          action: delete
        - table: crm.people
          key: email
          identity: email
          action: delete
    kafka:
      topics:
        - topic: mesh.crm.people
          key: "person:{email}"
          sinks:
            - {name: people-search, kind: elasticsearch, deletes_on_tombstone: true}
            - {name: people-jdbc, kind: jdbc, deletes_on_tombstone: false, covered_by: {table: crm.people}}
            - {name: people-archive, kind: s3, deletes_on_tombstone: false}
)yaml",
        kCrmDdl, kCrmPlant,
        "SELECT (SELECT count(*) FROM crm.people WHERE email = '$E') + "
        "(SELECT count(*) FROM crm.notes WHERE person_email = '$E')"}},
      // crm's people, with the proof of physical purge asked of the agent: VACUUM after the
      // purge for the notes, VACUUM FULL for the people. No topic: the bound is PostgreSQL's.
      {"crm_vacuum",
       {R"yaml(  - name: crm_vacuum
    postgres:
      tables:
        - table: crm.notes
          key: person_email
          identity: email
          action: delete
          vacuum: after_purge
        - table: crm.people
          key: email
          identity: email
          action: delete
          vacuum: full_after_purge
)yaml",
        kCrmDdl, kCrmPlant,
        "SELECT (SELECT count(*) FROM crm.people WHERE email = '$E') + "
        "(SELECT count(*) FROM crm.notes WHERE person_email = '$E')"}},
      // The same tables with the parent listed before the child: the foreign key refuses.
      {"crm_badorder",
       {R"(  - name: crm_badorder
    postgres:
      tables:
        - table: crm.people
          key: email
          identity: email
          action: delete
        - table: crm.notes
          key: person_email
          identity: email
          action: delete
)",
        kCrmDdl, kCrmPlant, kCrmCount}},
      // Keyed hashes into columns of many types.
      {"analytics",
       {R"yaml(  - name: analytics
    postgres:
      tables:
        - table: analytics.sessions
          key: user_id
          identity: user_id
          action: anonymize
          set:
            user_id: hash
            device: hash
            short_code: hash
            raw: hash
            small: hash
            ip: null
)yaml",
        "CREATE SCHEMA analytics;"
        "CREATE TABLE analytics.sessions (id serial PRIMARY KEY, user_id bigint, device uuid, "
        "  short_code varchar(12), raw bytea, small smallint, ip text);",
        "INSERT INTO analytics.sessions (user_id, device, short_code, raw, small, ip) VALUES "
        "  ($U, gen_random_uuid(), 'c-$U', 'r-$U', 7, '10.0.0.1'), "
        "  ($U, gen_random_uuid(), 'd-$U', 'q-$U', 8, '10.0.0.2');",
        "SELECT count(*) FROM analytics.sessions WHERE user_id = $U"}},
      // A keyed hash asked of a date column: the command fails and changes nothing.
      {"analytics_dates",
       {R"yaml(  - name: analytics_dates
    postgres:
      tables:
        - table: analytics.visits
          key: user_id
          identity: user_id
          action: anonymize
          set:
            user_id: hash
            day: hash
)yaml",
        "CREATE SCHEMA analytics;"
        "CREATE TABLE analytics.visits (id serial PRIMARY KEY, user_id bigint, day date);",
        "INSERT INTO analytics.visits (user_id, day) VALUES ($U, '2026-11-01');",
        "SELECT count(*) FROM analytics.visits WHERE user_id = $U"}},
  };
  // shard01..shard10: one table each, keyed by email, for runs across many domains.
  for (int i = 1; i <= 10; ++i) {
      const std::string n = absl::StrFormat("shard%02d", i);
      (*m)[n] = DomainFixture{
          absl::StrCat("  - name: ", n, "\n    postgres:\n      tables:\n        - table: ", n,
                       ".contacts\n          key: email\n          identity: email\n"
                       "          action: delete\n"),
          absl::StrCat("CREATE SCHEMA ", n, "; CREATE TABLE ", n, ".contacts (email text NOT NULL, note text);"),
          absl::StrCat("INSERT INTO ", n, ".contacts VALUES ('$E', 'a'), ('$E', 'b');"),
          absl::StrCat("SELECT count(*) FROM ", n, ".contacts WHERE email = '$E'")};
  }
  return m;
  }();
  return *fixtures;
}

std::string Fill(const std::string& sql, const Person& p) {
  return absl::StrReplaceAll(sql, {{"$U", p.user_id}, {"$E", p.email}});
}

}  // namespace

std::string MeshPolicy(const std::vector<std::string>& domains, const std::string& identities) {
  std::string out =
      "version: 1\nname: test-mesh\nidentities: " + identities + "\n"
      "deadlines:\n  erasure: 30d\n  max_extension: 60d\n";
  auto has = [&](const std::string& d) {
    return std::find(domains.begin(), domains.end(), d) != domains.end();
  };
  if (has("growth") || has("assessments")) out += "purposes:\n";
  if (has("growth"))
    out += "  - name: marketing\n    description: Campaigns\n    domains: [growth]\n"
           "    erase_on_withdrawal: true\n";
  if (has("assessments"))
    out += "  - name: research\n    description: Product research\n    domains: [assessments]\n";
  out += "domains:\n";
  for (const auto& d : domains) out += Fixtures().at(d).policy;
  return out;
}

absl::StatusOr<std::unique_ptr<Mesh>> Mesh::Start(Options options) {
  std::unique_ptr<Mesh> m(new Mesh());
  m->options_ = options;
  m->work_ = (fs::temp_directory_path() / ("lethe-mesh-" + crypto::Hex(crypto::RandomBytes(6)))).string();
  fs::create_directories(m->work_ + "/keys");
  LETHE_RETURN_IF_ERROR(lethe::WriteFileAtomic(m->policy_path(), MeshPolicy(options.domains, options.identities), 0644));
  LETHE_ASSIGN_OR_RETURN(auto key, crypto::Ed25519PrivateKey::Generate());
  LETHE_RETURN_IF_ERROR(key.SaveFile(m->lethed_key()));
  LETHE_RETURN_IF_ERROR(key.public_key().SaveFile(m->lethed_pub()));
  for (const auto& d : options.domains)
    LETHE_RETURN_IF_ERROR(crypto::GenerateKeyFiles(m->work_ + "/keys/" + d).status());
  LETHE_RETURN_IF_ERROR(crypto::CreateCa(m->certs_dir(), "lethe.test"));
  LETHE_RETURN_IF_ERROR(crypto::CreateServerCert(m->certs_dir(), {"127.0.0.1", "localhost"}));
  for (const char* role : {"admin", "operator", "auditor"})
    LETHE_RETURN_IF_ERROR(crypto::CreateClientCert(m->certs_dir(), role, ClientName(role)));
  LETHE_ASSIGN_OR_RETURN(m->pg_, PgCluster::Start(PgCluster::Options{.fsync = options.pg_fsync}));
  for (const auto& d : options.domains) {
    LETHE_RETURN_IF_ERROR(m->pg_->CreateDatabase(d));
    LETHE_RETURN_IF_ERROR(m->pg_->Exec(d, Fixtures().at(d).ddl));
  }
  if (options.start_lethed) {
    LETHE_RETURN_IF_ERROR(m->StartLethed());
    for (const auto& d : options.domains) LETHE_RETURN_IF_ERROR(m->EnrollAgent(d));
    if (options.start_agents)
      for (const auto& d : options.domains) LETHE_RETURN_IF_ERROR(m->StartAgent(d));
  }
  return m;
}

Mesh::~Mesh() {
  agents_.clear();
  lethed_.reset();
  pg_.reset();
  std::error_code ec;
  fs::remove_all(work_, ec);
}

controlplane::LethedOptions Mesh::LethedOptionsForTest() const {
  controlplane::LethedOptions o;
  o.listen = "127.0.0.1:0";
  o.data_dir = data_dir();
  o.policy_path = policy_path();
  o.signing_key_path = lethed_key();
  o.certs_dir = certs_dir();
  o.embedded_kafka = true;
  if (options_.lethed_options) options_.lethed_options(o);
  return o;
}

absl::Status Mesh::StartLethed() {
  LETHE_ASSIGN_OR_RETURN(lethed_, controlplane::Lethed::Start(LethedOptionsForTest()));
  return absl::OkStatus();
}

std::string Mesh::addr() const {
  if (!external_addr_.empty()) return external_addr_;
  return absl::StrCat("127.0.0.1:", lethed_->port());
}

std::string Mesh::kafka_bootstrap() const {
  auto text = lethe::ReadFile(data_dir() + "/kafka.bootstrap");
  if (!text.ok()) return "";
  std::string s = *text;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::string Mesh::ClientName(const std::string& role) {
  if (role == "admin") return "root";
  if (role == "operator") return "olga";
  return "audrey";
}

std::shared_ptr<grpc::Channel> Mesh::Channel(const std::string& role) const {
  return Channel(role, grpc::ChannelArguments());
}

std::shared_ptr<grpc::Channel> Mesh::Channel(const std::string& role, const grpc::ChannelArguments& args) const {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = lethe::ReadFile(certs_dir() + "/ca.crt").value();
  o.pem_cert_chain = lethe::ReadFile(client_cert(role)).value();
  o.pem_private_key = lethe::ReadFile(client_key(role)).value();
  return grpc::CreateCustomChannel(addr(), grpc::SslCredentials(o), args);
}

std::unique_ptr<v1::SubjectRequests::Stub> Mesh::Requests() const {
  return v1::SubjectRequests::NewStub(Channel("operator"));
}

std::unique_ptr<v1::Agents::Stub> Mesh::Agents() const { return v1::Agents::NewStub(Channel("admin")); }

std::unique_ptr<v1::Policies::Stub> Mesh::Policies() const {
  return v1::Policies::NewStub(Channel("admin"));
}

std::unique_ptr<v1::Consent::Stub> Mesh::Consent() const {
  return v1::Consent::NewStub(Channel("operator"));
}

std::unique_ptr<v1::Ledger::Stub> Mesh::LedgerStub() const {
  return v1::Ledger::NewStub(Channel("auditor"));
}

absl::Status Mesh::EnrollAgent(const std::string& domain) {
  LETHE_ASSIGN_OR_RETURN(std::string pem, lethe::ReadFile(agent_pub(domain)));
  v1::EnrollAgentRequest req;
  req.set_domain(domain);
  req.set_public_key_pem(pem);
  v1::AgentView resp;
  grpc::ClientContext ctx;
  grpc::Status s = Agents()->Enroll(&ctx, req, &resp);
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return absl::OkStatus();
}

agents::AgentOptions Mesh::AgentOptionsFor(const std::string& domain) const {
  agents::AgentOptions o;
  o.domain = domain;
  o.postgres_dsn = pg_->Dsn(domain);
  o.policy_path = policy_path();
  o.key_path = agent_key(domain);
  o.control_plane_key_path = lethed_pub();
  o.kafka_bootstrap = kafka_bootstrap();
  o.fetch_wait = kafka::kEmbeddedFetchWait;  // lethed's embedded broker holds a fetch in full
  o.min_backoff = absl::Milliseconds(50);
  o.max_backoff = absl::Milliseconds(500);
  if (options_.agent_options) options_.agent_options(o);
  return o;
}

absl::Status Mesh::StartAgent(const std::string& domain) {
  LETHE_ASSIGN_OR_RETURN(auto a, agents::Agent::Create(AgentOptionsFor(domain)));
  a->Start();
  agents_[domain] = std::move(a);
  return absl::OkStatus();
}

absl::Status Mesh::Plant(const Person& p) {
  for (const auto& d : options_.domains) LETHE_RETURN_IF_ERROR(pg_->Exec(d, Fill(Fixtures().at(d).plant, p)));
  return absl::OkStatus();
}

absl::Status Mesh::PlantMany(const std::vector<Person>& people) {
  constexpr size_t kChunk = 500;
  for (const auto& d : options_.domains) {
    for (size_t i = 0; i < people.size(); i += kChunk) {
      std::string sql;
      for (size_t j = i; j < std::min(people.size(), i + kChunk); ++j) sql += Fill(Fixtures().at(d).plant, people[j]);
      LETHE_RETURN_IF_ERROR(pg_->Exec(d, sql));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Mesh::Rows(const std::string& domain, const Person& p) {
  LETHE_ASSIGN_OR_RETURN(std::string n, pg_->Query(domain, Fill(Fixtures().at(domain).count, p)));
  return std::stoll(n);
}

v1::SubmitRequest Mesh::ErasureOf(const Person& p, const std::string& reason) {
  v1::SubmitRequest req;
  auto* e = req.add_identities();
  e->set_type("email");
  e->set_value(p.email);
  auto* u = req.add_identities();
  u->set_type("user_id");
  u->set_value(p.user_id);
  req.set_reason(reason);
  return req;
}

absl::StatusOr<std::string> Mesh::Erase(const Person& p) {
  const v1::SubmitRequest req = ErasureOf(p);
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = Requests()->Submit(&ctx, req, &resp);
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return resp.request_id();
}

absl::StatusOr<v1::RequestView> Mesh::WaitDone(const std::string& id, absl::Duration timeout) {
  v1::RequestView view;
  grpc::Status last;
  const bool done = WaitFor(
      [&] {
        grpc::ClientContext ctx;
        v1::GetRequestRequest req;
        req.set_request_id(id);
        last = Requests()->Get(&ctx, req, &view);
        return last.ok() && view.state() != v1::IN_PROGRESS;
      },
      timeout);
  if (!last.ok()) return absl::Status(static_cast<absl::StatusCode>(last.error_code()), last.error_message());
  if (!done) {
    // Say what it still waits for: the domains not done, and why.
    std::string domains;
    for (const auto& d : view.domains())
      absl::StrAppend(&domains, " ", d.domain(), "=", v1::DomainState_Name(d.state()),
                      d.attempts() > 0 ? absl::StrCat(" (published ", d.attempts(), "x)") : "",
                      d.last_rejection().empty() ? "" : " (refused: " + d.last_rejection() + ")");
    return absl::DeadlineExceededError(absl::StrCat("request ", id.substr(0, 12), " still ",
                                                    v1::RequestState_Name(view.state()), " after ",
                                                    absl::FormatDuration(timeout), ";", domains));
  }
  return view;
}

absl::StatusOr<v1::RequestView> Mesh::EraseAndWait(const Person& p, absl::Duration timeout) {
  LETHE_ASSIGN_OR_RETURN(std::string id, Erase(p));
  return WaitDone(id, timeout);
}

namespace {

// A consumer with no group membership: partitions are assigned by hand.
rd_kafka_t* NewReader(const std::string& bootstrap, std::string* error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  const std::string group = "lethe-test-reader-" + crypto::Hex(crypto::RandomBytes(4));
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) *error = err;
  return rk;
}

struct Watermarks {
  int32_t partition;
  int64_t low;
  int64_t high;  // the end offset: the next record's
};

// Each partition's start and end offsets, now.
absl::StatusOr<std::vector<Watermarks>> TopicWatermarks(rd_kafka_t* rk, const std::string& topic,
                                                        absl::Duration timeout) {
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return absl::UnavailableError(absl::StrCat("metadata of ", topic, ": ", rd_kafka_err2str(err)));
  int partitions = 0;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
    partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  if (partitions == 0) return absl::NotFoundError(absl::StrCat("topic ", topic, " has no partitions"));
  std::vector<Watermarks> out;
  for (int p = 0; p < partitions; ++p) {
    Watermarks w{p, 0, 0};
    const rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &w.low, &w.high, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
      return absl::UnavailableError(absl::StrCat("end offsets of ", topic, "[", p, "]: ", rd_kafka_err2str(e)));
    out.push_back(w);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<kafka::Message>> ReadTopic(const std::string& bootstrap,
                                                      const std::string& topic,
                                                      absl::Duration timeout) {
  std::string error;
  rd_kafka_t* rk = NewReader(bootstrap, &error);
  if (rk == nullptr) return absl::InternalError(error);
  const absl::Time deadline = absl::Now() + timeout;
  auto marks = TopicWatermarks(rk, topic, timeout);
  if (!marks.ok()) {
    rd_kafka_destroy(rk);
    return marks.status();
  }
  rd_kafka_poll_set_consumer(rk);
  // Every partition from its start; done when each has been read up to its end offset.
  std::map<int32_t, int64_t> want;  // partition -> end offset not yet reached
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(marks->size()));
  for (const Watermarks& w : *marks) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), w.partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (w.high > w.low) want[w.partition] = w.high;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<kafka::Message> out;
  absl::Status status;
  while (!want.empty()) {
    if (absl::Now() >= deadline) {
      status = absl::DeadlineExceededError(absl::StrCat(
          "read ", out.size(), " records of ", topic, " in ", absl::FormatDuration(timeout),
          " but not up to the end offsets of ", want.size(), " partition(s)"));
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      kafka::Message msg;
      msg.topic = topic;
      msg.partition = m->partition;
      msg.offset = m->offset;
      if (m->key) msg.key = std::string(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) msg.value = std::string(static_cast<const char*>(m->payload), m->len);
      // Records published after the end offsets were taken are left out: the read is of the
      // topic as it was when called.
      if (m->offset < (*marks)[m->partition].high) out.push_back(std::move(msg));
      auto it = want.find(m->partition);
      if (it != want.end() && m->offset + 1 >= it->second) want.erase(it);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  if (!status.ok()) return status;
  return out;
}

absl::Status WaitForRecords(const std::string& bootstrap, const std::string& topic, int64_t n,
                            absl::Duration timeout) {
  std::string error;
  rd_kafka_t* rk = NewReader(bootstrap, &error);
  if (rk == nullptr) return absl::InternalError(error);
  int64_t have = 0;
  absl::Status last;
  const bool ok = WaitFor(
      [&] {
        auto marks = TopicWatermarks(rk, topic, absl::Seconds(5));
        last = marks.status();
        if (!marks.ok()) return false;
        have = 0;
        for (const Watermarks& w : *marks) have += w.high - w.low;
        return have >= n;
      },
      timeout);
  rd_kafka_destroy(rk);
  if (ok) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat("topic ", topic, " holds ", have, " records after ",
                                                  absl::FormatDuration(timeout), ", not ", n,
                                                  last.ok() ? "" : "; last error: " + last.ToString()));
}

CommandResult Lethectl(std::vector<std::string> args) {
  args.insert(args.begin(), LETHE_BINARY_DIR "/cli/lethectl");
  auto r = RunCommand(args, absl::Seconds(60));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : CommandResult{-1, r.status().ToString()};
}

std::string RoleFor(const std::vector<std::string>& args) {
  std::vector<std::string> words;  // the command words, flags skipped
  for (size_t i = 0; i < args.size() && words.size() < 2; ++i) {
    if (args[i].rfind("-", 0) == 0) {
      if (args[i] == "-o" || args[i] == "--output" || args[i] == "--addr") ++i;  // takes a value
      continue;
    }
    words.push_back(args[i]);
  }
  const std::string a = words.size() > 0 ? words[0] : "", b = words.size() > 1 ? words[1] : "";
  if (a == "request") return b == "certificate" ? "auditor" : "operator";
  if (a == "consent") return "operator";
  if ((a == "policy" && b == "activate") || (a == "agent" && (b == "enroll" || b == "revoke")))
    return "admin";
  return "auditor";
}

CommandResult RunLethectlAs(const Mesh& mesh, const std::string& role,
                            const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"--addr",  mesh.addr(), "--certs-dir", mesh.certs_dir(), "--cert",
                                   mesh.client_cert(role), "--key", mesh.client_key(role)};
  argv.insert(argv.end(), args.begin(), args.end());
  return Lethectl(std::move(argv));
}

CommandResult RunLethectl(const Mesh& mesh, const std::vector<std::string>& args) {
  return RunLethectlAs(mesh, RoleFor(args), args);
}

CommandResult CertifyAndVerify(const Mesh& mesh, const std::string& request_id) {
  const std::string cert = mesh.work_dir() + "/certificate-" + request_id + ".json";
  auto issued = RunLethectl(mesh, {"request", "certificate", request_id, "--out", cert,
                                   "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(issued.exit_code, 0) << issued.output;
  auto verified =
      RunLethectl(mesh, {"request", "certificate", "--verify", cert, "--public-key", mesh.lethed_pub()});
  EXPECT_EQ(verified.exit_code, 0) << verified.output;
  return verified;
}

}  // namespace lethe::testing
