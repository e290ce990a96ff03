"""Speed of the training data pipeline and of the TSV offset index.

Run from the repository root:

    .venv/bin/python benchmarks/bench_data_pipeline.py [--data DIR --bpe-dir DIR] [--rows 1024]
        [--index-rows 200000] [--workers 0 2] [--patch-sizes 96 480] [--main-threads N]

(a) Pipeline: ``StyleCaptionDataset`` (TSV row -> JPEG decode -> resize + normalise -> prompt and
    caption BPE) and its ``collater`` through a ``torch.utils.data.DataLoader`` with batch size 32 and
    a shuffled ``RandomSampler``, for each number of workers and patch size. Rows/s is the steady
    rate after the first batch; the first batch's latency (worker start-up included) is reported on
    its own. The dataset is built as ``--task style_caption`` builds its train split (default prompt,
    token style format, OFA caption cleaning, code_dict_size 8192, num_bins 1000).
    Without ``--data``, demo data is made in a temporary folder twice and converted with
    ``prepare_pcap``: once with the demo's 96 px images, once with 480 px images (``prepare-pcap``
    stores real PCap images with a long side of at most 480 px, so these rows decode like real ones).
    A per-row breakdown (one process, no DataLoader) shows where the time goes.

(b) Index: a synthetic TSV of ``--index-rows`` rows in train.tsv's layout whose image column is one
    real base64 JPEG of about 15 KB repeated (about 3 GB for 200,000 rows, written to a temporary
    folder and deleted afterwards). Each measurement runs in a fresh subprocess that loads only
    ``ofa_sic/data/tsv_reader.py`` (numpy, no torch): cold = no ``.idx.npy`` cache (a full pass over
    the file, which the OS page cache holds after writing it: this is the parse cost, not disk
    speed), warm = cache present. Peak memory is given two ways: how far the process's peak RSS
    rises above its RSS at the start of the call (Linux: VmHWM, reset through /proc/self/clear_refs;
    elsewhere the growth of getrusage's maxrss), and tracemalloc's peak of Python allocations (a
    separate run, as tracemalloc slows allocation).

The machine's load average is printed: on a shared machine, other processes change the figures,
most of all for num_workers 0, where torch's intra-op threads compete for the same cores.
"""
import argparse
import io
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, RandomSampler  # noqa: E402

from ofa_sic.data.caption_dataset import StyleCaptionDataset  # noqa: E402
from ofa_sic.data.demo import make_demo_data  # noqa: E402
from ofa_sic.data.image_transform import CaptionImageTransform  # noqa: E402
from ofa_sic.data.images import decode_base64_image  # noqa: E402
from ofa_sic.data.pcap import prepare_pcap  # noqa: E402
from ofa_sic.data.prompts import StylePrompt  # noqa: E402
from ofa_sic.data.styles import StyleVocabulary  # noqa: E402
from ofa_sic.data.text import CaptionCleaner, TextCodec, build_ofa_dictionary  # noqa: E402
from ofa_sic.tasks.style_caption import DEFAULT_PROMPT  # noqa: E402

BATCH_SIZE = 32
TSV_READER = os.path.join(REPO_ROOT, "ofa_sic", "data", "tsv_reader.py")


# ----------------------------------------------------------------------------------------------------
# (a) the training data pipeline


def make_demo(root: str, image_px: int, n_train: int) -> dict:
    """Demo data with `image_px` images, converted by prepare_pcap; return {data, bpe_dir, label}."""
    out = os.path.join(root, f"demo{image_px}")
    summary = make_demo_data(out, n_train=n_train, n_valid=8, n_test=8, image_px=image_px, quiet=True)
    data = os.path.join(out, "data")
    prepare_pcap(summary["pcap_dir"], summary["image_dir"], data, df=False, quiet=True)
    return {"data": data, "bpe_dir": summary["bpe_dir"], "label": f"demo, {image_px} px JPEGs"}


def build_dataset(data: str, bpe_dir: str, patch_size: int) -> StyleCaptionDataset:
    """The train split as `--task style_caption` builds it with its default options."""
    dictionary = build_ofa_dictionary(bpe_dir, code_dict_size=8192, num_bins=1000)
    codec = TextCodec(bpe_dir, dictionary)
    styles = StyleVocabulary.load(os.path.join(data, "styles.txt"))
    return StyleCaptionDataset(
        os.path.join(data, "train.tsv"),
        codec,
        StylePrompt(DEFAULT_PROMPT, "token", styles, codec),
        CaptionImageTransform(patch_size),
        CaptionCleaner(),
        max_tgt_length=30,
        single_caption_targets=True,
        shuffle=True,
    )


