// Starter projects for `workflow init`: each is a workflow file in which "{{name}}" stands for
// the project name.
#pragma once

#include <string>
#include <vector>

namespace sloth {

struct ProjectTemplate {
  const char* name;
  const char* summary;  // one line, for `workflow list-templates`
  const char* sloth;    // the workflow file
};

// Every template, in the order `workflow list-templates` shows them.
const std::vector<ProjectTemplate>& ProjectTemplates();

// The template called `name`, or nullptr.
const ProjectTemplate* FindProjectTemplate(const std::string& name);

}  // namespace sloth
