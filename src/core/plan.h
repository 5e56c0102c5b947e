// Plan: a workflow's tasks as a checked DAG (no unknown dependency, no cycle, no duplicate name).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "core/task_spec.h"

namespace sloth {

class Plan {
 public:
  // Checks the workflow and builds the DAG. Errors start with the offending task's "file:line".
  static Result<Plan> Build(const WorkflowSpec& workflow);

  // Keeps only `wanted` and what they depend on, directly or transitively.
  Status Select(const std::vector<std::string>& wanted);

  const WorkflowSpec& workflow() const { return workflow_; }
  size_t size() const { return workflow_.tasks.size(); }
  const TaskSpec& task(size_t i) const { return workflow_.tasks[i]; }
  const std::vector<size_t>& deps(size_t i) const { return deps_[i]; }
  const std::vector<size_t>& dependents(size_t i) const { return dependents_[i]; }
  bool selected(size_t i) const { return selected_[i]; }
  // Every dependency of i, direct or transitive, in plan order.
  std::vector<size_t> Ancestors(size_t i) const;
  // Tasks in an order that puts dependencies first and otherwise keeps definition order.
  const std::vector<size_t>& order() const { return order_; }
  int Find(const std::string& name) const;
  // True when `ancestor` is a dependency of `task`, directly or transitively.
  bool DependsOn(size_t task, size_t ancestor) const;

 private:
  WorkflowSpec workflow_;
  std::vector<std::vector<size_t>> deps_;
  std::vector<std::vector<size_t>> dependents_;
  std::vector<size_t> order_;
  std::vector<bool> selected_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace sloth
