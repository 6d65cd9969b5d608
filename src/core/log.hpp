#pragma once
// One log for the whole program: spdlog on stderr, "devemu: " prefixed; -v adds debug, -q leaves errors only.
namespace devemu::core {
void setup_logging(int verbosity);   // -1 quiet, 0 normal, 1 debug, 2 trace
}
