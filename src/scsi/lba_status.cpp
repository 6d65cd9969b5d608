#include "scsi/lba_status.hpp"

#include <algorithm>
#include <vector>

#include "scsi/bytes.hpp"

namespace devemu::scsi {

namespace {

struct Descriptor {
    std::uint64_t lba = 0, blocks = 0;
    bool mapped = true;
};

bool wanted(std::uint8_t report_type, bool mapped)
{
    switch (report_type) {
    case 0: return true;
    case 2: return mapped;
    case 1:   // a non-zero provisioning status: deallocated (nothing here is anchored)
    case 3: return !mapped;
    default: return false;   // 4: anchored
    }
}

}  // namespace

Plan lba_status(const Plan& plan, const Device& d, const RunProbe& probe)
{
    const std::uint64_t bs = d.block_size, end_lba = plan.lba + plan.blocks;
    const std::size_t fit = plan.alloc > 8 ? (plan.alloc - 8 + 15) / 16 : 1;   // a partial one is still sent, truncated
    const std::size_t limit = std::clamp<std::size_t>(fit, 1, max_lba_status_descriptors);
    constexpr std::uint64_t most = 0xffffffffu;   // NUMBER OF LOGICAL BLOCKS is 32 bits
    std::vector<Descriptor> out;
    bool full = false;
    auto add = [&](std::uint64_t lba, std::uint64_t n, bool mapped) {
        while (n > 0 && !full) {
            if (!out.empty() && out.back().mapped == mapped && out.back().lba + out.back().blocks == lba && out.back().blocks < most) {
                const auto take = std::min(n, most - out.back().blocks);
                out.back().blocks += take, lba += take, n -= take;
                continue;
            }
            if (out.size() == limit) {
                full = true;
                break;
            }
            const auto take = std::min(n, most);
            out.push_back({lba, take, mapped});
            lba += take, n -= take;
        }
    };
    // Skipped runs (a report type that filters) still cost probes: bounded, so a fragmented file cannot stall the LUN.
    std::size_t probes = 0;
    for (std::uint64_t lba = plan.lba; lba < end_lba && !full && probes < 8 * max_lba_status_descriptors; ++probes) {
        const std::uint64_t off = lba * bs, end = end_lba * bs;
        Run r = probe ? probe(off, end).value_or(Run{true, end - off}) : Run{true, end - off};
        r.len = std::min(r.len, end - off);
        std::uint64_t n = r.data ? (r.len + bs - 1) / bs : r.len / bs;
        bool mapped = r.data;
        if (n == 0) n = 1, mapped = true;   // a hole smaller than a block: the block holds data
        if (wanted(plan.report_type, mapped)) add(lba, n, mapped);
        lba += n;
    }
    std::vector<std::uint8_t> r(8, 0);
    put32(&r[0], static_cast<std::uint32_t>(4 + 16 * out.size()));   // PARAMETER DATA LENGTH: the bytes after it
    r[7] = 0x01;   // RTP: the REPORT TYPE field was honoured
    for (const auto& e : out) {
        std::uint8_t b[16] = {};
        put64(&b[0], e.lba);
        put32(&b[8], static_cast<std::uint32_t>(e.blocks));
        b[12] = e.mapped ? 0x00 : 0x01;   // PROVISIONING STATUS: mapped, deallocated
        r.insert(r.end(), b, b + 16);
    }
    Plan p;
    if (r.size() > plan.alloc) r.resize(plan.alloc);
    p.data = std::move(r);
    return p;
}

}  // namespace devemu::scsi
