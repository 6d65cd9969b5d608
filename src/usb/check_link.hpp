#pragma once
// Internal to the USB checker (checker.cpp, msc_check.cpp): libusb handles, the interface a check talks to, the
// report it fills, and Bulk-Only Transport over libusb (one CBW/data/CSW exchange per command).
#include <libusb-1.0/libusb.h>

#include <fmt/format.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "scsi/cdb.hpp"
#include "usb/bot.hpp"
#include "usb/checker.hpp"

namespace devemu::usb::check {

namespace b = bot;

constexpr unsigned timeout_ms = 5000;
constexpr std::uint8_t class_out = 0x21, class_in = 0xA1;   // class request, to the interface

inline std::string usb_err(int rc) { return libusb_error_name(rc); }

struct Ctx {
    libusb_context* ctx = nullptr;
    ~Ctx()
    {
        if (ctx) libusb_exit(ctx);
    }
};

struct Handle {
    libusb_device_handle* h = nullptr;
    int intf = -1;
    ~Handle()
    {
        if (!h) return;
        // Releasing re-attaches the kernel driver (auto-detach): usb-storage binds again and /dev/sdX returns.
        if (intf >= 0) libusb_release_interface(h, intf);
        libusb_close(h);
    }
};

struct Endpoints {
    int intf = -1;
    std::uint8_t in = 0, out = 0;
    std::uint16_t maxpacket = 0;
    std::uint8_t cls = 0, subcls = 0, proto = 0;
};

// Every mass-storage (BOT) interface of the active configuration, or every vendor-class one, with a bulk pair.
inline std::vector<Endpoints> find_interfaces(libusb_device* dev, bool want_msc)
{
    libusb_config_descriptor* cfg = nullptr;
    if (libusb_get_active_config_descriptor(dev, &cfg) != 0) return {};
    std::vector<Endpoints> found;
    for (int i = 0; i < cfg->bNumInterfaces; ++i) {
        const auto& alt = cfg->interface[i].altsetting[0];
        const bool msc = alt.bInterfaceClass == LIBUSB_CLASS_MASS_STORAGE && alt.bInterfaceSubClass == 0x06 && alt.bInterfaceProtocol == 0x50;
        const bool vendor = alt.bInterfaceClass == LIBUSB_CLASS_VENDOR_SPEC;
        if (want_msc ? !msc : !vendor) continue;
        Endpoints e{alt.bInterfaceNumber, 0, 0, 0, alt.bInterfaceClass, alt.bInterfaceSubClass, alt.bInterfaceProtocol};
        for (int k = 0; k < alt.bNumEndpoints; ++k) {
            const auto& ep = alt.endpoint[k];
            if ((ep.bmAttributes & 3) != LIBUSB_TRANSFER_TYPE_BULK) continue;
            if (ep.bEndpointAddress & LIBUSB_ENDPOINT_IN) e.in = e.in ? e.in : ep.bEndpointAddress;
            else e.out = e.out ? e.out : ep.bEndpointAddress;
            e.maxpacket = ep.wMaxPacketSize;
        }
        if (e.in && e.out) found.push_back(e);
    }
    libusb_free_config_descriptor(cfg);
    return found;
}

class Report {
public:
    explicit Report(CheckReport& r) : r_(r) {}
    void pass(const std::string& lun, const std::string& name, const std::string& detail = "") { add(lun, name, "pass", detail); }
    void fail(const std::string& lun, const std::string& name, const std::string& detail) { add(lun, name, "fail", detail); }
    void info(const std::string& lun, const std::string& name, const std::string& detail) { add(lun, name, "info", detail); }
    void check(const std::string& lun, const std::string& name, bool ok, const std::string& detail)
    {
        ok ? pass(lun, name, detail) : fail(lun, name, detail);
    }
    // A device with several mass-storage interfaces (functions): items name theirs ("1:0" is LUN 0 of interface 1).
    void set_interface(std::optional<int> intf) { intf_ = intf; }

private:
    void add(const std::string& lun_in, const std::string& name_in, const char* res, const std::string& detail)
    {
        const std::string lun = intf_ && !lun_in.empty() ? fmt::format("{}:{}", *intf_, lun_in) : lun_in;
        const std::string name = intf_ && lun_in.empty() ? fmt::format("interface {}: {}", *intf_, name_in) : name_in;
        r_.items.push_back({lun, name, res, detail});
        spdlog::debug("check {}{}: {} {}", lun.empty() ? "" : "LUN " + lun + " ", name, res, detail);
    }
    CheckReport& r_;
    std::optional<int> intf_;
};

// ---- Bulk-Only Transport over libusb ----
struct Result {
    std::string error;             // transport failure (timeout, no CSW): the host must do reset recovery
    std::optional<b::Csw> csw;
    int transferred = 0;           // data-phase bytes
    bool data_stalled = false;
    std::string csw_problem;       // CSW received but not meaningful for the CBW
    [[nodiscard]] bool passed() const { return csw && csw_problem.empty() && csw->status == 0; }
    [[nodiscard]] std::string str() const
    {
        if (!error.empty()) return error;
        if (!csw_problem.empty()) return csw_problem;
        return fmt::format("status {} residue {} data {}{}", csw->status, csw->residue, transferred, data_stalled ? " (stalled)" : "");
    }
};

class Bot {
public:
    Bot(libusb_device_handle* h, Endpoints e) : h_(h), e_(e) {}

