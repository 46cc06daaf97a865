// Erasure throughput: many erasures at once across 3 domains on PostgreSQL with fsync on,
// against pgbench running the agents' own transaction on the same server.
//
// Real components on one machine: lethed in this process with its embedded Kafka, one
// lethe-agent per domain (assessments, growth, billing; in process, fetch wait 10 ms), one
// PostgreSQL server with fsync and synchronous_commit on, ledger appends with fdatasync.
//
// A run alternates two measurements:
//   - Lethe: N people planted in every domain (not timed), then N erasures submitted through
//     gRPC from C client threads; timed from the first Submit until no request is IN_PROGRESS
//     (every one must end COMPLETED). Each erasure is one transaction per domain, so the
//     domain transactions/s are 3 N / elapsed.
//   - pgbench: as many people planted the same way, then one pgbench client per domain (one
//     per agent), all three at once, each running N of that domain's purge transaction as the
//     agent issues it, for a person drawn at random from those planted: the advisory lock on the command id, the look-up
//     of processed commands, per table the DELETE and the re-check query, the INSERT of a
//     receipt of the size the agents stored, COMMIT. Their tps are summed. Both start from
//     tables holding only the people they plant, so both scan tables of the same size; the
//     random draws repeat some people (whose DELETEs then find nothing), which if anything
//     favours pgbench.
// The ratio is Lethe's domain transactions/s over pgbench's; min/median/max over the runs.
//
//   build/bench/erasure_load_bench --erasures 300 --clients 8 --runs 5
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "base/status.h"
#include "bench/machine_profile.h"
#include "policies/policy.h"
#include "spdlog/spdlog.h"
#include "tests/support/mesh.h"
#include "tests/support/subprocess.h"

