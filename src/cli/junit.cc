// The JUnit XML report of `run --junit`. The layout follows the common subset that Jenkins,
// GitLab and GitHub reporters read: <testsuites><testsuite><testcase><failure|skipped/>.
#include "cli/junit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/plan.h"

namespace sloth {
namespace {

// Escapes text for attributes and element content. Control characters other than tab, newline
// and carriage return are not allowed in XML 1.0 at all, so they become '?'.
std::string Escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += '?';
        else
          out += c;
    }
  }
  return out;
}

std::string Seconds(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", ToMillis(d) / 1000.0);
  return buf;
}

bool Skipped(TaskStatus s) {
  return s == TaskStatus::kSkipped || s == TaskStatus::kNotRun || s == TaskStatus::kPending;
}

void AppendCase(std::string& xml, const std::string& suite, const JunitCase& c) {
  xml += "    <testcase name=\"" + Escape(c.name) + "\" classname=\"" + Escape(suite) +
         "\" time=\"" + Seconds(c.time) + "\" assertions=\"" + std::to_string(c.assertions) + "\"";
  if (c.status == TaskStatus::kFailed) {
    std::string first_line = c.error.substr(0, c.error.find('\n'));
    xml += ">\n      <failure message=\"" + Escape(first_line) + "\" type=\"TaskFailed\">" +
           Escape(c.error) + "</failure>\n    </testcase>\n";
  } else if (Skipped(c.status)) {
    xml += ">\n      <skipped message=\"" + Escape(c.message.empty() ? "not run" : c.message) +
           "\"/>\n    </testcase>\n";
  } else {
    xml += "/>\n";
  }
}

}  // namespace

JunitSuite JunitSuiteFor(const Plan& plan, const RunResult& result,
                         const std::map<std::string, int>& assertions) {
  JunitSuite suite;
  suite.name = plan.workflow().name;
  suite.time = result.duration;
  suite.error = result.error;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (!plan.selected(i)) continue;
    JunitCase c;
    c.name = plan.task(i).name;
    if (i < result.tasks.size()) {
      const TaskResult& t = result.tasks[i];
      c.status = t.status;
      c.time = t.duration;
      c.error = t.error;
      c.message = t.message;
    }
    if (auto it = assertions.find(c.name); it != assertions.end()) c.assertions = it->second;
    suite.cases.push_back(std::move(c));
  }
  return suite;
}

std::string JunitXml(const std::vector<JunitSuite>& suites) {
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n";
  for (const JunitSuite& s : suites) {
    int failures = 0, skipped = 0, assertions = 0;
    for (const JunitCase& c : s.cases) {
      failures += c.status == TaskStatus::kFailed;
      skipped += Skipped(c.status);
      assertions += c.assertions;
    }
    xml += "  <testsuite name=\"" + Escape(s.name) + "\" tests=\"" +
           std::to_string(s.cases.size()) + "\" failures=\"" + std::to_string(failures) +
           "\" errors=\"0\" skipped=\"" + std::to_string(skipped) + "\" assertions=\"" +
           std::to_string(assertions) + "\" time=\"" + Seconds(s.time) + "\">\n";
    for (const JunitCase& c : s.cases) AppendCase(xml, s.name, c);
    if (!s.error.empty()) xml += "    <system-err>" + Escape(s.error) + "</system-err>\n";
    xml += "  </testsuite>\n";
  }
  xml += "</testsuites>\n";
  return xml;
}

Status WriteJunit(const std::string& path, const std::vector<JunitSuite>& suites) {
  std::string xml = JunitXml(suites);
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return Status::Error("cannot write " + path + ": " + std::strerror(errno));
  fchmod(fd, 0644);
  size_t written = 0;
  while (written < xml.size()) {
    ssize_t n = write(fd, xml.data() + written, xml.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  int err = written == xml.size() ? 0 : errno;
  if (close(fd) != 0 && !err) err = errno;
  if (!err && rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err) {
    unlink(tmp.c_str());
    return Status::Error("cannot write " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace sloth
