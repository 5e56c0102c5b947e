// The events journal: every dispatched event is appended to a per-process file before Dispatch
// returns, so an event survives kill -9 even before it reaches the database. The process holds
// an exclusive flock on its journal; a journal nobody holds belongs to a process that died, and
// the next process replays it into the database and removes it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "events/event.h"

namespace sloth {

class Journal {
 public:
  // Creates DIR/journal-TOKEN.log (DIR is made if needed) and locks it.
  static Result<std::unique_ptr<Journal>> Create(const std::string& dir, const std::string& token);
  ~Journal();  // closes the file (and keeps it: Remove() after a clean flush)
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // One write(2) of `line` and a newline. Returns the journal's size after it.
  Result<int64_t> Append(std::string_view line);
  // Empties the journal: call only when everything in it is in the database.
  Status Truncate();
  // Deletes the file (everything in it is in the database).
  void Remove();
  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  Journal(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
  int64_t size_ = 0;
};

// True when the journal of `token` in `dir` is held by a live process.
bool JournalOwnerAlive(const std::string& dir, const std::string& token);

// Replays the journals in `dir` that no live process holds: `insert` gets their events (lines
// that are not whole events, such as a torn last line after a full disk, are skipped); once it
// succeeds the journal is removed. Returns how many events were replayed.
Result<int64_t> RecoverJournals(const std::string& dir,
                                const std::function<Status(std::vector<Event>&)>& insert);

}  // namespace sloth
