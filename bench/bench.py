#!/usr/bin/env python3
"""Side-by-side benchmarks: sloth-runner against make, ninja and ansible on this machine.

    bench/bench.py [--binary build/sloth-runner] [--runs N] [--quick] [--state] [--events]
    bench/bench.py --distributed     # master and agents: opt-in, about 3.5 minutes on its own

Every row is measured in this run, on this machine, so the ratios mean something even on a noisy
shared machine. Prints a table of medians and ratios. Targets (docs/benchmarks.md, quality.md):
hello world < 20 ms and >= 50x faster than ansible-playbook; 1,000 `true` commands 2 at a time
within 1.5x of ninja -j2; < 20 us of scheduling overhead per no-op task in a 10,000-task DAG;
state.set >= 50,000 durable sets/s across concurrent writers, state.get >= 200,000/s;
events >= 100,000 dispatched and persisted per second with p99 dispatch < 1 ms (the seed claims
~10,000/s; there is no peer tool with events on this machine).
--distributed (distributed.md "Scale"): `agent exec --all true` over 100 simulated agents < 1 s,
against ansible ad-hoc over 100 local hosts; an idle agent < 16 MB RSS and < 1% CPU (the seed
claims 32 MB); a master with 1,000 simulated agents < 300 MB RSS with heartbeats on time. It is
not part of the default run, which would take twice as long with it.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

def median_time(cmd, runs, cwd, env=None, warmup=1):
    for _ in range(warmup):
        subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if r.returncode != 0:
            raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{r.stderr.decode()[-2000:]}")
    return statistics.median(times)

def write(path, text):
    with open(path, "w") as f:
        f.write(text)

HELLO_SLOTH = """
local hello = task("hello"):command(function() log.info("hello world") end):build()
workflow.define("hello", { tasks = { hello } })
"""

HELLO_PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - debug: msg="hello world"
"""

def commands_sloth(n):
    return ("local tasks = {}\nfor i = 1, %d do tasks[i] = { name = 't' .. i, command = 'true' } end\n"
            "workflow.define('many', { tasks = tasks, config = { max_parallel_tasks = 2 } })\n" % n)

def commands_ninja(n):
    lines = ["rule t", "  command = true"]
    lines += [f"build out{i}: t" for i in range(n)]
    return "\n".join(lines) + "\n"

def commands_make(n):
    targets = " ".join(f"t{i}" for i in range(n))
    return f".PHONY: all {targets}\nall: {targets}\n" + "".join(f"t{i}:\n\t@true\n" for i in range(n))

def commands_playbook(n):
    return ("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n" +
            "".join("    - command: 'true'\n" for _ in range(n)))

def noop_dag(n):
    # A layered DAG: each task depends on up to two tasks of the previous layer.
    return ("local tasks = {}\nfor i = 1, %d do\n"
            "  local deps = {}\n  if i > 100 then deps = { 't' .. (i - 100), 't' .. (i - 99) } end\n"
            "  tasks[i] = { name = 't' .. i, command = function() end, depends_on = deps }\n"
            "end\nworkflow.define('dag', { tasks = tasks, config = { max_parallel_tasks = 4 } })\n" % n)

GOROUTINE_SLEEPERS = """
task("sleepers"):command(function()
  local hs = {}
  for i = 1, %d do hs[i] = goroutine.async(function() goroutine.sleep(%d) return i end) end
  local rs = goroutine.await_all(hs)
  assert(#rs == %d and rs[%d].values[1] == %d)
end):build()
"""

GOROUTINE_COMMANDS = """
task("commands"):command(function()
  local hs = {}
  for i = 1, 100 do hs[i] = goroutine.async(function() return exec.run("sleep 0.2").success end) end
  for _, r in ipairs(goroutine.await_all(hs)) do assert(r.success and r.values[1]) end
end):build()
"""

# state: each workflow logs "BENCH <start ms> <end ms> <operations>" (epoch milliseconds).
STATE_SETS = """
local t = task("sets"):command(function()
  local writers, per = %d, %d
  local start = time.now_ms()
  if writers == 1 then
    for i = 1, per do state.set("k" .. (i %% 1000), i) end
  else
    local hs = {}
    for w = 1, writers do
      hs[w] = goroutine.async(function()
        for i = 1, per do state.set("w" .. w .. "." .. (i %% 100), i) end
      end)
    end
    for _, r in ipairs(goroutine.await_all(hs)) do assert(r.success, r.error) end
  end
  log.info(string.format("BENCH %%d %%d %%d", start, time.now_ms(), writers * per))
end):build()
workflow.define("%s", { tasks = { t } })
"""

