"""Plotting for the notebooks: a CJK-capable matplotlib setup and a few shared helpers.

Call :func:`setup` once at the top of a notebook. It puts a list of CJK fonts ahead of DejaVu Sans, so
Chinese labels render on macOS (PingFang SC, Hiragino Sans GB), Windows (Microsoft YaHei, SimHei) and
Linux (Noto Sans CJK SC from ``fonts-noto-cjk``, WenQuanYi Zen Hei). When none of them is installed it
says so once, explains how to install one, and silences the per-glyph warnings.
"""
from __future__ import annotations

import logging
import warnings
from typing import Mapping, Optional, Sequence

__all__ = ["CJK_FONTS", "setup", "cjk_font_available", "plot_curves", "heatmap", "bar", "scatter_labels"]

CJK_FONTS = ("PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "SimHei", "Noto Sans CJK SC",
             "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei")
FALLBACK_FONT = "DejaVu Sans"
INSTALL_HINT = ("Chinese labels will show as boxes: no CJK font was found. Install one, e.g. "
                "`sudo apt-get install fonts-noto-cjk` (Debian/Ubuntu), `sudo dnf install "
                "google-noto-sans-cjk-fonts` (Fedora) or `conda install -c conda-forge font-ttf-noto-cjk`, "
                "then delete matplotlib's font cache (`rm -r ~/.cache/matplotlib`) and restart the kernel.")

_state = {"done": False, "cjk": None, "warned": False}


def _installed_font_names() -> set[str]:
    from matplotlib import font_manager
    return {f.name for f in font_manager.fontManager.ttflist}


def cjk_font_available() -> Optional[str]:
    """The first font of :data:`CJK_FONTS` that matplotlib knows, or ``None``."""
    names = _installed_font_names()
    for name in CJK_FONTS:
        if name in names:
            return name
    return None


def setup(*, dpi: int = 100, style_small: bool = True, quiet: bool = False) -> Optional[str]:
    """Configure matplotlib for the course; returns the CJK font used (``None`` if there is none).

    Idempotent: later calls only re-apply rcParams.
    """
    import matplotlib as mpl

    cjk = cjk_font_available()
    mpl.rcParams["font.family"] = "sans-serif"
    mpl.rcParams["font.sans-serif"] = list(CJK_FONTS) + [FALLBACK_FONT] + [
        f for f in mpl.rcParams["font.sans-serif"] if f not in CJK_FONTS and f != FALLBACK_FONT]
    mpl.rcParams["axes.unicode_minus"] = False  # CJK fonts often lack U+2212
    mpl.rcParams["figure.dpi"] = dpi
    if style_small:
        mpl.rcParams.update({"figure.figsize": (6.4, 3.6), "axes.grid": True, "grid.alpha": 0.3,
                             "axes.spines.top": False, "axes.spines.right": False,
                             "legend.frameon": False})
    # font_manager logs "findfont: Font family ... not found" for every missing family in the list
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    if cjk is None:
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        warnings.filterwarnings("ignore", message=r".*missing from current font")
        if not _state["warned"] and not quiet:
            print(INSTALL_HINT)
            _state["warned"] = True
    _state.update(done=True, cjk=cjk)
    return cjk


def _axes(ax=None, figsize=None):
    from matplotlib import pyplot as plt
    if not _state["done"]:
        setup()
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_curves(series: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]],
                xlabel: str = "step", ylabel: str = "loss", *, logy: bool = False, logx: bool = False,
                title: Optional[str] = None, ax=None, smooth: int = 1, **kwargs):
    """One line per entry. A value is ``ys`` (x = 0, 1, ...) or a pair ``(xs, ys)``.

    ``smooth`` > 1 applies a trailing moving average (for noisy training losses). Returns the axes.
    """
    ax = _axes(ax, kwargs.pop("figsize", None))
    for label, value in series.items():
        if isinstance(value, tuple) and len(value) == 2:
            xs, ys = list(value[0]), list(value[1])
        else:
            ys = list(value)
            xs = list(range(len(ys)))
        ys = [float(y) for y in ys]
        if smooth > 1 and len(ys) > smooth:
            run, out = 0.0, []
            for i, y in enumerate(ys):
                run += y
                if i >= smooth:
                    run -= ys[i - smooth]
                out.append(run / min(i + 1, smooth))
            ys = out
        ax.plot(xs, ys, label=str(label), **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    return ax


def heatmap(matrix, *, xlabels: Optional[Sequence[str]] = None, ylabels: Optional[Sequence[str]] = None,
            title: Optional[str] = None, cmap: str = "viridis", ax=None, colorbar: bool = True,
            annotate: bool = False, fmt: str = "{:.2f}", vmin=None, vmax=None, **kwargs):
    """An image of a 2-D array (tensor or array), with optional tick labels and cell annotations."""
    import numpy as np

    if hasattr(matrix, "detach"):
        matrix = matrix.detach().float().cpu().numpy()
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {m.shape}")
    ax = _axes(ax, kwargs.pop("figsize", None))
    im = ax.imshow(m, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax, **kwargs)
    ax.grid(False)
    if xlabels is not None:
        ax.set_xticks(range(len(xlabels)), [str(x) for x in xlabels], rotation=90 if len(xlabels) > 8 else 0)
    if ylabels is not None:
        ax.set_yticks(range(len(ylabels)), [str(y) for y in ylabels])
    if annotate:
        mid = np.nanmean(m)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8,
                    color="white" if v < mid else "black")
    if colorbar:
        ax.figure.colorbar(im, ax=ax)
    if title:
        ax.set_title(title)
    return ax


def bar(values: Mapping[str, float] | Sequence[float], labels: Optional[Sequence[str]] = None, *,
        ylabel: str = "", title: Optional[str] = None, ax=None, annotate: bool = True,
        fmt: str = "{:.3g}", logy: bool = False, color=None, **kwargs):
    """A bar chart from a dict (label -> value) or values plus labels, with the values written on top."""
    if isinstance(values, Mapping):
        labels, heights = [str(k) for k in values], [float(v) for v in values.values()]
    else:
        heights = [float(v) for v in values]
        labels = [str(x) for x in (labels if labels is not None else range(len(heights)))]
    if len(labels) != len(heights):
        raise ValueError(f"{len(labels)} labels for {len(heights)} values")
    ax = _axes(ax, kwargs.pop("figsize", None))
    bars = ax.bar(range(len(heights)), heights, color=color, **kwargs)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if annotate:
        for b, h in zip(bars, heights):
            ax.annotate(fmt.format(h), (b.get_x() + b.get_width() / 2, h), ha="center", va="bottom", fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def scatter_labels(xy, labels: Sequence[str], *, title: Optional[str] = None, ax=None, **kwargs):
    """Points with text labels (e.g. 2-D projections of embeddings with Chinese tokens)."""
    import numpy as np

    if hasattr(xy, "detach"):
        xy = xy.detach().float().cpu().numpy()
    xy = np.asarray(xy, dtype=float)
    ax = _axes(ax, kwargs.pop("figsize", None))
    ax.scatter(xy[:, 0], xy[:, 1], s=12, **kwargs)
    for (x, y), label in zip(xy, labels):
        ax.annotate(str(label), (x, y), fontsize=9, xytext=(2, 2), textcoords="offset points")
    if title:
        ax.set_title(title)
    return ax
