// The http module's client, shared with the modules that talk HTTP themselves (notifications,
// infra_test): one request description, a blocking transfer, and a yielding wait with retries.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/duration.h"

struct lua_State;

namespace sloth {

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // with the query string already appended
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::string> body;
  std::optional<Duration> timeout;  // whole transfer, per attempt; unset: no limit
  int retries = 0;                  // extra attempts after a transport error or a 5xx
  bool verify_tls = true;
  bool follow_redirects = true;
  std::string download_path;  // set: the body goes to this file (atomically), not to `body`
};

struct HttpResult {
  std::string error;  // non-empty: the transfer failed (no response)
  long status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>>
      headers;         // of the final response, names lowercase
  std::string url;     // after redirects
  uint64_t bytes = 0;  // body bytes received
  Duration elapsed{};

  bool ok() const { return error.empty(); }
};

// Performs one request on the calling thread; returns early with an error once `*cancelled`.
HttpResult PerformHttp(const HttpRequest& request, const std::atomic<bool>* cancelled = nullptr);

// Performs `request` on the runtime's pool, retrying with backoff (0.5s, 1s, 2s...) on loop
// timers, while the calling coroutine waits; then `push` pushes its results. `elapsed` covers
// all attempts. Cancelling the task aborts the transfer.
int AwaitHttp(lua_State* L, HttpRequest request, std::function<int(lua_State*, HttpResult&)> push);

}  // namespace sloth
