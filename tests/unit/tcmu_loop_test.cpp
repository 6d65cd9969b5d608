// The TCMU handler's event loop against a fake device: a mapping laid out as the kernel's (mailbox, command ring,
// data area) in anonymous memory, and a socket pair in place of the UIO node (the "kernel" side writes to its end
// to announce commands; the handler's kicks arrive there). Checks that commands are served after the loop has
// slept (no lost wake-up), that reads and writes reach the backing file, that SIGTERM ends the loop, and that a
// command a fault holds does not hold the ones after it (out-of-order completion, when the kernel offers it).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "core/fd.hpp"
#include "scsi/bytes.hpp"
#include "scsi/cdb.hpp"
#include "temp_dir.hpp"
#include "uring/tcmu.hpp"
#include "uring/tcmu_handler.hpp"

using namespace devemu::uring;

namespace {

constexpr std::uint32_t kCmdrOff = 4096, kCmdrSize = 64 * 1024, kEntry = 128, kDataOff = kCmdrOff + kCmdrSize;
constexpr std::size_t kMapSize = kDataOff + 1024 * 1024;

struct FakeKernel {
    Device dev;
    devemu::core::UniqueFd side;   // the kernel's end of the socket pair
    std::uint32_t head = 0;
    std::uint16_t next_id = 1;

