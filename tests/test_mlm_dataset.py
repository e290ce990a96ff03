"""MLMPrompt and CaptionMLMDataset on the demo data: the style-token MLM auxiliary task."""
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ofa_sic.data.caption_dataset import StyleCaptionDataset
from ofa_sic.data.image_transform import CaptionImageTransform
from ofa_sic.data.mlm_dataset import DEFAULT_MLM_PROMPT, CaptionMLMDataset, MLMPrompt
from ofa_sic.data.prompts import StylePrompt
from ofa_sic.data.styles import StyleVocabulary
from ofa_sic.data.text import CaptionCleaner, TextCodec, build_ofa_dictionary
from ofa_sic.data.whole_word_mask import WholeWordMasker, word_start_table

BOS, PAD, EOS = 0, 1, 2
IMAGE_SIZE = 32
OFA_TEMPLATE = ' what is the complete text of " {text} "? {style}'


@pytest.fixture(scope="module")
def parts(demo_data):
    bpe_dir, data_dir = str(demo_data["bpe"]), str(demo_data["data"])
    dictionary = build_ofa_dictionary(bpe_dir, code_dict_size=16, num_bins=8)
    codec = TextCodec(bpe_dir, dictionary)
    styles = StyleVocabulary.load(os.path.join(data_dir, "styles.txt"))
    return {"codec": codec, "styles": styles, "train": os.path.join(data_dir, "train.tsv")}


def make_base(parts, seed=1):
    prompt = StylePrompt(" what does the image describe? write a {} reply.", "token", parts["styles"], parts["codec"])
    return StyleCaptionDataset(parts["train"], parts["codec"], prompt, CaptionImageTransform(IMAGE_SIZE), CaptionCleaner(),
                               max_tgt_length=20, single_caption_targets=True, shuffle=True, seed=seed)


def make_masker(codec, **options):
    dictionary = codec.dictionary
    return WholeWordMasker(dictionary.index("<mask>"), word_start_table(dictionary, codec.bpe), **options)


def make_dataset(parts, ratio=1.0, image="same", style_format="token", template=DEFAULT_MLM_PROMPT, seed=1, **options):
    codec = parts["codec"]
    prompt = MLMPrompt(template, style_format, parts["styles"], codec)
    return CaptionMLMDataset(make_base(parts, seed), prompt, make_masker(codec, **options), ratio=ratio, image=image)


def contains(sequence, part):
    return any(sequence[i : i + len(part)] == part for i in range(len(sequence) - len(part) + 1))


def is_subsequence(part, whole):
    rest = iter(whole)
    return all(any(t == u for u in rest) for t in part)


def code_id(parts, style):
    return parts["codec"].dictionary.index(f"<code_{parts['styles'].index(style)}>")


# ---- MLMPrompt ------------------------------------------------------------------------------


def test_ofa_template_places_the_masked_text_as_ofa_does(parts):
    codec = parts["codec"]
    prompt = MLMPrompt(OFA_TEMPLATE, "token", parts["styles"], codec)
    # OFA: [<s>] + prefix[:-2] + mask[1:-1] + prefix[-2:] + [</s>] with prefix = BPE(' what is the complete
    # text of " "?'); with GPT-2's BPE prefix[:-2] = BPE(' what is the complete text of "') and prefix[-2:] =
    # BPE(' "?') = [Ġ", ?] (docs/ofa-spec.md, Appendix A). The demo BPE splits Ġ" in two, so compare pieces.
    before, after = codec.encode(' what is the complete text of "'), codec.encode(' "?')
    assert codec.encode(' what is the complete text of " "?') == before + after
    masked = codec.encode(" a red") + [codec.dictionary.index("<mask>")]
    for style in parts["styles"].names:
        source, position = prompt(style, masked)
        ids = source.tolist()
        code = code_id(parts, style)
        # The style follows OFA's prompt; the space before it is a token (ModelScope's rule, as StylePrompt).
        assert ids == [BOS] + before + masked + codec.encode(' "? ') + [code, EOS]
        assert codec.encode(' "? ') == after + codec.encode(" ")
        assert ids[position] == code and ids.count(code) == 1


