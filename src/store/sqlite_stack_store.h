// SqliteStackStore: stacks, resources and run records in sloth.db. Shares the connection of
// the process's other stores; not thread-safe (use it from the loop thread).
#pragma once

#include <memory>

#include "core/stack_store.h"
#include "store/db.h"

namespace sloth {

class SqliteStackStore : public StackStore, public RunStore {
 public:
  explicit SqliteStackStore(std::shared_ptr<Db> db) : db_(std::move(db)) {}

  Result<std::optional<StackInfo>> FindStack(const std::string& name) override;
  Result<StackInfo> CreateStack(const std::string& name, const std::string& description,
                                const std::string& workflow_file) override;
  Result<StackInfo> EnsureStack(const std::string& name, const std::string& workflow_file) override;
  Status ImportStack(const StackInfo& stack) override;
  Result<std::vector<StackInfo>> ListStacks() override;
  Result<bool> DeleteStack(const std::string& name) override;
  Status SetStackStatus(const std::string& stack_id, const std::string& status) override;
  Status MergeOutputs(const std::string& stack_id, const std::string& outputs_json) override;

  Result<std::optional<ResourceRecord>> GetResource(const std::string& stack_id,
                                                    const std::string& type,
                                                    const std::string& name) override;
  Status PutResource(const std::string& stack_id, const ResourceRecord& resource) override;
  Result<bool> DeleteResource(const std::string& stack_id, const std::string& type,
                              const std::string& name) override;
  Result<std::vector<ResourceRecord>> ListResources(const std::string& stack_id) override;

  Status BeginRun(const RunRecord& run) override;
  Status RecordTask(const std::string& run_id, int seq, const TaskRecord& task) override;
  Status FinishRun(const std::string& run_id, const std::string& status, const std::string& error,
                   const std::string& outputs_json) override;
  Result<std::vector<RunRecord>> History(const std::string& stack_id, int limit) override;
  Status ImportRun(const RunRecord& run) override;

 private:
  Status InsertStack(const StackInfo& stack);
  Status InsertRun(const RunRecord& run, bool replace);
  Result<std::vector<TaskRecord>> Tasks(const std::string& run_id);

  std::shared_ptr<Db> db_;
};

}  // namespace sloth
