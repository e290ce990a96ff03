"""Evaluation people can read: the coco_caption scorer, `ofa-sic evaluate` (metrics.json, predictions.json,
gallery.html), `ofa-sic caption`, and run_scripts/evaluate.sh, on a tiny ofa_demo checkpoint trained for one
epoch with the real fairseq-train."""
import argparse
import base64
import io
import json
import re
from html.parser import HTMLParser

import pytest
import torch

from helpers import REPO_ROOT, fairseq_command, ofa_sic, run_command, train_args

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


@pytest.fixture(scope="session")
def tiny_checkpoint(demo_data, tmp_path_factory):
    """checkpoint_last.pt of ofa_demo after one epoch (6 updates) on the demo data."""
    save_dir = tmp_path_factory.mktemp("eval_ckpt")
    run_command(train_args(demo_data, save_dir, "--max-epoch", "1", "--disable-validation", "--no-epoch-checkpoints"))
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def evaluation(demo_data, tiny_checkpoint, tmp_path_factory):
    """`ofa-sic evaluate` on the test split: {'out': folder, 'stdout': printed text}."""
    out = tmp_path_factory.mktemp("evaluate")
    code, stdout, stderr = ofa_sic("evaluate", "--path", tiny_checkpoint, "--data", demo_data["data"],
                                   "--bpe-dir", demo_data["bpe"], "--split", "test", "--out", out,
                                   "--batch-size", "5", "--cpu", "--attributes", demo_data["raw"] / "attributes.json")
    assert code == 0, stderr
    return {"out": out, "stdout": stdout, "stderr": stderr}


def split_rows(demo_data, split="test"):
    """(style, [cleaned references]) of each row of a prepared split, in file order."""
    from ofa_sic.data.text import CaptionCleaner

    cleaner = CaptionCleaner()
    lines = [line for line in (demo_data["data"] / f"{split}.tsv").read_text().splitlines() if line.strip()]
    return [(fields[2], cleaner.references(fields[3])) for fields in (line.split("\t") for line in lines)]


def assert_scores_equal(actual, expected, places=6):
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=10 ** -places), name


