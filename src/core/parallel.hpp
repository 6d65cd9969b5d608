#pragma once
// Runs fn(0..n-1) on up to `threads` threads. For independent kernel objects (one unit each): LIO's removals wait
// for RCU grace periods, and concurrent waiters share them, so units done side by side cost little more than one.
//
// The threads get 1 MiB stacks, not glibc's 8 MiB: with transparent huge pages on ("always", Debian's default),
// the first touch of an 8 MiB stack faults in a whole 2 MiB page, and clearing 64 of them was a tenth of
// `down --all`'s CPU under TCG. A stack smaller than 2 MiB can never hold a huge page.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

namespace devemu::core {

inline constexpr std::size_t kParallelStack = 1 << 20;

template <class F>
void parallel_for(std::size_t n, std::size_t threads, F&& fn)
{
    threads = std::max<std::size_t>(1, std::min(threads, n));
    struct Shared {
        std::atomic<std::size_t> next{0};
        std::size_t n;
        F* fn;
        static void* work(void* p)
        {
            auto* s = static_cast<Shared*>(p);
            for (std::size_t i; (i = s->next.fetch_add(1)) < s->n;) (*s->fn)(i);
            return nullptr;
        }
    } shared;
    shared.n = n;
    shared.fn = &fn;
    std::vector<pthread_t> pool;
    pthread_attr_t attr;
    if (threads > 1 && ::pthread_attr_init(&attr) == 0) {
        ::pthread_attr_setstacksize(&attr, kParallelStack);
        for (std::size_t t = 0; t + 1 < threads; ++t)
            if (pthread_t id; ::pthread_create(&id, &attr, &Shared::work, &shared) == 0) pool.push_back(id);
        ::pthread_attr_destroy(&attr);
    }
    Shared::work(&shared);   // this thread works too; if no thread could start, it does everything
    for (auto id : pool) ::pthread_join(id, nullptr);
}

}  // namespace devemu::core
