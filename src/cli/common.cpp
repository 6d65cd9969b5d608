#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/cli.hpp"
#include "core/error.hpp"

namespace devemu::cli {

int report(const core::Error& e)
{
    const char* term = std::getenv("TERM");
    const bool tty = ::isatty(2) && !std::getenv("NO_COLOR") && !(term && std::string(term) == "dumb");
    std::cerr << (tty ? "\033[31mdevemu: error:\033[0m " : "devemu: error: ") << e.message() << "\n";
    return e.exit_code();
}

int cmd_not_landed(const std::string& command, const std::string& issue)
{
    std::cerr << "devemu " << command << ": not available yet: it arrives with " << issue
              << " (fix: use `devemu doctor`, `devemu profile check` or `devemu vm run` for now)\n";
    return 2;
}

}  // namespace devemu::cli
