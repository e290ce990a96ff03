"""`--task style_caption`: caption an image in a requested style with OFA.

Data: a directory holding `{split}.tsv` and `styles.txt` as written by `ofa-sic prepare-pcap`.
Source: `<s>` + BPE(prompt with the style) + `</s>`; targets as OFA's caption task. Validation can
score CIDEr-D (`--eval-cider`), usable as `--best-checkpoint-metric cider
--maximize-best-checkpoint-metric`.
"""
import logging
import os
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
from fairseq import metrics
from fairseq.dataclass import FairseqDataclass
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from ofa_sic.data.caption_dataset import StyleCaptionDataset
from ofa_sic.data.check import DataCheckError, check_split
from ofa_sic.data.image_transform import CaptionImageTransform, ImageNormalizer
from ofa_sic.data.mlm_dataset import DEFAULT_MLM_PROMPT, CaptionMLMDataset, MLMPrompt
from ofa_sic.data.prepared_layout import split_path
from ofa_sic.data.whole_word_mask import WholeWordMasker, word_start_table
from ofa_sic.data.prompts import STYLE_FORMATS, StylePrompt, check_style_tokens
from ofa_sic.data.styles import StyleVocabulary
from ofa_sic.data.text import CaptionCleaner, TextCodec, bpe_fingerprint, build_ofa_dictionary, text_id_range
from ofa_sic.generation.generator import OFASequenceGenerator, parse_constraint_range
from ofa_sic.generation.options import OFA_CAPTION_GENERATION_JSON, parse_generation_json
from ofa_sic.tasks.epoch_size import check_training_batches, mixes_mlm_examples
from ofa_sic.tasks.input_contract import (CONTRACT_KEY, DEFAULT_PROMPT, DEFAULT_SETTINGS, InputContractError,
                                          RecordedInputs, check_bpe, contract_record, legacy_prompt_template,
                                          read_recorded_inputs, recorded_from_task_state, resolve_settings,
                                          source_checkpoint, warn_legacy)

logger = logging.getLogger(__name__)


