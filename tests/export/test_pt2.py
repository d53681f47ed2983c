import subprocess
import sys
import textwrap

import pytest
import torch

from lightning_grda.export import save_pt2, thin
from lightning_grda.export.pt2 import check_pt2
from lightning_grda.models.backbones import CifarResNet
from tests.export.thinned import thinned_digits_cnn

# Loads the .pt2 files in a fresh interpreter that cannot import lightning_grda: isolated mode (-I: no PYTHONPATH,
# no user site, no script folder on sys.path), a cwd outside the repository, and a meta path finder that refuses the
# package even where it is installed into the environment.
LOADER = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "lightning_grda":
                raise ImportError(f"blocked: {name}")

    sys.meta_path.insert(0, Block())
    try:
        import lightning_grda
    except ImportError:
        pass
    else:
        raise SystemExit("lightning_grda is importable")

    import torch

    inputs = torch.load(sys.argv[1], weights_only=True)
    outputs = {}
    for name, xs in inputs.items():
        module = torch.export.load(f"{name}.pt2").module()
        with torch.no_grad():
            outputs[name] = [module(x) for x in xs]
    torch.save(outputs, sys.argv[2])
    assert not any(m.split(".")[0] == "lightning_grda" for m in sys.modules)
    """
)


def _thinned_resnet8():
    torch.manual_seed(0)
    model = CifarResNet(depth=8, num_classes=10).eval()
    with torch.no_grad():
        block = model.layer1[0]  # a residual block's inner channels: conv1 -> bn1 -> relu -> conv2
        block.conv1.weight[:6] = 0
        block.bn1.weight[:6] = 0
        block.bn1.bias[:6] = 0
    small, report = thin(model, torch.randn(1, 3, 8, 8))
    assert report.params_after < report.params_before
    return small


@pytest.mark.slow  # ~6-9 s: the fresh interpreter imports torch (2 s) and torch.export's serializer (2 s)
def test_pt2_rebuilds_without_this_pack(tmp_path):
    models = {"digits": (thinned_digits_cnn()[1], (1, 8, 8)), "resnet8": (_thinned_resnet8(), (3, 8, 8))}
    inputs = {}
    for name, (model, shape) in models.items():
        save_pt2(model, torch.randn(1, *shape), tmp_path / f"{name}.pt2", check=False)  # the subprocess checks
        inputs[name] = [torch.randn(batch, *shape) for batch in (1, 3)]
    torch.save(inputs, tmp_path / "inputs.pt")
    run = subprocess.run(
        [sys.executable, "-I", "-c", LOADER, "inputs.pt", "outputs.pt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    outputs = torch.load(tmp_path / "outputs.pt", weights_only=True)
    for name, (model, _) in models.items():
        for x, got in zip(inputs[name], outputs[name], strict=True):
            with torch.no_grad():
                want = model.eval()(x)
            assert got.dtype == torch.float32
            assert got.shape == want.shape
            assert (got - want).abs().max() <= 1e-5, name


def test_a_batch_of_several_is_exported_as_it_is(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    assert save_pt2(net, (torch.randn(2, 4),), tmp_path / "n.pt2", check=False) is None
    assert check_pt2(net, tmp_path / "n.pt2", torch.randn(1, 4)) == 0.0
    assert check_pt2(net, tmp_path / "n.pt2", torch.randn(7, 4)) == 0.0


@pytest.mark.parametrize("case", ["directory", "no_folder"])
def test_bad_path_names_the_argument_and_echoes_it(tmp_path, case):
    net = torch.nn.Linear(4, 3)
    path = tmp_path / "m.pt2"
    if case == "directory":
        path.mkdir()
    else:
        path = tmp_path / "no_such_dir" / "m.pt2"
    before = set(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=r"Invalid path: '.*m\.pt2'; expected a file in an existing folder"):
        save_pt2(net, torch.randn(1, 4), path)
    assert set(tmp_path.rglob("*")) == before


def test_bad_example_inputs_names_the_argument(tmp_path):
    with pytest.raises(ValueError, match=r"Invalid example_inputs: \[1, 2\]"):
        save_pt2(torch.nn.Linear(2, 1), [1, 2], tmp_path / "m.pt2")


def test_unexportable_model_names_it(tmp_path):
    class FixedBatch(torch.nn.Module):
        def forward(self, x):
            return x.reshape(2, -1)  # only batch 2 fits: no dynamic batch

    with pytest.raises(ValueError, match="torch.export could not export FixedBatch with a dynamic batch"):
        save_pt2(FixedBatch(), torch.randn(2, 4), tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()
