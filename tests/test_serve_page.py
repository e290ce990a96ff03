"""The page of `ofa-sic serve`, driven in a real headless Chromium through selenium: choose an image, pick three
styles (one found with the search box), read three captions equal to `ofa-sic caption`'s."""
import shutil
from urllib.parse import urlparse

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from serve_helpers import RunningServer, captions_of_ofa_sic_caption, demo_images

#: Debian's package names and the programs they install
CHROMIUM = {"chromium": "chromium", "chromedriver": "chromium-driver"}


@pytest.fixture(scope="module")
def browser():
    missing = [f"{program} (Debian package {package})" for program, package in CHROMIUM.items()
               if shutil.which(program) is None]
    if missing:
        pytest.skip(f"Chromium is not installed: {', '.join(missing)} not found; `make install` installs them "
                    f"(apt-get install -y {' '.join(CHROMIUM.values())})")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-proxy-server",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(varied_checkpoint, demo_data, tmp_path_factory):
    running = RunningServer(varied_checkpoint, demo_data, tmp_path_factory.mktemp("serve_page") / "serve.log")
    yield running
    running.stop()


def style_box(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f'input.style-option[value="{name}"]')


def test_choose_an_image_pick_three_styles_read_three_captions(browser, server, varied_checkpoint, demo_data):
    image = demo_images(demo_data, 1)[0]
    expected = captions_of_ofa_sic_caption(varied_checkpoint, demo_data, [image])
    wait = WebDriverWait(browser, 60)
    browser.get(server.url)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "input.style-option")) == 5)

    browser.find_element(By.ID, "image-input").send_keys(str(image))
    wait.until(lambda d: d.find_element(By.ID, "preview").is_displayed())

    search = browser.find_element(By.ID, "style-search")
    search.send_keys("gloo")
    visible = [box.get_attribute("value") for box in browser.find_elements(By.CSS_SELECTOR, "input.style-option")
               if box.is_displayed()]
    assert visible == ["Gloomy"]
    style_box(browser, "Gloomy").click()
    search.clear()
    search.send_keys(" ")  # an input event with no words: every style shows again
    for name in ("Happy", "Sarcastic"):
        style_box(browser, name).click()

    browser.find_element(By.ID, "caption-button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.result")) == 3)
    rows = [[cell.get_attribute("textContent") for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "tr.result")]
    picked = ["Gloomy", "Happy", "Sarcastic"]  # in the order picked
    assert [row[0] for row in rows] == picked
    assert [row[1] for row in rows] == [expected[(str(image), name)] for name in picked]
    assert all(row[2].endswith(" s") and float(row[2][:-2]) > 0 for row in rows)
    assert browser.find_element(By.ID, "status").text.startswith("Done in")

    # Offline: everything the page loaded came from the server itself.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and {urlparse(url).netloc for url in loaded} == {urlparse(server.url).netloc}