@dataclass
class StyleCaptionConfig(FairseqDataclass):
    data: Optional[str] = field(default=None, metadata={"help": "directory with {train,valid,test}.tsv and styles.txt (ofa-sic prepare-pcap)"})
    bpe_dir: Optional[str] = field(default=None, metadata={"help": "directory with GPT-2 BPE files encoder.json, vocab.bpe and dict.txt"})
    max_src_length: int = field(default=128, metadata={"help": "longest prompt in BPE tokens"})
    max_tgt_length: int = field(default=30, metadata={"help": "training captions are cut to this many words"})
    code_dict_size: int = field(default=8192, metadata={"help": "number of <code_i> symbols (style i uses <code_i>)"})
    num_bins: int = field(default=1000, metadata={"help": "number of <bin_i> symbols (kept for OFA's dictionary layout)"})
    # The settings a checkpoint fixes (ofa_sic.tasks.input_contract): None = not given, i.e. the
    # checkpoint's value when the command starts from one, else the default named in the help.
    patch_image_size: Optional[int] = field(default=None, metadata={"help": "images are resized to this square size (default 480)"})
    imagenet_default_mean_and_std: Optional[bool] = field(
        default=None, metadata={"help": "normalise with ImageNet mean/std instead of 0.5/0.5"})
    prompt_template: Optional[str] = field(
        default=None,
        metadata={"help": "prompt with one {} for the style, or none for a style-free prompt (e.g. OFA's "
                          f"\" what does the image describe?\"); default {DEFAULT_PROMPT!r}"},
    )
    style_format: Optional[str] = field(
        default=None, metadata={"help": f"how the style enters the prompt: {' or '.join(STYLE_FORMATS)} (default token)"})
    keep_punctuation: Optional[bool] = field(default=None, metadata={"help": "keep punctuation in captions (OFA strips it)"})
    keep_case: Optional[bool] = field(default=None, metadata={"help": "keep upper case in captions (default: lowercase)"})
    constraint_range: Optional[str] = field(
        default=None,
        metadata={"help": 'ids "start,end" that generation (test, validation, SCST hypotheses) and the SCST '
                          'teacher-forced log-probs may use besides specials; default: the text (BPE) ids; "none" for all'},
    )
    eval_cider: bool = field(default=False, metadata={"help": "score CIDEr-D on the validation set"})
    eval_cider_cached_tokens: Optional[str] = field(
        default=None, metadata={"help": "document-frequency pickle for validation CIDEr-D; default: each validation "
                                        "subset's own, built from its references"}
    )
    eval_args: str = field(default=OFA_CAPTION_GENERATION_JSON, metadata={"help": "JSON generation options for validation"})
    mlm_ratio: float = field(default=0.0, metadata={"help": "style-token masked-LM examples per training caption (0 = off; fractions allowed)"})
    mlm_prompt_template: str = field(default=DEFAULT_MLM_PROMPT, metadata={"help": "MLM prompt with {style} and {text} (the masked caption)"})
    mlm_image: str = field(default="same", metadata={"help": "image of MLM examples: same (the row's) or none (OFA's text-only form)"})
    mlm_mask_ratio: float = field(default=0.3, metadata={"help": "share of caption words to mask"})
    mlm_poisson_lambda: float = field(default=3.0, metadata={"help": "mean span length in words (Poisson)"})
    mlm_random_ratio: float = field(default=0.0, metadata={"help": "share of masked spans replaced by a random token instead of <mask>"})
    mlm_replace_length: int = field(default=1, metadata={"help": "1: span -> one <mask>; 0: delete the span; -1: mask every token"})
    scst: bool = field(
        default=False,
        metadata={"help": "stage 2, self-critical training (with --criterion scst_reward_criterion): a training example "
                          "is an image (the train.tsv rows sharing its image_id and style), rewarded against all their "
                          "captions; no MLM examples; the task builds the hypothesis generator of --scst-args"},
    )
    scst_args: str = field(
        default=OFA_CAPTION_GENERATION_JSON,
        metadata={"help": "JSON generation options of the SCST hypotheses (beam search or sampling)"},
    )
    eval_print_samples: bool = field(default=False, metadata={"help": "log a hypothesis and its references per validation batch"})
    seed: int = II("common.seed")
    amp: bool = II("common.amp")
    # Where a trained model comes from, to use the inputs it records (ofa_sic.tasks.input_contract).
    restore_file: Optional[str] = II("checkpoint.restore_file")
    finetune_from_model: Optional[str] = II("checkpoint.finetune_from_model")
    save_dir: str = II("checkpoint.save_dir")
    checkpoint_path: Optional[str] = II("common_eval.path")


