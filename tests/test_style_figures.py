"""Does the caption carry the style? The style classifier, style accuracy, diversity, style sensitivity,
their place in `ofa-sic evaluate` / `ofa-sic score-generate` / gallery.html, and training pictures
(`ofa-sic plot`, fairseq's --tensorboard-logdir), on real demo runs of run_scripts/train_caption.sh and
run_scripts/scst.sh."""
import json
import random
import re

import numpy as np
import pytest

from helpers import REPO_ROOT, fairseq_command, ofa_sic, run_command


def split_rows(demo_data, split):
    from ofa_sic.data.caption_rows import read_caption_rows

    return read_caption_rows(str(demo_data["data"] / f"{split}.tsv"))


@pytest.fixture(scope="module")
def classifier_file(demo_data, tmp_path_factory):
    """`ofa-sic style-classifier` on the demo's train split: (path, stdout)."""
    path = tmp_path_factory.mktemp("classifier") / "style_classifier.npz"
    code, stdout, stderr = ofa_sic("style-classifier", "--data", demo_data["data"], "--out", path)
    assert code == 0, stderr
    return path, stdout


@pytest.fixture(scope="module")
def training_runs(demo_data, tmp_path_factory):
    """Stage 1 (2 epochs, 12 updates) and stage 2 (SCST, 4 updates) of ofa_demo through the run_scripts,
    logging every 2 updates and to tensorboard: {'ce': folder, 'scst': folder}, each with train.log and tb/."""
    root = tmp_path_factory.mktemp("runs")
    common = {"FAIRSEQ_TRAIN": fairseq_command("fairseq-train"), "NUM_WORKERS": "0", "DEVICE_ARGS": "--cpu"}
    runs = {"ce": root / "ce", "scst": root / "scst"}
    stage1 = run_command(["bash", REPO_ROOT / "run_scripts" / "train_caption.sh", "--log-interval", "2",
                          "--tensorboard-logdir", runs["ce"] / "tb", "--seed", "3"], env={
        **common, "DATA": str(demo_data["data"]), "BPE_DIR": str(demo_data["bpe"]), "SAVE_DIR": str(runs["ce"]),
        "ARCH": "ofa_demo", "RESTORE_FILE": "", "PATCH_IMAGE_SIZE": "96", "MAX_EPOCH": "2", "BATCH_SIZE": "16",
        "LR": "1e-3", "DROP_WORST_RATIO": "0", "DROPOUT": "0.0", "DROP_PATH_RATE": "0.0", "FREEZE_EMBEDDINGS": "0",
        "SAVE_INTERVAL_UPDATES": "0", "EVAL_ARGS": '{"beam":2,"max_len_b":8,"no_repeat_ngram_size":3}',
    })
    (runs["ce"] / "train.log").write_text(stage1.stdout + stage1.stderr)
    stage2 = run_command(["bash", REPO_ROOT / "run_scripts" / "scst.sh", "--log-interval", "2",
                          "--tensorboard-logdir", runs["scst"] / "tb"], env={
        **common, "DATA": str(demo_data["data"]), "BPE_DIR": str(demo_data["bpe"]), "SAVE_DIR": str(runs["scst"]),
        "RESTORE_FILE": str(runs["ce"] / "checkpoint_best.pt"), "MAX_UPDATE": "4", "BATCH_SIZE": "8",
        "UPDATE_FREQ": "1", "LR": "1e-4", "SCST_ARGS": '{"beam":3,"max_len_b":8,"no_repeat_ngram_size":3}',
        "EVAL_ARGS": '{"beam":2,"max_len_b":8,"no_repeat_ngram_size":3}',
    })
    (runs["scst"] / "train.log").write_text(stage2.stdout + stage2.stderr)
    return runs


