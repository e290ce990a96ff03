"""`ofa-sic serve`, the real server in a subprocess on a free loopback port: captions equal to `ofa-sic caption`'s,
one 4xx with a `detail` per bad input (and the server goes on), concurrent requests each with their own captions."""
import io
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from serve_helpers import RunningServer, captions_of_ofa_sic_caption, demo_images, loopback

#: small limits, so the tests' oversized inputs stay small
LIMITS = ("--max-upload-mb", "0.5", "--max-megapixels", "1", "--max-styles", "4", "--batch-wait-ms", "50")


@pytest.fixture(scope="module")
def server(varied_checkpoint, demo_data, tmp_path_factory):
    running = RunningServer(varied_checkpoint, demo_data, tmp_path_factory.mktemp("serve") / "serve.log", *LIMITS)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def images(demo_data):
    return demo_images(demo_data, 6)


@pytest.fixture(scope="module")
def expected(varied_checkpoint, demo_data, images):
    return captions_of_ofa_sic_caption(varied_checkpoint, demo_data, images)


def post_caption(server, image_path, styles, timeout=120):
    with open(image_path, "rb") as image:
        return loopback().post(server.url + "caption", files={"image": (image_path.name, image)},
                             data={"style": list(styles)}, timeout=timeout)


def health(server):
    response = loopback().get(server.url + "health", timeout=30)
    assert response.status_code == 200
    return response.json()


def test_styles_health_page_and_openapi(server, demo_data):
    styles = (demo_data["data"] / "styles.txt").read_text().splitlines()
    assert loopback().get(server.url + "styles", timeout=30).json() == {"styles": styles}
    state = health(server)
    assert state["status"] == "ok" and state["device"] == "cpu" and state["styles"] == len(styles)
    assert (state["generation"]["beam"], state["generation"]["max_len_b"]) == (5, 16)  # the evaluation settings
    assert state["limits"] == {"max_upload_bytes": 500_000, "max_pixels": 1_000_000, "max_styles": 4}
    page = loopback().get(server.url, timeout=30)
    assert page.status_code == 200 and 'id="style-search"' in page.text
    assert "/caption" in loopback().get(server.url + "openapi.json", timeout=30).json()["paths"]


