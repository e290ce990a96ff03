"""StylePrompt (token and text formats) and StyleCaptionDataset on the demo data's BPE and TSVs."""
import os
import string

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ofa_sic.data.caption_dataset import StyleCaptionDataset
from ofa_sic.data.prepared_layout import COLUMNS
from ofa_sic.data.demo import STYLES, make_demo_data
from ofa_sic.data.image_transform import CaptionImageTransform, ImageNormalizer
from ofa_sic.data.images import decode_base64_image
from ofa_sic.data.pcap import prepare_pcap
from ofa_sic.data.prompts import StylePrompt
from ofa_sic.data.styles import StyleVocabulary, UnknownStyleError
from ofa_sic.data.text import CaptionCleaner, TextCodec, build_ofa_dictionary
from ofa_sic.tasks.style_caption import DEFAULT_PROMPT

BOS, PAD, EOS = 0, 1, 2
CODE_DICT_SIZE, NUM_BINS = 16, 8


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    summary = make_demo_data(str(root), n_train=20, n_valid=5, n_test=5, quiet=True)
    data_dir = str(root / "data")
    prepare_pcap(summary["pcap_dir"], summary["image_dir"], data_dir, df=False, quiet=True)
    return {"bpe_dir": summary["bpe_dir"], "data_dir": data_dir}


@pytest.fixture(scope="module")
def codec(demo):
    dictionary = build_ofa_dictionary(demo["bpe_dir"], code_dict_size=CODE_DICT_SIZE, num_bins=NUM_BINS)
    return TextCodec(demo["bpe_dir"], dictionary)


@pytest.fixture(scope="module")
def styles(demo):
    vocabulary = StyleVocabulary.load(os.path.join(demo["data_dir"], "styles.txt"))
    assert vocabulary.names == list(STYLES)
    return vocabulary


def is_bpe(codec, index):
    """True for ids of BPE tokens (their dictionary symbols are GPT-2 ids, "99")."""
    return codec.dictionary[index].isdigit()


def contains(sequence, part):
    return any(sequence[i : i + len(part)] == part for i in range(len(sequence) - len(part) + 1))


# ---- StylePrompt ----------------------------------------------------------------------------


def test_token_format_inserts_the_code_index_at_the_placeholder(codec, styles):
    prompt = StylePrompt(DEFAULT_PROMPT, "token", styles, codec)
    prefix, suffix = DEFAULT_PROMPT.split("{}")
    # The space before {} is kept: BPE gives it a token of its own, as ModelScope's OFATokenizer does.
    prefix_ids, suffix_ids = codec.encode(prefix), codec.encode(suffix)
    assert prefix_ids[-1] == codec.encode(" ")[0] and codec.encode(prefix.rstrip(" ")) == prefix_ids[:-1]
    assert prefix_ids and suffix_ids and all(is_bpe(codec, i) for i in prefix_ids + suffix_ids)
    codes = set()
    for i, name in enumerate(styles.names):
        ids = prompt.token_ids(name)
        code = codec.dictionary.index(f"<code_{i}>")
        assert code != codec.dictionary.unk()
        assert ids[0] == BOS and ids[-1] == EOS
        assert ids == [BOS] + prefix_ids + [code] + suffix_ids + [EOS]
        assert ids.count(code) == 1 and ids.index(code) == 1 + len(prefix_ids)
        # The only non-text symbol is the code itself: no BPE pieces of the string "<code_i>".
        body = ids[1:-1]
        assert [j for j in body if not is_bpe(codec, j)] == [code]
        assert not contains(body, codec.encode(f"<code_{i}>"))
        assert not contains(body, codec.encode(f" <code_{i}>"))
        assert "code" not in codec.decode(ids)
        tensor = prompt(name)
        assert tensor.dtype == torch.long and tensor.tolist() == ids
        codes.add(code)
    assert len(codes) == len(styles)


