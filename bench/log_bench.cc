// What one log line costs lethed and lethe-agent to format, for each --log-format: lethed logs
// every consent change and receipt at level info, on the thread that answers the call.
//
//   build/bench/log_bench
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "base/log_format.h"
#include "spdlog/details/log_msg.h"
#include "spdlog/formatter.h"

namespace lethe::bench {
namespace {

// A consent change's line, and a receipt's (which names a request, a domain and an entry).
const char* const kLines[] = {
    "consent: research withdrawn (entry 29382)",
    "request b081f65e2c332d1b533cc5cded52594a: receipt from domain growth (completed), entry 17",
};

void Format(benchmark::State& state, spdlog::formatter& f) {
  const std::string text = kLines[state.range(0)];
  spdlog::details::log_msg msg(spdlog::source_loc{}, "lethed", spdlog::level::info, text);
  spdlog::memory_buf_t buf;
  for (auto _ : state) {
    buf.clear();
    f.format(msg, buf);
    benchmark::DoNotOptimize(buf.data());
  }
}

void BM_JsonLine(benchmark::State& state) {
  auto f = MakeJsonLogFormatter("lethed", "");
  Format(state, *f);
}
BENCHMARK(BM_JsonLine)->Arg(0)->Arg(1);

void BM_TextLine(benchmark::State& state) {
  auto f = MakeTextLogFormatter("lethed", "");
  Format(state, *f);
}
BENCHMARK(BM_TextLine)->Arg(0)->Arg(1);

}  // namespace
}  // namespace lethe::bench

BENCHMARK_MAIN();
