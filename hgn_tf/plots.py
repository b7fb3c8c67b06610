"""Pictures for people: frame grids (PNG), animations (GIF, MP4) and curves (matplotlib, Agg).

Frames may be uint8 in [0, 255] or float in [0, 1]. GIFs and PNGs are written with Pillow, MP4s
with OpenCV's VideoWriter (MPEG-4 part 2, which every browser and player opens, with no codec
library beyond OpenCV's own).
"""

from __future__ import annotations

import contextlib
import pathlib

import numpy as np

__all__ = ["to_uint8", "grid_png", "tracks_png", "sequences_gif", "sequences_mp4", "animations",
           "line_plot", "scatter_plot", "density_panels"]


def to_uint8(frames) -> np.ndarray:
    a = np.asarray(frames)
    if a.dtype == np.uint8:
        return a
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _upscale(img: np.ndarray, scale: int) -> np.ndarray:
    return img.repeat(scale, axis=-3).repeat(scale, axis=-2) if scale > 1 else img


def grid_png(rows, path, *, scale: int = 2, gap: int = 1, labels=None,
             mark_after: int | None = None) -> pathlib.Path:
    """Write a grid: one row per sequence, one column per frame.

    Args:
      rows: [R, T, H, W, 3] (or a list of such arrays with equal T, H, W: concatenated).
      path: output .png.
      labels: optional row labels (drawn at the left with Pillow's default font).
      mark_after: draw a red bar after this frame index (e.g. the last frame the encoder read).
    """
    from PIL import Image

    if isinstance(rows, (list, tuple)):
        rows = np.concatenate([to_uint8(r) for r in rows])
    rows = _upscale(to_uint8(rows), scale)
    r, t, h, w, _ = rows.shape
    left = 70 if labels else 0
    if mark_after is not None and 0 <= mark_after < t - 1:
        gap = max(gap, 1)
        canvas_w = left + t * (w + gap) + gap + 2
    else:
        mark_after, canvas_w = None, left + t * (w + gap) + gap
    canvas = np.full((r * (h + gap) + gap, canvas_w, 3), 255, np.uint8)
    for i in range(r):
        for j in range(t):
            shift = 2 if mark_after is not None and j > mark_after else 0
            y, x = gap + i * (h + gap), left + gap + j * (w + gap) + shift
            canvas[y:y + h, x:x + w] = rows[i, j]
    if mark_after is not None:
        x = left + gap + (mark_after + 1) * (w + gap) - gap
        canvas[:, x : x + gap + 2] = (220, 0, 0)
    return _label_and_save(Image.fromarray(canvas), labels, h, gap, path)


