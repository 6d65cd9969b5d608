// devemu tcmu-serve: the userspace TCMU handler process (`up` starts it for a `user` backstore; not for users).
#include <boost/program_options.hpp>

#include "cli/cli.hpp"
#include "core/text.hpp"
#include "core/fs.hpp"
#include "uring/tcmu.hpp"
#include "usb/msc_serve.hpp"

namespace po = boost::program_options;

namespace devemu::cli {

int cmd_tcmu_serve(Context&, const Args& args)
{
    po::options_description opts("devemu tcmu-serve --uio-prefix tcm-user/N/NAME/ --backing PATH --size BYTES [--supervise]\n\n"
                                  "Internal: the io_uring TCMU handler that `devemu up` starts for a user backstore.");
    opts.add_options()("uio-prefix", po::value<std::string>()->required(), "the UIO device name's prefix")(
        "backing", po::value<std::string>()->required(), "file or block device")("size", po::value<std::string>()->required(), "bytes")(
        "block-size", po::value<unsigned>()->default_value(512), "logical block size")("serial", po::value<std::string>()->default_value(""), "unit serial")(
        "readonly", "refuse writes")("write-cache", "report a volatile write cache (writes are not O_DSYNC)")(
        "depth", po::value<unsigned>()->default_value(128), "io_uring entries")("stats", po::value<std::string>()->default_value(""), "stats JSON path")(
        "faults", po::value<std::string>()->default_value(""), "the fault chain (JSON array of keys): read at start, kept up to date")(
        "control", po::value<std::string>()->default_value(""), "unix socket for `devemu fault`")(
        "supervise", "restart the handler whenever it dies");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    uring::TcmuConfig c;
    c.uio_prefix = p.vm["uio-prefix"].as<std::string>();
    c.backing = p.vm["backing"].as<std::string>();
    auto size = core::parse_size(p.vm["size"].as<std::string>());
    if (!size) return report({core::Errc::invalid_input, "--size is not a size", p.vm["size"].as<std::string>(), ""});
    c.size = *size;
    c.block_size = p.vm["block-size"].as<unsigned>();
    c.serial = p.vm["serial"].as<std::string>();
    c.readonly = p.has("readonly");
    c.write_cache = p.has("write-cache");
    c.depth = p.vm["depth"].as<unsigned>();
    c.stats = p.vm["stats"].as<std::string>();
    c.faults = p.vm["faults"].as<std::string>();
    c.control = p.vm["control"].as<std::string>();
    return p.has("supervise") ? uring::tcmu_supervise(c) : uring::tcmu_serve(c);
}

}  // namespace devemu::cli

namespace devemu::cli {

int cmd_usb_serve(Context&, const Args& args)
{
    po::options_description opts("devemu usb-serve --config FILE\n\n"
                                  "Internal: devemu's own USB mass-storage function (FunctionFS), which `devemu up` starts,\n"
                                  "supervised, for a mass_storage function served by devemu (engine = \"user\").");
    opts.add_options()("config", po::value<std::string>()->required(), "the function's configuration (JSON, written by up)");
    Parsed p;
    if (auto rc = parse_command(args, opts, p, 0)) return *rc;
    const auto file = p.vm["config"].as<std::string>();
    auto text = core::read_file(file);
    if (!text) return report(text.error());
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_object()) return report({core::Errc::invalid_input, "not a JSON object", file, "devemu up writes it; do not edit it"});
    usb::MscConfig c;
    try {
        c = j.get<usb::MscConfig>();
    } catch (const nlohmann::json::exception& e) {
        return report({core::Errc::invalid_input, e.what(), file, "devemu up writes it; do not edit it"});
    }
    return usb::msc_supervise(c);
}

}  // namespace devemu::cli
