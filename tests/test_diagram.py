import subprocess
import sys

import matplotlib.image
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vislab.analysis import diagram as dg
from vislab.analysis.diagram_plot import draw
from vislab.cli import main
from vislab.models import create_model


def _names(d: dg.Diagram) -> list[str]:
    return [b.name for b in d.blocks]


def _edges(d: dg.Diagram) -> set[tuple[str, str]]:
    return {(d.blocks[a].name, d.blocks[b].name) for a, b in d.edges}


class _Skip(nn.Module):
    """a -> b -> (b + a) -> head; an auxiliary head on a that the output never reads."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.aux = nn.Conv2d(8, 2, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        a = self.a(x)
        self.aux(a)
        s = self.b(a) + a
        return self.head(F.adaptive_avg_pool2d(s, 1).flatten(1))


def test_a_skip_between_blocks_is_an_edge_past_the_next_block():
    d = dg.diagram(_Skip(), (16, 16))
    assert _names(d) == ["input", "a", "aux", "b", "add", "adaptive_avg_pool2d", "flatten"] + [
        "head",
        "output",
    ]
    assert ("a", "add") in _edges(d) and ("b", "add") in _edges(d)
    assert ("a", "add") in {(d.blocks[x].name, d.blocks[y].name) for x, y in d.skips()}
    shapes = {b.name: b.shape for b in d.blocks}
    assert shapes["a"] == [8, 8, 8] and shapes["flatten"] == [8] and shapes["output"] == [5]
    assert [b.name for b in d.blocks if not b.used] == ["aux"]  # read by nothing downstream
    assert {b.name: b.params for b in d.blocks}["b"] == 8 * 8 * 9 + 8
    assert d.blocks[3].type == "Conv2d · ReLU"  # a Sequential of leaves says what it holds


class _Res(nn.Module):
    def __init__(self, cat: bool = False):
        super().__init__()
        self.cat = cat
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return torch.cat([x, y], 1) if self.cat else x + y


def test_blocks_that_join_two_paths_inside_are_marked():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), _Res(), _Res(cat=True))
    d = dg.diagram(net, (8, 8))
    assert _names(d) == ["input", "0", "1", "2", "output"]  # the level of the blocks
    assert [b.merge for b in d.blocks] == [None, None, "+", "cat", None]
    assert d.blocks[3].shape == [8, 8, 8]
    assert "1 add two paths inside" in dg.caption(d) and "1 concatenate" in dg.caption(d)
    assert "no connection skips a block" in dg.caption(d)


def test_the_level_is_the_deepest_that_fits(monkeypatch):
    def pair():
        block = nn.Module()
        block.body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
        block.act = nn.ReLU()
        block.forward = lambda x: block.act(block.body(x))
        return block

    net = nn.Sequential(nn.Conv2d(3, 4, 1), pair(), pair(), pair())
    d = dg.diagram(net, (8, 8))
    # the Sequentials of leaves are never split: level 2 is as deep as it goes
    assert d.depth == 2 and _names(d)[1:4] == ["0", "1.body", "1.act"]
    assert len(d.blocks) == 2 + 1 + 3 * 2
    monkeypatch.setattr(dg, "MAX_BLOCKS", 6)
    d = dg.diagram(net, (8, 8))
    assert d.depth == 1 and _names(d) == ["input", "0", "1", "2", "3", "output"]


def test_a_module_called_twice_is_drawn_twice_and_frozen_ones_say_so():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.mid = nn.ReLU()
            self.conv.requires_grad_(False)

        def forward(self, x):
            return self.conv(self.mid(self.conv(x)))

    d = dg.diagram(Twice(), (4, 4))
    assert _names(d) == ["input", "conv", "mid", "conv", "output"]  # one box a call
    assert [b.frozen for b in d.blocks] == [False, True, False, True, False]
    assert d.skips() == []  # the second call is its own block, not an edge back


def test_the_encoder_stages_feed_the_pyramid_decoder():
    d = dg.diagram(
        create_model("fpn", num_classes=7, encoder="timm/tf_efficientnet_lite0", width=96), (64, 64)
    )
    e = _edges(d)
    # features_only at strides 4, 8, 16, 32: stages 1, 2, 4, 6 of timm's blocks
    for level, stage in enumerate((1, 2, 4, 6)):
        assert (f"encoder.blocks.{stage}", f"decoder.lateral.{level}") in e
    assert {b.name: b.shape for b in d.blocks}["decoder.lateral.0"] == [96, 16, 16]
    assert d.blocks[-1].shape == [7, 64, 64] and len(d.blocks) - 2 <= dg.MAX_BLOCKS


def test_resnet9_has_its_two_residual_skips_and_deeplab_its_unused_aux_head():
    d = dg.diagram(create_model("resnet9", num_classes=50), (32, 32))
    assert [d.blocks[b].name for _, b in d.skips()] == ["add", "add"]
    assert d.blocks[-2].name == "fc" and d.blocks[-1].shape == [50]
    d = dg.diagram(create_model("deeplabv3_resnet50", num_classes=7), (64, 64))
    unused = {b.name for b in d.blocks if not b.used}
    assert "net.aux_classifier" in unused and not any("backbone" in n for n in unused)
    cat = _names(d).index("cat")  # the five ASPP branches joined
    assert sorted(d.blocks[a].name for a, b in d.edges if b == cat) == [
        f"net.classifier.0.convs.{i}" for i in range(5)
    ]


def test_the_drawing_has_a_row_per_block(tmp_path):
    small = dg.diagram(_Skip(), (16, 16))
    big = dg.diagram(create_model("resnet9", num_classes=50), (32, 32))
    for d, name in ((small, "small"), (big, "big")):
        draw(d, name, tmp_path / f"{name}.png")
    a = matplotlib.image.imread(tmp_path / "small.png")
    b = matplotlib.image.imread(tmp_path / "big.png")
    rows = (b.shape[0] - a.shape[0]) / (len(big.blocks) - len(small.blocks))
    assert rows == pytest.approx(0.34 * 130, abs=1)  # one step of the layout a block
    assert (a[..., :3].mean(-1) < 0.5).mean() > 0.01  # text and lines, not a blank page


def test_models_draw(tmp_path, capsys):
    assert main(["models", "resnet9", "--draw", str(tmp_path / "r9.png")]) == 0
    assert "2 connections that skip blocks" in capsys.readouterr().out
    assert (tmp_path / "r9.png").stat().st_size > 10_000
    assert main(["models", "resnet9", "--draw", str(tmp_path / "r9.pdf")]) == 2
    assert "--draw writes a PNG" in capsys.readouterr().err
    assert main(["models", "--draw", str(tmp_path / "all.png")]) == 2
    assert "needs a model name" in capsys.readouterr().err


# a trace at a run's input size of 13000x13000, under a 5 GiB address-space limit: one that
# allocated its activations (tens of GiB) would fail at once rather than take the memory
TRACED = """
import resource
resource.setrlimit(resource.RLIMIT_AS, (5 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
from vislab.analysis.diagram import diagram
from vislab.models import create_model
d = diagram(create_model("model_a", num_classes=4), (13000, 13000))
print(d.blocks[1].shape)
"""


def test_a_huge_input_size_is_traced_without_its_memory():
    done = subprocess.run(
        [sys.executable, "-c", TRACED], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[32, 6500, 6500]"  # the shapes at the size itself


class _Scalar(nn.Module):
    """A model that reads a value out of a tensor, which a meta tensor has not."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y * float(y.mean() > 0)


def test_a_model_that_needs_real_tensors_is_traced_on_them_an_allocation_failure_one_line(
    monkeypatch,
):
    from vislab.errors import VislabError

    names = _names(dg.diagram(_Scalar(), (8, 8)))
    assert names[:2] == ["input", "conv"] and names[-1] == "output"

    def failing(self, x):
        if x.device.type != "meta":
            raise RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1"
            )
        return self.conv(x) * float(x.mean() > 0)

    monkeypatch.setattr(_Scalar, "forward", failing)
    with pytest.raises(VislabError, match="^out of memory tracing _Scalar at 8x8; draw it"):
        dg.diagram(_Scalar(), (8, 8))