def test_default_template_token_and_text_formats(parts):
    codec, styles = parts["codec"], parts["styles"]
    assert DEFAULT_MLM_PROMPT.count("{text}") == 1 and DEFAULT_MLM_PROMPT.count("{style}") == 1
    caption = codec.encode(" two red circles on gray")
    token_prompt = MLMPrompt(DEFAULT_MLM_PROMPT, "token", styles, codec)
    text_prompt = MLMPrompt(DEFAULT_MLM_PROMPT, "text", styles, codec)
    for style in styles.names:
        ids, position = token_prompt(style, caption)
        ids = ids.tolist()
        head, tail = DEFAULT_MLM_PROMPT.split("{style}")
        before_text, after_text = tail.split("{text}")
        # Token format: literals around the <code_i> id as StylePrompt builds them (the space before the
        # style is a token), caption between the quotes (the space before it is the caption's own).
        assert ids == ([BOS] + codec.encode(head) + [code_id(parts, style)]
                       + codec.encode(before_text.rstrip(" ")) + caption + codec.encode(after_text) + [EOS])
        assert ids[position] == code_id(parts, style)
        # Text format: the prompt text with the lowercased style, BPE-encoded, caption ids between.
        text_ids, text_position = text_prompt(style, caption)
        before = codec.encode(DEFAULT_MLM_PROMPT.split("{text}")[0].format(style=style.lower()).rstrip(" "))
        assert text_ids.tolist() == [BOS] + before + caption + codec.encode(after_text) + [EOS]
        assert text_position is None
        assert contains(text_ids.tolist(), codec.encode(" " + style.lower().split()[0]))
        assert all(codec.dictionary[i].isdigit() for i in text_ids.tolist()[1:-1])  # text only: no <code_i>


@pytest.mark.parametrize("template", [" {text} only", " {style} only", " {text} {style} {text}", " {text} {style} {other}",
                                      " {text} {style!r}", " {text {style}"])
def test_bad_templates_are_rejected(parts, template):
    with pytest.raises(ValueError, match="mlm-prompt-template"):
        MLMPrompt(template, "token", parts["styles"], parts["codec"])


def test_too_few_code_symbols_are_reported(parts, demo_data):
    small = build_ofa_dictionary(str(demo_data["bpe"]), code_dict_size=2, num_bins=0)
    with pytest.raises(ValueError, match="code-dict-size"):
        MLMPrompt(DEFAULT_MLM_PROMPT, "token", parts["styles"], TextCodec(str(demo_data["bpe"]), small))


# ---- CaptionMLMDataset ----------------------------------------------------------------------


def test_length_follows_the_ratio(parts):
    n = len(make_base(parts))
    assert n > 10
    assert len(make_dataset(parts, ratio=1.0)) == 2 * n
    assert len(make_dataset(parts, ratio=0.5)) == n + round(n / 2)
    assert len(make_dataset(parts, ratio=0.0)) == n
    assert len(make_dataset(parts, ratio=2.5)) == n + round(2.5 * n)
    rows = make_dataset(parts, ratio=2.5).rows_for_epoch()
    assert len(rows) == round(2.5 * n) and np.bincount(rows, minlength=n).min() >= 2  # each row 2 or 3 times
    with pytest.raises(ValueError, match="mlm-ratio"):
        make_dataset(parts, ratio=-1)
    with pytest.raises(ValueError, match="mlm-image"):
        make_dataset(parts, image="blank")


