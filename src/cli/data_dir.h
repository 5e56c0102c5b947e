// The data directory: where everything persistent lives (cli.md "Data directory").
#pragma once

#include <string>

namespace sloth {

// --data-dir if given, else $SLOTH_RUNNER_HOME, else /var/lib/sloth-runner for root and
// ~/.sloth-runner for everyone else. Not created here: whoever writes first creates it.
std::string DataDir(const std::string& flag);

}  // namespace sloth
