"""Data-parallel training with fairseq's own distributed mode: two CPU processes over gloo."""
import socket
import subprocess

from helpers import REPO_ROOT, train_args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_batches_are_sharded_not_duplicated_across_ranks(demo_data):
    from fairseq import tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq import options

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(demo_data["data"]), "--user-dir", str(REPO_ROOT / "ofa_sic"), "--task", "style_caption",
        "--arch", "ofa_demo", "--bpe-dir", str(demo_data["bpe"]), "--batch-size", "8", "--cpu",
    ])
    task = tasks.setup_task(convert_namespace_to_omegaconf(args).task)
    task.load_dataset("train")
    dataset = task.dataset("train")
    seen = []
    for rank in range(2):
        iterator = task.get_batch_iterator(dataset, max_sentences=8, seed=1, num_shards=2, shard_id=rank, epoch=1,
                                           disable_iterator_cache=True)
        epoch = iterator.next_epoch_itr(shuffle=True)
        ids = [int(i) for batch in epoch for i in (batch["id"] if batch else [])]
        seen.append(ids)
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(len(dataset)))


def test_two_cpu_processes_train_together(demo_data, tmp_path):
    port = free_port()
    processes = []
    for rank in range(2):
        args = train_args(
            demo_data, tmp_path / "ckpt", "--max-epoch", "1", "--disable-validation", "--no-save",
            "--ddp-backend", "legacy_ddp", "--distributed-backend", "gloo", "--distributed-world-size", "2",
            "--distributed-no-spawn", "--distributed-rank", str(rank), "--device-id", "0",
            "--distributed-init-method", f"tcp://127.0.0.1:{port}",
        )
        processes.append(subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for rank, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"rank {rank} failed:\n{output[-5000:]}"
    assert "distributed init (rank 0)" in outputs[0] and "distributed init (rank 1)" in outputs[1]
    assert "training on 2 devices" in outputs[0]
    # 96 rows in batches of 16 over 2 ranks (each rank's task checked its iterator against this; rank 1 logs warnings only)
    assert "ofa_polynomial_decay: 3 training batches per rank and epoch, 3 updates in 1 epoch(s)" in outputs[0]
    assert "num_updates 3" in outputs[0]