def _label_and_save(img, labels, h: int, gap: int, path) -> pathlib.Path:
    """Writes each row's label at the left of a grid of rows `h` pixels high, saves `img`."""
    from PIL import ImageDraw

    if labels:
        draw = ImageDraw.Draw(img)
        for i, label in enumerate(labels):
            draw.text((2, gap + i * (h + gap) + h // 2 - 5), str(label)[:11], fill=(0, 0, 0))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


# Track colours: far from the body colours (base.BODY_COLOURS: orange-red, green, blue) and from
# the grey background.
TRACK_COLOURS = ((255, 255, 0), (0, 255, 255), (255, 0, 255))


def tracks_png(rows, tracks, path, *, scale: int = 4, gap: int = 1, labels=None) -> pathlib.Path:
    """A grid like `grid_png`, with a track per body drawn over every frame.

    Over frame t of row r, body b's track is a line through its positions at frames 0..t and a
    cross at frame t (colour TRACK_COLOURS[b]); positions that are NaN (a body not found) are
    left out.

    Args:
      rows: frames [R, T, H, W, 3], uint8 or float in [0, 1].
      tracks: float pixel coordinates [R, T, B, 2] (col, row) in the frames' own pixels, with
        pixel [i, j] centred at (j + 0.5, i + 0.5) (`hgn_tf.physics.project`).
      path: output .png.
      labels: optional row labels.
    """
    from PIL import Image, ImageDraw

    frames = _upscale(to_uint8(rows), scale)
    tracks = np.asarray(tracks, np.float64)
    r, t, h, w, _ = frames.shape
    left = 70 if labels else 0
    canvas = np.full((r * (h + gap) + gap, left + t * (w + gap) + gap, 3), 255, np.uint8)
    origins = {}
    for i in range(r):
        for j in range(t):
            y, x = gap + i * (h + gap), left + gap + j * (w + gap)
            canvas[y:y + h, x:x + w] = frames[i, j]
            origins[i, j] = (x, y)
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    arm = max(2, scale)
    for (i, j), (x0, y0) in origins.items():
        for b in range(tracks.shape[2]):
            colour = TRACK_COLOURS[b % len(TRACK_COLOURS)]
            points = tracks[i, : j + 1, b] * scale + (x0, y0)
            points = [tuple(pt) for pt in points if np.all(np.isfinite(pt))]
            if len(points) > 1:
                draw.line(points, fill=colour, width=1)
            if np.all(np.isfinite(tracks[i, j, b])):
                cx, cy = tracks[i, j, b] * scale + (x0, y0)
                draw.line([(cx - arm, cy), (cx + arm, cy)], fill=colour, width=1)
                draw.line([(cx, cy - arm), (cx, cy + arm)], fill=colour, width=1)
    return _label_and_save(img, labels, h, gap, path)


def sequences_gif(sequences, path, *, scale: int = 3, fps: int = 8, gap: int = 2) -> pathlib.Path:
    """Write an animated GIF showing the sequences [N, T, H, W, 3] side by side."""
    from PIL import Image

    frames = [Image.fromarray(frame) for frame in _side_by_side(sequences, scale, gap)]
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path


def _side_by_side(sequences, scale: int, gap: int) -> np.ndarray:
    """[N, T, H, W, 3] -> [T, H', W', 3] uint8: the N sequences side by side on white."""
    seq = _upscale(to_uint8(sequences), scale)
    n, t, h, w, _ = seq.shape
    canvas = np.full((t, h + 2 * gap, n * (w + gap) + gap, 3), 255, np.uint8)
    for i in range(n):
        canvas[:, gap:gap + h, gap + i * (w + gap):gap + i * (w + gap) + w] = seq[i]
    return canvas


def sequences_mp4(sequences, path, *, scale: int = 3, fps: int = 8, gap: int = 2) -> pathlib.Path:
    """Write an MP4 (MPEG-4 part 2) showing the sequences [N, T, H, W, 3] side by side."""
    import cv2

    frames = _side_by_side(sequences, scale, gap)
    # Most players want even dimensions; pad with white.
    t, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                             (frames.shape[2], frames.shape[1]))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write an MP4 at {str(path)!r}.")
    try:
        for frame in frames:
            writer.write(frame[..., ::-1])  # OpenCV wants BGR
    finally:
        writer.release()
    return path


def animations(sequences, stem, **kwargs) -> tuple[pathlib.Path, pathlib.Path]:
    """`stem`.gif and `stem`.mp4 of the same sequences (see `sequences_gif`)."""
    stem = pathlib.Path(stem)
    return (sequences_gif(sequences, stem.with_suffix(".gif"), **kwargs),
            sequences_mp4(sequences, stem.with_suffix(".mp4"), **kwargs))


def _save_figure(fig, path) -> None:
    """Lays out `fig` and writes it to `path`, creating the folder."""
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


@contextlib.contextmanager
def _axes(path, *, xlabel: str, ylabel: str, title: str, logx: bool = False, logy: bool = False):
    """A matplotlib (Agg) figure whose axes the body draws on; saved to `path` on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        yield ax
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        if title:
            ax.set_title(title)
        ax.grid(alpha=0.3)
        _save_figure(fig, path)
    finally:
        plt.close(fig)


def line_plot(path, series: dict, *, xlabel: str, ylabel: str, title: str = "",
              logy: bool = False, vline: float | None = None,
              styles: dict | None = None) -> pathlib.Path:
    """`series`: {label: (xs, ys)}; `vline`: an x at which to draw a dashed vertical line;
    `styles`: {label: matplotlib keyword arguments} for some series (default: a line with dots)."""
    with _axes(path, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy) as ax:
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, label=label, **(styles or {}).get(label, {"marker": "."}))
        if vline is not None:
            ax.axvline(vline, color="grey", linestyle="--", linewidth=1)
        ax.legend()
    return pathlib.Path(path)


def scatter_plot(path, xs, ys, *, labels=None, colors=None, xlabel: str, ylabel: str,
                 title: str = "", logx: bool = False, logy: bool = False) -> pathlib.Path:
    """One point per (x, y), optionally annotated with `labels`."""
    with _axes(path, xlabel=xlabel, ylabel=ylabel, title=title, logx=logx, logy=logy) as ax:
        ax.scatter(xs, ys, c=colors)
        for i, label in enumerate(labels or []):
            ax.annotate(str(label), (xs[i], ys[i]), fontsize=7)
    return pathlib.Path(path)


def density_panels(path, panels: dict, extent: tuple[float, float], *,
                   title: str = "") -> pathlib.Path:
    """One image per 2-D density on a square grid, side by side (matplotlib, Agg).

    Args:
      panels: {label: [N, N] array}, values of a density on the grid over extent x extent, row i
        at y = the i-th grid value (lowest first: drawn with the origin at the bottom left).
      extent: (lo, hi) of both axes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), dpi=100, squeeze=False)
    lo, hi = extent
    try:
        for ax, (label, values) in zip(axes[0], panels.items()):
            ax.imshow(np.asarray(values), origin="lower", extent=(lo, hi, lo, hi),
                      cmap="viridis", interpolation="nearest")
            ax.set_title(str(label), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        if title:
            fig.suptitle(title, fontsize=10)
        _save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
