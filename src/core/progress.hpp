#pragma once
// What a long step tells its user while it runs, without the library writing to a terminal itself: libraries call
// these, and the CLI installs how they are shown (a line that rewrites itself on a TTY; nothing under -q or
// --json). With no renderer installed they do nothing, so library code and tests stay silent.
#include <functional>
#include <string>
#include <string_view>

namespace devemu::core {

struct ProgressRenderer {
    std::function<void(std::string_view line)> update;   // the current state of a wait or a run; replaces the last
    std::function<void()> clear;                         // the step is over: remove the line
    std::function<void(std::string_view line)> note;     // a line the user must act on or keep (where to start an app)
};

void set_progress_renderer(ProgressRenderer r);

void progress(std::string_view line);
void progress_clear();
void note(std::string_view line);

}  // namespace devemu::core
