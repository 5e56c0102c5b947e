// state.* and stack.* inside a delegated task: the agent's task runner talks to the master's
// stores through the State and Stack calls. Both ends live here: the clients (a StateStore, a
// StackStore) and the master's dispatchers.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/stack_store.h"
#include "core/state_store.h"

namespace sloth {

// A StateStore whose every call is a State call on `channel` (blocking, 30 s deadline).
std::unique_ptr<StateStore> MakeRemoteStateStore(std::shared_ptr<grpc::Channel> channel);

// The master's side: runs `method` with `args` on `store`. Unknown methods and bad arguments are
// errors, never crashes.
Result<nlohmann::json> ServeStateCall(StateStore& store, const std::string& method,
                                      const nlohmann::json& args);

// stack.* the same way (the Stack call). A delegated task reads and records its stack's
// resources and outputs; managing stacks themselves (create, import, delete, status) stays with
// the runner and the CLI, so those calls fail with a clear error.
std::unique_ptr<StackStore> MakeRemoteStackStore(std::shared_ptr<grpc::Channel> channel);
Result<nlohmann::json> ServeStackCall(StackStore& store, const std::string& method,
                                      const nlohmann::json& args);

}  // namespace sloth