STATE_GETS = """
task("gets"):command(function()
  for i = 1, 1000 do state.set("g" .. i, { n = i, name = "item" .. i }) end
  local n = %d
  local start = time.now_ms()
  for i = 1, n do state.get("g" .. (i %% 1000 + 1)) end
  log.info(string.format("BENCH %%d %%d %%d", start, time.now_ms(), n))
end):build()
"""

def state_rate(cmds, cwd, env):
    """Runs the commands at the same time; operations per second from their BENCH lines."""
    procs = [subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    spans = []
    for p in procs:
        out, err = p.communicate()
        line = next((l for l in out.splitlines() if "BENCH " in l), None)
        if p.returncode != 0 or line is None:
            raise SystemExit(f"benchmark command failed: {' '.join(p.args)}\n{(out + err)[-2000:]}")
        start, end, ops = (int(x) for x in line.split("BENCH ")[1].split()[:3])
        spans.append((start, end, ops))
    ms = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
    return sum(o for _, _, o in spans) / max(ms, 1) * 1000

def median_rate(cmds, runs, cwd, env):
    return statistics.median(state_rate(cmds, cwd, env) for _ in range(runs))

def measure_state(sloth, runs, tmp, env):
    """Durable sets (one writer; 64 goroutines; 4 processes) and gets, as (name, rate, target)."""
    write(f"{tmp}/sets1.sloth", STATE_SETS % (1, 20000, "sets1"))
    write(f"{tmp}/sets64.sloth", STATE_SETS % (64, 1000, "sets64"))
    for p in range(4):
        write(f"{tmp}/sets16_{p}.sloth", STATE_SETS % (16, 1000, f"sets16_{p}"))
    write(f"{tmp}/gets.sloth", STATE_GETS % 500000)
    run = lambda name: [sloth, "run", "-f", f"{name}.sloth"]
    return [
        ("state.set, 1 coroutine in a loop", median_rate([run("sets1")], runs, tmp, env), "(bounded by commits)"),
        ("state.set, 64 goroutines", median_rate([run("sets64")], runs, tmp, env), ">= 50,000/s"),
        ("state.set, 4 processes x 16 goroutines",
         median_rate([run(f"sets16_{p}") for p in range(4)], runs, tmp, env), ">= 50,000/s"),
        ("state.get, 1 coroutine in a loop", median_rate([run("gets")], runs, tmp, env), ">= 200,000/s"),
    ]

def print_state(state_rows):
    print(f"{'state (durable: WAL, synchronous=NORMAL)':48} {'per second':>10}  {'target':>12}")
    for name, rate, target in state_rows:
        print(f"{name:48} {rate:10,.0f}  {target:>12}")

# events: build/events_bench drives one EventBus as a run does; the Lua row is event.dispatch
# from a workflow (BENCH lines as for state), the run ending once the database has them all.
EVENTS_SLOTH = """
local t = task("t"):command(function()
  local n = 100000
  local start = time.now_ms()
  for i = 1, n do event.dispatch("bench.event", { i = i }) end
  log.info(string.format("BENCH %d %d %d", start, time.now_ms(), n))
  return true
end):build()
workflow.define("events", { tasks = { t } })
"""

def measure_events(sloth, runs, tmp, env):
    bench = os.path.join(os.path.dirname(sloth), "events_bench")
    results = []
    for i in range(runs):
        d = os.path.join(tmp, f"events{i}")
        os.makedirs(d, exist_ok=True)
        out = subprocess.run([bench, d, "100000"], capture_output=True, text=True, check=True).stdout.split()
        results.append(dict(zip(out[0::2], (float(v) for v in out[1::2]))))
    med = lambda k: statistics.median(r[k] for r in results)
    write(f"{tmp}/events.sloth", EVENTS_SLOTH)
    lua_rate = median_rate([[sloth, "run", "-f", "events.sloth"]], runs, tmp, env)
    return [("events dispatched (EventBus, 1 loop)", med("dispatched_per_s"), ">= 100,000/s"),
            ("events persisted in SQLite (same run)", med("persisted_per_s"), ">= 100,000/s"),
            ("event.dispatch from a Lua task", lua_rate, ""),
            ("dispatch latency p50 (us)", med("p50_us"), ""),
            ("dispatch latency p99 (us)", med("p99_us"), "< 1,000 us")]

def print_events(rows):
    print(f"{'events (durable at return: journal + SQLite)':48} {'value':>10}  {'target':>12}")
    for name, value, target in rows:
        print(f"{name:48} {value:10,.1f}  {target:>12}")

# distributed (distributed.md "Scale", quality.md): a master on loopback and simulated agents.
# Every process started here is recorded in a Fleet and ended (SIGTERM, then SIGKILL) on the way out.
class Fleet:
    def __init__(self, sloth, tmp, env):
        self.sloth, self.tmp, self.env, self.procs = sloth, tmp, env, []

    def start(self, name, args, home):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        env = dict(self.env, SLOTH_RUNNER_HOME=os.path.join(self.tmp, home))
        # Own session: a Ctrl-C reaches only this script, which then ends them in order.
        p = subprocess.Popen([self.sloth] + args, env=env, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def stop(self, p, timeout=20):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p)

    def log_tail(self, name, chars=1500):
        try:
            with open(os.path.join(self.tmp, name + ".log")) as f:
                return f.read()[-chars:]
        except OSError:
            return ""

def raise_fd_limit():
    """1,000 TLS streams need more than the usual 1,024 descriptors; children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]

def start_master(fleet, home):
    p = fleet.start(home, ["master", "start", "--port", "0", "--bind", "127.0.0.1"], home)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None:
        m = re.search(r"listening on (\S+:\d+)", fleet.log_tail(home, 100000))
        if m:
            return p, m.group(1)
        time.sleep(0.05)
    raise SystemExit(f"master did not start:\n{fleet.log_tail(home)}")

def sloth_cli(fleet, home, args, parse_json=True):
    env = dict(fleet.env, SLOTH_RUNNER_HOME=os.path.join(fleet.tmp, home))
    r = subprocess.run([fleet.sloth] + args, env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"command failed: sloth-runner {' '.join(args)}\n{(r.stdout + r.stderr)[-2000:]}")
    return json.loads(r.stdout) if parse_json else r.stdout

def token_file(fleet, home, master, n, path):
    out = sloth_cli(fleet, home, ["agent", "token", "create", "--master", master, "--count", str(n)], False)
    tokens = [l.strip() for l in out.splitlines()[1:] if l.strip()]
    if len(tokens) != n:
        raise SystemExit(f"agent token create --count {n} printed {len(tokens)} tokens")
    write(path, "\n".join(tokens) + "\n")
    return tokens

def count_active(fleet, home, master, prefix):
    agents = sloth_cli(fleet, home, ["agent", "list", "--master", master, "-o", "json"])
    return sum(1 for a in agents if a["name"].startswith(prefix) and a.get("status") == "Active")

def wait_active(fleet, home, master, prefix, n, proc, timeout, want=None):
    """Seconds until `n` agents named prefix* are Active (want=0: until none is); None on timeout."""
    want = n if want is None else want
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if count_active(fleet, home, master, prefix) == want:
            return time.monotonic() - start
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.25 if n <= 100 else 0.5)
    return None

def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0

def proc_pss_kb(pid):
    """Proportional set size: shared library pages count once across the processes mapping them."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next((int(l.split()[1]) for l in f if l.startswith("Pss:")), 0)

def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

def cpu_percent(pids, seconds):
    """CPU % of each process over the same window (one core = 100%)."""
    before = [proc_cpu_seconds(p) for p in pids]
    start = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - start
    return [(proc_cpu_seconds(p) - b) / wall * 100 for p, b in zip(pids, before)]

def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]

