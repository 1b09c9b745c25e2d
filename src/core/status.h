// Errors as values: every fallible function returns Status or Expected<T>; only main() turns
// them into exit codes. Messages name the file, field or offset that was wrong.
#pragma once
#include <string>
#include <utility>
#include <variant>

namespace corral {

struct Error {
  std::string message;
};

class Status {
 public:
  Status() = default;
  Status(Error e) : err_(std::move(e.message)), failed_(true) {}  // NOLINT: implicit on purpose
  static Status ok() { return {}; }
  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return err_; }

 private:
  std::string err_;
  bool failed_ = false;
};

template <class T>
class Expected {
 public:
  Expected(T v) : v_(std::move(v)) {}      // NOLINT
  Expected(Error e) : v_(std::move(e)) {}  // NOLINT
  Expected(Status s) : v_(Error{s.message()}) {}  // NOLINT: only for failed statuses
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const std::string& message() const { return std::get<1>(v_).message; }
  Error error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

inline Error make_error(std::string msg) { return Error{std::move(msg)}; }

}  // namespace corral

#define CORRAL_CONCAT_(a, b) a##b
#define CORRAL_CONCAT(a, b) CORRAL_CONCAT_(a, b)
// Propagate a failed Status.
#define CORRAL_RETURN_IF_ERROR(expr)                   \
  do {                                                 \
    ::corral::Status _st = (expr);                     \
    if (!_st.is_ok()) return ::corral::Error{_st.message()}; \
  } while (0)
// Bind the value of an Expected or propagate its error.
#define CORRAL_ASSIGN_OR_RETURN(lhs, expr) \
  CORRAL_ASSIGN_OR_RETURN_(CORRAL_CONCAT(_exp_, __LINE__), lhs, expr)
#define CORRAL_ASSIGN_OR_RETURN_(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.is_ok()) return tmp.error();          \
  lhs = std::move(tmp.value())
