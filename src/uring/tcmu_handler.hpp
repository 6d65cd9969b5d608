#pragma once
// The io_uring handler of one mapped TCMU device: it reads commands from the ring, decodes them with the SCSI core,
// serves the I/O with io_uring straight between the backing fd and the data area (many in flight), and completes
// them in ring order, so that a handler killed at any point leaves every unfinished command for its successor.
#include "core/error.hpp"
#include "uring/discard.hpp"
#include "uring/tcmu.hpp"
#include "uring/tcmu_ring.hpp"

namespace devemu::uring {

// Serves `dev` from `backing` until SIGTERM/SIGINT (then finishes what is in flight). Returns an exit code.
[[nodiscard]] int serve_ring(const TcmuConfig& cfg, Device& dev, const std::string& uio, int backing, const Geometry& geom);

}  // namespace devemu::uring
