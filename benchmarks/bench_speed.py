"""Speed and memory of the training and decoding steps, new code vs a baseline commit, side by side.

    python benchmarks/bench_speed.py                       # ofa_tiny and ofa_base at 256 px, batch 2
    python benchmarks/bench_speed.py --archs ofa_tiny --repeats 2

How the two versions run in one benchmark: the baseline (default: 99c73d5, the last commit before
the fast path) is exported with `git archive` into a temporary folder, and two worker processes are
started from this script, one importing `ofa_sic` (and `criterions`) from that folder, the other
from this checkout; both register the same fairseq names, so they cannot share one interpreter.
The parent builds the same model (same arch, deterministic weights from parameter names) and the
same inputs in both, then asks them in turn, old and new interleaved with alternating order, to run
one step at a time; contention on a shared machine thus hits both sides alike. Per step it prints
the median seconds, the peak memory (bytes allocated during the step and alive at once, from the
profiler's allocation records; parameters and inputs, allocated before, are not counted) and
new/old ratios, and checks that the results agree:
generated tokens identical, losses within 1e-5 and gradients within 1e-4 relative (the SCST loss
relative to the size of the terms it sums, sum |advantage| * |log p|, since the leave-one-out
advantages sum to zero).

Threads: on a machine shared with other jobs, pass `--threads 1`. With 2 threads each parallel
operator waits until both threads have run, and a thread that the other jobs displace waits for
a time slice: benchmarks/bench_thread_stall.py measured a [1, 10, 768] LayerNorm at 7.9 ms with 2
threads beside a training run, against 6 microseconds with 1, so 2-thread times then count
operators (beam search and the backward are thousands of small ones) rather than arithmetic.

Steps (fp32, on the CPU):
- ce: forward + backward of a teacher-forced batch (trainable BatchNorm, no dropout);
- scst: the real `scst_reward_criterion` forward (beam 5 hypotheses, max_len_b 16, CIDEr-D reward,
  leave-one-out baseline, teacher-forced pass) + backward, with stage 2's frozen BatchNorm;
- beam: beam search, beam 5, max_len_b 16, no-repeat 3; reported as captions/s.
The model uses OFA's 59,457-symbol dictionary; the SCST references mix each image's own
beam-search hypotheses with random words so that rewards and gradients are not zero.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REPLY = "@@bench "
SELECTED_GRADS = (
    "encoder.token_rel_pos_table_list.0.weight", "encoder.image_rel_pos_table_list.0.weight",
    "decoder.token_rel_pos_table_list.0.weight", "encoder.embed_images.conv1.weight",
    "encoder.embed_images.layer3.0.conv2.weight", "encoder.pos_q_linear.weight",
    "encoder.layers.0.self_attn.q_proj.weight", "decoder.layers.0.encoder_attn.v_proj.weight",
    "decoder.cross_pos_k_linear.weight", "decoder.layers.0.fc1.weight",
)


# ---- worker side ---------------------------------------------------------------------------------

class PeakMemory:
    """Peak bytes of CPU memory allocated inside the `with` block and alive at once.

    Counted from the profiler's allocation and free records, so tensors that existed before the
    block (the parameters, the inputs) are not counted, and nothing here holds a tensor or a
    storage: autograd behaves as in a plain run (a counter that keeps references can stop autograd
    from adding gradients in place, and so report allocations a plain run does not make).
    """

    def __init__(self):
        from torch.profiler import ProfilerActivity, profile

        self.profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self.peak = 0

    def __enter__(self):
        self.profiler.__enter__()
        return self

    def __exit__(self, *exc):
        self.profiler.__exit__(*exc)
        records = [e for e in self.profiler.profiler.kineto_results.events() if e.name() == "[memory]"]
        live = 0
        for record in sorted(records, key=lambda e: e.start_ns()):
            live += record.nbytes()  # negative for a free
            self.peak = max(self.peak, live)


def ofa_dictionary():
    """OFA's 59,457-symbol dictionary layout (GPT-2 BPE ids, <mask>, 8192 codes, 1000 bins)."""
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for symbols in (map(str, range(50260)), ["<mask>"], (f"<code_{i}>" for i in range(8192)),
                    (f"<bin_{i}>" for i in range(1000))):
        for symbol in symbols:
            dictionary.add_symbol(symbol)
    return dictionary


