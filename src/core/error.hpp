#pragma once
// Errors are values. An Error says what failed, where (a path or file:line) and how to fix it;
// the CLI prints it as one line and maps its kind to an exit code.
#include <expected>
#include <string>
#include <utility>

namespace devemu::core {

enum class Errc {
    invalid_input,   // bad profile, bad option, refused by a safety rule: exit 2
    missing,         // a module, file, tool or kernel feature is absent: exit 2
    kernel,          // the kernel refused a write / syscall: exit 2
    busy,            // EBUSY, port in use, lock held: exit 2
    io,              // read/write failures on our own files: exit 2
    timeout,         // a deadline passed: exit 124
    check_failed,    // a verification or check found a difference: exit 1
    not_implemented, // a command whose issue has not landed yet: exit 2
    interrupted,     // Ctrl-C / SIGTERM / SIGHUP ended it (what it made is undone): exit 130
};

struct Error {
    Errc code = Errc::invalid_input;
    std::string what;   // what failed, in the user's words
    std::string where;  // path, file:line or object name; may be empty
    std::string fix;    // how to fix it; may be empty
    int sys_errno = 0;  // errno when a syscall failed

    [[nodiscard]] std::string message() const;   // one line: "where: what: strerror (fix: ...)"
    [[nodiscard]] int exit_code() const;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

[[nodiscard]] inline std::unexpected<Error> fail(Errc c, std::string what, std::string where = {},
                                                 std::string fix = {}, int err = 0)
{
    return std::unexpected(Error{c, std::move(what), std::move(where), std::move(fix), err});
}

// For a failed syscall: captures errno and picks busy/missing/kernel from it.
[[nodiscard]] std::unexpected<Error> fail_errno(std::string what, std::string where, std::string fix = {});

}  // namespace devemu::core

// Unwraps a Result into `var` or returns its error from the enclosing function.
#define DEVEMU_TRY(var, expr)                                          \
    auto var##_result_ = (expr);                                       \
    if (!var##_result_) return std::unexpected(var##_result_.error()); \
    auto& var = *var##_result_
#define DEVEMU_CHECK(expr)                                  \
    do {                                                    \
        if (auto s_ = (expr); !s_) return std::unexpected(s_.error()); \
    } while (0)
