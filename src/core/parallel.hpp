#pragma once
// Runs fn(0..n-1) on up to `threads` threads. For independent kernel objects (one unit each): LIO's removals wait
// for RCU grace periods, and concurrent waiters share them, so units done side by side cost little more than one.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace devemu::core {

template <class F>
void parallel_for(std::size_t n, std::size_t threads, F&& fn)
{
    threads = std::max<std::size_t>(1, std::min(threads, n));
    if (threads == 1) {
        for (std::size_t i = 0; i < n; ++i) fn(i);
        return;
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (std::size_t i; (i = next.fetch_add(1)) < n;) fn(i);
        });
    for (auto& th : pool) th.join();
}

}  // namespace devemu::core