def deterministic_weights(model):
    """Weights that depend only on parameter names and shapes (so both versions get the same ones)."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            noise = torch.randn(param.shape, generator=generator) * 0.02
            is_scale = param.dim() == 1 and not name.endswith("bias")
            param.copy_(noise + 1.0 if is_scale else noise)


class BenchTask:
    """What the SCST criterion reads from its task: options (also parsed, as `scst_generation`),
    dictionary, generator, caption cleaning, the constraint of the teacher-forced log-probs (none: the
    whole vocabulary, the baseline's default) and decoding (ids -> words "w<id>")."""

    def __init__(self, dictionary, generator, scst_args):
        from ofa_sic.data.text import CaptionCleaner

        self.cfg = argparse.Namespace(scst=True, scst_args=json.dumps(scst_args))
        self.scst_generation = dict(scst_args)
        self.target_dictionary = self.source_dictionary = dictionary
        self.scst_generator = generator
        self.cleaner = CaptionCleaner()
        self.constraint_range = None
        self.separator_id = dictionary.index("<mask>")

    def decode(self, tokens) -> str:
        from ofa_sic.data.text import REFERENCE_SEPARATOR

        words = [REFERENCE_SEPARATOR if t == self.separator_id else f"w{t}" for t in tokens.tolist() if t > 3]
        return " ".join(words)


class Worker:
    def __init__(self, tree: str):
        sys.path.insert(0, tree)
        import criterions
        import ofa_sic

        for module in (ofa_sic, criterions):
            if not Path(module.__file__).resolve().is_relative_to(Path(tree).resolve()):
                raise RuntimeError(f"{module.__name__} was imported from {module.__file__}, not from {tree}")
        self.dictionary = ofa_dictionary()

    def setup(self, arch, step, patch, batch, beam, max_len_b, seed=0):
        import torch
        from fairseq.models import ARCH_CONFIG_REGISTRY

        from criterions.scst_loss import ScstRewardCriterion
        from ofa_sic.generation.generator import OFASequenceGenerator
        from ofa_sic.metrics.document_frequency import build_document_frequency
        from ofa_sic.models.ofa import OFAModel

        torch.manual_seed(seed)
        args = argparse.Namespace(
            arch=arch, scale_attn=True, scale_fc=True, scale_heads=True, disable_entangle=True,
            freeze_resnet=step != "ce", dropout=0.0, attention_dropout=0.0,
        )
        ARCH_CONFIG_REGISTRY[arch](args)
        task = argparse.Namespace(source_dictionary=self.dictionary, target_dictionary=self.dictionary)
        model = OFAModel.build_model(args, task)
        deterministic_weights(model)
        self.model = model
        gen = torch.Generator().manual_seed(seed)
        src = torch.randint(4, 50260, (batch, 14), generator=gen)
        src[:, 0], src[:, -1] = 0, 2
        src[1:, -3:] = 1  # shorter prompts are right-padded
        src[1:, -4] = 2
        self.net_input = {
            "src_tokens": src,
            "src_lengths": src.ne(1).sum(dim=1),
            "patch_images": torch.randn(batch, 3, patch, patch, generator=gen),
            "patch_masks": torch.ones(batch, dtype=torch.bool),
        }
        prev = torch.randint(4, 50260, (batch, 17), generator=gen)
        prev[:, 0] = 0
        self.prev_output_tokens, self.target = prev, prev.roll(-1, dims=1)
        scst_args = {"beam": beam, "max_len_b": max_len_b, "no_repeat_ngram_size": 3}
        self.generator = OFASequenceGenerator(
            [model], self.dictionary, beam_size=beam, max_len_b=max_len_b, no_repeat_ngram_size=3,
            constraint_range=f"4,{self.dictionary.index('<mask>')}",
        )
        if step == "scst":
            bench_task = BenchTask(self.dictionary, self.generator, scst_args)
            model.eval()
            with torch.no_grad():
                beams = self.generator.generate([model], {"net_input": self.net_input})
            references = []
            for hypotheses in beams:  # two of the image's own hypotheses and three random captions
                own = [h["tokens"][:-1] for h in hypotheses[:2]]
                references.append(own + [torch.randint(4, 400, (10,), generator=gen) for _ in range(3)])
            separator = torch.tensor([bench_task.separator_id])
            rows = [torch.cat([t for ref in refs for t in (ref, separator)][:-1]) for refs in references]
            target = torch.ones(batch, max(len(r) for r in rows), dtype=torch.long)
            for i, row in enumerate(rows):
                target[i, : len(row)] = row
            texts = [[bench_task.decode(ref) for ref in refs] for refs in references]
            # The criterion reads each image's reference texts from the sample (as the task's collater gives them).
            # ... and each image's requested style (read only by the style reward, which is off here).
            self.scst_sample = {"net_input": self.net_input, "target": target, "references": texts,
                                "styles": ["Sweet"] * batch}
            self.criterion = ScstRewardCriterion(bench_task, build_document_frequency(texts), scst_baseline="loo")
            self.capture_scst_terms()
        return {"parameters": sum(p.numel() for p in model.parameters())}

    def capture_scst_terms(self):
        """Keep the rewards and token log-probs of the criterion's last call (for the loss's scale)."""
        criterion, captured = self.criterion, {}
        cider_scores, teacher_forced = criterion.cider_scores, criterion.teacher_forced_lprobs

        def keep_scores(*args, **kwargs):
            captured["scores"] = cider_scores(*args, **kwargs)
            return captured["scores"]

        def keep_lprobs(*args, **kwargs):
            captured["lprobs"], captured["target"] = teacher_forced(*args, **kwargs)
            return captured["lprobs"], captured["target"]

        criterion.cider_scores, criterion.teacher_forced_lprobs = keep_scores, keep_lprobs
        self.scst_terms = captured

    def scst_loss_scale(self) -> float:
        """sum over hypotheses of |advantage| * sum_t |log p|: the size of the terms the loss adds up
        (the leave-one-out advantages sum to zero, so the loss itself is a cancelling sum)."""
        from criterions.scst_loss import baseline_scores

        terms = self.scst_terms
        scores = terms["scores"]
        advantages = scores - baseline_scores(scores, self.net_input["src_tokens"].size(0), "loo")
        per_row = (terms["lprobs"].detach().abs() * terms["target"].ne(1)).sum(dim=1)
        return float((per_row.double() * abs(advantages)).sum())

    def run_step(self, step):
        """One step; returns what it computed (loss, gradients, tokens) for the equality check."""
        import torch

        model = self.model
        if step == "beam":
            model.eval()
            with torch.no_grad():
                output = self.generator.generate([model], {"net_input": self.net_input})
            return {"tokens": [[h["tokens"].tolist() for h in hyps] for hyps in output],
                    "scores": [[h["score"].item() for h in hyps] for hyps in output]}
        model.zero_grad(set_to_none=True)
        if step == "ce":
            model.train()
            logits, _ = model(prev_output_tokens=self.prev_output_tokens, **self.net_input)
            lprobs = torch.log_softmax(logits.float(), dim=-1)
            loss = -lprobs.gather(-1, self.target.unsqueeze(-1)).sum()
            result = {}
        else:
            model.train()  # as fairseq's train step: the criterion trains in the mode it is given
            loss, _, log = self.criterion(model, self.scst_sample)
            result = {"score": log["score"], "loss_scale": self.scst_loss_scale()}
        loss.backward()
        result["loss"] = loss.item()
        return result

    def gradients(self, names):
        return {name: param.grad.clone() for name, param in self.model.named_parameters()
                if param.grad is not None and (names is None or name in names)}

    def handle(self, command):
        import torch

        kind = command["cmd"]
        if kind == "setup":
            return self.setup(**command["options"])
        if kind == "time":
            start = time.perf_counter()
            self.run_step(command["step"])
            return {"seconds": time.perf_counter() - start}
        if kind == "memory":
            with PeakMemory() as tracker:
                self.run_step(command["step"])
            return {"peak_bytes": tracker.peak}
        if kind == "check":
            result = self.run_step(command["step"])
            if command["step"] != "beam":
                torch.save(self.gradients(command.get("grads")), command["grads_file"])
            return result
        raise ValueError(f"unknown command {kind!r}")


def worker_main(tree: str):
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    worker = Worker(tree)
    print(REPLY + json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        reply = worker.handle(json.loads(line))
        print(REPLY + json.dumps(reply), flush=True)


# ---- parent side ---------------------------------------------------------------------------------

class WorkerProcess:
    def __init__(self, label: str, tree: Path, threads: int):
        env = dict(os.environ, PYTHONWARNINGS="ignore", BENCH_THREADS=str(threads))
        self.label = label
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree),
        )
        self.read()

    def read(self):
        for line in self.process.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
        raise RuntimeError(f"the {self.label} worker exited ({self.process.wait()})")

    def ask(self, **command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def export_commit(commit: str, folder: Path) -> None:
    """Write the files of `commit` into `folder` (git archive: the checkout and its worktrees are not touched)."""
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)


