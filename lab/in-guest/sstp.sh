# Runs inside the lab guest as `bash /lab/sstp.sh` (the host copies it into $LAB_SHARE): Debian's stock
# sstp-client (sstpc, which hands the PPP link to pppd) connects to $SERVER:443 as $VPN_USER@$HUB,
# verifying the server against /lab/ca.pem, gets its address over PPP (IPCP), pings $PING_TARGET, then
# runs iperf3 (one TCP stream, $IPERF_SECONDS s) to $IPERF_TARGET through the tunnel.
# PING_ALSO: more addresses to ping through the tunnel (3 each). Settings come from /lab/params. Logs land in /lab (sstpc.log, pppd.log); result lines in /lab/result.
# With HOLD=1 it writes /lab/connected (its PPP address) and waits up to 30 s for /lab/go first, so the
# host can inspect the server while the session is up.
set -u
. /lab/params
: "${SERVER:?}" "${VPN_USER:?}" "${VPN_PASS:?}" "${HUB:=DEFAULT}" "${PING_TARGET:=192.168.30.1}"
: "${IPERF_TARGET:=}" "${IPERF_SECONDS:=5}" "${HOLD:=0}" "${ROUTES:=192.168.30.0/24}" "${PING_ALSO:=}"
res=/lab/result; : >"$res"
out() { echo "$*"; echo "$*" >>"$res"; }
fail() {
  out "sstp: FAIL: $*"
  for f in /lab/sstpc.log /lab/pppd.log; do [ -s "$f" ] && { echo "--- tail $f"; tail -15 "$f"; }; done
  exit 1
}
cafile=()
[ -s /lab/ca.pem ] && cafile=(--ca-cert /lab/ca.pem)
# sstpc 1.0.18 loses its event loop (it exits with "The event loop terminated unsuccessfully" right
# after its HTTP request) when the TLS handshake completes without ever waiting for the server, which
# the guest's near-zero-latency link makes the rule. A few milliseconds of delay, as any real network
# has, keeps it on its usual path.
modprobe sch_netem 2>/dev/null; tc qdisc replace dev eth0 root netem delay "${LINK_DELAY:-5ms}" 2>/dev/null || true
read -r t0 _ </proc/uptime
sstpc --log-stderr --log-level "${LOG_LEVEL:-3}" "${cafile[@]}" --cert-warn --user "$VPN_USER@$HUB" --password "$VPN_PASS" \
  "$SERVER:443" -- nodetach noauth nodefaultroute noipdefault noccp nobsdcomp nodeflate refuse-eap \
  ifname sstp0 linkname sstp logfile /lab/pppd.log >/lab/sstpc.log 2>&1 &
sstpc=$!
addr=''
for i in $(seq 120); do
  addr=$(ip -4 -o addr show dev sstp0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
  [ -n "$addr" ] && break
  kill -0 $sstpc 2>/dev/null || break
  sleep 0.25
done
[ -n "$addr" ] || fail "no PPP address on sstp0"
out "sstp: up in $(read -r t1 _ </proc/uptime; awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s, PPP address $addr, peer $(ip -4 -o addr show dev sstp0 | awk '{print $6}')"
for r in $ROUTES ${IPERF_TARGET:+$IPERF_TARGET/32}; do ip route replace "$r" dev sstp0; done
if [ "$HOLD" = 1 ]; then
  echo "$addr" >/lab/connected.part && mv /lab/connected.part /lab/connected
  for i in $(seq 150); do ls /lab | grep -qx go && break; sleep 0.2; done
fi
p=$(ping -c 5 -i 0.2 -W 2 "$PING_TARGET" 2>&1)
echo "$p" | grep -q ' 0% packet loss' || { echo "$p"; fail "ping $PING_TARGET through the tunnel"; }
out "sstp: ping $PING_TARGET: 5/5, rtt min/avg/max $(echo "$p" | awk -F'[ /]' '/^rtt/{print $7"/"$8"/"$9}') ms"
for t in ${PING_ALSO:-}; do
  p=$(ping -c 3 -i 0.2 -W 2 "$t" 2>&1)
  echo "$p" | grep -q ' 0% packet loss' || { echo "$p"; fail "ping $t through the tunnel"; }
  out "sstp: ping $t: 3/3"
done
if [ -n "$IPERF_TARGET" ]; then
  r=$(timeout $((IPERF_SECONDS + 20)) iperf3 -c "$IPERF_TARGET" -t "$IPERF_SECONDS" -f m 2>&1)
  mbit=$(echo "$r" | awk '/receiver/{print $(NF-2)}')
  [ -n "$mbit" ] || { echo "$r"; fail "iperf3 to $IPERF_TARGET"; }
  out "sstp: iperf3 1 TCP stream ${IPERF_SECONDS} s to $IPERF_TARGET: $mbit Mbit/s"
fi
kill $sstpc 2>/dev/null
for i in $(seq 40); do kill -0 $sstpc 2>/dev/null || break; sleep 0.1; done
out "sstp: PASS"
