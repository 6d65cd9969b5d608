#include <pthread.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/parallel.hpp"

using namespace devemu;

TEST_CASE("parallel_for runs every index once, side by side, on small stacks")
{
    constexpr std::size_t n = 40;
    std::vector<std::atomic<int>> seen(n);
    std::atomic<int> active{0}, most{0};
    std::mutex m;
    std::set<pthread_t> threads;
    std::set<std::size_t> stacks;
    const pthread_t main_thread = ::pthread_self();
    core::parallel_for(n, 8, [&](std::size_t i) {
        ++seen[i];
        const int now = ++active;
        for (int prev = most; now > prev && !most.compare_exchange_weak(prev, now);) {}
        // Hold the first indices until others are running, so that "side by side" is observed, not hoped for.
        for (int k = 0; k < 200 && i < 8 && most < 4; ++k) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        pthread_attr_t a;
        std::size_t size = 0;
        if (::pthread_getattr_np(::pthread_self(), &a) == 0) {
            ::pthread_attr_getstacksize(&a, &size);
            ::pthread_attr_destroy(&a);
        }
        std::lock_guard lock(m);
        threads.insert(::pthread_self());
        if (::pthread_self() != main_thread) stacks.insert(size);
        --active;
    });
    for (auto& s : seen) CHECK(s == 1);
    CHECK(most >= 4);
    CHECK(threads.size() <= 8);
    REQUIRE_FALSE(stacks.empty());
    CHECK(*stacks.rbegin() <= core::kParallelStack);
}
