#pragma once
// Ctrl-C (SIGINT), SIGTERM and SIGHUP while a command makes something that must not be left half-made (an `up --vm`
// VM booting): while an InterruptScope lives they set a flag instead of killing the process, the long waits check
// it (interrupted()) and fail with Errc::interrupted, and the command undoes what it made and exits 130. A second
// signal during that undo only sets the flag again: it never kills devemu in the middle of it.
#include <csignal>

namespace devemu::core {

class InterruptScope {
public:
    InterruptScope();
    ~InterruptScope();
    InterruptScope(const InterruptScope&) = delete;
    InterruptScope& operator=(const InterruptScope&) = delete;

private:
    struct sigaction old_[3] = {};
};

// A signal came since the scope began.
[[nodiscard]] bool interrupted();

}  // namespace devemu::core
