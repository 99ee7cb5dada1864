"""report.html in a real browser: a report built from a hostile copy of data/ (script, remote-image,
javascript-link and forged-Markdown payloads in every text cell) runs no script and shows the payloads as
text in headless Chromium; and the page's Content-Security-Policy stops a script even if one got in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import _hostile as H  # tests/ is on sys.path under pytest

TITLE = "Neal et al. (2016) reproduced"


def _chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if exe is None:
        pytest.skip("headless Chromium not installed: apt-get install -y chromium")
    return exe


def dump_dom(page: Path, tmp: Path) -> str:
    """The DOM after load (scripts, had any run, have run), as headless Chromium serialises it."""
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "<body" in r.stdout, f"chromium failed ({r.returncode}): {r.stderr[-2000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def hostile_report(request) -> Path:
    _chromium()  # skip before the run when there is no browser
    # reproduce of the hostile data set, PNG at 72 dpi (tests/conftest.py, shared with test_report)
    return request.getfixturevalue("hostile_results") / "report.html"


def test_hostile_report_runs_no_script_and_shows_the_payloads_as_text(hostile_report, tmp_path):
    dom = dump_dom(hostile_report, tmp_path)
    assert H.injection_problems(dom, TITLE) == []  # no script/handler/javascript:/remote img/fake heading/row
    text = H.visible_text(dom)
    for p in (H.IMG_JS, H.IMG_ONERROR, H.LINK_JS, H.IMG_REMOTE, H.SCRIPT, H.AUTOLINK_JS, H.IMG_TITLE,
              "# Fake heading | verdict | agrees |", H.AUTHOR_SVG, H.AUTHOR_IMG, H.FORMULA):
        assert p in text, p
    srcs = [a.get("src") for t, a in H.parse_page(dom).elements if t == "img"]
    assert srcs and all(s.startswith("figures/") and (hostile_report.parent / s).is_file() for s in srcs)


def test_csp_blocks_a_script_that_got_into_the_page(tmp_path):
    """Even a bug that let raw HTML through could not run script or load a remote image."""
    from meta.review.outputs.report import markdown_to_html

    html = markdown_to_html("text\n", title="clean")
    html = html.replace("</body>", "<script>document.title='RAN'</script>"
                                   "<img src=x onerror=\"document.title='RAN2'\"></body>")
    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")
    dom = dump_dom(page, tmp_path)
    assert "<title>clean</title>" in dom