def pycocoevalcap_scores(references, hypotheses):
    """BLEU-1..4, ROUGE-L, CIDEr (x100) by calling pycocoevalcap directly on this set alone."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in references.items()})
    res = tokenizer.tokenize({k: [{"caption": h}] for k, h in hypotheses.items()})
    scores = {f"BLEU-{n}": 100 * v for n, v in enumerate(Bleu(4).compute_score(gts, res, verbose=0)[0], start=1)}
    scores["ROUGE-L"] = 100 * Rouge().compute_score(gts, res)[0]
    scores["CIDEr"] = 100 * Cider().compute_score(gts, res)[0]
    return scores


# ---- ofa-sic evaluate ------------------------------------------------------------------------

def test_evaluate_scores_content_against_the_demo_attributes(demo_data, evaluation):
    from ofa_sic.evaluation.content_accuracy import content_accuracy

    content = json.loads((evaluation["out"] / "content.json").read_text())
    predictions = json.loads((evaluation["out"] / "predictions.json").read_text())
    attributes = json.loads((demo_data["raw"] / "attributes.json").read_text())
    expected = content_accuracy({str(i): p["caption"] for i, p in enumerate(predictions)},
                                {str(i): attributes[p["image_id"]] for i, p in enumerate(predictions)})
    assert content["accuracy"] == expected["accuracy"] and content["chance"] == expected["chance"]
    assert content["num_captions"] == len(predictions) == 12
    assert content["distinct_captions"] == len({p["caption"] for p in predictions})
    assert "content stated correctly: color" in evaluation["stdout"]


def test_evaluate_metrics_match_pycocoevalcap_overall_and_per_style(demo_data, evaluation):
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    metrics = json.loads((evaluation["out"] / "metrics.json").read_text())
    predictions = json.loads((evaluation["out"] / "predictions.json").read_text())
    rows = split_rows(demo_data)
    references = {str(i): refs for i, (_, refs) in enumerate(rows)}
    hypotheses = {str(i): p["caption"] for i, p in enumerate(predictions)}

    # METEOR directly with one pycocoevalcap process (it takes ~10 s to start); the rest via pycocoevalcap_scores.
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in references.items()})
    res = tokenizer.tokenize({k: [{"caption": h}] for k, h in hypotheses.items()})
    meteor = Meteor()

    def direct(ids):
        scores = pycocoevalcap_scores({k: references[k] for k in ids}, {k: hypotheses[k] for k in ids})
        scores["METEOR"] = 100 * meteor.compute_score({k: gts[k] for k in ids}, {k: res[k] for k in ids})[0]
        return scores

    assert metrics["overall"]["num_samples"] == metrics["num_samples"] == len(rows)
    assert_scores_equal(metrics["overall"], direct(list(references)))

    by_style = {}
    for i, (style, _) in enumerate(rows):
        by_style.setdefault(style, []).append(str(i))
    assert set(metrics["per_style"]) == set(by_style)
    assert sum(s["num_samples"] for s in metrics["per_style"].values()) == metrics["overall"]["num_samples"]
    for style, ids in by_style.items():
        assert metrics["per_style"][style]["num_samples"] == len(ids)
        assert_scores_equal(metrics["per_style"][style], direct(ids))
    ciders = [s["CIDEr"] for s in metrics["per_style"].values()]
    assert ciders == sorted(ciders, reverse=True)


def test_evaluate_records_settings_and_prints_table(demo_data, tiny_checkpoint, evaluation):
    metrics = json.loads((evaluation["out"] / "metrics.json").read_text())
    assert metrics["checkpoint"] == str(tiny_checkpoint.resolve())
    assert metrics["split"] == "test" and metrics["data"] == str(demo_data["data"].resolve())
    generation = metrics["generation"]
    assert (generation["beam"], generation["max_len_b"], generation["no_repeat_ngram_size"]) == (5, 16, 3)
    assert generation["lenpen"] == 1.0 and generation["temperature"] == 1.0 and generation["batch_size"] == 5
    assert "each style's references as the corpus" in metrics["per_style_note"]
    assert metrics["spice"].startswith("SPICE skipped") or metrics["spice"] == "computed"

    lines = evaluation["stdout"].splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("style"))
    table_styles = [line.split("  ")[0].strip() for line in lines[header + 1: header + 1 + len(metrics["per_style"])]]
    assert table_styles == list(metrics["per_style"])  # best CIDEr first, as in metrics.json
    assert any(line.startswith("all styles") for line in lines)
    assert not list(evaluation["out"].glob(".*.tmp"))  # atomic writes leave no temporary files


def test_evaluate_predictions_are_coco_results(demo_data, evaluation):
    predictions = json.loads((evaluation["out"] / "predictions.json").read_text())
    lines = [line.split("\t") for line in (demo_data["data"] / "test.tsv").read_text().splitlines() if line.strip()]
    assert [(p["uniq_id"], p["image_id"], p["style"]) for p in predictions] == [tuple(f[:3]) for f in lines]
    assert all(set(p) == {"image_id", "caption", "style", "uniq_id"} and isinstance(p["caption"], str) for p in predictions)


class _GalleryParser(HTMLParser):
    """Checks that tags are balanced; collects cards, images, ids and links."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.ids, self.links = [], [], set(), []
        self.cards, self.images, self.sections = [], [], []
        self._in_score = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href", "").startswith("#"):
            self.links.append(attrs["href"][1:])
        if tag == "section":
            self.sections.append([])
        if tag == "article":
            card = {"classes": attrs.get("class", "").split(), "cider": None}
            self.cards.append(card)
            self.sections[-1].append(card)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        self._in_score = "score" in attrs.get("class", "").split()
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self._in_score and self.cards:
            self.cards[-1]["cider"] = float(re.search(r"CIDEr ([0-9.]+)", data).group(1))
        self._in_score = False


