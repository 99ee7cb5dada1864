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

TITLE = "Neal et al. (2016): a reproduction and update from publicly accessible data"


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


#: a page of the test's own (not the report's: its CSP forbids script) that loads report.html in a
#: 1280 x 900 frame and writes what the first screen shows, and every image's state, into <pre id="result">
PROBE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>probe</title></head><body style="margin:0">
<iframe id="f" src="results/report.html" style="width:1280px;height:900px;border:0"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument, t = d.querySelector('table'), out = {};
  out.h1 = d.querySelector('h1').textContent;
  out.h2_before_table = Array.from(d.querySelectorAll('h2')).filter(function (h) {
    return t && (h.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING); }).map(function (h) { return h.textContent; });
  out.table_top = t ? t.getBoundingClientRect().top : -1;
  out.header = t ? Array.from(t.querySelectorAll('th')).map(function (x) { return x.textContent; }) : [];
  out.rows_on_screen = t ? Array.from(t.querySelectorAll('tbody tr')).filter(function (r) {
    return r.getBoundingClientRect().top < 900; }).map(function (r) { return r.cells[0].textContent; }) : [];
  out.images = Array.from(d.images).map(function (i) { return [i.getAttribute('src'), i.complete && i.naturalWidth > 0]; });
  var pre = document.createElement('pre'); pre.id = 'result'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body></html>
"""


def test_first_screen_shows_the_summary_table_and_no_image_is_broken(tmp_path):
    """1280 x 900 in headless Chromium: the honest title, then the summary table (its header and its first
    claim rows) on the first screen; every image of the report exists and loads."""
    import json
    import re

    from test_report_truth import FAST, build

    from meta.review import reproduce

    exe = _chromium()
    reproduce.reproduce(build(tmp_path / "data"), tmp_path / "results", **FAST)
    (tmp_path / "probe.html").write_text(PROBE, encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--allow-file-access-from-files",
           "--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom", (tmp_path / "probe.html").as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="result">(.*?)</pre>', r.stdout, re.S)
    assert m, f"probe did not run ({r.returncode}): {r.stderr[-2000:]}"
    out = json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"'))
    assert out["h1"] == TITLE
    assert out["h2_before_table"] == ["Summary: each claim of the review"]
    assert 0 < out["table_top"] < 900 and "original: verdict" in out["header"]
    assert out["rows_on_screen"][:2] == ["c01", "c02"]
    assert out["images"] and all(ok for _, ok in out["images"]), [s for s, ok in out["images"] if not ok]
    assert all((tmp_path / "results" / s).is_file() for s, _ in out["images"])
