#!/usr/bin/python3
"""Asserts with setools what the vmm module allows and forbids in a linked binary policy.

    policy_assertions.py POLICY_FILE

Loads the policy once (sesearch would load it per query). Rules are matched through the
attributes a type has, conditional rules included, so these are the effective rules.
Exit 0: every assertion holds; 1: one failed. ARCHITECTURE.md §11 ("SELinux").
"""
import sys

import setools

policy = setools.SELinuxPolicy(sys.argv[1])
failures = []


def report(ok, what, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok or not detail else "\n" + detail))
    if not ok:
        failures.append(what)


# One pass over the policy's allow rules keeps those whose source is one of our domains or
# an attribute of one; the queries below then run on that short list.
ours = {str(t) for t in policy.types() if str(t).startswith("vmm_") and str(t).endswith("_t")}
names_of = {t: {t} | {str(a) for a in policy.lookup_type(t).attributes()} for t in ours}
source_names = set().union(*names_of.values())
cached = [r for r in policy.terules()
          if r.ruletype == setools.TERuletype.allow and str(r.source) in source_names]


def names(t):
    if t not in names_of:
        names_of[t] = {t} | {str(a) for a in policy.lookup_type(t).attributes()}
    return names_of[t]


def allows(source, target=None, tclass=None, perms=None):
    return [r for r in cached
            if str(r.source) in names(source)
            and (target is None or str(r.target) in names(target))
            and (tclass is None or str(r.tclass) in tclass)
            and (perms is None or set(perms) & set(r.perms))]


def expect_allow(what, source, target, tclass, perms):
    granted = set()
    for r in allows(source, target, [tclass], perms):
        granted |= set(r.perms)
    missing = set(perms) - granted
    report(not missing, "allowed: " + what, "missing: " + " ".join(sorted(missing)))


def expect_none(what, source, target=None, tclass=None, perms=None):
    found = allows(source, target, tclass, perms)
    report(not found, "denied: " + what, "\n".join(str(r) for r in found))


roles = ["vmm_vcpu_t", "vmm_vcpu_kvm_pvm_t", "vmm_device_blk_t", "vmm_device_rng_t",
         "vmm_device_vsock_t", "vmm_vtpm_t"]
vcpus = roles[:2]
devices = ["vmm_device_blk_t", "vmm_device_rng_t", "vmm_device_vsock_t"]
kvm = ["open", "read", "write", "ioctl"]

# What each role needs.
for d in vcpus:
    expect_allow(d + " uses /dev/kvm", d, "kvm_device_t", "chr_file", kvm)
expect_allow("device-blk reads and writes images", "vmm_device_blk_t", "vmm_image_t", "file",
             ["read", "write", "getattr"])
for d in devices:
    expect_allow(d + " maps guest RAM", d, "vmm_guest_ram_t", "file", ["map", "read", "write"])
expect_allow("vtpm reads and writes its state", "vmm_vtpm_t", "vmm_vtpm_state_t", "file",
             ["create", "open", "read", "write", "rename", "unlink"])
expect_allow("vtpm adds and removes state files", "vmm_vtpm_t", "vmm_vtpm_state_t", "dir",
             ["add_name", "remove_name", "write", "search"])
for d in roles:
    expect_allow("manager starts " + d, "vmm_manager_t", d, "process", ["transition"])
for d, exe in [("vmm_vcpu_t", "vmm_vcpu_exec_t"), ("vmm_vcpu_kvm_pvm_t", "vmm_vcpu_exec_t"),
               ("vmm_device_blk_t", "vmm_device_exec_t"), ("vmm_device_rng_t", "vmm_device_exec_t"),
               ("vmm_device_vsock_t", "vmm_device_exec_t"),
               ("vmm_vtpm_t", "vmm_vtpm_exec_t")]:
    expect_allow(exe + " enters " + d, d, exe, "file", ["entrypoint"])
expect_allow("device-vsock connects to sockets in its directory", "vmm_device_vsock_t",
             "vmm_vsock_sock_t", "sock_file", ["write", "getattr"])
expect_allow("device-vsock binds listeners in its directory", "vmm_device_vsock_t",
             "vmm_vsock_sock_t", "dir", ["search", "add_name"])
expect_allow("device-vsock accepts on its listeners", "vmm_device_vsock_t", "vmm_device_vsock_t",
             "unix_stream_socket", ["listen", "accept"])
expect_allow("manager creates the vsock directory", "vmm_manager_t", "vmm_vsock_sock_t", "dir",
             ["create", "add_name", "relabelto"])
expect_allow("manager creates and removes vsock sockets", "vmm_manager_t", "vmm_vsock_sock_t",
             "sock_file", ["create", "unlink"])
for t in ["vmm_image_t", "vmm_vtpm_state_t", "vmm_event_log_t"]:
    expect_allow("manager labels " + t, "vmm_manager_t", t, "file", ["relabelfrom", "relabelto"])

# Least privilege between roles.
for d in devices + ["vmm_vtpm_t"]:
    expect_none(d + " uses /dev/kvm", d, "kvm_device_t")
