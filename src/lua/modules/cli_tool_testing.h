// Test helper for the CLI wrapper modules: recording stand-in executables. Each stand-in is a
// shell script in DIR/bin that appends its working directory and argv to DIR/calls.log, saves
// its stdin when an argument is "-", and answers from canned files the test writes.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lua/runtime.h"

namespace sloth::testing {

class StandIns {
 public:
  explicit StandIns(const std::string& dir) : dir_(dir) {
    for (const char* sub : {"bin", "out", "code", "script"})
      std::filesystem::create_directories(dir_ + "/" + sub);
  }

  // Installs a stand-in named `tool`. Its answer for `tool FIRST_ARG ...` (key "tool_FIRST_ARG",
  // else "tool"): script/KEY is sourced if present, else out/KEY is printed and code/KEY is the
  // exit code (0 when absent).
  void Add(const std::string& tool) {
    std::string path = dir_ + "/bin/" + tool;
    std::ofstream(path) << R"sh(#!/bin/sh
d=$(cd "$(dirname "$0")/.." && pwd)
{ printf '%s' "$PWD"; for a in "$(basename "$0")" "$@"; do printf '\037%s' "$a"; done; printf '\n'; } >>"$d/calls.log"
for a in "$@"; do [ "$a" = "-" ] && cat >"$d/stdin.txt"; done
key="$(basename "$0")_$1"
[ -f "$d/script/$key" ] || [ -f "$d/out/$key" ] || [ -f "$d/code/$key" ] || key=$(basename "$0")
[ -f "$d/script/$key" ] && . "$d/script/$key"
[ -f "$d/out/$key" ] && cat "$d/out/$key"
[ -f "$d/code/$key" ] && exit "$(cat "$d/code/$key")"
exit 0
)sh";
    chmod(path.c_str(), 0755);
  }

  void Reply(const std::string& key, const std::string& out, int code = 0) {
    std::ofstream(dir_ + "/out/" + key) << out;
    if (code != 0) std::ofstream(dir_ + "/code/" + key) << code;
  }
  void Script(const std::string& key, const std::string& sh) {
    std::ofstream(dir_ + "/script/" + key) << sh;
  }

  // Every call so far: "tool arg arg..." (arguments joined by spaces), in order.
  std::vector<std::string> Calls() const { return Fields(1); }
  // The working directory of each call.
  std::vector<std::string> Dirs() const { return Fields(0); }
  std::string Stdin() const {
    std::ifstream in(dir_ + "/stdin.txt");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // A task whose PATH starts with the stand-ins (the rest of PATH stays, for sh and cat).
  TaskContext Task(const std::string& workdir) const {
    TaskContext task;
    task.name = "test";
    task.workdir = workdir;
    const char* path = std::getenv("PATH");
    task.env.emplace_back("PATH", dir_ + "/bin:" + (path ? path : "/usr/bin:/bin"));
    return task;
  }

 private:
  std::vector<std::string> Fields(int which) const {
    std::vector<std::string> out;
    std::ifstream in(dir_ + "/calls.log");
    std::string line;
    while (std::getline(in, line)) {
      std::stringstream fields(line);
      std::string field, joined;
      for (int i = 0; std::getline(fields, field, '\037'); ++i) {
        if (which == 0 && i == 0) joined = field;
        if (which == 1 && i > 0) joined += (i > 1 ? " " : "") + field;
      }
      out.push_back(joined);
    }
    return out;
  }

  std::string dir_;
};

}  // namespace sloth::testing
