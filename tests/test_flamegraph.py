"""The flame graph module: folded lines as the aggregation adds them up, and
an SVG that parses as XML, whose every frame is as wide as its share of the
samples (computed here from the folded input, not from the module's tree),
nested in its caller's span, with flamegraph.pl's interactive parts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from pydtrace.tools import flamegraph as F

NS = {"s": "http://www.w3.org/2000/svg"}
ROWS = {
    "burn;main;spin;inner": 61,
    "burn;main;spin": 7,
    "burn;main;setup;read": 12,
    "burn;_start;main;spin": 3,
    "sh;main;wait4;do_wait": 17,
    'a<b>&"c";x': 5,  # names XML must escape
}


def test_fold_adds_up_and_keeps_frames_whole() -> None:
    rows = F.fold([(["a", "b"], 2), (["a", "b"], 3), (["a", "x;y"], 1), (["z"], 0), ([], 4)])
    assert rows == {"a;b": 5, "a;x:y": 1}
    assert F.folded_text({"b;c": 1, "a": 2}) == "a 2\nb;c 1\n"
    assert F.parse_folded("a;b 5\nc 2\nbad line\n\na;b 1\n") == {"a;b": 6, "c": 2}


def expected_frames(rows: dict[str, int]) -> dict[tuple[int, str], list[int]]:
    """(depth, name) -> the sample counts of the frames there: every prefix
    of every line is a frame, its count the sum of the lines under it."""
    prefixes: dict[tuple[str, ...], int] = {}
    for line, n in rows.items():
        parts = tuple(line.split(";"))
        for d in range(1, len(parts) + 1):
            prefixes[parts[:d]] = prefixes.get(parts[:d], 0) + n
    out: dict[tuple[int, str], list[int]] = {(0, "all"): [sum(rows.values())]}
    for parts, n in prefixes.items():
        out.setdefault((len(parts), parts[-1]), []).append(n)
    return {k: sorted(v) for k, v in out.items()}


def frames(svg: str) -> list[tuple[int, str, int, float, float, float]]:
    """(depth, name, count, x, y, width) of every frame drawn."""
    root = ET.fromstring(svg)
    out = []
    for g in root.iterfind(".//s:g[@class='f']", NS):
        title = g.find("s:title", NS).text  # type: ignore[union-attr]
        m = re.fullmatch(r"(.*) \(([\d,]+) (\w+), (\d+\.\d\d)%\)", title or "")
        assert m is not None, title
        rect = g.find("s:rect", NS)
        assert rect is not None
        out.append((int(g.get("data-depth", "-1")), m[1], int(m[2].replace(",", "")),
                    float(rect.get("x", "")), float(rect.get("y", "")), float(rect.get("width", ""))))  # fmt: skip
    return out


def test_svg_frames_are_as_wide_as_their_samples() -> None:
    svg = F.svg(ROWS, "Title & <more>", "samples")
    root = ET.fromstring(svg)  # well-formed XML, the SVG namespace
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    total = sum(ROWS.values())
    got = frames(svg)
    by_key: dict[tuple[int, str], list[int]] = {}
    for d, name, n, *_ in got:
        by_key.setdefault((d, name), []).append(n)
    assert {k: sorted(v) for k, v in by_key.items()} == expected_frames(ROWS)
    per = (F.WIDTH - 2 * F.XPAD) / total
    for _d, _name, n, _x, _y, w in got:
        assert abs(w - n * per) < 0.01  # widths printed to 2 decimals
    # each frame lies within one frame of the depth below, one row higher
    for d, name, _n, x, y, w in got:
        if d == 0:
            assert (name, x, round(w, 2)) == ("all", F.XPAD, round(F.WIDTH - 2 * F.XPAD, 2))
            continue
        parents = [
            p for p in got if p[0] == d - 1 and p[3] - 0.01 <= x and x + w <= p[3] + p[5] + 0.01
        ]
        assert len(parents) == 1 and parents[0][4] == y + F.FRAME_HEIGHT, name
    # the title's share: 61 of 105
    assert any(t.text == f"inner (61 samples, {100 * 61 / total:.2f}%)"
               for t in root.iterfind(".//s:title", NS))  # fmt: skip
    assert root.find(".//s:text[@id='title']", NS).text == "Title & <more>"  # type: ignore[union-attr]


def test_svg_is_interactive() -> None:
    """flamegraph.pl's parts: details on hover, zoom on click, search."""
    svg = F.svg(ROWS, "t")
    root = ET.fromstring(svg)
    script = root.find("s:script", NS)
    assert script is not None and script.text is not None
    for part in ("function zoom(", "function unzoom(", "function search(", "mouseover",
                 "addEventListener(\"click\"", "Matched: "):  # fmt: skip
        assert part in script.text, part
    assert root.get("onload") == "init(evt)"
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert {"details", "unzoom", "search", "matched", "frames", "title"} <= ids


def test_narrow_frames_are_left_out_and_labels_fit() -> None:
    rows = {"big": 100000, "tiny": 1}
    got = frames(F.svg(rows, "t"))
    assert [n for _, n, *_ in got] == ["all", "big"]  # tiny: under 0.1 pixel
    assert F.label("a_long_function_name", 80) == "a_long_f.."  # 10 characters fit
    assert F.label("abc", 10) == ""
    assert F.svg({}, "empty").endswith('<g id="frames">\n</g>\n</svg>\n')