@pytest.mark.parametrize("template", ["{} what does the image describe?", " describe it in a {}", " {}"])
def test_token_format_with_the_placeholder_at_either_end(codec, styles, template):
    prompt = StylePrompt(template, "token", styles, codec)
    prefix, suffix = template.split("{}")
    code = codec.dictionary.index("<code_3>")
    expected = [BOS] + codec.encode(prefix) + [code] + codec.encode(suffix) + [EOS]
    assert prompt.token_ids(styles.names[3]) == expected


def test_text_format_contains_the_bpe_of_the_style_words(codec, styles):
    template = " what does the image describe? write a {} reply."
    prompt = StylePrompt(template, "text", styles, codec)
    for name in styles.names:
        ids = prompt.token_ids(name)
        assert ids[0] == BOS and ids[-1] == EOS
        assert ids[1:-1] == codec.encode(template.format(name.lower()))
        assert all(is_bpe(codec, j) for j in ids[1:-1])  # no <code_i> in text format
        assert contains(ids, codec.encode(" " + name.lower()))
        assert codec.decode(ids) == template.format(name.lower())
    assert prompt.token_ids("Happy") != prompt.token_ids("Gloomy")


def test_style_lookup_ignores_case_and_surrounding_spaces(codec, styles):
    for style_format in ("token", "text"):
        prompt = StylePrompt(DEFAULT_PROMPT, style_format, styles, codec)
        assert prompt.token_ids("  sARCASTIC ") == prompt.token_ids("Sarcastic")
        assert prompt.token_ids("sweet   (kind)") == prompt.token_ids("Sweet (Kind)")
        assert prompt.token_ids("sweet") == prompt.token_ids("Sweet (Kind)")  # head word of a glossed name
        assert prompt(" formal\t").tolist() == prompt.token_ids("Formal")


def test_unknown_style_names_the_nearest_styles(codec, styles):
    prompt = StylePrompt(DEFAULT_PROMPT, "token", styles, codec)
    with pytest.raises(UnknownStyleError) as info:
        prompt.token_ids("Sarcastik")
    message = str(info.value)
    assert "'Sarcastik'" in message and "'Sarcastic'" in message
    with pytest.raises(UnknownStyleError, match="'Gloomy'"):
        prompt("glomy")


@pytest.mark.parametrize("template", [" a {} and a {}", " {}{}", " a {0} style", " a {style} reply", " a {{}} reply"])
def test_template_needs_exactly_one_placeholder(codec, styles, template):
    for style_format in ("token", "text"):
        with pytest.raises(ValueError, match="exactly one"):
            StylePrompt(template, style_format, styles, codec)


@pytest.mark.parametrize("style_format", ["token", "text"])
def test_style_free_template_gives_every_style_the_same_source(codec, styles, style_format):
    prompt = StylePrompt(" what does the image describe?", style_format, styles, codec)
    expected = [codec.dictionary.bos()] + codec.encode(" what does the image describe?") + [codec.dictionary.eos()]
    assert [prompt.token_ids(name) for name in styles.names] == [expected] * len(styles)
    with pytest.raises(UnknownStyleError):
        prompt("no such style")


def test_unknown_style_format_is_an_error(codec, styles):
    with pytest.raises(ValueError, match="--style-format"):
        StylePrompt(DEFAULT_PROMPT, "emoji", styles, codec)


def test_too_few_codes_for_the_styles_is_an_error(demo, styles):
    dictionary = build_ofa_dictionary(demo["bpe_dir"], code_dict_size=len(styles) - 2, num_bins=NUM_BINS)
    small = TextCodec(demo["bpe_dir"], dictionary)
    with pytest.raises(ValueError, match="--code-dict-size") as info:
        StylePrompt(DEFAULT_PROMPT, "token", styles, small)
    assert f"<code_{len(styles) - 1}>" in str(info.value)
    # Exactly as many codes as styles is enough; text format needs none.
    exact = TextCodec(demo["bpe_dir"], build_ofa_dictionary(demo["bpe_dir"], code_dict_size=len(styles), num_bins=NUM_BINS))
    assert StylePrompt(DEFAULT_PROMPT, "token", styles, exact).token_ids(styles.names[-1])[-2] != EOS
    assert StylePrompt(DEFAULT_PROMPT, "text", styles, small).token_ids("Happy")[0] == BOS


