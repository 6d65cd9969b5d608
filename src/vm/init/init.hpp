// devemu-init's pieces shared between its files (see init.cpp for what the binary does).
#pragma once

namespace devemu_init {

// Reports "DEVEMU-ERROR WHAT ARG: strerror(errno)" on the control tty and powers the guest off.
[[noreturn]] void die(const char* what, const char* arg);

// The guest's network (net.cpp): lo up; eth0 on qemu's user network with its route; eth1 as "ADDR/PREFIX".
void loopback_up();
void network();
void second_nic(char* spec);

}  // namespace devemu_init
