// Every built-in module, in the order `modules list` shows them. Add a module by declaring its
// accessor here and listing it in kModuleList.
#pragma once

#include "lua/module.h"

namespace sloth {

const Module& LogModule();
const Module& ExecModule();

inline const Module& (*const kModuleList[])() = {
    LogModule,
    ExecModule,
};

}  // namespace sloth
