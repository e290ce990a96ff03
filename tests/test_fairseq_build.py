"""`ofa_demo` built through fairseq-train's own path (options -> config -> task -> model) trains a step."""
import torch
from fairseq import options, optim, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from helpers import common_args


def test_ofa_demo_through_fairseq_training_path_forward_backward_step(demo_data):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(a) for a in [
        demo_data["data"], *common_args(), "--arch", "ofa_demo", "--bpe-dir", demo_data["bpe"],
        "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "4",
    ]])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    assert model.encoder.embed_tokens.weight.shape[1] == 128 and len(model.encoder.layers) == 2
    assert model.decoder.layers[0].self_attn.c_attn is not None  # caption recipe on by default in ofa_demo

    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = dataset.collater([dataset[i] for i in range(4)])
    optimizer = optim.build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    loss, sample_size, logging_output = task.train_step(sample, model, criterion, optimizer, update_num=1)
    assert torch.isfinite(loss) and sample_size == sample["ntokens"] > 0
    optimizer.step()
    changed = [name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())]
    assert "decoder.layers.1.fc2.weight" in changed and "encoder.embed_images.conv1.weight" in changed