def relative_error(new, old) -> float:
    scale = old.abs().max().item()
    return (new - old).abs().max().item() / (scale if scale > 0 else 1.0)


def compare(step, old, new, old_grads, new_grads):
    """Agreement of the two versions' results: a short text and whether it is within tolerance."""
    if step == "beam":
        same = old["tokens"] == new["tokens"]
        return ("tokens identical" if same else "TOKENS DIFFER"), same
    loss_error = abs(new["loss"] - old["loss"]) / max(abs(old["loss"]), old.get("loss_scale", 0.0), 1e-12)
    # A key bias's gradient is zero in exact arithmetic; measure noise against the largest gradient.
    floor = 1e-3 * max(g.abs().max().item() for g in old_grads.values())
    grad_error = max((new_grads[n] - g).abs().max().item() / max(g.abs().max().item(), floor)
                     for n, g in old_grads.items())
    text = f"loss rel err {loss_error:.1e}, grad rel err {grad_error:.1e} ({len(old_grads)} tensors)"
    if step == "scst":
        text += f", rewards {'equal' if abs(new['score'] - old['score']) < 1e-9 else 'DIFFER'}"
    ok = loss_error < 1e-5 and grad_error < 1e-4 and set(old_grads) == set(new_grads)
    return text, ok


def add_step_options(parser) -> None:
    """The options that shape a step (images, beam, length) and its torch threads."""
    parser.add_argument("--patch-image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--beam", type=int, default=5, help="beam size, also SCST's K (default: 5)")
    parser.add_argument("--max-len-b", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process (default: 2; 1 on a shared machine)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", default="99c73d5", help="commit to compare with (default: 99c73d5)")
    parser.add_argument("--archs", nargs="+", default=["ofa_tiny", "ofa_base"])
    parser.add_argument("--steps", nargs="+", default=["ce", "scst", "beam"], choices=["ce", "scst", "beam"])
    add_step_options(parser)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per version (default: 3)")
    args = parser.parse_args()
    if args.worker:
        return worker_main(args.worker)

    import torch

    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        tmp = Path(tmp)
        baseline = tmp / "baseline"
        baseline.mkdir()
        export_commit(args.baseline, baseline)
        workers = {"old": WorkerProcess("old", baseline, args.threads), "new": WorkerProcess("new", REPO_ROOT, args.threads)}
        print(f"baseline {args.baseline} vs this checkout; {args.batch_size} images at {args.patch_image_size} px, "
              f"beam/K {args.beam}, max_len_b {args.max_len_b}, {args.threads} threads each, median of {args.repeats}")
        header = f"{'arch':9} {'step':5} {'old s':>8} {'new s':>8} {'speed-up':>8} {'old MB':>8} {'new MB':>8} {'mem':>6}  check"
        print(header)
        all_ok = True
        for arch in args.archs:
            for step in args.steps:
                options = dict(arch=arch, step=step, patch=args.patch_image_size, batch=args.batch_size,
                               beam=args.beam, max_len_b=args.max_len_b)
                for worker in workers.values():
                    worker.ask(cmd="setup", options=options)
                names = None if arch == "ofa_tiny" else list(SELECTED_GRADS)
                checks, grads = {}, {}
                for label, worker in workers.items():  # also the warm-up step
                    path = str(tmp / f"{label}.pt")
                    checks[label] = worker.ask(cmd="check", step=step, grads=names, grads_file=path)
                    grads[label] = torch.load(path, weights_only=True) if step != "beam" else None
                text, ok = compare(step, checks["old"], checks["new"], grads["old"], grads["new"])
                all_ok &= ok
                memory = {label: worker.ask(cmd="memory", step=step)["peak_bytes"] / 2 ** 20 for label, worker in workers.items()}
                seconds = {"old": [], "new": []}
                for repeat in range(args.repeats):
                    order = ["old", "new"] if repeat % 2 == 0 else ["new", "old"]
                    for label in order:
                        seconds[label].append(workers[label].ask(cmd="time", step=step)["seconds"])
                old_s, new_s = statistics.median(seconds["old"]), statistics.median(seconds["new"])
                line = (f"{arch:9} {step:5} {old_s:8.3f} {new_s:8.3f} {old_s / new_s:7.2f}x "
                        f"{memory['old']:8.1f} {memory['new']:8.1f} {memory['new'] / memory['old']:5.2f}x  {text}")
                if step == "beam":
                    line += f"; captions/s {args.batch_size / old_s:.2f} -> {args.batch_size / new_s:.2f}"
                print(line, flush=True)
        for worker in workers.values():
            worker.close()
    if not all_ok:
        print("RESULTS DIFFER beyond tolerance")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
