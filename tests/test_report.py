"""meta.review.running.claims.direction_votes: direction-only evidence shown beside (never instead of) a verdict."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from meta.review.running.claims import direction_votes


def _run(matched: pd.DataFrame, pooled_rows: list[int]) -> SimpleNamespace:
    return SimpleNamespace(matched=matched, rows=matched[matched["outcomes_row"].isin(pooled_rows)])


def test_one_vote_per_cohort_pooled_row_first_then_smd_then_words():
    matched = pd.DataFrame(
        {
            "outcomes_row": [2, 3, 4, 5, 6],
            "study_id": ["a2009a", "a2009b", "b2010", "c2011", "d2012"],
            "cohort_id": ["a", "a", "b", "c", "d"],
            # a2009a is pooled (+); its sister publication a2009b says the opposite in words: cohort a counts once, as +
            "yi": [0.5, np.nan, np.nan, -0.2, np.nan],
            "direction": [1, -1, -1, pd.NA, pd.NA],  # d2012 states no direction: no vote
        }
    )
    text = direction_votes([_run(matched, [2])], expected=1)
    assert text == "1 of 3 cohorts in the expected direction (a2009a); opposite: b2010, c2011"


def test_no_direction_or_no_expectation_gives_empty():
    matched = pd.DataFrame({"outcomes_row": [2], "study_id": ["x2000"], "cohort_id": ["x"], "yi": [np.nan], "direction": [pd.NA]})
    assert direction_votes([_run(matched, [])], expected=-1) == ""
    matched.loc[0, "direction"] = -1
    assert direction_votes([_run(matched, [])], expected=None) == ""
    assert direction_votes([_run(matched, [])], expected=-1) == "1 of 1 cohorts in the expected direction (x2000)"


# --------------------------------------------------------------------------- CSV text carries data, never code

import re  # noqa: E402

import pytest  # noqa: E402

import _hostile as H  # noqa: E402  (tests/ is on sys.path under pytest)
from meta.review.outputs.report import markdown_to_html, md_code, md_text  # noqa: E402

TITLE = "Neal et al. (2016): a reproduction and update from publicly accessible data"
PAYLOADS = [H.IMG_JS, H.IMG_ONERROR, H.LINK_JS, H.IMG_REMOTE, H.SCRIPT, H.AUTOLINK_JS, H.IMG_TITLE,
            "[d](data:text/html,x)", "&#106;avascript:alert(1)", "**bold** _em_ `code` ~~s~~", "a | b | c", "\\[x\\](y)"]
LEADING = ["# heading", "## h2", "- item", "+ item", "* item", "1. item", "2) item", "> quote", "=== ", "--- ", "    code",
           "| a | b |", "```fence", "~~~fence", "<div>", "[ref]: https://example.org"]


def _page(md: str) -> str:
    return markdown_to_html(md, title=TITLE)


@pytest.mark.parametrize("s", PAYLOADS + LEADING)
def test_md_text_shows_the_text_and_makes_nothing(s):
    for md in (f"Note: {md_text(s)}\n", f"{md_text(s)}\n", f"| a |\n| --- |\n| {md_text(s, cell=True)} |\n"):
        html = _page(md)
        assert H.injection_problems(html, TITLE) == []
        body = html.split("<body>", 1)[1]
        # nothing but a paragraph or a one-cell table: no heading, list, quote, code block, emphasis, link
        assert not re.search(r"<(h\d|ul|ol|li|blockquote|pre|code|strong|em|a|img|del|div)\b", body), body
        assert " ".join(s.split()) in H.visible_text(body)


def test_md_text_collapses_newlines_so_no_heading_or_table_row_is_forged():
    t = md_text(H.FORGED)
    assert "\n" not in t and "\r" not in md_text("a\r# b") and "\t" not in md_text("a\tb")
    html = _page(f"Note: {t}\n")
    assert H.injection_problems(html, TITLE) == []
    assert "<table" not in html and "<h1" not in html
    assert "quiet note # Fake heading | verdict | agrees |" in H.visible_text(html)


def test_md_text_keeps_identifiers_readable():
    assert md_text("peak_hip_adduction (willson2008), p = 0.04") == "peak_hip_adduction (willson2008), p = 0.04"
    assert md_text("_x_") == "\\_x\\_" and md_text("__init__") == "\\_\\_init\\_\\_"


def test_md_code_cannot_be_closed_by_backticks():
    html = _page(f"Outcome {md_code('a`` <b>`x')}.\n")
    assert "<code>a`` &lt;b&gt;`x</code>" in html


def test_html_drops_links_and_images_that_markdown_itself_holds():
    """Second line of defence: even unescaped Markdown cannot link to script or show a remote image."""
    md = (
        "![x](javascript:alert(1)) [c](javascript:alert(1)) ![r](https://example.org/x.png) ![u](//example.org/x.png) "
        "![p](/etc/passwd) ![q](../secret.png) [d](data:text/html,x) <javascript:alert(1)> <img src=x onerror=alert(1)> "
        "[ok](https://example.org/page) [rel](pooled.csv) ![Forest plot](figures/a_forest.png)\n"
    )
    html = _page(md)
    page = H.parse_page(html)
    imgs = [a["src"] for t, a in page.elements if t == "img"]
    links = [a["href"] for t, a in page.elements if t == "a"]
    assert imgs == ["figures/a_forest.png"]
    assert links == ["https://example.org/page", "pooled.csv"]
    assert not [t for t, a in page.elements if t == "script" or any(k.startswith("on") for k in a)]
    text = H.visible_text(html)
    assert "r" in text.split() and "<img src=x onerror=alert(1)>" in text  # dropped images leave their alt text


def test_html_page_has_charset_csp_and_escaped_title():
    html = markdown_to_html("x\n", title="<script>alert(1)</script> & more")
    head = html.split("</head>", 1)[0]
    assert '<meta charset="utf-8">' in head
    assert ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src \'self\'; '
            "style-src 'unsafe-inline'\">") in head
    assert head.index("Content-Security-Policy") < head.index("<title>") < head.index("<style>")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</title>" in head
    assert "<script" not in html


# --------------------------------------------------------------------------- the whole run on hostile data


# hostile_results: reproduce of the hostile data set, PNG at 72 dpi (tests/conftest.py, shared with test_report_browser)


def test_hostile_report_md_forges_no_heading_list_or_table_row(hostile_results):
    md = (hostile_results / "report.md").read_text(encoding="utf-8")
    lines = md.splitlines()
    assert not [ln for ln in lines if re.match(r"^\s{0,3}#{1,6}\s+Fake heading", ln)]
    assert not [ln for ln in lines if re.match(r"^\s*\|\s*(verdict|C99)\s*\|", ln)]
    assert not [ln for ln in lines if ln.lstrip().startswith("- a forged list item")]
    assert not [ln for ln in lines if re.search(r"(?<!\\)!\[[^\]]*(?<!\\)\]\((javascript|https?):", ln)]
    assert "# Fake heading" in md  # the text is there, inside a line of its own paragraph or cell


def test_hostile_report_html_holds_the_text_and_no_element(hostile_results):
    html = (hostile_results / "report.html").read_text(encoding="utf-8")
    assert H.injection_problems(html, TITLE) == []
    text = H.visible_text(html)
    for p in (H.IMG_JS, H.IMG_ONERROR, H.LINK_JS, H.IMG_REMOTE, H.SCRIPT, H.IMG_TITLE, "# Fake heading | verdict | agrees |"):
        assert p in text
    # our own figures are still there
    assert sum(t == "img" for t, _ in H.parse_page(html).elements) >= 5


def test_hostile_cells_reach_results_csvs_as_text_not_formulas(hostile_results):
    import pandas as pd

    loo = pd.read_csv(hostile_results / "leave_one_out.csv")
    claims = pd.read_csv(hostile_results / "claims.csv")
    eff = pd.read_csv(hostile_results / "effect_sizes.csv")
    assert (loo["omitted"].str.startswith("'=HYPERLINK(")).any()  # forest label from the author
    assert claims.loc[claims["claim_id"] == "C01", "claim"].iloc[0] == "'" + H.FORMULA
    assert eff["source_locator"].str.startswith("'" + H.FORMULA).all()
    assert (eff["cohort_id"] == "'" + H.COHORT).any()
    for df in (loo, claims, eff):  # nothing a spreadsheet would run is left
        text = df.select_dtypes(exclude="number")
        assert not text.apply(lambda c: c.dropna().astype(str).str.match(r"^[=@\t\r]|^[+-][^0-9.]")).any().any()
    # numbers stay numbers (negative ones too) and the expected direction is still a bare sign
    for col in ("yi", "vi", "yi_ls", "n1"):
        assert pd.api.types.is_numeric_dtype(eff[col]), col
    assert (eff["yi"] < 0).any()
    assert pd.api.types.is_numeric_dtype(loo["estimate"]) and pd.api.types.is_numeric_dtype(claims["estimate"])
    assert set(claims["expected_direction"]) <= {"+", "-", "0", "?"}


def test_spreadsheet_safe_rule():
    import numpy as np
    import pandas as pd

    from meta.review.outputs.csvsafe import spreadsheet_safe

    df = pd.DataFrame(
        {
            "num": [-0.42, 1.0, np.nan, 2.0, 3.0, 4.0, 5.0, 6.0],
            "text": ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "-0.42", "plain"],
            "mixed": ["+", "-", None, "+1", "1e-3", "-.5", "- item", "=x"],
            "=evil": [1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    out = spreadsheet_safe(df)
    assert out["num"].tolist()[:2] == [-0.42, 1.0] and out["num"].dtype == float
    assert out["text"].tolist() == ["'=1+1", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "-0.42", "plain"]
    m = out["mixed"].tolist()
    assert pd.isna(m[2]) and m[:2] + m[3:] == ["+", "-", "+1", "1e-3", "-.5", "'- item", "'=x"]
    assert list(out.columns) == ["num", "text", "mixed", "'=evil"]
    assert df["text"].iloc[0] == "=1+1"  # the input is not changed
