// The control socket of devemu's mass-storage function: `devemu fault` adds and clears block faults on its LUNs
// (the same chain as a TCMU handler's) and arms USB faults for the next commands.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstring>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "core/unix_socket.hpp"
#include "fault/fault.hpp"
#include "usb/msc_server.hpp"

namespace devemu::usb {

namespace {

using nlohmann::json;

json error_json(const core::Error& e) { return {{"ok", false}, {"error", {{"what", e.what}, {"where", e.where}, {"fix", e.fix}}}}; }

}  // namespace

// The USB faults the data path knows: armed for the next `count` commands.
const std::vector<std::string>& usb_fault_names()
{
    static const std::vector<std::string> names = {"halt-in", "halt-out", "stall-data", "stall-status", "bad-signature", "bad-tag", "bad-residue", "no-csw"};
    return names;
}

std::string MscServer::take_usb_fault()
{
    std::lock_guard lk(faults_mu_);
    if (usb_fault_.empty()) return {};
    std::string f = usb_fault_;
    if (--usb_fault_count_ == 0) usb_fault_.clear();
    ++usb_faults_done_;
    keep_faults();   // a restarted server does not fire it again
    spdlog::info("usb: fault {} on this command", f);
    return f;
}

// What a restarted server starts from (MscConfig::faults_state): the chains without their counts, and the USB fault
// still armed. Called with faults_mu_ held.
void MscServer::keep_faults() const
{
    if (cfg_.faults_state.empty()) return;
    json luns = json::object();
    for (auto& l : luns_) {
        json specs = json::array();
        for (auto f : l.chain.to_json()) {
            fault::Chain::strip_counts(f);
            specs.push_back(std::move(f));
        }
        luns[l.cfg.name] = std::move(specs);
    }
    const json state = {{"luns", luns}, {"usb", {{"fault", usb_fault_}, {"count", usb_fault_count_}}}};
    if (auto s = core::write_file_atomic(cfg_.faults_state, state.dump() + "\n", 0600); !s) spdlog::warn("{}", s.error().message());
}

json MscServer::control_request(const std::string& line)
{
    auto req = json::parse(line, nullptr, false);
    const std::string op = req.is_object() ? req.value("op", "") : "";
    const std::string only = req.is_object() ? req.value("backstore", "") : "";
    std::lock_guard lk(faults_mu_);
    auto luns = std::vector<Lun*>();
    for (auto& l : luns_)
        if (only.empty() || l.cfg.name == only) luns.push_back(&l);
    if (luns.empty()) return error_json({core::Errc::invalid_input, "no LUN on backstore '" + only + "'", only, "devemu ls shows the gadget's LUNs"});
    if (op == "usb") {
        const std::string f = req.value("fault", "");
        if (f == "clear") {
            usb_fault_.clear();
            usb_fault_count_ = 0;
        } else if (std::find(usb_fault_names().begin(), usb_fault_names().end(), f) != usb_fault_names().end()) {
            usb_fault_ = f;
            usb_fault_count_ = std::max(1u, req.value("count", 1u));
        } else {
            return error_json({core::Errc::invalid_input, "unknown USB fault '" + f + "'", f, "halt-in, halt-out, stall-data, stall-status, bad-signature, bad-tag, bad-residue, no-csw or clear"});
        }
        keep_faults();
        return {{"ok", true}, {"usb", {{"fault", usb_fault_.empty() ? "none" : usb_fault_}, {"count", usb_fault_count_}}}};
    }
    if (op == "add") {
        for (auto* l : luns) {
            auto spec = fault::parse(fault::keys_of(req.value("keys", json::object())), req.value("where", std::string("devemu fault add")), l->dev.blocks - 1);
            if (!spec) return error_json(spec.error());
            if (auto s = l->chain.add(*spec, fault::Clock::now()); !s) return error_json(s.error());
        }
    } else if (op == "clear") {
        bool any = !req.contains("id");
        for (auto* l : luns) {
            if (req.contains("id")) any = l->chain.clear(req.value("id", "")) || any;
            else l->chain.clear_all();
        }
        if (!any) return error_json({core::Errc::invalid_input, "no fault \"" + req.value("id", "") + "\" on this gadget", req.value("id", ""), "devemu fault NAME ls shows them"});
    } else if (op != "ls") {
        return error_json({core::Errc::invalid_input, "unknown request", line, "add, clear, ls or usb"});
    }
    publish_faults();
    keep_faults();
    json out = json::object();
    for (auto* l : luns) out[l->cfg.name] = l->chain.to_json();
    return {{"ok", true}, {"faults", out}};
}

// One request line, one answer line (core::serve_one_request), for as long as the server runs.
void MscServer::control_loop(int listener)
{
    core::UniqueFd l(listener);
    while (core::serve_one_request(l.get(), [&](const std::string& line) { return control_request(line).dump(); })) {}
}

}  // namespace devemu::usb