namespace lethe::bench {
namespace {

constexpr char kPgbench[] = "/usr/lib/postgresql/15/bin/pgbench";

// CPU seconds (user and system) of this process (lethed, its broker, the agents and the
// gRPC clients) or of its waited-for children.
double CpuSeconds(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

testing::Person PersonNumber(int64_t n) {
  return testing::Person{std::to_string(n), absl::StrFormat("load-%d@example.com", n)};
}

// The purge transaction of `domain` as PostgresPurger issues it (agents/postgres_purger.cc,
// agents/recheck.cc) for a person numbered :n, written for pgbench. Identities go in as
// untyped literals, as the agent binds them, so PostgreSQL reads each in its column's type.
std::string PurgeScript(const policies::Domain& domain, int64_t first, int64_t count, size_t receipt_bytes) {
  auto literal = [](const std::string& type) {
    return type == "email" ? std::string("'load-:n@example.com'") : std::string("':n'");
  };
  auto quoted = [](const std::string& name) { return "\"" + name + "\""; };
  std::string s = absl::StrFormat("\\set n random(%d, %d)\n", first, first + count - 1);
  s += "\\set c random(1, 1000000000000)\n";
  s += "BEGIN;\n";
  s += "SELECT pg_advisory_xact_lock(hashtext('cmd-:c'));\n";
  s += "SELECT receipt FROM lethe_agent.processed_commands WHERE command_id = 'cmd-:c';\n";
  for (const policies::Table& t : domain.tables) {
    if (t.action != policies::TableAction::kDelete) {
      fprintf(stderr, "erasure_load_bench: table %s: only delete tables are scripted\n", t.QualifiedName().c_str());
      std::exit(2);
    }
    const std::string table = quoted(t.schema) + "." + quoted(t.name);
    const std::string key = quoted(t.key_column);
    const std::string v = literal(t.identity);
    s += absl::StrFormat("DELETE FROM %s WHERE %s = %s;\n", table, key, v);
    s += absl::StrFormat(
        "SELECT count(*) FILTER (WHERE (%s::text = %s::text) IS TRUE), count(*) FROM %s "
        "WHERE lower(btrim(%s::text)) = lower(btrim(%s::text));\n",
        key, v, table, key, v);
  }
  // What the purge records for the physical purge watch (agents/vacuum_watch.h): the
  // transaction id and a row per table it deleted from.
  s += "SELECT pg_current_xact_id()::text;\n";
  s += "INSERT INTO lethe_agent.vacuum_commands (command_id, request_id, command_digest, completed_unix_ms, "
       "purge_xid) VALUES ('cmd-:c', 'req-:c', decode(repeat('ab', 32), 'hex'), 0, 0);\n";
  for (size_t i = 0; i < domain.tables.size(); ++i)
    s += absl::StrFormat(
        "INSERT INTO lethe_agent.vacuum_tables (command_id, position, table_name, action) "
        "VALUES ('cmd-:c', %d, '%s', 'delete');\n",
        i, domain.tables[i].QualifiedName());
  s += absl::StrFormat(
      "INSERT INTO lethe_agent.processed_commands (command_id, request_id, outcome, receipt) "
      "VALUES ('cmd-:c', 'req-:c', 'COMPLETED', decode(repeat('ab', %d), 'hex'));\n",
      receipt_bytes);
  s += "COMMIT;\n";
  return s;
}

absl::StatusOr<double> PgbenchTps(const testing::CommandResult& r) {
  const size_t at = r.output.find("tps = ");
  if (r.exit_code != 0 || at == std::string::npos)
    return absl::InternalError("pgbench failed: " + testing::Tail(r.output, 10));
  return std::stod(r.output.substr(at + 6));
}

int Run(int argc, char** argv) {
  std::string perf_out;
  int erasures = 300;
  int clients = 8;
  int runs = 3;
  CLI::App app{"erasure_load_bench: erasure throughput against pgbench on the same PostgreSQL"};
  app.add_option("--erasures", erasures, "erasures submitted at once per run")->capture_default_str();
  app.add_option("--clients", clients, "gRPC client threads submitting them")->capture_default_str();
  app.add_option("--runs", runs, "alternations of Lethe and pgbench")->capture_default_str();
  app.add_option("--perf-out", perf_out,
                 "write a whole-machine perf profile (perf record -a -g) of the first run's Lethe half here");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  auto started = testing::Mesh::Start();
  if (!started.ok()) {
    fprintf(stderr, "cannot start the mesh: %s\n", started.status().ToString().c_str());
    return 1;
  }
  testing::Mesh& mesh = **started;
  auto fail = [](const std::string& what, const absl::Status& s) {
    fprintf(stderr, "erasure_load_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
    return 1;
  };
  // The test clusters run with fsync off; this measurement needs it on.
  for (const char* sql : {"ALTER SYSTEM SET fsync = on", "ALTER SYSTEM SET synchronous_commit = on",
                          "SELECT pg_reload_conf()"})
    if (absl::Status s = mesh.pg().Exec("postgres", sql); !s.ok()) return fail(sql, s);
  for (const char* setting : {"fsync", "synchronous_commit"}) {
    auto v = mesh.pg().Query("postgres", std::string("SHOW ") + setting);
    if (!v.ok() || *v != "on") return fail(std::string(setting) + " is not on", v.status());
  }
  auto policy = policies::Policy::LoadFile(mesh.policy_path());
  if (!policy.ok()) return fail("policy", policy.status());
  controlplane::RequestStore& store = mesh.lethed().store();

  // Each measurement starts from empty domain tables plus the people it plants, so that
  // neither inherits the other's leftovers (the re-check query scans its table).
  auto empty_tables = [&]() -> absl::Status {
    for (const auto& d : mesh.domains())
      for (const policies::Table& t : policy->FindDomain(d)->tables)
        LETHE_RETURN_IF_ERROR(mesh.pg().Exec(d, "TRUNCATE \"" + t.schema + "\".\"" + t.name + "\" CASCADE"));
    return absl::OkStatus();
  };
  int64_t next_person = 500000000;
  // Lethe: erasures/s over N submitted at once.
  MachineProfile profile;  // armed after the warm-up
  auto lethe_run = [&](int n, double* seconds, double* submit_seconds, double* cpu) -> absl::Status {
    LETHE_RETURN_IF_ERROR(empty_tables());
    std::vector<testing::Person> people;
    for (int i = 0; i < n; ++i) people.push_back(PersonNumber(next_person++));
    LETHE_RETURN_IF_ERROR(mesh.PlantMany(people));
    std::vector<std::string> ids(n);
    std::atomic<int> next{0};
    std::mutex mu;
    absl::Status failed;
    profile.Start();
    const absl::Time start = absl::Now();
    const double cpu0 = CpuSeconds(RUSAGE_SELF);
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&] {
        // One connection per client for the whole run, as a real client keeps it.
        auto stub = mesh.Requests();
        for (int i = next++; i < n; i = next++) {
          const v1::SubmitRequest req = testing::Mesh::ErasureOf(people[i], "load");
          v1::SubmitResponse resp;
          grpc::ClientContext ctx;
          if (grpc::Status st = stub->Submit(&ctx, req, &resp); !st.ok()) {
            std::lock_guard<std::mutex> l(mu);
            failed = absl::UnavailableError("Submit: " + st.error_message());
            return;
          }
          ids[i] = resp.request_id();
        }
      });
    }
    for (auto& t : threads) t.join();
    LETHE_RETURN_IF_ERROR(failed);
    *submit_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    std::set<std::string> open(ids.begin(), ids.end());
    uint64_t seen = store.version();
    while (!open.empty()) {
      for (auto it = open.begin(); it != open.end();) {
        auto r = store.Get(*it);
        if (r.ok() && r->state != v1::IN_PROGRESS) {
          if (r->state != v1::COMPLETED) return absl::InternalError("request " + *it + " did not complete");
          it = open.erase(it);
        } else {
          ++it;
        }
      }
      if (absl::Now() - start > absl::Minutes(10)) return absl::DeadlineExceededError("erasures still open");
      if (!open.empty()) seen = store.WaitForChange(seen, absl::Milliseconds(100));
    }
    *seconds = absl::ToDoubleSeconds(absl::Now() - start);
    *cpu = CpuSeconds(RUSAGE_SELF) - cpu0;
    profile.Stop();
    for (const auto& d : mesh.domains()) {
      LETHE_ASSIGN_OR_RETURN(int64_t left, mesh.Rows(d, people.back()));
      if (left != 0) return absl::InternalError("rows left in " + d);
    }
    return absl::OkStatus();
  };

