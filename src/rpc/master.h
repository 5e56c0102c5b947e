// The master: a gRPC server (callback API: no thread per agent stream) that enrols agents,
// keeps their live streams, routes jobs (commands, delegated tasks) to them and results back.
#pragma once

#include "rpc/plugin.h"

namespace sloth {

// Creates the cluster's certificates if needed and serves in the background (gRPC's threads).
// Prints "listening on ADDR:PORT" once the port is bound.
Result<std::unique_ptr<MasterServer>> StartMaster(const MasterStartOptions& options);

}  // namespace sloth
