# Who holds a local TCP port, and whether it is a process this script started. Sourced by
# scripts/up, which must never take a foreign program answering on its port for its own
# service (nor start a second copy beside its own).

# listener_pids PORT: the PIDs listening on 127.0.0.1:PORT (or any address), one a line.
listener_pids() {
  ss -Htlnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# owned_by PORT PID: every listener on PORT is PID or one of its descendants.
owned_by() {
  local port=$1 root=$2 pid p found=1
  for pid in $(listener_pids "$port"); do
    found=0
    p=$pid
    while [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != 1 ] && [ "$p" != "$root" ]; do
      p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)
    done
    [ "$p" = "$root" ] || return 1
  done
  return $found
}

# port_free_or_ours NAME PORT VARIABLE PIDFILE: succeeds when PORT is free, or held by the
# live process of PIDFILE; otherwise names the port, who holds it and the variable that moves
# NAME elsewhere, and fails.
port_free_or_ours() {
  local name=$1 port=$2 var=$3 pidfile=$4 holders
  holders=$(listener_pids "$port" | paste -sd' ')
  if [ -z "$holders" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    return 0
  fi
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && owned_by "$port" "$(cat "$pidfile")"; then
    return 0
  fi
  echo "scripts/up: port $port, which $name needs, is held by a process scripts/up did not start (pid ${holders:-unknown}): stop it, or set $var to another port" >&2
  return 1
}

# answering_is_ours NAME PORT PIDFILE: after a start, the process answering on PORT is the one
# recorded in PIDFILE (or its child), not some other program.
answering_is_ours() {
  local name=$1 port=$2 pidfile=$3
  if ! owned_by "$port" "$(cat "$pidfile")"; then
    echo "scripts/up: what answers on port $port is not the $name scripts/up started (pid $(cat "$pidfile")); listeners: $(listener_pids "$port" | paste -sd' ')" >&2
    return 1
  fi
}
