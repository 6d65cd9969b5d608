#include "lio/check.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <sys/random.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/fd.hpp"
#include "core/fs.hpp"
#include "lio/libiscsi.hpp"

namespace devemu::lio {

namespace {

core::Result<std::string> pattern(std::size_t n)
{
    std::string p(n, '\0');
    DEVEMU_CHECK(core::random_bytes(p.data(), n));
    return p;
}

struct Task {
    const LibIscsi& L;
    scsi_task* t;
    ~Task()
    {
        if (t) L.scsi_free_scsi_task(t);
    }
    [[nodiscard]] bool good() const { return t && t->status == SCSI_STATUS_GOOD; }
};

}  // namespace

std::vector<CheckResult> check_iscsi(const IscsiCheckSpec& spec)
{
    std::vector<CheckResult> out;
    auto lib = libiscsi();
    if (!lib) return {{"login", false, lib.error().message()}};
    const LibIscsi& L = **lib;
    auto destroy_context = [&L](iscsi_context* c) { L.iscsi_destroy_context(c); };
    std::unique_ptr<iscsi_context, decltype(destroy_context)> ctx(L.iscsi_create_context(spec.initiator.c_str()), destroy_context);
    if (!ctx) return {{"login", false, "cannot create an iSCSI context"}};
    auto destroy_url = [&L](iscsi_url* u) { L.iscsi_destroy_url(u); };
    std::unique_ptr<iscsi_url, decltype(destroy_url)> url(L.iscsi_parse_full_url(ctx.get(), spec.url.c_str()), destroy_url);
    if (!url) return {{"login", false, std::string("bad URL: ") + L.iscsi_get_error(ctx.get())}};
    L.iscsi_set_targetname(ctx.get(), url->target);
    L.iscsi_set_session_type(ctx.get(), ISCSI_SESSION_NORMAL);
    L.iscsi_set_header_digest(ctx.get(), ISCSI_HEADER_DIGEST_NONE_CRC32C);
    L.iscsi_set_timeout(ctx.get(), 30);
    if (url->user[0]) L.iscsi_set_initiator_username_pwd(ctx.get(), url->user, url->passwd);
    const int lun = url->lun;
    if (L.iscsi_full_connect_sync(ctx.get(), url->portal, lun) != 0) {
        out.push_back({"login", false, L.iscsi_get_error(ctx.get())});
        return out;
    }
    out.push_back({"login", true, fmt::format("{} as {}", url->portal, spec.initiator)});

    {
        Task t{L, L.iscsi_inquiry_sync(ctx.get(), lun, 0, 0, 255)};
        auto* inq = t.good() ? static_cast<scsi_inquiry_standard*>(L.scsi_datain_unmarshall(t.t)) : nullptr;
        if (inq) out.push_back({"inquiry", true, fmt::format("{} {} {}", inq->vendor_identification, inq->product_identification, inq->product_revision_level)});
        else out.push_back({"inquiry", false, L.iscsi_get_error(ctx.get())});
    }
    std::uint64_t blocks = 0;
    std::uint32_t bs = 512;
    {
        Task t{L, L.iscsi_readcapacity16_sync(ctx.get(), lun)};
        auto* rc = t.good() ? static_cast<scsi_readcapacity16*>(L.scsi_datain_unmarshall(t.t)) : nullptr;
        if (rc) {
            blocks = rc->returned_lba + 1;
            bs = rc->block_length;
            out.push_back({"read capacity(16)", true, fmt::format("{} blocks of {} bytes", blocks, bs)});
        } else out.push_back({"read capacity(16)", false, L.iscsi_get_error(ctx.get())});
    }
    if (blocks && bs) {
        const std::uint64_t n = std::min<std::uint64_t>(spec.scratch / bs, blocks);
        const std::uint64_t lba = blocks - n;
        const std::uint32_t len = static_cast<std::uint32_t>(n * bs);
        std::string saved;
        bool ok = false;
        std::string detail;
        Task r0{L, L.iscsi_read16_sync(ctx.get(), lun, lba, len, bs, 0, 0, 0, 0, 0)};
        if (!r0.good() || r0.t->datain.size != static_cast<int>(len)) detail = std::string("read failed: ") + L.iscsi_get_error(ctx.get());
        else {
            saved.assign(reinterpret_cast<char*>(r0.t->datain.data), len);
            auto random = pattern(len);
            if (!random) {
                out.push_back({"write-read-verify", false, random.error().message()});
                L.iscsi_logout_sync(ctx.get());
                return out;
            }
            auto& pat = *random;
            Task w{L, L.iscsi_write16_sync(ctx.get(), lun, lba, reinterpret_cast<unsigned char*>(pat.data()), len, bs, 0, 0, 0, 0, 0)};
            Task r1{L, w.good() ? L.iscsi_read16_sync(ctx.get(), lun, lba, len, bs, 0, 0, 0, 0, 0) : nullptr};
            if (!w.good()) detail = std::string("write failed: ") + L.iscsi_get_error(ctx.get());
            else if (!r1.good()) detail = std::string("read-back failed: ") + L.iscsi_get_error(ctx.get());
            else if (std::memcmp(r1.t->datain.data, pat.data(), len) != 0) detail = "read-back differs from what was written";
            else ok = true;
            Task restore{L, L.iscsi_write16_sync(ctx.get(), lun, lba, reinterpret_cast<unsigned char*>(saved.data()), len, bs, 0, 0, 0, 0, 0)};
            if (!restore.good()) ok = false, detail += " (and restoring the original data failed!)";
            if (ok) detail = fmt::format("{} MiB at LBA {} written, read back, compared, restored", len >> 20, lba);
        }
        out.push_back({"write-read-verify", ok, detail});
    }
    L.iscsi_logout_sync(ctx.get());
    return out;
}

std::vector<CheckResult> check_block(const std::string& device, std::uint64_t scratch)
{
    std::vector<CheckResult> out;
    core::UniqueFd fd(::open(device.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC));
    if (!fd) return {{"open", false, fmt::format("{}: {}", device, std::strerror(errno))}};
    std::uint64_t size = 0;
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return {{"open", false, fmt::format("{}: BLKGETSIZE64: {}", device, std::strerror(errno))}};
    out.push_back({"open", true, fmt::format("{} ({} bytes)", device, size)});
    const std::uint64_t len = std::min<std::uint64_t>(scratch, size) & ~std::uint64_t{4095};
    const off_t off = static_cast<off_t>(size - len);
    auto aligned = [](std::size_t n) { return std::unique_ptr<char, decltype(&std::free)>(static_cast<char*>(std::aligned_alloc(4096, n)), &std::free); };
    auto saved = aligned(len), buf = aligned(len), back = aligned(len);
    auto pat = pattern(len);
    if (!saved || !buf || !back || !pat) {
        out.push_back({"write-read-verify", false, pat ? std::string("out of memory for 3 x ") + std::to_string(len) + " bytes" : pat.error().message()});
        return out;
    }
    std::memcpy(buf.get(), pat->data(), len);
    bool ok = ::pread(fd.get(), saved.get(), len, off) == static_cast<ssize_t>(len) && ::pwrite(fd.get(), buf.get(), len, off) == static_cast<ssize_t>(len) &&
              ::pread(fd.get(), back.get(), len, off) == static_cast<ssize_t>(len) && std::memcmp(back.get(), buf.get(), len) == 0;
    const bool restored = ::pwrite(fd.get(), saved.get(), len, off) == static_cast<ssize_t>(len);
    out.push_back({"write-read-verify", ok && restored,
                   ok && restored ? fmt::format("{} MiB at offset {} written, read back, compared, restored", len >> 20, off)
                                  : std::string("mismatch or I/O error: ") + std::strerror(errno)});
    return out;
}

core::CheckOutcome render_checks(const std::vector<std::pair<std::string, std::vector<CheckResult>>>& runs)
{
    core::CheckOutcome out;
    bool all_ok = true;
    auto units = nlohmann::json::array();
    for (auto& [unit, results] : runs) {
        auto checks = nlohmann::json::array();
        for (auto& r : results) {
            all_ok = all_ok && r.ok;
            checks.push_back({{"check", r.name}, {"ok", r.ok}, {"detail", r.detail}});
            out.lines.push_back(fmt::format("[{}] {}: {} — {}", r.ok ? " ok " : "FAIL", unit, r.name, r.detail));
        }
        units.push_back({{"unit", unit}, {"checks", checks}});
    }
    out.json = {{"ok", all_ok}, {"units", units}};
    out.rc = all_ok ? 0 : 1;
    return out;
}

}  // namespace devemu::lio
