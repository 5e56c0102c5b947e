// Lazy libssh loading: dlopen + dlsym of the functions the ssh module uses.
#include "lua/modules/ssh_loader.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace sloth {
namespace {

constexpr char kLibrary[] = "libssh.so.4";

std::string CannotLoad(const std::string& why) {
  return std::string("cannot load ") + kLibrary +
         " (is libssh installed? apt-get install libssh-4): " + why;
}

template <typename Fn>
void Resolve(void* lib, const char* name, Fn& fn, std::string& error) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn && error.empty()) error = CannotLoad(std::string("missing ") + name);
}

// Fills `api`; returns the error message, empty on success.
std::string Load(SshApi& api) {
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!lib) return CannotLoad(dlerror());
  std::string error;
#define SLOTH_SSH_RESOLVE(name) Resolve(lib, #name, api.name, error);
  SLOTH_SSH_FUNCTIONS(SLOTH_SSH_RESOLVE)
#undef SLOTH_SSH_RESOLVE
  decltype(&::ssh_init) init = nullptr;
  Resolve(lib, "ssh_init", init, error);
  if (!error.empty()) return error;  // the library stays loaded: dlclose buys nothing here
  // libssh wants ssh_init before its first session when used from several threads.
  if (init() != SSH_OK) return "ssh_init failed";
  return "";
}

}  // namespace

Result<const SshApi*> LoadSsh() {
  static std::once_flag once;
  static SshApi api;
  static std::string error;
  std::call_once(once, [] { error = Load(api); });
  if (!error.empty()) return Status::Error(error);
  return &api;
}

}  // namespace sloth
