// Result<T> and Error: how nibble reports failures that come from outside (files, flags,
// requests). Our own bugs use NIBBLE_CHECK (util/check.h) instead.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <variant>

namespace nibble {

enum class ErrorCode {
  kInvalidArgument,  // a flag, option or API argument is wrong
  kNotFound,         // a file, key or tensor does not exist
  kIo,               // the operating system refused a read/write/mmap
  kFormat,           // a file is malformed (GGUF, safetensors, JSON, tokenizer)
  kUnsupported,      // well-formed but not something nibble handles
  kOutOfRange,       // a value (token id, context size, ...) is out of its range
  kInternal,
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // names the thing, the place and the numbers; one line
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const Error& error() const { return std::get<1>(v_); }
  Error&& take_error() { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }
  Error&& take_error() { return std::move(err_); }

 private:
  Error err_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status ok_status() { return Status(); }

// Builds an Error with printf-style formatting.
template <typename... Args>
Error make_error(ErrorCode code, const char* fmt, Args... args) {
  if constexpr (sizeof...(Args) == 0) {
    return Error{code, fmt};
  } else {
    int n = std::snprintf(nullptr, 0, fmt, args...);
    std::string s(n > 0 ? static_cast<size_t>(n) : 0, '\0');
    std::snprintf(s.data(), s.size() + 1, fmt, args...);
    return Error{code, std::move(s)};
  }
}

}  // namespace nibble

// Propagates an error: NIBBLE_TRY(status_expr);
#define NIBBLE_TRY(expr)                                        \
  do {                                                          \
    auto nibble_try_status_ = (expr);                           \
    if (!nibble_try_status_.ok()) return nibble_try_status_.take_error(); \
  } while (0)

#define NIBBLE_CONCAT_INNER_(a, b) a##b
#define NIBBLE_CONCAT_(a, b) NIBBLE_CONCAT_INNER_(a, b)

// Declares `lhs` from a Result<T> or returns its error: NIBBLE_ASSIGN_OR_RETURN(auto x, f());
#define NIBBLE_ASSIGN_OR_RETURN(lhs, expr) \
  NIBBLE_ASSIGN_OR_RETURN_IMPL_(NIBBLE_CONCAT_(nibble_r_, __LINE__), lhs, expr)
#define NIBBLE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.take_error();             \
  lhs = std::move(tmp).value()
