// Test helpers for code that needs a Lua runtime: a real loop and runtime, log lines captured.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <lua.hpp>

#include "lua/runtime.h"

namespace sloth::testing {

struct CapturedLine {
  std::string task;
  LogLevel level;
  std::string text;
};

class CapturingSink : public LogSink {
 public:
  void Log(const std::string& task, LogLevel level, std::string_view text) override {
    lines.push_back({task, level, std::string(text)});
  }
  bool Contains(std::string_view needle) const {
    for (const auto& l : lines)
      if (l.text.find(needle) != std::string::npos) return true;
    return false;
  }
  std::vector<CapturedLine> lines;
};

// A runtime whose start directory is a fresh temporary directory (removed afterwards).
class LuaEnv {
 public:
  explicit LuaEnv(RuntimeOptions options = {}) : dir_(MakeTempDir()) {
    if (options.start_dir.empty()) options.start_dir = dir_;
    rt_ = std::make_unique<Runtime>(loop_, options, &sink_);
  }
  ~LuaEnv() {
    rt_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Runs `code` at top level (not in a coroutine: waits drive the loop).
  Status Run(const std::string& code) { return rt_->RunString(code, "=test"); }

  // Runs `code` as the body of a task coroutine, as the engine would, until it finishes.
  Status RunInTask(const std::string& code, TaskContext* task = nullptr) {
    lua_State* L = rt_->state();
    if (luaL_loadbufferx(L, code.data(), code.size(), "=task", "t") != LUA_OK) {
      std::string msg = lua_tostring(L, -1);
      lua_pop(L, 1);
      return Status::Error(msg);
    }
    TaskContext fallback;
    fallback.name = "test";
    fallback.workdir = dir_;
    if (!task) task = &fallback;
    bool done = false;
    Status result;
    rt_->Spawn(0, task, [&](lua_State* co, int status) {
      if (status != LUA_OK) result = Status::Error(luaL_tolstring(co, -1, nullptr));
      done = true;
    });
    loop_.RunUntil([&] { return done; });
    return result;
  }

  // Evaluates a Lua expression at top level and returns tostring() of its value.
  std::string Eval(const std::string& expr) {
    Status s = Run("__eval_result = tostring(" + expr + ")");
    if (!s.ok()) return "error: " + s.message();
    lua_State* L = rt_->state();
    lua_getglobal(L, "__eval_result");
    std::string out = lua_tostring(L, -1) ? lua_tostring(L, -1) : "nil";
    lua_pop(L, 1);
    return out;
  }

  Runtime& rt() { return *rt_; }
  Loop& loop() { return loop_; }
  CapturingSink& sink() { return sink_; }
  const std::string& dir() const { return dir_; }

 private:
  static std::string MakeTempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sloth-test.XXXXXX").string();
    return mkdtemp(tmpl.data()) ? tmpl : "/tmp";
  }

  std::string dir_;
  Loop loop_;
  CapturingSink sink_;
  std::unique_ptr<Runtime> rt_;
};

}  // namespace sloth::testing
