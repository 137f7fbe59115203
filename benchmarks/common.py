"""Small pieces the benchmarks share: a free loopback port, waiting for a server, percentiles."""
import http.client
import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    """The q-quantile (0..1) of `values` by the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_healthy(port: int, tries: int = 400) -> None:
    """Wait until the Winback server on `port` answers /healthz (bounded: tries × 50 ms)."""
    for _ in range(tries):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server on port {port} did not start")
