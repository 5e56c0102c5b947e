// http module tests against a real HTTP server on 127.0.0.1 (python3's http.server with a small
// handler: echo, status codes, redirects, slow answers, a hit counter for retries).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
namespace {

using testing::LuaEnv;

constexpr char kServer[] = R"py(
import json, os, ssl, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import urlparse
hits, lock = {}, threading.Lock()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass

    def reply(self, code, body, ctype="text/plain", extra=()):
        body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Multi", "one")
        self.send_header("X-Multi", "two")
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)

    def handle_any(self):
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size).decode() if size else ""
        if parts[0] == "status": return self.reply(int(parts[1]), "status " + parts[1])
        if parts[0] == "redirect": return self.reply(302, "", extra=[("Location", "/echo/after")])
        if parts[0] == "slow":
            time.sleep(float(parts[1]))
            return self.reply(200, "slow done")
        if parts[0] == "flaky":  # /flaky/NAME/N: 500 for the first N hits, then 200
            with lock:
                hits[parts[1]] = hits.get(parts[1], 0) + 1
                n = hits[parts[1]]
            return self.reply(500 if n <= int(parts[2]) else 200, "hit %d" % n)
        if parts[0] == "hits": return self.reply(200, str(hits.get(parts[1], 0)))
        if parts[0] == "badjson": return self.reply(200, "{not json", "application/json")
        self.reply(200, json.dumps({"method": self.command, "path": url.path, "query": url.query,
                                    "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body}), "application/json")
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.handle_error = lambda request, address: None  # clients that time out close early
if len(sys.argv) > 2:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], os.getpid(), flush=True)
server.serve_forever()
)py";

// A python3 server process; the port and pid come from its first line of output.
class TestServer {
 public:
  bool Start(const std::string& script, const std::string& args = "") {
    out_ = popen(("exec python3 " + script + " " + args).c_str(), "r");
    return out_ && fscanf(out_, "%d %d", &port_, &pid_) == 2;
  }
  ~TestServer() {
    if (pid_ > 0) kill(pid_, SIGKILL);  // SIGTERM is blocked: the test blocks the loop's signals
    if (out_) pclose(out_);
  }
  int port() const { return port_; }

 private:
  FILE* out_ = nullptr;
  int port_ = 0;
  pid_t pid_ = 0;
};

// A port nothing listens on: bound once, then released.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("sloth-http-test-" + std::to_string(getpid()) + name))
      .string();
}

class HttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Loop::BlockSignals();
    script_ = TempPath("-server.py");
    std::ofstream(script_) << kServer;
    server_ = new TestServer;
    ASSERT_TRUE(server_->Start(script_)) << "cannot start python3 http.server";
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    std::filesystem::remove(script_);
  }

  void SetUp() override {
    ASSERT_TRUE(env_.Run("base = 'http://127.0.0.1:" + std::to_string(server_->port()) + "'").ok());
  }

  // Runs `code` at top level and fails the test with Lua's message if it raises.
  void Check(const std::string& code) {
    Status s = env_.Run(code);
    EXPECT_TRUE(s.ok()) << s.message();
  }

  static TestServer* server_;
  static std::string script_;
  LuaEnv env_;
};

TestServer* HttpTest::server_ = nullptr;
std::string HttpTest::script_;

TEST_F(HttpTest, GetReturnsStatusBodyAndLowercaseHeaders) {
  Check(R"(
    local r = http.get(base .. "/echo")
    assert(r.status == 200 and r.status_code == 200 and r.success == true)
    assert(r.headers["content-type"] == "application/json", r.headers["content-type"])
    assert(r.headers["x-multi"] == "one, two", r.headers["x-multi"])
    assert(r.url == base .. "/echo", r.url)
    assert(math.type(r.time_ms) == "integer" and r.time_ms >= 0)
    local doc = r:json()
    assert(doc.method == "GET" and doc.path == "/echo")
    assert(r.json().path == "/echo")  -- also works without the colon
    assert(net.get == http.get and require("http") == http)
  )");
}

TEST_F(HttpTest, ErrorStatusesAreResponsesNotErrors) {
  Check(R"(
    local r, err = http.get(base .. "/status/404")
    assert(r and err == nil)
    assert(r.status_code == 404 and r.success == false and r.body == "status 404")
    assert(http.get(base .. "/status/500").status_code == 500)
  )");
}

