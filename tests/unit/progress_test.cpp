#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/progress.hpp"

using namespace devemu::core;

TEST_CASE("library progress and notes reach the renderer the CLI installed, and nothing without one")
{
    std::vector<std::string> seen;
    set_progress_renderer({[&](std::string_view l) { seen.push_back("update:" + std::string(l)); }, [&] { seen.push_back("clear"); },
                           [&](std::string_view l) { seen.push_back("note:" + std::string(l)); }});
    progress("waiting 2s");
    note("start your app on /x");
    progress_clear();
    CHECK(seen == std::vector<std::string>{"update:waiting 2s", "note:start your app on /x", "clear"});
    set_progress_renderer({});
    progress("unseen");
    note("unseen");
    progress_clear();
    CHECK(seen.size() == 3);
}
