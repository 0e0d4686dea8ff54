"""The Gradio Space served on 127.0.0.1 with a ``tiny`` pipeline: driven through ``gradio_client``
(generate, try-on, interpolate, mesh export, a bad request, eight concurrent requests with a bounded
temporary folder) and through a real headless Chromium (Debian's ``chromium`` and ``chromedriver``,
driven by Selenium): load the page, click Generate, wait for the image, save a screenshot, then dress
person A in person B's clothes."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

gr = pytest.importorskip("gradio", reason="the Space needs the [space] extra: pip install -e '.[space]'")
gradio_client = pytest.importorskip("gradio_client")

from semantichuman_hd.parts import NUM_PARTS  # noqa: E402

from test_space_app import SCENE, SEED_A, SEED_B, SIZE, load_app  # noqa: E402

KEPT_FILES = 3
"""The served app's temporary folder keeps this many files (fewer than the concurrent requests)."""

CONCURRENT_REQUESTS = 8

BROWSER_TIMEOUT_S = 120
"""Longest wait for the page and for the rendered image (a busy 2-core machine is slow)."""

SCREENSHOT_DIR_ENV = "SEMANTICHUMAN_SCREENSHOT_DIR"
"""Where the browser test also copies its screenshot, when set (it is always in the test's tmp_path)."""

