"""Offline CircuitsVis rendering: one inlined bundle per page, one mount call per view.

CircuitsVis's ``RenderedHTML`` has two sources: ``str(html)`` (``cdn_src``) imports the bundle
from ``https://unpkg.com`` and renders a blank page without network; ``local_src`` inlines the
1.3 MB bundle into *every* view and opens with an invalid self-closing ``<div/>``, so several of
them on one page swallow each other. Here a page inlines the bundled
``circuitsvis/dist/cdn/iife.js`` once (it defines the global ``CircuitsVis``) and renders each view
into its own element::

    <div id="cv-3"></div> ...
    <script>CircuitsVis.render("cv-3", CircuitsVis.ColoredTokens, {...props...});</script>

Colours: the components that take ``positiveColor`` / ``negativeColor`` props get the
:mod:`.palette` colours from :mod:`.views`; the others (``ColoredTokensMulti``,
``TextNeuronActivations``) use the bundle's default colours, which :func:`bundle_js` replaces by
the same palette colours, so every view follows one convention (each shows :func:`~.palette.legend_html`).

In a notebook, :meth:`View._repr_html_` inlines the bundle only in the first view a kernel
displays (a 1.3 MB script once per notebook, not once per cell); later views wait for it to load
before mounting.

Props are serialised with ``circuitsvis.utils.convert_props`` after a strict check that no NaN or
infinity is left (JSON would emit the ``NaN`` / ``Infinity`` literals, which break the colour
scales), and ``<``, ``>``, ``&`` are written as JSON ``\\u`` escapes so no token text can close the
script element. Pages carry a Content-Security-Policy that forbids every network request.

:class:`View` is a ``RenderedHTML`` (so it displays in notebooks like any CircuitsVis object)
whose ``str()`` and ``_repr_html_()`` are the self-contained offline fragment.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args
from uuid import uuid4

from circuitsvis.utils.convert_props import convert_prop_type, convert_props
from circuitsvis.utils.render import RenderedHTML, render_cdn

from ..errors import InvalidInputError, check_choice
from ..result_io import atomic_write
from . import palette

Component = Literal["ColoredTokens", "ColoredTokensMulti", "TextNeuronActivations", "AttentionHeads"]
COMPONENTS: tuple[str, ...] = get_args(Component)
"""The CircuitsVis components the views use."""

HTML_TEXT_COMPONENTS = frozenset({"ColoredTokens", "ColoredTokensMulti", "TextNeuronActivations"})
"""Components that inject token strings as HTML (``dangerouslySetInnerHTML``): escape their tokens."""

CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:"
"""Content-Security-Policy of generated pages: inline code and data: images only, no network."""

_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})

_DEFAULT_COLOURS = re.compile(r'(function [\w$]+\(e,t,r,)n="red",o="blue"\)')
"""The bundle's colour function ``f(value, min, max, negativeColor="red", positiveColor="blue")``."""

_bundle_displayed = False  # whether this kernel has displayed a view with the bundle (notebooks)


@cache
def bundle_js() -> str:
    """The CircuitsVis browser bundle (``iife.js``), safe to inline in a ``<script>`` element."""
    import circuitsvis

    path = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    if not path.is_file():
        raise InvalidInputError(f"The CircuitsVis bundle is missing ({path}); reinstall circuitsvis.")
    js = path.read_text(encoding="utf-8").replace("</script", "<\\/script")
    # one colour convention: the palette's colours replace the defaults "red" / "blue"
    return _DEFAULT_COLOURS.sub(rf'\1n="{palette.NEGATIVE}",o="{palette.POSITIVE}")', js, count=1)


