// Lazy libcurl loading: dlopen + dlsym of the few functions the http module uses.
#include "lua/modules/curl_loader.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace sloth {
namespace {

constexpr char kLibrary[] = "libcurl.so.4";

template <typename Fn>
bool Resolve(void* lib, const char* name, Fn& fn, std::string& error) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn && error.empty())
    error = std::string("http: cannot load ") + kLibrary + ": missing " + name;
  return fn != nullptr;
}

// Fills `api`; returns the error message, empty on success.
std::string Load(CurlApi& api) {
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!lib) return std::string("http: cannot load ") + kLibrary + ": " + dlerror();
  std::string error;
  Resolve(lib, "curl_easy_init", api.easy_init, error);
  Resolve(lib, "curl_easy_setopt", api.easy_setopt, error);
  Resolve(lib, "curl_easy_perform", api.easy_perform, error);
  Resolve(lib, "curl_easy_getinfo", api.easy_getinfo, error);
  Resolve(lib, "curl_easy_cleanup", api.easy_cleanup, error);
  Resolve(lib, "curl_easy_strerror", api.easy_strerror, error);
  Resolve(lib, "curl_slist_append", api.slist_append, error);
  Resolve(lib, "curl_slist_free_all", api.slist_free_all, error);
  decltype(&::curl_global_init) global_init = nullptr;
  Resolve(lib, "curl_global_init", global_init, error);
  if (!error.empty()) return error;  // the library stays loaded: dlclose buys nothing here
  if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return "http: curl_global_init failed";
  return "";
}

}  // namespace

Result<const CurlApi*> LoadCurl() {
  static std::once_flag once;
  static CurlApi api;
  static std::string error;
  std::call_once(once, [] { error = Load(api); });
  if (!error.empty()) return Status::Error(error);
  return &api;
}

}  // namespace sloth