def group_time(cmd, runs, cwd, env):
    """Median wall time of `cmd` run in its own process group: if this script is interrupted, the
    group (ansible's forked workers too) is killed, not only the first process."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            _, err = p.communicate()
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            raise
        times.append(time.perf_counter() - start)
        if p.returncode != 0:
            raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return statistics.median(times)

def ansible_inventory(path, n):
    write(path, "[all]\n" + "".join(f"h{i} ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
                                   for i in range(1, n + 1)))

def measure_exec_100(fleet, runs, quick):
    """agent exec --all true over one --simulate 100 process, vs ansible ad-hoc over 100 local hosts."""
    rows = []
    mproc, master = start_master(fleet, "m100")
    token_file(fleet, "m100", master, 100, f"{fleet.tmp}/tokens100")
    sim = fleet.start("sim100", ["agent", "start", "--name", "sim", "--simulate", "100", "--token",
                                 f"{fleet.tmp}/tokens100", "--master", master], "sim100")
    if wait_active(fleet, "m100", master, "sim-", 100, sim, 120) is None:
        raise SystemExit(f"100 simulated agents did not all become Active:\n{fleet.log_tail('sim100')}")
    cmd = ["agent", "exec", "--all", "true", "--master", master, "-o", "json"]
    results = sloth_cli(fleet, "m100", cmd)
    if len(results) != 100 or not all(r["success"] for r in results):
        raise SystemExit(f"agent exec --all true: {len(results)} results, not 100 successes")
    home_env = dict(fleet.env, SLOTH_RUNNER_HOME=os.path.join(fleet.tmp, "m100"))
    t_sloth = median_time([fleet.sloth] + cmd, runs, fleet.tmp, home_env)
    rows.append(("agent exec --all true, 100 agents", t_sloth, None))
    fleet.stop(sim)
    fleet.stop(mproc)
    if shutil.which("ansible"):
        ansible_inventory(f"{fleet.tmp}/inventory100", 100)
        ans = ["ansible", "all", "-i", "inventory100", "-m", "command", "-a", "true"]
        t_ans = group_time(ans + ["-f", "100"], 1 if quick else 3, fleet.tmp, fleet.env)
        rows.append(("ansible all -m command -a true, 100 hosts, -f 100", t_ans, t_ans / t_sloth))
        if not quick:
            t_ans5 = group_time(ans, 1, fleet.tmp, fleet.env)
            rows.append(("same, default forks (5)", t_ans5, t_ans5 / t_sloth))
    return rows

def measure_idle_agent(fleet, idle_s=15, window_s=10):
    """One real agent process (its own master and data dir), idle: RSS and CPU % after `idle_s`
    seconds connected. None when the agent or its master went away meanwhile."""
    mproc, master = start_master(fleet, "m1")
    token = token_file(fleet, "m1", master, 1, f"{fleet.tmp}/token_a1")[0]
    agent = fleet.start("a1", ["agent", "start", "--name", "a1", "--master", master, "--token", token], "a1")
    try:
        if wait_active(fleet, "m1", master, "a1", 1, agent, 60) is None:
            raise SystemExit(f"agent a1 did not become Active:\n{fleet.log_tail('a1')}")
        time.sleep(idle_s)
        cpu = cpu_percent([agent.pid], window_s)[0]
        out = {"rss_mb": proc_status(agent.pid, "VmRSS") / 1024, "cpu": cpu,
               "anon_mb": proc_status(agent.pid, "RssAnon") / 1024, "pss_mb": proc_pss_kb(agent.pid) / 1024,
               "threads": proc_status(agent.pid, "Threads")}
        # Seen on the shared machine: both stopped by a signal from outside this script.
        if agent.poll() is not None or mproc.poll() is not None:
            print(f"idle agent: agent exited ({agent.returncode}) / master exited ({mproc.returncode}) "
                  f"while idle, measuring again:\n{fleet.log_tail('a1', 300)}", file=sys.stderr)
            return None
        return out
    finally:
        fleet.stop(agent)
        fleet.stop(mproc)
        shutil.rmtree(os.path.join(fleet.tmp, "a1"), ignore_errors=True)
        shutil.rmtree(os.path.join(fleet.tmp, "m1"), ignore_errors=True)

def heartbeat_lateness(fleet, home, master, n, interval_s, duration_s):
    """Samples agent list for `duration_s`: per agent, the largest age of its last heartbeat minus the
    interval, and every gap between two heartbeats seen minus the interval (ms)."""
    max_age, seen, gaps, inactive, calls = {}, {}, [], 0, []
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        t0 = time.monotonic()
        agents = sloth_cli(fleet, home, ["agent", "list", "--master", master, "-o", "json"])
        now_ms = time.time() * 1000  # after the call: ages err on the late side
        calls.append(time.monotonic() - t0)
        for a in agents:
            if not a["name"].startswith("sim-"):
                continue
            if a.get("status") != "Active":
                inactive += 1
            hb = a["last_heartbeat_unix_ms"]
            max_age[a["name"]] = max(max_age.get(a["name"], 0), now_ms - hb)
            if a["name"] in seen and hb != seen[a["name"]]:
                gaps.append(hb - seen[a["name"]] - interval_s * 1000)
            seen[a["name"]] = hb
        time.sleep(max(0, 1 - (time.monotonic() - t0)))
    late = [v - interval_s * 1000 for v in max_age.values()]
    return {"agents": len(max_age), "samples": len(calls), "list_s": statistics.median(calls),
            "inactive": inactive, "late": late, "gaps": gaps}

def try_master_with(fleet, n):
    """Master with one --simulate n process (heartbeat 5 s). Returns a dict, or None when the n
    agents did not all become Active (with the reason in out['failure'])."""
    home = f"m{n}"
    mproc, master = start_master(fleet, home)
    time.sleep(1)
    out = {"n": n, "master_rss_empty_mb": proc_status(mproc.pid, "VmRSS") / 1024}
    token_file(fleet, home, master, n, f"{fleet.tmp}/tokens{n}")
    args = ["agent", "start", "--name", "sim", "--simulate", str(n), "--token", f"{fleet.tmp}/tokens{n}",
            "--master", master, "--heartbeat", "5s"]
    sim = fleet.start(f"sim{n}", args, f"sim{n}")
    out["enrol_s"] = wait_active(fleet, home, master, "sim-", n, sim, max(120, n * 0.3))
    if out["enrol_s"] is None:
        out["failure"] = (f"{count_active(fleet, home, master, 'sim-')} of {n} Active; simulate process "
                          f"{'exited ' + str(sim.returncode) if sim.poll() is not None else 'running'}, master "
                          f"{'exited ' + str(mproc.returncode) if mproc.poll() is not None else 'running'}\n"
                          + fleet.log_tail(f"sim{n}"))
        fleet.stop(sim)
        fleet.stop(mproc)
        return out
    # Admission control turns some of the first connections away ("retry later"): count those apart.
    out["admission_retries"] = fleet.log_tail(f"sim{n}", 10**9).count("unreachable")
    log_at_active = len(fleet.log_tail(f"sim{n}", 10**9))
    time.sleep(5)  # let the connection burst settle
    out["master_cpu"], out["sim_cpu"] = cpu_percent([mproc.pid, sim.pid], 10)
    for key, pid in (("master", mproc.pid), ("sim", sim.pid)):
        out[f"{key}_rss_mb"] = proc_status(pid, "VmRSS") / 1024
        out[f"{key}_threads"] = proc_status(pid, "Threads")
        out[f"{key}_fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    out["hb"] = heartbeat_lateness(fleet, home, master, n, 5, 16)
    out["master_rss_after_mb"] = proc_status(mproc.pid, "VmRSS") / 1024
    out["disconnects"] = fleet.log_tail(f"sim{n}", 10**9)[log_at_active:].count("unreachable")
    # Reconnect storm: the same (enrolled) agents, the simulate process restarted.
    fleet.stop(sim)
    wait_active(fleet, home, master, "sim-", n, None, 60, want=0)
    sim = fleet.start(f"sim{n}b", args, f"sim{n}")
    out["reconnect_s"] = wait_active(fleet, home, master, "sim-", n, sim, max(120, n * 0.3))
    fleet.stop(sim)
    fleet.stop(mproc)
    return out

def measure_master(fleet, n):
    """1,000 agents; on failure the next smaller n, so the report says how far it goes and why."""
    failures = []
    while n >= 50:
        out = try_master_with(fleet, n)
        if "failure" not in out:
            out["failures"] = failures
            return out
        failures.append((n, out["failure"]))
        n //= 2
    return {"n": 0, "failures": failures}

def measure_distributed(sloth, runs, tmp, env, quick):
    fds = raise_fd_limit()
    fleet = Fleet(sloth, tmp, env)
    try:
        rows = measure_exec_100(fleet, runs, quick)
        idle = measure_idle_agent(fleet) or measure_idle_agent(fleet)
        if idle is None:
            raise SystemExit("idle agent: stopped from outside twice (see above)")
        big = measure_master(fleet, 1000)
    finally:
        fleet.stop_all()
    return {"rows": rows, "idle": idle, "master": big, "fd_limit": fds}

def print_distributed(d):
    print(f"{'master and agents (loopback, mTLS)':48} {'median':>10}  {'peer / sloth':>12}")
    for name, t, ratio in d["rows"]:
        r = f"{ratio:11.1f}x" if ratio is not None else ""
        print(f"{name:48} {t * 1000:8.1f}ms  {r:>12}")
    print("  target: agent exec --all over 100 agents < 1 s")
    i = d["idle"]
    print(f"{'idle agent, 15 s connected: RSS':48} {i['rss_mb']:8.1f}MB  (target < 16 MB; the seed claims 32 MB)")
    print(f"{'  of it private (RssAnon) / PSS':48} {i['anon_mb']:8.1f}MB  {i['pss_mb']:.1f} MB PSS "
          "(the rest is shared library pages)")
    print(f"{'idle agent: CPU over 10 s':48} {i['cpu']:8.2f}%   (target < 1%; {i['threads']} threads)")
    m = d["master"]
    for n, why in m["failures"]:
        print(f"master with {n} simulated agents FAILED: {why}")
    if not m["n"]:
        return
    n, hb = m["n"], m["hb"]
    print(f"{f'master, {n} simulated agents: all Active after':48} {m['enrol_s']:8.1f}s   (enrol + connect, from start)")
    print(f"{'  the same agents reconnecting (restart)':48} {m['reconnect_s'] or float('nan'):8.1f}s")
    print(f"{'  master RSS (empty -> with agents)':48} {m['master_rss_mb']:8.1f}MB  "
          f"(empty {m['master_rss_empty_mb']:.1f} MB, after sampling {m['master_rss_after_mb']:.1f} MB; target < 300 MB)")
    print(f"{'  master CPU, idle with the streams, 10 s':48} {m['master_cpu']:8.2f}%   "
          f"({m['master_threads']} threads, {m['master_fds']} fds; fd limit {d['fd_limit']})")
    print(f"{'  simulate process: RSS, CPU':48} {m['sim_rss_mb']:8.1f}MB  {m['sim_cpu']:.2f}% "
          f"({m['sim_threads']} threads)")
    late, gaps = hb["late"], hb["gaps"]
    print(f"{'  heartbeat lateness (max age - 5 s), ms':48} p50 {percentile(late, 50):.0f}  "
          f"p99 {percentile(late, 99):.0f}  max {max(late):.0f}  "
          f"({hb['agents']} agents, {hb['samples']} samples of agent list, {hb['list_s'] * 1000:.0f} ms each)")
    if gaps:
        print(f"{'  heartbeat gaps seen - 5 s, ms':48} p50 {percentile(gaps, 50):.0f}  "
              f"p99 {percentile(gaps, 99):.0f}  max {max(gaps):.0f}  ({len(gaps)} gaps)")
    print(f"{'  not Active in a sample / reconnects once Active':48} {hb['inactive']} / {m['disconnects']}  "
          f"({m['admission_retries']} admission retries while connecting)")

def max_rss_kb(cmd, cwd, env):
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, cwd=cwd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return int(r.stderr.strip().splitlines()[-1])

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="build/sloth-runner")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller ansible sample")
    parser.add_argument("--state", action="store_true", help="only the state rows")
    parser.add_argument("--events", action="store_true", help="only the events rows")
    parser.add_argument("--distributed", action="store_true", help="only the master and agents rows (not in the default run)")
    args = parser.parse_args()
    # `kill` of this script ends the master and agents it started too (the finally clauses).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sloth = os.path.abspath(args.binary)
    runs = 3 if args.quick else args.runs
    tmp = tempfile.mkdtemp(prefix="sloth-bench.")
    env = dict(os.environ, SLOTH_RUNNER_HOME=os.path.join(tmp, "home"), NO_COLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    rows = []
    try:
        if args.state:
            print_state(measure_state(sloth, runs, tmp, env))
            return 0
        if args.events:
            print_events(measure_events(sloth, runs, tmp, env))
            return 0
        if args.distributed:
            print_distributed(measure_distributed(sloth, runs, tmp, env, args.quick))
            return 0
        # 1. Hello world.
        write(f"{tmp}/hello.sloth", HELLO_SLOTH)
        write(f"{tmp}/hello.yml", HELLO_PLAYBOOK)
        t_sloth = median_time([sloth, "run", "-f", "hello.sloth"], runs * 3, tmp, env)
        rows.append(("hello world: sloth-runner run", t_sloth, None))
        if shutil.which("ansible-playbook"):
            t_ans = median_time(["ansible-playbook", "-i", "localhost,", "hello.yml"], max(3, runs // 2), tmp, env)
            rows.append(("hello world: ansible-playbook", t_ans, t_ans / t_sloth))
        # 2. 1,000 `true` commands, 2 at a time.
        n = 1000
        write(f"{tmp}/many.sloth", commands_sloth(n))
        write(f"{tmp}/build.ninja", commands_ninja(n))
        write(f"{tmp}/Makefile", commands_make(n))
        t_many = median_time([sloth, "run", "-f", "many.sloth"], runs, tmp, env)
        rows.append((f"{n} x true, 2 parallel: sloth-runner", t_many, None))
        if shutil.which("ninja"):
            t_ninja = median_time(["ninja", "-j2", "-f", "build.ninja"], runs, tmp, env)
            rows.append((f"{n} x true, 2 parallel: ninja -j2", t_ninja, t_ninja / t_many))
        if shutil.which("make"):
            t_make = median_time(["make", "-j2", "-s"], runs, tmp, env)
            rows.append((f"{n} x true, 2 parallel: make -j2", t_make, t_make / t_many))
        if shutil.which("ansible-playbook"):
            sample = 20 if args.quick else 50
            write(f"{tmp}/many.yml", commands_playbook(sample))
            t_a = median_time(["ansible-playbook", "-i", "localhost,", "-f", "2", "many.yml"], 1, tmp, env, warmup=0)
            t_scaled = t_a * n / sample
            rows.append((f"{n} x true: ansible ({sample} run, scaled)", t_scaled, t_scaled / t_many))
        # 3. 10,000-task no-op DAG: run time minus load time, per task.
        n = 10000
        write(f"{tmp}/dag.sloth", noop_dag(n))
        t_load = median_time([sloth, "validate", "-f", "dag.sloth"], runs, tmp, env)
        t_run = median_time([sloth, "run", "-f", "dag.sloth"], runs, tmp, env)
        rows.append((f"{n}-task no-op DAG: load only", t_load, None))
        rows.append((f"{n}-task no-op DAG: load + run", t_run, None))
        per_task_us = (t_run - t_load) / n * 1e6
        # 4. Goroutines (goroutines.md targets).
        write(f"{tmp}/sleep1k.sloth", GOROUTINE_SLEEPERS % (1000, 100, 1000, 1000, 1000))
        write(f"{tmp}/sleep100k.sloth", GOROUTINE_SLEEPERS % (100000, 100, 100000, 100000, 100000))
        write(f"{tmp}/sleep0.sloth", GOROUTINE_SLEEPERS % (1, 100, 1, 1, 1))
        write(f"{tmp}/commands100.sloth", GOROUTINE_COMMANDS)
        rows.append(("1,000 goroutines sleeping 100 ms", median_time([sloth, "run", "-f", "sleep1k.sloth"], runs, tmp, env), None))
        rows.append(("100 goroutines running exec sleep 0.2", median_time([sloth, "run", "-f", "commands100.sloth"], runs, tmp, env), None))
        rows.append(("100,000 goroutines sleeping 100 ms", median_time([sloth, "run", "-f", "sleep100k.sloth"], max(3, runs // 3), tmp, env), None))
        base_kb = max_rss_kb([sloth, "run", "-f", "sleep0.sloth"], tmp, env)
        big_kb = max_rss_kb([sloth, "run", "-f", "sleep100k.sloth"], tmp, env)
        per_goroutine_kb = (big_kb - base_kb) / 100000
        # 5. state (quality.md).
        state_rows = measure_state(sloth, runs, tmp, env)
        # 6. events (events-and-scheduler.md).
        event_rows = measure_events(sloth, runs, tmp, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'benchmark':48} {'median':>10}  {'peer / sloth':>12}")
    for name, t, ratio in rows:
        r = f"{ratio:11.1f}x" if ratio is not None else ""
        print(f"{name:48} {t * 1000:8.1f}ms  {r:>12}")
    print(f"{'scheduling overhead per no-op task':48} {per_task_us:8.1f}us")
    print(f"{'memory per waiting goroutine (100,000)':48} {per_goroutine_kb:8.2f}KB  (peak RSS {big_kb / 1024:.0f} MB)")
    print()
    print_state(state_rows)
    print()
    print_events(event_rows)
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
