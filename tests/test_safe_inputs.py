"""Data files run no code, images decode as people see them, bad data is caught before the work, and
`ofa-sic evaluate` fails before generating (real commands: ofa-sic, fairseq-train, fairseq-generate)."""
import base64
import os
import pickle
import shutil
import subprocess
from collections import defaultdict

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import common_args, fairseq_command, ofa_sic, train_script_command, train_script_env

UTF8_BOM = "\ufeff"


# ---- pickles ----------------------------------------------------------------------------------------


class _RunsShellCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_df_pickle_with_a_reduce_payload_is_refused_and_the_payload_never_runs(tmp_path):
    from ofa_sic.metrics.cider_d import CiderD
    from ofa_sic.metrics.document_frequency import DocumentFrequencyError

    marker = tmp_path / "payload-ran"
    path = tmp_path / "coco-train-words.p"
    path.write_bytes(pickle.dumps({"document_frequency": _RunsShellCommand(f"touch {marker}"), "ref_len": 3}))
    with pytest.raises(DocumentFrequencyError) as info:
        CiderD(df=str(path))
    message = str(info.value)
    assert str(path) in message and "system" in message and "refused" in message.lower(), message
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_plain_df_pickles_of_every_protocol_load(tmp_path, protocol):
    from ofa_sic.metrics.document_frequency import load_document_frequency

    path = tmp_path / "words.p"
    table = defaultdict(float, {("a",): 2.0, ("a", "man"): 1.0})
    path.write_bytes(pickle.dumps({"document_frequency": table, "ref_len": 2}, protocol=protocol))
    loaded = load_document_frequency(str(path))
    assert dict(loaded["document_frequency"]) == dict(table) and loaded["ref_len"] == 2


# ---- images -----------------------------------------------------------------------------------------


def gradient(height=48, width=64, channels=None) -> np.ndarray:
    """A smooth uint8 picture (JPEG keeps it almost exactly), [H, W] or [H, W, channels]."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * 255 // (width - 1)), (y * 255 // (height - 1)), ((x + y) * 255 // (width + height - 2))]
    if channels is None:
        return planes[0].astype(np.uint8)
    return np.stack(planes[:channels], axis=-1).astype(np.uint8)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_16_bit_png_gives_the_pixels_of_its_8_bit_version_everywhere(tmp_path):
    from ofa_sic.cli.caption import open_image
    from ofa_sic.data.images import decode_base64_image
    from ofa_sic.data.images import decode_image
    from ofa_sic.data.prepared_layout import encode_image

    eight, sixteen = tmp_path / "gray8.png", tmp_path / "gray16.png"
    Image.fromarray(gradient(), "L").save(eight)
    Image.fromarray(gradient().astype(np.uint16) * 257).save(sixteen)
    with Image.open(sixteen) as raw:
        assert raw.mode.startswith("I")
        assert pixels(raw.convert("RGB")).mean() > 250  # Pillow's own conversion clips: almost white
    expected = pixels(Image.open(eight).convert("RGB"))
    assert np.array_equal(pixels(decode_image(str(sixteen))), expected)  # the one decoder
    assert np.array_equal(pixels(open_image(str(sixteen))), expected)  # ofa-sic caption
    data = base64.urlsafe_b64encode(sixteen.read_bytes()).decode()
    assert np.array_equal(pixels(decode_base64_image(data)), expected)  # the datasets
    assert encode_image(str(sixteen), 480) == encode_image(str(eight), 480)  # prepare-pcap


def test_exif_rotated_jpeg_gives_the_pixels_of_its_upright_version(tmp_path):
    from ofa_sic.cli.caption import open_image
    from ofa_sic.data.images import decode_base64_image
    from ofa_sic.data.images import decode_image
    from ofa_sic.data.prepared_layout import encode_image

    upright, rotated = tmp_path / "upright.jpg", tmp_path / "rotated.jpg"
    Image.fromarray(gradient(channels=3)).save(upright, quality=100, subsampling=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": stored turned a quarter counterclockwise
    Image.fromarray(gradient(channels=3)).transpose(Image.Transpose.ROTATE_90).save(
        rotated, quality=100, subsampling=0, exif=exif)
    with Image.open(rotated) as raw:
        assert raw.size == (48, 64)  # as stored
    expected = pixels(decode_image(str(upright)))
    decoded = {
        "decode_image": decode_image(str(rotated)),
        "caption": open_image(str(rotated)),
        "dataset": decode_base64_image(base64.urlsafe_b64encode(rotated.read_bytes()).decode()),
        "prepare-pcap": decode_base64_image(encode_image(str(rotated), 480)),
    }
    for where, image in decoded.items():
        assert pixels(image).shape == expected.shape == (48, 64, 3), where
        tolerance = 8 if where == "prepare-pcap" else 3  # prepare-pcap re-encodes at its JPEG quality
        assert np.abs(pixels(image) - expected).max() <= tolerance, where


def test_transparent_png_is_composited_over_white(tmp_path):
    from ofa_sic.data.images import decode_image

    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert pixels(decode_image(str(path))).min() == 255


# ---- data checks ------------------------------------------------------------------------------------


def edit_line(path, number, edit):
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[number - 1] = edit(lines[number - 1])
    path.write_text("\n".join(lines), encoding="utf-8")


def set_column(column, value):
    return lambda line: "\t".join(value if i == column else field for i, field in enumerate(line.split("\t")))


@pytest.fixture
def broken_data(demo_data, tmp_path):
    """The demo data with a BOM, an empty caption, an unknown style and a 4-column row in train.tsv, and a BOM
    and an empty reference in test.tsv."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("styles.txt", "train.tsv", "valid.tsv", "test.tsv", "train-words.p"):
        shutil.copy(demo_data["data"] / name, folder / name)
    train, test = folder / "train.tsv", folder / "test.tsv"
    edit_line(train, 1, lambda line: UTF8_BOM + line)
    edit_line(train, 3, set_column(3, " ... "))
    edit_line(train, 5, set_column(2, "Grumpyish"))
    edit_line(train, 7, lambda line: line.rsplit("\t", 1)[0])
    edit_line(test, 1, lambda line: UTF8_BOM + line)
    edit_line(test, 2, set_column(3, "a dog on the grass&& &&a cat"))
    return folder