def measure_loader(dataset: StyleCaptionDataset, workers: int, rows: int) -> dict:
    """Iterate `rows` shuffled rows in batches of 32; steady rows/s after the first batch."""
    generator = torch.Generator().manual_seed(0)
    sampler = RandomSampler(dataset, replacement=False, num_samples=min(rows, len(dataset)), generator=generator)
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, sampler=sampler, num_workers=workers, collate_fn=dataset.collater)
    start = time.perf_counter()
    first = None
    count = first_rows = 0
    for batch in loader:
        count += batch["nsentences"]
        if first is None:
            first = time.perf_counter()
            first_rows = count
    end = time.perf_counter()
    if count > first_rows:
        steady = (count - first_rows) / (end - first)
    else:  # a single batch: no steady phase, report the whole run
        steady = count / (end - start)
    return {"rows": count, "first_batch_s": first - start, "rows_per_s": steady, "total_s": end - start}


def breakdown(dataset: StyleCaptionDataset, rows: int = 256) -> dict:
    """Mean milliseconds per row of each stage, in this process."""
    indices = random.Random(1).sample(range(len(dataset)), min(rows, len(dataset)))
    timings = {"read": 0.0, "decode": 0.0, "transform": 0.0, "text": 0.0}
    samples = []
    for index in indices:
        t0 = time.perf_counter()
        row = dataset.row(index)
        t1 = time.perf_counter()
        image = decode_base64_image(row["image"])
        t2 = time.perf_counter()
        dataset.image_transform(image)
        t3 = time.perf_counter()
        dataset.prompt(row["style"])
        dataset.codec.encode(" " + dataset.target_text(row["captions"], index))
        t4 = time.perf_counter()
        timings["read"] += t1 - t0
        timings["decode"] += t2 - t1
        timings["transform"] += t3 - t2
        timings["text"] += t4 - t3
        samples.append(dataset[index])
    t0 = time.perf_counter()
    for i in range(0, len(samples), BATCH_SIZE):
        dataset.collater(samples[i : i + BATCH_SIZE])
    timings["collate"] = time.perf_counter() - t0
    return {k: 1000 * v / len(indices) for k, v in timings.items()}


# ----------------------------------------------------------------------------------------------------
# (b) the offset index of a large TSV


def photo_like_jpeg_base64(target_chars: int = 15_000) -> str:
    """A 480x360 smooth random image as url-safe base64 JPEG of about `target_chars` characters."""
    import base64

    rng = np.random.default_rng(0)
    field = rng.normal(size=(45, 60, 3)).cumsum(0).cumsum(1)
    field = (field - field.min()) / (field.max() - field.min()) * 255
    image = Image.fromarray(field.astype(np.uint8)).resize((480, 360), Image.BICUBIC)
    best = None
    for quality in range(50, 96, 5):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        text = base64.urlsafe_b64encode(buffer.getvalue()).decode("ascii")
        if best is None or abs(len(text) - target_chars) < abs(len(best) - target_chars):
            best = text
    return best


def write_big_tsv(path: str, rows: int) -> dict:
    image = photo_like_jpeg_base64()
    styles = ["Happy", "Sweet (Kind)", "Formal", "Gloomy", "Sarcastic"]
    rng = random.Random(0)
    start = time.perf_counter()
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as f:
        chunk = []
        for i in range(rows):
            caption = " ".join(rng.choice(("a", "red", "circle", "on", "gray", "what", "lovely")) for _ in range(rng.randint(5, 15)))
            chunk.append(f"train-{i}\t{rng.getrandbits(128):032x}\t{styles[i % 5]}\t{caption}\t{image}\n")
            if len(chunk) == 1000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
    return {"seconds": time.perf_counter() - start, "bytes": os.path.getsize(path), "image_chars": len(image)}


# Runs in a fresh interpreter; argv: tsv_reader.py path, TSV path, "cold"|"warm", "time"|"tracemalloc".
_INDEX_PROBE = r"""
import importlib.util, json, os, resource, sys, time, tracemalloc
spec = importlib.util.spec_from_file_location("tsv_reader", sys.argv[1])
tsv_reader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tsv_reader)
path, mode, what = sys.argv[2:5]
if mode == "cold":
    for suffix in (".idx.npy", ".idx.json"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
try:  # Linux: reset the peak-RSS mark (VmHWM) so that the peak is that of the call alone
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS")
    peak = lambda: status_kib("VmHWM")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if what == "tracemalloc":
    tracemalloc.start()
start = time.perf_counter()
reader = tsv_reader.IndexedTSV(path, num_columns=5)
seconds = time.perf_counter() - start
result = {"seconds": seconds, "rows": len(reader),
          "maxrss_delta_kib": peak() - before,
          "index_bytes": os.path.getsize(path + ".idx.npy")}
if what == "tracemalloc":
    result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
else:
    import random
    indices = random.Random(0).sample(range(len(reader)), min(2000, len(reader)))
    start = time.perf_counter()
    read = sum(len(reader[i][4]) for i in indices)
    elapsed = time.perf_counter() - start
    result["random_rows_per_s"] = len(indices) / elapsed
    result["random_mb_per_s"] = read / elapsed / 1e6
print(json.dumps(result))
"""


