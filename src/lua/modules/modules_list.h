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
const Module& EventModule();
const Module& InfraTestModule();
const Module& PkgModule();
const Module& UserModule();
const Module& GroupModule();
const Module& FileOpsModule();
const Module& SystemdModule();
const Module& SshModule();
const Module& GitModule();
const Module& TerraformModule();
const Module& PulumiModule();
const Module& KubernetesModule();
const Module& HelmModule();
const Module& DockerModule();
const Module& IncusModule();
const Module& SaltModule();
const Module& AwsModule();
const Module& GcpModule();
const Module& AzureModule();
const Module& NotificationsModule();
const Module& SlackModule();

inline const Module& (*const kModuleList[])() = {
    LogModule,     ExecModule,          FsModule,      EnvModule,        WorkdirModule,
    StringsModule, TimeModule,          DataModule,    JsonModule,       YamlModule,
    CryptoModule,  TemplateModule,      HttpModule,    StateModule,      StackModule,
    SecretModule,  GoroutineModule,     EventModule,   InfraTestModule,  PkgModule,
    UserModule,    GroupModule,         FileOpsModule, SystemdModule,    SshModule,
    GitModule,     TerraformModule,     PulumiModule,  KubernetesModule, HelmModule,
    DockerModule,  IncusModule,         SaltModule,    AwsModule,        GcpModule,
    AzureModule,   NotificationsModule, SlackModule,
};

}  // namespace sloth
