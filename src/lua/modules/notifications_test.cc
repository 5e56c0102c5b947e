// notifications and slack against a real webhook receiver on 127.0.0.1 (python3): the JSON
// bodies that arrive, a 4xx answer as a failed result, and nothing sent under --check.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "exec/loop.h"
#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

namespace {

// Answers /fail with 404; every request's path and body go to the file named by argv[1], one
// JSON line each.
constexpr char kReceiver[] = R"py(
import json, os, sys
from http.server import HTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with open(sys.argv[1], "a") as f:
            f.write(json.dumps({"path": self.path, "body": body, "type": self.headers.get("Content-Type")}) + "\n")
        code = 404 if self.path == "/fail" else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if code == 200 else b"no")
s = HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], os.getpid(), flush=True)
s.serve_forever()
)py";

class NotificationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  explicit NotificationsTest(bool check = false) : env_(Options(check)) {
    std::ofstream(env_.dir() + "/receiver.py") << kReceiver;
    out_ = popen(("exec python3 " + env_.dir() + "/receiver.py " + log()).c_str(), "r");
    if (!out_ || fscanf(out_, "%d %d", &port_, &pid_) != 2) port_ = 0;
  }
  ~NotificationsTest() override {
    if (pid_ > 0) kill(pid_, SIGKILL);
    if (out_) pclose(out_);
  }
  static RuntimeOptions Options(bool check) {
    RuntimeOptions o;
    o.check_mode = check;
    return o;
  }
  std::string log() const { return env_.dir() + "/requests.log"; }
  std::string Received() const {
    std::ifstream in(log());
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  Status Run(const std::string& code) {
    return env_.RunInTask("base = 'http://127.0.0.1:" + std::to_string(port_) + "'\n" + code);
  }

  LuaEnv env_;
  FILE* out_ = nullptr;
  int port_ = 0;
  pid_t pid_ = 0;
};

TEST_F(NotificationsTest, SlackDiscordAndWebhooks) {
  ASSERT_NE(port_, 0) << "cannot start python3";
  Status s = Run(R"lua(
    local r = slack.send({webhook = base .. "/slack", text = "deployed", channel = "#ops"})
    assert(r.success and r.status_code == 200, r.error)
    assert(notifications.send({type = "discord", url = base .. "/discord", text = "hi"}).success)
    assert(notifications.webhook({url = base .. "/hook", payload = {event = "done", n = 2}}).success)
    local bad = slack.message(base .. "/fail", "x")
    assert(bad.success == false and bad.status_code == 404 and bad.error == "HTTP 404: no", bad.error)
    local ok, err = pcall(notifications.slack, {text = "no url"})
    assert(not ok and err:find("webhook url is required"))
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  std::string got = Received();
  EXPECT_NE(got.find(R"("path": "/slack", "body": "{\"channel\":\"#ops\",\"text\":\"deployed\"}")"),
            std::string::npos)
      << got;
  EXPECT_NE(got.find(R"({\"content\":\"hi\"})"), std::string::npos) << got;
  EXPECT_NE(got.find(R"({\"event\":\"done\",\"n\":2})"), std::string::npos) << got;
  EXPECT_NE(got.find("application/json"), std::string::npos) << got;
}

class NotificationsCheckTest : public NotificationsTest {
 protected:
  NotificationsCheckTest() : NotificationsTest(true) {}
};

TEST_F(NotificationsCheckTest, NothingIsSentUnderCheck) {
  ASSERT_NE(port_, 0) << "cannot start python3";
  Status s = Run(R"lua(
    local r = slack.send({webhook = base .. "/slack", text = "deployed"})
    assert(r.success and r.skipped)
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Received(), "");
}

}  // namespace
}  // namespace sloth
