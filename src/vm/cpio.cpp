#include "vm/cpio.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <fmt/format.h>

#include "core/fs.hpp"

namespace devemu::vm {

namespace {
std::string clean(std::string_view p)
{
    while (p.starts_with('/')) p.remove_prefix(1);
    while (p.ends_with('/')) p.remove_suffix(1);
    return std::string(p);
}
}  // namespace

void CpioWriter::pad()
{
    while (out_.size() % 4) out_.push_back('\0');
}

void CpioWriter::header(std::string_view name, unsigned mode, std::size_t size, unsigned rmaj, unsigned rmin)
{
    if (out_.capacity() - out_.size() < size + 512) out_.reserve(std::max(out_.capacity() * 2, out_.size() + size + (1u << 20)));
    out_ += fmt::format("070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}", ino_++, mode,
                        0, 0, (mode & S_IFMT) == S_IFDIR ? 2 : 1, 0, size, 0, 0, rmaj, rmin, name.size() + 1, 0);
    out_.append(name);
    out_.push_back('\0');
    pad();
}

void CpioWriter::parents(std::string_view path)
{
    for (size_t i = path.find('/'); i != std::string_view::npos; i = path.find('/', i + 1)) {
        std::string dir(path.substr(0, i));
        if (names_.insert(dir).second) header(dir, S_IFDIR | 0755, 0);
    }
}

void CpioWriter::add_dir(std::string_view path, unsigned mode)
{
    auto p = clean(path);
    parents(p);
    if (names_.insert(p).second) header(p, S_IFDIR | mode, 0);
}

void CpioWriter::add_file(std::string_view path, std::string_view data, unsigned mode)
{
    auto p = clean(path);
    parents(p);
    if (!names_.insert(p).second) return;   // first one wins, as the kernel would overwrite in order
    header(p, S_IFREG | (mode & 07777), data.size());
    out_.append(data);
    pad();
}

core::Status CpioWriter::add_host_file(std::string_view path, const std::filesystem::path& host, unsigned mode)
{
    struct stat st {};
    if (::stat(host.c_str(), &st) != 0) return core::fail_errno("cannot read", host.string());
    auto data = core::read_file(host);
    if (!data) return std::unexpected(data.error());
    add_file(path, *data, mode ? mode : (st.st_mode & 07777));
    return {};
}

void CpioWriter::add_symlink(std::string_view path, std::string_view target)
{
    auto p = clean(path);
    parents(p);
    if (!names_.insert(p).second) return;
    header(p, S_IFLNK | 0777, target.size());
    out_.append(target);
    pad();
}

void CpioWriter::add_char_device(std::string_view path, unsigned major, unsigned minor, unsigned mode)
{
    auto p = clean(path);
    parents(p);
    if (!names_.insert(p).second) return;
    header(p, S_IFCHR | mode, 0, major, minor);
}

const std::string& CpioWriter::finish()
{
    if (!finished_) {
        header("TRAILER!!!", 0, 0);
        // The kernel reads archives in 512-byte blocks when concatenated after another; pad like cpio(1).
        while (out_.size() % 512) out_.push_back('\0');
        finished_ = true;
    }
    return out_;
}

}  // namespace devemu::vm
