#include "uring/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace devemu::uring {

unsigned Histogram::bucket_of(std::uint64_t ns)
{
    if (ns < kSub) return static_cast<unsigned>(ns);   // first power range is exact
    const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(ns));   // >= 5
    const unsigned power = msb - 4;                                          // 1.. for 32..63
    const unsigned sub = static_cast<unsigned>((ns >> (msb - 5)) & (kSub - 1));
    return std::min(power * kSub + sub, kSub * kPowers - 1);
}

std::uint64_t Histogram::upper_edge(unsigned bucket)
{
    if (bucket < kSub) return bucket;
    const unsigned power = bucket / kSub, sub = bucket % kSub;
    const unsigned msb = power + 4;
    return ((std::uint64_t{kSub} + sub + 1) << (msb - 5)) - 1;
}

void Histogram::record(std::uint64_t ns)
{
    ++buckets_[bucket_of(ns)];
    ++count_;
    sum_ += ns;
    min_ = std::min(min_, ns);
    max_ = std::max(max_, ns);
}

void Histogram::merge(const Histogram& o)
{
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
}

std::uint64_t Histogram::percentile(double p) const
{
    if (!count_) return 0;
    const auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (unsigned b = 0; b < buckets_.size(); ++b) {
        seen += buckets_[b];
        if (seen >= std::max<std::uint64_t>(rank, 1)) return std::min(upper_edge(b), max_);
    }
    return max_;
}

}  // namespace devemu::uring
