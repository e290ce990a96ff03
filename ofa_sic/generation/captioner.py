"""Caption with a trained style_caption checkpoint outside fairseq-generate (`ofa-sic evaluate`, `ofa-sic caption`).

`Captioner(path, ...)` loads the checkpoint with fairseq (the task settings stored in it, with the data
and BPE folders overridable), builds the task's generator with the given options and captions either
dataset batches (`caption_batch`) or PIL images in given styles (`caption_images`). Captions are the
decoded top beam, the same text as fairseq-generate's `D-` lines.
"""
import os
import pickle
from typing import List, Optional, Sequence

import torch

from ofa_sic.generation.options import GenerationOptions

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_checkpoint_file(path: str) -> None:
    """FileNotFoundError / ValueError naming `path` when it is missing, empty, truncated or not a torch file."""
    from ofa_sic.crash_safe_training import checkpoint_problem

    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found")
    problem = checkpoint_problem(path)
    if problem:
        raise ValueError(f"checkpoint {path} {problem}")


class Captioner:
    """A style_caption model, its task and a sequence generator, ready to caption."""

    def __init__(self, path: str, options: GenerationOptions, data: Optional[str] = None,
                 bpe_dir: Optional[str] = None, cpu: bool = False, precision: str = "fp32"):
        """precision: "fp32", "fp16" or "bf16", the dtype the model generates in."""
        import ofa_sic  # noqa: F401  (registers the task and the model with fairseq)
        from fairseq import checkpoint_utils

        from ofa_sic.checkpoints import UntrustedCheckpointError

        check_checkpoint_file(path)
        for flag, folder in (("--data", data), ("--bpe-dir", bpe_dir)):
            if folder is not None and not os.path.isdir(folder):
                raise FileNotFoundError(f"{flag} {folder} is not a folder")
        # No validation scorer; the task reads the inputs the checkpoint records (ofa_sic.tasks.input_contract).
        overrides = {"eval_cider": False, "checkpoint_path": path}
        if data is not None:
            overrides["data"] = data
        if bpe_dir is not None:
            overrides["bpe_dir"] = bpe_dir
        try:
            models, _, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(f"{error} (the folder comes from the settings stored in {path}; "
                              "pass --data DIR or --bpe-dir DIR to use another)") from None
        except UntrustedCheckpointError as error:
            raise ValueError(str(error)) from None
        except (KeyError, AttributeError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            raise ValueError(f"checkpoint {path} is not a style_caption checkpoint of the ofa model "
                             f"({type(error).__name__}: {first_line})") from None
        if type(task).__name__ != "StyleCaptionTask":
            raise ValueError(f"checkpoint {path} was trained with task {type(task).__name__}, not style_caption")
        self.path = path
        self.task = task
        self.options = options
        self.device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.model = models[0].to(device=self.device, dtype=PRECISIONS[precision]).eval()
        self.generator = task.caption_generator([self.model], options.as_dict())

    @property
    def styles(self):
        """The checkpoint's StyleVocabulary (the styles it records; for a checkpoint from before the record,
        the data's styles.txt)."""
        return self.task.styles

    def caption_batch(self, sample: dict) -> List[str]:
        """The top-beam caption of each row of a collated batch, in batch order."""
        from fairseq import utils

        if self.device.type == "cuda":
            sample = utils.move_to_cuda(sample)
        with torch.no_grad():
            hypotheses = self.task.inference_step(self.generator, [self.model], sample)
        return [self.task.decode(beams[0]["tokens"]) for beams in hypotheses]

    def image_tensor(self, image) -> torch.Tensor:
        """PIL image -> uint8 [3, S, S] at the checkpoint's patch size (the task normalises it)."""
        from ofa_sic.data.image_transform import CaptionImageTransform

        return CaptionImageTransform(self.task.cfg.patch_image_size)(image)

    def caption_rows(self, pixels: Sequence[torch.Tensor], styles: Sequence[str]) -> List[str]:
        """Caption row i: the image tensor `pixels[i]` (uint8 [3, S, S] from `image_tensor`; one tensor may serve
        several rows) in style `styles[i]`, all rows in one generation call.

        With `max_len_a` 0 (the default) a row's caption does not depend on the other rows of the call. With
        `max_len_a` > 0 fairseq sizes the length limit from the call's longest prompt, so rows are generated in
        groups of equal prompt length (one call each) to keep every caption independent of its neighbours.
        """
        from ofa_sic.data.caption_dataset import encoder_inputs

        if len(pixels) != len(styles):
            raise ValueError(f"{len(pixels)} images but {len(styles)} styles")
        sources = [self.task.prompt(style) for style in styles]
        if self.options.max_len_a != 0 and len({len(source) for source in sources}) > 1:
            captions: List[Optional[str]] = [None] * len(sources)
            for length in sorted({len(source) for source in sources}):
                rows = [i for i, source in enumerate(sources) if len(source) == length]
                for i, caption in zip(rows, self.caption_rows([pixels[i] for i in rows], [styles[i] for i in rows])):
                    captions[i] = caption
            return captions
        sample = {
            "id": torch.arange(len(sources)),
            "net_input": encoder_inputs(sources, torch.stack(list(pixels)), torch.ones(len(sources), dtype=torch.bool),
                                        self.task.dictionary.pad()),
        }
        return self.caption_batch(sample)

    def caption_images(self, images: Sequence, styles: Sequence[str], batch_size: int = 16) -> List[str]:
        """Caption `images[i]` (PIL) in style `styles[i]` (names known to `self.styles`), `batch_size` rows per
        generation call; an image object given for several rows is resized once."""
        if len(images) != len(styles):
            raise ValueError(f"{len(images)} images but {len(styles)} styles")
        tensors = {}
        for image in images:
            if id(image) not in tensors:
                tensors[id(image)] = self.image_tensor(image)
        pixels = [tensors[id(image)] for image in images]
        captions: List[str] = []
        for start in range(0, len(images), batch_size):
            captions.extend(self.caption_rows(pixels[start:start + batch_size], styles[start:start + batch_size]))
        return captions