@pytest.fixture(scope="module")
def evaluation(demo_data, training_runs, classifier_file, tmp_path_factory):
    """`ofa-sic evaluate --style-classifier --styles-per-image 3` of the stage-1 checkpoint on the test split."""
    out = tmp_path_factory.mktemp("evaluate_styles")
    code, stdout, stderr = ofa_sic("evaluate", "--path", training_runs["ce"] / "checkpoint_best.pt",
                                   "--data", demo_data["data"], "--bpe-dir", demo_data["bpe"], "--out", out,
                                   "--batch-size", "6", "--cpu", "--no-meteor", "--style-classifier", classifier_file[0],
                                   "--styles-per-image", "3")
    assert code == 0, stderr
    return {"out": out, "stdout": stdout, "metrics": json.loads((out / "metrics.json").read_text()),
            "predictions": json.loads((out / "predictions.json").read_text())}


# ---- the style classifier ----------------------------------------------------------------------

def test_classifier_recognises_the_demo_styles_on_test_references(demo_data, classifier_file):
    from ofa_sic.metrics.style_accuracy import reference_style_accuracy
    from ofa_sic.metrics.style_classifier import StyleClassifier

    path, stdout = classifier_file
    assert re.search(r"trained on 96 captions of 5 styles in [0-9.]+ s", stdout)
    assert re.search(r"valid.tsv \(10 captions\): top-1 [0-9.]+%", stdout)
    classifier = StyleClassifier.load(str(path))
    assert sorted(classifier.styles) == sorted((demo_data["data"] / "styles.txt").read_text().splitlines())
    test = split_rows(demo_data, "test")
    overall, per_style = reference_style_accuracy(classifier, [r.captions for r in test], [r.style for r in test])
    assert overall["reference_style_top1"] >= 90  # the demo's styles are distinct templates
    assert all(figures["reference_style_top1"] >= 60 for figures in per_style.values())
    with np.load(path, allow_pickle=False) as stored:  # plain arrays only: nothing to unpickle
        assert all(stored[name].dtype.kind in "fiU" for name in stored.files)


def test_classifier_is_near_chance_with_shuffled_style_labels(demo_data):
    from ofa_sic.metrics.style_accuracy import reference_style_accuracy
    from ofa_sic.metrics.style_classifier import train_style_classifier

    train, test = split_rows(demo_data, "train"), split_rows(demo_data, "test")
    captions = [r.captions[0] for r in train]
    accuracies = []
    for seed in range(10):  # one shuffle decides each template's label: average over ten
        labels = [r.style for r in train]
        random.Random(seed).shuffle(labels)
        classifier = train_style_classifier(captions, labels)
        overall, _ = reference_style_accuracy(classifier, [r.captions for r in test], [r.style for r in test])
        accuracies.append(overall["reference_style_top1"])
    assert 10 <= np.mean(accuracies) <= 32  # chance is 20 (5 styles)


def test_stored_classifier_scores_equal_the_fitted_scikit_learn_pipeline(demo_data, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from ofa_sic.data.text import CaptionCleaner
    from ofa_sic.metrics import style_classifier as module

    train, test = split_rows(demo_data, "train"), split_rows(demo_data, "test")
    captions, styles = [r.captions[0] for r in train], [r.style for r in train]
    module.train_style_classifier(captions, styles).save(str(tmp_path / "c.npz"))
    loaded = module.StyleClassifier.load(str(tmp_path / "c.npz"))

    cleaner = CaptionCleaner()
    vectorizer = TfidfVectorizer(ngram_range=module.NGRAM_RANGE, token_pattern=module.TOKEN_PATTERN, lowercase=False,
                                 min_df=module.MIN_DF, max_features=module.DEFAULT_MAX_FEATURES, sublinear_tf=True)
    model = LogisticRegression(C=module.REGULARIZATION_C, max_iter=module.MAX_ITER)
    model.fit(vectorizer.fit_transform([cleaner(c) for c in captions]), styles)
    queries = [ref for r in test for ref in r.captions] + ["Some words never seen!", ""]
    expected = model.decision_function(vectorizer.transform([cleaner(q) for q in queries]))
    assert loaded.styles == list(model.classes_)
    np.testing.assert_allclose(loaded.scores(queries), expected, rtol=1e-4, atol=1e-5)


def test_classifier_file_errors_name_the_file(tmp_path, demo_data):
    from ofa_sic.metrics.style_classifier import StyleClassifier

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, vocabulary=np.array([{"a": 1}], dtype=object), idf=np.ones(1), coef=np.ones((1, 1)),
             intercept=np.ones(1), styles=np.array(["A"]), settings=np.array("{}"))
    with pytest.raises(ValueError, match="pickled.npz is not an ofa_sic style classifier"):
        StyleClassifier.load(str(pickled))
    with pytest.raises(FileNotFoundError, match="ofa-sic style-classifier --data DIR"):
        StyleClassifier.load(str(tmp_path / "missing.npz"))
    code, _, stderr = ofa_sic("style-classifier", "--data", tmp_path, "--out", tmp_path / "c.npz")
    assert code == 2 and "train.tsv not found" in stderr


