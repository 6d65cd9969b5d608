#pragma once
// The supervisor of a server devemu leaves running (the TCMU handler, the USB mass-storage function): runs `serve`
// in a child and starts a new one whenever it dies (kill -9 included), until SIGTERM/SIGINT, which stops the child
// (SIGTERM, then SIGKILL after 2 s) and returns 0. A child that exits 0 ends the supervisor too; one that exits 2
// before any restart (it could not start) makes it return 2.
#include <filesystem>
#include <functional>
#include <string>

namespace devemu::core {

// `state`: when not empty, {"supervisor": pid, CHILD_KEY: child pid, "restarts": n} is written there at each start
// (what `ls` shows). `what` names the server in the log.
[[nodiscard]] int supervise(const std::function<int()>& serve, const std::filesystem::path& state, const std::string& child_key,
                            const std::string& what);

}  // namespace devemu::core
