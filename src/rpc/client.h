// The admin side: `agent list|get|exec|stop|delete|metrics|token create` against a master, and
// the Delegator a run uses to ship tasks to agents.
#pragma once

#include <memory>

#include "exec/loop.h"
#include "lua/delegate.h"
#include "rpc/plugin.h"

namespace sloth {

int RunAgentCommand(const AgentCommandOptions& options);
Result<std::string> CreateJoinToken(const std::string& data_dir, const std::string& master,
                                    Duration ttl);
Result<bool> WaitForAgent(const std::string& data_dir, const std::string& master,
                          const std::string& name, Duration timeout);

Result<std::unique_ptr<Delegator>> MakeRemoteDelegator(Loop& loop, const std::string& data_dir,
                                                       const std::string& master);

}  // namespace sloth
