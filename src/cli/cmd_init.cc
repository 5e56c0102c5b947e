// `workflow init` and `workflow list-templates`: starter projects from the templates in
// templates.cc.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/status.h"
#include "cli/commands.h"
#include "cli/templates.h"

namespace fs = std::filesystem;

namespace sloth {
namespace {

// The name becomes a file name and a Lua string, so it is kept to a safe alphabet.
bool ValidProjectName(const std::string& name) {
  if (name.empty() || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return true;
}

std::string Substitute(std::string text, const std::string& name) {
  static const std::string kPlaceholder = "{{name}}";
  for (size_t at = text.find(kPlaceholder); at != std::string::npos;
       at = text.find(kPlaceholder, at + name.size()))
    text.replace(at, kPlaceholder.size(), name);
  return text;
}

std::string Readme(const std::string& name, const ProjectTemplate& t) {
  std::string file = name + ".sloth";
  return "# " + name + "\n\nA sloth-runner project made from the `" + t.name + "` template. " +
         t.summary + ".\n\n```sh\nsloth-runner validate -f " + file +
         "          # check it without running anything\nsloth-runner workflow preview -f " + file +
         "  # show the plan\nsloth-runner run -f " + file +
         "               # run it\nsloth-runner modules list                    # the built-in "
         "Lua modules\n```\n\nThe comments at the top of `" +
         file + "` say what it needs to run.\n";
}

// Creates `path` with `content`; never replaces an existing file (O_EXCL).
Status WriteNew(const fs::path& path, const std::string& content) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Error(path.string() + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string err = std::strerror(errno);
      close(fd);
      return Status::Error(path.string() + ": " + err);
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return Status::Error(path.string() + ": " + std::strerror(errno));
  return Status::Ok();
}

std::string TemplateNames() {
  std::string names;
  for (const ProjectTemplate& t : ProjectTemplates())
    names += (names.empty() ? "" : ", ") + std::string(t.name);
  return names;
}

}  // namespace

int CmdWorkflowInit(const GlobalOptions&, const InitOptions& options) {
  if (!ValidProjectName(options.name))
    return Fail(kExitBadInput,
                "invalid project name \"" + options.name +
                    "\" (letters, digits, '-', '_' and '.', starting with a letter or digit)");
  const ProjectTemplate* t = FindProjectTemplate(options.template_name);
  if (!t)
    return Fail(kExitBadInput,
                "unknown template \"" + options.template_name + "\" (" + TemplateNames() + ")");
  fs::path dir = options.dir.empty() ? fs::path(options.name) : fs::path(options.dir);
  std::vector<std::pair<fs::path, std::string>> files = {
      {dir / (options.name + ".sloth"), Substitute(t->sloth, options.name)},
      {dir / "README.md", Readme(options.name, *t)},
  };
  std::error_code ec;
  for (const auto& [path, content] : files)
    if (fs::exists(fs::symlink_status(path, ec)))
      return Fail(kExitFailed, path.string() + " already exists (not overwriting it)");
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    return Fail(kExitFailed, dir.string() + " exists and is not a directory");
  fs::create_directories(dir, ec);
  if (ec) return Fail(kExitFailed, "cannot create " + dir.string() + ": " + ec.message());
  for (const auto& [path, content] : files) {
    Status s = WriteNew(path, content);
    if (!s.ok()) return Fail(kExitFailed, s.message());
  }
  std::cout << "Created " << options.name << " from the " << t->name << " template:\n";
  for (const auto& file : files) std::cout << "  " << file.first.string() << "\n";
  std::cout << "Next: cd " << dir.string() << ", read " << options.name
            << ".sloth (its first lines say what it needs), then: sloth-runner run -f "
            << options.name << ".sloth\n";
  return kExitOk;
}

int CmdWorkflowListTemplates(const GlobalOptions&, const std::string& format) {
  if (format != "table" && format != "json")
    return Fail(kExitBadInput, "unknown output format \"" + format + "\" (table or json)");
  if (format == "json") {
    nlohmann::ordered_json all = nlohmann::ordered_json::array();
    for (const ProjectTemplate& t : ProjectTemplates())
      all.push_back({{"name", t.name}, {"description", t.summary}});
    std::cout << all.dump(2) << "\n";
    return kExitOk;
  }
  size_t width = 0;
  for (const ProjectTemplate& t : ProjectTemplates()) width = std::max(width, std::strlen(t.name));
  for (const ProjectTemplate& t : ProjectTemplates())
    std::cout << t.name << std::string(width - std::strlen(t.name) + 2, ' ') << t.summary << "\n";
  return kExitOk;
}

}  // namespace sloth
