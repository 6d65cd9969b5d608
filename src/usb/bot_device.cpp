#include "usb/bot_device.hpp"

#include <endian.h>
#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>

#include <algorithm>
#include <cstring>

#include "scsi/opcodes.hpp"

namespace devemu::usb::bot {

Action plan_transfer(const Cbw& cbw, Intent dev, bool can_stall)
{
    Action a;
    const std::uint32_t h = cbw.dir == Dir::none ? 0 : cbw.length;
    if (dev.length == 0) dev.dir = Dir::none;
    switch (cbw.dir) {
    case Dir::none:   // cases 1-3: the host expects nothing; a device that wants data cannot run the command
        if (dev.dir != Dir::none) a.execute = false, a.phase_error = true;
        return a;
    case Dir::in:
        if (dev.dir == Dir::out) {   // case 8: the host reads what the device would receive
            a.execute = false, a.phase_error = true;
            a.halt_in = can_stall;
            a.pad = can_stall ? 0 : h;
            return a;
        }
        if (dev.length > h) {        // case 7: the host takes less than the device has: send what it takes
            a.transfer = h;
            a.phase_error = true;
            return a;
        }
        a.transfer = dev.length;     // cases 4-6
        a.residue = h - dev.length;
        if (a.residue) a.halt_in = can_stall, a.pad = can_stall ? 0 : a.residue;
        return a;
    case Dir::out:
        if (dev.dir == Dir::in) {    // case 10: the host sends what the device would send
            a.execute = false, a.phase_error = true;
            a.halt_out = can_stall;
            a.discard = can_stall ? 0 : h;
            return a;
        }
        if (dev.length > h) {        // case 13: the host sends less than the command needs: take it, do nothing
            a.transfer = h;
            a.execute = false, a.phase_error = true;
            return a;
        }
        a.transfer = dev.length;     // cases 9, 11, 12
        a.residue = h - dev.length;
        if (a.residue) a.halt_out = can_stall, a.discard = can_stall ? 0 : a.residue;
        return a;
    }
    return a;
}

Intent intent_of(const scsi::Plan& plan, std::span<const std::uint8_t> cdb, std::uint32_t block_size)
{
    if (plan.status != scsi::good) return {};
    auto sized = [](Dir d, std::uint64_t n) { return Intent{n ? d : Dir::none, static_cast<std::uint32_t>(std::min<std::uint64_t>(n, 0xffffffffu))}; };
    const std::uint64_t bytes = plan.blocks * block_size;
    switch (plan.op) {
    case scsi::Op::reply: return sized(Dir::in, plan.data.size());
    case scsi::Op::read: return sized(Dir::in, bytes);
    case scsi::Op::write: return sized(Dir::out, bytes);
    case scsi::Op::flush: return {};
    case scsi::Op::write_same: return plan.ndob ? Intent{} : sized(Dir::out, block_size);
    case scsi::Op::unmap: return sized(Dir::out, cdb.size() >= 9 ? (std::uint32_t{cdb[7]} << 8 | cdb[8]) : 0);
    case scsi::Op::compare_and_write: return sized(Dir::out, 2 * bytes);
    case scsi::Op::verify: return plan.bytchk ? sized(Dir::out, bytes) : Intent{};
    case scsi::Op::get_lba_status: return sized(Dir::in, plan.alloc);   // answered before this (msc_command.cpp)
    }
    return {};
}

scsi::Plan read_format_capacities(std::span<const std::uint8_t> cdb, const scsi::Device& dev)
{
    scsi::Plan p;
    if (cdb.size() < 10) {
        p.status = scsi::check_condition;
        p.sense = scsi::invalid_field;
        return p;
    }
    const std::size_t alloc = std::size_t{cdb[7]} << 8 | cdb[8];
    const auto blocks = static_cast<std::uint32_t>(std::min<std::uint64_t>(dev.blocks, 0xffffffffu));
    p.data = {0, 0, 0, 8,   // capacity list header: one descriptor
              static_cast<std::uint8_t>(blocks >> 24), static_cast<std::uint8_t>(blocks >> 16), static_cast<std::uint8_t>(blocks >> 8),
              static_cast<std::uint8_t>(blocks), 0x02,   // formatted media
              static_cast<std::uint8_t>(dev.block_size >> 16), static_cast<std::uint8_t>(dev.block_size >> 8),
              static_cast<std::uint8_t>(dev.block_size)};
    if (p.data.size() > alloc) p.data.resize(alloc);
    return p;
}

namespace {

struct __attribute__((packed)) Eps {
    usb_interface_descriptor intf;
    usb_endpoint_descriptor_no_audio out, in;
};
struct __attribute__((packed)) SsEps {
    usb_interface_descriptor intf;
    usb_endpoint_descriptor_no_audio out;
    usb_ss_ep_comp_descriptor out_comp;
    usb_endpoint_descriptor_no_audio in;
    usb_ss_ep_comp_descriptor in_comp;
};
struct __attribute__((packed)) Descriptors {
    usb_functionfs_descs_head_v2 header;
    __le32 fs_count, hs_count, ss_count;
    Eps fs, hs;
    SsEps ss;
};

usb_interface_descriptor intf_desc()
{
    usb_interface_descriptor d{};
    d.bLength = sizeof d;
    d.bDescriptorType = USB_DT_INTERFACE;
    d.bNumEndpoints = 2;
    d.bInterfaceClass = USB_CLASS_MASS_STORAGE;
    d.bInterfaceSubClass = 0x06;   // SCSI transparent command set
    d.bInterfaceProtocol = 0x50;   // Bulk-Only Transport
    d.iInterface = 1;
    return d;
}

usb_endpoint_descriptor_no_audio ep_desc(unsigned addr, unsigned maxpacket)
{
    usb_endpoint_descriptor_no_audio e{};
    e.bLength = sizeof e;
    e.bDescriptorType = USB_DT_ENDPOINT;
    e.bEndpointAddress = static_cast<__u8>(addr);
    e.bmAttributes = USB_ENDPOINT_XFER_BULK;
    e.wMaxPacketSize = htole16(static_cast<__u16>(maxpacket));
    return e;
}

usb_ss_ep_comp_descriptor comp_desc()
{
    usb_ss_ep_comp_descriptor c{};
    c.bLength = sizeof c;
    c.bDescriptorType = USB_DT_SS_ENDPOINT_COMP;
    c.bMaxBurst = 15;   // as the kernel's f_mass_storage: 16 packets per burst
    return c;
}

}  // namespace

std::vector<std::uint8_t> ffs_descriptors()
{
    Descriptors d{};
    d.header.magic = htole32(FUNCTIONFS_DESCRIPTORS_MAGIC_V2);
    d.header.length = htole32(sizeof d);
    d.header.flags = htole32(FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC | FUNCTIONFS_HAS_SS_DESC);
    d.fs_count = d.hs_count = htole32(3);
    d.ss_count = htole32(5);
    d.fs = {intf_desc(), ep_desc(1 | USB_DIR_OUT, 64), ep_desc(2 | USB_DIR_IN, 64)};
    d.hs = {intf_desc(), ep_desc(1 | USB_DIR_OUT, 512), ep_desc(2 | USB_DIR_IN, 512)};
    d.ss = {intf_desc(), ep_desc(1 | USB_DIR_OUT, 1024), comp_desc(), ep_desc(2 | USB_DIR_IN, 1024), comp_desc()};
    std::vector<std::uint8_t> out(sizeof d);
    std::memcpy(out.data(), &d, sizeof d);
    return out;
}

std::vector<std::uint8_t> ffs_strings(const std::string& interface_name)
{
    usb_functionfs_strings_head h{};
    const std::size_t len = sizeof h + 2 + interface_name.size() + 1;
    h.magic = htole32(FUNCTIONFS_STRINGS_MAGIC);
    h.length = htole32(static_cast<__u32>(len));
    h.str_count = htole32(1);
    h.lang_count = htole32(1);
    std::vector<std::uint8_t> out(len, 0);
    std::memcpy(out.data(), &h, sizeof h);
    out[sizeof h] = 0x09, out[sizeof h + 1] = 0x04;   // en-US, little-endian
    std::memcpy(out.data() + sizeof h + 2, interface_name.data(), interface_name.size());
    return out;
}

}  // namespace devemu::usb::bot
