#include "events/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace sloth {
namespace {

constexpr char kPrefix[] = "journal-";
constexpr char kSuffix[] = ".log";

std::string JournalPath(const std::string& dir, const std::string& token) {
  return dir + "/" + kPrefix + token + kSuffix;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Reads a whole file; false when it cannot be read.
bool ReadAll(int fd, std::string* out) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

std::vector<Event> ParseLines(const std::string& text) {
  std::vector<Event> events;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) break;  // a torn last line
    auto event = EventFromLine(std::string_view(text).substr(start, nl - start));
    if (event.ok()) events.push_back(std::move(*event));
    start = nl + 1;
  }
  return events;
}

}  // namespace

Result<std::unique_ptr<Journal>> Journal::Create(const std::string& dir, const std::string& token) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error("cannot create " + dir + ": " + ec.message());
  // Made under a name replayers ignore, locked, then renamed into place: a journal is never
  // visible unlocked, or another process starting at the same moment would take it for a dead
  // one's.
  std::string path = JournalPath(dir, token);
  std::string tmp = path + ".new";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error(Errno("cannot create " + tmp));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = Errno("cannot set up the events journal " + path);
    close(fd);
    unlink(tmp.c_str());
    return Status::Error(why);
  }
  return std::unique_ptr<Journal>(new Journal(fd, std::move(path)));
}

Journal::~Journal() {
  if (fd_ >= 0) close(fd_);
}

Result<int64_t> Journal::Append(std::string_view line) {
  std::string record;
  record.reserve(line.size() + 1);
  record.append(line);
  record += '\n';
  size_t done = 0;
  while (done < record.size()) {
    ssize_t n = write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // A partial record would be skipped at replay; cut it off so the next one starts clean.
      if (done > 0 && ftruncate(fd_, size_) != 0) {
      }
      return Status::Error(Errno("cannot write the events journal " + path_));
    }
    done += static_cast<size_t>(n);
  }
  size_ += static_cast<int64_t>(record.size());
  return size_;
}

Status Journal::Truncate() {
  if (ftruncate(fd_, 0) != 0) return Status::Error(Errno("cannot truncate " + path_));
  size_ = 0;
  return Status::Ok();
}

void Journal::Remove() {
  // Unlink while still holding the lock: nobody can replay a journal that is going away.
  unlink(path_.c_str());
  close(fd_);
  fd_ = -1;
}

bool JournalOwnerAlive(const std::string& dir, const std::string& token) {
  int fd = open(JournalPath(dir, token).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool alive = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return alive;
}

Result<int64_t> RecoverJournals(const std::string& dir,
                                const std::function<Status(std::vector<Event>&)>& insert) {
  DIR* d = opendir(dir.c_str());
  if (!d) return int64_t{0};  // no journal was ever written
  // One replayer at a time, and the others wait for it: a journal locked by a replayer looks
  // like a live process's, so without this a second process could list the events before the
  // first has put them in the database.
  int guard = open((dir + "/replay.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (guard < 0 || flock(guard, LOCK_EX) != 0) {
    if (guard >= 0) close(guard);
    closedir(d);
    return Status::Error(Errno("cannot lock " + dir + "/replay.lock"));
  }
  struct Unlock {
    int fd;
    ~Unlock() { close(fd); }
  } unlock{guard};
  std::vector<std::string> names;
  while (struct dirent* entry = readdir(d)) {
    std::string_view name = entry->d_name;
    if (name.starts_with(kPrefix) && name.ends_with(kSuffix)) names.emplace_back(name);
  }
  closedir(d);
  int64_t replayed = 0;
  for (const std::string& name : names) {
    std::string path = dir + "/" + name;
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;  // removed meanwhile
    // An exclusive lock: its owner is gone, and no other process replays it at the same time.
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      close(fd);
      continue;
    }
    struct stat st;
    // Removed by its owner (or another replayer) between our open and our lock.
    if (fstat(fd, &st) != 0 || st.st_nlink == 0) {
      close(fd);
      continue;
    }
    std::string text;
    if (!ReadAll(fd, &text)) {
      close(fd);
      return Status::Error(Errno("cannot read " + path));
    }
    std::vector<Event> events = ParseLines(text);
    if (Status s = insert(events); !s.ok()) {
      close(fd);
      return s;
    }
    replayed += static_cast<int64_t>(events.size());
    unlink(path.c_str());
    close(fd);
  }
  return replayed;
}

}  // namespace sloth
