// http (alias net): HTTP requests through libcurl, run on the runtime's thread pool so that a
// waiting task yields. A 4xx/5xx answer is a response; only transport failures are errors.
#include "lua/modules/http.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <random>

#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/curl_loader.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

constexpr Duration kDefaultTimeout = std::chrono::seconds(30);
constexpr long kStallSeconds = 30;  // downloads without a timeout fail after this long idle
constexpr long kMaxRedirects = 20;
constexpr Duration kFirstBackoff = std::chrono::milliseconds(500);
constexpr Duration kMaxBackoff = std::chrono::seconds(30);
constexpr int kMaxRetries = 100;
constexpr char kUserAgent[] = "sloth-runner/0.1";

// --- the transfer (pool thread; no Lua here) -------------------------------------------

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// A symlink's target, so that replacing the file keeps the link (as fs.write does).
std::string ResolveLink(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return path;
  char* real = realpath(path.c_str(), nullptr);
  if (!real) return path;
  std::string target = real;
  free(real);
  return target;
}

// A temporary file beside `dest` that replaces it on Commit() and is removed otherwise. It takes
// the mode and owner of the file it replaces; a new file gets 0666 minus the umask.
class TempFile {
 public:
  TempFile() = default;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) close(fd_);
    if (!path_.empty()) unlink(path_.c_str());
  }

  Status Open(const std::string& path) {
    dest_ = ResolveLink(path);
    size_t slash = dest_.rfind('/');
    std::string dir = slash == std::string::npos ? "./" : dest_.substr(0, slash + 1);
    std::string base = slash == std::string::npos ? dest_ : dest_.substr(slash + 1);
    std::random_device rng;
    for (int i = 0; i < 100 && fd_ < 0; ++i) {
      path_ = dir + "." + base + ".sloth-" + std::to_string(rng() % 1000000000);
      fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0) {
      std::string error = "cannot create a file in " + dir + ": " + std::strerror(errno);
      path_.clear();
      return Status::Error(error);
    }
    struct stat st;
    if (stat(dest_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      fchmod(fd_, st.st_mode & 07777);
      if (st.st_uid != geteuid() || st.st_gid != getegid())
        (void)!fchown(fd_, st.st_uid, st.st_gid);  // best effort: only root may give files away
    }
    return Status::Ok();
  }

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  Status Commit() {
    bool synced = fsync(fd_) == 0;
    bool closed = close(fd_) == 0;
    fd_ = -1;
    if (!synced || !closed)
      return Status::Error("cannot write " + path_ + ": " + std::strerror(errno));
    if (rename(path_.c_str(), dest_.c_str()) != 0)
      return Status::Error("cannot rename to " + dest_ + ": " + std::strerror(errno));
    path_.clear();
    return Status::Ok();
  }

 private:
  std::string dest_;
  std::string path_;
  int fd_ = -1;
};

// What the curl callbacks write into during one transfer.
struct Transfer {
  HttpResult* result;
  int fd = -1;  // download target; -1 collects the body into result->body
  int write_errno = 0;
  const std::atomic<bool>* cancelled = nullptr;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * count;
  t->result->bytes += len;
  if (t->fd < 0) {
    t->result->body.append(data, len);
  } else if (!WriteAll(t->fd, data, len)) {
    t->write_errno = errno;
    return 0;  // curl fails the transfer with CURLE_WRITE_ERROR
  }
  return len;
}

// Keeps the headers of the last response only: a redirect or a 100 Continue starts a new block.
size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto& headers = static_cast<Transfer*>(user)->result->headers;
  std::string_view line(data, size * count);
  size_t colon = line.find(':');
  if (StartsWith(line, "HTTP/")) {
    headers.clear();
    return size * count;
  }
  if (colon == std::string_view::npos) return size * count;  // the blank line ending a block
  std::string name = Lower(Trim(line.substr(0, colon)));
  std::string value(Trim(line.substr(colon + 1)));
  auto same =
      std::find_if(headers.begin(), headers.end(), [&](const auto& h) { return h.first == name; });
  if (same == headers.end())
    headers.emplace_back(std::move(name), std::move(value));
  else
    same->second += ", " + value;
  return size * count;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->cancelled && t->cancelled->load() ? 1 : 0;  // non-zero aborts the transfer
}

