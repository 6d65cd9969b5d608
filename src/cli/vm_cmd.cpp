#include "cli/cli.hpp"
namespace devemu::cli {
int cmd_vm(Context&, const Args&) { return cmd_not_landed("vm", "the VM layer (issue 4)"); }
}  // namespace devemu::cli
