// gadget-ticks: reads an ftrace text trace (stdin) of a USB mass-storage gadget on dummy_hcd serving reads one
// at a time, and prints how the bus and the function shared the time. Events needed: timer:hrtimer_expire_entry
// (dummy_hcd's transfer scheduler is an hrtimer on Debian 12's 6.1), gadget:usb_gadget_giveback_request,
// gadget:usb_ep_queue, sched:sched_wakeup. Run by tools/trace-gadget; see the README ("Where a 4k read's time goes").
// The columns are named by --header and explained by --legend (kLegend below), so that the script and this reader
// cannot disagree on them.
//
// Usage: gadget-ticks LABEL < trace | gadget-ticks --header | gadget-ticks --legend
//        (exit 2: no dummy_hcd run or no CBW in the trace)
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

constexpr const char* kRow = "  %-10s %8s %9s %14s %12s %9s\n";
constexpr const char* kLegend =
    "  cmds/s     commands served per second in the traced second\n"
    "  ticks/cmd  dummy_hcd scheduler runs per command (a CBW, a data and a CSW transfer: 3 at best; a reply queued after\n"
    "             the host's URB waited for a run costs one more)\n"
    "  reply      from the CBW's arrival (its request given back) to the function's reply queued on bulk-in\n"
    "  wake       from the CBW's arrival to the wake-up of the function's task (mostly on the other CPU than the bus's: an IPI)\n";

struct Event {
    double t = 0;
    long pid = 0;
    std::string name, rest;
};

// "  task-PID  [CPU] FLAGS  TS: name: rest"
bool parse(const std::string& line, Event& e)
{
    if (line.empty() || line[0] == '#') return false;
    const auto bracket = line.find(" [");
    if (bracket == std::string::npos) return false;
    const auto dash = line.rfind('-', bracket);
    if (dash == std::string::npos) return false;
    try {
        e.pid = std::stol(line.substr(dash + 1, bracket - dash - 1));
    } catch (...) {
        return false;
    }
    const auto colon = line.find(": ", bracket);
    if (colon == std::string::npos) return false;
    const auto ts = line.rfind(' ', colon);
    try {
        e.t = std::stod(line.substr(ts + 1, colon - ts - 1));
    } catch (...) {
        return false;
    }
    const auto colon2 = line.find(": ", colon + 2);
    if (colon2 == std::string::npos) return false;
    e.name = line.substr(colon + 2, colon2 - colon - 2);
    e.rest = line.substr(colon2 + 2);
    return true;
}

bool is_cbw(const Event& e)
{
    return e.name == "usb_gadget_giveback_request" && e.rest.find("out") < e.rest.find(':') && e.rest.find("length 31/") != std::string::npos;
}

bool is_in_queue(const Event& e) { return e.name == "usb_ep_queue" && e.rest.find("in") < e.rest.find(':'); }

std::string pct(std::vector<double> v)
{
    if (v.empty()) return "-";
    std::sort(v.begin(), v.end());
    char b[64];
    std::snprintf(b, sizeof b, "%.0f / %.0f", v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 9 / 10)]);
    return b;
}

}  // namespace

int main(int argc, char** argv)
{
    const std::string label = argc > 1 ? argv[1] : "trace";
    if (label == "--header") return std::printf(kRow, "path", "cmds/s", "ticks/cmd", "reply", "wake", "ticks/s"), 0;
    if (label == "--legend") return std::fputs(kLegend, stdout), 0;
    std::vector<Event> ev;
    for (std::string line; std::getline(std::cin, line);)
        if (Event e; parse(line, e)) ev.push_back(std::move(e));
    // The function's task: whoever queues most on a bulk-in endpoint (the kernel's file-storage thread or devemu).
    std::map<long, int> queuers;
    for (const auto& e : ev)
        if (is_in_queue(e)) ++queuers[e.pid];
    if (queuers.empty()) {
        std::cerr << "gadget-ticks: " << label << ": no bulk-in request in the trace\n";
        return 2;
    }
    const long fn = std::max_element(queuers.begin(), queuers.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
    const std::string woken = "pid=" + std::to_string(fn) + " ";
    long ticks = 0, cbws = 0;
    double first = -1, last = -1, cbw_at = -1, wake_at = -1;
    std::vector<double> reply, wake;
    for (const auto& e : ev) {
        if (e.name == "hrtimer_expire_entry" && e.rest.find("function=dummy_timer") != std::string::npos) {
            ++ticks;
            if (first < 0) first = e.t;
            last = e.t;
        } else if (is_cbw(e)) {
            ++cbws;
            cbw_at = e.t, wake_at = -1;
        } else if (cbw_at >= 0 && e.name == "sched_wakeup" && e.rest.find(woken) != std::string::npos && wake_at < 0) {
            wake_at = e.t;
        } else if (cbw_at >= 0 && is_in_queue(e) && e.pid == fn) {
            reply.push_back((e.t - cbw_at) * 1e6);
            if (wake_at >= 0) wake.push_back((wake_at - cbw_at) * 1e6);
            cbw_at = -1;
        }
    }
    if (ticks == 0 || cbws == 0) {
        std::cerr << "gadget-ticks: " << label << ": " << (ticks ? "no CBW" : "no dummy_hcd scheduler run (timer:hrtimer_expire_entry)") << " in the trace\n";
        return 2;
    }
    const double span = last > first ? last - first : 1;
    char rate[32], per[32], runs[32];
    std::snprintf(rate, sizeof rate, "%.0f", cbws / span);
    std::snprintf(per, sizeof per, "%.2f", static_cast<double>(ticks) / cbws);
    std::snprintf(runs, sizeof runs, "%.0f", ticks / span);
    std::printf(kRow, label.c_str(), rate, per, pct(reply).c_str(), pct(wake).c_str(), runs);
    return 0;
}
