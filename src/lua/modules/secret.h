// The secret module's link to the run: the CLI decrypts a stack's secrets and hands them here.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace sloth {

class Runtime;

struct RunSecrets {
  std::map<std::string, std::string> values;  // name -> plain value
  std::vector<std::string> locked;            // secrets of the stack the run has no password for
};

// Makes `secrets` what the run's tasks see: the read-only global `secrets` (nil when there are
// none) and secret.get. Reading a locked name raises an error that says how to give the
// password. The values join the runtime's redactor. Replaces what an earlier call set.
void SetSecrets(Runtime& rt, const RunSecrets& secrets);
// The values SetSecrets gave (locked names left out): what a delegated task takes along.
std::map<std::string, std::string> RunSecretValues(Runtime& rt);

}  // namespace sloth