# ---- StyleCaptionDataset --------------------------------------------------------------------


def make_dataset(demo, codec, styles, split="train", size=32, style_format="token", cleaner=None, **kwargs):
    options = dict(max_tgt_length=30, single_caption_targets=split == "train", shuffle=split == "train")
    options.update(kwargs)
    return StyleCaptionDataset(
        os.path.join(demo["data_dir"], f"{split}.tsv"),
        codec,
        StylePrompt(DEFAULT_PROMPT, style_format, styles, codec),
        CaptionImageTransform(size),
        cleaner or CaptionCleaner(),
        **options,
    )


def test_train_example(demo, codec, styles):
    dataset = make_dataset(demo, codec, styles)
    assert len(dataset) == 20
    for index in (0, 7, 19):
        row = dataset.row(index)
        assert list(row) == list(COLUMNS)
        example = dataset[index]
        assert example["id"] == index
        assert torch.equal(example["source"], dataset.prompt(row["style"]))
        target, prev = example["target"], example["prev_output_tokens"]
        assert target.dtype == prev.dtype == torch.long
        assert target[-1].item() == EOS and EOS not in target[:-1].tolist()
        assert prev[0].item() == BOS
        assert prev.tolist() == [BOS] + target[:-1].tolist()
        caption = " ".join(row["captions"].lower().translate(str.maketrans("", "", string.punctuation)).split())
        assert target[:-1].tolist() == codec.encode(" " + caption)
        assert example["patch_mask"].tolist() == [True]


def test_caption_cleaning_default_and_kept(demo, codec, styles):
    default = make_dataset(demo, codec, styles)
    kept = make_dataset(demo, codec, styles, cleaner=CaptionCleaner(keep_punctuation=True, keep_case=True))
    formal = [i for i in range(len(default)) if default.row(i)["style"] == "Formal"]
    assert formal  # Formal captions start with a capital and end with "."
    for index in formal:
        raw = default.row(index)["captions"]
        assert any(c.isupper() for c in raw) and any(c in string.punctuation for c in raw)
        cleaned = codec.decode(default[index]["target"].tolist()).strip()
        assert cleaned == cleaned.lower() and not any(c in string.punctuation for c in cleaned)
        assert cleaned == " ".join(raw.lower().translate(str.maketrans("", "", string.punctuation)).split())
        assert codec.decode(kept[index]["target"].tolist()).strip() == raw
    only_punctuation = make_dataset(demo, codec, styles, cleaner=CaptionCleaner(keep_punctuation=True))
    raw = default.row(formal[0])["captions"]
    assert codec.decode(only_punctuation[formal[0]]["target"].tolist()).strip() == raw.lower()


def test_training_captions_are_cut_to_max_tgt_length_words(demo, codec, styles):
    dataset = make_dataset(demo, codec, styles, max_tgt_length=3)
    for index in range(len(dataset)):
        words = codec.decode(dataset[index]["target"].tolist()).split()
        assert words == dataset.cleaner(dataset.row(index)["captions"]).split()[:3]


def test_evaluation_rows_carry_all_references(demo, codec, styles):
    test = make_dataset(demo, codec, styles, split="test")
    for index in range(len(test)):
        raw = test.row(index)["captions"].split("&&")
        assert len(raw) == 5
        references = test.references(index)
        assert references == [test.cleaner(r) for r in raw]
        target = test[index]["target"]
        assert target[-1].item() == EOS
        assert codec.decode(target.tolist()).strip().split("&&") == references
    valid = make_dataset(demo, codec, styles, split="valid")
    assert len(valid) == 5
    assert all(len(valid.references(i)) == 1 for i in range(len(valid)))
    assert not valid.shuffle and valid.ordered_indices().tolist() == list(range(5))
    # A training dataset refuses a row with several references and names the file and row.
    wrong = make_dataset(demo, codec, styles, split="test", single_caption_targets=True)
    with pytest.raises(ValueError, match=r"test\.tsv, row 1: 5 references"):
        wrong[0]


