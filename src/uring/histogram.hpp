#pragma once
// Latency histogram in log buckets (HDR-style: powers of two split into 32 linear sub-buckets, so every bucket is
// within ~3% of its value), fixed size, no allocation when recording: safe on the I/O path.
#include <array>
#include <cstdint>

namespace devemu::uring {

class Histogram {
public:
    static constexpr unsigned kSub = 32;       // sub-buckets per power of two
    static constexpr unsigned kPowers = 40;    // up to 2^40 ns (~18 minutes)

    void record(std::uint64_t ns);
    void merge(const Histogram& o);
    [[nodiscard]] std::uint64_t count() const { return count_; }
    [[nodiscard]] std::uint64_t min() const { return count_ ? min_ : 0; }
    [[nodiscard]] std::uint64_t max() const { return max_; }
    [[nodiscard]] double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }
    // The value at percentile p (0..100): the upper edge of the bucket holding it, capped at max().
    [[nodiscard]] std::uint64_t percentile(double p) const;

    [[nodiscard]] static unsigned bucket_of(std::uint64_t ns);
    [[nodiscard]] static std::uint64_t upper_edge(unsigned bucket);

private:
    std::array<std::uint64_t, kSub * kPowers> buckets_{};
    std::uint64_t count_ = 0, sum_ = 0, min_ = UINT64_MAX, max_ = 0;
};

}  // namespace devemu::uring
