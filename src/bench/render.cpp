#include <fmt/format.h>

#include <algorithm>

#include "bench/paths.hpp"

// What a --paths run shows: the table a person reads and the plot a browser opens, both from its JSON.
namespace devemu::bench {

using nlohmann::json;

std::string paths_table(const json& j)
{
    std::string out = fmt::format("devemu bench --paths: {}{}; {} alternating {:g} s run(s) per path and case, medians;\n"
                                  "devemu's io_uring engine on each path's disk ({}); CPU = the whole machine's busy time per I/O\n",
                                  j["backing"].get<std::string>(), j["filled"].get<bool>() ? " (filled with random data first)" : "", j["rounds"].get<unsigned>(),
                                  j["runtime"].get<double>(), j["direct"].get<bool>() ? "O_DIRECT" : "buffered");
    if (j.contains("split_cpus") && j["split_cpus"].is_object())
        out += fmt::format("--split-cpus: the engine on CPU {}; on CPU {} the device's side ({} tasks: devemu's servers, tgtd, the kernel's target threads)\n",
                           j["split_cpus"]["host_cpus"].get<std::string>(), j["split_cpus"]["device_cpus"].get<std::string>(), j["split_cpus"]["device_tasks"].size());
    if (j.contains("page_cache") && j["page_cache"].is_object())
        out += fmt::format("page cache: {:.0f}% of {} resident before the runs, {:.0f}% after\n", j["page_cache"]["before"].get<double>() * 100,
                           j["page_cache"]["file"].get<std::string>(), j["page_cache"]["after"].get<double>() * 100);
    for (auto& c : j["cases"]) {
        out += fmt::format("\n{}\n  {:<10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>7} {:>7}\n", c["case"].get<std::string>(), "path", "IOPS", "MB/s", "p50 us",
                           "p99 us", "CPU us/IO", "spread", "vs " + j["baseline"].get<std::string>());
        for (auto& p : c["paths"])
            out += fmt::format("  {:<10} {:>10.0f} {:>9.1f} {:>9.1f} {:>9.1f} {:>11.1f} {:>6.0f}% {:>7}\n", p["path"].get<std::string>(), p["iops"].get<double>(),
                               p["mbps"].get<double>(), p["p50_ns"].get<double>() / 1e3, p["p99_ns"].get<double>() / 1e3, p["cpu_us_per_io"].get<double>(),
                               p["spread"].get<double>() * 100,
                               p.contains("ratio") ? fmt::format("{:.2f}x", p["ratio"].get<double>()) : std::string("-"));
    }
    out += "\npaths:";
    for (auto& p : j["paths"]) out += fmt::format("\n  {:<10} {} ({})", p["path"].get<std::string>(), p["what"].get<std::string>(), p["device"].get<std::string>());
    out += "\nspread: (max - min) / median of the runs' IOPS\n";
    if (j.contains("verify")) {
        out += "verify (8 MiB with crc32c headers written and read back on each path):\n";
        for (auto& p : j["paths"]) {
            const json v = j["verify"].value(p["path"].get<std::string>(), json::object());
            out += fmt::format("  {:<10} {}\n", p["path"].get<std::string>(),
                               v.value("ok", false) ? fmt::format("ok ({} blocks)", v.value("blocks", 0ull)) : "FAILED: " + v.value("error", std::string("not run")));
        }
    }
    return out;
}

std::string paths_svg(const json& j)
{
    const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"};
    const auto& cases = j["cases"];
    const std::size_t np = j["paths"].size();
    const double bar = 26, gap = 34, L = 60, T = 70, PH = 220;
    const double group = np * bar + gap;
    const double W = L + cases.size() * group + 40;
    std::string s = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" font-family=\"sans-serif\" font-size=\"11\">\n"
                                "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                                "<text x=\"20\" y=\"22\" font-size=\"15\">devemu bench --paths: {}{}, IOPS (medians; each case on its own scale)</text>\n",
                                W, T + PH + 90, j["backing"].get<std::string>(), j["filled"].get<bool>() ? " (filled)" : "");
    for (std::size_t k = 0; k < np; ++k)
        s += fmt::format("<rect x=\"{:.0f}\" y=\"34\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0f}\" y=\"43\">{}</text>\n", 20 + k * 95.0, colours[k % 9],
                         34 + k * 95.0, j["paths"][k]["path"].get<std::string>());
    for (std::size_t c = 0; c < cases.size(); ++c) {
        const double x0 = L + c * group;
        double top = 1;
        for (auto& p : cases[c]["paths"]) top = std::max(top, p["iops"].get<double>());
        s += fmt::format("<line x1=\"{:.0f}\" y1=\"{:.0f}\" x2=\"{:.0f}\" y2=\"{:.0f}\" stroke=\"black\"/>\n", x0 - 4, T + PH, x0 + np * bar + 4, T + PH);
        for (std::size_t k = 0; k < np; ++k) {
            const auto& p = cases[c]["paths"][k];
            const double v = p["iops"].get<double>();
            const double h = v / top * PH;
            s += fmt::format("<rect x=\"{:.0f}\" y=\"{:.1f}\" width=\"{:.0f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}: {:.0f} IOPS</title></rect>\n", x0 + k * bar, T + PH - h,
                             bar - 3, h, colours[k % 9], p["path"].get<std::string>(), v);
            const std::string label = p.contains("ratio") ? fmt::format("{:.2f}x", p["ratio"].get<double>()) : fmt::format("{:.0f}k", v / 1e3);
            s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"9\" text-anchor=\"middle\">{}</text>\n", x0 + k * bar + (bar - 3) / 2, T + PH - h - 3, label);
        }
        s += fmt::format("<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"middle\">{}</text>\n", x0 + np * bar / 2, T + PH + 18, cases[c]["case"].get<std::string>());
        s += fmt::format("<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"middle\" fill=\"#555\">top {:.0f} IOPS</text>\n", x0 + np * bar / 2, T + PH + 34, top);
    }
    s += fmt::format("<text x=\"20\" y=\"{:.0f}\" fill=\"#555\">labels: IOPS ratio to {}; {} alternating {:g} s runs per path</text>\n</svg>\n", T + PH + 70,
                     j.value("baseline", std::string("raw")), j["rounds"].get<unsigned>(), j["runtime"].get<double>());
    return s;
}

}  // namespace devemu::bench