TEST_F(HttpTest, TableSecondArgumentIsSentAsJson) {
  Check(R"(
    local r = net.post(base .. "/echo", {name = "web", replicas = 2})
    local seen = r:json()
    assert(seen.method == "POST")
    assert(seen.headers["content-type"] == "application/json", seen.headers["content-type"])
    local body = json.decode(seen.body)
    assert(body.name == "web" and body.replicas == 2, seen.body)
    -- url and method are options of request{} only: here they are body fields
    seen = http.post(base .. "/echo", {url = "https://example.com", method = "x"}):json()
    assert(json.decode(seen.body).url == "https://example.com", seen.body)
  )");
}

TEST_F(HttpTest, BodyJsonAndOptionsForms) {
  Check(R"(
    -- a string body with options as the third argument keeps the caller's Content-Type
    local seen = http.put(base .. "/echo", "a=1&b=2", {headers = {["Content-Type"] = "text/plain"}}):json()
    assert(seen.method == "PUT" and seen.body == "a=1&b=2" and seen.headers["content-type"] == "text/plain")
    -- options.json and options.body (a table body is JSON too)
    seen = http.patch(base .. "/echo", {json = {1, 2}}):json()
    assert(seen.method == "PATCH" and seen.body == "[1,2]" and seen.headers["content-type"] == "application/json")
    seen = http.post(base .. "/echo", {body = {k = "v"}}):json()
    assert(seen.body == '{"k":"v"}')
    -- a string that is JSON is labelled as JSON; other strings keep curl's form default
    seen = http.post(base .. "/echo", '{"x":1}'):json()
    assert(seen.headers["content-type"] == "application/json")
    seen = http.post(base .. "/echo", "plain"):json()
    assert(seen.headers["content-type"] == "application/x-www-form-urlencoded", seen.headers["content-type"])
    -- post with no body at all
    seen = http.post(base .. "/echo"):json()
    assert(seen.method == "POST" and seen.body == "")
  )");
}

TEST_F(HttpTest, OtherMethodsAndRequestShapes) {
  Check(R"(
    assert(http.delete(base .. "/echo"):json().method == "DELETE")
    local h = http.head(base .. "/echo")
    assert(h.status_code == 200 and h.body == "" and h.headers["content-type"] == "application/json")
    assert(http.request("options", base .. "/echo"):json().method == "OPTIONS")
    local seen = http.request{method = "POST", url = base .. "/echo", body = "x"}:json()
    assert(seen.method == "POST" and seen.body == "x")
    assert(http.request(base .. "/echo"):json().method == "GET")
    assert(http.request(base .. "/echo", {method = "put"}):json().method == "PUT")
  )");
}

TEST_F(HttpTest, QueryIsEncodedAndAppended) {
  Check(R"(
    local seen = http.get(base .. "/echo?x=1", {query = {b = "a b&c/é", a = {1, true}}}):json()
    assert(seen.query == "x=1&a=1&a=true&b=a%20b%26c%2F%C3%A9", seen.query)
    seen = http.get(base .. "/echo", {query = {q = "v"}}):json()
    assert(seen.query == "q=v", seen.query)
  )");
}

TEST_F(HttpTest, HeadersAreSent) {
  Check(R"(
    local seen = http.get(base .. "/echo", {headers = {["X-Token"] = "abc", ["X-Num"] = 7}}):json()
    assert(seen.headers["x-token"] == "abc" and seen.headers["x-num"] == "7")
    assert(seen.headers["user-agent"]:find("sloth%-runner"))
    seen = http.get(base .. "/echo", {headers = {["User-Agent"] = "mine"}}):json()
    assert(seen.headers["user-agent"] == "mine")
  )");
}

TEST_F(HttpTest, RedirectsAreFollowedUnlessTurnedOff) {
  Check(R"(
    local r = http.get(base .. "/redirect")
    assert(r.status_code == 200 and r.url == base .. "/echo/after", r.url)
    assert(r:json().path == "/echo/after")
    assert(r.headers.location == nil)  -- headers are the final answer's
    local raw = http.get(base .. "/redirect", {follow_redirects = false})
    assert(raw.status_code == 302 and raw.headers.location == "/echo/after")
  )");
}

TEST_F(HttpTest, TimeoutIsATransportFailure) {
  auto start = std::chrono::steady_clock::now();
  Check(R"(
    local r, err = http.get(base .. "/slow/3", {timeout = 0.3})
    assert(r == nil and err:find("timed out") and err:find("/slow/3", 1, true), err)
    local r2, err2 = http.get(base .. "/slow/3", {timeout = "200ms"})
    assert(r2 == nil and err2:find("timed out"), err2)
  )");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(HttpTest, ConnectionRefusedNamesTheUrl) {
  std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/x";
  Check("url = '" + url + "'");
  Check(R"(
    local r, err = http.get(url)
    assert(r == nil and err:find(url, 1, true) and err:find("connect"), err)
    local d, derr = http.download(url, "never.txt")
    assert(d == nil and derr:find(url, 1, true), derr)
  )");
  EXPECT_FALSE(std::filesystem::exists(env_.dir() + "/never.txt"));
}

