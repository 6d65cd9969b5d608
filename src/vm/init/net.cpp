// devemu-init: the guest's network, set up with ioctls (no ip(8) in the guest).
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "vm/init/init.hpp"

namespace devemu_init {

namespace {

// Brings interface `name` up (with an address when given). A NIC's driver probes while its module loads; a slow
// TCG guest gets up to two seconds for the interface to appear.
void if_up(int sock, const char* name, const char* addr, const char* mask)
{
    for (int i = 0; i < 200 && ::if_nametoindex(name) == 0; ++i) ::usleep(10000);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (addr) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
        sin->sin_family = AF_INET;
        inet_pton(AF_INET, addr, &sin->sin_addr);
        if (::ioctl(sock, SIOCSIFADDR, &ifr) != 0) die("net", name);
        inet_pton(AF_INET, mask, &sin->sin_addr);
        if (::ioctl(sock, SIOCSIFNETMASK, &ifr) != 0) die("net", name);
    }
    if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) die("net", name);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (::ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) die("net", name);
}

}  // namespace

void loopback_up()
{
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("net", "socket");
    if_up(s, "lo", nullptr, nullptr);
    ::close(s);
}

void network()
{
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("net", "socket");
    if_up(s, "eth0", "10.0.2.15", "255.255.255.0");
    rtentry rt{};
    auto* gw = reinterpret_cast<sockaddr_in*>(&rt.rt_gateway);
    gw->sin_family = AF_INET;
    inet_pton(AF_INET, "10.0.2.2", &gw->sin_addr);
    reinterpret_cast<sockaddr_in*>(&rt.rt_dst)->sin_family = AF_INET;
    reinterpret_cast<sockaddr_in*>(&rt.rt_genmask)->sin_family = AF_INET;
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    ::ioctl(s, SIOCADDRT, &rt);
    ::close(s);
}

void second_nic(char* spec)
{
    char* slash = std::strchr(spec, '/');
    if (!slash) die("eth1", spec);
    *slash = 0;
    const int prefix = std::atoi(slash + 1);
    char mask[16];
    const unsigned m = prefix <= 0 ? 0 : 0xffffffffu << (32 - prefix);
    std::snprintf(mask, sizeof mask, "%u.%u.%u.%u", m >> 24, (m >> 16) & 255, (m >> 8) & 255, m & 255);
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("net", "socket");
    if_up(s, "eth1", spec, mask);
    ::close(s);
}

}  // namespace devemu_init
