#include "scsi/supported.hpp"

#include <algorithm>

#include "scsi/bytes.hpp"
#include "scsi/opcodes.hpp"

namespace devemu::scsi {

namespace {

using Bytes = std::vector<std::uint8_t>;

// The usage bits of the CDB layouts decode() reads. The control byte (the last) is 0: nothing in it is evaluated.
constexpr std::uint8_t ff = 0xff;
Bytes six(std::uint8_t code, std::uint8_t b1, std::uint8_t b2, std::uint8_t b3, std::uint8_t b4) { return {code, b1, b2, b3, b4, 0}; }
// LBA in bytes 2-5, a length in bytes 7-8 (10-byte READ, WRITE, VERIFY, SYNCHRONIZE CACHE, WRITE SAME, …).
Bytes ten(std::uint8_t code, std::uint8_t b1, bool lba = true)
{
    const std::uint8_t a = lba ? ff : 0;
    return {code, b1, a, a, a, a, 0, ff, ff, 0};
}
// LBA in bytes 2-9, a length in bytes 10-13.
Bytes sixteen(std::uint8_t code, std::uint8_t b1) { return {code, b1, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, 0, 0}; }
// LBA in bytes 2-5, a length in bytes 6-9.
Bytes twelve(std::uint8_t code, std::uint8_t b1) { return {code, b1, ff, ff, ff, ff, ff, ff, ff, ff, 0, 0}; }

// RDPROTECT/WRPROTECT (refused when set), DPO (a hint, taken: MODE SENSE sets DPOFUA) and FUA. libiscsi checks
// that DPO and FUA are in the usage data when DPOFUA is set.
constexpr std::uint8_t protect = 0xe0, dpo = 0x10, protect_fua = 0xf8;

void put_timeouts(Bytes& out)   // a command timeouts descriptor: length 0x0a, no nominal or recommended timeout
{
    const Bytes t = {0x00, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    out.insert(out.end(), t.begin(), t.end());
}

}  // namespace

std::vector<SupportedCommand> supported_commands(const Device& d)
{
    std::vector<SupportedCommand> v = {
        {op::test_unit_ready, {}, six(op::test_unit_ready, 0, 0, 0, 0)},
        {op::request_sense, {}, six(op::request_sense, 0, 0, 0, ff)},
        {op::read6, {}, six(op::read6, 0x1f, ff, ff, ff)},
        {op::write6, {}, six(op::write6, 0x1f, ff, ff, ff)},
        {op::inquiry, {}, six(op::inquiry, 0x01, ff, ff, ff)},
        {op::mode_select6, {}, six(op::mode_select6, 0, 0, 0, ff)},
        {op::mode_sense6, {}, six(op::mode_sense6, 0x08, ff, ff, ff)},
        {op::start_stop, {}, six(op::start_stop, 0, 0, 0, 0)},
        {op::prevent_allow, {}, six(op::prevent_allow, 0, 0, 0, 0)},
        {op::read_capacity10, {}, Bytes{op::read_capacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
        {op::read10, {}, ten(op::read10, protect_fua)},
        {op::write10, {}, ten(op::write10, protect_fua)},
        {op::write_verify10, {}, ten(op::write_verify10, protect | dpo)},
        {op::verify10, {}, ten(op::verify10, protect | dpo | 0x06)},   // BYTCHK
        {op::sync_cache10, {}, ten(op::sync_cache10, 0)},
        {op::write_same10, {}, ten(op::write_same10, protect | 0x18)},   // ANCHOR, UNMAP
        {op::mode_select10, {}, ten(op::mode_select10, 0, false)},
        {op::mode_sense10, {}, Bytes{op::mode_sense10, 0x08, ff, ff, 0, 0, 0, ff, ff, 0}},
        {op::read16, {}, sixteen(op::read16, protect_fua)},
        {op::compare_and_write, {}, Bytes{op::compare_and_write, protect_fua, ff, ff, ff, ff, ff, ff, ff, ff, 0, 0, 0, ff, 0, 0}},
        {op::write16, {}, sixteen(op::write16, protect_fua)},
        {op::write_verify16, {}, sixteen(op::write_verify16, protect | dpo)},
        {op::verify16, {}, sixteen(op::verify16, protect | dpo | 0x06)},
        {op::sync_cache16, {}, sixteen(op::sync_cache16, 0)},
        {op::write_same16, {}, sixteen(op::write_same16, protect | 0x19)},   // ANCHOR, UNMAP, NDOB
        {op::service_action_in16, op::read_capacity16_sa,
         Bytes{op::service_action_in16, op::read_capacity16_sa, 0, 0, 0, 0, 0, 0, 0, 0, ff, ff, ff, ff, 0, 0}},
        {op::service_action_in16, op::get_lba_status_sa,
         Bytes{op::service_action_in16, op::get_lba_status_sa, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, ff, 0x07, 0}},   // REPORT TYPE
        {op::maintenance_in, op::report_supported_opcodes_sa,
         Bytes{op::maintenance_in, op::report_supported_opcodes_sa, 0x87, ff, ff, ff, ff, ff, ff, ff, 0, 0}},   // RCTD, REPORTING OPTIONS
        {op::read12, {}, twelve(op::read12, protect_fua)},
        {op::write12, {}, twelve(op::write12, protect_fua)},
    };
    if (d.can_unmap) v.push_back({op::unmap, {}, Bytes{op::unmap, 0, 0, 0, 0, 0, 0, ff, ff, 0}});
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.opcode < b.opcode; });
    return v;
}

std::optional<std::vector<std::uint8_t>> report_supported_opcodes(std::span<const std::uint8_t> c, const Device& d)
{
    const bool rctd = c[2] & 0x80;
    const std::uint8_t options = c[2] & 0x07, code = c[3];
    const std::uint16_t sa = be16(&c[4]);
    const auto all = supported_commands(d);
    Bytes out;
    if (options == 0) {   // every command: a header, then one descriptor each
        out.assign(4, 0);
        for (const auto& s : all) {
            Bytes e(8, 0);
            e[0] = s.opcode;
            put16(&e[2], s.service_action.value_or(0));
            e[5] = static_cast<std::uint8_t>((rctd ? 0x02 : 0) | (s.service_action ? 0x01 : 0));   // CTDP, SERVACTV
            put16(&e[6], static_cast<std::uint32_t>(s.usage.size()));
            out.insert(out.end(), e.begin(), e.end());
            if (rctd) put_timeouts(out);
        }
        put32(&out[0], static_cast<std::uint32_t>(out.size() - 4));
        return out;
    }
    if (options > 3) return std::nullopt;
    const bool has_actions = std::any_of(all.begin(), all.end(), [&](const auto& s) { return s.opcode == code && s.service_action; });
    const bool has_plain = std::any_of(all.begin(), all.end(), [&](const auto& s) { return s.opcode == code && !s.service_action; });
    if (options == 1 && has_actions) return std::nullopt;   // 001b: only for a command without service actions
    if (options == 2 && has_plain) return std::nullopt;     // 010b: only for one with them
    const auto it = std::find_if(all.begin(), all.end(), [&](const auto& s) {
        return s.opcode == code && (!s.service_action || (options != 1 && *s.service_action == sa));
    });
    out.assign(4, 0);
    if (it == all.end()) {
        out[1] = 0x01;   // SUPPORT 001b: not supported
        return out;
    }
    out[1] = static_cast<std::uint8_t>((rctd ? 0x80 : 0) | 0x03);   // CTDP, SUPPORT 011b: supported as the standard says
    put16(&out[2], static_cast<std::uint32_t>(it->usage.size()));
    out.insert(out.end(), it->usage.begin(), it->usage.end());
    if (rctd) put_timeouts(out);
    return out;
}

}  // namespace devemu::scsi
