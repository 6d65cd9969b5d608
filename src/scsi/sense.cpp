#include "scsi/sense.hpp"

#include <fmt/format.h>

#include "scsi/bytes.hpp"

namespace devemu::scsi {

std::vector<std::uint8_t> sense_bytes(const Sense& s, std::uint32_t information)
{
    std::vector<std::uint8_t> b(18, 0);
    b[0] = information ? 0xf0 : 0x70;
    b[2] = s.key;
    put32(&b[3], information);
    b[7] = 10;
    b[12] = s.asc;
    b[13] = s.ascq;
    return b;
}

const char* sense_key_name(std::uint8_t key)
{
    static const char* names[] = {"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
                                  "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
                                  "COPY ABORTED", "ABORTED COMMAND", "RESERVED", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED"};
    return names[key & 0x0f];
}

std::string Sense::str() const
{
    const char* what = "";
    if (asc == 0x20 && ascq == 0) what = " (invalid command operation code)";
    else if (asc == 0x24 && ascq == 0) what = " (invalid field in CDB)";
    else if (asc == 0x21 && ascq == 0) what = " (LBA out of range)";
    else if (asc == 0x27 && ascq == 0) what = " (write protected)";
    else if (asc == 0x3a) what = " (medium not present)";
    else if (asc == 0x29) what = " (power on, reset or bus device reset occurred)";
    else if (asc == 0x28) what = " (medium may have changed)";
    else if (asc == 0x25 && ascq == 0) what = " (logical unit not supported)";
    else if (asc == 0x11 && ascq == 0) what = " (unrecovered read error)";
    else if (asc == 0x0c && ascq == 0) what = " (write error)";
    return fmt::format("{} {:02x}/{:02x}{}", sense_key_name(key), asc, ascq, what);
}

std::optional<Sense> parse_sense(std::span<const std::uint8_t> b)
{
    if (b.empty()) return std::nullopt;
    Sense s;
    s.response_code = b[0] & 0x7f;
    if (s.response_code == 0x70 || s.response_code == 0x71) {
        if (b.size() < 14) {
            if (b.size() < 3) return std::nullopt;
            s.key = b[2] & 0x0f;   // short fixed sense: the key is there, ASC/ASCQ are not
            return s;
        }
        s.key = b[2] & 0x0f;
        s.asc = b[12];
        s.ascq = b[13];
        return s;
    }
    if (s.response_code == 0x72 || s.response_code == 0x73) {
        if (b.size() < 4) return std::nullopt;
        s.key = b[1] & 0x0f;
        s.asc = b[2];
        s.ascq = b[3];
        return s;
    }
    return std::nullopt;
}

}  // namespace devemu::scsi
