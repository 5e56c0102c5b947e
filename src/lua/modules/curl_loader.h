// libcurl, loaded on first use: linking it would cost every sloth-runner start several
// milliseconds of dynamic loading, and most runs never make an HTTP request.
#pragma once

#include <curl/curl.h>

#include "base/status.h"

namespace sloth {

// The libcurl functions the http module calls, resolved from libcurl.so.4.
struct CurlApi {
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_perform) easy_perform;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
};

// Loads libcurl and runs curl_global_init once per process (thread-safe). Fails with
// "http: cannot load libcurl.so.4: ..." when the library or one of its functions is missing.
Result<const CurlApi*> LoadCurl();

}  // namespace sloth
