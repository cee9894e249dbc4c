#!/bin/sh
# Stand-ins for the commands a bench runs side by side, so that its handling of a peer that
# cannot run the payload is tested without KVM (tests/bench/CMakeLists.txt).
#   fake_peer.sh boot-ok             a VMM that boots the test guest: its first line, PASS, exit 0
#   fake_peer.sh boot-kvm-error      QEMU with KVM on a kvm_pvm host at the test guest's int3
#                                    (ARCHITECTURE.md §5): the first line, KVM's emulation
#                                    failure on stderr, then it waits paused instead of exiting
#   fake_peer.sh hang-silent         the first line, then nothing, for ever
#   fake_peer.sh exits-ok            bench/exits' guest run through: figures, "exits: done", exit 0
#   fake_peer.sh exits-kvm-error     the same guest stopped by KVM's emulation failure, waiting
#   fake_peer.sh silent-unix PATH    a server that accepts on a unix socket and never answers
#   fake_peer.sh silent-tcp PORTFILE the same on 127.0.0.1 ports P and P+1 (swtpm's data and
#                                    control channels), P written to PORTFILE
set -eu
kvm_error() {
  echo "KVM internal error. Suberror: 1" >&2
  echo "extra data[0]: 0x0000000000000000" >&2
  echo "emulation failure" >&2
  echo "RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000" >&2
  echo "Code=c3 cc <cc> c3 0f 0b c3" >&2
  sleep 600
}
case ${1:-} in
  boot-ok)
    echo "testguest: hello (boot=pvh)"
    echo "check exceptions: ok caught #BP #UD #PF"
    echo "testguest: result PASS (10 checks)" ;;
  boot-kvm-error)
    echo "testguest: hello (boot=pvh)"
    kvm_error ;;
  hang-silent)
    echo "testguest: hello (boot=pvh)"
    sleep 600 ;;
  exits-ok|exits-kvm-error)
    echo "exits: start n=100 blk_n=10 mmio=0xd0000000"
    [ "$1" = exits-ok ] || kvm_error
    echo "exits: begin mmio"
    echo "exits: result mmio n=100 cycles=1000000"
    echo "exits: begin pio"
    echo "exits: result pio n=100 cycles=500000"
    echo "exits: skip blk reason=no virtio-mmio device"
    echo "exits: done" ;;
  silent-unix)
    exec python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
conns = []
while True: conns.append(s.accept()[0])' "$2" ;;
  silent-tcp)
    exec python3 -c 'import select, socket, sys
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); break
    except OSError:
        a.close(); b.close()
a.listen(4); b.listen(4)
open(sys.argv[1], "w").write("%d\n" % p)
conns = []
while True:
    for s in select.select([a, b], [], [])[0]: conns.append(s.accept()[0])' "$2" ;;
  *)
    echo "usage: $0 boot-ok|boot-kvm-error|hang-silent|exits-ok|exits-kvm-error|silent-unix PATH|silent-tcp PORTFILE" >&2
    exit 2 ;;
esac
