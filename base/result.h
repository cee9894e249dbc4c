// Result<T>: a value or an Error, shaped like std::expected (GCC 12 has none).
//
//   Result<int> ParsePort(std::string_view s);
//   ASSIGN_OR_RETURN(int port, ParsePort(arg));   // propagates the Error
//   RETURN_IF_ERROR(DoThing());                   // for Result<void>
//
// An Error records where it came from (errno, KVM, a guest-visible fault, bad user input)
// and a message a user can act on. Errors are values: no exceptions cross module borders.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace vmm {

enum class ErrorKind {
  kInvalidArgument,  // bad user input (CLI, config file): exit code 2
  kNotFound,         // a file or a resource that is not there
  kSystem,           // a failed syscall; errno is set
  kKvm,              // KVM refused or reported something
  kGuest,            // the guest did something we cannot continue from
  kProtocol,         // a peer sent a malformed message
  kUnsupported,      // the host lacks a feature we need
  kInternal,         // a bug in the VMM
};

class Error {
 public:
  Error(ErrorKind kind, std::string message, int sys_errno = 0)
      : kind_(kind), message_(std::move(message)), errno_(sys_errno) {}

  ErrorKind kind() const { return kind_; }
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }

  // "message: strerror(errno)" when errno is set.
  std::string ToString() const {
    if (errno_ == 0) return message_;
    return message_ + ": " + std::strerror(errno_);
  }

  // Prefixes context, e.g. Wrap("loading kernel") -> "loading kernel: <message>".
  Error Wrap(const std::string& context) const {
    return Error(kind_, context + ": " + message_, errno_);
  }

 private:
  ErrorKind kind_;
  std::string message_;
  int errno_;
};

// Builds an Error from the current errno.
inline Error ErrnoError(std::string message) {
  return Error(ErrorKind::kSystem, std::move(message), errno);
}
inline Error InvalidArgument(std::string message) {
  return Error(ErrorKind::kInvalidArgument, std::move(message));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const {}
  const Error& error() const { return error_; }

 private:
  Error error_{ErrorKind::kInternal, ""};
  bool ok_ = true;
};

inline Result<void> Ok() { return Result<void>(); }

}  // namespace vmm

#define VMM_CONCAT_INNER(a, b) a##b
#define VMM_CONCAT(a, b) VMM_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                                 \
  do {                                                        \
    auto vmm_status_ = (expr);                                \
    if (!vmm_status_.has_value()) return vmm_status_.error(); \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.has_value()) return tmp.error();   \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(VMM_CONCAT(vmm_result_, __LINE__), lhs, expr)
