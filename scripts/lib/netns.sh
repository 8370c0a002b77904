# The network faults' tools and leftovers (libs/testkit/src/pod.rs): a pod is a network
# namespace with a veth pair and NAT, impaired by iptables (DROP, random loss, NFQUEUE for
# latency: the kernel here has no sch_netem).

# netns_prepare: nft and iptables when missing; the pods a killed test left behind (their
# namespace `chorus-<pid>-<n>`, host veth `chv<pid>n<n>`, host table `chorus_pod_<pid>_<n>`)
# removed when that pid is gone.
netns_prepare() {
  local missing=()
  command -v nft >/dev/null || missing+=(nftables)
  command -v iptables >/dev/null || missing+=(iptables)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  local ns pid table
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^chorus-[0-9]+-[0-9]+$'); do
    pid=${ns#chorus-}; pid=${pid%-*}
    kill -0 "$pid" 2>/dev/null || ip netns delete "$ns"
  done
  for table in $(nft list tables ip 2>/dev/null | awk '{print $3}' | grep -E '^chorus_pod_[0-9]+_[0-9]+$'); do
    pid=${table#chorus_pod_}; pid=${pid%_*}
    kill -0 "$pid" 2>/dev/null || nft delete table ip "$table"
  done
}