TEST_F(HttpTest, RetriesServerErrorsWithBackoff) {
  auto start = std::chrono::steady_clock::now();
  Check(R"(
    local r = http.get(base .. "/flaky/a/2", {retries = 3})
    assert(r.status_code == 200 and r.body == "hit 3", r.body)
    assert(http.get(base .. "/hits/a").body == "3")
    local gave_up = http.get(base .. "/flaky/b/5", {retries = 1})
    assert(gave_up.status_code == 500 and http.get(base .. "/hits/b").body == "2")
    local once = http.get(base .. "/flaky/c/5")
    assert(once.status_code == 500 and http.get(base .. "/hits/c").body == "1")
  )");
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(2000));  // 0.5 s + 1 s, then 0.5 s
  EXPECT_LT(elapsed, std::chrono::milliseconds(4000));
}

TEST_F(HttpTest, RetriesTransportErrors) {
  Check("url = 'http://127.0.0.1:" + std::to_string(ClosedPort()) + "/'");
  auto start = std::chrono::steady_clock::now();
  Check(R"(
    local r, err = http.get(url, {retries = 1})
    assert(r == nil and err:find("connect"), err)
  )");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST_F(HttpTest, DownloadReplacesTheFileAtomically) {
  std::string dest = env_.dir() + "/page.json";
  std::ofstream(dest) << "old";
  chmod(dest.c_str(), 0640);
  struct stat before;
  stat(dest.c_str(), &before);
  Check(R"(
    local d = http.download(base .. "/echo/file", "page.json")
    assert(d.status_code == 200 and d.success and d.bytes > 0, tostring(d.bytes))
    assert(d.path:sub(-10) == "/page.json", d.path)
    local text = assert(io.open(d.path)):read("a")
    assert(#text == d.bytes and json.decode(text).path == "/echo/file")
  )");
  struct stat after;
  stat(dest.c_str(), &after);
  EXPECT_NE(before.st_ino, after.st_ino);  // renamed into place, not rewritten
  EXPECT_EQ(after.st_mode & 07777, 0640u);
  // Only the file itself is left: no temporary beside it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(env_.dir()), {}), 1);
}

TEST_F(HttpTest, DownloadThroughASymlinkKeepsTheLink) {
  std::ofstream(env_.dir() + "/target.txt") << "old";
  std::filesystem::create_symlink("target.txt", env_.dir() + "/link.txt");
  Check("assert(http.download(base .. '/status/200', 'link.txt').bytes == 10)");
  EXPECT_TRUE(std::filesystem::is_symlink(env_.dir() + "/link.txt"));
  std::ifstream in(env_.dir() + "/target.txt");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), "status 200");
}

TEST_F(HttpTest, DownloadOfAnErrorLeavesTheFileAlone) {
  std::string dest = env_.dir() + "/keep.txt";
  std::ofstream(dest) << "keep";
  Check(R"(
    local d = http.download(base .. "/status/404", "keep.txt")
    assert(d.status_code == 404 and d.success == false and d.bytes == 0)
    local r, err = http.download(base .. "/echo", "no/such/dir/file")
    assert(r == nil and err:find("no/such/dir"), err)
  )");
  std::ifstream in(dest);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "keep");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(env_.dir()), {}), 1);
}

TEST_F(HttpTest, JsonOfABadBodyIsNilAndMessage) {
  Check(R"(
    local r = http.get(base .. "/badjson")
    local v, err = r:json()
    assert(v == nil and err:find("not valid JSON"), err)
    local plain, perr = http.get(base .. "/status/200"):json()
    assert(plain == nil and perr)
  )");
}

