// libFuzzer target for the BOT/SCSI parsers the checker feeds with device bytes: tools/fuzz-bot builds and runs it.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "scsi/cdb.hpp"
#include "usb/bot.hpp"

using namespace devemu::usb::bot;
using namespace devemu::scsi;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::span<const std::uint8_t> b(data, size);
    if (auto c = decode_csw(b)) {
        auto again = encode(*c);
        if (!std::equal(again.begin(), again.end(), b.begin())) std::abort();
        Cbw sent{c->tag, c->residue, Dir::in, 0, cdb_test_unit_ready()};
        (void)csw_problem(sent, *c);
    }
    if (auto c = decode_cbw(b)) {
        if (c->cdb.empty() || c->cdb.size() > 16 || c->lun > 15) std::abort();
        (void)encode(*c);
    }
    if (auto s = parse_sense(b)) {
        if (s->key > 15 || s->response_code < 0x70 || s->response_code > 0x73) std::abort();
        (void)s->str();
    }
    (void)parse_inquiry(b);
    (void)parse_read_capacity10(b);
    (void)parse_read_capacity16(b);
    (void)parse_mode_sense6(b);
    (void)parse_mode_sense10(b);
    (void)parse_read_format_capacities(b);
    return 0;
}
