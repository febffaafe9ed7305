"""The report's explanations: sentences whose every number is read from the run."""

from __future__ import annotations

from typing import Any

from vislab.report.build import Run, number


def _stages_said(run: Run) -> str:
    init = run.config["model"].get("init")
    if not init:
        return "."
    if run.facts["all_stages"]:
        return f", with the run its weights came from ({init})."
    return f" in this stage alone; its weights came from {init}, whose run was not found."


def explain(run: Run) -> None:
    """Short explanations, every number read from the run."""
    f = run.facts
    if "best" not in f:
        return
    run.text["result"] = _result(run, f)
    if f.get("embed"):
        run.text["pca"] = _pca(run, f["embed"]["pca"], f["embed"]["feature_dim"])
        run.text["tsne"] = _tsne(run, f["embed"]["tsne"])
    if f.get("progress"):
        run.text["progress"] = _progress(f["progress"])
    if f.get("per_class"):
        run.text["per_class"] = _per_class(f["per_class"])
    if f.get("balance"):
        run.text["balance"] = _balance(f["balance"])
    if f.get("failures"):
        run.text["failures"] = _failures(f["failures"])


def _class(name: str) -> str:
    return f"class {name}" if name.isdigit() else name


def _pairs_said(pairs: list[dict[str, Any]], unit: str) -> str:
    return "; ".join(
        f"{_class(p['true'])} taken for {_class(p['pred'])}, {p['count']:,} "
        f"{unit if p['count'] != 1 else unit[:-1]} ({p['share']:.1%} of {_class(p['true'])})"
        for p in pairs
    )


def _failures(fl: dict[str, Any]) -> str:
    """The mistakes that cost most: the confused pairs, and the worst tiles or classes."""
    unit = fl["unit"]
    if not fl["pairs"]:
        return f"No mistakes on the {fl['n']:,} validation {unit}."
    text = (
        f"The most frequent mistakes over the validation {unit}: {_pairs_said(fl['pairs'], unit)}."
    )
    if "worst" in fl:
        worst = ", ".join(
            f"{w['tile']} ({w['miou']:.3f}"
            + (
                f"; mostly {w['pairs'][0]['true']} taken for {w['pairs'][0]['pred']}"
                if w["pairs"]
                else ""
            )
            + ")"
            for w in fl["worst"]
        )
        text += (
            f" Of the {fl['n']} tiles, each scored alone (the mean IoU of the classes in its "
            f"truth or prediction; median {fl['median']:.3f}), the worst are {worst}."
        )
    else:
        acc = fl["class_accuracy"]
        order = sorted(acc, key=lambda c: (acc[c], c))
        low = ", ".join(f"{_class(c)} {acc[c]:.2f}" for c in order[:3])
        high = ", ".join(f"{_class(c)} {acc[c]:.2f}" for c in order[::-1][:3])
        text += (
            f" Per-class accuracy spans {acc[order[0]]:.2f} to {acc[order[-1]]:.2f} around the "
            f"overall {fl['accuracy']:.4f}: lowest {low}; highest {high}."
        )
    return text


def _balance(b: dict[str, Any]) -> str:
    """The smallest and largest classes by train share, and what they scored at the end."""
    train, val, classes, final = b["shares"]["train"], b["shares"]["val"], b["classes"], b["final"]
    order = sorted(range(len(classes)), key=lambda i: train[i])

    def said(i: int) -> str:
        c = classes[i]
        score = f", last score {final[c]:.3f}" if final and c in final else ""
        return f"{c}, {train[i]:.1%} of the train {b['unit']} ({val[i]:.1%} of validation{score})"

    text = f"Smallest class: {said(order[0])}; largest: {said(order[-1])}."
    if "balanced_weights" in b:
        named = ", ".join(f"{c} {w:g}" for c, w in zip(classes, b["balanced_weights"], strict=True))
        text += f" optim.class_weights: balanced would weigh the loss {named}."
    return text