def test_gallery_is_valid_html_with_one_embedded_image_per_row(demo_data, evaluation):
    from PIL import Image

    page = (evaluation["out"] / "gallery.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    parser = _GalleryParser()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    rows = split_rows(demo_data)
    assert len(parser.cards) == len(parser.images) == len(rows)
    for src in parser.images:
        header, data = src.split(",", 1)
        assert re.fullmatch(r"data:image/(jpeg|png);base64", header)
        Image.open(io.BytesIO(base64.b64decode(data))).load()
    assert "http://" not in page and "https://" not in page  # self-contained
    assert set(parser.links) <= parser.ids  # the table of contents points at real anchors
    metrics = json.loads((evaluation["out"] / "metrics.json").read_text())
    assert len(parser.sections) == len(metrics["per_style"])
    for section, (style, scores) in zip(parser.sections, metrics["per_style"].items()):
        assert len(section) == scores["num_samples"]
        ciders = [card["cider"] for card in section]
        assert ciders == sorted(ciders, reverse=True)
        if ciders[0] > ciders[-1]:  # (no badges when all of a style's captions tie)
            assert "best" in section[0]["classes"] and "worst" in section[-1]["classes"]
    for _, references in rows:
        assert references[0] in page  # references are shown (plain words: no escaping needed)


def test_render_gallery_orders_marks_and_limits():
    from ofa_sic.evaluation.gallery import GalleryEntry, render_gallery

    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (4, 4), (200, 10, 10)).save(png, format="PNG")
    entries = [GalleryEntry(key=f"row-{i}", style="A" if i < 5 else "B & <C>", caption=f"caption {i}",
                            references=[f"ref {i}"], cider=float(i % 5 * 10), image=png.getvalue())
               for i in range(6)]
    scores = {"B & <C>": {"num_samples": 1, "CIDEr": 50.0, "BLEU-4": 1.0, "ROUGE-L": 2.0},
              "A": {"num_samples": 5, "CIDEr": 20.0, "BLEU-4": 1.0, "ROUGE-L": 2.0}}
    overall = {"num_samples": 6, "CIDEr": 30.0}
    page = render_gallery("t", "s", entries, scores, overall)
    assert page.count("<article") == 6 and page.count("data:image/png;base64,") == 6
    assert "B &amp; &lt;C&gt;" in page and "B & <C>" not in page
    order = [int(i) for i in re.findall(r'id="row-(\d+)"', page)]
    assert order == [5, 4, 3, 2, 1, 0]  # style B first (higher CIDEr); within A best CIDEr first
    assert re.search(r'class="card best" id="row-4"', page) and re.search(r'class="card worst" id="row-0"', page)
    limited = render_gallery("t", "s", entries, scores, overall, per_style_limit=1)
    assert [int(i) for i in re.findall(r'id="row-(\d+)"', limited)] == [5, 4, 0]
    assert "3 middle images not shown" in limited

    large = io.BytesIO()
    Image.new("RGB", (600, 300), (0, 90, 200)).save(large, format="PNG")
    entries[5].image = large.getvalue  # a loader, called when the entry is shown
    page = render_gallery("t", "s", entries, scores, overall)
    thumbnail = re.search(r'data:image/jpeg;base64,([^"]+)"', page).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(thumbnail))).size == (256, 128)


# ---- the fairseq scorer and run_scripts/evaluate.sh ------------------------------------------

def test_evaluate_sh_scorer_matches_metrics_json(demo_data, tiny_checkpoint, evaluation, tmp_path):
    output = tmp_path / "generate-test.txt"
    result = run_command(["bash", REPO_ROOT / "run_scripts" / "evaluate.sh"], env={
        "DATA": str(demo_data["data"]), "BPE_DIR": str(demo_data["bpe"]), "CKPT": str(tiny_checkpoint),
        "SPLIT": "test", "PATCH_IMAGE_SIZE": "96", "DEVICE_ARGS": "--cpu", "BATCH_SIZE": "5",
        "GENERATE_OUTPUT": str(output), "FAIRSEQ_GENERATE": fairseq_command("fairseq-generate"),
    })
    printed = result.stdout.splitlines()
    generate_line = next(line for line in printed if line.startswith("Generate test with beam=5: "))
    scores = {name: float(value) for name, value in re.findall(r"(BLEU-\d|METEOR|ROUGE-L|CIDEr) (-?[0-9.]+)", generate_line)}
    assert set(scores) == set(METRICS) and "(x100, 12 captions)" in generate_line
    spice_lines = [line for line in printed if line.startswith("SPICE")]
    assert len(spice_lines) == 1

    text = output.read_text()
    detok = {int(f[0][2:]): f[2] for f in (line.split("\t") for line in text.splitlines()) if f[0].startswith("D-")}
    targets = {int(f[0][2:]): f[1] for f in (line.split("\t") for line in text.splitlines()) if f[0].startswith("T-")}
    predictions = json.loads((evaluation["out"] / "predictions.json").read_text())
    assert [detok[i] for i in range(len(predictions))] == [p["caption"] for p in predictions]
    from ofa_sic.metrics.scorer import split_references

    assert [split_references(targets[i]) for i in range(len(targets))] == [refs for _, refs in split_rows(demo_data)]
    metrics = json.loads((evaluation["out"] / "metrics.json").read_text())
    for name in METRICS:  # the scorer prints two decimals
        assert scores[name] == pytest.approx(metrics["overall"][name], abs=0.006), name


