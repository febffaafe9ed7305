import subprocess
import sys

import pytest

from vislab.analysis.architecture import layer_table
from vislab.models import create_model


def test_model_a_table_has_every_layer_with_shapes_and_params():
    t = layer_table(create_model("model_a", num_classes=50), (32, 32))
    names = [r["name"] for r in t["rows"]]
    assert names[:4] == ["features.0.0", "features.0.1", "features.0.2", "features.0.3"]
    assert t["rows"][3]["output"] == [32, 16, 16] and t["output"] == [50]
    assert sum(r["params"] for r in t["rows"]) == t["total_params"]


@pytest.mark.parametrize(
    "name, size, out",
    [("deeplabv3_resnet50", 64, [7, 64, 64]), ("lraspp_mobilenet_v3", 64, [7, 64, 64])],
)
def test_segmenter_tables_end_at_the_input_resolution(name, size, out):
    t = layer_table(create_model(name, num_classes=7), (size, size))
    assert t["output"] == out and len(t["rows"]) <= 40
    assert all(r["output"] is not None for r in t["rows"])


# the table at a run's input size of 13000x13000, under a 5 GiB address-space limit: a pass
# that allocated its activations (tens of GiB) would fail at once rather than take the memory
TABLED = """
import resource
resource.setrlimit(resource.RLIMIT_AS, (5 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
from vislab.analysis.architecture import layer_table
from vislab.models import create_model
t = layer_table(create_model("model_a", num_classes=4), (13000, 13000))
print(t["rows"][3]["output"], t["output"])
"""


def test_a_huge_input_size_is_tabled_without_its_memory():
    done = subprocess.run(
        [sys.executable, "-c", TABLED], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[32, 6500, 6500] [4]"  # the shapes at the size itself


def test_a_vislab_error_of_the_meta_pass_is_raised_not_retried_on_the_real_model():
    """A refusal is the answer: running the model itself would only take the memory."""
    import torch.nn as nn

    from vislab.analysis.architecture import at_any_size
    from vislab.errors import VislabError

    seen = []

    def refuses(model, size):
        seen.append(next(model.parameters()).device.type)
        raise VislabError("input 13000x13000: too large for this model")

    with pytest.raises(VislabError, match="too large for this model"):
        at_any_size(refuses, nn.Linear(2, 2), (13000, 13000))
    assert seen == ["meta"]
