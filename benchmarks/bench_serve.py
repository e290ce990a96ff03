"""Throughput and latency of `ofa-sic serve` on loopback: concurrent clients against the same requests one at a
time, and against a process that loads the model for every request (as the ModelScope prototype's demo did).

Starts the real server (`ofa-sic serve --port 0`) on the checkpoint, then runs three phases on the same
request list (request i: image i mod the number of images, in --styles-per-request styles cycling through
the checkpoint's list):

- `one at a time`: one client, each request sent after the previous answer;
- `N clients`: N client threads sending requests back to back (the server batches them);
- `process per request`: `ofa-sic caption IMAGE --style ...` as a new process for each of the first
  --process-requests requests (model loaded every time).

Each phase stops starting requests after --phase-seconds (the table says how many ran). Prints captions/s
the p50/p95 request latency of each phase and the server's mean rows per generation call, as a
Markdown table.

    .venv/bin/python benchmarks/bench_serve.py --path demo_out/scst/checkpoint_best.pt \\
        --images demo_out/raw/yfcc_images --clients 16 --requests 64
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

LISTENING = re.compile(r"ofa-sic serve: listening on (http://\S+)")


def loopback_session() -> requests.Session:
    """A requests session that never goes through a proxy named in the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def ofa_sic_command() -> str:
    """The `ofa-sic` console script next to this Python."""
    return str(Path(sys.executable).parent / "ofa-sic")


def checkpoint_options(args) -> list:
    options = ["--path", args.path, "--cpu"]
    if args.data:
        options += ["--data", args.data]
    if args.bpe_dir:
        options += ["--bpe-dir", args.bpe_dir]
    return options


def start_server(args, log_path: Path):
    """(process, url) of `ofa-sic serve` on a free loopback port, once it listens."""
    command = [ofa_sic_command(), "serve", *checkpoint_options(args), "--port", "0",
               "--max-batch", str(args.max_batch), "--batch-wait-ms", str(args.batch_wait_ms)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        match = LISTENING.search(log_path.read_text())
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    sys.exit(f"ofa-sic serve did not start:\n{log_path.read_text()[-4000:]}")


def caption_once(session: requests.Session, url: str, image: Path, styles) -> float:
    """Seconds for one POST /caption answered with one caption per style."""
    started = time.perf_counter()
    with open(image, "rb") as f:
        response = session.post(url + "caption", files={"image": (image.name, f)}, data={"style": list(styles)},
                                timeout=600)
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or len(response.json()["captions"]) != len(styles):
        raise RuntimeError(f"POST /caption answered {response.status_code}: {response.text[:300]}")
    return elapsed


def run_clients(url: str, jobs, clients: int, seconds: float):
    """Send `jobs` [(image, styles)] from `clients` threads; (latencies of the finished requests, wall seconds)."""
    lock = threading.Lock()
    next_job = iter(jobs)
    latencies = []
    deadline = time.perf_counter() + seconds

    def client():
        session = loopback_session()
        while time.perf_counter() < deadline:
            with lock:
                job = next(next_job, None)
            if job is None:
                return
            latency = caption_once(session, url, *job)
            with lock:
                latencies.append(latency)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def run_processes(args, jobs, seconds: float):
    """`ofa-sic caption` as one process per job, one after the other; (latencies, wall seconds)."""
    latencies = []
    started = time.perf_counter()
    for image, styles in jobs:
        if time.perf_counter() - started > seconds:
            break
        begin = time.perf_counter()
        command = [ofa_sic_command(), "caption", str(image), *checkpoint_options(args)]
        for style in styles:
            command += ["--style", style]
        subprocess.run(command, check=True, capture_output=True)
        latencies.append(time.perf_counter() - begin)
    return latencies, time.perf_counter() - started


def table_row(name: str, latencies, wall: float, styles_per_request: int, planned: int, rows_per_call: str) -> str:
    captions = len(latencies) * styles_per_request
    p50, p95 = np.percentile(latencies, [50, 95])
    return f"| {name} | {len(latencies)}/{planned} | {captions / wall:.2f} | {p50:.2f} | {p95:.2f} | {rows_per_call} |"


def server_phase(url: str, jobs, clients: int, seconds: float):
    """run_clients, plus the mean rows per generation call the server made meanwhile (as text)."""
    before = loopback_session().get(url + "health", timeout=60).json()["batching"]
    latencies, wall = run_clients(url, jobs, clients, seconds)
    after = loopback_session().get(url + "health", timeout=60).json()["batching"]
    calls = after["generation_calls"] - before["generation_calls"]
    rows = after["rows_captioned"] - before["rows_captioned"]
    return latencies, wall, f"{rows / calls:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", required=True, help="style_caption checkpoint")
    parser.add_argument("--data", help="prepared data folder, if not the one stored in the checkpoint")
    parser.add_argument("--bpe-dir", help="BPE folder, if not the one stored in the checkpoint")
    parser.add_argument("--images", required=True, help="folder of images (*.jpg, *.png) to caption")
    parser.add_argument("--requests", type=int, default=64, help="requests per phase (default: 64)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    parser.add_argument("--styles-per-request", type=int, default=1, help="styles in each request (default: 1)")
    parser.add_argument("--process-requests", type=int, default=3,
                        help="requests of the process-per-request phase (default: 3)")
    parser.add_argument("--phase-seconds", type=float, default=300, help="no new request after this (default: 300)")
    parser.add_argument("--max-batch", type=int, default=16, help="the server's --max-batch (default: 16)")
    parser.add_argument("--batch-wait-ms", type=float, default=20, help="the server's --batch-wait-ms (default: 20)")
    args = parser.parse_args()

    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        sys.exit(f"{args.images}: no .jpg or .png images")
    log_path = Path(tempfile.gettempdir()) / f"bench_serve_{os.getpid()}.log"
    process, url = start_server(args, log_path)
    try:
        styles = loopback_session().get(url + "styles", timeout=60).json()["styles"]
        k = args.styles_per_request
        jobs = [(images[i % len(images)], [styles[(i + j) % len(styles)] for j in range(k)])
                for i in range(args.requests)]
        caption_once(loopback_session(), url, *jobs[0])  # warm-up
        rows = []
        latencies, wall, per_call = server_phase(url, jobs, 1, args.phase_seconds)
        rows.append(table_row("one at a time (1 client)", latencies, wall, k, len(jobs), per_call))
        latencies, wall, per_call = server_phase(url, jobs, args.clients, args.phase_seconds)
        rows.append(table_row(f"{args.clients} concurrent clients", latencies, wall, k, len(jobs), per_call))
    finally:
        process.terminate()
        process.wait()
    log_path.unlink()
    process_jobs = jobs[:args.process_requests]
    latencies, wall = run_processes(args, process_jobs, args.phase_seconds)
    rows.append(table_row("a process per request (model loaded each time)", latencies, wall, k, len(process_jobs),
                          "-"))

    print(f"{len(images)} images, {k} style(s) per request, --max-batch {args.max_batch}, "
          f"--batch-wait-ms {args.batch_wait_ms:g}, {os.cpu_count()} CPUs, torch threads: default")
    print("| phase | requests | captions/s | p50 latency (s) | p95 latency (s) | rows per generation call |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