// An easy handle and its header list, freed together.
class Easy {
 public:
  explicit Easy(const CurlApi& api) : api_(api), handle_(api.easy_init()) {}
  Easy(const Easy&) = delete;
  Easy& operator=(const Easy&) = delete;
  ~Easy() {
    if (handle_) api_.easy_cleanup(handle_);
    if (headers_) api_.slist_free_all(headers_);
  }
  CURL* get() const { return handle_; }
  template <typename T>
  void Set(CURLoption option, T value) {
    api_.easy_setopt(handle_, option, value);
  }
  void AddHeader(const std::string& line) { headers_ = api_.slist_append(headers_, line.c_str()); }
  curl_slist* headers() const { return headers_; }

 private:
  const CurlApi& api_;
  CURL* handle_;
  curl_slist* headers_ = nullptr;
};

void SetMethodAndBody(Easy& e, const HttpRequest& req) {
  if (req.method == "HEAD") return e.Set(CURLOPT_NOBODY, 1L);
  // POST without CUSTOMREQUEST lets curl turn it into a GET on a 301/302/303, as browsers do.
  if (req.method != "POST" && (req.method != "GET" || req.body))
    e.Set(CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (!req.body && req.method != "POST") return;
  e.Set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body ? req.body->size() : 0));
  e.Set(CURLOPT_POSTFIELDS, req.body ? req.body->c_str() : "");
}

void SetHeaders(Easy& e, const HttpRequest& req) {
  bool expect = false;
  for (const auto& [name, value] : req.headers) {
    expect = expect || Lower(name) == "expect";
    e.AddHeader(value.empty() ? name + ";" : name + ": " + value);  // "Name;" sends it empty
  }
  if (!expect) e.AddHeader("Expect:");  // no 1 s wait for a 100 Continue on large bodies
  e.Set(CURLOPT_HTTPHEADER, e.headers());
}

void Configure(Easy& e, const HttpRequest& req, Transfer& t, char* errbuf) {
  e.Set(CURLOPT_URL, req.url.c_str());
  e.Set(CURLOPT_NOSIGNAL, 1L);
  e.Set(CURLOPT_ERRORBUFFER, errbuf);
  e.Set(CURLOPT_PROTOCOLS_STR, "http,https");
  e.Set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  e.Set(CURLOPT_USERAGENT, kUserAgent);  // a User-Agent header replaces it
  e.Set(CURLOPT_ACCEPT_ENCODING, "");    // every encoding curl can decode
  e.Set(CURLOPT_FOLLOWLOCATION, req.follow_redirects ? 1L : 0L);
  e.Set(CURLOPT_MAXREDIRS, kMaxRedirects);
  e.Set(CURLOPT_SSL_VERIFYPEER, req.verify_tls ? 1L : 0L);
  e.Set(CURLOPT_SSL_VERIFYHOST, req.verify_tls ? 2L : 0L);
  if (req.timeout) {
    e.Set(CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<long long>(1, ToMillis(*req.timeout))));
  } else {
    e.Set(CURLOPT_CONNECTTIMEOUT, kStallSeconds);
    e.Set(CURLOPT_LOW_SPEED_LIMIT, 1L);
    e.Set(CURLOPT_LOW_SPEED_TIME, kStallSeconds);
  }
  SetMethodAndBody(e, req);
  SetHeaders(e, req);
  e.Set(CURLOPT_WRITEFUNCTION, OnBody);
  e.Set(CURLOPT_WRITEDATA, &t);
  e.Set(CURLOPT_HEADERFUNCTION, OnHeader);
  e.Set(CURLOPT_HEADERDATA, &t);
  e.Set(CURLOPT_XFERINFOFUNCTION, OnProgress);
  e.Set(CURLOPT_XFERINFODATA, &t);
  e.Set(CURLOPT_NOPROGRESS, 0L);
}

std::string Failure(const HttpRequest& req, std::string_view what) {
  return "http: " + req.method + " " + req.url + ": " + std::string(what);
}

std::string DescribeError(const CurlApi& api, CURLcode code, const char* errbuf, const Transfer& t,
                          const TempFile& temp) {
  if (code == CURLE_ABORTED_BY_CALLBACK) return "cancelled";
  if (code == CURLE_WRITE_ERROR && t.write_errno)
    return "cannot write " + temp.path() + ": " + std::strerror(t.write_errno);
  std::string text = api.easy_strerror(code);
  std::string detail = errbuf;
  if (detail.empty()) return text;
  return detail.find(text) == std::string::npos ? detail + " (" + text + ")" : detail;
}

}  // namespace

