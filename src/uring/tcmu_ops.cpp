// The rare commands, served synchronously once everything in flight has finished: WRITE SAME, UNMAP, VERIFY with
// BYTCHK and COMPARE AND WRITE.
#include "uring/tcmu_handler.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace devemu::uring {

bool Handler::pread_all(std::uint8_t* buf, std::uint64_t len, std::uint64_t off)
{
    while (len) {
        auto n = ::pread(fd_, buf, len, static_cast<off_t>(off));
        if (n <= 0) return false;
        buf += n, len -= static_cast<std::uint64_t>(n), off += static_cast<std::uint64_t>(n);
    }
    return true;
}

bool Handler::pwrite_all(const std::uint8_t* buf, std::uint64_t len, std::uint64_t off)
{
    while (len) {
        auto n = ::pwrite(fd_, buf, len, static_cast<off_t>(off));
        if (n <= 0) return false;
        buf += n, len -= static_cast<std::uint64_t>(n), off += static_cast<std::uint64_t>(n);
    }
    return cfg_.write_cache || ::fdatasync(fd_) == 0 || errno == EINVAL;
}

void Handler::write_same(Pending& pe, const scsi::Plan& plan)
{
    const std::uint64_t bs = sd_.block_size, off = plan.lba * bs, bytes = plan.blocks * bs;
    if (data_len(pe) != (plan.ndob ? 0 : bs)) {
        fail(pe, scsi::invalid_field);
        return;
    }
    if (plan.unmap) {
        if (!punch(off, bytes)) fail(pe, scsi::medium_error_write, errno);
        return;
    }
    auto block = plan.ndob ? std::vector<std::uint8_t>(bs, 0) : copy_in(pe, bs);
    if (block.size() < bs) {
        fail(pe, scsi::invalid_field);
        return;
    }
    std::vector<std::uint8_t> chunk;
    for (std::uint64_t i = 0; i < std::min<std::uint64_t>(plan.blocks, 256); ++i) chunk.insert(chunk.end(), block.begin(), block.end());
    for (std::uint64_t done = 0; done < bytes && pe.status == scsi::good;) {
        auto n = std::min<std::uint64_t>(chunk.size(), bytes - done);
        if (!pwrite_all(chunk.data(), n, off + done)) fail(pe, scsi::medium_error_write, errno);
        done += n;
    }
    ++writes_, bytes_written_ += bytes;
}

void Handler::unmap(Pending& pe, const scsi::Plan& plan)
{
    const std::uint64_t bs = sd_.block_size;
    auto param = copy_in(pe, plan.blocks);
    std::vector<std::pair<std::uint64_t, std::uint32_t>> ranges;
    if (!scsi::parse_unmap(param, ranges)) {
        fail(pe, scsi::invalid_param_list);
        return;
    }
    for (auto& [lba, n] : ranges)
        if (lba > sd_.blocks || n > sd_.blocks - lba) {
            fail(pe, scsi::lba_out_of_range);
            return;
        }
    for (auto& [lba, n] : ranges)
        if (pe.status == scsi::good && n && !punch(lba * bs, std::uint64_t{n} * bs)) fail(pe, scsi::medium_error_write, errno);
}

void Handler::compare(Pending& pe, const scsi::Plan& plan)
{
    const std::uint64_t bs = sd_.block_size, off = plan.lba * bs, bytes = plan.blocks * bs;
    const bool caw = plan.op == scsi::Op::compare_and_write;
    auto out = copy_in(pe, caw ? 2 * bytes : bytes);
    if (out.size() < bytes || data_len(pe) != (caw ? 2 * bytes : bytes)) {   // the data-out must match the CDB
        fail(pe, scsi::invalid_field);
        return;
    }
    if (bytes == 0) return;
    std::vector<std::uint8_t> medium(bytes);
    if (!pread_all(medium.data(), bytes, off)) {
        fail(pe, scsi::medium_error_read, errno);
        return;
    }
    auto mis = std::mismatch(medium.begin(), medium.end(), out.begin());
    if (mis.first != medium.end()) {
        fail(pe, scsi::miscompare, 0, static_cast<std::uint32_t>(mis.first - medium.begin()));
        return;
    }
    if (caw) {
        if (out.size() < 2 * bytes) fail(pe, scsi::invalid_field);
        else if (!pwrite_all(out.data() + bytes, bytes, off)) fail(pe, scsi::medium_error_write, errno);
        else ++writes_, bytes_written_ += bytes;
    }
}

}  // namespace devemu::uring