def test_three_styles_equal_ofa_sic_caption_in_one_generation_call(server, images, expected):
    before = health(server)["batching"]
    response = post_caption(server, images[0], ["happy", "  GLOOMY ", "Sweet"])
    assert response.status_code == 200, response.text
    answer = response.json()
    wanted = ["Happy", "Gloomy", "Sweet (Kind)"]  # canonical names, in the order asked
    assert [c["style"] for c in answer["captions"]] == wanted
    assert [c["caption"] for c in answer["captions"]] == [expected[(str(images[0]), name)] for name in wanted]
    assert all(0 < c["seconds"] <= answer["seconds"] for c in answer["captions"])
    with Image.open(images[0]) as image:
        assert answer["image"] == {"width": image.width, "height": image.height}
    after = health(server)["batching"]
    assert (after["generation_calls"] - before["generation_calls"], after["rows_captioned"] - before["rows_captioned"]) \
        == (1, 3)  # the image decoded once, its three styles in one call


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def bad_requests(images):
    """(name, requests.post keyword arguments, expected status, a phrase of the detail)."""
    real = png_bytes(Image.open(images[0]))
    noise = png_bytes(Image.effect_noise((64, 64), 60).convert("RGB"))
    corrupt = bytearray(noise)
    start = corrupt.index(b"IDAT") + 20
    corrupt[start:start + 200] = bytes(200)
    # 2000 x 2000 = 4 megapixels in the header, and only half the pixel data: refused from the header (413), where
    # decoding would have found the truncation (422).
    bomb = png_bytes(Image.new("L", (2000, 2000)))
    bomb = bomb[:len(bomb) // 2]
    happy = {"style": ["Happy"]}
    return [
        ("not an image", dict(files={"image": ("notes.png", b"plain text, no picture")}, data=happy), 415,
         "notes.png: not an image"),
        ("truncated", dict(files={"image": ("cut.png", real[:len(real) // 2])}, data=happy), 422, "truncated or corrupt"),
        ("corrupt", dict(files={"image": ("broken.png", bytes(corrupt))}, data=happy), 422, "truncated or corrupt"),
        ("decompression bomb", dict(files={"image": ("bomb.png", bomb)}, data=happy), 413,
         "2000x2000 = 4000000 pixels, over the limit of 1000000"),
        ("upload over the size limit", dict(files={"image": ("big.png", bytes(600_000))}, data=happy), 413,
         "over the limit of 500000 bytes"),
        ("no style", dict(files={"image": ("a.png", real)}), 422, "no style"),
        ("unknown style", dict(files={"image": ("a.png", real)}, data={"style": ["Happy", "Sarcstic"]}), 422,
         "unknown style 'Sarcstic'"),
        ("too many styles", dict(files={"image": ("a.png", real)}, data={"style": ["Happy"] * 5}), 422,
         "too many styles: 5 given, at most 4"),
        ("no image", dict(data=happy), 422, "no image"),
    ]


def test_each_bad_input_gets_its_4xx_with_detail_and_the_server_goes_on(server, images, expected):
    for name, request, status, phrase in bad_requests(images):
        response = loopback().post(server.url + "caption", timeout=60, **request)
        assert response.status_code == status, (name, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and phrase in detail, (name, detail)
        good = post_caption(server, images[1], ["Formal"])
        assert good.status_code == 200, (name, good.text)
        assert [(c["style"], c["caption"]) for c in good.json()["captions"]] == [
            ("Formal", expected[(str(images[1]), "Formal")])]


def test_chunked_upload_without_length_is_refused(server, images):
    prepared = requests.Request("POST", server.url + "caption", files={"image": ("a.jpg", images[0].read_bytes())},
                                data={"style": "Happy"}).prepare()
    response = loopback().post(server.url + "caption", data=iter([prepared.body]), timeout=60,
                             headers={"Content-Type": prepared.headers["Content-Type"]})
    assert response.status_code == 411 and "Content-Length" in response.json()["detail"]


def test_concurrent_requests_each_get_their_own_captions(server, images, expected):
    styles = ["Happy", "Sweet (Kind)", "Formal", "Gloomy", "Sarcastic"]
    asked = [(image, [styles[(i + k) % len(styles)] for k in range(1 + i % 3)]) for i, image in enumerate(images)] * 2
    wanted = [[expected[(str(image), style)] for style in names] for image, names in asked]
    assert len({tuple(w) for w in wanted}) > len(images) // 2  # the captions tell most requests apart
    before = health(server)["batching"]
    with ThreadPoolExecutor(len(asked)) as pool:
        responses = list(pool.map(lambda request: post_caption(server, *request), asked))
    assert [r.status_code for r in responses] == [200] * len(asked)
    assert [[c["caption"] for c in r.json()["captions"]] for r in responses] == wanted
    after = health(server)["batching"]
    assert after["rows_captioned"] - before["rows_captioned"] == sum(len(names) for _, names in asked)


def test_a_caption_does_not_depend_on_the_rows_it_is_batched_with(varied_checkpoint, demo_data, images):
    """The server's generation call (Captioner.caption_rows) on mixed rows equals each row captioned alone, also
    where prompts differ in length and the length limit grows with the prompt (text styles, max_len_a > 0).
    (With token styles and max_len_a 0 the other tests show it: `ofa-sic caption` batches its rows otherwise.)"""
    from ofa_sic.data.images import decode_image
    from ofa_sic.data.prompts import StylePrompt
    from ofa_sic.generation.captioner import Captioner
    from ofa_sic.generation.options import GenerationOptions

    captioner = Captioner(str(varied_checkpoint), GenerationOptions(beam=2, max_len_a=0.5, max_len_b=4),
                          data=str(demo_data["data"]), bpe_dir=str(demo_data["bpe"]), cpu=True)
    task = captioner.task
    task.prompt = StylePrompt(task.prompt.template, "text", task.styles, task.codec)
    styles = task.styles.names
    pixels = [captioner.image_tensor(decode_image(str(path))) for path in images[:3]]
    rows = [(pixels[i % 3], styles[i % len(styles)]) for i in range(6)]
    assert len({len(task.prompt(style)) for _, style in rows}) > 1  # prompts of several lengths
    alone = [captioner.caption_rows([image], [style])[0] for image, style in rows]
    together = captioner.caption_rows([image for image, _ in rows], [style for _, style in rows])
    assert together == alone
    assert len(set(alone)) > 1


def test_an_overloaded_server_answers_503_at_once_and_goes_on(varied_checkpoint, demo_data, images, expected,
                                                                tmp_path):
    """With --max-waiting 2, a request of 3 styles would pass the rows that may wait: it is refused whole
    with 503 and Retry-After, and a request within the limit is captioned."""
    busy = RunningServer(varied_checkpoint, demo_data, tmp_path / "serve.log", "--max-waiting", "2")
    try:
        response = post_caption(busy, images[0], ["Happy", "Formal", "Gloomy"])
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert "over the server's --max-waiting 2" in response.json()["detail"]
        good = post_caption(busy, images[0], ["Happy", "Formal"])
        assert good.status_code == 200
        assert [c["caption"] for c in good.json()["captions"]] == [expected[(str(images[0]), s)] for s in ("Happy", "Formal")]
    finally:
        busy.stop()


def test_the_batcher_refuses_a_request_whole_when_too_many_rows_wait():
    import threading

    import torch

    from ofa_sic.serve.batcher import CaptionBatcher, QueueFullError

    release, started = threading.Event(), threading.Event()

    def slow_captions(pixels, styles):
        started.set()
        release.wait(30)
        return [f"{style} caption" for style in styles]

    batcher = CaptionBatcher(slow_captions, max_batch=1, max_wait_s=0.0, max_waiting=2)
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    first = batcher.submit(image, ["a"])
    assert started.wait(30)  # the worker holds row "a"; nothing waits
    waiting = batcher.submit(image, ["b", "c"])  # 2 rows wait: the limit
    with pytest.raises(QueueFullError, match="2 rows are waiting .* adds 1, over the server's --max-waiting 2"):
        batcher.submit(image, ["d"])
    release.set()
    assert [f.result(30).caption for f in first + waiting] == ["a caption", "b caption", "c caption"]
    assert batcher.submit(image, ["e"])[0].result(30).caption == "e caption"  # room again
    batcher.stop()