HttpResult PerformHttp(const HttpRequest& req, const std::atomic<bool>* cancelled) {
  HttpResult result;
  Clock::time_point start = Clock::now();
  auto api = LoadCurl();
  if (!api.ok()) return result.error = api.error(), result;
  TempFile temp;
  if (!req.download_path.empty()) {
    if (Status s = temp.Open(req.download_path); !s.ok())
      return result.error = Failure(req, s.message()), result;
  }
  Easy easy(**api);
  if (!easy.get()) return result.error = Failure(req, "curl_easy_init failed"), result;
  char errbuf[CURL_ERROR_SIZE] = "";
  Transfer t{&result, temp.fd(), 0, cancelled};
  Configure(easy, req, t, errbuf);
  CURLcode code = (*api)->easy_perform(easy.get());
  result.elapsed = Clock::now() - start;
  if (code != CURLE_OK)
    return result.error = Failure(req, DescribeError(**api, code, errbuf, t, temp)), result;
  (*api)->easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &result.status);
  char* url = nullptr;
  (*api)->easy_getinfo(easy.get(), CURLINFO_EFFECTIVE_URL, &url);
  result.url = url ? url : req.url;
  if (!req.download_path.empty() && result.status / 100 == 2) {
    if (Status s = temp.Commit(); !s.ok()) result.error = Failure(req, s.message());
  }
  return result;
}

namespace {

// One request's attempts, shared by the pool work, the retry timer and the cancel callback.
struct HttpCall {
  HttpRequest request;
  std::atomic<bool> cancelled{false};
  int attempt = 0;
  uint64_t timer = 0;
  Clock::time_point start;
  std::function<void(std::shared_ptr<HttpResult>)> finish;
};

bool ShouldRetry(const HttpResult& r) { return !r.ok() || r.status >= 500; }

Duration Backoff(int attempt) {
  Duration d = kFirstBackoff;
  for (int i = 0; i < attempt && d < kMaxBackoff; ++i) d *= 2;
  return std::min(d, kMaxBackoff);
}

void StartAttempt(Runtime& rt, lua_State* L, std::shared_ptr<HttpCall> call) {
  auto result = std::make_shared<HttpResult>();
  rt.pool().Submit(
      [call, result] { *result = PerformHttp(call->request, &call->cancelled); },
      [&rt, L, call, result] {
        if (call->cancelled) return;
        if (!ShouldRetry(*result) || call->attempt >= call->request.retries) {
          result->elapsed = Clock::now() - call->start;
          return call->finish(result);
        }
        Duration delay = Backoff(call->attempt++);
        std::string why = result->ok() ? "status " + std::to_string(result->status) : result->error;
        rt.Log(L, LogLevel::kDebug,
               "http: " + call->request.method + " " + call->request.url + ": " + why + "; retry " +
                   std::to_string(call->attempt) + " in " + FormatHuman(delay));
        call->timer = rt.loop().After(delay, [&rt, L, call] {
          call->timer = 0;
          StartAttempt(rt, L, call);
        });
      });
}

}  // namespace

int AwaitHttp(lua_State* L, HttpRequest request, std::function<int(lua_State*, HttpResult&)> push) {
  Runtime& rt = Runtime::From(L);
  auto call = std::make_shared<HttpCall>();
  call->request = std::move(request);
  auto start = [&rt, L, call, push = std::move(push)](Runtime::Done done) {
    call->start = Clock::now();
    call->finish = [done, push](std::shared_ptr<HttpResult> r) {
      done([push, r](lua_State* co) { return push(co, *r); });
    };
    StartAttempt(rt, L, call);
  };
  // Weak: the wait owns this callback and call->finish owns the wait; a strong capture would be
  // a cycle. The pool work and the retry timer keep the call alive while it runs.
  auto cancel = [&rt, weak = std::weak_ptr<HttpCall>(call)] {
    auto live = weak.lock();
    if (!live) return;
    live->cancelled = true;
    if (live->timer) rt.loop().Cancel(live->timer);
  };
  return rt.Await(L, std::move(start), std::move(cancel));
}

