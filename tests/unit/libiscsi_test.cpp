#include <link.h>

#include <catch2/catch.hpp>
#include <string>

#include "lio/libiscsi.hpp"

using namespace devemu;

namespace {
bool loaded(const std::string& soname)
{
    bool found = false;
    std::pair<const std::string*, bool*> data{&soname, &found};
    ::dl_iterate_phdr([](dl_phdr_info* info, std::size_t, void* arg) {
        auto& [name, hit] = *static_cast<std::pair<const std::string*, bool*>*>(arg);
        if (info->dlpi_name && std::string(info->dlpi_name).find(*name) != std::string::npos) *hit = true;
        return 0;
    }, &data);
    return found;
}
}  // namespace

TEST_CASE("libiscsi is loaded when first asked for, with every function check uses")
{
    // Not linked: a start of devemu (down, ls, ...) does not pay for libiscsi and its RDMA and crypto libraries.
    CHECK_FALSE(loaded("libiscsi.so"));
    CHECK_FALSE(loaded("libibverbs.so"));
    auto lib = lio::libiscsi();
    REQUIRE(lib);
    CHECK(loaded("libiscsi.so"));
#define DEVEMU_TEST_LOADED(f) CHECK((*lib)->f != nullptr);
    DEVEMU_LIBISCSI_FUNCTIONS(DEVEMU_TEST_LOADED)
#undef DEVEMU_TEST_LOADED
    // It works: a context is made and says who it is.
    auto* ctx = (*lib)->iscsi_create_context("iqn.2026-11.org.devemu:unit");
    REQUIRE(ctx);
    CHECK((*lib)->iscsi_destroy_context(ctx) == 0);
    auto again = lio::libiscsi();
    REQUIRE(again);
    CHECK(*again == *lib);   // loaded once
}
