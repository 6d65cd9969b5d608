// The host's side of an exec port (vm/init/exec_port.cpp): reads what the guest sends for one command,
//   "ID s PID\n" (started), "ID o LEN\n" + LEN bytes (stdout), "ID e LEN\n" + LEN bytes (stderr), "ID x STATUS\n".
// Frames of another ID belong to a command of a host that left before it ended (the guest still ran it when this
// connection came): skipped.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/unit_kind.hpp"

namespace devemu::vm {

class ExecFrames {
public:
    explicit ExecFrames(std::string id) : id_(std::move(id)) {}
    // Takes the next bytes in any pieces; this command's output goes to `sink` as each frame completes. An
    // unreadable frame is an error (the channel is not in step any more).
    [[nodiscard]] core::Status feed(std::string_view bytes, const core::OutputSink& sink);
    [[nodiscard]] bool started() const { return started_; }
    [[nodiscard]] std::optional<int> status() const { return status_; }

private:
    std::string id_, buf_;
    bool started_ = false;
    std::optional<int> status_;
};

}  // namespace devemu::vm