namespace {

// --- Lua arguments -------------------------------------------------------------------------

// What the options may hold besides the common ones.
enum Allow : unsigned { kCommon = 0, kBody = 1, kMethod = 2, kUrl = 4 };

struct Parsed {
  HttpRequest request;
  std::vector<std::pair<std::string, std::string>> query;
  bool has_body = false;
};

using Reader = void (*)(lua_State* L, int index, const char* fn, Parsed& p);

std::string Percent(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
      out += static_cast<char>(c);
    else
      out += {'%', kHex[c >> 4], kHex[c & 15]};
  }
  return out;
}

// The value on top of the stack as text; raises unless it is a string, number or boolean.
std::string ScalarText(lua_State* L, const char* fn, const char* what, const std::string& key) {
  if (lua_type(L, -1) == LUA_TBOOLEAN) return lua_toboolean(L, -1) ? "true" : "false";
  if (!lua_isstring(L, -1))
    luaL_error(L, "%s: %s '%s' must be a string, number or boolean, got %s", fn, what, key.c_str(),
               luaL_typename(L, -1));
  return lua_tostring(L, -1);
}

// The string keys of the table at `index`, sorted, so that requests come out the same each run.
std::vector<std::string> SortedKeys(lua_State* L, int index, const char* fn, const char* what) {
  std::vector<std::string> keys;
  lua_pushnil(L);
  while (lua_next(L, index)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: %s names must be strings", fn, what);
    keys.emplace_back(lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

void ReadHeaders(lua_State* L, int index, const char* fn, Parsed& p) {
  if (lua_getfield(L, index, "headers") != LUA_TTABLE)
    luaL_error(L, "%s: option 'headers' must be a table", fn);
  int t = lua_gettop(L);
  for (const std::string& name : SortedKeys(L, t, fn, "header")) {
    lua_getfield(L, t, name.c_str());
    std::string value = ScalarText(L, fn, "header", name);
    lua_pop(L, 1);
    if ((name + value).find_first_of("\r\n") != std::string::npos ||
        name.find(':') != std::string::npos)
      luaL_error(L, "%s: header '%s' contains a line break or a colon in its name", fn,
                 name.c_str());
    p.request.headers.emplace_back(name, value);
  }
  lua_pop(L, 1);
}

void ReadQuery(lua_State* L, int index, const char* fn, Parsed& p) {
  if (lua_getfield(L, index, "query") != LUA_TTABLE)
    luaL_error(L, "%s: option 'query' must be a table", fn);
  int t = lua_gettop(L);
  for (const std::string& key : SortedKeys(L, t, fn, "query")) {
    if (lua_getfield(L, t, key.c_str()) != LUA_TTABLE) {
      p.query.emplace_back(key, ScalarText(L, fn, "query value", key));
    } else {  // a list repeats the key: {tag = {"a", "b"}} -> tag=a&tag=b
      if (lua_rawlen(L, -1) == 0)
        luaL_error(L, "%s: query value '%s' must be a string, number, boolean or a list", fn,
                   key.c_str());
      for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; ++i, lua_pop(L, 1))
        p.query.emplace_back(key, ScalarText(L, fn, "query value", key));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

// A body value: a string is sent as is, a table as JSON.
void SetBody(lua_State* L, int value, const char* fn, Parsed& p) {
  if (p.has_body) luaL_error(L, "%s: give the body once (body, json or the second argument)", fn);
  if (lua_type(L, value) == LUA_TSTRING)
    p.request.body = lua_tostring(L, value);
  else if (lua_type(L, value) == LUA_TTABLE)
    p.request.body = ToJsonText(L, value);
  else
    luaL_error(L, "%s: body must be a string or a table, got %s", fn, luaL_typename(L, value));
  p.has_body = true;
}

void ReadBody(lua_State* L, int index, const char* fn, Parsed& p) {
  lua_getfield(L, index, "body");
  SetBody(L, lua_gettop(L), fn, p);
  lua_pop(L, 1);
}

void ReadJson(lua_State* L, int index, const char* fn, Parsed& p) {
  if (p.has_body) luaL_error(L, "%s: give the body once (body, json or the second argument)", fn);
  lua_getfield(L, index, "json");
  p.request.body = ToJsonText(L, -1);
  p.has_body = true;
  lua_pop(L, 1);
}

void ReadTimeout(lua_State* L, int index, const char* fn, Parsed& p) {
  p.request.timeout = OptDuration(L, index, "timeout");
}

void ReadRetries(lua_State* L, int index, const char* fn, Parsed& p) {
  double n = *OptNumber(L, index, "retries");
  if (n < 0 || n > kMaxRetries || n != static_cast<int>(n))
    luaL_error(L, "%s: option 'retries' must be a whole number from 0 to %d", fn, kMaxRetries);
  p.request.retries = static_cast<int>(n);
}

void ReadVerifyTls(lua_State* L, int index, const char* fn, Parsed& p) {
  p.request.verify_tls = *OptBool(L, index, "verify_tls");
}

void ReadFollowRedirects(lua_State* L, int index, const char* fn, Parsed& p) {
  p.request.follow_redirects = *OptBool(L, index, "follow_redirects");
}

void ReadMethod(lua_State* L, int index, const char* fn, Parsed& p) {
  p.request.method = *OptString(L, index, "method");
}

void ReadUrl(lua_State* L, int index, const char* fn, Parsed& p) {
  p.request.url = *OptString(L, index, "url");
}

struct Option {
  const char* key;
  Reader read;
  unsigned allow;  // kCommon, or the Allow bit it needs
};

constexpr Option kOptions[] = {
    {"timeout", ReadTimeout, kCommon},
    {"headers", ReadHeaders, kCommon},
    {"query", ReadQuery, kCommon},
    {"retries", ReadRetries, kCommon},
    {"verify_tls", ReadVerifyTls, kCommon},
    {"follow_redirects", ReadFollowRedirects, kCommon},
    {"body", ReadBody, kBody},
    {"json", ReadJson, kBody},
    {"method", ReadMethod, kMethod},
    {"url", ReadUrl, kUrl},
};

const Option* FindOption(std::string_view key) {
  for (const Option& o : kOptions)
    if (key == o.key) return &o;
  return nullptr;
}

// A table is an options table when it has any option key; otherwise (post/put/patch) a body.
bool IsOptionsTable(lua_State* L, int index) {
  for (const Option& o : kOptions) {
    if ((o.allow & ~kBody) != 0) continue;  // method and url belong to request{} only
    bool found = lua_getfield(L, index, o.key) != LUA_TNIL;
    lua_pop(L, 1);
    if (found) return true;
  }
  return false;
}

// Reads the options table at `index` (nil: none). Unknown keys raise, so typos are not ignored.
void ReadOptions(lua_State* L, int index, const char* fn, unsigned allow, Parsed& p) {
  if (lua_isnoneornil(L, index)) return;
  if (lua_type(L, index) != LUA_TTABLE)
    luaL_error(L, "%s: options must be a table, got %s", fn, luaL_typename(L, index));
  std::vector<std::string> names;
  for (const Option& o : kOptions)
    if ((o.allow & allow) == o.allow) names.emplace_back(o.key);
  for (const std::string& key : SortedKeys(L, index, fn, "option")) {
    const Option* o = FindOption(key);
    if (o && (o->allow & allow) == o->allow) {
      o->read(L, index, fn, p);
      continue;
    }
    std::string hint = ClosestMatch(key, names);
    luaL_error(L, "%s: unknown option '%s'%s", fn, key.c_str(),
               hint.empty() ? "" : (" (did you mean '" + hint + "'?)").c_str());
  }
}

bool ValidMethod(const std::string& m) {
  return !m.empty() && std::all_of(m.begin(), m.end(), [](unsigned char c) {
    return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c);
  });
}

// Finishes the request: method, query string, default Content-Type and timeout.
HttpRequest Finish(lua_State* L, const char* fn, Parsed& p,
                   std::optional<Duration> default_timeout) {
  HttpRequest& r = p.request;
  if (r.url.empty()) luaL_error(L, "%s: url is required", fn);
  std::transform(r.method.begin(), r.method.end(), r.method.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  if (!ValidMethod(r.method)) luaL_error(L, "%s: invalid method '%s'", fn, r.method.c_str());
  if (r.method == "HEAD" && r.body) luaL_error(L, "%s: a HEAD request has no body", fn);
  if (!p.query.empty()) {
    std::string q;
    for (const auto& [k, v] : p.query) q += (q.empty() ? "" : "&") + Percent(k) + "=" + Percent(v);
    size_t hash = r.url.find('#');
    std::string fragment = hash == std::string::npos ? "" : r.url.substr(hash);
    r.url = r.url.substr(0, hash);
    r.url += (r.url.find('?') == std::string::npos ? "?" : "&") + q + fragment;
  }
  bool has_type = std::any_of(r.headers.begin(), r.headers.end(),
                              [](const auto& h) { return Lower(h.first) == "content-type"; });
  if (r.body && !has_type && nlohmann::json::accept(*r.body))
    r.headers.emplace_back("Content-Type", "application/json");
  if (!r.timeout) r.timeout = default_timeout;
  return std::move(r);
}

// --- Lua results ---------------------------------------------------------------------------

// response:json() / response.json(): the body decoded, or nil, message.
int ResponseJson(lua_State* L) {
  size_t len = 0;
  const char* body = lua_tolstring(L, lua_upvalueindex(1), &len);
  nlohmann::json doc;
  std::string error;
  try {
    doc = nlohmann::json::parse(body, body + len);
  } catch (const nlohmann::json::exception& e) {
    error = e.what();
  }
  if (!error.empty()) return PushFailure(L, "http: response body is not valid JSON: " + error);
  PushJson(L, doc);
  return 1;
}

void SetStatus(lua_State* L, const HttpResult& r) {
  lua_pushinteger(L, r.status);
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, r.status);
  lua_setfield(L, -2, "status_code");
  lua_pushboolean(L, r.status / 100 == 2);
  lua_setfield(L, -2, "success");
  lua_pushstring(L, r.url.c_str());
  lua_setfield(L, -2, "url");
  lua_pushinteger(L, ToMillis(r.elapsed));
  lua_setfield(L, -2, "time_ms");
}

int PushResponse(lua_State* L, HttpResult& r) {
  if (!r.ok()) return PushFailure(L, r.error);
  lua_createtable(L, 0, 9);  // resp
  SetStatus(L, r);
  lua_pushlstring(L, r.body.data(), r.body.size());  // resp body
  lua_pushvalue(L, -1);                              // resp body body
  lua_setfield(L, -3, "body");                       // resp body
  lua_pushcclosure(L, ResponseJson, 1);              // resp json
  lua_setfield(L, -2, "json");                       // resp
  lua_createtable(L, 0, static_cast<int>(r.headers.size()));
  for (const auto& [name, value] : r.headers) {
    lua_pushlstring(L, value.data(), value.size());
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "headers");  // resp
  return 1;
}

int PushDownload(lua_State* L, HttpResult& r, const std::string& path) {
  if (!r.ok()) return PushFailure(L, r.error);
  lua_createtable(L, 0, 8);
  SetStatus(L, r);
  lua_pushstring(L, path.c_str());
  lua_setfield(L, -2, "path");
  lua_pushinteger(L, r.status / 100 == 2 ? static_cast<lua_Integer>(r.bytes) : 0);
  lua_setfield(L, -2, "bytes");
  return 1;
}

// --- Lua functions -------------------------------------------------------------------------

// Sends the request, except in check mode when it could change something (a method other than
// GET/HEAD/OPTIONS/TRACE, or a download): then it logs what it would do and pushes a result with
// skipped = true, success = true and status 0.
int Send(lua_State* L, HttpRequest req, std::function<int(lua_State*, HttpResult&)> push) {
  static constexpr std::string_view kSafe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
  Runtime& rt = Runtime::From(L);
  bool safe = req.download_path.empty() &&
              std::find(std::begin(kSafe), std::end(kSafe), req.method) != std::end(kSafe);
  if (safe || !rt.CheckMode(L)) return AwaitHttp(L, std::move(req), std::move(push));
  rt.Log(L, LogLevel::kDebug,
         "[check] would " + (req.download_path.empty()
                                 ? req.method + " " + req.url
                                 : "download " + req.url + " to " + req.download_path));
  HttpResult skipped;
  skipped.url = req.url;
  int n = push(L, skipped);  // result
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "success");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "skipped");
  return n;
}

int Call(lua_State* L, const char* fn, const char* method) {
  Parsed p;
  p.request.method = method;
  p.request.url = luaL_checkstring(L, 1);
  ReadOptions(L, 2, fn, kBody, p);
  if (!lua_isnone(L, 3)) luaL_argerror(L, 3, "no such argument (options go in the second)");
  return Send(L, Finish(L, fn, p, kDefaultTimeout), PushResponse);
}

// post/put/patch(url, body?, opts?): a string, or a table with no option key, is the body.
int CallWithBody(lua_State* L, const char* fn, const char* method) {
  Parsed p;
  p.request.method = method;
  p.request.url = luaL_checkstring(L, 1);
  int t = lua_type(L, 2);
  int opts = 2;
  if (t == LUA_TNIL) {
    opts = 3;  // post(url, nil, opts)
  } else if (t == LUA_TSTRING || (t == LUA_TTABLE && !IsOptionsTable(L, 2))) {
    SetBody(L, 2, fn, p);
    opts = 3;
  } else if (!lua_isnone(L, 3)) {
    luaL_argerror(L, 3, "no such argument when the second is the options table");
  }
  ReadOptions(L, opts, fn, kBody, p);
  return Send(L, Finish(L, fn, p, kDefaultTimeout), PushResponse);
}

int Get(lua_State* L) { return Call(L, "http.get", "GET"); }
int Head(lua_State* L) { return Call(L, "http.head", "HEAD"); }
int Delete(lua_State* L) { return Call(L, "http.delete", "DELETE"); }
int Post(lua_State* L) { return CallWithBody(L, "http.post", "POST"); }
int Put(lua_State* L) { return CallWithBody(L, "http.put", "PUT"); }
int Patch(lua_State* L) { return CallWithBody(L, "http.patch", "PATCH"); }

// request{method=, url=, ...}, request(method, url, opts?) or request(url, opts?).
int Request(lua_State* L) {
  constexpr char fn[] = "http.request";
  Parsed p;
  if (lua_type(L, 1) == LUA_TTABLE) {
    ReadOptions(L, 1, fn, kBody | kMethod | kUrl, p);
  } else if (lua_type(L, 2) == LUA_TSTRING) {
    p.request.method = luaL_checkstring(L, 1);
    p.request.url = lua_tostring(L, 2);
    ReadOptions(L, 3, fn, kBody, p);
  } else {
    p.request.url = luaL_checkstring(L, 1);
    ReadOptions(L, 2, fn, kBody | kMethod, p);
  }
  return Send(L, Finish(L, fn, p, kDefaultTimeout), PushResponse);
}

// download(url, dest, opts?) -> {status_code, success, path, bytes, ...}. dest is replaced
// atomically, and only by a 2xx answer's body.
int Download(lua_State* L) {
  constexpr char fn[] = "http.download";
  Parsed p;
  p.request.url = luaL_checkstring(L, 1);
  std::string path = Runtime::From(L).ResolvePath(L, luaL_checkstring(L, 2));
  p.request.download_path = path;
  ReadOptions(L, 3, fn, kCommon, p);
  auto push = [path](lua_State* co, HttpResult& r) { return PushDownload(co, r, path); };
  return Send(L, Finish(L, fn, p, std::nullopt), push);
}

}  // namespace

const Module& HttpModule() {
  static const Module m = {
      "http",
      "HTTP requests (libcurl); 4xx/5xx are responses, transport failures return nil, err",
      {
          {"get", Get, "get(url, opts?) -> response", "GET request"},
          {"post", Post, "post(url, body_or_opts?, opts?) -> response",
           "POST; a table body is sent as JSON"},
          {"put", Put, "put(url, body_or_opts?, opts?) -> response",
           "PUT; a table body is sent as JSON"},
          {"patch", Patch, "patch(url, body_or_opts?, opts?) -> response",
           "PATCH; a table body is sent as JSON"},
          {"delete", Delete, "delete(url, opts?) -> response", "DELETE request"},
          {"head", Head, "head(url, opts?) -> response", "HEAD request (headers only)"},
          {"request", Request,
           "request{method, url, ...} | request(method, url, opts?) -> response", "Any method"},
          {"download", Download, "download(url, dest, opts?) -> {status_code, path, bytes}",
           "Saves the body to a file atomically"},
      },
      {"net"},
  };
  return m;
}

}  // namespace sloth
