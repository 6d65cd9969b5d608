#include "core/error.hpp"

#include <cerrno>
#include <cstring>

namespace devemu::core {

std::string Error::message() const
{
    std::string out;
    if (!where.empty()) out = where + ": ";
    out += what;
    if (sys_errno != 0) {
        out += ": ";
        out += std::strerror(sys_errno);
    }
    if (!fix.empty()) out += " (fix: " + fix + ")";
    return out;
}

int Error::exit_code() const
{
    switch (code) {
    case Errc::timeout: return 124;
    case Errc::check_failed: return 1;
    case Errc::interrupted: return 130;
    default: return 2;
    }
}

std::unexpected<Error> fail_errno(std::string what, std::string where, std::string fix)
{
    const int e = errno;
    Errc c = Errc::kernel;
    if (e == EBUSY || e == EADDRINUSE || e == EAGAIN || e == EWOULDBLOCK) c = Errc::busy;
    else if (e == ENOENT || e == ENODEV || e == ENXIO) c = Errc::missing;
    return std::unexpected(Error{c, std::move(what), std::move(where), std::move(fix), e});
}

}  // namespace devemu::core
