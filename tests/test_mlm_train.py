"""Stage 1 with the style-token masked-LM auxiliary task, through the real fairseq-train."""
import re

from helpers import run_command, train_args


def test_fairseq_train_with_mlm_logs_both_loss_parts(demo_data, tmp_path):
    log = run_command(train_args(demo_data, tmp_path / "ckpt", "--max-update", "4", "--no-save",
                                 "--mlm-ratio", "1", "--mlm-weight", "0.5", "--mlm-image", "none",
                                 "--eval-cider", "--eval-args", '{"beam": 2, "max_len_b": 6}',
                                 "--validate-interval-updates", "4")).stdout
    assert "train: 96 caption and 96 masked-LM examples per epoch" in log
    inner = [line for line in log.splitlines() if "train_inner" in line]
    assert inner and all(re.search(r"loss_caption=[0-9.]+", l) and re.search(r"loss_mlm=[0-9.]+", l) for l in inner)
    assert re.search(r"sample_size_mlm=[0-9.]+", inner[-1])
    valid = [line for line in log.splitlines() if "valid on 'valid' subset" in line]
    assert valid and "loss_mlm" not in valid[-1] and "cider" in valid[-1]  # validation stays pure captioning