@pytest.mark.parametrize("size", [32, 96])
def test_patch_image_is_normalised_with_half_mean_and_std(demo, codec, styles, size):
    dataset = make_dataset(demo, codec, styles, size=size)
    pixels_uint8 = dataset[2]["patch_image"]
    assert pixels_uint8.shape == (3, size, size) and pixels_uint8.dtype == torch.uint8  # normalised on the device
    image = ImageNormalizer()(pixels_uint8[None], torch.tensor([True]), torch.float32)[0]
    assert image.dtype == torch.float32
    assert image.min().item() >= -1.0 and image.max().item() <= 1.0
    assert image.max().item() - image.min().item() > 0.5  # a drawing, not a blank
    pixels = decode_base64_image(dataset.row(2)["image"]).convert("RGB").resize((size, size), Image.BICUBIC)
    expected = (np.asarray(pixels, dtype=np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    assert np.allclose(image.numpy(), expected, atol=1e-6)


def test_collater_pads_with_one_and_returns_the_documented_keys(demo, codec, styles):
    dataset = make_dataset(demo, codec, styles, style_format="text", size=32)  # text prompts differ in length
    first_of = {}
    for i in range(len(dataset)):
        first_of.setdefault(dataset.row(i)["style"], i)
    indices = [first_of["Happy"], first_of["Sweet (Kind)"], first_of["Formal"], first_of["Gloomy"]]
    samples = [dataset[i] for i in indices]
    batch = dataset.collater(samples)
    assert set(batch) == {"id", "nsentences", "ntokens", "net_input", "target", "references", "styles", "split"}
    assert batch["references"] == [dataset.references(i) for i in indices] and batch["split"] == dataset.split
    assert batch["styles"] == [dataset.row(i)["style"] for i in indices]
    assert set(batch["net_input"]) == {"src_tokens", "src_lengths", "patch_images", "patch_masks", "prev_output_tokens"}
    assert isinstance(batch["id"], np.ndarray) and batch["id"].tolist() == indices
    assert batch["nsentences"] == 4
    net = batch["net_input"]
    for name, key, tensor in (("source", "src_tokens", net["src_tokens"]), ("target", "target", batch["target"]),
                              ("prev_output_tokens", "prev_output_tokens", net["prev_output_tokens"])):
        lengths = [len(s[name]) for s in samples]
        assert tensor.shape == (4, max(lengths)), key
        for row, sample, length in zip(tensor, samples, lengths):
            assert row[:length].tolist() == sample[name].tolist()
            assert (row[length:] == PAD).all()
    assert len({len(s["source"]) for s in samples}) > 1 and len({len(s["target"]) for s in samples}) > 1
    assert net["src_lengths"].tolist() == [len(s["source"]) for s in samples]
    assert batch["ntokens"] == sum(len(s["target"]) for s in samples)
    assert net["patch_images"].shape == (4, 3, 32, 32)
    assert net["patch_masks"].dtype == torch.bool and net["patch_masks"].tolist() == [True] * 4
    assert dataset.collater([]) == {}


def test_dataloader_workers_give_the_same_batches(demo, codec, styles):
    dataset = make_dataset(demo, codec, styles, size=32)
    dataset.set_epoch(2)
    order = dataset.ordered_indices().tolist()
    assert sorted(order) == list(range(len(dataset))) and order != list(range(len(dataset)))
    batches = [order[i : i + 8] for i in range(0, len(order), 8)]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=2, collate_fn=dataset.collater)
    for indices, batch in zip(batches, loader):
        expected = dataset.collater([dataset[i] for i in indices])
        assert batch["id"].tolist() == indices
        assert torch.equal(batch["target"], expected["target"])
        assert torch.equal(batch["net_input"]["src_tokens"], expected["net_input"]["src_tokens"])
        assert torch.equal(batch["net_input"]["patch_images"], expected["net_input"]["patch_images"])
