"""The inference entry point of a `vislab submission` folder, shipped there as hw1_infer.py.

    python3 hw1_infer.py 1 IMG_DIR OUT_CSV     # what hw1_1.sh runs
    python3 hw1_infer.py 2 IMG_DIR OUT_DIR     # what hw1_2.sh runs

It reads pN_model.json (the model and its preprocessing, vislab's export metadata) and
pN_model.npz (the weights as NumPy arrays, loaded without unpickling: a weights file
fetched from the web runs no code) from its own folder (an ensemble's members: pN_model_1,
pN_model_2, ..., whose class probabilities it averages), builds the model with the vislab code
shipped beside it, and predicts with vislab's own prediction functions and their test-time
augmentation (`vislab predict --tta`: image + mirror for 1, the 8 flips and rotations for 2),
on the GPU when there is one, else on the CPU. It imports only what the course's environment
has (Python 3.8, torch 1.12.1, torchvision 0.13.1, numpy, Pillow; timm 0.6.7 for timm's
networks).
"""

from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load(problem: str, device) -> list:
    """The models of problem in this folder, on device: [(model, meta)] of pN_model.npz /
    pN_model.json, or of an ensemble's pN_model_1, pN_model_2, ... in that order."""
    from vislab.infer.checkpoint import build_model
    from vislab.infer.meta import ModelMeta

    names = [f"p{problem}_model"]
    if not os.path.isfile(os.path.join(HERE, f"p{problem}_model.json")):
        names = []
        while os.path.isfile(os.path.join(HERE, f"p{problem}_model_{len(names) + 1}.json")):
            names.append(f"p{problem}_model_{len(names) + 1}")
    if not names:
        raise SystemExit(f"hw1_infer.py: no p{problem}_model.json in {HERE}")
    models = []
    for name in names:
        weights = os.path.join(HERE, name + ".npz")
        if not os.path.isfile(weights):
            download = os.path.join(HERE, "hw1_download.sh")
            hint = f"; run `bash {download}` first" if os.path.isfile(download) else ""
            raise SystemExit(f"hw1_infer.py: no weights file {weights}{hint}")
        described = os.path.join(HERE, name + ".json")
        with open(described) as f:
            meta = ModelMeta.from_dict(json.load(f), described)
        model = build_model(weights, meta, read_weights(weights)).to(device).eval()
        models.append((model, meta))
    return models


def read_weights(path: str) -> dict:
    """The state dict in the .npz at path (build.weights_npz), read with pickles refused."""
    import zipfile

    import numpy as np
    import torch

    def refused(why) -> SystemExit:
        return SystemExit(
            f"hw1_infer.py: {path} is not a weights file of `vislab submission` ({why}); "
            "write the folder again, or fetch the file again with hw1_download.sh"
        )

    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile)  # ValueError: a pickle
    try:
        loaded = np.load(path, allow_pickle=False)
    except unreadable as e:
        raise refused(e) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise refused("one array, not a set of named arrays")
    state = {}
    with loaded as arrays:
        for key in arrays.files:
            try:
                value = arrays[key]  # an entry that is no .npy comes back as its bytes
                state[key] = torch.from_numpy(value)
            except (*unreadable, TypeError) as e:
                raise refused(f"its entry {key!r}: {e}") from None
    return state


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] not in ("1", "2"):
        raise SystemExit(
            "usage: python3 hw1_infer.py {1,2} IMG_DIR OUT (a CSV for 1, a folder for 2)"
        )
    problem, images, out = argv
    import torch

    from vislab.errors import VislabError
    from vislab.infer.predict import predict_classes, predict_masks

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    try:
        models = load(problem, device)
        if problem == "1":
            n = predict_classes(models, images, out, batch_size=500, precision="32", tta=True)
        else:
            n = predict_masks(models, images, out, batch_size=4, precision="32", tta=True)
    except VislabError as e:
        raise SystemExit(f"hw1_infer.py: error: {e}") from None
    took = time.perf_counter() - start
    names = " + ".join(meta.model for _, meta in models)
    print(f"wrote {out} ({n} images, {names} on {device.type}, {took:.1f} s)")


if __name__ == "__main__":
    sys.path.insert(0, HERE)  # the vislab code shipped beside this file
    main()