# ---- diversity and style sensitivity -----------------------------------------------------------

def test_diversity_equals_hand_counts():
    from ofa_sic.metrics.diversity import diversity, training_caption_set

    captions = ["A red circle.", "a red square", "a red circle", "Blue!"]
    training = training_caption_set(["a red circle", "two blue squares"])
    figures = diversity(captions, training)
    # words: [a red circle] [a red square] [a red circle] [blue] -> 10 words, 5 distinct
    # bigrams: a-red, red-circle, a-red, red-square, a-red, red-circle -> 6, 3 distinct
    assert figures == {"distinct-1": 100 * 5 / 10, "distinct-2": 100 * 3 / 6, "vocabulary": 5,
                       "mean_length": 10 / 4, "copied_from_train": 100 * 2 / 4}
    assert "copied_from_train" not in diversity(captions, None)
    assert diversity(["one"], None)["distinct-2"] == 0.0


def test_style_sensitivity_is_zero_for_a_style_blind_model_and_one_hundred_for_distinct_captions():
    from ofa_sic.metrics.style_sensitivity import caption_in_styles, style_sensitivity, styles_for_image

    names = ["S0", "S1", "S2", "S3", "S4", "S5", "S6"]
    own = ["S0", "S3", "S6", "S1", "S2"]
    assert styles_for_image(3, 7, 3) == [3, 5, 0] and styles_for_image(0, 7, 7) == list(range(7))
    calls = []

    def style_blind(rows, styles):  # a captioner that never looks at the style
        calls.append(list(rows))
        return [f"a picture of image {row}" for row in rows]

    styles, captions = caption_in_styles(style_blind, own, names, 3, rows_per_call=2)
    assert [row[0] for row in styles] == own and all(len(set(row)) == 3 for row in styles)
    assert calls == [[0, 0, 0, 1, 1, 1], [2, 2, 2, 3, 3, 3], [4, 4, 4]]
    assert style_sensitivity(captions) == {"num_images": 5, "styles_per_image": 3, "images_with_differing_captions": 0.0,
                                           "differing_pairs": 0.0, "mean_pairwise_word_overlap": 100.0}

    def style_aware(rows, styles):
        return [f"image {row} {style.lower()}" for row, style in zip(rows, styles)]

    _, captions = caption_in_styles(style_aware, own, names, 3, rows_per_call=4)
    figures = style_sensitivity(captions)
    assert figures["images_with_differing_captions"] == figures["differing_pairs"] == 100.0
    assert figures["mean_pairwise_word_overlap"] == pytest.approx(100 * 2 / 4)  # {image, n, sX} vs {image, n, sY}

    half = style_sensitivity([["a b", "a b"], ["a b", "c d"]])
    assert half["images_with_differing_captions"] == 50.0 and half["mean_pairwise_word_overlap"] == 50.0
    with pytest.raises(ValueError, match="between 2 and the number of styles"):
        styles_for_image(0, 5, 6)


# ---- ofa-sic evaluate, score-generate, gallery.html ----------------------------------------------

