"""Reports in a real browser: headless Chromium opens the page from disk, with DNS disabled.

Checks that React rendered every view (DOM), that tokens such as ``<s>`` show literally, that the
screenshot is not blank, and that the page made no network request (Chromium's net log has no
request initiated by the page; no Content-Security-Policy violation on the console). A page in
CircuitsVis's default CDN form is the negative control: it stays blank offline.

Skips (with the reason) only where no Chromium/Chrome binary exists; ``make test`` installs one
(scripts/install-browser.sh).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


@pytest.fixture(scope="module")
def browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    reason = f"no headless browser found (looked for {', '.join(BROWSERS)}); run scripts/install-browser.sh"
    print(reason)
    pytest.skip(reason)


def run_browser(browser: str, page: Path, workdir: Path, *mode: str) -> subprocess.CompletedProcess:
    """Open ``page`` headless and offline (every host name fails to resolve); console to stderr."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={workdir / 'profile'}", "--virtual-time-budget=5000", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr", "--v=0", f"--log-net-log={workdir / 'net.json'}", *mode, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=workdir)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def page_requests(net_log: Path) -> list[str]:
    """URLs of the requests the page itself started (the browser's own background ones excluded)."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    starts = [e.get("params", {}) for e in log["events"] if e["type"] == start_job]
    return [p["url"] for p in starts if "url" in p and p.get("initiator") != "not an origin"]


class TagCounter(HTMLParser):
    """Counts start tags (script contents are not parsed as markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def handle_starttag(self, tag, attrs) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1


@pytest.fixture(scope="module")
def report(tiny_model, tmp_path_factory) -> Path:
    """Grad-ELLM (all layers) and saliency on the same continuation; the prompt starts with ``<s>``."""
    from gradellm_lens import explain
    from gradellm_lens.viz import write_report

    a = explain(tiny_model, "the cat sat on the mat", max_new_tokens=4, layers="all")
    b = explain(tiny_model, "the cat sat on the mat", "saliency", continuation=a.token_ids[a.prompt_length :])
    assert a.tokens[0] == "<s>"
    # every token, the BOS "<s>" included (the default view hides it): the page must show it as text
    return write_report([a, b], tmp_path_factory.mktemp("report") / "report.html", title="browser <test>", full_prompt=True)


def test_views_render_offline(browser, report, tmp_path):
    dom = run_browser(browser, report, tmp_path, "--dump-dom").stdout
    source = report.read_text(encoding="utf-8")
    n_views = source.count('class="cv-view')
    assert n_views >= 10
    # React filled every view element (none left empty) ...
    assert re.findall(r'<div class="cv-view[^"]*" id="cv-\d+"></div>', dom) == []
    assert dom.count('class="cv-view') == n_views
    # ... with coloured tokens (ColoredTokens, ColoredTokensMulti, one per TextNeuronActivations box) ...
    n_token_views = len(re.findall(r"CircuitsVis\.(ColoredTokens|ColoredTokensMulti),", source))
    assert dom.count('class="colored-tokens"') >= n_token_views
    # ... and attention-style charts (thumbnails + zoomed view per AttentionHeads view)
    n_heads_views = source.count("CircuitsVis.AttentionHeads,")
    assert n_heads_views >= 1 and dom.count("<canvas") >= 2 * n_heads_views
    assert "Head Selector" in dom and "Layer:" in dom
    # "<s>" is shown as text, never parsed into an <s> element
    assert ">&lt;s&gt;</span>" in dom
    tags = TagCounter()
    tags.feed(dom)
    assert "s" not in tags.counts and tags.counts["span"] > 50
    assert "browser &lt;test&gt;" in dom


def test_no_network_requests(browser, report, tmp_path):
    source = report.read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?(https?:)?//""", source)
    done = run_browser(browser, report, tmp_path, "--dump-dom")
    assert page_requests(tmp_path / "net.json") == []
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "Content Security Policy" in line or "Uncaught" in line]


def test_screenshot_shows_colored_tokens(browser, report, tmp_path):
    from PIL import Image

    run_browser(browser, report, tmp_path, "--window-size=1200,1600", f"--screenshot={tmp_path / 'shot.png'}")
    pixels = list(Image.open(tmp_path / "shot.png").convert("RGB").getdata())
    non_white = sum(1 for r, g, b in pixels if min(r, g, b) < 240)
    blue = sum(1 for r, g, b in pixels if b > 150 and b - r > 60)  # positive token backgrounds
    assert non_white / len(pixels) > 0.02
    assert blue > 500


def test_multi_step_view_has_no_blank_gap_below_it(browser, tiny_model, tmp_path):
    """CircuitsVis pads a ColoredTokensMulti view by 20px per series; the report's style removes that."""
    from gradellm_lens import explain
    from gradellm_lens.viz import write_report

    result = explain(tiny_model, "the cat sat on the mat", max_new_tokens=8, stop_at_eos=False)
    page = write_report(result, tmp_path / "multi.html")
    probe = (
        "<script>setTimeout(() => { const v = document.querySelector('.cv-ColoredTokensMulti > div');"
        " document.body.dataset.pad = v ? getComputedStyle(v).paddingBottom : 'none'; }, 1000);</script>"
    )
    page.write_text(page.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = run_browser(browser, page, tmp_path / "run", "--dump-dom").stdout
    assert result.n_steps == 8 and 'data-pad="0px"' in dom, re.findall(r"data-pad=\"[^\"]*\"", dom)


def test_cdn_form_is_blank_offline(browser, tmp_path):
    """Negative control: CircuitsVis's str() form needs unpkg.com, so the same checks see nothing."""
    from circuitsvis.tokens import colored_tokens

    page = tmp_path / "cdn.html"
    page.write_text(f"<!doctype html><html><body>{colored_tokens(['a', 'b'], [1.0, 2.0])}</body></html>")
    dom = run_browser(browser, page, tmp_path / "run", "--dump-dom").stdout
    assert 'class="colored-tokens"' not in dom
    assert [u for u in page_requests(tmp_path / "run" / "net.json") if "unpkg.com" in u]
