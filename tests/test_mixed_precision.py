"""--amp really runs the forward pass in reduced precision (bf16 autocast on CPU) for the CE and SCST
criteria and validation, while log-probs, losses and gradients stay fp32; fairseq-train runs with it."""
import torch
from fairseq import optim, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.optim.amp_optimizer import AMPOptimizer

from helpers import common_args, fairseq_command, run_command


def build(demo_data, *extra):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(a) for a in [
        demo_data["data"], *common_args(), "--arch", "ofa_demo", "--bpe-dir", demo_data["bpe"],
        "--optimizer", "adam", "--lr", "1e-4", *extra,
    ]])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = AMPOptimizer.build_optimizer(cfg, params) if cfg.common.amp else optim.build_optimizer(cfg.optimizer, params)
    task.load_dataset("train")
    dataset = task.dataset("train")
    return task, model, criterion, optimizer, dataset.collater([dataset[i] for i in range(3)])


def record_dtypes(model):
    """Output dtypes of a ResNet convolution, an encoder attention and a decoder FFN, per call."""
    seen = []
    modules = [model.encoder.embed_images.conv1, model.encoder.layers[0].self_attn.q_proj, model.decoder.layers[-1].fc1]
    handles = [m.register_forward_hook(lambda m, i, out: seen.append(out.dtype)) for m in modules]
    return seen, handles


def check_amp_train_and_valid_step(task, model, criterion, optimizer, sample):
    assert sample["net_input"]["patch_images"].dtype == torch.uint8
    seen, handles = record_dtypes(model)
    loss, _, _ = task.train_step(sample, model, criterion, optimizer, update_num=0)
    assert seen and set(seen) == {torch.bfloat16}, seen
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    seen.clear()
    valid_loss, _, _ = task.valid_step(sample, model, criterion)
    assert set(seen) == {torch.bfloat16} and valid_loss.dtype == torch.float32
    for handle in handles:
        handle.remove()


def test_amp_cross_entropy_runs_in_bf16_on_cpu(demo_data):
    parts = build(demo_data, "--amp", "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1")
    assert isinstance(parts[3], AMPOptimizer)
    check_amp_train_and_valid_step(*parts)


def test_amp_scst_runs_in_bf16_with_fp32_log_probs(demo_data):
    task, model, criterion, optimizer, sample = build(
        demo_data, "--amp", "--criterion", "scst_reward_criterion", "--scst", "--scst-args", '{"beam": 2, "max_len_b": 5}',
        "--scst-cider-cached-tokens", str(demo_data["data"] / "train-words.p"), "--freeze-resnet",
    )
    lprob_dtypes = []
    original = criterion.teacher_forced_lprobs

    def spy(*args, **kwargs):
        token_lprobs, target = original(*args, **kwargs)
        lprob_dtypes.append(token_lprobs.dtype)
        return token_lprobs, target

    criterion.teacher_forced_lprobs = spy
    check_amp_train_and_valid_step(task, model, criterion, optimizer, sample)
    assert lprob_dtypes and set(lprob_dtypes) == {torch.float32}


def test_without_amp_the_forward_pass_is_fp32(demo_data):
    task, model, criterion, optimizer, sample = build(
        demo_data, "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1")
    assert not isinstance(optimizer, AMPOptimizer)
    seen, _ = record_dtypes(model)
    task.train_step(sample, model, criterion, optimizer, update_num=0)
    assert seen and set(seen) == {torch.float32}


def test_fairseq_train_scst_with_amp(demo_data):
    result = run_command([
        fairseq_command("fairseq-train"), demo_data["data"], *common_args(), "--bpe-dir", demo_data["bpe"],
        "--arch", "ofa_demo", "--amp",
        "--criterion", "scst_reward_criterion", "--scst", "--scst-args", '{"beam": 3, "max_len_b": 6}',
        "--scst-cider-cached-tokens", demo_data["data"] / "train-words.p", "--freeze-resnet",
        "--optimizer", "adam", "--lr", "1e-5", "--batch-size", "4", "--max-update", "2", "--no-save",
        "--disable-validation", "--log-format", "simple", "--log-interval", "1", "--num-workers", "0",
    ])
    log = result.stdout + result.stderr
    assert "num_updates 2" in log and "SCST: each batch is encoded once" in log