def test_mlm_example_holds_style_masked_caption_and_full_target(parts):
    dataset = make_dataset(parts, ratio=1.0)
    base, codec = dataset.base, parts["codec"]
    mask = codec.dictionary.index("<mask>")
    n = len(base)
    assert sorted(dataset.rows_for_epoch().tolist()) == list(range(n))  # ratio 1: every row once
    changed = 0
    for index in range(n, len(dataset)):
        example = dataset[index]
        row = dataset.mlm_row(index)
        caption_example = dataset[row]
        assert example["is_mlm"] is True and caption_example["is_mlm"] is False
        assert example["id"] == index
        assert torch.equal(example["target"], caption_example["target"])
        assert torch.equal(example["prev_output_tokens"], caption_example["prev_output_tokens"])
        style = base.row(row)["style"]
        source = example["source"].tolist()
        assert source[0] == BOS and source[-1] == EOS
        assert source.count(code_id(parts, style)) == 1
        assert mask in source
        # Between the prompt pieces: the caption with whole words masked; kept tokens keep their order.
        before, after, _, _ = dataset.prompt.parts(style)
        assert source[1 : 1 + len(before)] == before and source[len(source) - 1 - len(after) : -1] == after
        masked = source[1 + len(before) : len(source) - 1 - len(after)]
        caption = caption_example["target"].tolist()[:-1]
        kept = [t for t in masked if t != mask]
        assert is_subsequence(kept, caption) and len(kept) < len(caption)
        changed += masked != caption
        # Same image as the caption example.
        assert torch.equal(example["patch_image"], caption_example["patch_image"])
        assert example["patch_mask"].tolist() == [True]
    assert changed == n


def test_text_only_form_has_zero_image_and_false_patch_mask(parts):
    dataset = make_dataset(parts, ratio=0.5, image="none")
    n = len(dataset.base)
    for index in (0, 5, n - 1):
        assert dataset[index]["patch_mask"].tolist() == [True]
    for index in range(n, len(dataset)):
        example = dataset[index]
        assert example["patch_mask"].tolist() == [False]
        assert example["patch_image"].shape == (3, IMAGE_SIZE, IMAGE_SIZE)
        assert not example["patch_image"].any()
    batch = dataset.collater([dataset[i] for i in (0, n, 1, n + 1)])
    assert batch["net_input"]["patch_masks"].tolist() == [True, False, True, False]
    assert batch["is_mlm"].tolist() == [False, True, False, True]
    assert batch["is_mlm"].dtype == torch.bool
    assert not batch["net_input"]["patch_images"][1].any() and batch["net_input"]["patch_images"][0].any()


def test_collater_marks_mlm_examples(parts):
    dataset = make_dataset(parts, ratio=1.0)
    n = len(dataset.base)
    indices = [3, n + 7, n, 10, 2 * n - 1]
    samples = [dataset[i] for i in indices]
    batch = dataset.collater(samples)
    assert batch["is_mlm"].tolist() == [i >= n for i in indices]
    assert batch["id"].tolist() == indices
    base_batch = dataset.base.collater(samples)
    assert set(batch) == set(base_batch) | {"is_mlm"}
    assert {"src_tokens", "src_lengths", "patch_images", "patch_masks", "prev_output_tokens"} <= set(batch["net_input"])
    for b, sample in enumerate(samples):
        length = len(sample["source"])
        assert batch["net_input"]["src_tokens"][b, :length].tolist() == sample["source"].tolist()
        assert batch["net_input"]["src_lengths"][b] == length
    assert dataset.collater([]) == {}


