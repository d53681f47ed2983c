import pytest
import torch

from lightning_grda.cli import main
from lightning_grda.export import load_sparse
from tests.helpers import quick_fit_args

QUICK = [
    *quick_fit_args(train_batches=3),
    "--trainer.logger=false",
    "--test_after_fit=false",
]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A checkpoint written by a real (short) ``lightning-grda fit``."""
    root = tmp_path_factory.mktemp("fit")
    cli = main(["fit", *QUICK, f"--trainer.default_root_dir={root}"])
    ckpt = next(root.rglob("*.ckpt"))
    return ckpt, cli.model


def test_export_a_fit_checkpoint(fitted, tmp_path, capsys):
    ckpt, model = fitted
    out = tmp_path / "model.safetensors"
    assert main(["export", str(ckpt), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Total" in text
    assert "sparse" in text
    state = load_sparse(out)
    assert not any(k.startswith(("optimizer", "callbacks")) for k in state)
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v), k


def test_default_output_name(fitted, tmp_path):
    ckpt, _ = fitted
    copy = tmp_path / "run.ckpt"
    copy.write_bytes(ckpt.read_bytes())
    assert main(["export", str(copy)]) == 0
    assert (tmp_path / "run.safetensors").is_file()


def test_export_a_state_dict_and_a_pickled_module(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    assert main(["export", str(tmp_path / "sd.pt")]) == 0
    assert torch.equal(load_sparse(tmp_path / "sd.safetensors")["0.weight"], net[0].weight)
    torch.save(net, tmp_path / "whole.pt")
    assert main(["export", str(tmp_path / "whole.pt")]) == 1  # refused without --trust-pickle
    assert main(["export", str(tmp_path / "whole.pt"), "--trust-pickle"]) == 0


@pytest.mark.parametrize("case", ["missing", "directory", "no_state_dict", "unwritable"])
def test_bad_input_is_one_error_line_and_no_file(tmp_path, capsys, case):
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    out = tmp_path / "out.safetensors"
    if case == "missing":
        args, name = [str(tmp_path / "nope.ckpt"), "-o", str(out)], "nope.ckpt"
    elif case == "directory":
        (tmp_path / "d.ckpt").mkdir()
        args, name = [str(tmp_path / "d.ckpt"), "-o", str(out)], "d.ckpt"
    elif case == "no_state_dict":
        torch.save({"pytorch-lightning_version": "2.5", "epoch": 1}, tmp_path / "bad.ckpt")
        args, name = [str(tmp_path / "bad.ckpt"), "-o", str(out)], "bad.ckpt"
    else:
        out = tmp_path / "no_such_dir" / "out.safetensors"
        args, name = [str(tmp_path / "ok.pt"), "-o", str(out)], "no_such_dir"
    before = set(tmp_path.rglob("*"))
    assert main(["export", *args]) == 1
    err = capsys.readouterr().out.strip()
    assert err.startswith("error:")
    assert name in err
    assert not out.exists()
    assert set(tmp_path.rglob("*")) == before


def test_help_lists_export(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "export:" in capsys.readouterr().out


def test_export_thin_writes_an_onnx_model(fitted, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    ckpt, model = fitted
    out = tmp_path / "m.safetensors"
    assert main(["export", str(ckpt), "-o", str(out), "--thin"]) == 0
    text = capsys.readouterr().out
    assert "Dead channels removed" in text
    assert "MACs" in text
    from lightning_grda.export.onnx import check_onnx

    assert check_onnx(model.backbone, tmp_path / "m.onnx", torch.randn(4, 1, 8, 8)) <= 1e-4


def test_export_thin_pt2_only(fitted, tmp_path, capsys):
    ckpt, model = fitted
    out = tmp_path / "m.safetensors"
    assert main(["export", str(ckpt), "-o", str(out), "--thin", "--format", "pt2"]) == 0
    assert f"thinned model: {tmp_path / 'm.pt2'}" in capsys.readouterr().out
    assert not (tmp_path / "m.onnx").exists()
    from lightning_grda.export.pt2 import check_pt2

    for batch in (1, 3):
        assert check_pt2(model.backbone, tmp_path / "m.pt2", torch.randn(batch, 1, 8, 8)) <= 1e-5


def test_export_thin_both_formats(fitted, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    ckpt, _ = fitted
    assert main(["export", str(ckpt), "-o", str(tmp_path / "m.safetensors"), "--thin", "--format=both"]) == 0
    text = capsys.readouterr().out
    for name in ("m.onnx", "m.pt2"):
        assert (tmp_path / name).is_file()
        assert f"thinned model: {tmp_path / name}" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--thin", "--format", "tflite"], "Invalid --format: 'tflite'; expected one of ('onnx', 'pt2', 'both')"),
        (["--format", "pt2"], "Invalid --format: 'pt2'; expected it with --thin"),
    ],
    ids=["unknown", "without_thin"],
)
def test_bad_format_is_refused_before_any_work(tmp_path, capsys, args, message):
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    before = set(tmp_path.rglob("*"))
    assert main(["export", str(tmp_path / "ok.pt"), *args]) == 1
    assert capsys.readouterr().out.strip().startswith(f"error: {message}")
    assert set(tmp_path.rglob("*")) == before


def test_pt2_path_that_is_a_directory_names_it(fitted, tmp_path, capsys):
    ckpt, _ = fitted
    (tmp_path / "m.pt2").mkdir()
    assert main(["export", str(ckpt), "-o", str(tmp_path / "m.safetensors"), "--thin", "--format", "pt2"]) == 1
    err = capsys.readouterr().out.strip().splitlines()[-1]
    assert err.startswith("error: cannot write")
    assert "Invalid path: " in err
    assert repr(str(tmp_path / "m.pt2")) in err


def test_missing_onnx_extra_suggests_pt2(fitted, tmp_path, capsys, monkeypatch):
    import lightning_grda.export.onnx as onnx_module

    def no_onnx(*args, **kwargs):
        raise ImportError("No module named 'onnxscript'")

    monkeypatch.setattr(onnx_module, "save_onnx", no_onnx)
    ckpt, _ = fitted
    assert main(["export", str(ckpt), "-o", str(tmp_path / "m.safetensors"), "--thin"]) == 1
    err = capsys.readouterr().out.strip().splitlines()[-1]
    assert "No module named 'onnxscript'" in err
    assert err.endswith("(pip install 'lightning-grda[export]', or --format pt2)")
    assert not (tmp_path / "m.onnx").exists()