    // One command. `dir`/`length` are what the host puts in the CBW (they may disagree with the CDB on purpose);
    // `data` is the buffer for the data phase (in: filled; out: sent).
    Result run(std::uint8_t lun, const std::vector<std::uint8_t>& cdb, b::Dir dir, std::uint32_t length, std::uint8_t* data)
    {
        Result r;
        b::Cbw cbw{++tag_, length, dir, lun, cdb};
        auto raw = b::encode(cbw);
        int n = 0;
        int rc = libusb_bulk_transfer(h_, e_.out, raw.data(), static_cast<int>(raw.size()), &n, timeout_ms);
        if (rc != 0 || n != static_cast<int>(raw.size())) {
            r.error = "CBW not accepted: " + usb_err(rc);
            return r;
        }
        if (length > 0) {
            const std::uint8_t ep = dir == b::Dir::in ? e_.in : e_.out;
            rc = libusb_bulk_transfer(h_, ep, data, static_cast<int>(length), &r.transferred, timeout_ms);
            if (rc == LIBUSB_ERROR_PIPE) {
                r.data_stalled = true;
                libusb_clear_halt(h_, ep);
            } else if (rc != 0 && rc != LIBUSB_ERROR_OVERFLOW) {
                r.error = fmt::format("data phase failed: {} after {} bytes", usb_err(rc), r.transferred);
                return r;
            }
        }
        // CSW: a buffer of a whole packet, so a device that sends something else is seen, not an overflow.
        std::vector<std::uint8_t> buf(std::max<std::size_t>(e_.maxpacket, 64));
        for (int attempt = 0; attempt < 2; ++attempt) {
            rc = libusb_bulk_transfer(h_, e_.in, buf.data(), static_cast<int>(buf.size()), &n, timeout_ms);
            if (rc == LIBUSB_ERROR_PIPE) {   // BOT 6.7.2: clear the stall and try the CSW once more
                libusb_clear_halt(h_, e_.in);
                continue;
            }
            break;
        }
        if (rc != 0) {
            r.error = "no CSW: " + usb_err(rc);
            return r;
        }
        r.csw = b::decode_csw(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
        if (!r.csw) {
            r.error = fmt::format("invalid CSW ({} bytes{})", n, n >= 4 ? fmt::format(", starts {:02x}{:02x}{:02x}{:02x}", buf[0], buf[1], buf[2], buf[3]) : "");
            return r;
        }
        r.csw_problem = b::csw_problem(cbw, *r.csw);
        return r;
    }

    Result in(std::uint8_t lun, const std::vector<std::uint8_t>& cdb, std::vector<std::uint8_t>& data)
    {
        return run(lun, cdb, data.empty() ? b::Dir::none : b::Dir::in, static_cast<std::uint32_t>(data.size()), data.data());
    }

    // Bulk-Only Mass Storage Reset, then Clear Feature HALT on both pipes (BOT 5.3.4). Empty when all three were
    // accepted, else which one failed and libusb's word for why (a timeout and a stall are different bugs).
    std::string reset_recovery()
    {
        const int rc = libusb_control_transfer(h_, class_out, b::req_reset, 0,
                                               static_cast<std::uint16_t>(e_.intf), nullptr, 0, timeout_ms);
        const int in = libusb_clear_halt(h_, e_.in), out = libusb_clear_halt(h_, e_.out);
        std::string err;
        if (rc != 0) err = "the reset request: " + usb_err(rc);
        if (in != 0) err += (err.empty() ? "" : ", ") + fmt::format("Clear Feature HALT on 0x{:02x}: {}", e_.in, usb_err(in));
        if (out != 0) err += (err.empty() ? "" : ", ") + fmt::format("Clear Feature HALT on 0x{:02x}: {}", e_.out, usb_err(out));
        return err;
    }

    std::optional<scsi::Sense> request_sense(std::uint8_t lun)
    {
        std::vector<std::uint8_t> s(18);
        auto r = in(lun, scsi::cdb_request_sense(18), s);
        if (!r.passed()) return std::nullopt;
        return scsi::parse_sense(std::span<const std::uint8_t>(s.data(), static_cast<std::size_t>(r.transferred)));
    }

    libusb_device_handle* h() const { return h_; }
    const Endpoints& ep() const { return e_; }

private:
    libusb_device_handle* h_;
    Endpoints e_;
    std::uint32_t tag_ = 0x1000;
};

inline std::string sense_str(const std::optional<scsi::Sense>& s) { return s ? s->str() : std::string("(no sense data)"); }

// LUN by LUN (Get Max LUN first): what check_device reports for a mass-storage interface.
void check_msc(Bot& bot, Report& rep, const CheckOptions& opt, CheckReport& out);

}  // namespace devemu::usb::check
