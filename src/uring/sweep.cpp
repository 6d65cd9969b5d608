#include "uring/sweep.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/text.hpp"
#include "core/progress.hpp"
#include "uring/bench.hpp"

namespace devemu::uring {

using core::Errc;

core::Result<std::vector<SweepPoint>> parse_sweep(const std::vector<std::string>& axes, const BenchOptions& base)
{
    std::vector<std::uint32_t> sizes{base.bs};
    std::vector<unsigned> depths{base.iodepth};
    for (auto& a : axes) {
        auto eq = a.find('=');
        const auto key = a.substr(0, eq);
        if (eq == std::string::npos || (key != "bs" && key != "iodepth"))
            return core::fail(Errc::invalid_input, "--sweep axis \"" + a + "\" is not bs=LIST or iodepth=LIST", "devemu bench", "e.g. --sweep bs=4k,64k iodepth=1,8,32");
        std::vector<std::uint64_t> values;
        for (auto& v : core::split(a.substr(eq + 1), ',')) {
            auto n = core::parse_size(v);
            if (!n || *n == 0) return core::fail(Errc::invalid_input, "--sweep value \"" + v + "\" in " + a + " is not a number", "devemu bench");
            values.push_back(*n);
        }
        if (key == "bs") sizes.assign(values.begin(), values.end());
        else depths.assign(values.begin(), values.end());
    }
    std::vector<SweepPoint> pts;
    for (auto b : sizes)
        for (auto d : depths) {
            if (b < 512 || b % 512) return core::fail(Errc::invalid_input, fmt::format("--sweep bs={} is not a multiple of 512", b), "devemu bench");
            pts.push_back({b, d});
        }
    return pts;
}

core::Status run_sweep(const BenchOptions& base, std::vector<SweepPoint>& points)
{
    for (auto& pt : points) {
        BenchOptions o = base;
        o.bs = pt.bs;
        o.iodepth = pt.iodepth;
        o.batch = std::max(1u, pt.iodepth / 4);
        o.json = true;   // no progress line per point; the table says what ran
        if (o.runtime <= 0) o.runtime = 3, o.time_based = true;
        auto r = run_bench(o);
        if (!r) return std::unexpected(r.error());
        auto& job = r->json["jobs"][0];
        for (auto side : {"read", "write"}) {
            pt.iops += job[side]["iops"].get<double>();
            if (job[side]["total_ios"].get<std::uint64_t>() > 0) {
                pt.p50 = std::max<std::uint64_t>(pt.p50, job[side]["lat_ns"]["percentile"]["50.000000"]);
                pt.p99 = std::max<std::uint64_t>(pt.p99, job[side]["lat_ns"]["percentile"]["99.000000"]);
            }
        }
        pt.mbps = pt.iops * pt.bs / 1e6;
        if (!base.json) core::note(fmt::format("bench: bs={} iodepth={}: {:.0f} IOPS", pt.bs, pt.iodepth, pt.iops));
    }
    return {};
}

std::string sweep_table(const std::vector<SweepPoint>& points)
{
    std::string out = fmt::format("{:>8} {:>8} {:>12} {:>10} {:>10} {:>10}\n", "bs", "iodepth", "IOPS", "MB/s", "p50 us", "p99 us");
    for (auto& p : points)
        out += fmt::format("{:>8} {:>8} {:>12.0f} {:>10.1f} {:>10.1f} {:>10.1f}\n", core::format_size(p.bs), p.iodepth, p.iops, p.mbps,
                           p.p50 / 1e3, p.p99 / 1e3);
    return out;
}

// Two panels side by side, log2 queue depth on x, linear IOPS / log p99 on y; a line and a colour per block size.
std::string sweep_svg(const std::vector<SweepPoint>& points, const std::string& title)
{
    const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"};
    std::map<std::uint32_t, std::vector<SweepPoint>> by_bs;
    std::set<unsigned> depths;
    for (auto& p : points) by_bs[p.bs].push_back(p), depths.insert(p.iodepth);
    const double W = 460, H = 320, L = 70, T = 50, PW = W - L - 20, PH = H - T - 60;
    const double dmin = std::log2(*depths.begin()), dmax = std::max(std::log2(*depths.rbegin()), dmin + 1);
    double imax = 1, lmin = 1e18, lmax = 1;
    for (auto& p : points) {
        imax = std::max(imax, p.iops);
        if (p.p99) lmin = std::min(lmin, double(p.p99) / 1e3), lmax = std::max(lmax, double(p.p99) / 1e3);
    }
    if (lmin > lmax) lmin = 1;
    const double llo = std::floor(std::log10(std::max(lmin, 0.1))), lhi = std::max(std::ceil(std::log10(lmax)), llo + 1);
    auto x = [&](unsigned d, double off) { return off + L + (std::log2(d) - dmin) / (dmax - dmin) * PW; };
    std::string s = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n"
                                "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"20\" y=\"24\" font-size=\"15\">{}</text>\n",
                                2 * W, H + 30, title);
    for (int panel = 0; panel < 2; ++panel) {
        const double off = panel * W;
        auto y = [&](const SweepPoint& p) {
            if (panel == 0) return T + PH - p.iops / imax * PH;
            const double v = std::log10(std::max(double(p.p99) / 1e3, 0.1));
            return T + PH - (v - llo) / (lhi - llo) * PH;
        };
        s += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", off + L, T - 10, panel == 0 ? "IOPS" : "p99 latency (us, log scale)");
        s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/><line x1=\"{0}\" y1=\"{2}\" x2=\"{3}\" y2=\"{2}\" stroke=\"black\"/>\n",
                         off + L, T, T + PH, off + L + PW);
        for (unsigned d : depths)
            s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x(d, off), T + PH + 16, d);
        s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">queue depth</text>\n", off + L + PW / 2, T + PH + 34);
        for (int k = 0; k <= 4; ++k) {
            const double fy = T + PH - k / 4.0 * PH;
            const std::string label = panel == 0 ? fmt::format("{:.0f}k", imax * k / 4 / 1e3) : fmt::format("{:.3g}", std::pow(10, llo + k / 4.0 * (lhi - llo)));
            s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text><line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n",
                             off + L - 6, fy + 4, label, off + L, fy, off + L + PW, fy);
        }
        int c = 0;
        for (auto& [bs, pts] : by_bs) {
            std::string line;
            for (auto& p : pts) line += fmt::format("{:.1f},{:.1f} ", x(p.iodepth, off), y(p));
            const char* col = colours[c % 6];
            s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", col, line);
            for (auto& p : pts) s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", x(p.iodepth, off), y(p), col);
            if (panel == 0)   // legend in a row under the plots, clear of every line
                s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\">&#9644; bs {}</text>\n", L + 100.0 * c, T + PH + 56, col, core::format_size(bs));
            ++c;
        }
    }
    return s + "</svg>\n";
}

}  // namespace devemu::uring
