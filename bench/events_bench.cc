// Event dispatch benchmark: N events through one EventBus on one loop, as a run dispatches them.
// Prints the dispatch rate, the rate until the last one is in the database, and the dispatch
// latency percentiles. Every dispatch that returned is durable (journal), as in production.
//
//   events_bench DATA_DIR [N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "events/bus.h"
#include "store/migrations.h"

using namespace sloth;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: events_bench DATA_DIR [N]\n");
    return 2;
  }
  std::string dir = argv[1];
  int n = argc > 2 ? std::atoi(argv[2]) : 100000;
  Loop::BlockSignals();
  Loop loop;
  EventBusOptions options;
  options.data_dir = dir;
  options.db_path = DatabasePath(dir);
  auto bus = EventBus::Open(loop, options);
  if (!bus.ok()) {
    std::fprintf(stderr, "%s\n", bus.error().c_str());
    return 1;
  }
  std::vector<double> latency_us;
  latency_us.reserve(n);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    Event e;
    e.type = "bench.event";
    e.source = "bench";
    e.stack = "bench";
    e.data_json = "{\"i\":" + std::to_string(i) + ",\"note\":\"a typical small payload\"}";
    auto t0 = std::chrono::steady_clock::now();
    auto id = (*bus)->Dispatch(std::move(e));
    auto t1 = std::chrono::steady_clock::now();
    if (!id.ok()) {
      std::fprintf(stderr, "%s\n", id.error().c_str());
      return 1;
    }
    latency_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  auto dispatched = std::chrono::steady_clock::now();
  (*bus)->Drain(std::chrono::minutes(5));
  auto persisted = std::chrono::steady_clock::now();
  (*bus)->Close();
  std::sort(latency_us.begin(), latency_us.end());
  auto pct = [&](double p) { return latency_us[static_cast<size_t>(p * (latency_us.size() - 1))]; };
  double d = std::chrono::duration<double>(dispatched - start).count();
  double p = std::chrono::duration<double>(persisted - start).count();
  std::printf(
      "events %d dispatched_per_s %.0f persisted_per_s %.0f p50_us %.1f p99_us %.1f max_us %.1f\n",
      n, n / d, n / p, pct(0.5), pct(0.99), latency_us.back());
  return 0;
}