@register_task("style_caption", dataclass=StyleCaptionConfig)
class StyleCaptionTask(FairseqTask):
    cfg: StyleCaptionConfig

    def __init__(self, cfg: StyleCaptionConfig, recorded: Optional[RecordedInputs] = None):
        """`recorded`: what the checkpoint the command starts from says about its inputs (None: no checkpoint
        known yet; fairseq-validate hands it over through `load_state_dict`)."""
        super().__init__(cfg)
        if not cfg.bpe_dir:
            raise ValueError("--bpe-dir is required (a directory with encoder.json, vocab.bpe, dict.txt)")
        self.dictionary = build_ofa_dictionary(cfg.bpe_dir, cfg.code_dict_size, cfg.num_bins)
        self.codec = TextCodec(cfg.bpe_dir, self.dictionary)
        self.bpe_fingerprint = bpe_fingerprint(cfg.bpe_dir)
        self.use_inputs_of(recorded)
        logger.info("dictionary: %d symbols; %d styles", len(self.dictionary), len(self.styles))
        self.text_range = text_id_range(self.dictionary)
        self.constraint_range = self.parse_constraint_range()
        # Checked here, before any data or model is loaded.
        self.eval_generation = parse_generation_json(cfg.eval_args, "--eval-args")
        self.scst_generation = parse_generation_json(cfg.scst_args, "--scst-args")
        self.sequence_generator = None
        self.scst_generator = None
        self.cider_scorers = {}

    @classmethod
    def setup_task(cls, cfg: StyleCaptionConfig, **kwargs):
        source = source_checkpoint(cfg)
        return cls(cfg, read_recorded_inputs(source) if source else None)

    # ---- the inputs: settings, styles and BPE, as a checkpoint records them ------------------------

    def use_inputs_of(self, recorded: Optional[RecordedInputs]) -> None:
        """Resolve the settings against `recorded` (ofa_sic.tasks.input_contract), check the BPE, take the
        style vocabulary, and build the prompt, caption cleaning and image normalisation from them."""
        cfg = self.cfg
        self.recorded_inputs = recorded
        resolve_settings(cfg, recorded)
        if recorded is not None:
            check_bpe(recorded, cfg.bpe_dir, self.bpe_fingerprint)
        self.styles = self.style_vocabulary(recorded)
        self.prompt = StylePrompt(cfg.prompt_template, cfg.style_format, self.styles, self.codec)
        longest = max(len(self.prompt.token_ids(name)) for name in self.styles.names)
        if longest > cfg.max_src_length:
            raise ValueError(f"the prompt takes {longest} tokens, more than --max-src-length {cfg.max_src_length}")
        self.cleaner = CaptionCleaner(cfg.keep_punctuation, cfg.keep_case)
        self.image_normalizer = ImageNormalizer(cfg.imagenet_default_mean_and_std)

    def style_vocabulary(self, recorded: Optional[RecordedInputs]) -> StyleVocabulary:
        """The checkpoint's styles when it records them (the data's styles.txt must name no other style),
        else the data's styles.txt."""
        cfg = self.cfg
        styles_path = os.path.join(cfg.data, "styles.txt") if cfg.data else None
        has_styles_file = styles_path is not None and os.path.isfile(styles_path)
        if recorded is not None and recorded.styles is not None:
            styles = StyleVocabulary(recorded.styles)
            if has_styles_file:
                self.check_data_styles(StyleVocabulary.load(styles_path), styles, styles_path, recorded.source)
        elif not has_styles_file:
            if not cfg.data or not os.path.isdir(cfg.data):
                raise ValueError(f"DATA must be a directory prepared by `ofa-sic prepare-pcap`, got {cfg.data!r}")
            raise FileNotFoundError(f"{styles_path} not found; `ofa-sic prepare-pcap` writes it beside the TSV files")
        else:
            styles = StyleVocabulary.load(styles_path)
            if recorded is not None and recorded.is_legacy:
                warn_legacy(recorded, styles_path)
        check_style_tokens(self.dictionary, styles)  # whatever the style format: style i is <code_i>
        return styles

    @staticmethod
    def check_data_styles(data_styles: StyleVocabulary, styles: StyleVocabulary, styles_path: str, source: str) -> None:
        """Refuse a styles.txt naming a style the checkpoint was not trained on; log when only the order differs."""
        unknown = [name for name in data_styles.names if name not in styles]
        if unknown:
            raise InputContractError(
                f"{styles_path} lists {len(unknown)} style(s) that {source} was not trained on: "
                f"{', '.join(map(repr, unknown[:10]))}{' ...' if len(unknown) > 10 else ''}. Its styles are "
                f"{', '.join(map(repr, styles.names[:10]))}{' ...' if len(styles) > 10 else ''} "
                f"({len(styles)}); use data in those styles, or train a model that knows them")
        if [styles.canonical(name) for name in data_styles.names] != styles.names[: len(data_styles)]:
            logger.info("%s lists the styles in another order than %s was trained with: style names are mapped "
                        "through the checkpoint's own list", styles_path, source)

    def settings(self) -> dict:
        """The values of the settings a checkpoint fixes, as this task uses them."""
        return {name: getattr(self.cfg, name) for name in DEFAULT_SETTINGS}

    def state_dict(self):
        """The task state fairseq stores in every checkpoint: the input record (ofa_sic.tasks.input_contract)."""
        return {CONTRACT_KEY: contract_record(self.styles.names, self.settings(), self.bpe_fingerprint)}

    def load_state_dict(self, state_dict):
        """fairseq hands over the task state of each checkpoint it loads a model from. A task set up from
        that checkpoint already used its record (an ensemble's members must record the same); a task set up
        from a checkpoint's own config (fairseq-validate) takes the record here."""
        source = self.cfg.checkpoint_path or "the loaded checkpoint"
        recorded = recorded_from_task_state(state_dict, source)
        if self.recorded_inputs is not None:
            if recorded is not None and not self.recorded_inputs.is_legacy and not recorded.same_contract(self.recorded_inputs):
                raise InputContractError(f"the checkpoints of {source} record different inputs (styles, prompt, image "
                                         "or cleaning settings, or BPE); an ensemble needs models trained on the same")
            return
        if recorded is None:  # a style_caption checkpoint from before the record: its config holds its settings
            settings = self.settings()
            template = settings["prompt_template"]
            settings["prompt_template"] = legacy_prompt_template(template, settings["style_format"])
            recorded = RecordedInputs(source, settings, legacy_template=template)
        self.use_inputs_of(recorded)

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    def max_positions(self):
        return (self.cfg.max_src_length, 1024)

    def split_path(self, split: str) -> str:
        return split_path(self.cfg.data, split)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        """The split's dataset, after `ofa_sic.data.check` found no problem in its rows (DataCheckError lists them).

        fairseq-generate and fairseq-validate also pass the checkpoint's task config (`task_cfg`): its
        settings were already resolved when the task was set up (ofa_sic.tasks.input_contract)."""
        is_train = split == "train"
        if is_train and self.cfg.scst and self.cfg.mlm_ratio > 0:
            raise ValueError(f"--mlm-ratio {self.cfg.mlm_ratio} with --scst: SCST trains on the reward alone and "
                             "mixes no masked-LM examples in; drop --mlm-ratio (it belongs to stage 1)")
        recorded = self.recorded_inputs
        styles_origin = "styles.txt" if recorded is None or recorded.styles is None \
            else f"the styles {recorded.source} was trained on"
        problems = check_split(self.split_path(split), self.styles, multiple_references=not is_train or self.cfg.scst,
                               styles_origin=styles_origin)
        if problems:
            raise DataCheckError(problems)
        dataset = StyleCaptionDataset(
            self.split_path(split),
            self.codec,
            self.prompt,
            CaptionImageTransform(self.cfg.patch_image_size),
            self.cleaner,
            max_tgt_length=self.cfg.max_tgt_length,
            single_caption_targets=is_train and not self.cfg.scst,
            shuffle=is_train,
            seed=self.cfg.seed,
            one_example_per_image=is_train and self.cfg.scst,
            split=split,
        )
        if dataset.groups is None:
            logger.info("%s: %d rows from %s", split, len(dataset), dataset.path)
        else:
            logger.info("%s: %d rows from %s, %d images: SCST rewards each hypothesis against all the training "
                        "captions of its image", split, len(dataset.rows), dataset.path, len(dataset))
        if is_train and mixes_mlm_examples(self.cfg):
            dataset = self.with_mlm_examples(dataset)
        self.datasets[split] = dataset

    def with_mlm_examples(self, dataset: StyleCaptionDataset) -> CaptionMLMDataset:
        """Mix `--mlm-ratio` style-token masked-LM examples per caption into the training set."""
        prompt = MLMPrompt(self.cfg.mlm_prompt_template, self.cfg.style_format, self.styles, self.codec)
        longest = prompt.overhead() + self.cfg.max_tgt_length
        if longest > self.cfg.max_src_length:
            raise ValueError(f"MLM sources take up to {longest} tokens, more than --max-src-length {self.cfg.max_src_length}")
        mask_idx = self.dictionary.index("<mask>")
        masker = WholeWordMasker(
            mask_idx, word_start_table(self.dictionary, self.codec.bpe), mask_ratio=self.cfg.mlm_mask_ratio,
            poisson_lambda=self.cfg.mlm_poisson_lambda, random_ratio=self.cfg.mlm_random_ratio,
            replace_length=self.cfg.mlm_replace_length,
        )
        mixed = CaptionMLMDataset(dataset, prompt, masker, ratio=self.cfg.mlm_ratio, image=self.cfg.mlm_image)
        logger.info("train: %d caption and %d masked-LM examples per epoch", len(dataset), mixed.num_mlm)
        return mixed

    def get_batch_iterator(self, dataset, max_tokens=None, max_sentences=None, max_positions=None,
                           ignore_invalid_inputs=False, required_batch_size_multiple=1, seed=1, num_shards=1,
                           shard_id=0, num_workers=0, epoch=1, data_buffer_size=0, disable_iterator_cache=False,
                           **kwargs):
        """fairseq's iterator with batch-size multiple 1, so that no row of any split is dropped. For the
        training set, its batches per rank are checked against `ofa_sic.tasks.epoch_size`'s prediction,
        from which `--lr-scheduler ofa_polynomial_decay` counts the updates of the run."""
        iterator = super().get_batch_iterator(
            dataset, max_tokens=max_tokens, max_sentences=max_sentences, max_positions=max_positions,
            ignore_invalid_inputs=ignore_invalid_inputs, required_batch_size_multiple=1, seed=seed,
            num_shards=num_shards, shard_id=shard_id, num_workers=num_workers, epoch=epoch,
            data_buffer_size=data_buffer_size, disable_iterator_cache=disable_iterator_cache, **kwargs,
        )
        if dataset is self.datasets.get("train"):
            check_training_batches(self.cfg, len(iterator), max_sentences, max_tokens, num_shards)
        return iterator

    # ---- model, generation, BPE --------------------------------------------------------------

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if self.cfg.eval_cider:
            self.sequence_generator = self.caption_generator([model], self.eval_generation)
        if self.cfg.scst:
            self.scst_generator = self.caption_generator([model], self.scst_generation)
        return model

    def caption_generator(self, models, options: dict):
        """The generator of captions with `options` (GENERATOR_KEYS of ofa_sic.generation.options): the one
        way validation, SCST hypotheses and greedy baselines, `ofa-sic evaluate`/`caption` and fairseq-generate
        (through `build_generator`) get theirs, so that all constrain their output to the same ids."""
        return self.build_generator(models, Namespace(**options))

    def parse_constraint_range(self) -> Optional[Tuple[int, int]]:
        """(start, end) of the ids besides specials that the model may produce: --constraint-range,
        else the text ids; None for "none" (the whole vocabulary)."""
        value = self.cfg.constraint_range
        if value is None:
            return self.text_range
        if value.strip().lower() == "none":
            return None
        return parse_constraint_range(value)

    def generation_constraint(self) -> Optional[str]:
        """The constraint range in OFA's "start,end" spelling, as reports record it (None: no constraint)."""
        return None if self.constraint_range is None else "{},{}".format(*self.constraint_range)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, prefix_allowed_tokens_fn=None):
        extra = dict(extra_gen_cls_kwargs or {})
        extra["constraint_range"] = self.constraint_range
        return super().build_generator(models, args, seq_gen_cls=OFASequenceGenerator, extra_gen_cls_kwargs=extra)

    def build_bpe(self, args):
        """The decoder fairseq-generate uses for its D- lines: symbol string -> plain text."""
        return _SymbolDecoder(self.codec)

    def decode(self, tokens: torch.Tensor) -> str:
        """Token ids of one hypothesis or target -> plain text (no specials, codes or bins)."""
        return self.codec.decode(tokens.tolist()).strip()

    # ---- training and validation -------------------------------------------------------------

    def normalized(self, sample, model):
        """`sample` with its uint8 patch_images normalised on their device, in the model's dtype."""
        if not sample or "net_input" not in sample or sample["net_input"]["patch_images"].dtype != torch.uint8:
            return sample
        net_input = sample["net_input"]
        dtype = next(model.parameters()).dtype
        images = self.image_normalizer(net_input["patch_images"], net_input["patch_masks"], dtype)
        return dict(sample, net_input=dict(net_input, patch_images=images))

    @staticmethod
    def autocast(sample, enabled: bool):
        """fairseq's --amp autocast on the sample's device: fp16 on CUDA, bf16 on CPU (its only fast type)."""
        device = sample["net_input"]["src_tokens"].device if sample else torch.device("cpu")
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        """fairseq's train step (autocast under --amp, as FairseqTask.train_step), with images
        normalised on the device and `update_num` handed to the criterion (OFA's criteria use it)."""
        model.train()
        model.set_num_updates(update_num)
        sample = self.normalized(sample, model)
        with torch.autograd.profiler.record_function("forward"), self.autocast(sample, isinstance(optimizer, AMPOptimizer)):
            loss, sample_size, logging_output = criterion(model, sample, update_num=update_num)
        if ignore_grad:
            loss *= 0
        with torch.autograd.profiler.record_function("backward"):
            optimizer.backward(loss)
        return loss, sample_size, logging_output

    def cider_scorer(self, split: str):
        """The CIDEr-D scorer of validation subset `split`: --eval-cider-cached-tokens if given (one file for
        all subsets), else document frequencies from the subset's own references (built once)."""
        from ofa_sic.metrics.cider_d import CiderD
        from ofa_sic.metrics.document_frequency import build_document_frequency

        if split not in self.cider_scorers:
            if self.cfg.eval_cider_cached_tokens:
                scorer = CiderD(df=self.cfg.eval_cider_cached_tokens)
                self.cleaner.check_recorded(scorer.cleaning, f"--eval-cider-cached-tokens {self.cfg.eval_cider_cached_tokens}")
            else:
                dataset = self.datasets[split]
                references = [dataset.references(i) for i in range(len(dataset))]
                scorer = CiderD(df=build_document_frequency(references, self.cleaner.settings()))
            self.cider_scorers[split] = scorer
        return self.cider_scorers[split]

    def valid_step(self, sample, model, criterion):
        """fairseq's valid step (under autocast with --amp), plus CIDEr-D with --eval-cider."""
        sample = self.normalized(sample, model)
        with self.autocast(sample, self.cfg.amp):
            return self._valid_step(sample, model, criterion)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """fairseq's inference step, with images normalised on the device in the model's dtype."""
        sample = self.normalized(sample, models[0])
        return super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens, constraints=constraints)

    def _valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.cfg.eval_cider and sample:
            scores, hypotheses = self.score_cider(model, sample)
            logging_output["_cider_score_sum"] = float(sum(scores))
            logging_output["_cider_cnt"] = len(scores)
            if self.cfg.eval_print_samples:
                logger.info("example hypothesis: %s", hypotheses[0])
        return loss, sample_size, logging_output

    def score_cider(self, model, sample):
        """CIDEr-D (x1, as OFA logs it) of the top beam of every row of `sample`, against the references the
        sample carries, with the document frequencies of the subset it comes from (`sample["split"]`)."""
        with torch.no_grad():
            output = self.inference_step(self.sequence_generator, [model], sample)
        hypotheses = [self.cleaner(self.decode(beams[0]["tokens"])) for beams in output]
        gts = dict(enumerate(sample["references"]))
        res = [{"image_id": i, "caption": [hypothesis]} for i, hypothesis in enumerate(hypotheses)]
        _, scores = self.cider_scorer(sample["split"]).compute_score(gts, res)
        return list(scores), hypotheses

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        count = sum(log.get("_cider_cnt", 0) for log in logging_outputs)
        if count > 0:
            metrics.log_scalar("_cider_score_sum", sum(log.get("_cider_score_sum", 0) for log in logging_outputs))
            metrics.log_scalar("_cider_cnt", count)
            metrics.log_derived(
                "cider", lambda meters: round(meters["_cider_score_sum"].sum / meters["_cider_cnt"].sum, 3)
            )


class _SymbolDecoder:
    """fairseq `bpe` object for fairseq-generate: decodes "99 473 ..." symbol strings to text."""

    def __init__(self, codec: TextCodec):
        self.codec = codec

    def encode(self, text: str) -> str:
        return " ".join(str(t) for t in self.codec.bpe.encode(text))

    def decode(self, symbols: str) -> str:
        return self.codec.decode_symbols(symbols).strip()
