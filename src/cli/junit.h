// `run --junit FILE`: the run's tasks as a JUnit XML report, one testsuite per workflow and one
// testcase per task, for CI systems that show test results.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/duration.h"
#include "base/status.h"
#include "core/run_result.h"

namespace sloth {

class Plan;

struct JunitCase {
  std::string name;
  TaskStatus status = TaskStatus::kNotRun;
  Duration time{};
  std::string error;    // failure text (failed tasks)
  std::string message;  // why it was skipped (skipped tasks)
  int assertions = 0;   // infra_test assertions the task made
};

struct JunitSuite {
  std::string name;
  Duration time{};
  std::string error;  // run-level failure (workflow timeout), if any
  std::vector<JunitCase> cases;
};

// One suite from a workflow's plan and result; `assertions` is by task name.
JunitSuite JunitSuiteFor(const Plan& plan, const RunResult& result,
                         const std::map<std::string, int>& assertions);

std::string JunitXml(const std::vector<JunitSuite>& suites);

// Writes the report atomically (temp file next to `path`, then rename).
Status WriteJunit(const std::string& path, const std::vector<JunitSuite>& suites);

}  // namespace sloth