def _per_class(pc: dict[str, Any]) -> str:
    """Which classes are learnt early and which late: the first epoch at which each class
    reached 90% of its last score."""
    epochs, table, metric = pc["epochs"], pc["table"], pc["metric"]
    when = {}
    for name, values in table.items():
        if values[-1] > 0:
            reached = (e for e, v in zip(epochs, values, strict=True) if v >= 0.9 * values[-1])
            when[name] = next(reached)
    order = sorted(when, key=lambda c: (when[c], -table[c][-1]))
    weakest = min(table, key=lambda c: table[c][-1])
    n = 3 if len(order) > 6 else max(1, len(order) // 2)
    first = ", ".join(f"{c} (epoch {when[c]})" for c in order[:n])
    late = ", ".join(f"{c} (epoch {when[c]})" for c in order[::-1][:n])
    at = ", ".join(map(str, epochs)) if len(epochs) <= 5 else f"{epochs[0]} to {epochs[-1]}"
    text = (
        f"Per-class {metric} at epochs {at}. The classes that reach 90% "
        f"of their last {metric} first: {first}; the last to: {late}. The weakest class at "
        f"the end is {weakest} ({table[weakest][-1]:.3f})"
    )
    never = sorted(set(table) - set(when))
    if never:
        text += f"; never predicted right: {', '.join(never[:5])}"
    return text + "."


def _result(run: Run, f: dict[str, Any]) -> str:
    t = (
        f"{run.name} ({run.model}) reached its best validation {f['metric']} of {f['best']:.4f} "
        f"at epoch {f['best_epoch']} of {f['epochs_done']} (planned {f['epochs_planned']}); "
        f"the last epoch scored {f['final']:.4f}. Training took {f['train_minutes']:.1f} min"
        + _stages_said(run)
    )
    if "final_train_acc" in f:
        gap = f["final_train_acc"] - f["final"]
        t += f" Train accuracy ended at {f['final_train_acc']:.4f}, {gap:.2f} above validation" + (
            ": the network memorises the training set." if gap > 0.2 else "."
        )
    return t


def _pca(run: Run, p: dict[str, Any], dim: int) -> str:
    return (
        f"The first two principal components of the {dim}-dimensional "
        f"second-to-last layer (epoch {p['epoch']}) explain "
        f"{p['explained_variance'][0]:.1%} and {p['explained_variance'][1]:.1%} of its "
        f"variance. In this plane a 10-nearest-neighbour classifier reaches "
        f"{p['knn_acc_2d']:.3f} (chance: {1 / run.config['model']['num_classes']:.3f}) and "
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


def _progress(prog: dict[str, Any]) -> str:
    parts = []
    for tile, values in prog["miou"].items():
        shown = " → ".join(f"{v:.3f}" for v in values)
        parts.append(f"tile {tile}: {shown}")
    text = (
        f"mIoU of each tile at epochs {', '.join(map(str, prog['epochs']))}: "
        + "; ".join(parts)
        + "."
    )
    if "predicted_share" in prog:
        truth, first = prog["truth_share"], prog["predicted_share"][0]
        top = max(first, key=first.get)
        text += (
            f" At epoch {prog['epochs'][0]}, {first[top]:.0%} of these tiles' pixels are "
            f"predicted {top} (truth: {truth[top]:.0%});"
            f" by epoch {prog['epochs'][-1]}, {prog['predicted_share'][-1][top]:.0%}."
        )
    return text


def details(run: Run) -> list[tuple[str, str]]:
    """Implementation details, read from the resolved config."""
    c, d, o, t = run.config, run.config["data"], run.config["optim"], run.config["trainer"]
    aug = [
        name
        for name, on in (
            (f"random crop (pad {d.get('crop_padding')})", d.get("crop_padding")),
            (f"random {d.get('crop_size')} crops", d.get("crop_size")),
            ("horizontal flips", d.get("hflip")),
            ("vertical flips", d.get("vflip")),
            ("90-degree rotations", d.get("rot90")),
            (f"MixUp (alpha {d.get('mixup')})", d.get("mixup")),
            (f"CutMix (alpha {d.get('cutmix')})", d.get("cutmix")),
        )
        if on
    ]
    opt = f"{o['name']} lr {o['lr']}, weight decay {o['weight_decay']}"
    if o["name"] == "sgd":
        opt += f", momentum {o['momentum']}"
    size = d.get("image_size")
    return [
        ("model", f"{c['model']['name']} {c['model'].get('kwargs') or ''}".strip()),
        ("optimizer", opt),
        ("schedule", o["schedule"]),
        (
            "loss",
            "cross-entropy"
            + (f", label smoothing {o['label_smoothing']}" if o.get("label_smoothing") else ""),
        ),
        ("epochs, batch size", f"{t['epochs']}, {d['batch_size']}"),
        ("input", f"{size}x{size}" if size else "as stored"),
        ("augmentation", ", ".join(aug) or "none"),
        ("precision", f"{t['precision']}" + (", channels_last" if t.get("channels_last") else "")),
        ("seed", str(c["seed"])),
    ]
