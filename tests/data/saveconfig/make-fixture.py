#!/usr/bin/env python3
# Writes targetcli-fb.json with real rtslib-fb (what targetcli's saveconfig uses), run inside a devemu VM:
#   devemu vm run --host-root --modules target_core_mod,target_core_file,target_core_iblock,iscsi_target_mod,tcm_loop,zram \
#       -- python3 tests/data/saveconfig/make-fixture.py OUT.json
# The storage objects live on guest tmpfs; the JSON is the fixture for tests/vm (import -> export round trip).
import sys
from rtslib_fb import (RTSRoot, FileIOStorageObject, BlockStorageObject, Target, TPG, NetworkPortal, LUN,
                       NodeACL, MappedLUN, FabricModule)

open("/sys/class/zram-control/hot_add").read()
with open("/sys/block/zram1/disksize", "w") as f:
    f.write(str(64 << 20))

fio = FileIOStorageObject("disk0", dev="/tmp/devemu-fixture-disk0.img", size=64 << 20, write_back=False)
blk = BlockStorageObject("blk0", dev="/dev/zram1")
iscsi = FabricModule("iscsi")
t = Target(iscsi, "iqn.2026-11.org.devemu:fixture")
tpg = TPG(t, 1)
NetworkPortal(tpg, "127.0.0.1", 3260)
l0 = LUN(tpg, 0, fio)
l1 = LUN(tpg, 1, blk)
tpg.set_attribute("generate_node_acls", "0")
tpg.set_attribute("authentication", "1")
acl = NodeACL(tpg, "iqn.2026-11.org.devemu:client")
acl.chap_userid = "devemu"
acl.chap_password = "fixture-secret-1234"
MappedLUN(acl, 0, l0)
MappedLUN(acl, 1, l1)
tpg.enable = True

loop = FabricModule("loopback")
lt = Target(loop, "naa.5001405aaaaaaaa1")
ltpg = TPG(lt, 1)
fio2 = FileIOStorageObject("disk1", dev="/tmp/devemu-fixture-disk1.img", size=32 << 20, write_back=False)
LUN(ltpg, 0, fio2)

RTSRoot().save_to_file(sys.argv[1])
print("wrote", sys.argv[1])
