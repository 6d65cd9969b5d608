#include "core/progress.hpp"

#include <mutex>

namespace devemu::core {

namespace {
std::mutex mu;
ProgressRenderer renderer;
}  // namespace

void set_progress_renderer(ProgressRenderer r)
{
    std::lock_guard lock(mu);
    renderer = std::move(r);
}

void progress(std::string_view line)
{
    std::lock_guard lock(mu);
    if (renderer.update) renderer.update(line);
}

void progress_clear()
{
    std::lock_guard lock(mu);
    if (renderer.clear) renderer.clear();
}

void note(std::string_view line)
{
    std::lock_guard lock(mu);
    if (renderer.note) renderer.note(line);
}

}  // namespace devemu::core
