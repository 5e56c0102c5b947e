// Every built-in module, in the order `modules list` shows them. Add a module by declaring its
// accessor here and listing it in kModuleList.
#pragma once

#include "lua/module.h"

namespace sloth {

const Module& LogModule();
const Module& ExecModule();
const Module& DataModule();
const Module& JsonModule();
const Module& YamlModule();
const Module& CryptoModule();
const Module& TemplateModule();
const Module& HttpModule();
const Module& FsModule();
const Module& EnvModule();
const Module& WorkdirModule();
const Module& StringsModule();
const Module& TimeModule();
const Module& StateModule();
const Module& StackModule();
const Module& SecretModule();
const Module& GoroutineModule();
const Module& InfraTestModule();
const Module& PkgModule();
const Module& UserModule();
const Module& GroupModule();
const Module& FileOpsModule();

inline const Module& (*const kModuleList[])() = {
    LogModule,  ExecModule,  FsModule,    EnvModule,     WorkdirModule,   StringsModule,
    TimeModule, DataModule,  JsonModule,  YamlModule,    CryptoModule,    TemplateModule,
    HttpModule, StateModule, StackModule, SecretModule,  GoroutineModule, InfraTestModule,
    PkgModule,  UserModule,  GroupModule, FileOpsModule,
};

}  // namespace sloth
