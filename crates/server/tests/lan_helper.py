"""Helpers the SecureNAT acceptance test runs inside its namespaces.

serve DIR PORT UDPPORT   HTTP server for DIR on PORT (deep accept queue), UDP echo on UDPPORT
parallel HOST PORT N     opens N TCP connections at once, then fetches /small on each; prints
                         how many returned the whole file
udp HOST PORT N          sends N datagrams, prints how many came back unchanged
"""
import http.server
import socket
import sys
import threading


def serve(directory, port, udp_port):
    def udp_echo():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", udp_port))
        while True:
            data, addr = s.recvfrom(65535)
            s.sendto(data, addr)

    threading.Thread(target=udp_echo, daemon=True).start()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *a):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 1024
        daemon_threads = True

    Server(("0.0.0.0", port), Handler).serve_forever()


def parallel(host, port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(60)
        s.connect((host, port))
        socks.append(s)
    ok = [0]
    lock = threading.Lock()

    def fetch(s):
        try:
            s.sendall(b"GET /small HTTP/1.0\r\nHost: lan\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"HTTP/1.0 200") and data.endswith(b"small-file-end\n"):
                with lock:
                    ok[0] += 1
        finally:
            s.close()

    threads = [threading.Thread(target=fetch, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(ok[0])


def udp(host, port, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    good = 0
    for i in range(n):
        msg = ("datagram %d " % i).encode() * 20
        s.sendto(msg, (host, port))
        try:
            data, _ = s.recvfrom(65535)
            if data == msg:
                good += 1
        except socket.timeout:
            pass
    print(good)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "parallel":
        parallel(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "udp":
        udp(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
