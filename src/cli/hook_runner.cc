#include "cli/hook_runner.h"

#include <unistd.h>

#include <csignal>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include <lua.hpp>

#include "base/duration.h"
#include "cli/events_run.h"
#include "lua/lua_util.h"
#include "store/migrations.h"
#include "store/sqlite_state_store.h"

namespace sloth {
namespace {

constexpr size_t kMaxLogBytes = 16 << 10;

// Log lines go to stderr (the runner's parent keeps them) and are kept as the output of a hook
// that returns no message.
class HookLog : public LogSink {
 public:
  explicit HookLog(std::string name) : name_(std::move(name)) {}
  void Log(const std::string&, LogLevel level, std::string_view text) override {
    if (level == LogLevel::kDebug) return;
    std::fprintf(stderr, "[hook %s] %.*s\n", name_.c_str(), static_cast<int>(text.size()),
                 text.data());
    if (lines_.size() + text.size() < kMaxLogBytes) {
      if (!lines_.empty()) lines_ += '\n';
      lines_.append(text);
    }
  }
  const std::string& lines() const { return lines_; }

 private:
  std::string name_;
  std::string lines_;
};

// The pieces every hook runtime needs: a loop, the state store on first use, a runtime.
struct HookRuntime {
  HookRuntime(const std::string& data_dir, bool check_mode, LogSink* log) {
    RuntimeOptions options;
    options.start_dir = std::filesystem::current_path().string();
    options.check_mode = check_mode;
    options.state_store = [this, data_dir]() -> Result<StateStore*> {
      if (!state) {
        auto opened = SqliteStateStore::Open(DatabasePath(data_dir));
        if (!opened.ok()) return opened.status();
        state = std::move(*opened);
      }
      return static_cast<StateStore*>(state.get());
    };
    rt = std::make_unique<Runtime>(loop, options, log);
  }
  Loop loop;
  std::unique_ptr<SqliteStateStore> state;
  std::unique_ptr<Runtime> rt;
};

// Runs the file and leaves its entry point on the stack: the returned table's `execute`, or the
// global on_event. The returned table (or nil) stays below it.
Status LoadEntryPoint(Runtime& rt, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return Status::Error(path + ": no such hook file");
  if (Status s = rt.RunFile(path, 1); !s.ok()) return s;
  lua_State* L = rt.state();  // the returned value
  if (lua_istable(L, 1)) {
    if (lua_getfield(L, 1, "execute") == LUA_TFUNCTION) return Status::Ok();
    lua_pop(L, 1);
  }
  if (lua_getglobal(L, "on_event") == LUA_TFUNCTION) return Status::Ok();
  lua_settop(L, 0);
  return Status::Error(path +
                       ": not a hook: return a table with an execute(event) function, or define "
                       "on_event(event)");
}

std::string StringField(lua_State* L, int table, const char* key) {
  lua_getfield(L, table, key);
  std::string v = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return v;
}

}  // namespace

Result<HookFileInfo> InspectHookFile(const std::string& path, const std::string& data_dir) {
  HookRuntime hr(data_dir, true, nullptr);
  if (Status s = LoadEntryPoint(*hr.rt, path); !s.ok()) return s;
  lua_State* L = hr.rt->state();
  HookFileInfo info;
  if (lua_istable(L, 1)) {
    info.name = StringField(L, 1, "name");
    info.event_type = StringField(L, 1, "event_type");
    info.stack = StringField(L, 1, "stack");
    info.description = StringField(L, 1, "description");
    lua_getfield(L, 1, "timeout");
    if (lua_isstring(L, -1)) {
      // A number is seconds; a string is a duration ("30s", "2m").
      std::string text = lua_tostring(L, -1);
      if (lua_type(L, -1) == LUA_TNUMBER) text += "s";
      auto d = ParseDuration(text);
      if (!d.ok()) return Status::Error(path + ": timeout: " + d.error());
      if (d->count() <= 0) return Status::Error(path + ": timeout: must be more than 0");
      info.timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d).count();
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "retries");
    if (lua_isinteger(L, -1)) info.retries = static_cast<int>(lua_tointeger(L, -1));
    lua_pop(L, 1);
  }
  lua_settop(L, 0);
  return info;
}

HookOutcome RunHookFile(const std::string& name, const std::string& file, const Event& event,
                        const std::string& data_dir, Duration timeout) {
  setenv(kEventDepthVariable, std::to_string(event.depth + 1).c_str(), 1);
  HookLog log(name);
  HookRuntime hr(data_dir, false, &log);
  Runtime& rt = *hr.rt;
  // Events the hook dispatches: its own bus, opened on first use, drained before returning.
  std::unique_ptr<EventBus> bus;
  rt.SetEventDispatcher(
      [&](lua_State* L, const std::string& type, const std::string& data) -> Result<std::string> {
        if (!bus) {
          auto opened = OpenEventBus(hr.loop, data_dir, /*take_orphans=*/false);
          if (!opened.ok()) return opened.status();
          bus = std::move(*opened);
        }
        Event e;
        e.type = type;
        e.source = "hook:" + name;
        e.stack = event.stack;
        e.run_id = event.run_id;
        e.depth = event.depth + 1;
        e.data_json = RedactJson(nlohmann::json::parse(data), rt)
                          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        return bus->Dispatch(std::move(e));
      });
  HookOutcome outcome;
  if (Status s = LoadEntryPoint(rt, file); !s.ok()) {
    outcome.error = s.message();
    return outcome;
  }
  lua_State* L = rt.state();
  lua_remove(L, 1);  // the returned table: keep only the function
  PushJson(L, EventToJson(event));
  TaskContext ctx;
  ctx.name = "hook:" + name;
  ctx.workdir = rt.options().start_dir;
  std::string reason = "timed out after " + FormatHuman(timeout);
  ctx.deadline = Clock::now() + timeout;
  ctx.deadline_reason = reason;
  uint64_t timer = hr.loop.After(timeout, [&] { rt.CancelTask(&ctx, reason); });
  // The dispatcher stops a runner with SIGTERM (its timeout, or its own exit): end the hook and
  // the commands it started rather than leave them behind.
  for (int signal : {SIGTERM, SIGINT})
    hr.loop.OnSignal(signal, [&] {
      rt.KillProcesses();
      rt.CancelTask(&ctx, "stopped by a signal");
    });
  bool finished = false;
  rt.Spawn(1, &ctx, [&](lua_State* co, int status) {
    finished = true;
    if (status != LUA_OK) {
      outcome.error = luaL_tolstring(co, -1, nullptr);
      return;
    }
    int n = lua_gettop(co);
    outcome.success = n == 0 || lua_toboolean(co, 1) || lua_isnil(co, 1);
    std::string message = n >= 2 && lua_isstring(co, 2) ? lua_tostring(co, 2) : "";
    if (outcome.success)
      outcome.output = message;
    else
      outcome.error = message.empty() ? "the hook returned false" : message;
  });
  hr.loop.RunUntil([&] { return finished; });
  hr.loop.Cancel(timer);
  rt.EndTask(&ctx);
  if (outcome.success && outcome.output.empty()) outcome.output = log.lines();
  outcome.error = rt.Redact(outcome.error);
  outcome.output = rt.Redact(outcome.output);
  if (bus) {
    bus->Drain(std::chrono::seconds(10));
    bus->Close();
  }
  rt.KillProcesses();
  return outcome;
}

}  // namespace sloth
