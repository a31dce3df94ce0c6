"""Load test of the studio on 127.0.0.1: N concurrent clients for M seconds, valid and hostile
requests mixed. Measured: latency of the valid pictures (p50, p99), the answers by status, the
server's peak memory (RSS), and afterwards that it still answers and that its memory returns.

The server runs in its own process (``condsynth studio RUN --port 0``), so its memory is its
own. Hostile requests: a 40 KB PNG that decodes to 6000x6000 pixels, a 17 MB body, wrong JSON
types, a cross-site POST, and clients that connect and say nothing. Bounded: at most
``--clients`` threads for ``--seconds`` seconds, and every socket has a timeout.

    python benchmarks/studio_load.py                      # trains a tiny run first (a minute)
    python benchmarks/studio_load.py --run runs/p2p --clients 16 --seconds 30 --json
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image


def tiny_run(folder: Path) -> Path:
    """A 64x64 pix2pix run trained for 2 steps on procedural scenes."""
    from condsynth.cli import main as cli

    data, run = folder / "scenes", folder / "run"
    assert cli(["data", "procedural", "--out", str(data), "--count", "8", "--size", "64",
                "--quiet"]) == 0
    assert cli(["train", "--method", "pix2pix", "--data", str(data), "--run", str(run),
                "--size", "64", "--batch-size", "2", "--max-steps", "2", "--quiet",
                "train.tensorboard=false"]) == 0
    return run


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1)) / 1024


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


class Client:
    """One client thread's requests: (status or error name, seconds, kind) per request."""

    def __init__(self, port: int, model: dict, seed: int) -> None:
        self.port = port
        self.model = model
        self.rng = random.Random(seed)
        side_w, side_h = model["width"], model["height"]
        self.label = np.zeros((side_h, side_w), np.uint8)
        self.label[side_h // 2:] = 4
        self.bomb = png(np.zeros((6000, 6000), np.uint8))
        self.results: list[tuple[str, float, str]] = []

    def generate_body(self) -> dict:
        h, w = self.label.shape
        data = base64.b64encode(self.label.tobytes()).decode()
        return {"model": self.model["id"], "seed": self.rng.randrange(1000),
                "label": {"width": w, "height": h, "dtype": "uint8", "data": data}}

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict | None = None) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            response.read()
            return str(response.status)
        except (OSError, http.client.HTTPException) as err:
            return type(err).__name__
        finally:
            connection.close()

    def one(self) -> None:
        kind = self.rng.choices(["valid", "bomb", "huge", "types", "cross-site", "silent"],
                                [70, 6, 3, 9, 9, 3])[0]
        json_headers = {"Content-Type": "application/json"}
        start = time.perf_counter()
        if kind == "valid":
            status = self.request("POST", "/api/generate",
                                  json.dumps(self.generate_body()).encode(), json_headers)
        elif kind == "bomb":
            status = self.request("POST", f"/api/upload/label?model={self.model['id']}&name=b.png",
                                  self.bomb)
        elif kind == "huge":
            status = self.request("POST", "/api/upload/style?model=x&name=h.png",
                                  b"\x89PNG" + bytes(17 * 2**20))
        elif kind == "types":
            body = self.rng.choice([{"model": ["x"]}, {"model": self.model["id"], "seed": "1"},
                                    {"model": self.model["id"], "label": 7}, [1, 2]])
            status = self.request("POST", "/api/generate", json.dumps(body).encode(),
                                  json_headers)
        elif kind == "cross-site":
            status = self.request("POST", "/api/generate",
                                  json.dumps(self.generate_body()).encode(),
                                  {**json_headers, "Origin": "http://attacker.example"})
        else:                                   # connects, says nothing for 2 s, leaves
            with socket.create_connection(("127.0.0.1", self.port), timeout=5):
                time.sleep(2.0)
            status = "silent"
        self.results.append((status, time.perf_counter() - start, kind))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run directory (default: train a tiny one)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the load")
    parser.add_argument("--rounds", type=int, default=1, help="load rounds on one server "
                        "(memory that keeps growing round after round is a leak; memory that "
                        "stays at the first round's level is the allocator keeping its pages)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 0 < args.seconds <= 300 or not 1 <= args.rounds <= 5:
        parser.error("--clients must be 1..64, --seconds 0..300 and --rounds 1..5 (the test is "
                     "bounded)")

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else tiny_run(Path(tmp))
        server = subprocess.Popen([sys.executable, "-m", "condsynth", "studio", str(run),
                                   "--port", "0", "--device", "cpu"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()
            port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
            probe = Client(port, {"id": "", "width": 8, "height": 8}, 0)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", "/api/models")
            model = json.loads(connection.getresponse().read())["models"][0]
            connection.close()
            warm = Client(port, model, 0)
            for _ in range(3):                     # first pictures allocate the buffers
                warm.request("POST", "/api/generate",
                             json.dumps(warm.generate_body()).encode(),
                             {"Content-Type": "application/json"})
            before = rss_mb(server.pid)
            peak = before
            after_rounds = []
            clients = [Client(port, model, seed) for seed in range(1, args.clients + 1)]
            for _ in range(args.rounds):
                end = time.time() + args.seconds

                def loop(client: Client, end: float = end) -> None:
                    while time.time() < end:
                        client.one()

                threads = [threading.Thread(target=loop, args=(c,), daemon=True)
                           for c in clients]
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads):
                    peak = max(peak, rss_mb(server.pid))
                    time.sleep(0.1)
                time.sleep(3.0)
                after_rounds.append(round(rss_mb(server.pid), 1))
            health = probe.request("GET", "/health")
        finally:
            server.terminate()
            server.wait(30)
    results = [r for c in clients for r in c.results]
    valid = sorted(s for status, s, kind in results if kind == "valid" and status == "200")
    statuses = Counter(f"{kind}:{status}" for status, _, kind in results)
    # A 500 or a connection that broke is an error; refusals (4xx, 503 busy) are answers.
    errors = sum(1 for status, _, kind in results
                 if kind != "silent" and (status == "500" or not status.isdigit()))
    report = {
        "clients": args.clients, "seconds": args.seconds, "requests": len(results),
        "valid_ok": len(valid),
        "p50_ms": round(1000 * statistics.median(valid), 1) if valid else None,
        "p99_ms": round(1000 * valid[min(len(valid) - 1, int(0.99 * len(valid)))], 1)
        if valid else None,
        "answers": dict(sorted(statuses.items())),
        "errors (500 or broken connection)": errors,
        "rss_mb": {"before": round(before, 1), "peak": round(peak, 1),
                   "after_each_round": after_rounds},
        "health_after": health,
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0 if health == "200" and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