def test_evaluate_reports_style_figures_overall_and_per_style(demo_data, evaluation, classifier_file):
    from ofa_sic.metrics.diversity import diversity, training_caption_set
    from ofa_sic.metrics.style_accuracy import style_accuracy
    from ofa_sic.metrics.style_classifier import StyleClassifier

    metrics, predictions = evaluation["metrics"], evaluation["predictions"]
    captions, styles = [p["caption"] for p in predictions], [p["style"] for p in predictions]
    training = training_caption_set(r.captions[0] for r in split_rows(demo_data, "train"))
    classifier = StyleClassifier.load(str(classifier_file[0]))
    expected, expected_per_style = style_accuracy(classifier, captions, styles)
    for key in ("distinct-1", "distinct-2", "vocabulary", "mean_length", "copied_from_train"):
        assert metrics["overall"][key] == pytest.approx(diversity(captions, training)[key])
    for key in ("style_top1", "style_top5", "reference_style_top1", "reference_style_top5"):
        assert key in metrics["overall"]
    assert metrics["overall"]["style_top1"] == pytest.approx(expected["style_top1"])
    for style, scores in metrics["per_style"].items():
        mine = [c for c, s in zip(captions, styles) if s == style]
        assert scores["num_samples"] == len(mine)
        assert scores["distinct-1"] == pytest.approx(diversity(mine, training)["distinct-1"])
        assert scores["style_top1"] == pytest.approx(expected_per_style[style]["style_top1"])
    settings = metrics["style_figures"]
    assert settings["style_classifier"]["path"] == str(classifier_file[0].resolve())
    assert settings["training_captions"] == str((demo_data["data"] / "train.tsv").resolve())
    assert metrics["styles_per_image"] == 3
    assert "style figures" in evaluation["stdout"] and "ref-top1" in evaluation["stdout"]


def test_evaluate_styles_per_image_reports_sensitivity(evaluation):
    sensitivity = evaluation["metrics"]["style_sensitivity"]
    assert sensitivity["num_images"] == len(evaluation["predictions"]) and sensitivity["styles_per_image"] == 3
    for key in ("images_with_differing_captions", "differing_pairs", "mean_pairwise_word_overlap", "style_top1"):
        assert 0 <= sensitivity[key] <= 100
    assert re.search(r"style sensitivity over 12 images in 3 styles each", evaluation["stdout"])


def test_gallery_has_style_chart_and_several_styles_section(evaluation):
    from ofa_sic.evaluation.gallery_style import MULTI_STYLE_SHOWN

    page = (evaluation["out"] / "gallery.html").read_text()
    metrics = evaluation["metrics"]
    chart = re.search(r'<figure id="style-chart".*?</figure>', page, re.S).group(0)
    chart_styles = re.findall(r'<div class="chart-row"><span><a href="#style-\d+">([^<]+)</a>', chart)
    assert chart_styles == list(metrics["per_style"])  # best CIDEr first
    assert chart.count('class="bar cider"') == chart.count('class="bar accuracy"') == len(metrics["per_style"])
    assert chart.count('class="ceiling"') == len(metrics["per_style"])
    section = re.search(r'<div id="styles-per-image".*?</div></div></div>', page, re.S).group(0)
    cards = re.findall(r'<div class="multi-card".*?</table></div>', section, re.S)
    assert len(cards) == min(MULTI_STYLE_SHOWN, len(evaluation["predictions"]))
    for card, prediction in zip(cards, evaluation["predictions"]):
        assert card.count("<tr") == 3 and card.count("classified ") == 3
        assert re.search(r'<tr class="own"><td>' + re.escape(prediction["style"]), card)
    assert "<script" not in page


def test_score_generate_gives_the_same_style_figures(demo_data, training_runs, evaluation, classifier_file, tmp_path):
    output = tmp_path / "generate-test.txt"
    result = run_command([fairseq_command("fairseq-generate"), demo_data["data"], "--user-dir", REPO_ROOT / "ofa_sic",
                          "--task", "style_caption", "--patch-image-size", "96", "--cpu", "--bpe-dir", demo_data["bpe"],
                          "--path", training_runs["ce"] / "checkpoint_best.pt", "--gen-subset", "test", "--beam", "5",
                          "--max-len-b", "16", "--no-repeat-ngram-size", "3", "--batch-size", "6"])
    output.write_text(result.stdout)
    metrics_file = tmp_path / "metrics.json"
    code, stdout, stderr = ofa_sic("score-generate", "--generate-output", output, "--data", demo_data["data"],
                                   "--metrics", metrics_file, "--stage", "ce", "--style-classifier", classifier_file[0])
    assert code == 0, stderr
    stage = json.loads(metrics_file.read_text())["ce"]
    evaluated = evaluation["metrics"]
    for key in ("style_top1", "style_top5", "reference_style_top1", "distinct-1", "distinct-2", "vocabulary",
                "mean_length", "copied_from_train"):
        assert stage[key] == pytest.approx(evaluated["overall"][key]), key
        for style, figures in stage["per_style"].items():
            assert figures[key] == pytest.approx(evaluated["per_style"][style][key]), (style, key)
    assert "ref-top1" in stdout


