// The agent: dials out to the master, keeps one bidirectional stream, runs the jobs that come
// down it, reconnects with exponential backoff and full jitter.
#pragma once

#include "rpc/plugin.h"

namespace sloth {

// Runs until stopped (SIGINT/SIGTERM, `agent stop`) or refused (exit 1).
int RunAgent(const AgentStartOptions& options);

}  // namespace sloth