TEST_F(HttpTest, CheckModeSkipsChangingRequestsAndDownloads) {
  RuntimeOptions options;
  options.check_mode = true;
  LuaEnv env(options);
  Status s = env.Run("base = 'http://127.0.0.1:" + std::to_string(server_->port()) + "'" + R"(
    local r = http.post(base .. "/flaky/p/0", {x = 1})
    assert(r.skipped == true and r.success == true and r.status_code == 0)
    assert(http.delete(base .. "/flaky/p/0").skipped)
    assert(http.request("PUT", base .. "/flaky/p/0").skipped)
    local d = http.download(base .. "/echo", "file.txt")
    assert(d.skipped and d.bytes == 0)
    -- reading requests still run: they are how a check-mode run finds out what to do
    assert(http.get(base .. "/hits/p").body == "0")
    assert(http.head(base .. "/echo").skipped == nil)
  )");
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/file.txt"));
  EXPECT_TRUE(env.sink().Contains("[check] would POST "));
}

TEST_F(HttpTest, BadArgumentsRaise) {
  auto raises = [&](const std::string& code, const std::string& needle) {
    Status s = env_.Run(code);
    ASSERT_FALSE(s.ok()) << code;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  raises("http.get()", "bad argument #1");
  raises("http.get(base, {timeot = 1})", "unknown option 'timeot' (did you mean 'timeout'?)");
  raises("http.get(base, {timeout = 'soon'})", "timeout");
  raises("http.get(base, {headers = 'x'})", "http.get: option 'headers' must be a table");
  raises("http.get(base, {headers = {X = {}}})", "header 'X'");
  raises("http.get(base, {headers = {X = 'a\\r\\nY: b'}})", "line break");
  raises("http.get(base, {retries = -1})", "retries");
  raises("http.get(base, {query = {a = {b = 1}}})", "query value 'a'");
  raises("http.get(base, 'x')", "options must be a table");
  raises("http.post(base, {body = 'a', json = {}})", "give the body once");
  raises("http.post(base, 'a', {body = 'b'})", "give the body once");
  raises("http.head(base, {body = 'a'})", "HEAD request has no body");
  raises("http.request{url = base, method = 'BAD METHOD'}", "invalid method");
  raises("http.request{method = 'GET'}", "url is required");
  raises("http.download(base .. '/echo', 'f', {body = 'x'})", "unknown option 'body'");
  raises("http.get(base, {}, {})", "bad argument #3");
}

TEST_F(HttpTest, ConcurrentRequestsInTwoTasksOverlap) {
  lua_State* L = env_.rt().state();
  TaskContext task;
  task.name = "t";
  task.workdir = env_.dir();
  int done = 0;
  std::vector<std::string> errors;
  const char* code = "local r = http.get(base .. '/slow/0.6'); assert(r.body == 'slow done')";
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(luaL_loadstring(L, code), LUA_OK);
    env_.rt().Spawn(0, &task, [&](lua_State* co, int status) {
      if (status != LUA_OK) errors.emplace_back(luaL_tolstring(co, -1, nullptr));
      ++done;
    });
  }
  env_.loop().RunUntil([&] { return done == 2; });
  EXPECT_TRUE(errors.empty()) << errors[0];
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1100));
}

TEST_F(HttpTest, CancellingTheTaskAbortsTheTransfer) {
  lua_State* L = env_.rt().state();
  TaskContext task;
  task.name = "t";
  task.workdir = env_.dir();
  bool done = false;
  std::string error;
  ASSERT_EQ(luaL_loadstring(L, "http.get(base .. '/slow/10', {timeout = 30})"), LUA_OK);
  auto start = std::chrono::steady_clock::now();
  env_.rt().Spawn(0, &task, [&](lua_State* co, int status) {
    if (status != LUA_OK) error = luaL_tolstring(co, -1, nullptr);
    done = true;
  });
  env_.loop().After(std::chrono::milliseconds(200),
                    [&] { env_.rt().CancelTask(&task, "stopped by test"); });
  env_.loop().RunUntil([&] { return done; });
  EXPECT_NE(error.find("stopped by test"), std::string::npos) << error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(HttpTest, TlsIsVerifiedUnlessTurnedOff) {
  std::string cert = TempPath("-cert.pem"), key = TempPath("-key.pem");
  std::string gen =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout " + key +
      " -out " + cert + " >/dev/null 2>&1";
  if (std::system(gen.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a test certificate";
  TestServer tls;
  ASSERT_TRUE(tls.Start(script_, cert + " " + key));
  Check("tls = 'https://127.0.0.1:" + std::to_string(tls.port()) + "/echo'");
  Check(R"(
    local r, err = http.get(tls)
    assert(r == nil and err:find("certificate"), err)
    local ok = http.get(tls, {verify_tls = false})
    assert(ok.status_code == 200 and ok:json().path == "/echo")
  )");
  std::filesystem::remove(cert);
  std::filesystem::remove(key);
}

}  // namespace
}  // namespace sloth
