"""report.html as a person sees it: compare's page and `sample --html`'s, opened from the folder
(file://) in headless Chromium, which takes a screenshot and reports, from inside the page, whether
every picture loaded and every player has a playable source of non-zero length; the page must log
no error. Skipped, saying why, where no Chromium is installed (CI installs Debian's)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_tiny_dataset, run_cli
from seqgate.compare.compare import compare
from seqgate.music import page as page_module
from seqgate.settings import CompareConfig

TINY = dict(params=2000, max_epochs=2, train_options={"batch_size": 4, "window": 24})
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
# As root, in a sandbox with no network: no sandbox of its own, no background connections.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update", "--mute-audio",
                  "--allow-file-access-from-files"]

# A page beside the report that opens it in a frame and writes what it found into its own DOM,
# which --dump-dom prints: the images, the players (after their metadata loaded), the errors.
CHECKER = """<!DOCTYPE html><html><body><pre id="out">waiting</pre>
<iframe id="page" src="%s" style="width:1200px;height:900px"></iframe>
<script>
const errors = [];
const frame = document.getElementById("page");
frame.addEventListener("load", async () => {
  const doc = frame.contentDocument, win = frame.contentWindow;
  win.addEventListener("error", e => errors.push(String(e.message || e)), true);
  const images = [...doc.images].map(img => ({src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0}));
  const audios = await Promise.all([...doc.querySelectorAll("audio")].map(a => new Promise(done => {
    const report = () => done({src: a.getAttribute("src"), duration: a.duration, error: a.error && a.error.code});
    if (a.readyState >= 1 || a.error) { report(); return; }
    a.addEventListener("loadedmetadata", report); a.addEventListener("error", report);
    a.load(); setTimeout(report, 8000);
  })));
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(
      {images, audios, errors, notes: [...doc.querySelectorAll(".note")].map(n => n.textContent)}) + "END";
});
</script></body></html>"""


def open_in_chromium(page: Path, screenshot: Path) -> tuple[dict, str]:
    """What the checker found on `page`, and Chromium's log (console messages included)."""
    checker = page.with_name(".check-" + page.name)
    checker.write_text(CHECKER % page.name)
    try:
        shot = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, "--window-size=1280,2000",
                               f"--screenshot={screenshot}", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
        dump = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, "--enable-logging=stderr", "--v=0",
                               "--virtual-time-budget=15000", "--dump-dom", checker.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        checker.unlink()
    found = re.search(r'<pre id="out">RESULT(.*?)END</pre>', dump.stdout, re.S)
    assert found, (dump.stdout[-2000:], dump.stderr[-2000:])
    return json.loads(html.unescape(found.group(1))), dump.stderr


def assert_seen_whole(found: dict, log: str, images: int, players: int):
    assert len(found["images"]) == images and all(image["ok"] for image in found["images"]), found["images"]
    assert len(found["audios"]) == players, found["audios"]
    for player in found["audios"]:
        assert player["error"] is None and player["duration"] > 1, player
    assert found["errors"] == []
    console_errors = [line for line in log.splitlines() if "CONSOLE" in line and ("rror" in line or "Uncaught" in line)]
    assert console_errors == [], console_errors


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    data = make_tiny_dataset(root / "tiny.npz")
    return compare(CompareConfig(cells=["gru", "lstm"], data=data, output=root / "cmp", **TINY))


def test_compare_writes_a_self_contained_page_with_pictures_and_players(compared):
    page = compared.files["page"]
    text = page.read_text()
    assert compared.no_players is None
    # Nothing from a network: every src and href is a file in the folder.
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert links and not [link for link in links if "//" in link or link.startswith("/")]
    assert all((page.parent / link).is_file() for link in links), links
    assert text.count("<audio") == 2 * page_module_pieces() and text.count("<img") == 1 + 2 * page_module_pieces()
    # Measures as the terminal shows them: rates as percentages, never as fractions.
    assert re.search(r"<td>scale</td><td>\d+\.\d%</td>", text)


def page_module_pieces() -> int:
    from seqgate.compare.compare import PAGE_PIECES
    return PAGE_PIECES


@needs_chromium
def test_the_compare_page_opens_from_a_copied_folder_with_every_picture_and_player(compared, tmp_path):
    copied = tmp_path / "copied"
    shutil.copytree(compared.output, copied)  # opened where it was copied to, not where it was written
    found, log = open_in_chromium(copied / page_module.PAGE_NAME, tmp_path / "compare.png")
    assert_seen_whole(found, log, images=1 + 2 * page_module_pieces(), players=2 * page_module_pieces())


@needs_chromium
def test_sample_html_opens_with_pictures_and_players(compared, tmp_path):
    result = run_cli("sample", "--run", compared.runs[0].run_dir, "-o", tmp_path / "s.mid", "-n", "2",
                     "--bars", "2", "--html")
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 's.html'}" in result.stdout.replace("\n", "")
    found, log = open_in_chromium(tmp_path / "s.html", tmp_path / "s.png")
    assert_seen_whole(found, log, images=2, players=2)


@needs_chromium
def test_without_a_synthesiser_the_page_opens_with_pictures_and_says_why(compared, tmp_path):
    # midirenderer made unimportable in the child: the page must still be written, without players
    script = ("import sys; sys.modules['midirenderer'] = None\n"
              "from seqgate.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", script, "sample", "--run", str(compared.runs[0].run_dir),
                             "-o", str(tmp_path / "quiet.mid"), "--bars", "2", "--html"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no audio players: rendering audio needs the midirenderer package" in result.stdout.replace("\n", "")
    found, log = open_in_chromium(tmp_path / "quiet.html", tmp_path / "quiet.png")
    assert_seen_whole(found, log, images=1, players=0)
    assert any("needs the midirenderer package" in note for note in found["notes"])