  // Warm-up: consumer groups joined, connections open, receipts stored to size the script's.
  double warm = 0, warm_submit = 0, warm_cpu = 0;
  if (absl::Status s = lethe_run(clients, &warm, &warm_submit, &warm_cpu); !s.ok()) return fail("warm-up", s);
  profile.Arm(perf_out);
  size_t receipt_bytes = 0;
  {
    auto avg = mesh.pg().Query(mesh.domains()[0], "SELECT avg(length(receipt))::int FROM lethe_agent.processed_commands");
    if (!avg.ok()) return fail("receipt size", avg.status());
    receipt_bytes = std::stoul(*avg);
  }

  // pgbench: one client per domain, all at once; the sum of their tps.
  auto pgbench_run = [&](double* tps) -> absl::Status {
    LETHE_RETURN_IF_ERROR(empty_tables());
    const int64_t count = erasures;
    std::vector<testing::Person> people;
    const int64_t first = next_person;
    for (int64_t i = 0; i < count; ++i) people.push_back(PersonNumber(next_person++));
    LETHE_RETURN_IF_ERROR(mesh.PlantMany(people));
    std::vector<absl::StatusOr<testing::CommandResult>> results(mesh.domains().size(), absl::InternalError("not run"));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < mesh.domains().size(); ++i) {
      const std::string& d = mesh.domains()[i];
      const std::string script = mesh.work_dir() + "/purge-" + d + ".sql";
      std::ofstream(script) << PurgeScript(*policy->FindDomain(d), first, count, receipt_bytes);
      threads.emplace_back([&, i, d, script] {
        results[i] = testing::RunCommand(
            {kPgbench, "-n", "-M", "simple", "-c", "1", "-t", std::to_string(erasures), "-f", script,
             "-h", mesh.pg().socket_dir(), "-p", std::to_string(mesh.pg().port()), "-U", "postgres", d},
            absl::Minutes(10));
      });
    }
    for (auto& t : threads) t.join();
    *tps = 0;
    for (auto& r : results) {
      LETHE_RETURN_IF_ERROR(r.status());
      LETHE_ASSIGN_OR_RETURN(double one, PgbenchTps(*r));
      *tps += one;
    }
    return absl::OkStatus();
  };

  const double domains = static_cast<double>(mesh.domains().size());
  std::vector<double> lethe_tx, pg_tps, ratio;
  printf("erasure_load_bench: %d erasure(s) at once from %d client(s), %d domains, PostgreSQL fsync on; "
         "pgbench: 1 client per domain, %d transactions each\n", erasures, clients,
         static_cast<int>(mesh.domains().size()), erasures);
  for (int r = 0; r < runs; ++r) {
    double seconds = 0, submit_seconds = 0, cpu = 0, tps = 0;
    if (absl::Status s = lethe_run(erasures, &seconds, &submit_seconds, &cpu); !s.ok()) return fail("lethe run", s);
    if (absl::Status s = pgbench_run(&tps); !s.ok()) return fail("pgbench run", s);
    lethe_tx.push_back(erasures * domains / seconds);
    pg_tps.push_back(tps);
    ratio.push_back(lethe_tx.back() / tps);
    printf("  run %d: Lethe %.1f erasures/s = %.1f domain tx/s (%.2f s; all submitted after %.2f s; "
           "lethed+agents+clients CPU %.2f ms/erasure, %.0f%% of 2 cores)   pgbench %.1f tps   ratio %.2f\n",
           r + 1, erasures / seconds, lethe_tx.back(), seconds, submit_seconds, cpu * 1000 / erasures,
           cpu / seconds / 2 * 100, tps, ratio.back());
    fflush(stdout);
  }
  auto mmm = [](const std::vector<double>& v) {
    return absl::StrFormat("%.2f / %.2f / %.2f", *std::min_element(v.begin(), v.end()), Median(v),
                           *std::max_element(v.begin(), v.end()));
  };
  printf("  min / median / max: Lethe %s domain tx/s; pgbench %s tps; ratio %s\n", mmm(lethe_tx).c_str(),
         mmm(pg_tps).c_str(), mmm(ratio).c_str());
  return 0;
}

}  // namespace
}  // namespace lethe::bench

int main(int argc, char** argv) { return lethe::bench::Run(argc, argv); }
