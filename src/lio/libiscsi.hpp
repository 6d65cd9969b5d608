#pragma once
// libiscsi, loaded when `check` first needs it rather than at every start: it pulls in libibverbs, librdmacm, libnl
// and libcrypto, whose loading and relocation cost every command (`down` included) a few tens of ms under TCG.
// The header still gives the types; these members are the library's own functions, under their own names.
extern "C" {
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
}

#include "core/error.hpp"

namespace devemu::lio {

#define DEVEMU_LIBISCSI_FUNCTIONS(X)                                                                                 \
    X(iscsi_create_context) X(iscsi_destroy_context) X(iscsi_parse_full_url) X(iscsi_destroy_url) X(iscsi_get_error) \
    X(iscsi_set_targetname) X(iscsi_set_session_type) X(iscsi_set_header_digest) X(iscsi_set_timeout)                \
    X(iscsi_set_initiator_username_pwd) X(iscsi_full_connect_sync) X(iscsi_logout_sync) X(iscsi_inquiry_sync)        \
    X(iscsi_readcapacity16_sync) X(iscsi_read16_sync) X(iscsi_write16_sync) X(scsi_datain_unmarshall)                \
    X(scsi_free_scsi_task)

struct LibIscsi {
#define DEVEMU_LIBISCSI_MEMBER(f) decltype(&::f) f = nullptr;
    DEVEMU_LIBISCSI_FUNCTIONS(DEVEMU_LIBISCSI_MEMBER)
#undef DEVEMU_LIBISCSI_MEMBER
};

// Loads libiscsi.so.7 once (thread-safe); an error names the library and how to install it.
[[nodiscard]] core::Result<const LibIscsi*> libiscsi();

}  // namespace devemu::lio
