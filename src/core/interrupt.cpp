#include "core/interrupt.hpp"

#include <atomic>

namespace devemu::core {

namespace {
std::atomic<int> g_signal{0};
constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
void on_signal(int sig) { g_signal.store(sig); }
}  // namespace

InterruptScope::InterruptScope()
{
    g_signal.store(0);
    struct sigaction sa = {};
    sa.sa_handler = on_signal;   // no SA_RESTART: a wait in poll() returns at once, with EINTR
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; ++i) ::sigaction(kSignals[i], &sa, &old_[i]);
}

InterruptScope::~InterruptScope()
{
    for (int i = 0; i < 3; ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
}

bool interrupted() { return g_signal.load() != 0; }

}  // namespace devemu::core