def probe_index(path: str, mode: str, what: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", _INDEX_PROBE, TSV_READER, path, mode, what], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="prepared data directory (train.tsv, styles.txt); default: demo data in a temp dir")
    parser.add_argument("--bpe-dir", help="BPE directory for --data (encoder.json, vocab.bpe, dict.txt)")
    parser.add_argument("--rows", type=int, default=1024, help="rows per pipeline measurement (and demo train size)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--patch-sizes", type=int, nargs="+", default=[96, 480])
    parser.add_argument("--index-rows", type=int, default=200_000, help="rows of the synthetic TSV; 0 skips (b)")
    parser.add_argument("--main-threads", type=int, default=None,
                        help="torch.set_num_threads in the main process (default: torch's choice; workers use 1)")
    parser.add_argument("--tmp-dir", default=None, help="where to write temporary data (default: the system temp dir)")
    args = parser.parse_args()
    if bool(args.data) != bool(args.bpe_dir):
        parser.error("--data and --bpe-dir go together")

    if args.main_threads:
        torch.set_num_threads(args.main_threads)
    command = " ".join([".venv/bin/python", "benchmarks/bench_data_pipeline.py"] + [shlex.quote(a) for a in sys.argv[1:]])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads), python {platform.python_version()}, "
          "load average %.2f %.2f %.2f" % os.getloadavg())
    overall = time.perf_counter()
    lines = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        # (a)
        if args.data:
            datasets = [{"data": args.data, "bpe_dir": args.bpe_dir, "label": os.path.basename(os.path.abspath(args.data))}]
        else:
            start = time.perf_counter()
            datasets = [make_demo(tmp, 96, args.rows), make_demo(tmp, 480, args.rows)]
            print(f"demo data ({args.rows} train rows, 96 px and 480 px images) made in {time.perf_counter() - start:.1f} s")
        lines.append("| data | patch | workers | rows/s | first batch (s) |")
        lines.append("|---|---:|---:|---:|---:|")
        details = []
        for entry in datasets:
            for patch in args.patch_sizes:
                dataset = build_dataset(entry["data"], entry["bpe_dir"], patch)
                parts = breakdown(dataset)
                details.append((entry["label"], patch, parts))
                for workers in args.workers:
                    result = measure_loader(dataset, workers, args.rows)
                    lines.append(f"| {entry['label']} | {patch} | {workers} | {result['rows_per_s']:.0f} | "
                                 f"{result['first_batch_s']:.2f} |")
                    print(lines[-1], flush=True)
        lines.append("")
        lines.append("Per row, one process (ms): read = TSV row, decode = base64 + JPEG, transform = resize + "
                     "normalise, text = prompt + caption BPE, collate = collater share per row.")
        lines.append("")
        lines.append("| data | patch | read | decode | transform | text | collate |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for label, patch, parts in details:
            lines.append(f"| {label} | {patch} | " + " | ".join(f"{parts[k]:.3f}" for k in ("read", "decode", "transform", "text", "collate")) + " |")

        # (b)
        if args.index_rows:
            path = os.path.join(tmp, "big.tsv")
            written = write_big_tsv(path, args.index_rows)
            print(f"synthetic TSV: {args.index_rows} rows, {written['bytes'] / 1e9:.2f} GB "
                  f"(image column {written['image_chars']} chars) written in {written['seconds']:.1f} s", flush=True)
            cold = probe_index(path, "cold", "time")
            cold_tm = probe_index(path, "cold", "tracemalloc")
            warm = probe_index(path, "warm", "time")
            warm_tm = probe_index(path, "warm", "tracemalloc")
            os.remove(path)
            lines.append("")
            lines.append(f"Offset index of a {args.index_rows:,}-row TSV ({written['bytes'] / 1e9:.2f} GB, "
                         f"{written['bytes'] / args.index_rows / 1e3:.1f} KB/row; index file {cold['index_bytes'] / 1e6:.2f} MB):")
            lines.append("")
            lines.append("| open | time (s) | peak RSS above start (MiB) | tracemalloc peak (MiB) |")
            lines.append("|---|---:|---:|---:|")
            for name, timed, traced in (("cold (build + save index)", cold, cold_tm), ("warm (cached index)", warm, warm_tm)):
                lines.append(f"| {name} | {timed['seconds']:.3f} | {timed['maxrss_delta_kib'] / 1024:.1f} | "
                             f"{traced['tracemalloc_peak_bytes'] / 2**20:.1f} |")
            lines.append("")
            lines.append(f"Random reads of the image column after opening: {warm['random_rows_per_s']:,.0f} rows/s "
                         f"({warm['random_mb_per_s']:,.0f} MB/s, file in the page cache).")
    print()
    print("\n".join(lines))
    print()
    print(f"total {time.perf_counter() - overall:.0f} s; load average at the end %.2f %.2f %.2f" % os.getloadavg())
    print(f"command: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
