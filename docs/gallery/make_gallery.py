"""Draw the meta.plots gallery: the PNGs next to this file.

Run from the repository root:  python docs/gallery/make_gallery.py

Data are metafor's example data sets, copied into
tests/fixtures/plots_reference.json by tests/r/plots_reference.R:
dat.normand1999 (length of hospital stay, specialist vs routine care; SMD)
and dat.hackshaw1998 (lung cancer and passive smoking; log odds ratios).
The subgroup split (UK vs elsewhere) and the small extra study in the
wide-CI example are illustrative only, and their titles say so. Everything is
pooled with meta.pool / meta.bias, exactly as a user would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from meta import plots  # noqa: E402
from meta.bias import egger, trimfill  # noqa: E402
from meta.effects import smd  # noqa: E402
from meta.pool import pool, subgroups  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REF = json.loads((ROOT / "tests" / "fixtures" / "plots_reference.json").read_text(encoding="utf-8"))
DPI = 200  # gallery previews; meta.plots.save defaults to 300 for print
# yi = specialist minus routine: a negative SMD is a shorter stay with specialist care
FAVOURS = ("Favours specialist care", "Favours routine care")
GROUPS = ("Specialist care", "Routine care")


def normand() -> pd.DataFrame:
    return pd.DataFrame(REF["studies"])


def main() -> int:
    out = []
    st = normand()

    res = pool(st["yi"], st["vi"], method="DL", measure="SMD")
    fig = plots.forest(res, st, favours=FAVOURS, group_labels=GROUPS,
                       title="Length of hospital stay (metafor dat.normand1999), random effects (DL)")
    out += plots.save(fig, HERE / "forest_normand1999", formats=("png",), dpi=DPI)

    sub = subgroups(st["yi"], st["vi"], st["region"], method="DL", measure="SMD")
    fig = plots.forest(sub, st, subgroup="region", favours=FAVOURS, group_labels=GROUPS,
                       title="Subgroups by region (illustrative grouping of dat.normand1999)")
    out += plots.save(fig, HERE / "forest_subgroups", formats=("png",), dpi=DPI)

    one = st.iloc[:1]
    fig = plots.forest(pool(one["yi"], one["vi"], measure="SMD"), one, favours=FAVOURS, group_labels=GROUPS,
                       title="A single study (dat.normand1999, Edinburgh)")
    out += plots.save(fig, HERE / "forest_k1", formats=("png",), dpi=DPI)

    # a very small made-up study: its interval runs off both ends of the axis
    extra = pd.DataFrame({"label": ["Illustrative small study"], "n1": [2], "mean1": [40.0], "sd1": [30.0],
                          "n2": [2], "mean2": [45.0], "sd2": [28.0]})
    es = smd(extra["mean1"], extra["sd1"], extra["n1"], extra["mean2"], extra["sd2"], extra["n2"])
    extra = pd.concat([extra, es[["yi", "vi"]]], axis=1)
    wide = pd.concat([st.iloc[[1, 5, 6, 8]], extra], ignore_index=True)
    fig = plots.forest(pool(wide["yi"], wide["vi"], method="DL", test="hksj", pi="higgins", measure="SMD"), wide,
                       favours=FAVOURS, group_labels=GROUPS,
                       title="Very wide CI (illustrative: made-up study of 2 + 2 added), HKSJ test")
    out += plots.save(fig, HERE / "forest_wide_ci", formats=("png",), dpi=DPI)

    hk = REF["funnel_studies"]
    fig = plots.funnel(hk["yi"], hk["vi"], contours=True, egger=egger(hk["yi"], hk["vi"]),
                       trimfill=trimfill(hk["yi"], hk["vi"]), xlabel="Log odds ratio",
                       title="Passive smoking and lung cancer (dat.hackshaw1998)")
    out += plots.save(fig, HERE / "funnel_hackshaw1998", formats=("png",), dpi=DPI)

    for p in out:
        print(p.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
