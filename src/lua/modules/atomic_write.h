// Writing a whole file so that readers never see half of it (file_ops, systemd).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace sloth {

struct FileMeta {
  std::optional<mode_t> mode;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

// A temp file beside the target (a symlink's target), owner and mode set (the old file's unless
// `meta` says otherwise; a new file gets 0666 less the umask), fsync, rename, fsync of the
// directory. Returns "" or the error.
std::string AtomicWrite(const std::string& path, std::string_view content, const FileMeta& meta);

}  // namespace sloth