    FakeKernel()
    {
        void* m = ::mmap(nullptr, kMapSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        REQUIRE(m != MAP_FAILED);
        dev.base = static_cast<std::uint8_t*>(m);
        dev.map_size = kMapSize;
        dev.mb = reinterpret_cast<tcmu_mailbox*>(dev.base);
        dev.mb->version = 2;
        dev.mb->flags = 2;   // TCMU_MAILBOX_FLAG_CAP_READ_LEN
        dev.mb->cmdr_off = kCmdrOff;
        dev.mb->cmdr_size = kCmdrSize;
        dev.cmdr = dev.base + kCmdrOff;
        dev.cmdr_size = kCmdrSize;
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
        dev.uio.reset(sv[0]);
        side.reset(sv[1]);
    }

    // One READ(10)/WRITE(10) of `blocks` 512-byte blocks at `lba`, its data at `data_off` in the data area.
    void queue(bool write, std::uint32_t lba, std::uint16_t blocks, std::uint32_t data_off)
    {
        queue_cdb(write ? devemu::scsi::cdb_write10(lba, blocks) : devemu::scsi::cdb_read10(lba, blocks), blocks * 512u, data_off);
    }
    // Any CDB, with `len` bytes of data area at `data_off`.
    template <class Cdb>
    void queue_cdb(const Cdb& bytes, std::uint32_t len, std::uint32_t data_off)
    {
        auto* ent = reinterpret_cast<tcmu_cmd_entry*>(dev.cmdr + head);
        std::memset(ent, 0, kEntry);
        ent->hdr.len_op = kEntry | TCMU_OP_CMD;
        ent->hdr.cmd_id = next_id++;
        ent->req.iov_cnt = 1;
        ent->req.iov[0].iov_base = kDataOff + data_off;
        ent->req.iov[0].iov_len = len;
        std::uint8_t* cdb = reinterpret_cast<std::uint8_t*>(ent) + 64;   // after the header and the one iovec
        std::memcpy(cdb, bytes.data(), bytes.size());
        ent->req.cdb_off = static_cast<std::uint64_t>(cdb - dev.base);
        head = (head + kEntry) % kCmdrSize;
    }
    // Publishes the queued entries and rings the "interrupt".
    void announce()
    {
        __atomic_store_n(&dev.mb->cmd_head, head, __ATOMIC_RELEASE);
        const std::uint32_t one = 1;
        REQUIRE(::write(side.get(), &one, sizeof one) == sizeof one);
    }
    bool all_done(std::chrono::milliseconds within) { return tail_at(head, within); }
    bool tail_at(std::uint32_t slot, std::chrono::milliseconds within)
    {
        const auto end = std::chrono::steady_clock::now() + within;
        while (__atomic_load_n(&dev.mb->cmd_tail, __ATOMIC_ACQUIRE) != slot) {
            if (std::chrono::steady_clock::now() > end) return false;
            std::uint8_t drain[256];
            while (::read(side.get(), drain, sizeof drain) > 0) {}   // the kicks
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return true;
    }
    std::uint16_t id_at(std::uint32_t slot) const { return reinterpret_cast<const tcmu_cmd_entry*>(dev.cmdr + slot)->hdr.cmd_id; }
    std::uint8_t status_at(std::uint32_t slot) const { return reinterpret_cast<const tcmu_cmd_entry*>(dev.cmdr + slot)->rsp.scsi_status; }
    std::uint8_t* data(std::uint32_t off) { return dev.base + kDataOff + off; }
};

// The loop runs on its own thread with SIGTERM blocked there (serve_ring blocks it); the test signals that thread.
// cfg, k and geom must outlive the returned future.
std::pair<pthread_t, std::future<int>> start_loop(const TcmuConfig& cfg, FakeKernel& k, int backing, const Geometry& geom)
{
    auto tid = std::make_shared<std::promise<pthread_t>>();   // shared: the thread may still be in set_value when we return
    auto started = tid->get_future();
    auto served = std::async(std::launch::async, [&cfg, &k, &geom, tid, backing] {
        tid->set_value(::pthread_self());
        return serve_ring(cfg, k.dev, "fake-uio", backing, geom);
    });
    return {started.get(), std::move(served)};
}

// SIGTERM to the loop's thread: it finishes what is in flight and returns 0.
void stop_loop(pthread_t loop, std::future<int>& served)
{
    REQUIRE(::pthread_kill(loop, SIGTERM) == 0);
    REQUIRE(served.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    CHECK(served.get() == 0);
}

TcmuConfig config_for(const std::filesystem::path& file, std::size_t size)
{
    TcmuConfig cfg;
    cfg.backing = file.string();
    cfg.size = size;
    return cfg;
}

// The backing file holding `init` (synced: its pages clean), opened read-write.
devemu::core::UniqueFd make_backing(const std::filesystem::path& file, const std::vector<std::uint8_t>& init)
{
    {
        devemu::core::UniqueFd w(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        REQUIRE(::write(w.get(), init.data(), init.size()) == static_cast<ssize_t>(init.size()));
        REQUIRE(::fsync(w.get()) == 0);
    }
    devemu::core::UniqueFd backing(::open(file.c_str(), O_RDWR | O_CLOEXEC));
    REQUIRE(backing);
    return backing;
}

double process_cpu_s()
{
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

TEST_CASE("the TCMU loop serves commands announced while it sleeps, and stops on SIGTERM")
{
    TempDir tmp;
    const auto file = tmp.root / "backing";
    std::vector<std::uint8_t> init(1 << 20);
    for (std::size_t i = 0; i < init.size(); ++i) init[i] = static_cast<std::uint8_t>(i * 7 + 3);
    auto backing = make_backing(file, init);
    FakeKernel k;
    auto cfg = config_for(file, init.size());
    cfg.depth = 16;   // fewer entries than one round's commands: the handler makes room as it goes
    Geometry geom;

    auto [loop, served] = start_loop(cfg, k, backing.get(), geom);

    for (int round = 0; round < 5; ++round) {
        // Let the loop go to sleep first: a command must wake it (in the first round it has just started).
        std::this_thread::sleep_for(std::chrono::milliseconds(round == 0 ? 0 : 150));
        std::vector<std::uint32_t> slots;
        for (std::uint32_t i = 0; i < 24; ++i) {
            const std::uint32_t lba = (round * 24 + i) * 8;   // 4 KiB apart
            const bool write = i % 3 == 0;
            if (write) std::memset(k.data(i * 4096), 0xa0 + round, 4096);
            slots.push_back(k.head);
            k.queue(write, lba, 8, i * 4096);
        }
        k.announce();
        INFO("round " << round);
        // within less than the loop's idle timeout (1 s, counted from when it slept): a lost wake-up fails here
        REQUIRE(k.all_done(std::chrono::milliseconds(600)));
        for (std::uint32_t i = 0; i < 24; ++i) {
            CHECK(k.status_at(slots[i]) == 0);
            if (i % 3 != 0) {   // a read: the file's bytes at its LBA
                const std::size_t at = (round * 24 + i) * 4096;
                CHECK(std::memcmp(k.data(i * 4096), init.data() + at, 4096) == 0);
            }
        }
    }
    // The writes are in the file.
    std::vector<std::uint8_t> got(4096);
    for (int round = 0; round < 5; ++round) {
        REQUIRE(::pread(backing.get(), got.data(), got.size(), static_cast<off_t>(round * 24 * 4096)) == 4096);
        CHECK(got[0] == 0xa0 + round);
        CHECK(got[4095] == 0xa0 + round);
    }
    // Idle, it sleeps: a wait that kept finding the UIO node ready (a wake-up not consumed) would spin here.
    const double cpu0 = process_cpu_s();
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    CHECK(process_cpu_s() - cpu0 < 0.1);
    // Asleep, the loop must be woken by the signal (SIGTERM: finish what is in flight, then return 0).
    stop_loop(loop, served);
}

namespace {

// One read a stall holds (LBA 0..7), then five outside it. Returns the command ids in the first five completed slots
// (at most 300 ms after the announce), then ends the loop (SIGTERM clears the faults) and checks all completed.
std::vector<std::uint16_t> held_then_five(std::uint16_t mailbox_flags)
{
    TempDir tmp;
    const auto file = tmp.root / "backing";
    std::vector<std::uint8_t> init(1 << 20, 0x5a);
    auto backing = make_backing(file, init);
    tmp.write("faults", R"([{"type": "stall", "lba": "0..7"}])");
    FakeKernel k;
    k.dev.mb->flags = mailbox_flags;
    auto cfg = config_for(file, init.size());
    cfg.faults = tmp.root / "faults";
    Geometry geom;
    auto [loop, served] = start_loop(cfg, k, backing.get(), geom);
    k.queue(false, 0, 8, 0);   // held
    for (std::uint32_t i = 1; i <= 5; ++i) k.queue(false, 64 * i, 8, i * 4096);
    k.announce();
    std::vector<std::uint16_t> ids;
    if (k.tail_at(5 * kEntry, std::chrono::milliseconds(300)))
        for (std::uint32_t i = 0; i < 5; ++i) {
            ids.push_back(k.id_at(i * kEntry));
            CHECK(k.status_at(i * kEntry) == 0);
            CHECK(k.data((i + 1) * 4096)[0] == 0x5a);   // read i+1's data (the data area starts as zeros)
            CHECK(k.data((i + 1) * 4096 + 4095)[0] == 0x5a);
        }
    stop_loop(loop, served);
    CHECK(k.all_done(std::chrono::milliseconds(0)));
    CHECK(k.status_at(5 * kEntry) == 0);
    return ids;
}

}  // namespace

TEST_CASE("a command a stall holds does not hold the ones after it: TCMU's out-of-order completion")
{
    // TCMU_MAILBOX_FLAG_CAP_OOOC | CAP_READ_LEN: the five reads outside the range complete, each response in the
    // slot at the tail with its own command id; the held one (id 1) completes last, once the loop ends.
    auto ids = held_then_five(3);
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<std::uint16_t>{2, 3, 4, 5, 6});
    // Without CAP_OOOC (a kernel that does not offer it) completions stay in ring order: nothing passes the held one.
    CHECK(held_then_five(2).empty());
}

namespace {

std::uint64_t resident_pages(int fd, std::size_t len)
{
    void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
    REQUIRE(m != MAP_FAILED);
    std::vector<unsigned char> vec((len + 4095) / 4096);
    REQUIRE(::mincore(m, len, vec.data()) == 0);
    ::munmap(m, len);
    return static_cast<std::uint64_t>(std::count_if(vec.begin(), vec.end(), [](unsigned char c) { return c & 1; }));
}

}  // namespace

TEST_CASE("reads that try the page cache first are served from it, and through io_uring when it does not hold them")
{
    TempDir tmp;
    const auto file = tmp.root / "backing";
    std::vector<std::uint8_t> init(1 << 20);
    for (std::size_t i = 0; i < init.size(); ++i) init[i] = static_cast<std::uint8_t>(i * 13 + 1);
    auto backing = make_backing(file, init);   // synced: its pages can be dropped below
    FakeKernel k;
    auto cfg = config_for(file, init.size());
    cfg.stats = tmp.root / "stats.json";
    cfg.cache_first = true;   // what the handler chooses where io_uring would hand each read to its workers
    Geometry geom;
    const auto read_eight = [&](std::uint32_t first_lba) {
        for (std::uint32_t i = 0; i < 8; ++i) k.queue(false, first_lba + i * 8, 8, i * 4096);
        k.announce();
        REQUIRE(k.all_done(std::chrono::milliseconds(2000)));
        for (std::uint32_t i = 0; i < 8; ++i) CHECK(std::memcmp(k.data(i * 4096), init.data() + (first_lba + i * 8) * 512, 4096) == 0);
    };
    auto [loop, served] = start_loop(cfg, k, backing.get(), geom);
    read_eight(0);   // the file was just written: all in the page cache
    // Dropped from the page cache: the first read cannot come from it, and must still return the file's bytes.
    REQUIRE(::posix_fadvise(backing.get(), 0, 0, POSIX_FADV_DONTNEED) == 0);
    REQUIRE(resident_pages(backing.get(), init.size()) == 0);
    std::memset(k.data(0), 0, 8 * 4096);
    read_eight(1024);
    stop_loop(loop, served);
    const auto stats = nlohmann::json::parse(std::ifstream(cfg.stats));
    CHECK(stats.value("cache_first", false));
    CHECK(stats.value("reads", 0) == 16);
    CHECK(stats.value("reads_from_cache", 0) >= 8);   // the first eight
    CHECK(stats.value("reads_from_cache", 0) < 16);   // not the first after the drop (readahead may bring the rest)
}

TEST_CASE("the handler's LUN asks for 256 KiB commands and takes up to half its data area in one")
{
    // Linux's sd makes OPTIMAL TRANSFER LENGTH its request size (TcmuConfig::optimal_transfer says why 256 KiB);
    // MAXIMUM TRANSFER LENGTH stays what the data area can hold.
    TempDir tmp;
    const auto file = tmp.root / "backing";
    auto backing = make_backing(file, std::vector<std::uint8_t>(1 << 20, 0x11));
    FakeKernel k;
    auto cfg = config_for(file, 1 << 20);
    Geometry geom;
    auto [loop, served] = start_loop(cfg, k, backing.get(), geom);
    k.queue_cdb(std::vector<std::uint8_t>{0x12, 1, 0xb0, 0, 64, 0}, 64, 0);   // INQUIRY, VPD Block Limits
    k.announce();
    REQUIRE(k.all_done(std::chrono::milliseconds(2000)));
    CHECK(k.status_at(0) == 0);
    CHECK(k.data(1)[0] == 0xb0);
    CHECK(devemu::scsi::be32(k.data(12)) == 256 * 1024 / 512);              // optimal transfer length, in 512-byte blocks
    CHECK(devemu::scsi::be32(k.data(8)) == (kMapSize - kDataOff) / 2 / 512);   // maximum transfer length: half the data area
    stop_loop(loop, served);
}

namespace {

// Kicks the handler sent for 24 reads the page cache holds, announced at once (one pass over the ring).
int kicks_for_one_pass(unsigned kick_every)
{
    TempDir tmp;
    const auto file = tmp.root / "backing";
    std::vector<std::uint8_t> init(1 << 20);
    for (std::size_t i = 0; i < init.size(); ++i) init[i] = static_cast<std::uint8_t>(i * 5 + 2);
    auto backing = make_backing(file, init);   // just written: in the page cache
    FakeKernel k;
    auto cfg = config_for(file, init.size());
    cfg.cache_first = true;   // each read is done as it is read from the ring
    cfg.kick_every = kick_every;
    Geometry geom;
    auto [loop, served] = start_loop(cfg, k, backing.get(), geom);
    for (std::uint32_t i = 0; i < 24; ++i) k.queue(false, i * 8, 8, i * 4096);
    k.announce();
    // Not tail_at: it reads the kicks away. Every response is in before the loop's own kick after the pass.
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (__atomic_load_n(&k.dev.mb->cmd_tail, __ATOMIC_ACQUIRE) != k.head && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));   // the last kick follows the tail's store
    stop_loop(loop, served);
    REQUIRE(__atomic_load_n(&k.dev.mb->cmd_tail, __ATOMIC_ACQUIRE) == k.head);
    for (std::uint32_t i = 0; i < 24; ++i) CHECK(std::memcmp(k.data(i * 4096), init.data() + i * 4096, 4096) == 0);
    int kicks = 0;
    std::uint32_t one = 0;
    while (::read(k.side.get(), &one, sizeof one) == sizeof one) ++kicks;
    return kicks;
}

}  // namespace

TEST_CASE("within one pass over the ring the handler sends back what is done every kick_every commands")
{
    // 24 commands, done as they are read: with 8, kicks after the 8th and the 16th, then the loop's after the pass.
    CHECK(kicks_for_one_pass(8) == 3);
    // Off: one kick, after the last command; the first command's initiator waited for the other 23.
    CHECK(kicks_for_one_pass(0) == 1);
}

namespace {

// Eight 4 KiB writes, then eight reads of the same blocks; the handler's stats afterwards.
nlohmann::json eight_writes(bool inline_writes)
{
    TempDir tmp;
    const auto file = tmp.root / "backing";
    auto backing = make_backing(file, std::vector<std::uint8_t>(1 << 20, 0x33));
    FakeKernel k;
    auto cfg = config_for(file, 1 << 20);
    cfg.stats = tmp.root / "stats.json";
    cfg.inline_writes = inline_writes;
    Geometry geom;
    auto [loop, served] = start_loop(cfg, k, backing.get(), geom);
    for (std::uint32_t i = 0; i < 8; ++i) {
        std::memset(k.data(i * 4096), 0x40 + static_cast<int>(i), 4096);
        k.queue(true, 64 + i * 8, 8, i * 4096);
    }
    k.announce();
    REQUIRE(k.all_done(std::chrono::milliseconds(2000)));
    std::memset(k.data(0), 0, 8 * 4096);
    for (std::uint32_t i = 0; i < 8; ++i) k.queue(false, 64 + i * 8, 8, i * 4096);
    k.announce();
    REQUIRE(k.all_done(std::chrono::milliseconds(2000)));
    for (std::uint32_t i = 0; i < 8; ++i) {
        CHECK(k.status_at((8 + i) * kEntry) == 0);
        CHECK(k.data(i * 4096)[0] == 0x40 + i);
        CHECK(k.data(i * 4096)[4095] == 0x40 + i);
    }
    stop_loop(loop, served);
    std::vector<std::uint8_t> got(8 * 4096);   // in the file, whichever way they went
    REQUIRE(::pread(backing.get(), got.data(), got.size(), 64 * 512) == static_cast<ssize_t>(got.size()));
    for (std::uint32_t i = 0; i < 8; ++i) CHECK(got[i * 4096 + 100] == 0x40 + i);
    return nlohmann::json::parse(std::ifstream(cfg.stats));
}

}  // namespace

TEST_CASE("small writes are done on the handler's thread when asked (a backing in RAM), through io_uring otherwise")
{
    auto on = eight_writes(true);
    CHECK(on.value("inline_writes", false));
    CHECK(on.value("writes", 0) == 8);
    CHECK(on.value("writes_inline", 0) == 8);
    auto off = eight_writes(false);
    CHECK(!off.value("inline_writes", true));
    CHECK(off.value("writes", 0) == 8);
    CHECK(off.value("writes_inline", -1) == 0);
}
