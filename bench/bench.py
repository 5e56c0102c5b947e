#!/usr/bin/env python3
"""Side-by-side benchmarks: sloth-runner against make, ninja and ansible on this machine.

    bench/bench.py [--binary build/sloth-runner] [--runs N] [--quick] [--state] [--events]

Every row is measured in this run, on this machine, so the ratios mean something even on a noisy
shared machine. Prints a table of medians and ratios. Targets (docs/benchmarks.md, quality.md):
hello world < 20 ms and >= 50x faster than ansible-playbook; 1,000 `true` commands 2 at a time
within 1.5x of ninja -j2; < 20 us of scheduling overhead per no-op task in a 10,000-task DAG;
state.set >= 50,000 durable sets/s across concurrent writers, state.get >= 200,000/s;
events >= 100,000 dispatched and persisted per second with p99 dispatch < 1 ms (the seed claims
~10,000/s; there is no peer tool with events on this machine).
"""
import argparse
import os
import shutil
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
    args = parser.parse_args()
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
