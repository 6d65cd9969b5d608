#include <catch2/catch.hpp>

#include "core/text.hpp"

using namespace devemu::core;

TEST_CASE("sizes parse with binary units")
{
    CHECK(parse_size("4096") == 4096u);
    CHECK(parse_size("4k") == 4096u);
    CHECK(parse_size("4K") == 4096u);
    CHECK(parse_size("512M") == 512ull << 20);
    CHECK(parse_size("1G") == 1ull << 30);
    CHECK(parse_size("1GiB") == 1ull << 30);
    CHECK(parse_size("2T") == 2ull << 40);
    CHECK(parse_size(" 8M ") == 8ull << 20);
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("G"));
    CHECK_FALSE(parse_size("1.5G"));
    CHECK_FALSE(parse_size("12X"));
    CHECK_FALSE(parse_size("-1M"));
    CHECK_FALSE(parse_size("99999999999999999999"));
    CHECK_FALSE(parse_size("17179869184T"));   // overflows 64 bits
    CHECK(format_size(1ull << 30) == "1 GiB");
    CHECK(format_size(1000) == "1000 B");
}

TEST_CASE("iSCSI names follow RFC 3720")
{
    CHECK_FALSE(check_iscsi_name("iqn.2026-11.org.devemu:zram0"));
    CHECK_FALSE(check_iscsi_name("iqn.2003-01.org.linux-iscsi.host.x8664:sn.1234"));
    CHECK_FALSE(check_iscsi_name("eui.0123456789abcdef"));
    CHECK_FALSE(check_iscsi_name("naa.6001405abcdef012"));
    CHECK(check_iscsi_name("iqn.26-11.org.x:t"));
    CHECK(check_iscsi_name("iqn.2026-13.org.x:t"));
    CHECK(check_iscsi_name("iqn.2026-11.Org.x:t"));
    CHECK(check_iscsi_name("iqn.2026-11.:t"));
    CHECK(check_iscsi_name("iqn.2026-11.org.x:a b"));
    CHECK(check_iscsi_name("eui.0123"));
    CHECK(check_iscsi_name("foo.bar"));
    CHECK(check_iscsi_name(std::string("iqn.2026-11.org.x:") + std::string(220, 'a')));
}

TEST_CASE("loopback WWNs and unit names")
{
    CHECK_FALSE(check_naa_wwn("naa.5001405000000001"));
    CHECK(check_naa_wwn("naa.50014050000000"));
    CHECK(check_naa_wwn("naa.500140500000000G"));
    CHECK(check_naa_wwn("naa.5001405000000ABC"));
    CHECK_FALSE(check_unit_name("zram0"));
    CHECK_FALSE(check_unit_name("msc0-disk_a"));
    CHECK(check_unit_name(""));
    CHECK(check_unit_name("Disk"));
    CHECK(check_unit_name("-x"));
    CHECK(check_unit_name("a/b"));
    CHECK(check_unit_name(std::string(33, 'a')));
}

TEST_CASE("the last line of a tool's output")
{
    CHECK(last_line("rbd: error opening pool\nadvice here\n\n") == "advice here");
    CHECK(last_line("  one line  ") == "one line");
    CHECK(last_line("") == "");
}

TEST_CASE("numbers the kernel writes parse, anything else is refused instead of throwing")
{
    CHECK(parse_number("42\n") == 42u);
    CHECK(parse_number(" 7 ") == 7u);
    CHECK(parse_number("0x40800000", 0) == 0x40800000u);   // a UIO map size
    CHECK(parse_number("1d6b", 16) == 0x1d6bu);
    CHECK(parse_number("12", 0) == 12u);
    CHECK_FALSE(parse_number(""));
    CHECK_FALSE(parse_number("12a"));
    CHECK_FALSE(parse_number("-1"));
    CHECK_FALSE(parse_number("0x", 0));
    CHECK_FALSE(parse_number("99999999999999999999"));   // past 64 bits
}

TEST_CASE("counts in words take the singular for one")
{
    CHECK(changes_in_words(0) == "up to date");
    CHECK(changes_in_words(1) == "1 change");
    CHECK(changes_in_words(23) == "23 changes");
    CHECK(count_of(1, "gadget") == "1 gadget");
    CHECK(count_of(0, "gadget") == "0 gadgets");
    CHECK(count_of(3, "backstore") == "3 backstores");
}
