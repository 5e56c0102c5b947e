// What an agent reports about its machine: facts (at registration and every 60 s) and metrics
// (every 60 s), read from /proc, /etc/os-release and libc. Both return JSON text.
#pragma once

#include <cstdint>
#include <string>

namespace sloth {

// {"hostname","os","kernel","arch","cpus","memory_total_bytes",
//  "disks":[{"mount","total_bytes","free_bytes"}],"addresses":["10.0.0.5",...],
//  "load":[1m,5m,15m],"uptime_seconds"}
std::string CollectFacts();

// Metrics need two samples for rates (CPU %, network bytes/s): keep one sampler per agent.
class MetricsSampler {
 public:
  // {"cpu_percent","memory_used_bytes","memory_total_bytes","disk_used_bytes","disk_total_bytes",
  //  "network_rx_bytes","network_tx_bytes","load":[1m,5m,15m],
  //  "process_rss_bytes","process_cpu_percent"}  (process_*: this process)
  // The first call reports CPU % since boot (and since the process started).
  std::string Sample();

 private:
  uint64_t cpu_busy_ = 0, cpu_total_ = 0;
  uint64_t proc_ticks_ = 0;
  double proc_wall_ = 0;
};

}  // namespace sloth
