"""The report of a check run as parts (benchmarks/check_parts.sh): one JSON file, rewritten after each part.

    python3 benchmarks/check_report.py WORK REPORT [--quiet]

Reads WORK/parts.tsv (name, kind, exit status, seconds, limit, command per line) and each part's log
WORK/logs/NAME.log, and writes REPORT: per part its status, time, limit, command, the figures read
from its log and the end of the log. Status: "pass" (exit 0 and the log's checks hold), "fail", "timeout"
(stopped at its limit: exit 124, or 137 after the KILL), or "skipped" (the check's deadline had passed).
What is read, by kind:
- versions: the JSON object that benchmarks/device_versions.py prints;
- train (fairseq-train's simple log, --log-interval 1): the precision fairseq ran with, updates, first
  and last loss, the loss scale (fp16/--amp), peak GPU memory (from fairseq's gb_free), updates/s and
  the last validation line; checks: every logged loss finite, at least one update, a loss scale
  logged under fp16/--amp;
- generate (run_scripts/evaluate.sh's output followed by fairseq-generate's log): sentences/s, the
  number of hypotheses (check: at least one), the score line;
- bench (benchmarks/gpu_check.py): its JSON rows (check: at least one, none with an error);
- plain: nothing beyond the exit status.
Without --quiet it prints a summary of the report, and exits 1 unless every part passed.
"""
import argparse
import json
import math
import re
from pathlib import Path

LOG_TAIL_LINES = 40
TIMEOUT_STATUSES = ("124", "137")


def fairseq_fields(line: str) -> dict:
    """`key=value, ...` (train_inner) or `| key value |` (train / valid summaries) of a fairseq log line."""
    fields = {}
    if "train_inner |" in line:
        for item in line.split("train_inner |", 1)[1].split(","):
            if "=" in item:
                key, value = item.rsplit("=", 1)
                fields[key.strip().split()[-1]] = value.strip()
    else:
        for item in line.split("|"):
            parts = item.strip().rsplit(" ", 1)
            if len(parts) == 2:
                fields[parts[0]] = parts[1]
    return fields


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_train(log: str, gpu_total_gib):
    figures, problems = {}, []
    flags = {name: re.search(rf"'{name}': (True|False)", log) for name in ("fp16", "amp")}
    figures["precision"] = next((n for n, m in flags.items() if m and m.group(1) == "True"), "fp32")
    updates = [fairseq_fields(line) for line in log.splitlines() if "| train_inner |" in line]
    losses = [number(u.get("loss")) for u in updates]
    figures["updates_logged"] = len(updates)
    if not updates:
        problems.append("no update logged (train_inner lines)")
    else:
        figures["loss_first"], figures["loss_last"] = losses[0], losses[-1]
    bad = [i + 1 for i, loss in enumerate(losses) if loss is None or not math.isfinite(loss)]
    if bad:
        problems.append(f"loss not finite at logged updates {bad[:10]}")
    scales = [number(u["loss_scale"]) for u in updates if "loss_scale" in u]
    if scales:
        figures["loss_scale"] = {"first": scales[0], "min": min(scales), "last": scales[-1]}
    elif figures["precision"] != "fp32" and updates:
        problems.append(f"no loss scale logged under {figures['precision']}")
    free = [number(u["gb_free"]) for u in updates if "gb_free" in u]
    if free and gpu_total_gib:
        figures["peak_allocated_gib"] = round(gpu_total_gib - min(free), 2)
    summary = [fairseq_fields(line) for line in log.splitlines() if "| train | epoch" in line]
    if summary:
        figures["updates_per_s"] = number(summary[-1].get("ups"))
        figures["num_updates"] = number(summary[-1].get("num_updates"))
    valid = [line for line in log.splitlines() if "valid on 'valid' subset" in line]
    if valid:
        figures["last_validation"] = {k: v for k, v in fairseq_fields(valid[-1]).items() if k in ("loss", "cider", "score")}
    done = re.findall(r"done training in ([0-9.]+) seconds", log)
    if done:
        figures["training_seconds"] = float(done[-1])
    return figures, problems


