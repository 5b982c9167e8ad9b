#!/usr/bin/env python3
"""Throughput harness: Etherhub against a plain wireguard-go tunnel, on the same namespaces, in
one run.

Topology (all in namespaces this script creates and removes, underlay 198.18.0.0/15):

    ebA (client A) --198.18.200.0/24-- ebS (server) --198.18.201.0/24-- ebB (client B)
                                        ebS --198.19.200.0/24-- ebL (LAN)

Paths measured, each for several rounds (median, min, max reported):
  baseline   iperf3 over the bare veth A -> S                 (the machine's limit)
  anchor     wireguard-go A <-> wireguard-go S, plain tunnel   (what we compare against)
  relay      wireguard-go A -> wireguard-go S -> wireguard-go B (a userspace WireGuard server
             relaying client to client through its kernel: what a WireGuard manager does)
  hub        wireguard-go A -> Etherhub -> wireguard-go B      (client to client on one hub)
  securenat  wireguard-go A -> Etherhub SecureNAT -> LAN host  (only when --securenat)
  se-softether  SoftEther's vpnclient A -> Debian's SoftEther VPN Server SecureNAT -> LAN host
             (the anchor of SoftEther's own protocol)
  se-etherhub   SoftEther's vpnclient A -> Etherhub SecureNAT -> LAN host
  ov-openvpn    Debian's openvpn client A -> Debian's openvpn server (UDP, tun, AES-256-GCM;
             its kernel routes to the LAN) -> LAN host (the anchor of OpenVPN)
  ov-etherhub   Debian's openvpn client A -> Etherhub (UDP, tun, the config OpenVpnMakeConfig
             writes) SecureNAT -> LAN host
  l2tp-softether  strongSwan + xl2tpd/pppd in the lab guest (lab/guest, on a tap in ebS) ->
             Debian's SoftEther VPN Server's L2TP/IPsec SecureNAT -> LAN host (the anchor)
  l2tp-etherhub   the same client -> Etherhub's L2TP/IPsec SecureNAT -> LAN host
             (TCP one stream each way only: the guest boots for every measurement)
  l2tp-etherhub-udp  the same, the client forcing ESP into UDP 4500 (as SoftEther makes every
             client do: it claims a NAT to all)

Tests per path: TCP single stream A->far and far->A (-R), TCP 4 streams both ways, UDP at full rate
(received Mbit/s and loss), ping RTT, the server process's CPU seconds per GB moved, and the CPU
seconds per GB of every tunnel process on the path together (server and wireguard-go clients), so
the cost of the clients themselves is on record: on a 2-core machine it bounds what any server in
the middle can reach.
Every load is bounded by iperf3's -t and a subprocess timeout.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
ETHERHUB = os.path.join(TARGET, "release", "etherhub")
NS = ["ebA", "ebB", "ebS", "ebL"]
procs = []  # (Popen, name): ended by PID at cleanup


def sh(*args, check=True, timeout=60, capture=True, input=None):
    r = subprocess.run(list(args), check=False, timeout=timeout, text=True,
                       capture_output=capture, input=input)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stdout}{r.stderr}")
    return r.stdout if capture else ""


def nsx(ns, *args, **kw):
    return sh("ip", "netns", "exec", ns, *args, **kw)


def spawn(ns, *args, log=None):
    p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdin=subprocess.DEVNULL,
                         stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cleanup():
    for p in reversed(procs):
        try:
            stop(p)
        except Exception:
            pass
    for ns in NS:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def setup_underlay():
    cleanup()
    for ns in NS:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    for (a, aip, b, bip, name) in [
        ("ebS", "198.18.200.1/24", "ebA", "198.18.200.2/24", "ebsa"),
        ("ebS", "198.18.201.1/24", "ebB", "198.18.201.2/24", "ebsb"),
        ("ebS", "198.19.200.1/24", "ebL", "198.19.200.2/24", "ebsl"),
    ]:
        sh("ip", "link", "add", name + "0", "netns", a, "type", "veth", "peer", "name", name + "1", "netns", b)
        sh("ip", "-n", a, "addr", "add", aip, "dev", name + "0")
        sh("ip", "-n", b, "addr", "add", bip, "dev", name + "1")
        sh("ip", "-n", a, "link", "set", name + "0", "up")
        sh("ip", "-n", b, "link", "set", name + "1", "up")
    # the LAN host answers the server's own sockets; it needs no route beyond its subnet
    sh("ip", "-n", "ebL", "route", "add", "default", "via", "198.19.200.1")


def genkey():
    priv = sh("wg", "genkey").strip()
    pub = sh("wg", "pubkey", input=priv + "\n").strip()
    return priv, pub


def wg_iface(ns, ifname, addr, priv, peer_pub, psk, endpoint, allowed, listen_port=None, tmp=None,
             more_peers=()):
    p = spawn(ns, "wireguard-go", "-f", ifname)
    for _ in range(100):
        if subprocess.run(["ip", "-n", ns, "link", "show", ifname], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    conf = f"[Interface]\nPrivateKey = {priv}\n"
    if listen_port:
        conf += f"ListenPort = {listen_port}\n"
    conf += f"\n[Peer]\nPublicKey = {peer_pub}\n"
    if psk:
        conf += f"PresharedKey = {psk}\n"
    conf += f"AllowedIPs = {allowed}\n"
    if endpoint:
        conf += f"Endpoint = {endpoint}\nPersistentKeepalive = 25\n"
    for (pub, allowed_ips) in more_peers:
        conf += f"\n[Peer]\nPublicKey = {pub}\nAllowedIPs = {allowed_ips}\n"
    path = os.path.join(tmp, f"{ns}-{ifname}.conf")
    with open(path, "w") as f:
        f.write(conf)
    nsx(ns, "wg", "setconf", ifname, path)
    sh("ip", "-n", ns, "addr", "add", addr, "dev", ifname)
    sh("ip", "-n", ns, "link", "set", ifname, "mtu", "1420", "up")
    return p


def holder():
    """A private mount+PID namespace with its own SoftEther state dirs (Debian's vpnclient and
    vpnserver keep theirs in /var/lib, /run and /var/log/softether): the unshare process (ended
    by stop(), which ends everything inside) and the host PID of its first process, for
    nsenter."""
    for d in ("/var/lib/softether", "/run/softether", "/var/log/softether"):
        os.makedirs(d, exist_ok=True)
    state = tempfile.mkdtemp(prefix="etherhub-bench-se-")
    script = (f"set -e; for d in lib run log; do mkdir -p {state}/$d; done; "
              f"mount --bind {state}/lib /var/lib/softether; mount --bind {state}/run /run/softether; "
              f"mount --bind {state}/log /var/log/softether; touch {state}/ready; "
              "trap 'exit 0' TERM; while :; do sleep 1 & wait $! || true; done")
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
                          "--mount-proc", "bash", "-c", script], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    for _ in range(200):
        if os.path.exists(os.path.join(state, "ready")):
            break
        time.sleep(0.05)
    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
        first = int(f.read().split()[0])
    return p, first, state


def nse(h, ns, *args, **kw):
    return sh("nsenter", "-t", str(h), "-m", "-p", f"--net=/run/netns/{ns}", *args, **kw)


def descendants(pid, name):
    """Host PIDs of the processes called `name` below `pid`."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                comm = st[st.index("(") + 1:st.rindex(")")]
                ppid = int(st.rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append((int(d), comm))
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for child, comm in kids.get(todo.pop(), []):
            todo.append(child)
            if comm == name:
                out.append(child)
    return out


def softether_server():
    """Debian's vpnserver in ebS (inside a holder), with the user bench (password benchpw) on
    hub DEFAULT and SecureNAT on: the holder, the PID to enter, and a vpncmd caller."""
    hs, hpid, _ = holder()
    nse(hpid, "ebS", "vpnserver", "start")
    for _ in range(100):
        if "LISTEN" in sh("ip", "netns", "exec", "ebS", "ss", "-Hltn", "sport = :443", check=False):
            break
        time.sleep(0.1)
    vs = lambda *a: nse(hpid, "ebS", "timeout", "30", "vpncmd", "127.0.0.1:5555", "/SERVER", *a)
    vs("/CMD", "KeepDisable")
    vs("/HUB:DEFAULT", "/CMD", "UserCreate", "bench", "/GROUP:none", "/REALNAME:none", "/NOTE:none")
    vs("/HUB:DEFAULT", "/CMD", "UserPasswordSet", "bench", "/PASSWORD:benchpw")
    vs("/HUB:DEFAULT", "/CMD", "SecureNatEnable")
    return hs, hpid, vs


def vpnclient_connect(h, ns, server, maxtcp, tmp):
    """Debian's vpnclient in `ns` (inside holder `h`) connected to `server` as bench@DEFAULT,
    with an address from SecureNAT's DHCP and the LAN routed through the tunnel."""
    nse(h, ns, "vpnclient", "start")
    vc = lambda *a: nse(h, ns, "timeout", "30", "vpncmd", "localhost", "/CLIENT", "/CMD", *a)
    for _ in range(100):
        if subprocess.run(["nsenter", "-t", str(h), "-m", "-p", f"--net=/run/netns/{ns}", "vpncmd", "localhost",
                           "/CLIENT", "/CMD", "VersionGet"], capture_output=True, stdin=subprocess.DEVNULL
                          ).returncode == 0:
            break
        time.sleep(0.1)
    vc("NicCreate", "eb1")
    vc("AccountCreate", "bench", f"/SERVER:{server}", "/HUB:DEFAULT", "/USERNAME:bench", "/NICNAME:eb1")
    vc("AccountPasswordSet", "bench", "/PASSWORD:benchpw", "/TYPE:standard")
    vc("AccountDetailSet", "bench", f"/MAXTCP:{maxtcp}", "/INTERVAL:1", "/TTL:0", "/HALF:no", "/BRIDGE:no",
       "/MONITOR:no", "/NOTRACK:no", "/NOQOS:no", "/DISABLEUDP:no")
    vc("AccountConnect", "bench")
    for _ in range(150):
        if "Session Established" in vc("AccountStatusGet", "bench"):
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("vpnclient did not connect")
    script = os.path.join(tmp, "udhcpc.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\ncase "$1" in\n  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;\n'
                '  bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface" ;;\n'
                'esac\nexit 0\n')
    os.chmod(script, 0o755)
    nsx(ns, "timeout", "30", "busybox", "udhcpc", "-f", "-q", "-n", "-i", "vpn_eb1", "-s", script, "-t", "5",
        "-T", "2")
    sh("ip", "-n", ns, "route", "replace", "198.19.200.0/24", "via", "192.168.30.1", "dev", "vpn_eb1")
    nsx(ns, "ping", "-c", "3", "-W", "2", "198.19.200.2", check=False)


def vpnclient_stop(h, ns):
    nse(h, ns, "timeout", "20", "vpnclient", "stop", check=False)


def etherhub_with_user(tmp, tag):
    """Etherhub on its embedded default in ebS, with the user bench (password benchpw) on hub
    DEFAULT; waits for its admin port (a bounded wait)."""
    cfg = os.path.join(tmp, f"vpn_server_{tag}.config")
    log = open(os.path.join(tmp, f"etherhub-{tag}.log"), "w")
    srv = spawn("ebS", ETHERHUB, "server", "--config", cfg, log=log)
    for _ in range(100):
        if subprocess.run(["ip", "netns", "exec", "ebS", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5555"],
                          capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    etherhub_cmd("UserCreate", "bench", "/GROUP:none", "/REALNAME:none", "/NOTE:none", hub="DEFAULT")
    etherhub_cmd("UserPasswordSet", "bench", "/PASSWORD:benchpw", hub="DEFAULT")
    return srv


def ov_client(ns, server, conf, ca, tmp):
    """Debian's openvpn client in `ns` (UDP 1194, tun): with `conf` (Etherhub's config) or a
    minimal config trusting `ca`; returns once it is up (a bounded wait)."""
    auth = os.path.join(tmp, "ov-auth.txt")
    with open(auth, "w") as f:
        f.write("bench\nbenchpw\n")
    log = os.path.join(tmp, f"ov-client-{int(time.time() * 1000)}.log")
    args = ["openvpn", "--remote", server, "1194"]
    if conf:
        args += ["--config", conf]
    else:
        args += ["--client", "--dev", "tun", "--proto", "udp", "--nobind", "--ca", ca,
                 "--data-ciphers", "AES-256-GCM"]
    args += ["--auth-user-pass", auth, "--log", log]
    p = spawn(ns, *args)
    for _ in range(300):
        try:
            if "Initialization Sequence Completed" in open(log).read():
                return p
        except OSError:
            pass
        time.sleep(0.1)
    stop(p)
    raise RuntimeError(f"the openvpn client did not come up: {open(log).read() if os.path.exists(log) else ''}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
    # utime + stime of the process and its waited-for children
    return sum(int(x) for x in fields[11:15]) / ticks


def iperf(client_ns, server_ns, server_ip, secs, extra, cpu_pid, all_pids=()):
    # cpu_pid: one PID, or several whose CPU adds up (a server of more than one process)
    cpu_pids = cpu_pid if isinstance(cpu_pid, tuple) else (cpu_pid,) if cpu_pid else ()
    srv = spawn(server_ns, "iperf3", "-s", "-1", "-B", server_ip)
    time.sleep(0.3)
    c0 = sum(cpu_seconds(p) for p in cpu_pids)
    a0 = sum(cpu_seconds(p) for p in all_pids)
    try:
        out = nsx(client_ns, "iperf3", "-J", "-c", server_ip, "-t", str(secs), *extra, timeout=secs + 30)
    finally:
        stop(srv)
    c1 = sum(cpu_seconds(p) for p in cpu_pids)
    a1 = sum(cpu_seconds(p) for p in all_pids)
    j = json.loads(out)
    end = j["end"]
    if "-u" in extra:
        s = end["sum"]
        loss = s.get("lost_percent", 0.0)
        moved = s.get("bytes", 0) * (1 - loss / 100)
        # the received rate: what was sent, less what was lost
        return {"mbps": s["bits_per_second"] * (1 - loss / 100) / 1e6, "loss": loss,
                "cpu_s_per_gb": (c1 - c0) / max(moved / 1e9, 1e-9) if cpu_pid else None}
    recv = end["sum_received"]
    gb = max(recv["bytes"] / 1e9, 1e-9)
    return {"mbps": recv["bits_per_second"] / 1e6,
            "cpu_s_per_gb": (c1 - c0) / gb if cpu_pid else None,
            "cpu_all_s_per_gb": (a1 - a0) / gb if all_pids else None}


def ping_rtt(ns, ip):
    out = nsx(ns, "ping", "-c", "20", "-i", "0.05", "-W", "1", ip, check=False, timeout=30)
    for line in out.splitlines():
        if "min/avg/max" in line:
            return float(line.split("=")[1].split("/")[1])
    return None


def measure(name, client_ns, server_ns, server_ip, secs, rounds, cpu_pid, all_pids=()):
    res = {"tcp": [], "tcp_rev": [], "tcp4": [], "tcp4_rev": [], "udp": [], "udp_loss": [], "rtt_ms": [],
           "cpu_s_per_gb": [], "cpu_rev_s_per_gb": [], "cpu4_s_per_gb": [], "cpu4_rev_s_per_gb": [],
           "cpu_all_s_per_gb": []}
    for r in range(rounds):
        t = iperf(client_ns, server_ns, server_ip, secs, [], cpu_pid, all_pids)
        res["tcp"].append(t["mbps"])
        if t["cpu_s_per_gb"] is not None:
            res["cpu_s_per_gb"].append(t["cpu_s_per_gb"])
        if t["cpu_all_s_per_gb"] is not None:
            res["cpu_all_s_per_gb"].append(t["cpu_all_s_per_gb"])
        rev = iperf(client_ns, server_ns, server_ip, secs, ["-R"], cpu_pid)
        res["tcp_rev"].append(rev["mbps"])
        if rev["cpu_s_per_gb"] is not None:
            res["cpu_rev_s_per_gb"].append(rev["cpu_s_per_gb"])
        for key, args in (("tcp4", ["-P", "4"]), ("tcp4_rev", ["-P", "4", "-R"])):
            m = iperf(client_ns, server_ns, server_ip, secs, args, cpu_pid)
            res[key].append(m["mbps"])
            if m["cpu_s_per_gb"] is not None:
                res[key.replace("tcp", "cpu") + "_s_per_gb"].append(m["cpu_s_per_gb"])
        u = iperf(client_ns, server_ns, server_ip, secs, ["-u", "-b", "0", "-l", "1300"], None)
        res["udp"].append(u["mbps"])
        res["udp_loss"].append(u["loss"])
        rtt = ping_rtt(client_ns, server_ip)
        if rtt is not None:
            res["rtt_ms"].append(rtt)
        print(f"  {name} round {r + 1}: tcp {t['mbps']:.0f} Mbit/s", file=sys.stderr)
    return res


def summary(vals):
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


LAB_GUEST = os.path.join(ROOT, "lab", "guest")
L2TP_PSK = "bench-psk-5150"


def l2tp_guest_round(secs, reverse, cpu_pids, encap):
    """One L2TP/IPsec measurement: the lab guest (tap in ebS, 198.18.210.2) connects to the
    server in ebS as bench, then runs iperf3 (one TCP stream, `secs` s, -R when `reverse`) to
    the LAN host through the tunnel; the server's CPU is read around the transfer only."""
    share = tempfile.mkdtemp(prefix="etherhub-bench-l2tp-")
    with open(os.path.join(ROOT, "lab", "in-guest", "l2tp.sh")) as f, \
            open(os.path.join(share, "l2tp.sh"), "w") as g:
        g.write(f.read())
    with open(os.path.join(share, "params"), "w") as f:
        f.write(f"SERVER=198.18.210.1\nPSK={L2TP_PSK}\nVPN_USER=bench\nVPN_PASS=benchpw\n"
                f"PING_TARGET=192.168.30.1\nIPERF_TARGET=198.19.200.2\nIPERF_SECONDS={secs}\n"
                f"IPERF_ARGS={'-R' if reverse else ''}\nENCAP={'yes' if encap else 'no'}\nHOLD=1\n")
    env = dict(os.environ, LAB_SHARE=share, LAB_TIMEOUT=str(secs + 60))
    srv = spawn("ebL", "iperf3", "-s", "-1", "-B", "198.19.200.2")
    g = subprocess.Popen([LAB_GUEST, "run", "ebS", "198.18.210.2/24", "198.18.210.1", "--", "bash",
                          "/lab/l2tp.sh"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    procs.append(g)
    end = time.time() + 120
    while not os.path.exists(os.path.join(share, "connected")) and g.poll() is None and time.time() < end:
        time.sleep(0.2)
    c0 = sum(cpu_seconds(p) for p in cpu_pids)
    open(os.path.join(share, "go"), "w").close()
    try:
        out, _ = g.communicate(timeout=secs + 90)
    except subprocess.TimeoutExpired:
        stop(g)
        raise RuntimeError("the lab guest ran too long")
    c1 = sum(cpu_seconds(p) for p in cpu_pids)
    stop(srv)
    with open(os.path.join(share, "result")) as f:
        result = f.read()
    mbit = None
    for line in result.splitlines():
        if "iperf3" in line and line.endswith("Mbit/s"):
            mbit = float(line.rsplit(": ", 1)[1].split()[0])
    if mbit is None:
        raise RuntimeError(f"no iperf3 figure from the guest:\n{result}\n{out[-3000:]}")
    gb = max(mbit * 1e6 * secs / 8 / 1e9, 1e-9)
    carrier = next((l for l in result.splitlines() if "IPsec SA up" in l), "")
    return {"mbps": mbit, "cpu_s_per_gb": (c1 - c0) / gb, "carrier": carrier}


def measure_l2tp(name, secs, rounds, cpu_pids, encap=False):
    res = {"tcp": [], "tcp_rev": [], "cpu_s_per_gb": [], "cpu_rev_s_per_gb": []}
    for r in range(rounds):
        for key, cpu_key, reverse in (("tcp", "cpu_s_per_gb", False), ("tcp_rev", "cpu_rev_s_per_gb", True)):
            # up to 3 tries: Debian's SoftEther now and then fails an IKE exchange (a DH value
            # a byte short) or installs no SA; each failure is said and kept in the results
            for attempt in range(3):
                try:
                    m = l2tp_guest_round(secs, reverse, cpu_pids, encap)
                    break
                except RuntimeError as e:
                    res.setdefault("failed_attempts", []).append(1)
                    print(f"  {name}: attempt {attempt + 1} failed: {str(e).splitlines()[0]}", file=sys.stderr)
                    if attempt == 2:
                        raise
            res[key].append(m["mbps"])
            res[cpu_key].append(m["cpu_s_per_gb"])
        print(f"  {name} round {r + 1}: tcp {res['tcp'][-1]:.0f} rev {res['tcp_rev'][-1]:.0f} Mbit/s "
              f"({m['carrier']})", file=sys.stderr)
    return res


def etherhub_cmd(*args, hub=None):
    cmd = [ETHERHUB, "cmd", "127.0.0.1:5555", "/SERVER"]
    if hub:
        cmd.append(f"/ADMINHUB:{hub}")
    return nsx("ebS", *cmd, "/CMD", *args)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results.json"))
    ap.add_argument("--securenat", action="store_true", help="also measure the SecureNAT path to the LAN")
    ap.add_argument("--paths", default="baseline,anchor,relay,hub",
                    help="comma-separated subset of baseline,anchor,relay,hub,securenat")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--se-maxtcp", type=int, default=1, help="vpnclient's TCP connections per session")
    ap.add_argument("--etherhub", metavar="PATH",
                    help="the Etherhub binary to measure (implies --no-build; default: the release build), "
                         "e.g. an earlier commit's copy, for runs alternating two builds")
    a = ap.parse_args()
    if a.etherhub:
        global ETHERHUB
        ETHERHUB = os.path.abspath(a.etherhub)
        a.no_build = True
    paths = set(a.paths.split(","))
    if a.securenat:
        paths.add("securenat")
    unknown = paths - {"baseline", "anchor", "relay", "hub", "securenat", "se-softether", "se-etherhub",
                       "ov-openvpn", "ov-etherhub", "l2tp-softether", "l2tp-etherhub",
                       "l2tp-etherhub-udp"}
    if unknown:
        sys.exit(f"unknown path(s): {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        sys.exit("bench needs root (network namespaces)")
    if not a.no_build:
        sh("cargo", "build", "--release", "--bin", "etherhub", capture=False, timeout=3600)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = {}
    errors = {}
    tmp = tempfile.mkdtemp(prefix="etherhub-bench-")

    def stop_tunnels(*links):
        for p in list(procs):
            stop(p)
        procs.clear()
        for ns, ifname in links:
            sh("ip", "-n", ns, "link", "del", ifname, check=False)

    try:
        setup_underlay()
        if "baseline" in paths:
            print("baseline: bare veth", file=sys.stderr)
            results["baseline"] = measure("baseline", "ebA", "ebS", "198.18.200.1", a.secs, a.rounds, None)

        if "anchor" in paths:
            print("anchor: wireguard-go <-> wireguard-go", file=sys.stderr)
            sp, sk = genkey()
            cp, ck = genkey()
            wgs = wg_iface("ebS", "ebwgs", "10.99.0.1/24", sp, ck, None, None, "10.99.0.2/32", 51820, tmp)
            wga = wg_iface("ebA", "ebwga", "10.99.0.2/24", cp, sk, None, "198.18.200.1:51820", "10.99.0.0/24",
                           None, tmp)
            nsx("ebA", "ping", "-c", "3", "-W", "2", "10.99.0.1", check=False)
            results["anchor"] = measure("anchor", "ebA", "ebS", "10.99.0.1", a.secs, a.rounds, wgs.pid,
                                        (wgs.pid, wga.pid))
            stop_tunnels(("ebA", "ebwga"), ("ebS", "ebwgs"))

        if "relay" in paths:
            # the server's kernel routes between its two peers, back out of the same interface
            print("relay: wireguard-go -> wireguard-go server -> wireguard-go", file=sys.stderr)
            sp, sk = genkey()
            ap_, ak = genkey()
            bp, bk = genkey()
            nsx("ebS", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            wgs = wg_iface("ebS", "ebwgs", "10.99.0.1/24", sp, ak, None, None, "10.99.0.2/32", 51820, tmp,
                           more_peers=[(bk, "10.99.0.3/32")])
            wga = wg_iface("ebA", "ebwga", "10.99.0.2/24", ap_, sk, None, "198.18.200.1:51820", "10.99.0.0/24",
                           None, tmp)
            wgb = wg_iface("ebB", "ebwgb", "10.99.0.3/24", bp, sk, None, "198.18.201.1:51820", "10.99.0.0/24",
                           None, tmp)
            nsx("ebB", "ping", "-c", "3", "-W", "2", "10.99.0.1", check=False)
            nsx("ebA", "ping", "-c", "3", "-W", "2", "10.99.0.3", check=False)
            results["relay"] = measure("relay", "ebA", "ebB", "10.99.0.3", a.secs, a.rounds, wgs.pid,
                                       (wgs.pid, wga.pid, wgb.pid))
            stop_tunnels(("ebA", "ebwga"), ("ebB", "ebwgb"), ("ebS", "ebwgs"))
            nsx("ebS", "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")

        if paths & {"hub", "securenat"}:
            print("etherhub: client -> hub -> client", file=sys.stderr)
            cfg = os.path.join(tmp, "vpn_server.config")
            log = open(os.path.join(tmp, "etherhub.log"), "w")
            srv = spawn("ebS", ETHERHUB, "server", "--config", cfg, log=log)
            for _ in range(100):
                if subprocess.run(["ip", "netns", "exec", "ebS", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5555"],
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            etherhub_cmd("UserCreate", "bench", "/GROUP:none", "/REALNAME:none", "/NOTE:none", hub="DEFAULT")
            ap_, ak = genkey()
            bp, bk = genkey()
            etherhub_cmd("WgkAdd", ak, "/HUB:DEFAULT", "/USER:bench", "/IP:192.168.30.233")
            etherhub_cmd("WgkAdd", bk, "/HUB:DEFAULT", "/USER:bench", "/IP:192.168.30.234")
            info = etherhub_cmd("WgServerInfo")
            spub = psk = None
            for line in info.splitlines():
                cells = [c.strip() for c in line.split("|")]
                if len(cells) >= 2 and cells[0] == "Public Key":
                    spub = cells[1]
                if len(cells) >= 2 and "Preshared" in cells[0]:
                    psk = cells[1]
            if not spub:
                raise RuntimeError(f"no server key in WgServerInfo output:\n{info}")
            nat = "securenat" in paths
            allowed = "192.168.30.0/24" + (", 198.19.200.0/24" if nat else "")
            wga = wg_iface("ebA", "ebwga", "192.168.30.233/24", ap_, spub, psk, "198.18.200.1:443", allowed, None,
                           tmp)
            wgb = wg_iface("ebB", "ebwgb", "192.168.30.234/24", bp, spub, psk, "198.18.201.1:443",
                           "192.168.30.0/24", None, tmp)
            if nat:
                sh("ip", "-n", "ebA", "route", "replace", "198.19.200.0/24", "dev", "ebwga")
            nsx("ebB", "ping", "-c", "3", "-W", "2", "192.168.30.1", check=False)
            nsx("ebA", "ping", "-c", "3", "-W", "2", "192.168.30.234", check=False)
            if "hub" in paths:
                results["hub"] = measure("hub", "ebA", "ebB", "192.168.30.234", a.secs, a.rounds, srv.pid,
                                         (srv.pid, wga.pid, wgb.pid))
            if nat:
                print("etherhub: client -> SecureNAT -> LAN", file=sys.stderr)
                try:
                    results["securenat"] = measure("securenat", "ebA", "ebL", "198.19.200.2", a.secs, a.rounds,
                                                   srv.pid, (srv.pid, wga.pid))
                except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
                    # keep the other paths' figures; say what failed
                    print(f"securenat path failed: {e}", file=sys.stderr)
                    errors["securenat"] = str(e)
            stop_tunnels(("ebA", "ebwga"), ("ebB", "ebwgb"))
            stop(srv)

        if "se-softether" in paths:
            print("softether: vpnclient -> Debian's SoftEther VPN Server SecureNAT -> LAN", file=sys.stderr)
            try:
                hs, hpid, vs = softether_server()
                hc, cpid, _ = holder()
                vpnclient_connect(cpid, "ebA", "198.18.200.1:443", a.se_maxtcp, tmp)
                server_pids = tuple(descendants(hpid, "vpnserver"))
                client_pids = tuple(descendants(cpid, "vpnclient"))
                results["se-softether"] = measure("se-softether", "ebA", "ebL", "198.19.200.2", a.secs,
                                                  a.rounds, server_pids, server_pids + client_pids)
                vpnclient_stop(cpid, "ebA")
                nse(hpid, "ebS", "timeout", "30", "vpnserver", "stop", check=False)
                stop(hc)
                stop(hs)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, OSError) as e:
                print(f"se-softether path failed: {e}", file=sys.stderr)
                errors["se-softether"] = str(e)

        if "se-etherhub" in paths:
            print("etherhub: vpnclient -> Etherhub SecureNAT -> LAN", file=sys.stderr)
            try:
                srv = etherhub_with_user(tmp, "se")
                hc, cpid, _ = holder()
                vpnclient_connect(cpid, "ebA", "198.18.200.1:443", a.se_maxtcp, tmp)
                client_pids = tuple(descendants(cpid, "vpnclient"))
                results["se-etherhub"] = measure("se-etherhub", "ebA", "ebL", "198.19.200.2", a.secs, a.rounds,
                                                 srv.pid, (srv.pid,) + client_pids)
                vpnclient_stop(cpid, "ebA")
                stop(hc)
                stop(srv)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, OSError) as e:
                print(f"se-etherhub path failed: {e}", file=sys.stderr)
                errors["se-etherhub"] = str(e)
        if "ov-openvpn" in paths:
            print("openvpn: openvpn client -> Debian's openvpn server -> LAN", file=sys.stderr)
            try:
                crt, key = os.path.join(tmp, "ov.crt"), os.path.join(tmp, "ov.key")
                sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=bench")
                nsx("ebS", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
                sh("ip", "-n", "ebL", "route", "replace", "10.8.0.0/24", "via", "198.19.200.1")
                slog = open(os.path.join(tmp, "openvpn-server.log"), "w")
                srv = spawn("ebS", "openvpn", "--mode", "server", "--tls-server", "--dev", "tun", "--proto", "udp",
                            "--port", "1194", "--topology", "subnet", "--server", "10.8.0.0", "255.255.255.0",
                            "--ca", crt, "--cert", crt, "--key", key, "--dh", "none",
                            "--verify-client-cert", "none", "--username-as-common-name",
                            "--script-security", "2", "--auth-user-pass-verify", "/bin/true", "via-env",
                            "--data-ciphers", "AES-256-GCM", "--keepalive", "5", "30",
                            "--push", "route 198.19.200.0 255.255.255.0", "--verb", "3", log=slog)
                time.sleep(1)
                cli = ov_client("ebA", "198.18.200.1", None, crt, tmp)
                results["ov-openvpn"] = measure("ov-openvpn", "ebA", "ebL", "198.19.200.2", a.secs, a.rounds,
                                                srv.pid, (srv.pid, cli.pid))
                stop(cli)
                stop(srv)
                nsx("ebS", "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, OSError) as e:
                print(f"ov-openvpn path failed: {e}", file=sys.stderr)
                errors["ov-openvpn"] = str(e)

        if "ov-etherhub" in paths:
            print("etherhub: openvpn client -> Etherhub SecureNAT -> LAN", file=sys.stderr)
            try:
                srv = etherhub_with_user(tmp, "ov")
                zdir = os.path.join(tmp, "ovconf")
                os.makedirs(zdir, exist_ok=True)
                etherhub_cmd("OpenVpnMakeConfig", os.path.join(zdir, "c.zip"))
                sh("busybox", "unzip", "-o", "-q", os.path.join(zdir, "c.zip"), "-d", zdir)
                conf = [os.path.join(zdir, f) for f in os.listdir(zdir) if f.endswith("_l3.ovpn")][0]
                cli = ov_client("ebA", "198.18.200.1", conf, None, tmp)
                results["ov-etherhub"] = measure("ov-etherhub", "ebA", "ebL", "198.19.200.2", a.secs, a.rounds,
                                                 srv.pid, (srv.pid, cli.pid))
                stop(cli)
                stop(srv)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, OSError) as e:
                print(f"ov-etherhub path failed: {e}", file=sys.stderr)
                errors["ov-etherhub"] = str(e)
        if "l2tp-softether" in paths:
            print("l2tp: strongSwan + xl2tpd (guest) -> Debian's SoftEther VPN Server SecureNAT -> LAN",
                  file=sys.stderr)
            try:
                hs, hpid, vs = softether_server()
                vs("/CMD", "IPsecEnable", "/L2TP:yes", "/L2TPRAW:no", "/ETHERIP:no", f"/PSK:{L2TP_PSK}",
                   "/DEFAULTHUB:DEFAULT")
                server_pids = tuple(descendants(hpid, "vpnserver"))
                try:
                    results["l2tp-softether"] = measure_l2tp("l2tp-softether", a.secs, a.rounds, server_pids)
                finally:
                    nse(hpid, "ebS", "timeout", "30", "vpnserver", "stop", check=False)
                    stop(hs)
            except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
                print(f"l2tp-softether path failed: {e}", file=sys.stderr)
                errors["l2tp-softether"] = str(e)

        for path, encap in (("l2tp-etherhub", False), ("l2tp-etherhub-udp", True)):
            if path not in paths:
                continue
            print(f"l2tp: strongSwan + xl2tpd (guest) -> Etherhub SecureNAT -> LAN ({path})", file=sys.stderr)
            try:
                srv = etherhub_with_user(tmp, path)
                etherhub_cmd("IPsecEnable", "/L2TP:yes", "/L2TPRAW:no", "/ETHERIP:no", f"/PSK:{L2TP_PSK}",
                             "/DEFAULTHUB:DEFAULT")
                try:
                    results[path] = measure_l2tp(path, a.secs, a.rounds, (srv.pid,), encap)
                finally:
                    stop(srv)
            except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
                print(f"{path} path failed: {e}", file=sys.stderr)
                errors[path] = str(e)
    finally:
        cleanup()

    table = {}
    for path, res in results.items():
        table[path] = {k: summary(v) for k, v in res.items()}
    ratios = {}
    # every path against the plain tunnel; client-to-client also against the relaying server
    for path, against in (("hub", "anchor"), ("securenat", "anchor"), ("relay", "anchor"), ("hub", "relay"),
                          ("se-etherhub", "se-softether"), ("ov-etherhub", "ov-openvpn"),
                          ("l2tp-etherhub", "l2tp-softether"), ("l2tp-etherhub-udp", "l2tp-softether")):
        ref = table.get(against, {})
        if path in table and ref:
            r = ratios.setdefault(f"{path}/{against}", {})
            for k in ("tcp", "tcp_rev", "tcp4", "tcp4_rev", "udp", "cpu_s_per_gb", "cpu_rev_s_per_gb",
                      "cpu4_s_per_gb", "cpu4_rev_s_per_gb"):
                if table[path].get(k) and ref.get(k):
                    r[k] = table[path][k]["median"] / ref[k]["median"]
    out = {"rounds": a.rounds, "secs": a.secs, "results": table, "ratios": ratios, "errors": errors,
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    cols = [("tcp", "TCP 1 Mbit/s"), ("tcp_rev", "TCP 1 rev"), ("tcp4", "TCP x4"), ("tcp4_rev", "TCP x4 rev"),
            ("udp", "UDP rcvd Mbit/s"), ("udp_loss", "UDP loss %"), ("rtt_ms", "RTT ms"),
            ("cpu_s_per_gb", "CPU s/GB"), ("cpu_rev_s_per_gb", "CPU s/GB rev"),
            ("cpu4_s_per_gb", "CPU s/GB x4"), ("cpu4_rev_s_per_gb", "CPU s/GB x4 rev"),
            ("cpu_all_s_per_gb", "all tunnel CPU s/GB")]
    print(f"{'path':<10} " + " ".join(f"{c[1]:>22}" for c in cols))
    for path, row in table.items():
        cells = []
        for k, _ in cols:
            s = row.get(k)
            cells.append(f"{s['median']:.2f} [{s['min']:.2f},{s['max']:.2f}]" if s else "-")
        print(f"{path:<10} " + " ".join(f"{c:>22}" for c in cells))
    for path, r in ratios.items():
        print(f"{path}: " + ", ".join(f"{k} {v:.2f}x" for k, v in r.items()))
    for path, e in errors.items():
        print(f"{path}: FAILED: {e}")
    print(f"results: {a.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
