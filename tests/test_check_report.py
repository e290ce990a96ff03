"""benchmarks/check_report.py, the report of the GPU check: what makes a part fail, time out or pass.

The passing logs come from real runs (tests/device_install_check.sh runs the whole chain in CI); here
each status is shown on logs in fairseq's own line format, with one thing wrong at a time.
"""
import json
import subprocess
import sys

from helpers import REPO_ROOT

CONFIG = "{'common': {'fp16': True, 'amp': False}}"


def update_line(update, loss, loss_scale=128, gb_free=130.5):
    return (f"2026-01-01 00:00:0{update} | INFO | train_inner | epoch 001:      {update} / 32 loss={loss}, "
            f"nll_loss={loss}, ppl=10394.6, num_updates={update}, lr=1e-05, gnorm=3.909, "
            f"loss_scale={loss_scale}, train_wall=3, gb_free={gb_free}, wall=4")


def run_report(tmp_path, parts):
    """parts: (name, kind, exit status, log text) -> (exit status of check_report.py, report dict)."""
    (tmp_path / "logs").mkdir()
    rows = []
    for name, kind, status, log in parts:
        (tmp_path / "logs" / f"{name}.log").write_text(log)
        rows.append(f"{name}\t{kind}\t{status}\t7\t60\tcommand of {name}")
    (tmp_path / "parts.tsv").write_text("\n".join(rows) + "\n")
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "check_report.py"), str(tmp_path),
                             str(tmp_path / "report.json")], capture_output=True, text=True)
    return result.returncode, json.loads((tmp_path / "report.json").read_text())


def test_statuses_and_train_figures(tmp_path):
    versions = json.dumps({"gpu": "NVIDIA H200", "gpu_total_gib": 139.8, "problems": []})
    good = "\n".join([CONFIG, update_line(1, 13.3, 128, 130.5), update_line(2, 13.1, 64, 129.8)])
    nan = "\n".join([CONFIG, update_line(1, 13.3), update_line(2, "nan")])
    no_scale = "\n".join([CONFIG, update_line(1, 13.3).replace("loss_scale=128, ", "")])
    code, report = run_report(tmp_path, [
        ("versions", "versions", "0", versions),
        ("train_fp16", "train", "0", good),
        ("nan_loss", "train", "0", nan),
        ("no_scale", "train", "0", no_scale),
        ("slow", "train", "124", good),
        ("late", "plain", "skipped", ""),
    ])
    parts = {p["name"]: p for p in report["parts"]}
    assert code == 1  # not every part passed
    assert parts["train_fp16"]["status"] == "pass"
    figures = parts["train_fp16"]["figures"]
    assert figures["precision"] == "fp16"
    assert figures["loss_scale"] == {"first": 128.0, "min": 64.0, "last": 64.0}
    assert figures["peak_allocated_gib"] == 10.0  # 139.8 GiB in all - 129.8 GiB free at the peak
    assert parts["nan_loss"]["status"] == "fail"
    assert parts["nan_loss"]["problems"] == ["loss not finite at logged updates [2]"]
    assert parts["no_scale"]["problems"] == ["no loss scale logged under fp16"]
    assert parts["slow"]["status"] == "timeout"
    assert parts["late"]["status"] == "skipped"
    assert report["counts"] == {"pass": 2, "fail": 2, "timeout": 1, "skipped": 1}


def test_bench_rows_and_generate(tmp_path):
    row = {"arch": "ofa_base", "step": "ce", "precision": "bf16", "batch": 16, "step_s": 0.1}
    oom = {"arch": "ofa_large", "step": "ce", "precision": "fp32", "batch": 16, "error": "OutOfMemoryError()"}
    generated = ("Translated 16 sentences (272 tokens) in 2.5s (6.51 sentences/s, 110.61 tokens/s)\n"
                 "hypotheses: 16\n")
    code, report = run_report(tmp_path, [
        ("bench", "bench", "0", json.dumps({"device": "NVIDIA H200"}) + "\n" + json.dumps(row) + "\n"),
        ("bench_oom", "bench", "1", json.dumps(row) + "\n" + json.dumps(oom) + "\n"),
        ("generate", "generate", "0", generated),
        ("generate_empty", "generate", "0", generated.replace("hypotheses: 16", "hypotheses: 0")),
    ])
    parts = {p["name"]: p for p in report["parts"]}
    assert parts["bench"]["status"] == "pass" and parts["bench"]["figures"]["rows"] == [row]
    assert parts["bench_oom"]["status"] == "fail"
    assert parts["bench_oom"]["problems"] == ["ofa_large ce fp32: OutOfMemoryError()"]
    assert parts["generate"]["status"] == "pass"
    assert parts["generate"]["figures"]["sentences_per_s"] == 6.51
    assert parts["generate_empty"]["problems"] == ["no hypothesis (H- line) in the generate output"]
    assert code == 1