CHROMIUM_BINARIES = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1200",
)
"""Headless Chromium as root on a machine without network or GPU."""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a free 127.0.0.1 port: ``(space, url)``."""
    app = load_app()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small renders: threads only contend on a busy machine
    model = app.load_model(preset="tiny", device="cpu")
    model.pipeline.set_progress_bar_config(disable=True)
    space = app.SemanticHumanSpace(model, app.BoundedTempFiles(max_files=KEPT_FILES, root=tmp_path_factory.mktemp("served_files")))
    demo = app.build_demo(space)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # no network
        app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        yield space, demo.local_url
        demo.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client(served, tmp_path_factory):
    return gradio_client.Client(served[1], verbose=False, download_files=str(tmp_path_factory.mktemp("client_downloads")))


def picture(path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_the_api_lists_every_button(client):
    endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/generate", "/render", "/random_seed", "/reroll_part", "/try_on", "/try_on_seeds", "/interpolate", "/turntable", "/export_mesh"} <= endpoints


def test_generate_try_on_interpolate_and_mesh_through_the_client(client):
    trimesh = pytest.importorskip("trimesh")
    out = client.predict(SEED_A, ["tops"], *[SEED_B] * NUM_PARTS, *SCENE, api_name="/generate")
    assert list(out[:NUM_PARTS]) == [SEED_A, SEED_B, SEED_A, SEED_A, SEED_A, SEED_A]
    for path in out[NUM_PARTS : NUM_PARTS + 4]:
        assert picture(path).shape == (SIZE, SIZE, 3)
    assert "Part seeds: body 3, tops 11" in out[-1]

    person_b, dressed, semantic, info = client.predict(*[SEED_A] * NUM_PARTS, SEED_B, ["tops", "bottoms"], *SCENE, api_name="/try_on")
    assert picture(dressed).shape == picture(person_b).shape == picture(semantic).shape == (SIZE, SIZE, 3)
    assert "tops, bottoms" in info

    image, semantic, info = client.predict(*[SEED_A] * NUM_PARTS, "shoes", SEED_B, 0.5, *SCENE, api_name="/interpolate")
    assert picture(image).shape == (SIZE, SIZE, 3) and "50%" in info

    viewer, download = client.predict(*[SEED_A] * NUM_PARTS, "tops", 32, ".glb", True, "walking", None, 0, 1.0, api_name="/export_mesh")
    assert Path(download).suffix == ".glb" and len(trimesh.load(download, force="mesh").faces) > 0


def test_an_uploaded_motion_frame_through_the_client(client, tmp_path):
    from test_space_app import amass_file

    motion = gradio_client.handle_file(str(amass_file(tmp_path / "motion.npz", frames=3)))
    image, *_, info = client.predict(*[SEED_A] * NUM_PARTS, "amass", motion, 2, 0.0, 1.0, "low", api_name="/render")
    assert picture(image).shape == (SIZE, SIZE, 3) and "command line" not in info
    with pytest.raises(gradio_client.exceptions.AppError, match=re.escape("`motion frame` must be a number in [0, 2], got 5")):
        client.predict(*[SEED_A] * NUM_PARTS, "amass", motion, 5, 0.0, 1.0, "low", api_name="/render")


def test_a_bad_request_gets_a_message_not_a_traceback(client):
    with pytest.raises(gradio_client.exceptions.AppError, match="needs an uploaded AMASS .npz"):
        client.predict(*[SEED_A] * NUM_PARTS, "amass", None, 0, 0.0, 1.0, "low", api_name="/render")


def test_eight_concurrent_requests_all_complete_and_files_stay_bounded(client, served):
    space, _ = served
    jobs = [
        client.submit(seed, seed, seed, seed, seed, seed, "person", 32, ".obj", False, *SCENE[:3], 1.0, api_name="/export_mesh")
        for seed in range(CONCURRENT_REQUESTS)
    ]
    results = [job.result(timeout=300) for job in jobs]
    names = sorted(Path(download).name.split("-", 1)[1] for _, download in results)
    assert names == sorted(f"person_seed{seed}.obj" for seed in range(CONCURRENT_REQUESTS)), "every request answered, each with its own mesh"
    assert all(Path(download).stat().st_size > 0 for _, download in results)
    assert len(space.files.files()) <= KEPT_FILES


def find_browser() -> tuple[str, str] | None:
    chromium = next((path for path in map(shutil.which, CHROMIUM_BINARIES) if path), None)
    driver = shutil.which(CHROMEDRIVER)
    return (chromium, driver) if chromium and driver else None


def test_generate_and_try_on_in_a_real_browser(served, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (in the [dev] extra)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = find_browser()
    if browser is None:
        pytest.skip("no chromium and chromedriver on this machine (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser[0]
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=browser[1]), options=options)
    try:
        driver.get(served[1])
        wait = WebDriverWait(driver, BROWSER_TIMEOUT_S)
        warning = wait.until(lambda d: d.find_element(By.ID, "random-weights-warning"))
        assert "randomly initialised" in warning.text and warning.is_displayed()
        seed = driver.find_element(By.CSS_SELECTOR, "#seed input")
        seed.clear()
        seed.send_keys(str(SEED_B))
        driver.find_element(By.ID, "generate").click()
        image = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#image-output img"))
        wait.until(lambda d: f"body {SEED_B}, tops {SEED_B}" in d.find_element(By.ID, "info").text)
        wait.until(lambda d: d.execute_script("const i = arguments[0]; return i.complete && i.naturalWidth > 0;", image))
        assert image.is_displayed() and driver.execute_script("return arguments[0].naturalWidth;", image) == SIZE
        assert image.size["width"] > SIZE, "the small render is shown enlarged"
        assert not driver.find_elements(By.CSS_SELECTOR, ".toast-body.error"), "no error toast"
        screenshot = tmp_path / "space_generate.png"
        assert driver.save_screenshot(str(screenshot))

        try_on = driver.find_element(By.ID, "try-on")  # the first tab: A wears B's clothes
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", try_on)
        dressed = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#try-on-output img"))
        wait.until(lambda d: d.execute_script("const i = arguments[0]; return i.complete && i.naturalWidth > 0;", dressed))
        assert dressed.is_displayed() and not driver.find_elements(By.CSS_SELECTOR, ".toast-body.error")
    finally:
        driver.quit()
    with PIL.Image.open(screenshot) as shot:
        pixels = np.asarray(shot.convert("RGB"))
    assert pixels.shape[0] > 500 and pixels.std() > 10, "the screenshot shows a page"
    keep = os.environ.get(SCREENSHOT_DIR_ENV)
    if keep:  # e.g. a CI artifact folder
        Path(keep).mkdir(parents=True, exist_ok=True)
        screenshot = Path(shutil.copy(screenshot, Path(keep) / screenshot.name))
    print(f"browser screenshot: {screenshot}")
