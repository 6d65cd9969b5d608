#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/cli.hpp"
#include "core/error.hpp"
#include "core/unit_kind.hpp"

namespace devemu::cli {

int report(const core::Error& e)
{
    const char* term = std::getenv("TERM");
    const bool tty = ::isatty(2) && !std::getenv("NO_COLOR") && !(term && std::string(term) == "dumb");
    std::cerr << (tty ? "\033[31mdevemu: error:\033[0m " : "devemu: error: ") << e.message() << "\n";
    return e.exit_code();
}

void print_relayed(bool to_stderr, std::string_view data)
{
    auto& o = to_stderr ? std::cerr : std::cout;
    o << data << std::flush;
}

int relayed(const core::Result<core::Relayed>& r)
{
    if (!r) return report(r.error());
    std::cout << r->out << std::flush;
    std::cerr << r->err << std::flush;
    return r->rc;
}

std::optional<int> parse_command(const Args& args, boost::program_options::options_description& opts, Parsed& out,
                                 std::size_t min_positional)
{
    namespace po = boost::program_options;
    opts.add_options()("help,h", "this help")("json", "machine-readable output");
    po::options_description hidden;   // -v/-q are global options, accepted here too; positional words
    hidden.add_options()("verbose,v", "")("quiet,q", "")("positional", po::value<std::vector<std::string>>()->default_value({}, ""), "");
    po::options_description all;
    all.add(opts).add(hidden);
    po::positional_options_description pos;
    pos.add("positional", -1);
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), out.vm);
    out.positional = out.vm["positional"].as<std::vector<std::string>>();
    if (out.has("help") || out.positional.size() < min_positional) {
        std::cout << opts;
        return out.has("help") ? 0 : 2;
    }
    return std::nullopt;
}

}  // namespace devemu::cli
