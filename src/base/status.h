// Status and Result<T>: cheap error values returned by functions that can fail (leveldb style).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace sloth {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const {
    static const std::string kEmpty;
    return message_ ? *message_ : kEmpty;
  }

 private:
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

// Result<T> holds either a value or an error message.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}         // NOLINT: implicit on purpose
  Result(Status status) : data_(std::move(status)) {}  // NOLINT: must be an error status

  bool ok() const { return std::holds_alternative<T>(data_); }
  const std::string& error() const { return std::get<Status>(data_).message(); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(data_); }
  T& value() { return std::get<T>(data_); }
  const T& value() const { return std::get<T>(data_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace sloth
