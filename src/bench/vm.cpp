// bench --paths where this kernel lacks a path: the same command in a VM of the distribution kernel.
#include <unistd.h>

#include "bench/paths.hpp"
#include "core/fs.hpp"
#include "core/text.hpp"
#include "vm/oneshot.hpp"

namespace devemu::bench {

core::Result<int> run_paths_in_vm(const PathsRequest& r, const std::vector<std::string>& argv, const std::string& svg, const VmPlace& where)
{
    if (!made_here(r.backing))
        return core::fail(core::Errc::invalid_input, "in a VM the backing is zram:SIZE or ext4:SIZE (the host's files are behind an overlay there: writes would not reach them)",
                          r.backing, "use zram:SIZE or ext4:SIZE");
    vm::OneShot vo;
    vo.command = {core::self_exe().string(), "bench"};
    vo.command.insert(vo.command.end(), argv.begin(), argv.end());
    vo.command.push_back("--in-vm");
    if (!svg.empty()) {   // written in the guest into a share of the plot's directory
        const auto abs = std::filesystem::absolute(svg);
        vo.shares.push_back(abs.parent_path().string() + ":/devemu/out");
        vo.command.push_back("--svg=/devemu/out/" + abs.filename().string());
    }
    vo.host_root = true;
    if (!::isatty(2)) vo.env.push_back("DEVEMU_NO_PROGRESS=1");   // the guest's stderr is a console: no live line into a log
    const auto size = core::parse_size(r.backing.substr(5)).value_or(0);
    vo.memory_mb = static_cast<unsigned>(1536 + (size >> 20));   // the backing lives in the guest's RAM
    const double per_run = (r.base.runtime > 0 ? r.base.runtime : 5) + 4;
    vo.timeout_s = static_cast<unsigned>(900 + per_run * static_cast<double>(r.cases.size() * r.rounds * r.paths.size()));
    vo.kernel = where.kernel;
    vo.cache_dir = where.cache_dir;
    vo.state_dir = where.state_dir;
    vo.keep_console_log = where.verbose;
    return vm::run_oneshot(vo);
}

}  // namespace devemu::bench