class _FakeMeteor:
    """Stands in for pycocoevalcap's METEOR (a Java process that takes ~10 s to start)."""

    def __init__(self):
        self.meteor_p = None

    def compute_score(self, gts, res):
        return 0.25, [0.25] * len(gts)


def _forbid_downloads(monkeypatch):
    import socket
    import urllib.request

    import pycocoevalcap.spice.get_stanford_models as models_module

    def forbidden(*args, **kwargs):
        raise AssertionError("a download or network call was attempted")

    monkeypatch.setattr(urllib.request, "urlretrieve", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    monkeypatch.setattr(models_module, "urlretrieve", forbidden)
    monkeypatch.setattr(models_module, "get_stanford_models", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)


def _scorer(monkeypatch, spice="auto"):
    import pycocoevalcap.meteor.meteor as meteor_module
    from fairseq.scoring import build_scorer

    import ofa_sic  # noqa: F401  (registers the scorer)

    monkeypatch.setattr(meteor_module, "Meteor", _FakeMeteor)
    scorer = build_scorer(argparse.Namespace(scoring="coco_caption", coco_spice=spice), tgt_dict=None)
    scorer.add_string(" a red circle on gray&&the red circle on a gray field", "a red circle on gray")
    scorer.add_string("two blue squares&& blue squares on white", "three blue squares")
    return scorer


def test_scorer_skips_spice_in_one_line_without_downloading(monkeypatch, tmp_path):
    import ofa_sic.metrics.spice as spice

    (tmp_path / "lib").mkdir()
    (tmp_path / spice.SPICE_JAR).write_bytes(b"")  # spice-1.0.jar ships with pycocoevalcap; CoreNLP does not
    monkeypatch.setattr(spice, "spice_dir", lambda: str(tmp_path))
    _forbid_downloads(monkeypatch)
    result = _scorer(monkeypatch).result_string()
    lines = result.splitlines()
    assert len(lines) == 2 and re.match(r"BLEU-1 [0-9.]+, .*CIDEr [0-9.]+ \(x100, 2 captions\)$", lines[0])
    assert lines[1].startswith("SPICE skipped: stanford-corenlp-3.6.0.jar, stanford-corenlp-3.6.0-models.jar not found")
    assert "get_stanford_models" in lines[1] and str(tmp_path / "lib") in lines[1]
    assert "METEOR 25.00" in lines[0]


def test_scorer_spice_off_and_spice_detection(monkeypatch, tmp_path):
    import ofa_sic.metrics.spice as spice

    _forbid_downloads(monkeypatch)
    assert len(_scorer(monkeypatch, spice="off").result_string().splitlines()) == 1
    (tmp_path / "lib").mkdir()
    assert set(spice.missing_spice_files(str(tmp_path))) == {
        str(tmp_path / "spice-1.0.jar"), *(str(tmp_path / "lib" / jar) for jar in spice.CORENLP_JARS)}
    for path in spice.missing_spice_files(str(tmp_path)):
        open(path, "wb").close()
    assert spice.missing_spice_files(str(tmp_path)) == [] and spice.spice_skip_reason(str(tmp_path)) is None


def test_caption_evaluator_subsets_equal_scoring_the_subset_alone():
    from pycocoevalcap.cider.cider import Cider

    from ofa_sic.metrics.caption_eval import CaptionEvaluator

    references = {
        "0": ["a red circle on a gray background", "one red circle on gray"],
        "1": ["two blue squares on white", "blue squares on a white field"],
        "2": ["three green triangles on black", "green triangles on black"],
        "3": ["a yellow star on gray", "one yellow star on a gray field"],
    }
    hypotheses = {"0": "a red circle on gray", "1": "two blue squares", "2": "green triangles on black", "3": "a star"}
    with CaptionEvaluator(meteor=False, spice=False) as evaluator:
        scored = evaluator.evaluate(references, hypotheses)
        for ids in (list(references), ["0", "2"], ["1", "3"], ["3"]):
            direct = pycocoevalcap_scores({k: references[k] for k in ids}, {k: hypotheses[k] for k in ids})
            assert_scores_equal(scored.scores(ids), direct, places=9)
        per_image = scored.cider_per_image()
    _, direct_per_image = Cider().compute_score(scored.gts, scored.res)
    assert [per_image[k] for k in scored.gts] == pytest.approx([100 * v for v in direct_per_image])
    assert per_image["0"] > per_image["3"]


# ---- ofa-sic caption ---------------------------------------------------------------------------

@pytest.fixture
def image_files(demo_data, tmp_path):
    """The first two test images saved as PNG and JPEG."""
    from ofa_sic.data.images import decode_base64_image

    lines = (demo_data["data"] / "test.tsv").read_text().splitlines()
    png, jpeg = tmp_path / "first.png", tmp_path / "second.jpg"
    decode_base64_image(lines[0].split("\t")[4]).save(png, format="PNG")
    decode_base64_image(lines[1].split("\t")[4]).convert("RGB").save(jpeg, format="JPEG")
    return png, jpeg


def test_caption_png_and_jpeg_in_two_styles(demo_data, tiny_checkpoint, image_files):
    png, jpeg = image_files
    code, stdout, stderr = ofa_sic("caption", png, jpeg, "--style", "happy", "--style", "Sweet", "--path", tiny_checkpoint,
                                   "--data", demo_data["data"], "--bpe-dir", demo_data["bpe"], "--cpu")
    assert code == 0, stderr
    lines = [line.split("\t") for line in stdout.splitlines()]
    assert [(path, style) for path, style, _ in lines] == [
        (str(png), "Happy"), (str(png), "Sweet (Kind)"), (str(jpeg), "Happy"), (str(jpeg), "Sweet (Kind)")]
    assert all(caption.strip() and "<code_" not in caption for _, _, caption in lines)

    code, stdout, stderr = ofa_sic("caption", png, "--all-styles", "--path", tiny_checkpoint, "--data", demo_data["data"],
                                   "--bpe-dir", demo_data["bpe"], "--cpu", "--beam", "2")
    assert code == 0, stderr
    styles = (demo_data["data"] / "styles.txt").read_text().splitlines()
    assert [line.split("\t")[1] for line in stdout.splitlines()] == styles


def test_caption_unknown_style_and_corrupt_image_print_nothing(demo_data, tiny_checkpoint, image_files, tmp_path):
    png, jpeg = image_files
    common = ["--path", tiny_checkpoint, "--data", demo_data["data"], "--bpe-dir", demo_data["bpe"], "--cpu"]
    code, stdout, stderr = ofa_sic("caption", png, "--style", "Happy", "--style", "Sarcstic", *common)
    assert code == 2 and stdout == ""
    assert "unknown style 'Sarcstic'" in stderr and "'Sarcastic'" in stderr and "Traceback" not in stderr

    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG")
    code, stdout, stderr = ofa_sic("caption", png, corrupt, "--style", "Happy", *common)
    assert code == 2 and stdout == ""
    assert str(corrupt) in stderr and "not an image" in stderr

    code, stdout, stderr = ofa_sic("caption", tmp_path / "missing.png", "--style", "Happy", *common)
    assert code == 2 and stdout == "" and "missing.png" in stderr


def test_caption_in_bf16_runs_the_model_in_bf16(demo_data, tiny_checkpoint, image_files, monkeypatch):
    from ofa_sic.generation import captioner

    dtypes = []
    original = captioner.Captioner.caption_batch

    def spy(self, sample):
        dtypes.append(next(self.model.parameters()).dtype)
        return original(self, sample)

    monkeypatch.setattr(captioner.Captioner, "caption_batch", spy)
    code, stdout, stderr = ofa_sic("caption", image_files[0], "--style", "Happy", "--path", tiny_checkpoint,
                                   "--data", demo_data["data"], "--bpe-dir", demo_data["bpe"], "--cpu", "--bf16")
    assert code == 0, stderr
    assert dtypes == [torch.bfloat16] and stdout.split("\t")[2].strip()