def test_rows_and_masks_depend_on_seed_epoch_and_index(parts):
    dataset = make_dataset(parts, ratio=0.5)
    n = len(dataset.base)
    first_rows = dataset.rows_for_epoch(1)
    assert len(first_rows) == round(n / 2) and len(set(first_rows.tolist())) == len(first_rows)
    assert not np.array_equal(first_rows, dataset.rows_for_epoch(2))  # a different half each epoch
    assert np.array_equal(first_rows, make_dataset(parts, ratio=0.5).rows_for_epoch(1))
    epoch1 = [dataset[i]["source"] for i in range(n, len(dataset))]
    dataset.set_epoch(2)
    assert dataset.base.epoch == 2
    epoch2 = [dataset[i]["source"] for i in range(n, len(dataset))]
    dataset.set_epoch(1)
    again = [dataset[i]["source"] for i in range(n, len(dataset))]
    assert all(torch.equal(a, b) for a, b in zip(epoch1, again))
    assert sum(not torch.equal(a, b) for a, b in zip(epoch1, epoch2)) > len(epoch1) // 2
    other_seed = make_dataset(parts, ratio=0.5, seed=2)
    assert not np.array_equal(first_rows, other_seed.rows_for_epoch(1))


def batches_by_id(dataset, num_workers):
    batches = [list(range(i, min(i + 16, len(dataset)))) for i in range(0, len(dataset), 16)]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=dataset.collater)
    out = {}
    for batch in loader:
        for b, index in enumerate(batch["id"].tolist()):
            length = batch["net_input"]["src_lengths"][b]
            out[index] = (batch["net_input"]["src_tokens"][b, :length].tolist(), bool(batch["is_mlm"][b]),
                          batch["target"][b].tolist())
    return out


def test_same_batches_with_and_without_workers(parts):
    dataset = make_dataset(parts, ratio=0.5, image="none")
    dataset.set_epoch(3)
    serial = batches_by_id(dataset, num_workers=0)
    parallel = batches_by_id(dataset, num_workers=2)
    assert len(serial) == len(dataset)
    assert serial == parallel
    assert [serial[i][1] for i in range(len(dataset))] == [i >= len(dataset.base) for i in range(len(dataset))]
    fresh = make_dataset(parts, ratio=0.5, image="none")
    fresh.set_epoch(3)
    assert batches_by_id(fresh, num_workers=2) == serial


def test_ordered_indices_sizes_and_epoch_iterator(parts):
    dataset = make_dataset(parts, ratio=0.5)
    order = dataset.ordered_indices()
    assert sorted(order.tolist()) == list(range(len(dataset)))
    assert np.array_equal(order, dataset.ordered_indices())
    dataset.set_epoch(2)
    assert not np.array_equal(order, dataset.ordered_indices())
    n = len(dataset.base)
    assert dataset.size(0) == dataset.base.size(0)
    source_size, target_size = dataset.size(n)
    assert target_size == 20 and source_size >= max(len(dataset[i]["source"]) for i in range(n, len(dataset)))
    assert dataset.num_tokens(n) == dataset.base.num_tokens(0)
    assert dataset.can_reuse_epoch_itr_across_epochs is False  # so fairseq rebuilds workers each epoch


def test_masking_options_reach_the_examples(parts):
    codec = parts["codec"]
    mask = codec.dictionary.index("<mask>")
    # replace_length -1 with long spans (no zero-length draws at lambda 50): the caption keeps its length,
    # each position either its own token or <mask>.
    in_place = make_dataset(parts, ratio=1.0, replace_length=-1, mask_ratio=1.0, poisson_lambda=50.0)
    deleting = make_dataset(parts, ratio=1.0, replace_length=0, mask_ratio=1.0, poisson_lambda=50.0)
    n = len(in_place.base)
    for index in range(n, n + 10):
        caption = in_place[index]["target"].tolist()[:-1]
        before, after, _, _ = in_place.prompt.parts(in_place.base.row(in_place.mlm_row(index))["style"])
        source = in_place[index]["source"].tolist()
        masked = source[1 + len(before) : len(source) - 1 - len(after)]
        assert len(masked) == len(caption) and mask in masked
        assert all(m == mask or m == c for m, c in zip(masked, caption))
        assert masked[-1] == mask  # a span of 50 words runs to the end of the caption
        source = deleting[index]["source"].tolist()
        deleted = source[1 + len(before) : len(source) - 1 - len(after)]
        assert mask not in deleted and len(deleted) < len(caption) and deleted == caption[: len(deleted)]
