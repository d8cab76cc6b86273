# Shared by the measurement scripts here (source it): the two namespaces every measurement needs.
#
# lab_up HOST INET makes HOST (198.51.100.2, where the NAT runs) and INET (198.51.100.1, the
# stand-in internet) joined by a veth, gives HOST a default route to INET and nothing else, and
# its own resolv.conf (/etc/netns/HOST/resolv.conf, naming 198.51.100.1). It fails when HOST can
# route anywhere outside the lab. The caller deletes both namespaces and /etc/netns/HOST on exit.
lab_up() {
    local host=$1 inet=$2
    ip netns add "$host"
    ip netns add "$inet"
    ip -n "$host" link add inet0 type veth peer name host0 netns "$inet"
    ip -n "$inet" addr add 198.51.100.1/24 dev host0
    ip -n "$inet" link set host0 up
    ip -n "$inet" link set lo up
    ip -n "$host" addr add 198.51.100.2/24 dev inet0
    ip -n "$host" link set inet0 up
    ip -n "$host" link set lo up
    ip -n "$host" route add default via 198.51.100.1
    mkdir -p "/etc/netns/$host"
    echo "nameserver 198.51.100.1" > "/etc/netns/$host/resolv.conf"
    # Refuse to go on if the host namespace can reach anything outside the lab.
    if ip -n "$host" -4 route | grep -vE '^(default via 198\.51\.100\.1 |198\.51\.100\.0/24 )'; then
        echo "$(basename "$0"): host namespace routes outside the lab" >&2
        return 1
    fi
}
