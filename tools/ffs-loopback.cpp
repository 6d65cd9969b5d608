// ffs-loopback: a tiny FunctionFS gadget app, the example for `devemu up gadgets/ffs-app.toml` and what the
// tests use. One vendor-class interface with a bulk OUT and a bulk IN endpoint; whatever the host sends on OUT
// comes back on IN, one transfer at a time. `devemu check ffs0` sends random data and compares.
//
//   ffs-loopback MOUNT [--maxpacket N]
//
// MOUNT is where devemu mounted the function's FunctionFS instance (default /dev/usb-ffs/NAME). --maxpacket sets
// the high-speed bulk wMaxPacketSize (default 512, the only value USB 2.0 allows): a wrong one lets the tests
// show how devemu reports a rejected descriptor.
#include <endian.h>
#include <fcntl.h>
#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct __attribute__((packed)) Eps {
    usb_interface_descriptor intf;
    usb_endpoint_descriptor_no_audio sink, source;
};
struct __attribute__((packed)) SsEps {
    usb_interface_descriptor intf;
    usb_endpoint_descriptor_no_audio sink;
    usb_ss_ep_comp_descriptor sink_comp;
    usb_endpoint_descriptor_no_audio source;
    usb_ss_ep_comp_descriptor source_comp;
};
struct __attribute__((packed)) Descriptors {
    usb_functionfs_descs_head_v2 header;
    __le32 fs_count, hs_count, ss_count;
    Eps fs, hs;
    SsEps ss;
};

constexpr char interface_name[] = "devemu loopback";
struct __attribute__((packed)) Strings {
    usb_functionfs_strings_head header;
    __le16 code;
    char str1[sizeof interface_name];
};

usb_interface_descriptor intf_desc()
{
    usb_interface_descriptor d{};
    d.bLength = sizeof d;
    d.bDescriptorType = USB_DT_INTERFACE;
    d.bNumEndpoints = 2;
    d.bInterfaceClass = USB_CLASS_VENDOR_SPEC;
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
    return c;
}

void write_all(int fd, const void* p, size_t n, const char* what)
{
    ssize_t w = ::write(fd, p, n);
    if (w != static_cast<ssize_t>(n)) {
        std::fprintf(stderr, "ffs-loopback: writing %s: %s\n", what, w < 0 ? std::strerror(errno) : "short write");
        std::exit(2);
    }
}

// ep0 must be read: it carries the function's lifecycle events (and SETUP requests, which this app stalls).
void serve_ep0(int ep0)
{
    usb_functionfs_event ev[4];
    static const char* names[] = {"BIND", "UNBIND", "ENABLE", "DISABLE", "SETUP", "SUSPEND", "RESUME"};
    for (;;) {
        ssize_t n = ::read(ep0, ev, sizeof ev);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (size_t i = 0; i < static_cast<size_t>(n) / sizeof ev[0]; ++i) {
            if (ev[i].type <= FUNCTIONFS_RESUME) std::fprintf(stderr, "ffs-loopback: %s\n", names[ev[i].type]);
            if (ev[i].type == FUNCTIONFS_SETUP) {
                // No class or vendor requests are defined: stall by reading/writing 0 bytes in the wrong direction.
                if (ev[i].u.setup.bRequestType & USB_DIR_IN) (void)!::read(ep0, nullptr, 0);
                else (void)!::write(ep0, nullptr, 0);
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        std::fprintf(stderr, "usage: ffs-loopback MOUNT [--maxpacket N]\n");
        return 2;
    }
    const std::string mount = argv[1];
    unsigned hs_maxpacket = 512;
    for (int i = 2; i + 1 < argc; ++i)
        if (!std::strcmp(argv[i], "--maxpacket")) hs_maxpacket = static_cast<unsigned>(std::atoi(argv[++i]));

    const int ep0 = ::open((mount + "/ep0").c_str(), O_RDWR | O_CLOEXEC);
    if (ep0 < 0) {
        std::fprintf(stderr, "ffs-loopback: %s/ep0: %s (is FunctionFS mounted there? devemu up prints the path)\n", mount.c_str(),
                     std::strerror(errno));
        return 2;
    }
    Descriptors d{};
    d.header.magic = htole32(FUNCTIONFS_DESCRIPTORS_MAGIC_V2);
    d.header.length = htole32(sizeof d);
    d.header.flags = htole32(FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC | FUNCTIONFS_HAS_SS_DESC);
    d.fs_count = d.hs_count = htole32(3);
    d.ss_count = htole32(5);
    d.fs = {intf_desc(), ep_desc(1 | USB_DIR_OUT, 64), ep_desc(2 | USB_DIR_IN, 64)};
    d.hs = {intf_desc(), ep_desc(1 | USB_DIR_OUT, hs_maxpacket), ep_desc(2 | USB_DIR_IN, hs_maxpacket)};
    d.ss = {intf_desc(), ep_desc(1 | USB_DIR_OUT, 1024), comp_desc(), ep_desc(2 | USB_DIR_IN, 1024), comp_desc()};
    write_all(ep0, &d, sizeof d, "descriptors");
    Strings s{};
    s.header.magic = htole32(FUNCTIONFS_STRINGS_MAGIC);
    s.header.length = htole32(sizeof s);
    s.header.str_count = htole32(1);
    s.header.lang_count = htole32(1);
    s.code = htole16(0x0409);
    std::memcpy(s.str1, interface_name, sizeof interface_name);
    write_all(ep0, &s, sizeof s, "strings");
    std::fprintf(stderr, "ffs-loopback: descriptors written to %s/ep0\n", mount.c_str());

    std::thread(serve_ep0, ep0).detach();
    const int out = ::open((mount + "/ep1").c_str(), O_RDWR | O_CLOEXEC);
    const int in = ::open((mount + "/ep2").c_str(), O_RDWR | O_CLOEXEC);
    if (out < 0 || in < 0) {
        std::fprintf(stderr, "ffs-loopback: opening endpoints: %s\n", std::strerror(errno));
        return 2;
    }
    std::vector<char> buf(64 * 1024);
    for (;;) {
        ssize_t n = ::read(out, buf.data(), buf.size());
        if (n < 0) {
            // ESHUTDOWN: the host has not configured us yet, or unconfigured us; wait for ENABLE.
            if (errno == ESHUTDOWN || errno == EINTR || errno == EAGAIN) {
                ::usleep(20000);
                continue;
            }
            std::fprintf(stderr, "ffs-loopback: read: %s\n", std::strerror(errno));
            return 1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = ::write(in, buf.data() + off, static_cast<size_t>(n - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                if (errno == ESHUTDOWN) break;
                std::fprintf(stderr, "ffs-loopback: write: %s\n", std::strerror(errno));
                return 1;
            }
            off += w;
        }
    }
}
