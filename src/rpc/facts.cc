// Machine facts and metrics for the agent, read from /proc, /etc/os-release and libc. Every source
// is optional: a missing or odd file yields 0 or empty, never an error, so a report always goes
// out. Cheap by design (a few small /proc reads per call) since an idle agent samples every 60 s.
#include "rpc/facts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

namespace sloth {
namespace {

using nlohmann::json;

// Reads a whole (small) file; /proc files report size 0, so read until EOF. Empty on any error.
std::string ReadFile(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// Whitespace-separated fields; the views point into `line`, which must outlive them.
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (true) {
    i = line.find_first_not_of(" \t\n", i);
    if (i == std::string_view::npos) break;
    size_t end = std::min(line.find_first_of(" \t\n", i), line.size());
    out.push_back(line.substr(i, end - i));
    i = end;
  }
  return out;
}

uint64_t ToU64(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// strtod needs a NUL-terminated string; /proc numbers are short.
double ToDouble(std::string_view s) { return std::strtod(std::string(s).c_str(), nullptr); }

std::string_view FirstLine(std::string_view text) { return text.substr(0, text.find('\n')); }

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

// PRETTY_NAME may be quoted with " or ' (os-release(5)); we do not unescape backslashes.
std::string OsPrettyName() {
  std::string text = ReadFile("/etc/os-release");
  if (text.empty()) text = ReadFile("/usr/lib/os-release");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string value = line.substr(12);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    return value;
  }
  return {};
}

struct MemInfo {
  uint64_t total = 0, available = 0;
};

MemInfo ReadMemInfo() {
  MemInfo m;
  uint64_t free = 0, buffers = 0, cached = 0;
  bool has_available = false;
  std::istringstream in(ReadFile("/proc/meminfo"));
  for (std::string line; std::getline(in, line);) {
    auto f = Fields(line);
    if (f.size() < 2) continue;
    uint64_t bytes = ToU64(f[1]) * 1024;  // values are in kB
    if (f[0] == "MemTotal:") m.total = bytes;
    if (f[0] == "MemAvailable:") {
      m.available = bytes;
      has_available = true;
    }
    if (f[0] == "MemFree:") free = bytes;
    if (f[0] == "Buffers:") buffers = bytes;
    if (f[0] == "Cached:") cached = bytes;
  }
  // Kernels before 3.14 have no MemAvailable; free + caches is the usual estimate.
  if (!has_available) m.available = std::min(m.total, free + buffers + cached);
  return m;
}

// /proc/mounts escapes space, tab, newline and backslash as \ooo octal.
std::string UnescapeMount(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + i + 4, v, 8);
      if (r.ptr == s.data() + i + 4) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// Kernel and userspace pseudo filesystems: no disk space worth reporting. Overlay is only a
// container's root, which "/" covers; squashfs is read-only images (snaps), always full.
bool IsVirtualFs(std::string_view type) {
  static const std::set<std::string_view> kVirtual = {
      "proc",     "sysfs",   "tmpfs",      "devtmpfs", "devpts",      "mqueue",     "debugfs",
      "tracefs",  "bpf",     "securityfs", "pstore",   "configfs",    "fusectl",    "hugetlbfs",
      "autofs",   "ramfs",   "nsfs",       "efivarfs", "binfmt_misc", "rpc_pipefs", "selinuxfs",
      "squashfs", "overlay", "fuse.lxcfs", "nfsd",     "devfs"};
  return kVirtual.contains(type) || type.rfind("cgroup", 0) == 0;
}

struct Disk {
  std::string mount;
  uint64_t total = 0, free = 0, used = 0;
};

// Sizes of the filesystem at a mount point; all 0 when statvfs fails.
Disk StatDisk(const std::string& mount) {
  Disk d{mount};
  struct statvfs vfs {};
  if (::statvfs(mount.c_str(), &vfs) != 0) return d;
  d.total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
  d.free = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;  // what a non-root user can use
  d.used = static_cast<uint64_t>(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
  return d;
}

// Mount points of real filesystems, "/" first. A filesystem mounted twice (bind mounts) is listed
// once, and bind-mounted files (containers' /etc/hosts) are skipped: they are not disks.
std::vector<std::string> RealMounts() {
  std::vector<std::string> mounts = {"/"};
  std::set<dev_t> seen;
  struct stat st {};
  if (::stat("/", &st) == 0) seen.insert(st.st_dev);
  std::istringstream in(ReadFile("/proc/mounts"));
  for (std::string line; std::getline(in, line);) {
    auto f = Fields(line);
    if (f.size() < 3 || IsVirtualFs(f[2])) continue;
    std::string mount = UnescapeMount(f[1]);
    if (::stat(mount.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (seen.insert(st.st_dev).second) mounts.push_back(mount);
  }
  return mounts;
}

std::vector<Disk> Disks() {
  std::vector<Disk> disks;
  for (const std::string& mount : RealMounts()) {
    Disk d = StatDisk(mount);
    if (d.total > 0 || mount == "/") disks.push_back(d);
  }
  return disks;
}

json DisksJson(const std::vector<Disk>& disks) {
  json out = json::array();
  for (const Disk& d : disks) {
    out.push_back({{"mount", d.mount}, {"total_bytes", d.total}, {"free_bytes", d.free}});
  }
  return out;
}

// Non-loopback IPv4 and IPv6 addresses, each once, in interface order.
json Addresses() {
  json out = json::array();
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  std::set<std::string> seen;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || (a->ifa_flags & IFF_LOOPBACK)) continue;
    int family = a->ifa_addr->sa_family;
    char text[INET6_ADDRSTRLEN] = {};
    const void* addr = nullptr;
    if (family == AF_INET) addr = &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr;
    if (family == AF_INET6) addr = &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr;
    if (addr == nullptr || ::inet_ntop(family, addr, text, sizeof text) == nullptr) continue;
    if (seen.insert(text).second) out.push_back(text);
  }
  ::freeifaddrs(list);
  return out;
}

json LoadAverage() {
  std::string text = ReadFile("/proc/loadavg");
  auto f = Fields(text);
  json out = json::array();
  for (size_t i = 0; i < 3; ++i) out.push_back(i < f.size() ? ToDouble(f[i]) : 0.0);
  return out;
}

double UptimeSeconds() {
  std::string text = ReadFile("/proc/uptime");
  auto f = Fields(text);
  return f.empty() ? 0 : ToDouble(f[0]);
}

// Aggregate CPU times from the first line of /proc/stat, in ticks. iowait counts as idle (the CPU
// could run something else); guest time is already inside user and nice.
struct CpuTimes {
  uint64_t busy = 0, total = 0;
};

CpuTimes ReadCpuTimes() {
  std::string text = ReadFile("/proc/stat");
  auto f = Fields(FirstLine(text));
  CpuTimes t;
  if (f.empty() || f[0] != "cpu") return t;
  uint64_t idle = 0;
  for (size_t i = 1; i < f.size() && i <= 8; ++i) {
    uint64_t v = ToU64(f[i]);
    t.total += v;
    if (i == 4 || i == 5) idle += v;  // idle, iowait
  }
  t.busy = t.total - idle;
  return t;
}

struct NetBytes {
  uint64_t rx = 0, tx = 0;
};

// Byte counters since boot summed over all interfaces but loopback.
NetBytes ReadNetBytes() {
  NetBytes n;
  std::istringstream in(ReadFile("/proc/net/dev"));
  for (std::string line; std::getline(in, line);) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;  // the two header lines
    auto name = Fields(std::string_view(line).substr(0, colon));
    auto f = Fields(std::string_view(line).substr(colon + 1));
    if (name.size() != 1 || name[0] == "lo" || f.size() < 9) continue;
    n.rx += ToU64(f[0]);
    n.tx += ToU64(f[8]);
  }
  return n;
}

// This process's CPU ticks (utime + stime) and start time (ticks after boot) from /proc/self/stat.
// Fields are counted after the last ')' because the command name may contain spaces.
struct ProcTimes {
  uint64_t ticks = 0, start = 0;
};

ProcTimes ReadProcTimes() {
  std::string text = ReadFile("/proc/self/stat");
  size_t paren = text.rfind(')');
  ProcTimes p;
  if (paren == std::string::npos) return p;
  auto f = Fields(std::string_view(text).substr(paren + 1));
  // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
  if (f.size() > 19) {
    p.ticks = ToU64(f[11]) + ToU64(f[12]);
    p.start = ToU64(f[19]);
  }
  return p;
}

uint64_t ProcessRssBytes() {
  std::istringstream in(ReadFile("/proc/self/status"));
  for (std::string line; std::getline(in, line);) {
    auto f = Fields(line);
    if (f.size() >= 2 && f[0] == "VmRSS:") return ToU64(f[1]) * 1024;
  }
  return 0;
}

// Seconds since boot, with suspend, on the same clock as /proc/self/stat's start time.
double BootSeconds() {
  timespec ts{};
  if (::clock_gettime(CLOCK_BOOTTIME, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double Percent(double part, double whole) {
  return whole > 0 ? std::max(0.0, 100.0 * part / whole) : 0;
}

long ClockTicks() {
  long hz = ::sysconf(_SC_CLK_TCK);
  return hz > 0 ? hz : 100;
}

// Invalid UTF-8 (a hostname or mount path from the wild) is replaced rather than thrown about.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Busy share of all CPU ticks since the previous call (since boot the first time); updates the
// stored counters.
double SystemCpuPercent(uint64_t& busy, uint64_t& total) {
  CpuTimes cpu = ReadCpuTimes();
  double percent = 0;
  if (cpu.total > total && cpu.busy >= busy) {
    percent = Percent(static_cast<double>(cpu.busy - busy), static_cast<double>(cpu.total - total));
  }
  busy = cpu.busy;
  total = cpu.total;
  return std::min(percent, 100.0);
}

// This process's CPU time over wall time since the previous call (since it started the first time);
// 100 = one core busy, so it can reach 100 x cores.
double ProcessCpuPercent(uint64_t& last_ticks, double& last_wall) {
  ProcTimes proc = ReadProcTimes();
  double hz = static_cast<double>(ClockTicks());
  double now = BootSeconds();
  double since = last_wall > 0 ? last_wall : static_cast<double>(proc.start) / hz;
  uint64_t ticks = proc.ticks >= last_ticks ? proc.ticks - last_ticks : 0;
  last_ticks = proc.ticks;
  last_wall = now;
  long cpus = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
  return std::min(Percent(static_cast<double>(ticks) / hz, now - since),
                  100.0 * static_cast<double>(cpus));
}

}  // namespace

std::string CollectFacts() {
  utsname uts{};
  bool has_uts = ::uname(&uts) == 0;
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  json facts = {
      {"hostname", Hostname()},
      {"os", OsPrettyName()},
      {"kernel", has_uts ? uts.release : ""},
      {"arch", has_uts ? uts.machine : ""},
      {"cpus", static_cast<uint64_t>(cpus > 0 ? cpus : 0)},
      {"memory_total_bytes", ReadMemInfo().total},
      {"disks", DisksJson(Disks())},
      {"addresses", Addresses()},
      {"load", LoadAverage()},
      {"uptime_seconds", static_cast<uint64_t>(UptimeSeconds())},
  };
  return Dump(facts);
}

std::string MetricsSampler::Sample() {
  double cpu_percent = SystemCpuPercent(cpu_busy_, cpu_total_);
  double proc_percent = ProcessCpuPercent(proc_ticks_, proc_wall_);
  MemInfo mem = ReadMemInfo();
  uint64_t disk_used = 0, disk_total = 0;
  for (const Disk& d : Disks()) {
    disk_used += d.used;
    disk_total += d.total;
  }
  NetBytes net = ReadNetBytes();
  json metrics = {
      {"cpu_percent", cpu_percent},
      {"memory_used_bytes", mem.total - std::min(mem.total, mem.available)},
      {"memory_total_bytes", mem.total},
      {"disk_used_bytes", disk_used},
      {"disk_total_bytes", disk_total},
      {"network_rx_bytes", net.rx},
      {"network_tx_bytes", net.tx},
      {"load", LoadAverage()},
      {"process_rss_bytes", ProcessRssBytes()},
      {"process_cpu_percent", proc_percent},
  };
  return Dump(metrics);
}

}  // namespace sloth