for d in devices + vcpus:
    expect_none(d + " touches vTPM state", d, "vmm_vtpm_state_t")
expect_none("device-rng touches images", "vmm_device_rng_t", "vmm_image_t")
expect_none("vtpm touches images", "vmm_vtpm_t", "vmm_image_t")
expect_none("device-vsock touches images", "vmm_device_vsock_t", "vmm_image_t")
expect_none("device-vsock reads random devices", "vmm_device_vsock_t", "random_device_t")
expect_none("device-vsock reaches the manager's API socket", "vmm_device_vsock_t",
            "vmm_api_socket_t")
expect_none("device-vsock connects to the manager", "vmm_device_vsock_t", "vmm_manager_t",
            ["unix_stream_socket"], ["connectto"])
expect_none("device-vsock reads event logs", "vmm_device_vsock_t", "vmm_event_log_t")
expect_none("device-vsock writes guest RAM it creates", "vmm_device_vsock_t", "vmm_guest_ram_t",
            ["file"], ["create", "unlink"])
for d in ["vmm_device_blk_t", "vmm_device_rng_t", "vmm_vtpm_t"] + vcpus:
    expect_none(d + " touches vsock sockets", d, "vmm_vsock_sock_t")
expect_none("vtpm touches guest RAM", "vmm_vtpm_t", "vmm_guest_ram_t")
expect_none("vtpm reads tmpfs files (memfds)", "vmm_vtpm_t", "tmpfs_t", ["file"],
            ["read", "write", "map"])
for d in vcpus:
    expect_none("vtpm uses the fds of " + d + " (guest RAM)", "vmm_vtpm_t", d, ["fd"], ["use"])

# No role execs, ptraces, loads modules or reaches the network.
ip = ["tcp_socket", "udp_socket", "rawip_socket", "sctp_socket", "icmp_socket", "packet_socket"]
caps = ["sys_ptrace", "sys_module", "net_admin", "net_raw", "net_bind_service"]
for d in roles:
    expect_none(d + " execve without a transition", d, None, ["file"], ["execute_no_trans"])
    expect_none(d + " enters another domain", d, None, ["process"],
                ["transition", "dyntransition", "setexec", "setcurrent"])
    expect_none(d + " ptrace", d, None, ["process"], ["ptrace"])
    expect_none(d + " execmem/execstack/execheap", d, None, ["process"],
                ["execmem", "execstack", "execheap"])
    expect_none(d + " " + "/".join(caps), d, None, ["capability", "cap_userns"], caps)
    expect_none(d + " loads kernel modules", d, None, ["system"], ["module_load", "module_request"])
    expect_none(d + " creates IP sockets", d, None, ip, ["create"])
    expect_none(d + " name_connect/name_bind/node_bind", d, None, None,
                ["name_connect", "name_bind", "node_bind"])
    entries = [r for r in allows(d, None, ["file"], ["entrypoint"])
               if str(r.target) not in ("vmm_vcpu_exec_t", "vmm_device_exec_t", "vmm_vtpm_exec_t")]
    report(not entries, d + " is entered only from its binary", "\n".join(map(str, entries)))
for d in ["vmm_manager_t", "vmm_verify_t"]:
    expect_none(d + " creates IP sockets", d, None, ip, ["create"])
    expect_none(d + " ptrace", d, None, ["process"], ["ptrace"])
    expect_none(d + " loads kernel modules", d, None, ["system"], ["module_load"])
    expect_none(d + " sys_module/sys_ptrace", d, None, ["capability"], ["sys_module", "sys_ptrace"])

# MCS (the sVirt model): every role is MCS-constrained, and for such a type the reference
# policy makes "h1 dom h2" the condition to open, read or write a file: a process at
# s0:cA,cB cannot touch a file of another pair.
constrained = {str(t) for t in policy.lookup_typeattr("mcs_constrained_type").expand()}
for d in roles:
    report(d in constrained, d + " is an mcs_constrained_type")
mls = [c for c in policy.constraints() if c.ruletype == setools.ConstraintRuletype.mlsconstrain]


def mcs_guard(tclass, perms):
    for c in mls:
        if str(c.tclass) == tclass and set(perms) <= set(c.perms):
            text = str(c.expression)
            if "h1 dom h2" in text and "mcs_constrained_type" in text:
                return True
    return False


for tclass in ["file", "dir", "blk_file", "chr_file", "sock_file"]:
    report(mcs_guard(tclass, ["open", "read", "write"]),
           "MCS: %s open/read/write needs h1 dom h2 for constrained domains" % tclass)
report(mcs_guard("process", ["transition"]), "MCS: process transition needs h1 dom h2")
ranged = [r for r in setools.MLSRuleQuery(policy, ruletype=["range_transition"],
                                          target="vmm_manager_exec_t").results()]
report(any("c0.c1023" in str(r.default) for r in ranged),
       "the manager runs over every category (s0-s0:c0.c1023)", "\n".join(map(str, ranged)))

if failures:
    print("selinux policy analysis: %d assertion(s) failed" % len(failures))
    sys.exit(1)
print("selinux policy analysis: all assertions hold")
