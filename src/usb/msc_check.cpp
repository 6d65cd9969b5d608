// The mass-storage checks of the USB checker: the SCSI commands hosts send (with what SPC allows a device to refuse),
// CBW/CSW conformance, the BOT thirteen cases, a write->read-verify that restores what it touched, and throughput.
#include <spdlog/spdlog.h>

#include <chrono>
#include <random>

#include "core/text.hpp"
#include "usb/check_link.hpp"

namespace devemu::usb::check {

using nlohmann::json;

namespace {

// A command that may be unsupported: passing, or refused the way SPC says (CHECK CONDITION, ILLEGAL REQUEST).
// Returns the data when it passed.
std::optional<std::vector<std::uint8_t>> optional_command(Bot& bot, Report& rep, const std::string& lun, std::uint8_t l, const std::string& name,
                                                          const std::vector<std::uint8_t>& cdb, std::size_t alloc)
{
    std::vector<std::uint8_t> data(alloc);
    auto r = bot.in(l, cdb, data);
    if (r.passed()) {
        data.resize(static_cast<std::size_t>(r.transferred));
        return data;
    }
    if (r.csw && r.csw_problem.empty() && r.csw->status == 1) {
        auto s = bot.request_sense(l);
        if (s && s->key == scsi::key::illegal_request) rep.info(lun, name, "not supported, refused correctly: " + s->str());
        else rep.fail(lun, name, "failed with " + sense_str(s) + " (expected success or ILLEGAL REQUEST)");
        return std::nullopt;
    }
    rep.fail(lun, name, r.str());
    bot.reset_recovery();
    return std::nullopt;
}

// ---- the BOT thirteen cases (BOT 1.0, 6.7), on LUN 0 ----
struct Case {
    int number;
    const char* label;
    b::Dir host_dir;
    std::uint32_t host_len;
    std::vector<std::uint8_t> cdb;   // what the device will want
    bool expect_phase_error;
    std::uint32_t expect_residue;    // when not a phase error
};

// Only on a writable LUN (check_lun returns before this on a read-only one).
void thirteen_cases(Bot& bot, Report& rep, std::uint32_t block_size, std::uint64_t blocks)
{
    // The scratch block for the write cases is read first and written back by every write case, so no data changes.
    const std::uint32_t lba = static_cast<std::uint32_t>(std::min<std::uint64_t>(blocks - 1, 0xffffffffu));
    std::vector<std::uint8_t> original(block_size);
    auto r0 = bot.in(0, scsi::cdb_read10(lba, 1), original);
    if (!r0.passed()) {
        rep.fail("0", "BOT cases", "cannot read the scratch block: " + r0.str());
        return;
    }
    const std::uint32_t bs = block_size;
    std::vector<Case> cases = {
        {1, "Hn = Dn", b::Dir::none, 0, scsi::cdb_test_unit_ready(), false, 0},
        {2, "Hn < Di", b::Dir::none, 0, scsi::cdb_inquiry(36), true, 0},
        {3, "Hn < Do", b::Dir::none, 0, scsi::cdb_write10(lba, 1), true, 0},
        {4, "Hi > Dn", b::Dir::in, bs, scsi::cdb_test_unit_ready(), false, bs},
        {5, "Hi > Di", b::Dir::in, 2 * bs, scsi::cdb_read10(lba, 1), false, bs},
        {6, "Hi = Di", b::Dir::in, bs, scsi::cdb_read10(lba, 1), false, 0},
        {7, "Hi < Di", b::Dir::in, bs / 2, scsi::cdb_read10(lba, 1), true, 0},
        {8, "Hi <> Do", b::Dir::in, bs, scsi::cdb_write10(lba, 1), true, 0},
        {9, "Ho > Dn", b::Dir::out, bs, scsi::cdb_test_unit_ready(), false, bs},
        {10, "Ho <> Di", b::Dir::out, bs, scsi::cdb_read10(lba, 1), true, 0},
        {11, "Ho > Do", b::Dir::out, 2 * bs, scsi::cdb_write10(lba, 1), false, bs},
        {12, "Ho = Do", b::Dir::out, bs, scsi::cdb_write10(lba, 1), false, 0},
        {13, "Ho < Do", b::Dir::out, bs / 2, scsi::cdb_write10(lba, 1), true, 0},
    };
    for (auto& c : cases) {
        std::vector<std::uint8_t> buf(std::max<std::uint32_t>(c.host_len, 1));
        if (c.host_dir == b::Dir::out)   // host data = the original block (repeated for a longer transfer)
            for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = original[i % original.size()];
        auto r = bot.run(0, c.cdb, c.host_dir, c.host_len, buf.data());
        const auto label = fmt::format("BOT case {:2} ({})", c.number, c.label);
        bool ok = false;
        std::string why;
        if (!r.csw || !r.csw_problem.empty()) {
            why = r.str();
        } else if (c.expect_phase_error) {
            // BOT allows status 2 here; a device that refuses the command (status 1) without moving data also
            // keeps the host safe, but the spec asks for a phase error.
            ok = r.csw->status == 2;
            why = ok ? "phase error, as the spec asks" : fmt::format("expected phase error (status 2), got {}", r.str());
        } else {
            ok = r.csw->status <= 1 && r.csw->residue == c.expect_residue;
            why = ok ? fmt::format("status {}, residue {}", r.csw->status, r.csw->residue)
                     : fmt::format("expected status 0/1 with residue {}, got {}", c.expect_residue, r.str());
        }
        rep.check("0", label, ok, why);
        // After a phase error or a transport problem the host must do reset recovery (BOT 5.3.4); after a
        // CHECK CONDITION, fetch the sense so the next case starts clean.
        if (!r.csw || r.csw->status == 2 || !r.csw_problem.empty()) bot.reset_recovery();
        else if (r.csw->status == 1) bot.request_sense(0);
    }
    // Nothing may have changed: the write cases wrote the original block back.
    std::vector<std::uint8_t> after(block_size);
    auto r1 = bot.in(0, scsi::cdb_read10(lba, 1), after);
    rep.check("0", "BOT cases left data intact", r1.passed() && after == original, r1.passed() ? "scratch block compared" : r1.str());
}

// Retries TEST UNIT READY through the UNIT ATTENTIONs a reset or a media change leaves behind.
Result ready(Bot& bot, std::uint8_t lun, std::optional<scsi::Sense>& sense)
{
    Result r;
    for (int i = 0; i < 4; ++i) {
        r = bot.run(lun, scsi::cdb_test_unit_ready(), b::Dir::none, 0, nullptr);
        if (r.passed() || !r.csw || r.csw->status != 1) return r;
        sense = bot.request_sense(lun);
        if (!sense || sense->key != 6) return r;
    }
    return r;
}

namespace {

// TEST UNIT READY and REQUEST SENSE; false when the LUN cannot go on (no medium is reported, not failed).
bool check_ready(Bot& bot, Report& rep, std::uint8_t l, const std::string& lun)
{
    std::optional<scsi::Sense> sense;
    auto tur = ready(bot, l, sense);
    if (!tur.passed()) {
        if (tur.csw && tur.csw->status == 1 && sense && sense->key == scsi::medium_not_present.key && sense->asc == scsi::medium_not_present.asc) {
            rep.info(lun, "TEST UNIT READY", "no medium: " + sense->str());
            return false;
        }
        rep.fail(lun, "TEST UNIT READY", tur.csw ? tur.str() + " " + sense_str(sense) : tur.str());
        if (!tur.csw) bot.reset_recovery();
        return false;
    }
    rep.pass(lun, "TEST UNIT READY");
    auto rs = bot.request_sense(l);
    rep.check(lun, "REQUEST SENSE", rs.has_value() && rs->key == scsi::key::no_sense, rs ? rs->str() : "no parseable sense data");
    return true;
}

void check_inquiry(Bot& bot, Report& rep, std::uint8_t l, const std::string& lun)
{
    std::vector<std::uint8_t> inq(36);
    auto r = bot.in(l, scsi::cdb_inquiry(36), inq);
    auto q = r.passed() ? scsi::parse_inquiry(std::span<const std::uint8_t>(inq.data(), static_cast<std::size_t>(r.transferred))) : std::nullopt;
    if (!q) rep.fail(lun, "INQUIRY", r.passed() ? fmt::format("short reply ({} bytes)", r.transferred) : r.str());
    else rep.check(lun, "INQUIRY", q->peripheral == 0 || q->peripheral == 5,
                   fmt::format("type {} '{}' '{}' '{}'{}", q->peripheral, q->vendor, q->product, q->revision, q->removable ? " removable" : ""));
    for (std::uint8_t page : {0x00, 0x80, 0x83}) {
        const auto name = fmt::format("INQUIRY VPD {:#04x}", page);
        if (auto d = optional_command(bot, rep, lun, l, name, scsi::cdb_inquiry(252, page), 252))
            rep.check(lun, name, d->size() >= 4 && (*d)[1] == page, fmt::format("{} bytes", d->size()));
    }
}

// READ CAPACITY(10) (against the backing's size when known) and (16); none when the LUN has no usable capacity.
std::optional<scsi::Capacity> check_capacity(Bot& bot, Report& rep, std::uint8_t l, const std::string& lun, const CheckOptions& opt)
{
    std::vector<std::uint8_t> cap(8);
    auto r = bot.in(l, scsi::cdb_read_capacity10(), cap);
    auto c10 = r.passed() ? scsi::parse_read_capacity10(cap) : std::nullopt;
    if (!c10 || c10->block_size == 0) {
        rep.fail(lun, "READ CAPACITY(10)", r.str());
        return std::nullopt;
    }
    const std::uint64_t bytes = c10->blocks() * c10->block_size;
    std::string cap_detail = fmt::format("{} blocks of {} ({} bytes)", c10->blocks(), c10->block_size, bytes);
    bool cap_ok = true;
    if (l < opt.expect_sizes.size() && opt.expect_sizes[l] && opt.expect_sizes[l] / c10->block_size != c10->blocks()) {
        cap_ok = false;
        cap_detail += fmt::format(", but the backing holds {} bytes", opt.expect_sizes[l]);
    }
    rep.check(lun, "READ CAPACITY(10)", cap_ok, cap_detail);
    if (auto d = optional_command(bot, rep, lun, l, "READ CAPACITY(16)", scsi::cdb_read_capacity16(32), 32)) {
        auto c16 = scsi::parse_read_capacity16(*d);
        rep.check(lun, "READ CAPACITY(16)", c16 && c16->last_lba == c10->last_lba && c16->block_size == c10->block_size,
                  c16 ? fmt::format("{} blocks of {}", c16->blocks(), c16->block_size) : "short reply");
    }
    return c10;
}

// MODE SENSE(6) and (10), READ FORMAT CAPACITIES; returns the write-protect bit.
bool check_mode_pages(Bot& bot, Report& rep, std::uint8_t l, const std::string& lun, const CheckOptions& opt, const scsi::Capacity& c10)
{
    bool wp = false;
    std::vector<std::uint8_t> ms(192);
    auto r = bot.in(l, scsi::cdb_mode_sense6(0x3f, 192), ms);
    auto h = r.passed() ? scsi::parse_mode_sense6(std::span<const std::uint8_t>(ms.data(), static_cast<std::size_t>(r.transferred))) : std::nullopt;
    // The reply is min(allocation, what the device has); the residue covers the rest.
    const bool ok = h && static_cast<std::uint32_t>(r.transferred) == std::min<std::uint32_t>(192, h->data_length) &&
                    r.csw->residue == 192 - static_cast<std::uint32_t>(r.transferred);
    if (h) wp = h->write_protect;
    rep.check(lun, "MODE SENSE(6)", ok, h ? fmt::format("{} bytes, WP={}, residue {}", r.transferred, h->write_protect ? 1 : 0, r.csw->residue) : r.str());
    if (h && l < opt.expect_readonly.size() && opt.expect_readonly[l] != wp)
        rep.fail(lun, "write-protect bit", fmt::format("MODE SENSE says WP={}, the profile says readonly={}", wp ? 1 : 0, opt.expect_readonly[l] ? 1 : 0));
    if (auto d = optional_command(bot, rep, lun, l, "MODE SENSE(10)", scsi::cdb_mode_sense10(0x3f, 192), 192)) {
        auto h10 = scsi::parse_mode_sense10(*d);
        rep.check(lun, "MODE SENSE(10)", h10 && h10->write_protect == wp, h10 ? fmt::format("{} bytes, WP={}", d->size(), h10->write_protect ? 1 : 0) : "short reply");
    }
    if (auto d = optional_command(bot, rep, lun, l, "READ FORMAT CAPACITIES", scsi::cdb_read_format_capacities(252), 252)) {
        auto f = scsi::parse_read_format_capacities(*d);
        rep.check(lun, "READ FORMAT CAPACITIES", f && f->blocks == c10.blocks() && f->block_size == c10.block_size && f->descriptor_type == 2,
                  f ? fmt::format("{} blocks of {}, descriptor type {}", f->blocks, f->block_size, f->descriptor_type) : "unparseable reply");
    }
    return wp;
}

// READ(10): exact length, residue 0; one block past the end: ILLEGAL REQUEST, LBA out of range.
void check_reads(Bot& bot, Report& rep, std::uint8_t l, const std::string& lun, const scsi::Capacity& c10)
{
    const std::uint32_t bs = c10.block_size;
    std::vector<std::uint8_t> data(8 * bs);
    auto r = bot.in(l, scsi::cdb_read10(0, 8), data);
    rep.check(lun, "READ(10)", r.passed() && r.transferred == static_cast<int>(data.size()) && r.csw->residue == 0, r.str());
    std::vector<std::uint8_t> one(bs);
    r = bot.in(l, scsi::cdb_read10(static_cast<std::uint32_t>(c10.last_lba + 1), 1), one);
    auto s = r.csw && r.csw->status == 1 ? bot.request_sense(l) : std::nullopt;
    rep.check(lun, "READ(10) past the end", s && s->key == scsi::lba_out_of_range.key && s->asc == scsi::lba_out_of_range.asc,
              r.csw && r.csw->status == 1 ? sense_str(s) : "expected CHECK CONDITION, got " + r.str());
    if (!r.csw) bot.reset_recovery();
}

// Write -> read-verify of a scratch range at the end, restored afterwards; a read-only LUN must refuse. False when
// the range cannot be read (nothing else to do on this LUN).
bool check_write_verify(Bot& bot, Report& rep, std::uint8_t l, const std::string& lun, const CheckOptions& opt, const scsi::Capacity& c10, bool wp)
{
    const std::uint32_t bs = c10.block_size;
    const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::uint64_t>(c10.blocks(), (1u << 20) / bs));
    const std::uint32_t lba = static_cast<std::uint32_t>(c10.blocks() - n);
    std::vector<std::uint8_t> original(static_cast<std::size_t>(n) * bs), pattern(original.size()), back(original.size());
    auto r = bot.in(l, scsi::cdb_read10(lba, static_cast<std::uint16_t>(n)), original);
    if (!r.passed()) {
        rep.fail(lun, "write/read verify", "cannot read the scratch range: " + r.str());
        return false;
    }
    std::mt19937_64 rng(std::random_device{}());
    for (auto& x : pattern) x = static_cast<std::uint8_t>(rng());
    if (wp || (l < opt.expect_readonly.size() && opt.expect_readonly[l])) {
        r = bot.run(l, scsi::cdb_write10(lba, static_cast<std::uint16_t>(n)), b::Dir::out, static_cast<std::uint32_t>(pattern.size()), pattern.data());
        auto s = r.csw && r.csw->status == 1 ? bot.request_sense(l) : std::nullopt;
        rep.check(lun, "WRITE(10) refused (read-only)", s && s->key == scsi::write_protected.key && s->asc == scsi::write_protected.asc,
                  r.csw && r.csw->status == 1 ? sense_str(s) : "the write was not refused: " + r.str());
        if (!r.csw || r.csw->status == 2) bot.reset_recovery();
        back.assign(back.size(), 0);
        auto rr = bot.in(l, scsi::cdb_read10(lba, static_cast<std::uint16_t>(n)), back);
        rep.check(lun, "read-only data unchanged", rr.passed() && back == original, rr.str());
        return false;
    }
    if (!opt.write) {
        rep.info(lun, "write/read verify", "skipped (--no-write)");
        return false;
    }
    auto w = bot.run(l, scsi::cdb_write10(lba, static_cast<std::uint16_t>(n)), b::Dir::out, static_cast<std::uint32_t>(pattern.size()), pattern.data());
    auto rb = bot.in(l, scsi::cdb_read10(lba, static_cast<std::uint16_t>(n)), back);
    rep.check(lun, "WRITE(10)", w.passed() && w.csw->residue == 0, w.str());
    rep.check(lun, "write/read verify", w.passed() && rb.passed() && back == pattern,
              back == pattern ? fmt::format("{} KiB at LBA {} compared", original.size() / 1024, lba) : "read back differs from what was written");
    auto restore = bot.run(l, scsi::cdb_write10(lba, static_cast<std::uint16_t>(n)), b::Dir::out, static_cast<std::uint32_t>(original.size()), original.data());
    auto rb2 = bot.in(l, scsi::cdb_read10(lba, static_cast<std::uint16_t>(n)), back);
    rep.check(lun, "scratch range restored", restore.passed() && rb2.passed() && back == original, restore.str());

