// End-to-end tests of infra_test in a real run and of `run --junit FILE`.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using nlohmann::json;

constexpr char kChecks[] = R"(
workflow("checks")
  :task("files", function()
    infra_test.file_exists("/etc/hosts")
    infra_test.user_exists("root")
    infra_test.command_succeeds("true")
  end)
  :task("broken", function()
    infra_test.command_succeeds("true")
    error('bad <&" thing\1')  -- \1: a control character XML 1.0 cannot hold
  end)
  :task("after", function() end)  -- follows "broken", so it never runs
)";

// Parses the report with Python's XML parser (a real, independent one) and returns what it saw:
// {suites: [{name, tests, failures, assertions, cases: [{name, assertions, failure?}]}]}.
json ParseJunit(const std::string& path) {
  std::string cmd = R"(python3 -c '
import json, sys, xml.etree.ElementTree as E
root = E.parse(sys.argv[1]).getroot()
out = {"root": root.tag, "suites": []}
for s in root.findall("testsuite"):
    suite = {k: s.get(k) for k in ("name", "tests", "failures", "skipped", "assertions")}
    suite["cases"] = []
    for c in s.findall("testcase"):
        case = {"name": c.get("name"), "assertions": c.get("assertions")}
        f = c.find("failure")
        if f is not None: case["failure"] = f.get("message")
        if c.find("skipped") is not None: case["skipped"] = True
        suite["cases"].append(case)
    out["suites"].append(suite)
print(json.dumps(out))
' )" + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string text;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  pclose(p);
  return json::parse(text, nullptr, false);
}

bool HavePython() { return std::system("python3 -c 'import xml' >/dev/null 2>&1") == 0; }

TEST(InfraTest, JunitReportHasSuitesCasesFailuresAndEscapes) {
  if (!HavePython()) GTEST_SKIP() << "python3 is needed to parse the report";
  Sandbox box;
  box.Write("wf.sloth", kChecks);
  CmdResult r = box.Run({"run", "checks", "-f", "wf.sloth", "--junit", "out/report.xml"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);  // out/ does not exist: cannot write
  EXPECT_NE(r.err.find("--junit: cannot write out/report.xml"), std::string::npos) << Describe(r);

  r = box.Run({"run", "checks", "-f", "wf.sloth", "--junit", "report.xml"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  std::string xml = box.Read("report.xml");
  EXPECT_NE(xml.find("bad &lt;&amp;&quot; thing?"), std::string::npos) << xml;
  json doc = ParseJunit((box.work() / "report.xml").string());
  ASSERT_FALSE(doc.is_discarded()) << xml;
  EXPECT_EQ(doc["root"], "testsuites");
  ASSERT_EQ(doc["suites"].size(), 1u) << doc.dump();
  json suite = doc["suites"][0];
  EXPECT_EQ(suite["name"], "checks");
  EXPECT_EQ(suite["tests"], "3");
  EXPECT_EQ(suite["failures"], "1");
  EXPECT_EQ(suite["skipped"], "1");
  EXPECT_EQ(suite["assertions"], "4");
  ASSERT_EQ(suite["cases"].size(), 3u) << doc.dump();
  EXPECT_EQ(suite["cases"][0]["name"], "files");
  EXPECT_EQ(suite["cases"][0]["assertions"], "3");
  EXPECT_FALSE(suite["cases"][0].contains("failure"));
  EXPECT_EQ(suite["cases"][1]["name"], "broken");
  EXPECT_NE(suite["cases"][1]["failure"].get<std::string>().find("bad <&\" thing"),
            std::string::npos)
      << doc.dump();
  EXPECT_EQ(suite["cases"][2]["skipped"], true);
}

TEST(InfraTest, FailedAssertionFailsTheTaskAndPassesInCheckMode) {
  Sandbox box;
  box.Write("wf.sloth", R"(
workflow("probe")
  :task("look", function()
    infra_test.command_fails("false")
    infra_test.file_exists(values.path)
  end)
)");
  CmdResult r = box.Run({"run", "probe", "-f", "wf.sloth", "--set", "path=/definitely/not/here"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.output().find("infra_test.file_exists: expected /definitely/not/here to exist"),
            std::string::npos)
      << Describe(r);
  // --check still runs the probes: command_fails("false") really runs (a skipped command would
  // look successful and fail it), and the missing file still fails.
  r = box.Run({"run", "probe", "-f", "wf.sloth", "--check", "--set", "path=/etc/hosts"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = box.Run({"run", "probe", "-f", "wf.sloth", "--check", "--set", "path=/definitely/not"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
}

}  // namespace
}  // namespace sloth::e2e
