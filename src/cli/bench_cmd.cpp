// devemu bench TARGET [fio-style options]
#include <iostream>

#include "cli/cli.hpp"
#include "uring/bench.hpp"

namespace devemu::cli {

int cmd_bench(Context&, const Args& args)
{
    for (auto& a : args)
        if (a == "--help" || a == "-h") {
            std::cout << uring::help_text();
            return 0;
        }
    std::vector<std::string> rest;
    for (auto& a : args)
        if (a != "-v" && a != "-q") rest.push_back(a);
    auto o = uring::parse_options(rest);
    if (!o) return report(o.error());
    auto out = uring::run_bench(*o);
    if (!out) return report(out.error());
    if (o->json) std::cout << out->json.dump(2) << "\n";
    else std::cout << out->text;
    return out->verify_failed ? 1 : 0;
}

}  // namespace devemu::cli
