// The CLI's door to the distributed layer. gRPC and the code on it live in a plugin
// (libsloth-rpc.so, next to the binary) that is loaded on first use, so local runs never pay
// for loading gRPC (about 10 ms of dynamic linking).
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "exec/loop.h"
#include "lua/delegate.h"

namespace sloth {

// A Delegator that ships tasks to agents through the master found from `master_flag`, else the
// selected master (`master select`), else $SLOTH_RUNNER_MASTER. Uses the admin certificate in
// `data_dir`. Fails when no master is known or the plugin cannot be loaded.
Result<std::unique_ptr<Delegator>> OpenDelegator(Loop& loop, const std::string& data_dir,
                                                 const std::string& master_flag);

// If the plugin was loaded: shuts gRPC down and waits for its threads (call once, at exit).
void ShutdownRpcPlugin();

}  // namespace sloth
