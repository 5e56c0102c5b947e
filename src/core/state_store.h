// StateStore: the key/value state with TTL, atomics and lease locks behind the `state` module
// and the `state` CLI (state-and-stacks.md). Values are JSON documents passed as text, so this
// interface needs no JSON library and a remote or PostgreSQL backend can implement it as well.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace sloth {

struct StateEntry {
  std::string key;
  std::string value;                     // JSON text
  std::optional<int64_t> expires_at_ms;  // unix milliseconds; nullopt: never expires
};

struct StateStats {
  int64_t keys = 0;         // live keys
  int64_t expired = 0;      // expired rows not purged yet
  int64_t value_bytes = 0;  // total size of the live values (JSON text)
  int64_t locks_held = 0;   // leases currently held
};

// Who asks for a lock: shown to others, and used to free the lock of a dead process at once.
struct LockOwner {
  std::string owner;  // "host:pid" plus whatever identifies the holder
  std::string host;
  int64_t pid = 0;
};

struct LockInfo {
  std::string name;
  std::string owner;
  std::string host;
  int64_t pid = 0;
  int64_t token = 0;          // fencing token of the current (or last) holder
  int64_t expires_at_ms = 0;  // unix milliseconds
  int64_t acquired_at_ms = 0;
};

// The outcome of a lock attempt: `token` when acquired, else the current holder.
struct LockAttempt {
  bool acquired = false;
  int64_t token = 0;
  LockInfo holder;
};

// Every operation is atomic (one transaction), also against other processes using the same
// store. An expired key behaves as absent in every operation. Time-to-live values are in
// milliseconds; an absent ttl means "no expiry".
class StateStore {
 public:
  virtual ~StateStore() = default;

  // The value of `key` (JSON text), or nullopt when absent or expired.
  virtual Result<std::optional<std::string>> Get(const std::string& key) = 0;
  // Stores `value` (JSON text). `ttl_ms`: expires that long from now.
  virtual Status Set(const std::string& key, const std::string& value,
                     std::optional<int64_t> ttl_ms) = 0;
  // Returns whether a live key was deleted.
  virtual Result<bool> Delete(const std::string& key) = 0;
  virtual Result<bool> Exists(const std::string& key) = 0;
  // Sets (or with nullopt removes) the expiry of a live key; false when the key is absent.
  virtual Result<bool> SetTtl(const std::string& key, std::optional<int64_t> ttl_ms) = 0;
  // The entry (with its expiry) or nullopt when absent.
  virtual Result<std::optional<StateEntry>> GetEntry(const std::string& key) = 0;
  // Live entries whose key starts with `prefix` (literally), sorted by key.
  virtual Result<std::vector<StateEntry>> List(const std::string& prefix) = 0;
  // Deletes the live keys starting with `prefix`; returns how many.
  virtual Result<int64_t> Clear(const std::string& prefix) = 0;
  virtual Result<StateStats> Stats() = 0;

  // Atomics. `delta` is a JSON number; an absent key counts as 0. Returns the new value (JSON
  // text). Integers stay integers when both sides are integers. Keeps the key's expiry.
  virtual Result<std::string> Increment(const std::string& key, const std::string& delta) = 0;
  // Stores `desired` (or deletes the key when nullopt) if the current value equals `expected`
  // (nullopt: the key is absent). Values compare as JSON (1 == 1.0, key order ignored).
  virtual Result<bool> CompareSwap(const std::string& key,
                                   const std::optional<std::string>& expected,
                                   const std::optional<std::string>& desired) = 0;
  // Appends a string to a string value (absent: ""); returns the new value (JSON text).
  virtual Result<std::string> Append(const std::string& key, const std::string& text) = 0;
  // Appends to a JSON array value (absent: []); returns the new length.
  virtual Result<int64_t> ListPush(const std::string& key, const std::string& value) = 0;
  // Removes and returns the last element (JSON text); nullopt when absent or empty.
  virtual Result<std::optional<std::string>> ListPop(const std::string& key) = 0;
  // The last element without removing it (what ListPop would return).
  virtual Result<std::optional<std::string>> ListPeek(const std::string& key) = 0;
  virtual Result<int64_t> ListLength(const std::string& key) = 0;

  // Lease locks. A lock is free when never taken, released, expired, or held by a process on
  // this host that no longer exists. Each acquisition gets a larger fencing token.
  virtual Result<LockAttempt> TryLock(const std::string& name, const LockOwner& owner,
                                      int64_t ttl_ms) = 0;
  // Extends the lease of the holder with `token`; false when that holder no longer holds it.
  virtual Result<bool> RenewLock(const std::string& name, int64_t token, int64_t ttl_ms) = 0;
  // Releases the lock if `token` is the current holder's; returns whether it did.
  virtual Result<bool> Unlock(const std::string& name, int64_t token) = 0;
  // The current holder, or nullopt when the lock is free.
  virtual Result<std::optional<LockInfo>> LockHolder(const std::string& name) = 0;
  // Releases the lock whoever holds it (an operator's override); returns whether it was held.
  virtual Result<bool> ForceUnlock(const std::string& name) = 0;

  // Group commit: runs `calls` (which make store calls) as one commit where the store can.
  // Each call still succeeds or fails on its own; the result is the commit's: when it is an
  // error, no call's change was kept. By default each call commits on its own.
  virtual Status Group(const std::function<void()>& calls) {
    calls();
    return Status::Ok();
  }
};

// Milliseconds since the unix epoch.
inline int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sloth
