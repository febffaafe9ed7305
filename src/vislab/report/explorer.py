"""The report's explorable embedding of a classification run: the PCA and t-SNE points of each
snapshot (RUN/embed/coords.npz, as `vislab embed` writes it), their images as one sprite,
classes and predictions, as the data of the HTML's own script (report.html.j2), so that it
works offline in the one file: hover a point for its image, true and predicted class; click a
class in the legend to highlight it; switch snapshots on the same axes."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from vislab.report.run import Run, Section

CELL = 32  # sprite cell, pixels: the course's image size
VIEWS = (("tsne", "t-SNE"), ("pca", "PCA"))


def explorer(run: Run, embed: dict[str, Any]) -> Section:
    """facts["explorer"]: the JSON the page's script reads, when embed (the facts of
    RUN/embed/metrics.json) wrote its coordinates."""
    out = Section()
    coords = run.folder.embed_dir / "coords.npz"
    if not coords.is_file():
        return out  # the report already names the missing embed step
    from matplotlib.colors import to_hex

    from vislab.analysis.embed_plots import class_colors

    z = np.load(coords)
    names = [str(n) for n in z["names"]]
    classes = _classes(run, int(z["labels"].max()) + 1)
    data: dict[str, Any] = {
        "classes": classes,
        "colors": [to_hex(rgba[:3]) for rgba in class_colors(len(classes))],
        "labels": z["labels"].astype(int).tolist(),
        "names": names,
        "views": _views(z),
    }
    sprite = _sprite(Path(embed["data"]), names)
    if sprite is None:
        out.missing.append(
            f"the explorer's images (the embedded images of {embed['data']} are not here)"
        )
    else:
        data["sprite"], data["columns"] = sprite
        data["cell"] = CELL
    # every "<" as JSON's "\u003c": no "</script>" or "<!--" of a name can end or bend the
    # script element that holds the data, and JSON.parse reads the same text
    out.facts["explorer"] = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return out


def _classes(run: Run, k: int) -> list[str]:
    """The names of labels 0..k-1 of the points: the run's, else the label numbers."""
    return list(run.classes) if len(run.classes) >= k else [str(i) for i in range(k)]


def _views(z: Any) -> list[dict[str, Any]]:
    """Each snapshot's PCA and t-SNE points, scaled into [0, 1] with one frame per method,
    and its predictions."""
    views = []
    for kind, title in VIEWS:
        epochs = sorted(int(k.rsplit("_", 1)[1]) for k in z.files if k.startswith(f"{kind}_epoch_"))
        if not epochs:
            continue
        stack = np.concatenate([z[f"{kind}_epoch_{e}"] for e in epochs])
        lo, span = stack.min(0), np.maximum(np.ptp(stack, 0), 1e-12)
        for e in epochs:
            xy = (z[f"{kind}_epoch_{e}"] - lo) / span
            views.append(
                {
                    "name": f"{title}, epoch {e}",
                    "xy": [round(float(v), 4) for v in xy.ravel()],
                    "pred": z[f"pred_epoch_{e}"].astype(int).tolist(),
                }
            )
    return views


def _sprite(folder: Path, names: list[str]) -> tuple[str, int] | None:
    """All images, CELL x CELL each, row-major in a square grid, as a PNG data URI; and the
    grid's columns. None when an image is not there."""
    from PIL import Image

    from vislab.data.images import read_rgb
    from vislab.errors import VislabError

    columns = math.ceil(math.sqrt(len(names)))
    sheet = np.zeros((math.ceil(len(names) / columns) * CELL, columns * CELL, 3), np.uint8)
    for i, name in enumerate(names):
        try:
            image = read_rgb(folder / name, size=CELL)
        except (OSError, VislabError):
            return None
        r, c = divmod(i, columns)
        sheet[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = image
    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), columns