def test_check_data_reports_every_problem_with_file_and_line(broken_data, demo_data):
    code, out, _ = ofa_sic("check-data", broken_data)
    train, test = broken_data / "train.tsv", broken_data / "test.tsv"
    assert code == 2
    for expected in (f"{train}:1: starts with a UTF-8 byte-order mark", f"{train}:3: empty caption ' ... '",
                     f"{train}:5: unknown style 'Grumpyish'", f"{train}:7: expected 5 tab-separated columns",
                     f"{test}:1: starts with a UTF-8 byte-order mark", f"{test}:2: reference 2 of 3 is empty"):
        assert expected in out, (expected, out)
    assert len(out.strip().splitlines()) == 6, out
    assert ofa_sic("check-data", demo_data["data"])[0] == 0


def test_training_refuses_the_data_before_the_first_update(broken_data, demo_data, tmp_path):
    env = dict(os.environ, **dict(train_script_env(demo_data, tmp_path / "ckpt"), DATA=str(broken_data)))
    result = subprocess.run(train_script_command(2), capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode != 0
    assert f"{broken_data / 'train.tsv'}:3: empty caption" in result.stderr, result.stderr[-3000:]
    assert "4 problem(s) in the data" in result.stderr
    assert "num_updates" not in result.stdout and not list((tmp_path / "ckpt").glob("*.pt"))


def test_fairseq_generate_refuses_an_empty_reference_before_generating(broken_data, demo_data, stage1_checkpoint):
    result = subprocess.run([
        fairseq_command("fairseq-generate"), broken_data, *common_args(), "--bpe-dir", demo_data["bpe"],
        "--path", stage1_checkpoint,
        "--gen-subset", "test", "--beam", "2", "--batch-size", "4",
    ], capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert result.returncode != 0
    assert f"{broken_data / 'test.tsv'}:2: reference 2 of 3 is empty" in result.stderr, result.stderr[-3000:]
    assert not [line for line in result.stdout.splitlines() if line.startswith(("H-", "D-"))]


# ---- ofa-sic evaluate: output folder and checkpoint before the work ---------------------------------


@pytest.fixture
def no_generation(monkeypatch):
    from ofa_sic.generation.captioner import Captioner

    def forbidden(*args, **kwargs):
        raise AssertionError("captions were generated")

    monkeypatch.setattr(Captioner, "caption_batch", forbidden)


def evaluate(checkpoint, data, bpe, out, *extra):
    return ofa_sic("evaluate", "--path", checkpoint, "--data", data, "--bpe-dir", bpe, "--split", "test",
                       "--out", out, "--cpu", "--no-meteor", *extra)


def test_evaluate_refuses_bom_and_empty_reference_before_generating(broken_data, demo_data, stage1_checkpoint,
                                                                    tmp_path, no_generation):
    out = tmp_path / "eval"
    code, _, err = evaluate(stage1_checkpoint, broken_data, demo_data["bpe"], out)
    assert code == 2
    assert f"{broken_data / 'test.tsv'}:1: starts with a UTF-8 byte-order mark" in err
    assert f"{broken_data / 'test.tsv'}:2: reference 2 of 3 is empty" in err
    assert not out.exists()


def test_evaluate_into_a_folder_it_cannot_write_fails_before_any_work(demo_data, stage1_checkpoint, tmp_path,
                                                                     monkeypatch):
    """Tests run as root, who may write into any folder: the unwritable --out lies under a regular file."""
    from ofa_sic.generation import captioner

    monkeypatch.setattr(captioner.Captioner, "__init__", lambda *a, **k: pytest.fail("the checkpoint was loaded"))
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    code, _, err = evaluate(stage1_checkpoint, demo_data["data"], demo_data["bpe"], blocker / "eval")
    assert code == 2 and "cannot be created" in err and str(blocker) in err, err

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    code, _, err = evaluate(stage1_checkpoint, demo_data["data"], demo_data["bpe"], earlier)
    assert code == 2 and "--overwrite" in err and "metrics.json" in err, err


def test_evaluate_names_a_bad_checkpoint_in_one_line_and_leaves_no_folder(demo_data, stage1_checkpoint, tmp_path,
                                                                         no_generation):
    data = stage1_checkpoint.read_bytes()
    bad = {"truncated.pt": data[: len(data) // 3], "empty.pt": b"", "notes.pt": b"not a checkpoint\n"}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain-state-dict.pt")
    for name in list(bad) + ["plain-state-dict.pt"]:
        out = tmp_path / f"eval-{name}"
        code, _, err = evaluate(tmp_path / name, demo_data["data"], demo_data["bpe"], out)
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and str(tmp_path / name) in err, (name, err)
        assert not out.exists(), name
