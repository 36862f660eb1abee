//! Shell functions for guests and test hosts in the virtio-net tests and
//! benchmark: configuring a NIC, waiting for a peer, TCP transfers with
//! busybox `nc`.
#![allow(dead_code)]

/// Shell functions for the guest's init.
pub const GUEST_HELPERS: &str = r#"
ip link set lo up
# nic MAC ADDRESS/PREFIX: configures the interface with that MAC.
nic() {
    for d in /sys/class/net/*; do
        if [ "$(cat $d/address)" = "$1" ]; then
            dev=${d##*/}
            ip addr add $2 dev $dev && ip link set $dev up
            echo "@@nic $1 $dev $(cat $d/device/features)"
            return 0
        fi
    done
    echo "@@nic $1 missing"; ls /sys/class/net
}
# reach IP: pings until the peer answers (up to 60 s).
reach() {
    i=0
    until ping -c 1 -W 1 $1 >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 60 ] || { echo "@@unreachable $1"; return 1; }
    done
}
"#;

/// Shell functions for both the guest and the test host.
pub const COMMON_HELPERS: &str = r#"
# listening PORT: waits until a TCP server listens on PORT.
listening() { until netstat -ltn | grep -q ":$1 "; do sleep 0.1; done; }
md5() { md5sum < $1 | cut -d' ' -f1; }
# receive PORT FILE: a TCP server on PORT, in the background ($NC), that
# writes what it gets to FILE. Its stdin is a FIFO held open on fd 4, so it
# does not half-close the connection first; `wait $NC` waits for it alone.
receive() {
    rm -f /tmp/hold; mkfifo /tmp/hold
    nc -l -p $1 < /tmp/hold > $2 &
    NC=$!
    exec 4> /tmp/hold
    listening $1
}
"#;

/// Shell functions for the test host's script.
pub const HOST_HELPERS: &str = r#"
# fail WHAT: reports WHAT and stops the VM, whose console then shows why.
fail() { echo "@@failed $1"; kill $VM_PID; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
# tap_up NAME ADDRESS/PREFIX: waits for the TAP, then configures it.
tap_up() {
    i=0
    until ip link show $1 >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 300 ] || { echo "@@no-tap $1"; return 1; }
        sleep 0.1
    done
    ip addr add $2 dev $1 && ip link set $1 up
}
"#;
