#include "core/fs.hpp"

#include <sys/random.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>
#include <fmt/format.h>

#include "core/fd.hpp"
#include "core/text.hpp"

namespace devemu::core {

Result<std::string> read_file(const fs::path& p)
{
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return fail_errno("cannot open", p.string());
    std::string out;
    // A large regular file (a binary for a VM's initramfs) is read in place, at its size, not 64 KiB at a time
    // into a growing string (176 MB took 1.5 s that way); sysfs and procfs files say nothing true of their size.
    if (struct stat st {}; ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 65536) {
        out.resize(static_cast<std::size_t>(st.st_size));
        std::size_t got = 0;
        while (got < out.size()) {
            ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail_errno("cannot read", p.string());
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
        }
        out.resize(got);
        if (got < static_cast<std::size_t>(st.st_size)) return out;   // it shrank meanwhile: what there was
    }
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_errno("cannot read", p.string());
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

Result<std::string> read_attr(const fs::path& p)
{
    auto s = read_file(p);
    if (!s) return s;
    while (!s->empty() && (s->back() == '\n' || s->back() == '\0')) s->pop_back();
    return s;
}

Status write_attr(const fs::path& p, std::string_view value)
{
    UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return fail_errno("cannot open attribute", p.string());
    ssize_t n = ::write(fd.get(), value.data(), value.size());
    if (n < 0) return fail_errno(fmt::format("kernel refused '{}'", value), p.string());
    if (static_cast<size_t>(n) != value.size())
        return fail(Errc::kernel, fmt::format("short write ({} of {} bytes)", n, value.size()), p.string());
    if (::close(fd.release()) != 0) return fail_errno("close after write failed", p.string());
    return {};
}

static Status fsync_dir(const fs::path& dir)
{
    UniqueFd d(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) return fail_errno("cannot open directory", dir.string());
    if (::fsync(d.get()) != 0) return fail_errno("fsync failed", dir.string());
    return {};
}

Status write_file_atomic(const fs::path& p, std::string_view data, unsigned mode)
{
    fs::path tmp = p;
    tmp += fmt::format(".tmp.{}", ::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) return fail_errno("cannot create", tmp.string());
    ::fchmod(fd.get(), mode);  // umask must not widen or narrow what we asked for
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            auto e = fail_errno("cannot write", tmp.string());
            ::unlink(tmp.c_str());
            return e;
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
        auto e = fail_errno("cannot flush", tmp.string());
        ::unlink(tmp.c_str());
        return e;
    }
    if (::rename(tmp.c_str(), p.c_str()) != 0) {
        auto e = fail_errno("cannot rename into place", p.string());
        ::unlink(tmp.c_str());
        return e;
    }
    return fsync_dir(p.parent_path());
}

Status make_dirs(const fs::path& p, unsigned mode)
{
    std::error_code ec;
    fs::create_directories(p, ec);
    if (ec) return fail(Errc::io, "cannot create directory: " + ec.message(), p.string());
    ::chmod(p.c_str(), mode);
    return {};
}

void Hasher::add(std::string_view s)
{
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    add_u64(s.size());
}

void Hasher::add_u64(std::uint64_t v)
{
    for (int i = 0; i < 8; ++i) {
        h ^= (v >> (8 * i)) & 0xff;
        h *= 1099511628211ULL;
    }
}

Status Hasher::add_file(const fs::path& p)
{
    auto s = read_file(p);
    if (!s) return std::unexpected(s.error());
    add(*s);
    return {};
}

std::string Hasher::hex() const { return fmt::format("{:016x}", h); }

Result<std::uint64_t> read_number(const fs::path& p, int base)
{
    DEVEMU_TRY(text, read_attr(p));
    if (auto v = parse_number(text, base)) return *v;
    return fail(Errc::kernel, "not a number: \"" + text + "\"", p.string());
}

std::optional<double> page_cache_resident(const fs::path& p)
{
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) return std::nullopt;
    std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode) && ::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return std::nullopt;
    if (size == 0) return 1.0;
    // A window at a time, so a large disk costs a fixed vector (256 KiB for 1 GiB windows) and one mapping at a time.
    constexpr std::uint64_t window = 1ull << 30;
    const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> in(window / page);
    std::uint64_t resident = 0;
    for (std::uint64_t off = 0; off < size; off += window) {
        const auto len = static_cast<std::size_t>(std::min(window, size - off));
        void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd.get(), static_cast<off_t>(off));
        if (m == MAP_FAILED) return std::nullopt;
        const bool ok = ::mincore(m, len, in.data()) == 0;
        ::munmap(m, len);
        if (!ok) return std::nullopt;
        for (std::size_t i = 0; i < (len + page - 1) / page; ++i) resident += in[i] & 1;
    }
    return static_cast<double>(resident) / static_cast<double>((size + page - 1) / page);
}

Status random_bytes(void* out, std::size_t n)
{
    auto* p = static_cast<unsigned char*>(out);
    while (n) {
        const ssize_t r = ::getrandom(p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return fail_errno("getrandom", "", "the kernel's random source is not available");
        p += r, n -= static_cast<std::size_t>(r);
    }
    return {};
}

fs::path self_exe()
{
    std::error_code ec;
    auto p = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path("devemu") : p;
}

fs::path companion(const std::string& name)
{
    const auto dir = self_exe().parent_path();
    const auto installed = dir.parent_path() / "lib/devemu" / name;   // /usr/bin/devemu -> /usr/lib/devemu/NAME
    std::error_code ec;
    if (!fs::exists(dir / name, ec) && fs::exists(installed, ec)) return installed;
    return dir / name;   // the build tree (and what an error names when neither is there)
}

}  // namespace devemu::core
