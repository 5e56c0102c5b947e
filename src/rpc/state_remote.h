// state.* inside a delegated task: the agent's task runner talks to the master's store through
// the State call. Both ends live here: the client (a StateStore) and the master's dispatcher.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/state_store.h"

namespace sloth {

// A StateStore whose every call is a State call on `channel` (blocking, 30 s deadline).
std::unique_ptr<StateStore> MakeRemoteStateStore(std::shared_ptr<grpc::Channel> channel);

// The master's side: runs `method` with `args` on `store`. Unknown methods and bad arguments are
// errors, never crashes.
Result<nlohmann::json> ServeStateCall(StateStore& store, const std::string& method,
                                      const nlohmann::json& args);

}  // namespace sloth
