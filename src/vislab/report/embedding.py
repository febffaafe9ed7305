"""A classifier's second-to-last layer in 2-D, as `vislab embed` wrote it (RUN/embed/): the PCA
and t-SNE figures, what their scores say, and the explorable view of the points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vislab.report.run import Run, Section, number


def embedding(run: Run, figures: Path) -> Section:
    """The embed facts and figures of a classification run, or what is missing."""
    from vislab.report.explorer import explorer

    embed = run.folder.embed_dir
    out = Section()
    if not (embed / "metrics.json").is_file():
        out.missing.append(f"PCA and t-SNE figures (run `vislab embed {run.path}`)")
        return out
    facts = json.loads((embed / "metrics.json").read_text())
    out.facts["embed"] = facts
    for name in ("pca", "tsne"):
        if (embed / f"{name}.png").is_file():
            out.figures[name] = embed / f"{name}.png"
    if "best" in run.facts:  # the sentences compare with the validation scores
        out.text["pca"] = _pca(facts["pca"], facts["feature_dim"], len(run.classes))
        out.text["tsne"] = _tsne(run, facts["tsne"])
    view = explorer(run, facts)
    out.facts.update(view.facts)
    out.missing += view.missing
    return out


def _pca(p: dict[str, Any], dim: int, num_classes: int) -> str:
    return (
        f"The first two principal components of the {dim}-dimensional "
        f"second-to-last layer (epoch {p['epoch']}) explain "
        f"{p['explained_variance'][0]:.1%} and {p['explained_variance'][1]:.1%} of its "
        f"variance. In this plane a 10-nearest-neighbour classifier reaches "
        f"{p['knn_acc_2d']:.3f} (chance: {1 / max(1, num_classes):.3f}) and "
        f"the silhouette of the true classes is {p['silhouette_2d']:.3f}: a linear 2-D view "
        "keeps only a little of the class structure."
    )


def _tsne(run: Run, ts: list[dict[str, Any]]) -> str:
    steps = " → ".join(f"{x['knn_acc_2d']:.3f}" for x in ts)
    sil = " → ".join(f"{x['silhouette_2d']:.3f}" for x in ts)
    epochs = ", ".join(str(x["epoch"]) for x in ts)
    rows = {int(r["epoch"]): r for r in run.rows}
    accs = [number(rows[x["epoch"]], "val_acc") for x in ts if x["epoch"] in rows]
    acc_txt = (" → ".join(f"{a:.3f}" for a in accs)) if len(accs) == len(ts) else None
    return (
        f"At epochs {epochs}, 10-NN accuracy in the t-SNE plane goes {steps} and the "
        f"silhouette {sil}"
        + (f", while validation accuracy goes {acc_txt}" if acc_txt else "")
        + ". Classes that form their own islands are the ones the network tells apart; "
        "the mixed centre holds the classes it confuses."
    )
