// StackStore and RunStore: the stacks a workflow runs against (state-and-stacks.md), the
// resources and outputs each one owns, and the record of every run with its tasks. Structured
// values (properties, outputs, values) travel as JSON text, as in StateStore.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace sloth {

struct StackInfo {
  std::string id;  // a UUID, fixed at creation
  std::string name;
  std::string description;
  std::string workflow_file;
  std::string status = "created";  // created, or the status of the last run
  std::string outputs_json = "{}";
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

struct ResourceRecord {
  std::string type;
  std::string name;
  std::string module;
  std::string properties_json = "{}";
  std::string dependencies_json = "[]";
  std::string state = "pending";       // pending, applied, failed, or what a module says
  std::string attributes_json = "{}";  // the other fields given to update_resource
  std::string run_id;                  // the run that last registered or updated it
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

struct TaskRecord {
  std::string name;
  std::string status;  // TaskStatusName
  int attempts = 0;
  int64_t duration_ms = 0;
  bool changed = false;
  std::string message;
  std::string error;
  std::string output_json = "{}";
  std::string agent;  // a delegated task: the agents it ran on, comma-separated
};

struct RunRecord {
  std::string id;
  std::string stack_id;
  std::string workflow;
  std::string file;
  std::string status = "running";  // running, success, failed, cancelled (or "running" forever
                                   // when the runner died: see `ended_at_ms`)
  bool check_mode = false;
  int64_t started_at_ms = 0;
  std::optional<int64_t> ended_at_ms;
  std::string error;
  std::string user;
  std::string host;
  int64_t pid = 0;
  std::string values_json = "{}";
  std::string outputs_json = "{}";
  std::string metadata_json = "{}";
  std::vector<TaskRecord> tasks;  // in the order they finished
};

class StackStore {
 public:
  virtual ~StackStore() = default;

  virtual Result<std::optional<StackInfo>> FindStack(const std::string& name) = 0;
  // Creates the stack; fails when one of that name exists.
  virtual Result<StackInfo> CreateStack(const std::string& name, const std::string& description,
                                        const std::string& workflow_file) = 0;
  // The stack of that name, created when missing (a run of a new name creates it). A
  // non-empty `workflow_file` is remembered as the stack's workflow.
  virtual Result<StackInfo> EnsureStack(const std::string& name,
                                        const std::string& workflow_file) = 0;
  // Puts back an exported stack with its id, times and outputs; fails when the name exists.
  virtual Status ImportStack(const StackInfo& stack) = 0;
  // Every stack, by name.
  virtual Result<std::vector<StackInfo>> ListStacks() = 0;
  // Deletes the stack with its resources and run history; false when there was none.
  virtual Result<bool> DeleteStack(const std::string& name) = 0;
  virtual Status SetStackStatus(const std::string& stack_id, const std::string& status) = 0;
  // Merges `outputs_json` (an object) into the stack's outputs: new keys win.
  virtual Status MergeOutputs(const std::string& stack_id, const std::string& outputs_json) = 0;

  virtual Result<std::optional<ResourceRecord>> GetResource(const std::string& stack_id,
                                                            const std::string& type,
                                                            const std::string& name) = 0;
  // Inserts or replaces the resource (created_at is kept when it existed).
  virtual Status PutResource(const std::string& stack_id, const ResourceRecord& resource) = 0;
  virtual Result<bool> DeleteResource(const std::string& stack_id, const std::string& type,
                                      const std::string& name) = 0;
  // The stack's resources by type, then name.
  virtual Result<std::vector<ResourceRecord>> ListResources(const std::string& stack_id) = 0;
};

class RunStore {
 public:
  virtual ~RunStore() = default;

  // Records the start of a run (its tasks come with RecordTask).
  virtual Status BeginRun(const RunRecord& run) = 0;
  // Records one finished task; `seq` orders the tasks of a run.
  virtual Status RecordTask(const std::string& run_id, int seq, const TaskRecord& task) = 0;
  virtual Status FinishRun(const std::string& run_id, const std::string& status,
                           const std::string& error, const std::string& outputs_json) = 0;
  // The stack's runs, newest first, with their tasks; `limit` 0 means all.
  virtual Result<std::vector<RunRecord>> History(const std::string& stack_id, int limit) = 0;
  // Puts an exported run back (`stack import`): the run and its tasks, replacing any of that id.
  virtual Status ImportRun(const RunRecord& run) = 0;
};

}  // namespace sloth
