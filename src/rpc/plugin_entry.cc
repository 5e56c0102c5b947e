// The plugin's exported entry point (see plugin.h).
#include "rpc/plugin.h"

namespace sloth {
RpcPlugin* NewRpcPlugin();
}

extern "C" __attribute__((visibility("default"))) sloth::RpcPlugin* sloth_rpc_plugin() {
  static sloth::RpcPlugin* plugin = sloth::NewRpcPlugin();
  return plugin;
}
