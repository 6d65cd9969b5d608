// UNMAP on a backing: how a range is cut at the discard alignment, and that an unmapped range reads zeros.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/fd.hpp"
#include "temp_dir.hpp"
#include "uring/discard.hpp"

using namespace devemu::uring;

TEST_CASE("a range is cut into an unaligned head, an aligned middle and an unaligned tail")
{
    auto s = split_range(512, 8192, 4096);   // 512..8704
    CHECK(s.head_off == 512);
    CHECK(s.head_len == 3584);
    CHECK(s.mid_off == 4096);
    CHECK(s.mid_len == 4096);
    CHECK(s.tail_off == 8192);
    CHECK(s.tail_len == 512);
    s = split_range(4096, 8192, 4096);       // aligned: all middle
    CHECK((s.head_len == 0 && s.tail_len == 0 && s.mid_off == 4096 && s.mid_len == 8192));
    s = split_range(512, 1024, 4096);        // inside one unit: no middle
    CHECK((s.head_off == 512 && s.head_len == 1024 && s.mid_len == 0 && s.tail_len == 0));
    s = split_range(1000, 1, 1);             // no alignment: all middle
    CHECK((s.mid_off == 1000 && s.mid_len == 1 && s.head_len == 0));
    // Every byte once, in order, for a sweep of offsets and lengths.
    for (std::uint64_t off = 0; off < 9000; off += 511)
        for (std::uint64_t len = 0; len < 9000; len += 487) {
            s = split_range(off, len, 4096);
            INFO(off << "+" << len);
            CHECK(s.head_len + s.mid_len + s.tail_len == len);
            if (s.mid_len) {
                CHECK(s.mid_off % 4096 == 0);
                CHECK(s.mid_len % 4096 == 0);
                CHECK(s.head_off + s.head_len == s.mid_off);
                CHECK(s.mid_off + s.mid_len == s.tail_off);
            }
        }
}

TEST_CASE("an unmapped range of a file reads zeros and nothing around it changes")
{
    TempDir t;
    const auto path = t.root / "f.img";
    devemu::core::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0600));
    REQUIRE(fd);
    std::vector<char> data(1 << 20);
    std::mt19937 rng(7);
    for (auto& c : data) c = static_cast<char>(rng() | 1);   // no zero byte anywhere
    REQUIRE(::pwrite(fd.get(), data.data(), data.size(), 0) == static_cast<ssize_t>(data.size()));
    struct stat st {};
    REQUIRE(::fstat(fd.get(), &st) == 0);
    const auto g = probe_geometry(fd.get(), st);
    CHECK(!g.blockdev);
    // 512-byte LBAs 3..20: unaligned at both ends for a 4 KiB filesystem block.
    REQUIRE(unmap_range(fd.get(), g, 3 * 512, 18 * 512));
    std::vector<char> back(data.size());
    REQUIRE(::pread(fd.get(), back.data(), back.size(), 0) == static_cast<ssize_t>(back.size()));
    for (std::size_t i = 0; i < back.size(); ++i) {
        const bool in = i >= 3 * 512 && i < 21 * 512;
        if (in != (back[i] == 0) || (!in && back[i] != data[i])) {
            FAIL("byte " << i << " is wrong after the unmap");
            break;
        }
    }
}

TEST_CASE("a file's data and holes, as GET LBA STATUS asks for them")
{
    TempDir t;   // on this machine's ext4 (and tmpfs /dev/shm below): both keep holes
    for (const std::string& dir : {t.root.string(), std::string("/dev/shm")}) {
        INFO(dir);
        const auto path = dir + "/runs-" + std::to_string(::getpid()) + ".img";
        devemu::core::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600));
        REQUIRE(fd);
        ::unlink(path.c_str());
        REQUIRE(::ftruncate(fd.get(), 8 << 20) == 0);   // 8 MiB, all hole
        std::vector<char> d(64 << 10, 'x');
        REQUIRE(::pwrite(fd.get(), d.data(), d.size(), 1 << 20) == static_cast<ssize_t>(d.size()));   // data at 1 MiB
        const std::uint64_t end = 8 << 20;
        auto r = run_at(fd.get(), 0, end);
        REQUIRE(r);
        CHECK_FALSE(r->data);
        CHECK(r->len == 1 << 20);
        r = run_at(fd.get(), 1 << 20, end);
        REQUIRE(r);
        CHECK(r->data);
        CHECK(r->len == 64 << 10);
        r = run_at(fd.get(), (1 << 20) + 4096, end);   // inside the data
        REQUIRE(r);
        CHECK((r->data && r->len == (64 << 10) - 4096));
        r = run_at(fd.get(), (1 << 20) + (64 << 10), end);   // after the last data: a hole to the end
        REQUIRE(r);
        CHECK((!r->data && r->len == end - (1 << 20) - (64 << 10)));
        r = run_at(fd.get(), 0, 4096);   // never past `end`
        REQUIRE(r);
        CHECK(r->len == 4096);
        // Punched by UNMAP: a hole again.
        struct stat st {};
        REQUIRE(::fstat(fd.get(), &st) == 0);
        REQUIRE(unmap_range(fd.get(), probe_geometry(fd.get(), st), 1 << 20, 32 << 10));
        r = run_at(fd.get(), 0, end);
        REQUIRE(r);
        CHECK((!r->data && r->len == (1 << 20) + (32 << 10)));
    }
}

TEST_CASE("a backing in RAM is told from one on a disk")
{
    // tmpfs: in RAM (the handler writes small blocks itself there: TcmuConfig::inline_writes).
    char shm[] = "/dev/shm/devemu-test-XXXXXX";
    devemu::core::UniqueFd f(::mkstemp(shm));
    REQUIRE(f);
    ::unlink(shm);
    struct stat st {};
    REQUIRE(::fstat(f.get(), &st) == 0);
    CHECK(probe_geometry(f.get(), st).ram);
    // This test's own program: a file where it was built, on a disk.
    devemu::core::UniqueFd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
    REQUIRE(self);
    REQUIRE(::fstat(self.get(), &st) == 0);
    CHECK(!probe_geometry(self.get(), st).ram);
}