def _plain(value: Any) -> Any:
    """``convert_prop_type`` applied at every nesting level (lists of tensors included)."""
    value = convert_prop_type(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def props_json(props: Mapping[str, Any]) -> str:
    """``convert_props`` JSON of ``props``, checked finite and safe inside a ``<script>`` element."""
    plain = {k: _plain(v) for k, v in props.items() if v is not None}
    try:
        json.dumps(plain, allow_nan=False)
    except ValueError:
        raise InvalidInputError(
            "View props contain NaN or infinity; replace them (e.g. torch.nan_to_num) before building a view."
        ) from None
    return convert_props(plain).translate(_SCRIPT_SAFE)


def mount_js(element_id: str, component: str, props: Mapping[str, Any]) -> str:
    """The JavaScript that renders ``component`` with ``props`` into the element ``element_id``."""
    return f"CircuitsVis.render({json.dumps(element_id)}, CircuitsVis.{component}, {props_json(props)});"


def deferred_mount_js(element_id: str, component: str, props: Mapping[str, Any]) -> str:
    """:func:`mount_js` once the bundle has loaded (polling up to 20 s; then a note in the element)."""
    target = json.dumps(element_id)
    return (
        "(function mount(tries) { if (window.CircuitsVis) { "
        f"CircuitsVis.render({target}, CircuitsVis.{component}, {props_json(props)}); }} "
        "else if (tries > 0) { setTimeout(function () { mount(tries - 1); }, 100); } "
        f"else {{ document.getElementById({target}).textContent = "
        '"CircuitsVis did not load: re-run the first cell that shows a view."; } })(200);'
    )


def view_element(element_id: str, component: str = "") -> str:
    """The (empty) element a view is rendered into (class ``cv-view cv-<Component>`` for styling)."""
    return f'<div class="cv-view cv-{component}" id="{html.escape(element_id)}"></div>'


@dataclass(frozen=True, eq=False)
class View(RenderedHTML):
    """A CircuitsVis view: a component name and its props (camelCase, JSON-ready, finite).

    Displays offline in notebooks (``_repr_html_``) and as ``str()``; ``cdn_src`` keeps
    CircuitsVis's CDN form for pages that will be viewed online. :func:`write_views` or
    :func:`~gradellm_lens.viz.report.write_report` put several views on one page.

    Compared by identity (props hold tensors).

    Attributes:
        component: CircuitsVis component (one of :data:`COMPONENTS`).
        props: the component's props.
        title: heading shown above the view on pages.
    """

    component: Component
    props: Mapping[str, Any] = field(repr=False)
    title: str = ""

    def __post_init__(self) -> None:
        check_choice("CircuitsVis component", self.component, COMPONENTS)
        props_json(self.props)  # validates (finite, serialisable) at construction

    def mount(self, element_id: str) -> str:
        """JavaScript rendering this view into ``element_id`` (the bundle must be loaded)."""
        return mount_js(element_id, self.component, self.props)

    @property
    def local_src(self) -> str:  # type: ignore[override]
        """Self-contained HTML fragment: legend, element, inlined bundle, mount call (no network)."""
        element_id = f"cv-{uuid4().hex[:12]}"
        element = view_element(element_id, self.component)
        return (
            f"{palette.legend_html()}{element}\n<script>{bundle_js()}</script>\n<script>{self.mount(element_id)}</script>"
        )

    @property
    def cdn_src(self) -> str:  # type: ignore[override]
        """CircuitsVis's CDN form (needs network to render)."""
        return render_cdn(self.component, **self.props)

    def _repr_html_(self) -> str:
        """Notebook display: the bundle is inlined in the first view of the kernel only."""
        global _bundle_displayed
        if not _bundle_displayed:
            _bundle_displayed = True
            return self.local_src
        element_id = f"cv-{uuid4().hex[:12]}"
        mount = deferred_mount_js(element_id, self.component, self.props)
        return f"{palette.legend_html()}{view_element(element_id, self.component)}\n<script>{mount}</script>"

    def __str__(self) -> str:
        return self.local_src

    def save(self, path: str | Path) -> Path:
        """Write this view as a self-contained page."""
        return write_views([self], path, title=self.title or self.component)


class Page:
    """Builds one self-contained HTML page: add body HTML and views, then :meth:`html`."""

    def __init__(self, title: str, style: str = "") -> None:
        self.title = title
        self.style = style
        self._body: list[str] = []
        self._mounts: list[str] = []

    def add(self, fragment: str) -> None:
        """Append raw (already escaped) HTML to the body."""
        self._body.append(fragment)

    def add_view(self, view: View) -> str:
        """Append a view's element to the body (its mount call goes to the end); returns its id."""
        element_id = f"cv-{len(self._mounts)}"
        if view.title:
            self.add(f'<h4 class="cv-title">{html.escape(view.title)}</h4>')
        self.add(view_element(element_id, view.component))
        self._mounts.append(view.mount(element_id))
        return element_id

    @property
    def n_views(self) -> int:
        return len(self._mounts)

    def html(self) -> str:
        """The page: CSP, bundle once (only when there are views), body, then every mount call."""
        head = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(self.title)}</title>",
            f"<style>{self.style}</style>",
        ]
        if self._mounts:
            head.append(f"<script>{bundle_js()}</script>")
        tail = ["<script>", *self._mounts, "</script>"] if self._mounts else []
        return "\n".join([*head, "</head><body>", *self._body, *tail, "</body></html>"]) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the page (UTF-8) and return its path.

        The page is encoded first and written under a temporary name, then renamed into place
        (:func:`~gradellm_lens.result_io.atomic_write`), so a failure never truncates an existing file.
        """
        path = Path(path)
        data = self.html().encode("utf-8")
        atomic_write(path, lambda fh: fh.write(data))
        return path


def write_views(views: list[View], path: str | Path, *, title: str = "gradellm-lens views") -> Path:
    """Write several views on one self-contained page (bundle inlined once)."""
    page = Page(title)
    page.add(f"<h1>{html.escape(title)}</h1>")
    page.add(palette.legend_html())
    for view in views:
        page.add_view(view)
    return page.write(path)