def test_evaluate_refuses_a_classifier_of_other_styles_before_generating(demo_data, training_runs, tmp_path):
    from ofa_sic.metrics.style_classifier import train_style_classifier

    other = tmp_path / "other.npz"
    train_style_classifier(["a happy dog", "a happy cat", "a sad dog", "a sad cat"] * 2,
                           ["Happy", "Happy", "Gloomy", "Gloomy"] * 2).save(str(other))
    code, stdout, stderr = ofa_sic("evaluate", "--path", training_runs["ce"] / "checkpoint_best.pt", "--data",
                                   demo_data["data"], "--bpe-dir", demo_data["bpe"], "--out", tmp_path / "out", "--cpu",
                                   "--style-classifier", other)
    assert code == 2 and "was not trained on" in stderr and "'Formal'" in stderr
    assert "captioning" not in stderr and not (tmp_path / "out" / "metrics.json").exists()


# ---- pictures of training ------------------------------------------------------------------------

def test_plot_draws_the_curves_of_two_demo_runs(training_runs, tmp_path):
    from PIL import Image

    from ofa_sic.evaluation.training_log import read_training_log
    from ofa_sic.evaluation.training_plot import plot_training_curves

    out = tmp_path / "curves.png"
    logs = [training_runs["ce"] / "train.log", training_runs["scst"] / "train.log"]
    code, stdout, stderr = ofa_sic("plot", *logs, "--out", out)
    assert code == 0, stderr
    # ce and scst: train loss, valid loss, valid CIDEr-D (2 curves each); scst: score, advantage (1 each)
    assert "5 panels, 8 curves" in stdout
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 1000
    figure, panels = plot_training_curves([read_training_log(str(p)) for p in logs], ["ce", "scst"], str(tmp_path / "b.png"))
    lines = {ax.get_title(): [line.get_label() for line in ax.get_lines()] for ax in figure.axes if ax.get_visible()}
    assert sum(len(labels) for labels in lines.values()) == 8
    assert lines["SCST score (mean CIDEr-D reward)"] == ["scst"] and lines["valid CIDEr-D"] == ["ce", "scst"]
    ce = read_training_log(str(logs[0]))
    assert sorted(ce.train("loss")) == [2, 4, 6, 8, 10, 12] and sorted(ce.valid["valid"]["cider"]) == [6, 12]

    code, _, stderr = ofa_sic("plot", logs[0], "--name", "a", "--name", "b", "--out", out)
    assert code == 2 and "one --name per log" in stderr
    not_a_log = tmp_path / "notes.txt"
    not_a_log.write_text("hello\n")
    code, _, stderr = ofa_sic("plot", not_a_log, "--out", out)
    assert code == 2 and "notes.txt: no fairseq-train progress lines" in stderr


def read_log_value(path, kind, metric):
    from ofa_sic.evaluation.training_log import read_training_log

    log = read_training_log(str(path))
    series = log.valid["valid"][metric] if kind == "valid" else log.train(metric)
    return [series[update] for update in sorted(series)]


def test_tensorboard_logdir_records_the_plugins_values(training_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(folder):
        accumulator = EventAccumulator(str(folder))
        accumulator.Reload()
        return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}

    ce_valid = scalars(training_runs["ce"] / "tb" / "valid")
    assert [step for step, _ in ce_valid["cider"]] == [6, 12] and "loss" in ce_valid
    ce_log = read_log_value(training_runs["ce"] / "train.log", "valid", "cider")
    assert [value for _, value in ce_valid["cider"]] == pytest.approx(ce_log, abs=1e-6)
    scst_inner = scalars(training_runs["scst"] / "tb" / "train_inner")
    for tag in ("score", "advantage", "loss", "share_generate"):
        assert [step for step, _ in scst_inner[tag]] == [2, 4], tag
