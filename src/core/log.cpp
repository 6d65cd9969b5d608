#include "core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace devemu::core {

void setup_logging(int verbosity)
{
    auto logger = spdlog::stderr_logger_mt("devemu");
    logger->set_pattern("devemu: %^%v%$");
    spdlog::set_default_logger(logger);
    switch (verbosity) {
    case -1: spdlog::set_level(spdlog::level::err); break;
    case 0: spdlog::set_level(spdlog::level::info); break;
    case 1: spdlog::set_level(spdlog::level::debug); break;
    default: spdlog::set_level(spdlog::level::trace); break;
    }
}

}  // namespace devemu::core
