// `stack ...`: the stacks of the data dir's database: their resources, outputs, run history
// and lock, export/import, and drift (a check-mode re-run of the stack's workflow).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/duration.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/events_run.h"
#include "cli/stack_run.h"
#include "store/migrations.h"
#include "store/sqlite_stack_store.h"
#include "store/sqlite_state_store.h"

namespace sloth {
namespace {

using nlohmann::ordered_json;

constexpr int kShowRuns = 10;  // `stack show` lists the newest runs; `export` has them all

struct Stores {
  std::shared_ptr<Db> db;
  std::unique_ptr<SqliteStackStore> stacks;
  std::unique_ptr<SqliteStateStore> state;
};

Result<Stores> Open(const GlobalOptions& global) {
  auto db = OpenDatabase(DatabasePath(DataDir(global.data_dir)));
  if (!db.ok()) return db.status();
  return Stores{*db, std::make_unique<SqliteStackStore>(*db),
                std::make_unique<SqliteStateStore>(*db)};
}

// Exit code for a store error: 3 when the database stayed locked past its timeout.
int StoreFailure(const std::string& message) {
  bool locked = message.find("database is locked") != std::string::npos;
  return Fail(locked ? kExitUnreachable : kExitFailed, message);
}

bool ValidFormat(const std::string& format) { return format == "table" || format == "json"; }

ordered_json Parsed(const std::string& text, ordered_json fallback) {
  ordered_json value = ordered_json::parse(text, nullptr, false);
  return value.is_discarded() ? fallback : value;
}

std::string IsoTime(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

ordered_json ResourceJson(const ResourceRecord& r) {
  ordered_json j;
  j["type"] = r.type;
  j["name"] = r.name;
  j["module"] = r.module;
  j["state"] = r.state;
  j["properties"] = Parsed(r.properties_json, ordered_json::object());
  j["dependencies"] = Parsed(r.dependencies_json, ordered_json::array());
  j["attributes"] = Parsed(r.attributes_json, ordered_json::object());
  j["run_id"] = r.run_id;
  j["created_at"] = IsoTime(r.created_at_ms);
  j["updated_at"] = IsoTime(r.updated_at_ms);
  j["created_at_ms"] = r.created_at_ms;
  j["updated_at_ms"] = r.updated_at_ms;
  return j;
}

ordered_json TaskJson(const TaskRecord& t) {
  ordered_json j;
  j["name"] = t.name;
  j["status"] = t.status;
  j["attempts"] = t.attempts;
  j["duration_ms"] = t.duration_ms;
  j["changed"] = t.changed;
  j["message"] = t.message;
  j["error"] = t.error.empty() ? ordered_json() : ordered_json(t.error);
  j["output"] = Parsed(t.output_json, ordered_json::object());
  if (!t.agent.empty()) j["agent"] = t.agent;
  return j;
}

ordered_json RunJson(const RunRecord& r) {
  ordered_json j;
  j["run_id"] = r.id;
  j["workflow"] = r.workflow;
  j["file"] = r.file;
  // A run that never ended was cut short (its runner was killed).
  j["status"] = r.ended_at_ms || r.status != "running" ? r.status : "interrupted";
  j["check"] = r.check_mode;
  j["started_at"] = IsoTime(r.started_at_ms);
  j["ended_at"] = r.ended_at_ms ? ordered_json(IsoTime(*r.ended_at_ms)) : ordered_json();
  j["started_at_ms"] = r.started_at_ms;
  j["duration_ms"] =
      r.ended_at_ms ? ordered_json(*r.ended_at_ms - r.started_at_ms) : ordered_json();
  j["error"] = r.error.empty() ? ordered_json() : ordered_json(r.error);
  j["user"] = r.user;
  j["host"] = r.host;
  j["pid"] = r.pid;
  j["values"] = Parsed(r.values_json, ordered_json::object());
  j["outputs"] = Parsed(r.outputs_json, ordered_json::object());
  j["metadata"] = Parsed(r.metadata_json, ordered_json::object());
  ordered_json tasks = ordered_json::array();
  for (const TaskRecord& t : r.tasks) tasks.push_back(TaskJson(t));
  j["tasks"] = tasks;
  return j;
}

ordered_json StackJson(const StackInfo& s) {
  ordered_json j;
  j["name"] = s.name;
  j["id"] = s.id;
  j["description"] = s.description;
  j["status"] = s.status;
  j["workflow_file"] = s.workflow_file;
  j["created_at"] = IsoTime(s.created_at_ms);
  j["updated_at"] = IsoTime(s.updated_at_ms);
  j["outputs"] = Parsed(s.outputs_json, ordered_json::object());
  return j;
}

// The whole stack: what `show` (newest runs) and `export` (all runs) print.
Result<ordered_json> FullStackJson(Stores& st, const StackInfo& stack, int runs) {
  ordered_json j = StackJson(stack);
  auto resources = st.stacks->ListResources(stack.id);
  if (!resources.ok()) return resources.status();
  j["resources"] = ordered_json::array();
  for (const ResourceRecord& r : *resources) j["resources"].push_back(ResourceJson(r));
  auto history = st.stacks->History(stack.id, runs);
  if (!history.ok()) return history.status();
  j["history"] = ordered_json::array();
  for (const RunRecord& r : *history) j["history"].push_back(RunJson(r));
  return j;
}

void PrintJson(const ordered_json& j) {
  std::cout << j.dump(2, ' ', false, ordered_json::error_handler_t::replace) << "\n";
}

// Prints rows under a header, each column as wide as its widest cell.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c)
      line += c + 1 < row.size() ? row[c] + std::string(width[c] - row[c].size() + 2, ' ') : row[c];
    std::cout << line << "\n";
  }
}

std::string ValueText(const ordered_json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// Finds the stack or prints "error: stack NAME not found" (exit 1).
Result<StackInfo> Find(Stores& st, const std::string& name) {
  auto stack = st.stacks->FindStack(name);
  if (!stack.ok()) return stack.status();
  if (!stack->has_value()) return Status::Error("stack " + name + " not found");
  return **stack;
}

int NotFoundOrFailure(const std::string& message) {
  return message.find(" not found") != std::string::npos ? Fail(kExitFailed, message)
                                                         : StoreFailure(message);
}

struct OpenedStack {
  Stores st;
  StackInfo stack;
};

// Checks -o, opens the database and finds the stack; when that fails, prints why and sets
// `exit_code`.
std::optional<OpenedStack> OpenStack(const GlobalOptions& global, const StackOptions& options,
                                     int* exit_code) {
  if (!ValidFormat(options.output)) {
    *exit_code = Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
    return std::nullopt;
  }
  auto st = Open(global);
  if (!st.ok()) {
    *exit_code = StoreFailure(st.error());
    return std::nullopt;
  }
  auto stack = Find(*st, options.name);
  if (!stack.ok()) {
    *exit_code = NotFoundOrFailure(stack.error());
    return std::nullopt;
  }
  return OpenedStack{std::move(*st), std::move(*stack)};
}

}  // namespace

int CmdStackNew(const GlobalOptions& global, const StackOptions& options) {
  auto st = Open(global);
  if (!st.ok()) return StoreFailure(st.error());
  std::string file;
  if (!options.file.empty()) {
    if (!std::filesystem::exists(options.file))
      return Fail(kExitBadInput, options.file + ": no such file");
    file = std::filesystem::absolute(options.file).lexically_normal().string();
  }
  auto stack = st->stacks->CreateStack(options.name, options.description, file);
  if (!stack.ok()) return Fail(kExitFailed, stack.error());
  std::cout << "created stack " << stack->name << " (" << stack->id << ")\n";
  return kExitOk;
}

int CmdStackList(const GlobalOptions& global, const StackOptions& options) {
  if (!ValidFormat(options.output))
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  auto st = Open(global);
  if (!st.ok()) return StoreFailure(st.error());
  auto stacks = st->stacks->ListStacks();
  if (!stacks.ok()) return StoreFailure(stacks.error());
  if (options.output == "json") {
    ordered_json out = ordered_json::array();
    for (const StackInfo& s : *stacks) out.push_back(StackJson(s));
    PrintJson(out);
    return kExitOk;
  }
  if (stacks->empty()) {
    std::cout << "no stacks\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "STATUS", "UPDATED", "DESCRIPTION"}};
  for (const StackInfo& s : *stacks)
    rows.push_back({s.name, s.status, FormatUnixMs(s.updated_at_ms), s.description});
  PrintTable(rows);
  return kExitOk;
}

int CmdStackShow(const GlobalOptions& global, const StackOptions& options) {
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  auto full = FullStackJson(st, stack, kShowRuns);
  if (!full.ok()) return StoreFailure(full.error());
  if (options.output == "json") {
    PrintJson(*full);
    return kExitOk;
  }
  std::cout << "Stack:       " << stack.name << "\n"
            << "ID:          " << stack.id << "\n"
            << "Status:      " << stack.status << "\n"
            << "Description: " << stack.description << "\n"
            << "Workflow:    " << stack.workflow_file << "\n"
            << "Created:     " << FormatUnixMs(stack.created_at_ms) << "\n"
            << "Updated:     " << FormatUnixMs(stack.updated_at_ms) << "\n";
  const ordered_json& outputs = (*full)["outputs"];
  std::cout << "\nOutputs:" << (outputs.empty() ? " none" : "") << "\n";
  for (const auto& [k, v] : outputs.items()) std::cout << "  " << k << ": " << ValueText(v) << "\n";
  std::cout << "\nResources: " << (*full)["resources"].size() << "\n";
  for (const ordered_json& r : (*full)["resources"])
    std::cout << "  " << ValueText(r["type"]) << "/" << ValueText(r["name"]) << " ("
              << ValueText(r["state"]) << ")\n";
  std::cout << "\nRecent runs:" << ((*full)["history"].empty() ? " none" : "") << "\n";
  for (const ordered_json& r : (*full)["history"])
    std::cout << "  " << ValueText(r["started_at"]) << "  " << ValueText(r["status"])
              << (r["check"].get<bool>() ? " (check)" : "") << "  " << ValueText(r["run_id"])
              << "\n";
  return kExitOk;
}

int CmdStackResources(const GlobalOptions& global, const StackOptions& options) {
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  auto resources = st.stacks->ListResources(stack.id);
  if (!resources.ok()) return StoreFailure(resources.error());
  if (options.output == "json") {
    ordered_json out = ordered_json::array();
    for (const ResourceRecord& r : *resources) out.push_back(ResourceJson(r));
    PrintJson(out);
    return kExitOk;
  }
  if (resources->empty()) {
    std::cout << "stack " << stack.name << " has no resources\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"TYPE", "NAME", "MODULE", "STATE", "UPDATED"}};
  for (const ResourceRecord& r : *resources)
    rows.push_back({r.type, r.name, r.module, r.state, FormatUnixMs(r.updated_at_ms)});
  PrintTable(rows);
  return kExitOk;
}

int CmdStackOutputs(const GlobalOptions& global, const StackOptions& options) {
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  ordered_json outputs = Parsed(stack.outputs_json, ordered_json::object());
  if (options.output == "json") {
    PrintJson(outputs);
    return kExitOk;
  }
  if (outputs.empty()) std::cout << "stack " << stack.name << " has no outputs\n";
  for (const auto& [k, v] : outputs.items()) std::cout << k << ": " << ValueText(v) << "\n";
  return kExitOk;
}

int CmdStackHistory(const GlobalOptions& global, const StackOptions& options) {
  if (options.limit < 0) return Fail(kExitBadInput, "-n must be 0 (all) or more");
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  auto history = st.stacks->History(stack.id, options.limit);
  if (!history.ok()) return StoreFailure(history.error());
  ordered_json out = ordered_json::array();
  for (const RunRecord& r : *history) out.push_back(RunJson(r));
  if (options.output == "json") {
    PrintJson(out);
    return kExitOk;
  }
  if (out.empty()) {
    std::cout << "stack " << stack.name << " has no runs\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"STARTED", "STATUS", "DURATION", "TASKS", "WORKFLOW", "RUN ID", "BY"}};
  for (const ordered_json& r : out) {
    std::string status = ValueText(r["status"]) + (r["check"].get<bool>() ? " (check)" : "");
    std::string duration =
        r["duration_ms"].is_null()
            ? "-"
            : FormatHuman(std::chrono::milliseconds(r["duration_ms"].get<int64_t>()));
    rows.push_back({FormatUnixMs(r["started_at_ms"].get<int64_t>()), status, duration,
                    std::to_string(r["tasks"].size()), ValueText(r["workflow"]),
                    ValueText(r["run_id"]), ValueText(r["user"])});
  }
  PrintTable(rows);
  return kExitOk;
}

int CmdStackExport(const GlobalOptions& global, const StackOptions& options) {
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  auto full = FullStackJson(st, stack, 0);
  if (!full.ok()) return StoreFailure(full.error());
  (*full)["format"] = "sloth-runner stack export v1";
  std::string text = full->dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
  if (options.file.empty()) {
    std::cout << text;
    return kExitOk;
  }
  // Written next to the target and renamed into place: a reader never sees half a file.
  std::string tmp = options.file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return Fail(kExitFailed, "cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, options.file, ec);
  if (ec) return Fail(kExitFailed, "cannot write " + options.file + ": " + ec.message());
  std::cerr << "exported stack " << stack.name << " to " << options.file << "\n";
  return kExitOk;
}

namespace {

std::string Str(const ordered_json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// Times travel as *_ms integers (the ISO strings beside them are for people).
int64_t Ms(const ordered_json& j, const char* ms_key) {
  if (j.contains(ms_key) && j[ms_key].is_number_integer()) return j[ms_key].get<int64_t>();
  return NowUnixMs();
}

std::string Dump(const ordered_json& j, const char* key, const char* fallback) {
  return j.contains(key) && !j[key].is_null() ? j[key].dump() : fallback;
}

Status ImportDocument(Stores& st, const ordered_json& doc) {
  StackInfo stack;
  stack.name = Str(doc, "name");
  stack.id = Str(doc, "id");
  if (stack.name.empty() || stack.id.empty())
    return Status::Error("the file has no stack name or id");
  stack.description = Str(doc, "description");
  stack.workflow_file = Str(doc, "workflow_file");
  stack.status = Str(doc, "status").empty() ? "created" : Str(doc, "status");
  stack.outputs_json = Dump(doc, "outputs", "{}");
  stack.created_at_ms = stack.updated_at_ms = NowUnixMs();
  if (Status s = st.stacks->ImportStack(stack); !s.ok()) return s;
  if (doc.contains("resources") && doc["resources"].is_array())
    for (const ordered_json& r : doc["resources"]) {
      ResourceRecord rec{Str(r, "type"),
                         Str(r, "name"),
                         Str(r, "module"),
                         Dump(r, "properties", "{}"),
                         Dump(r, "dependencies", "[]"),
                         Str(r, "state"),
                         Dump(r, "attributes", "{}"),
                         Str(r, "run_id"),
                         Ms(r, "created_at_ms"),
                         Ms(r, "updated_at_ms")};
      if (rec.type.empty() || rec.name.empty())
        return Status::Error("a resource has no type or name");
      if (Status s = st.stacks->PutResource(stack.id, rec); !s.ok()) return s;
    }
  if (doc.contains("history") && doc["history"].is_array())
    for (const ordered_json& r : doc["history"]) {
      RunRecord run;
      run.id = Str(r, "run_id");
      if (run.id.empty()) return Status::Error("a run has no run_id");
      run.stack_id = stack.id;
      run.workflow = Str(r, "workflow");
      run.file = Str(r, "file");
      run.status = Str(r, "status");
      run.check_mode = r.value("check", false);
      run.started_at_ms = Ms(r, "started_at_ms");
      if (r.contains("duration_ms") && r["duration_ms"].is_number_integer())
        run.ended_at_ms = run.started_at_ms + r["duration_ms"].get<int64_t>();
      run.error = Str(r, "error");
      run.user = Str(r, "user");
      run.host = Str(r, "host");
      run.pid = r.value("pid", int64_t{0});
      run.values_json = Dump(r, "values", "{}");
      run.outputs_json = Dump(r, "outputs", "{}");
      run.metadata_json = Dump(r, "metadata", "{}");
      if (r.contains("tasks") && r["tasks"].is_array())
        for (const ordered_json& t : r["tasks"])
          run.tasks.push_back(TaskRecord{
              Str(t, "name"), Str(t, "status"), t.value("attempts", 0),
              t.value("duration_ms", int64_t{0}), t.value("changed", false), Str(t, "message"),
              Str(t, "error"), Dump(t, "output", "{}"), Str(t, "agent")});
      if (Status s = st.stacks->ImportRun(run); !s.ok()) return s;
    }
  return Status::Ok();
}

}  // namespace

int CmdStackImport(const GlobalOptions& global, const StackOptions& options) {
  std::ifstream in(options.file, std::ios::binary);
  if (!in) return Fail(kExitBadInput, options.file + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  ordered_json doc = ordered_json::parse(text.str(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return Fail(kExitBadInput, options.file + ": not a stack export (JSON object expected)");
  auto st = Open(global);
  if (!st.ok()) return StoreFailure(st.error());
  // All or nothing: a bad record leaves no half-imported stack behind.
  Status s = st->db->Transaction([&] { return ImportDocument(*st, doc); });
  if (!s.ok()) return Fail(kExitFailed, options.file + ": " + s.message());
  std::cout << "imported stack " << Str(doc, "name") << "\n";
  return kExitOk;
}

int CmdStackDelete(const GlobalOptions& global, const StackOptions& options) {
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  auto holder = st.state->LockHolder(StackLockName(stack.name));
  if (!holder.ok()) return StoreFailure(holder.error());
  if (!options.force) {
    auto resources = st.stacks->ListResources(stack.id);
    size_t n = resources.ok() ? resources->size() : 0;
    return Fail(kExitBadInput, "stack delete removes " + stack.name + " with its " +
                                   std::to_string(n) +
                                   " resources and its run history; add --force to do it");
  }
  if (holder->has_value())
    std::cerr << "warning: stack " << stack.name << " is locked by " << (*holder)->owner
              << "; deleting it anyway (--force)\n";
  auto deleted = st.stacks->DeleteStack(stack.name);
  if (!deleted.ok()) return StoreFailure(deleted.error());
  if (holder->has_value()) (void)st.state->ForceUnlock(StackLockName(stack.name));
  std::cout << "deleted stack " << stack.name << "\n";
  return kExitOk;
}

int CmdStackLock(const GlobalOptions& global, const StackOptions& options) {
  auto ttl = ParseDuration(options.ttl);
  if (!ttl.ok() || ttl->count() <= 0)
    return Fail(kExitBadInput, "--ttl: expected a duration such as 30m");
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  // A lock by hand belongs to no process (pid 0): it lasts until unlocked or its ttl ends.
  std::string who = UserAtHost();
  if (!options.reason.empty()) who += " (" + options.reason + ")";
  auto attempt =
      st.state->TryLock(StackLockName(stack.name), LockOwner{who, HostName(), 0}, ToMillis(*ttl));
  if (!attempt.ok()) return StoreFailure(attempt.error());
  if (!attempt->acquired)
    return Fail(kExitUnreachable, "stack " + stack.name + " is locked by " + attempt->holder.owner +
                                      " since " + FormatUnixMs(attempt->holder.acquired_at_ms));
  std::cout << "locked stack " << stack.name << " until "
            << FormatUnixMs(attempt->holder.expires_at_ms) << " (token " << attempt->token << ")\n";
  return kExitOk;
}

int CmdStackUnlock(const GlobalOptions& global, const StackOptions& options) {
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  auto holder = st.state->LockHolder(StackLockName(stack.name));
  if (!holder.ok()) return StoreFailure(holder.error());
  if (!holder->has_value()) return Fail(kExitFailed, "stack " + stack.name + " is not locked");
  if ((*holder)->pid != 0 && !options.force)
    return Fail(kExitFailed, "stack " + stack.name + " is held by a running run (" +
                                 (*holder)->owner + "); add --force to release it anyway");
  auto released = st.state->ForceUnlock(StackLockName(stack.name));
  if (!released.ok()) return StoreFailure(released.error());
  std::cout << "unlocked stack " << stack.name << "\n";
  return kExitOk;
}

namespace {

// Runs this binary with `args`; returns its exit code and what it printed on stdout (its
// stderr, the run's log, goes to ours).
Result<std::pair<int, std::string>> RunSelf(const std::vector<std::string>& args) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::Error("pipe failed");
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  pid_t pid = fork();
  if (pid < 0) return Status::Error("fork failed");
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    argv.push_back(self.data());
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(self.c_str(), argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out);
}

}  // namespace

// stack.drift_detected, with the resources that would change. A failure to store the event is
// a warning: the report is the command's answer.
static void EmitDriftDetected(const std::string& data_dir, const std::string& stack,
                              const ordered_json& report) {
  Loop loop;
  auto bus = OpenEventBus(loop, data_dir);
  if (!bus.ok()) {
    std::cerr << "warning: cannot store the stack.drift_detected event: " << bus.error() << "\n";
    return;
  }
  nlohmann::json changes = nlohmann::json::parse(report["resources"].dump());
  EmitEvent(bus->get(), "stack.drift_detected",
            {{"stack", {{"name", stack}, {"changes", std::move(changes)}}}}, stack,
            report.value("run_id", ""));
  (*bus)->Drain(std::chrono::seconds(10));
  (*bus)->Close();
}

int CmdStackDrift(const GlobalOptions& global, const StackOptions& options) {
  int rc = kExitOk;
  auto opened = OpenStack(global, options, &rc);
  if (!opened) return rc;
  auto& [st, stack] = *opened;
  std::string file = options.file.empty() ? stack.workflow_file : options.file;
  if (file.empty())
    return Fail(kExitBadInput, "stack " + stack.name + " has no workflow file; give it with -f");
  // The values of the last real run, so drift compares like with like.
  auto history = st.stacks->History(stack.id, 0);
  if (!history.ok()) return StoreFailure(history.error());
  std::string values = "{}";
  for (const RunRecord& r : *history)
    if (!r.check_mode) {
      values = r.values_json;
      break;
    }
  std::string data_dir = DataDir(global.data_dir);
  std::string values_file = data_dir + "/drift-values-" + std::to_string(getpid()) + ".json";
  {
    std::ofstream out(values_file, std::ios::trunc);
    out << values;
  }
  auto child = RunSelf({"run", stack.name, "-f", file, "--check", "-o", "json", "-v", values_file,
                        "--data-dir", data_dir});
  std::filesystem::remove(values_file);
  if (!child.ok()) return Fail(kExitFailed, child.error());
  ordered_json run = ordered_json::parse(child->second, nullptr, false);
  if (run.is_discarded() || !run.is_object())
    return Fail(child->first == 0 ? kExitFailed : child->first,
                "the check run of stack " + stack.name + " failed (exit " +
                    std::to_string(child->first) + ")");
  ordered_json report;
  report["stack"] = stack.name;
  report["run_id"] = run.value("run_id", "");
  report["resources"] = run.contains("changes") ? run["changes"] : ordered_json::array();
  report["failed_tasks"] = ordered_json::array();
  if (run.contains("tasks") && run["tasks"].is_object())
    for (const auto& [name, t] : run["tasks"].items())
      if (t.value("status", "") == "Failed") report["failed_tasks"].push_back(name);
  report["drift"] = !report["resources"].empty();
  if (report["drift"].get<bool>()) EmitDriftDetected(data_dir, stack.name, report);
  if (options.output == "json") {
    PrintJson(report);
  } else if (!report["drift"].get<bool>()) {
    std::cout << "No drift: stack " << stack.name << " matches its last apply\n";
  } else {
    std::cout << "Drift in stack " << stack.name << ":\n";
    for (const ordered_json& r : report["resources"]) {
      std::cout << "  " << ValueText(r["type"]) << "/" << ValueText(r["name"]) << " would be "
                << ValueText(r["status"]) << "\n";
      if (r.contains("diff"))
        for (const auto& [path, d] : r["diff"].items())
          std::cout << "      " << path << ": " << d["old"].dump() << " -> " << d["new"].dump()
                    << "\n";
    }
  }
  for (const ordered_json& name : report["failed_tasks"])
    std::cerr << "warning: task " << ValueText(name)
              << " failed in check mode; it was not checked\n";
  return report["failed_tasks"].empty() ? kExitOk : kExitFailed;
}

}  // namespace sloth
