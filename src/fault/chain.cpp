#include "fault/chain.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace devemu::fault {

core::Status Chain::add(Spec s, Clock::time_point now)
{
    if (s.id.empty())
        do s.id = fmt::format("{}{}", to_string(s.type), next_id_++);
        while (std::any_of(faults_.begin(), faults_.end(), [&](const Armed& a) { return a.spec.id == s.id; }));
    if (std::any_of(faults_.begin(), faults_.end(), [&](const Armed& a) { return a.spec.id == s.id; }))
        return core::fail(core::Errc::invalid_input, "a fault with id \"" + s.id + "\" is already there", s.id, "clear it first, or give another id");
    Armed a{s, now, std::mt19937_64(s.seed), 0, false, {}, now, {}, false};
    faults_.push_back(std::move(a));
    return {};
}

bool Chain::clear(const std::string& id)
{
    auto it = std::find_if(faults_.begin(), faults_.end(), [&](const Armed& a) { return a.spec.id == id; });
    if (it == faults_.end()) return false;
    faults_.erase(it);
    return true;
}

bool Chain::in_scope(const Spec& s, const Io& io)
{
    if (s.scope == Scope::read && io.write) return false;
    if (s.scope == Scope::write && !io.write) return false;
    if (io.blocks == 0) return s.first == 0 && s.last == UINT64_MAX;   // a flush: only a fault on the whole device
    return io.lba <= s.last && io.lba + io.blocks - 1 >= s.first;
}

Verdict Chain::decide(const Io& io, Clock::time_point now)
{
    Verdict v;
    Clock::duration extra{0};
    auto medium = [&](std::uint64_t lba) {
        v.error = io.write ? scsi::medium_error_write : scsi::medium_error_read;
        v.error_lba = lba;
    };
    for (auto& a : faults_) {
        const Spec& s = a.spec;
        if (!in_scope(s, io)) continue;
        const std::uint64_t from = std::max(io.lba, s.first);
        switch (s.type) {
        case Type::error: {
            if (s.mode == Mode::sticky) {
                auto hit = a.failed.lower_bound(io.lba);
                if (hit != a.failed.end() && *hit < io.lba + io.blocks) {
                    ++a.events;
                    medium(*hit);
                    return v;
                }
            }
            if (s.mode == Mode::once && a.fired) break;
            if (s.probability < 1.0 && std::uniform_real_distribution<double>(0, 1)(a.rng) >= s.probability) break;
            a.fired = true;
            if (s.mode == Mode::sticky) a.failed.insert(from);
            ++a.events;
            medium(from);
            return v;
        }
        case Type::flakey: {
            const auto cycle = s.up + s.down;
            const auto into = std::chrono::duration_cast<Nanos>(now - a.armed) % cycle;
            if (into < s.up) break;   // up
            ++a.events;
            if (!s.drop_writes) {
                medium(from);
                return v;
            }
            if (!io.write) {
                --a.events;   // reads are served while writes are dropped
                break;
            }
            v.drop = true;
            if (!a.dropped.empty() && a.dropped.back().first + a.dropped.back().second == io.lba) a.dropped.back().second += io.blocks;
            else if (a.dropped.size() < max_dropped_ranges) a.dropped.emplace_back(io.lba, io.blocks);
            else a.dropped_more = true;
            break;
        }
        case Type::stall:
            if (s.stall_for.count() == 0) {
                v.held = true;
                ++a.events;
            } else if (now < a.armed + s.stall_for) {
                v.not_before = std::max(v.not_before, a.armed + s.stall_for);
                ++a.events;
            }
            break;
        case Type::delay: {
            auto d = s.delay_min;
            if (s.delay_max > s.delay_min)
                d = Nanos(std::uniform_int_distribution<std::int64_t>(s.delay_min.count(), s.delay_max.count())(a.rng));
            extra += d;
            ++a.events;
            break;
        }
        case Type::rate: {
            Clock::duration cost{0};
            if (s.iops) cost += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / static_cast<double>(s.iops)));
            if (s.bytes_per_s)
                cost += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(static_cast<double>(io.bytes) / static_cast<double>(s.bytes_per_s)));
            const auto start = std::max(a.next_free, now + extra);
            if (start > now + extra) ++a.events;
            a.next_free = start + cost;
            extra = start - now;
            break;
        }
        }
    }
    if (extra.count() > 0) v.not_before = std::max(v.not_before, now + extra);
    return v;
}

void Chain::strip_counts(nlohmann::json& fault)
{
    for (const char* k : {"events", "dropped", "dropped_more"}) fault.erase(k);
}

bool Chain::stalled(const Io& io) const
{
    return std::any_of(faults_.begin(), faults_.end(),
                       [&](const Armed& a) { return a.spec.type == Type::stall && a.spec.stall_for.count() == 0 && in_scope(a.spec, io); });
}

nlohmann::json Chain::to_json() const
{
    auto out = nlohmann::json::array();
    for (auto& a : faults_) {
        auto j = fault::to_json(a.spec);
        j["events"] = a.events;
        if (!a.dropped.empty()) j["dropped"] = a.dropped;
        if (a.dropped_more) j["dropped_more"] = true;
        out.push_back(j);
    }
    return out;
}

}  // namespace devemu::fault
