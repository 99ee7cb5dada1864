"""A copy of the bundled data/ with script, remote-image, link, forged-Markdown and spreadsheet-formula
payloads in every text cell that reaches results/ (shared by test_report.py and test_report_browser.py)."""

from __future__ import annotations

import re

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent / "fixtures" / "review_data"

IMG_JS = "![x](javascript:alert(1))"
IMG_ONERROR = "<img src=x onerror=alert(1)>"
LINK_JS = "[c](javascript:alert(1))"
IMG_REMOTE = "![r](https://example.org/x.png)"
SCRIPT = "<script>alert(1)</script>"
AUTOLINK_JS = "<javascript:alert(1)>"
FORGED = "quiet note\n# Fake heading\n| verdict | agrees |\n| --- | --- |\n| C99 | agrees |"
FORMULA = '=HYPERLINK("https://example.org/x";"click")'
#: no spaces or commas: the forest label keeps an author's first word only (meta.review.running.run._label)
AUTHOR_SVG = "<svg/onload=alert(1)>"
AUTHOR_IMG = "<img/src=x/onerror=alert(1)>"
COHORT = "@noehren2013"
IMG_TITLE = "<img src=x onerror=document.title='PWNED'>"  # changes the page title if it ever runs

ALL = " ".join([IMG_JS, IMG_ONERROR, LINK_JS, IMG_REMOTE, SCRIPT, AUTOLINK_JS, IMG_TITLE])


def _write(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False)


def hostile_data(folder: Path) -> Path:
    """Write the hostile copy into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in DATA.glob("*.csv"):
        shutil.copy(f, folder / f.name)
    a = pd.read_csv(folder / "analyses.csv", dtype=str, keep_default_na=False)
    a["title"] = a["title"] + " " + ALL
    a["favours_left"] = IMG_ONERROR + " " + a["favours_left"]
    a["favours_right"] = a["favours_right"] + " " + LINK_JS
    a["notes"] = FORGED + "\n" + ALL
    a.loc[0, "notes"] = "- a forged list item\n" + a.loc[0, "notes"]
    _write(a, folder / "analyses.csv")

    c = pd.read_csv(folder / "review_claims.csv", dtype=str, keep_default_na=False)
    c["claim_text"] = c["claim_text"] + " " + FORGED + " " + ALL
    c.loc[0, "claim_text"] = FORMULA
    _write(c, folder / "review_claims.csv")

    s = pd.read_csv(folder / "studies.csv", dtype=str, keep_default_na=False)
    # studies of the pooled analyses, so the labels reach the study and leave-one-out tables and leave_one_out.csv
    payload_authors = {"willson2008": FORMULA, "souza2009a": AUTHOR_SVG, "noehren2012b": AUTHOR_IMG, "wirtz2012": IMG_JS,
                       "noehren2013": LINK_JS, "souza2009b": IMG_REMOTE}
    for sid, p in payload_authors.items():
        (i,) = s.index[s["study_id"] == sid]
        s.loc[i, "authors"] = p + " X, " + s.loc[i, "authors"]
    s.loc[s["study_id"] == "noehren2013", "cohort_id"] = COHORT  # a cohort of its own: grouping unchanged
    _write(s, folder / "studies.csv")

    o = pd.read_csv(folder / "outcomes.csv", dtype=str, keep_default_na=False)
    o["extraction_note"] = FORMULA + " " + FORGED + " " + o["extraction_note"]
    o["source_locator"] = FORMULA + " " + o["source_locator"]  # reaches effect_sizes.csv
    _write(o, folder / "outcomes.csv")
    return folder

# ------------------------------------------------------------------ what may reach the page


_FORBIDDEN_TAGS = {"script", "svg", "iframe", "object", "embed", "link", "base", "form", "input", "math", "video", "audio", "source"}


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.by_tag: dict[str, list[str]] = {}
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag not in ("img", "meta", "br", "hr"):
            self._open.append((tag, []))

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                t, parts = self._open.pop(i)
                self.by_tag.setdefault(t, []).append("".join(parts).strip())
                break

    def handle_data(self, data):
        self.text.append(data)
        for _, parts in self._open:
            parts.append(data)


def parse_page(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    p.close()
    return p


def injection_problems(html: str, title: str) -> list[str]:
    """Everything a hostile cell could have put into the page; [] when the page is clean."""
    page = parse_page(html)
    bad = []
    for tag, attrs in page.elements:
        if tag in _FORBIDDEN_TAGS:
            bad.append(f"<{tag}> element")
        for k, v in attrs.items():
            if k.startswith("on"):
                bad.append(f"<{tag} {k}=...> event handler")
            if v and "javascript:" in v.lower().replace(" ", ""):
                bad.append(f"<{tag} {k}={v!r}>")
        if tag == "img" and not str(attrs.get("src", "")).startswith("figures/"):
            bad.append(f"<img src={attrs.get('src')!r}> not a file of the results folder")
        href = str(attrs.get("href", ""))
        # links: remote pages, or the report's own contents (#section-id of a heading)
        if tag == "a" and not (href.lower().startswith(("http://", "https://")) or re.fullmatch(r"#[a-z0-9-]+", href)):
            bad.append(f"<a href={attrs.get('href')!r}>")
    if sum(tag == "style" for tag, _ in page.elements) != 1:
        bad.append("a <style> element besides ours")
    for h in ("h1", "h2", "h3", "h4", "h5", "h6"):
        bad += [f"<{h}>{t}</{h}> forged heading" for t in page.by_tag.get(h, []) if t.startswith("Fake heading")]
    # the forged table is "| verdict | agrees |" over "| C99 | agrees |" (our claims table has a "verdict" column)
    bad += [f"<th>{t}</th> forged table header" for t in page.by_tag.get("th", []) if t == "agrees"]
    bad += [f"<td>{t}</td> forged table cell" for t in page.by_tag.get("td", []) if t == "C99"]
    bad += [f"<li>{t}</li> forged list item" for t in page.by_tag.get("li", []) if t.startswith("a forged list item")]
    if page.by_tag.get("title") != [title]:
        bad.append(f"title {page.by_tag.get('title')} (a script ran?)")
    return bad


def visible_text(html: str) -> str:
    return " ".join(" ".join(parse_page(html).text).split())