    return true;
}

// Sequential throughput: READ(10) of 1 MiB commands, then WRITE(10) of the same bytes back (data unchanged).
void bench_lun(Bot& bot, Report& rep, std::uint8_t l, const std::string& lun, const CheckOptions& opt, const scsi::Capacity& c10, CheckReport& out)
{
    const std::uint32_t bs = c10.block_size;
    const std::uint64_t bytes = c10.blocks() * c10.block_size;
    const std::uint64_t total = std::min<std::uint64_t>(opt.bench_bytes, bytes) / (1 << 20) * (1 << 20);
    const std::uint16_t per = static_cast<std::uint16_t>((1u << 20) / bs);
    std::vector<std::uint8_t> buf(total);
    auto t0 = std::chrono::steady_clock::now();
    bool ok = true;
    for (std::uint64_t off = 0; off < total && ok; off += 1 << 20) {
        std::vector<std::uint8_t> chunk(1 << 20);
        auto x = bot.in(l, scsi::cdb_read10(static_cast<std::uint32_t>(off / bs), per), chunk);
        ok = x.passed();
        std::copy(chunk.begin(), chunk.end(), buf.begin() + static_cast<std::ptrdiff_t>(off));
    }
    auto t1 = std::chrono::steady_clock::now();
    for (std::uint64_t off = 0; off < total && ok; off += 1 << 20)
        ok = bot.run(l, scsi::cdb_write10(static_cast<std::uint32_t>(off / bs), per), b::Dir::out, 1 << 20, buf.data() + off).passed();
    auto t2 = std::chrono::steady_clock::now();
    auto mbps = [&](auto a, auto z) { return static_cast<double>(total) / 1e6 / std::chrono::duration<double>(z - a).count(); };
    if (!ok) rep.fail(lun, "throughput", "a transfer failed during the benchmark");
    else {
        out.bench = {{"bytes", total}, {"read_MBps", mbps(t0, t1)}, {"write_MBps", mbps(t1, t2)}, {"transfer", 1 << 20}};
        rep.info(lun, "throughput", fmt::format("sequential read {:.1f} MB/s, write {:.1f} MB/s ({} MiB, 1 MiB commands)", mbps(t0, t1),
                                                mbps(t1, t2), total >> 20));
    }
}

}  // namespace

void check_lun(Bot& bot, Report& rep, std::uint8_t l, const CheckOptions& opt, CheckReport& out)
{
    const std::string lun = std::to_string(l);
    if (!check_ready(bot, rep, l, lun)) return;
    check_inquiry(bot, rep, l, lun);
    auto c10 = check_capacity(bot, rep, l, lun, opt);
    if (!c10) return;
    const bool wp = check_mode_pages(bot, rep, l, lun, opt, *c10);
    check_reads(bot, rep, l, lun, *c10);
    if (!check_write_verify(bot, rep, l, lun, opt, *c10, wp)) return;
    if (l == 0) thirteen_cases(bot, rep, c10->block_size, c10->blocks());
    if (l == 0 && opt.bench) bench_lun(bot, rep, l, lun, opt, *c10, out);
}

}  // namespace

void check_msc(Bot& bot, Report& rep, const CheckOptions& opt, CheckReport& out)
{
    std::uint8_t max_lun = 0;
    int rc = libusb_control_transfer(bot.h(), class_in, b::req_get_max_lun, 0,
                                     static_cast<std::uint16_t>(bot.ep().intf), &max_lun, 1, timeout_ms);
    if (rc == 1) rep.check("", "Get Max LUN", opt.expect_luns < 0 || max_lun + 1 == opt.expect_luns,
                           fmt::format("{} LUN(s){}", max_lun + 1, opt.expect_luns >= 0 ? fmt::format(", the profile has {}", opt.expect_luns) : ""));
    else rep.fail("", "Get Max LUN", "request failed: " + usb_err(rc));
    const auto reset = bot.reset_recovery();
    rep.check("", "Bulk-Only Reset", reset.empty(), reset.empty() ? "reset, then Clear Feature HALT on both bulk pipes" : reset);
    for (std::uint8_t l = 0; l <= max_lun; ++l) check_lun(bot, rep, l, opt, out);
}

}  // namespace devemu::usb::check