def read_generate(log: str):
    figures, problems = {}, []
    translated = re.findall(r"Translated ([0-9,]+) sentences .* in ([0-9.]+)s \(([0-9.]+) sentences/s", log)
    if translated:
        sentences, seconds, rate = translated[-1]
        figures.update(sentences=int(sentences.replace(",", "")), seconds=float(seconds), sentences_per_s=float(rate))
    hypotheses = re.findall(r"^hypotheses: ([0-9]+)$", log, flags=re.M)
    figures["hypotheses"] = int(hypotheses[-1]) if hypotheses else 0
    if not figures["hypotheses"]:
        problems.append("no hypothesis (H- line) in the generate output")
    score = [line for line in log.splitlines() if line.startswith("Generate ")]
    if score:
        figures["score_line"] = score[-1]
    return figures, problems


def json_objects(log: str):
    for line in log.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_bench(log: str):
    rows = [row for row in json_objects(log) if "arch" in row]
    problems = [] if rows else ["no benchmark row"]
    problems += [f"{r['arch']} {r['step']} {r['precision']}: {r['error']}" for r in rows if "error" in r]
    return {"rows": rows}, problems


def read_versions(log: str):
    found = list(json_objects(log))
    if not found:
        return {}, ["no versions JSON in the log"]
    versions = found[-1]
    return versions, list(versions.get("problems", []))


def part_report(fields, work: Path, gpu_total_gib):
    name, kind, rc, seconds, limit, command = fields
    log_path = work / "logs" / f"{name}.log"
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    if kind == "train":
        figures, problems = read_train(log, gpu_total_gib)
    elif kind == "generate":
        figures, problems = read_generate(log)
    elif kind == "bench":
        figures, problems = read_bench(log)
    elif kind == "versions":
        figures, problems = read_versions(log)
    elif kind == "plain":
        figures, problems = {}, []
    else:
        raise ValueError(f"{work / 'parts.tsv'}: part {name} has unknown kind {kind!r} (versions, train, generate, bench, plain)")
    if rc == "skipped":
        status = "skipped"
    elif rc in TIMEOUT_STATUSES:
        status = "timeout"
    elif rc == "0" and not problems:
        status = "pass"
    else:
        status = "fail"
    return {
        "name": name, "kind": kind, "status": status, "exit_status": rc, "seconds": int(seconds),
        "limit_seconds": int(limit), "command": command, "problems": problems, "figures": figures,
        "log_tail": log.splitlines()[-LOG_TAIL_LINES:],
    }


def build_report(work: Path) -> dict:
    parts, gpu_total_gib = [], None
    for line in (work / "parts.tsv").read_text().splitlines():
        fields = line.split("\t", 5)
        if len(fields) != 6:
            raise ValueError(f"{work / 'parts.tsv'}: expected 6 tab-separated fields, got {line!r}")
        part = part_report(fields, work, gpu_total_gib)
        if part["kind"] == "versions" and gpu_total_gib is None:
            gpu_total_gib = part["figures"].get("gpu_total_gib")
        parts.append(part)
    counts = {status: sum(p["status"] == status for p in parts) for status in ("pass", "fail", "timeout", "skipped")}
    return {"parts": parts, "counts": counts}


def summary(report: dict) -> str:
    lines = [f"{'part':16} {'status':8} {'s':>5} {'limit':>5}  figures / problems"]
    for part in report["parts"]:
        shown = {k: v for k, v in part["figures"].items() if k not in ("rows", "problems")}
        text = "; ".join(part["problems"]) or json.dumps(shown)[:300]
        lines.append(f"{part['name']:16} {part['status']:8} {part['seconds']:5d} {part['limit_seconds']:5d}  {text}")
        for row in part["figures"].get("rows", []):
            lines.append("    " + json.dumps(row))
    lines.append(", ".join(f"{n} {status}" for status, n in report["counts"].items()))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="the check's work folder (parts.tsv, logs/)")
    parser.add_argument("report", type=Path, help="the JSON report to write")
    parser.add_argument("--quiet", action="store_true", help="write the report only: no summary, exit 0")
    args = parser.parse_args()
    report = build_report(args.work)
    tmp = args.report.with_name(args.report.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(args.report)
    if args.quiet:
        return 0
    print(summary(report))
    return 0 if report["counts"]["pass"] == len(report["parts"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
