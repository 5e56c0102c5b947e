// Plan building: name resolution, cycle detection, stable topological order.
#include "core/plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "base/strings.h"

namespace sloth {
namespace {

std::string Where(const TaskSpec& t) { return t.source.empty() ? "" : t.source + ": "; }

// Finds one cycle among tasks that Kahn's algorithm could not order and names it, prefixed
// with the source of the cycle's first-defined task (not of a task that merely depends on it).
std::string DescribeCycle(const Plan& plan, const std::vector<bool>& ordered) {
  size_t start = 0;
  while (ordered[start]) ++start;
  std::vector<size_t> path;
  std::vector<int> seen(plan.size(), -1);
  size_t at = start;
  while (seen[at] < 0) {
    seen[at] = static_cast<int>(path.size());
    path.push_back(at);
    for (size_t d : plan.deps(at)) {
      if (!ordered[d]) {
        at = d;
        break;
      }
    }
  }
  std::vector<std::string> names;
  size_t blame = at;
  for (size_t i = static_cast<size_t>(seen[at]); i < path.size(); ++i) {
    names.push_back("\"" + plan.task(path[i]).name + "\"");
    blame = std::min(blame, path[i]);
  }
  std::reverse(names.begin(), names.end());
  names.push_back(names.front());
  return Where(plan.task(blame)) + "dependency cycle: " + Join(names, " -> ");
}

}  // namespace

Result<Plan> Plan::Build(const WorkflowSpec& workflow) {
  Plan plan;
  plan.workflow_ = workflow;
  const auto& tasks = plan.workflow_.tasks;
  std::map<std::string, size_t> index;
  std::vector<std::string> names;
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (!index.emplace(tasks[i].name, i).second)
      return Status::Error(Where(tasks[i]) + "duplicate task name \"" + tasks[i].name +
                           "\" in workflow \"" + workflow.name + "\"");
    names.push_back(tasks[i].name);
  }
  plan.deps_.resize(tasks.size());
  plan.dependents_.resize(tasks.size());
  plan.selected_.assign(tasks.size(), true);
  for (size_t i = 0; i < tasks.size(); ++i) {
    std::set<size_t> unique;
    for (const std::string& dep : tasks[i].depends_on) {
      auto it = index.find(dep);
      if (it == index.end()) {
        std::string hint = ClosestMatch(dep, names);
        return Status::Error(Where(tasks[i]) + "task \"" + tasks[i].name +
                             "\" depends on unknown task \"" + dep + "\"" +
                             (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
      }
      if (it->second == i)
        return Status::Error(Where(tasks[i]) + "dependency cycle: task \"" + tasks[i].name +
                             "\" depends on itself");
      if (unique.insert(it->second).second) {
        plan.deps_[i].push_back(it->second);
        plan.dependents_[it->second].push_back(i);
      }
    }
  }
  // Kahn's algorithm, always taking the lowest-numbered ready task: dependencies first,
  // definition order otherwise.
  std::vector<size_t> missing(tasks.size());
  std::set<size_t> ready;
  for (size_t i = 0; i < tasks.size(); ++i) {
    missing[i] = plan.deps_[i].size();
    if (missing[i] == 0) ready.insert(i);
  }
  std::vector<bool> ordered(tasks.size(), false);
  while (!ready.empty()) {
    size_t next = *ready.begin();
    ready.erase(ready.begin());
    ordered[next] = true;
    plan.order_.push_back(next);
    for (size_t d : plan.dependents_[next])
      if (--missing[d] == 0) ready.insert(d);
  }
  if (plan.order_.size() != tasks.size()) return Status::Error(DescribeCycle(plan, ordered));
  plan.index_.insert(index.begin(), index.end());
  return plan;
}

int Plan::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : static_cast<int>(it->second);
}

bool Plan::DependsOn(size_t task, size_t ancestor) const {
  std::vector<bool> seen(size(), false);
  std::vector<size_t> stack(deps_[task].begin(), deps_[task].end());
  while (!stack.empty()) {
    size_t d = stack.back();
    stack.pop_back();
    if (d == ancestor) return true;
    if (seen[d]) continue;
    seen[d] = true;
    stack.insert(stack.end(), deps_[d].begin(), deps_[d].end());
  }
  return false;
}

std::vector<size_t> Plan::Ancestors(size_t i) const {
  std::vector<bool> mark(size(), false);
  std::vector<size_t> stack(deps_[i].begin(), deps_[i].end());
  while (!stack.empty()) {
    size_t d = stack.back();
    stack.pop_back();
    if (mark[d]) continue;
    mark[d] = true;
    stack.insert(stack.end(), deps_[d].begin(), deps_[d].end());
  }
  std::vector<size_t> out;
  for (size_t t : order_)
    if (mark[t]) out.push_back(t);
  return out;
}

Status Plan::Select(const std::vector<std::string>& wanted) {
  if (wanted.empty()) return Status::Ok();
  std::vector<bool> keep(size(), false);
  std::vector<std::string> names;
  for (size_t i = 0; i < size(); ++i) names.push_back(task(i).name);
  for (const std::string& name : wanted) {
    int i = Find(name);
    if (i < 0) {
      std::string hint = ClosestMatch(name, names);
      return Status::Error("workflow \"" + workflow_.name + "\" has no task \"" + name + "\"" +
                           (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
    }
    keep[static_cast<size_t>(i)] = true;
    for (size_t a : Ancestors(static_cast<size_t>(i))) keep[a] = true;
  }
  selected_ = keep;
  return Status::Ok();
}

}  // namespace sloth
