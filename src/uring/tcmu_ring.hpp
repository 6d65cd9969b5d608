#pragma once
// The TCMU ring: the kernel's ABI for a `user` backstore (mailbox + command ring + data area in one UIO mapping),
// the mapped device, and how to find its UIO node.
#include <sys/mman.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "core/fd.hpp"

namespace devemu::uring {

// The TCMU ring ABI, as include/uapi/linux/target_core_user.h (Linux 6.1) defines it. Mirrored here because that
// header pulls in <linux/uio.h>, whose struct iovec clashes with <sys/uio.h> (liburing); the asserts pin the layout.
constexpr std::uint32_t TCMU_OP_PAD = 0, TCMU_OP_CMD = 1, TCMU_OP_TMR = 2, TCMU_OP_MASK = 0x7;
constexpr std::size_t TCMU_SENSE_BUFFERSIZE = 96;
struct __attribute__((packed)) tcmu_mailbox {
    std::uint16_t version;
    std::uint16_t flags;
    std::uint32_t cmdr_off;
    std::uint32_t cmdr_size;
    std::uint32_t cmd_head;
    std::uint32_t cmd_tail __attribute__((aligned(64)));
};
struct __attribute__((packed)) tcmu_cmd_entry_hdr {
    std::uint32_t len_op;
    std::uint16_t cmd_id;
    std::uint8_t kflags;
    std::uint8_t uflags;
};
struct __attribute__((packed)) tcmu_iovec {
    std::uint64_t iov_base;   // an offset into the mapping
    std::uint64_t iov_len;
};
struct __attribute__((packed)) tcmu_cmd_entry {
    tcmu_cmd_entry_hdr hdr;
    union {
        struct {   // not packed in the uapi header: cdb_off is 8-aligned inside it
            std::uint32_t iov_cnt;
            std::uint32_t iov_bidi_cnt;
            std::uint32_t iov_dif_cnt;
            std::uint64_t cdb_off;
            std::uint64_t pad1, pad2;
            tcmu_iovec iov[1];
        } req;
        struct {
            std::uint8_t scsi_status;
            std::uint8_t pad1;
            std::uint16_t pad2;
            std::uint32_t read_len;
            char sense_buffer[TCMU_SENSE_BUFFERSIZE];
        } rsp;
    };
};
// A task management notification (the device's tmr_notification attribute on): the ids of the commands it aborts.
struct __attribute__((packed)) tcmu_tmr_entry {
    tcmu_cmd_entry_hdr hdr;
    std::uint8_t tmr_type;   // 1 ABORT TASK, 2 ABORT TASK SET, 4 CLEAR TASK SET, 5 LUN RESET, 6/7 target resets
    std::uint8_t pad1;
    std::uint16_t pad2;
    std::uint32_t cmd_cnt;
    std::uint64_t pad3, pad4;
    // followed by cmd_cnt std::uint16_t command ids
};
constexpr std::size_t tcmu_tmr_cmd_ids_offset = 32;
static_assert(sizeof(tcmu_tmr_entry) == tcmu_tmr_cmd_ids_offset);
static_assert(offsetof(tcmu_mailbox, cmd_tail) == 64);
static_assert(sizeof(tcmu_cmd_entry_hdr) == 8);
static_assert(offsetof(tcmu_cmd_entry, req.cdb_off) == 24);   // checked against the real header's offsetof
static_assert(offsetof(tcmu_cmd_entry, req.iov) == 48);
static_assert(offsetof(tcmu_cmd_entry, rsp.sense_buffer) == 16);
constexpr std::uint32_t tcmu_hdr_get_op(std::uint32_t len_op) { return len_op & TCMU_OP_MASK; }
constexpr std::uint32_t tcmu_hdr_get_len(std::uint32_t len_op) { return len_op & ~TCMU_OP_MASK; }

// One mapped TCMU device: the mailbox, the command ring inside the mapping, and the data area after it.
struct Device {
    core::UniqueFd uio;
    std::uint8_t* base = nullptr;
    std::size_t map_size = 0;
    tcmu_mailbox* mb = nullptr;
    std::uint8_t* cmdr = nullptr;
    std::uint32_t cmdr_size = 0;
    ~Device()
    {
        if (base) ::munmap(base, map_size);
    }
};

// The UIO device whose name starts with the prefix ("tcm-user/HBA/NAME/") and its mapping size, waiting for it up to
// `wait` (the kernel makes it when the backstore is enabled).
[[nodiscard]] core::Result<std::pair<std::string, std::size_t>> find_uio(const std::string& prefix, std::chrono::seconds wait);
// Opens and maps it.
[[nodiscard]] core::Status map_device(const std::string& uio, std::size_t size, Device& dev);
// Tells the kernel to reap the completions written to the ring (a write to the UIO device). A kick lost to EINTR or
// EAGAIN is made up by the next; any other failure is returned, naming the device by its UIO prefix.
[[nodiscard]] core::Status kick(const Device& dev, const std::string& uio_prefix);

}  // namespace devemu::uring
