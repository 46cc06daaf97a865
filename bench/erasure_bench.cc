// Wall time of one erasure across three domains: Submit returns -> request COMPLETED.
//
// Real components, as in production but on one machine: lethed in process with its
// embedded Kafka (the librdkafka mock cluster on loopback), three in-process agents, one
// PostgreSQL server (fsync off, like the tests), ledger appends with fdatasync on.
// Each repetition erases a fresh person holding 9 rows over 6 tables; report the median.
//
//   build/bench/erasure_bench --benchmark_repetitions=20
#include <benchmark/benchmark.h>

#include "tests/support/mesh.h"

namespace lethe::testing {
namespace {

Mesh* SharedMesh() {
  static Mesh* mesh = [] {
    auto m = Mesh::Start();
    if (!m.ok()) {
      fprintf(stderr, "cannot start the mesh: %s\n", m.status().ToString().c_str());
      std::abort();
    }
    return m->release();
  }();
  return mesh;
}

void BM_EraseAcrossThreeDomains(benchmark::State& state) {
  Mesh& mesh = *SharedMesh();
  int n = 0;
  // Warm-up: the agents' consumer groups join on the first command.
  static bool warmed = false;
  if (!warmed) {
    Person p{"999000001", "warmup@example.com"};
    if (!mesh.Plant(p).ok()) std::abort();
    auto id = mesh.Erase(p);
    if (!id.ok() || !mesh.WaitDone(*id, absl::Seconds(120)).ok()) std::abort();
    warmed = true;
  }
  for (auto _ : state) {
    state.PauseTiming();
    Person p{std::to_string(100000000 + state.iterations() * 1000 + n++),
             "person" + std::to_string(n) + "@example.com"};
    if (!mesh.Plant(p).ok()) state.SkipWithError("plant failed");
    state.ResumeTiming();
    const absl::Time start = absl::Now();
    auto id = mesh.Erase(p);
    if (!id.ok()) {
      state.SkipWithError("submit failed");
      break;
    }
    controlplane::RequestStore& store = mesh.lethed().store();
    uint64_t seen = store.version();
    while (true) {
      auto r = store.Get(*id);
      if (r && r->state != v1::IN_PROGRESS) {
        if (r->state != v1::COMPLETED) state.SkipWithError("request failed");
        break;
      }
      if (absl::Now() - start > absl::Seconds(60)) {
        state.SkipWithError("timeout");
        break;
      }
      seen = store.WaitForChange(seen, absl::Milliseconds(100));
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
  }
}
BENCHMARK(BM_EraseAcrossThreeDomains)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lethe::testing

BENCHMARK_MAIN();
