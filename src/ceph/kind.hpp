#pragma once
// Registers the "ceph" unit kind (core/unit_kind.hpp).
namespace devemu::ceph {
void register_ceph_kind();
}
