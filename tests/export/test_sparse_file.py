import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lightning_grda.export import bake_masks, load_sparse, save_sparse
from lightning_grda.export.sparse_file import _pack_torch, _unpack_torch, pack_bits, unpack_bits
from lightning_grda.weights import read_state_dict

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def _sparse(shape, dtype, density=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(dtype)
    return torch.where(torch.rand(shape, generator=g) < density, x, torch.zeros((), dtype=dtype))


def _bitwise_equal(a, b):
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8))
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_case(tmp_path, dtype):
    nonc = _sparse((6, 10), dtype).t()  # non-contiguous
    assert not nonc.is_contiguous()
    sd = {
        "sparse": _sparse((33, 17), dtype),
        "zeros": torch.zeros(5, 7, dtype=dtype),
        "dense": torch.randn(4, 4).to(dtype) + 10,
        "scalar": torch.tensor(3.0, dtype=dtype),
        "scalar0": torch.tensor(0.0, dtype=dtype),
        "empty": torch.zeros(0, 3, dtype=dtype),
        "nonc": nonc,
        "count": torch.tensor(7, dtype=torch.int64),
        "special": torch.tensor([0, 0, float("nan"), 0, float("inf"), 0, 0, 0, 0, -float("inf")] * 4).to(dtype),
    }
    report = save_sparse(sd, tmp_path / "m.safetensors")
    back = load_sparse(tmp_path / "m.safetensors")
    assert list(back) == list(sd)
    for k, v in sd.items():
        assert _bitwise_equal(back[k], v.contiguous()), k
    enc = {r.name: r.encoding for r in report.rows}
    assert enc["sparse"] == enc["zeros"] == enc["nonc"] == "bitmask"
    assert enc["dense"] == enc["count"] == enc["empty"] == "dense"


def test_negative_zero_becomes_zero(tmp_path):
    w = torch.zeros(64)
    w[3] = -0.0
    w[5] = 1.0
    save_sparse({"w": w}, tmp_path / "w.safetensors")
    back = load_sparse(tmp_path / "w.safetensors")["w"]
    assert torch.equal(back, w)
    assert not torch.signbit(back[3])


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000])
def test_pack_bits_matches_numpy(n):
    import numpy as np

    mask = torch.rand(n, generator=torch.Generator().manual_seed(n)) < 0.5
    packed = pack_bits(mask)
    assert packed.tolist() == np.packbits(mask.numpy()).tolist()
    assert torch.equal(unpack_bits(packed, n), mask)
    assert torch.equal(_pack_torch(mask), packed)  # the path other devices take
    assert torch.equal(_unpack_torch(packed, n), mask)


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
def test_size_bound(tmp_path, sparsity):
    w = torch.randn(256, 256)
    w[torch.rand_like(w) < sparsity] = 0
    nnz = int((w != 0).sum())
    report = save_sparse({"w": w}, tmp_path / "w.safetensors")
    assert report.rows[0].stored_bytes == 256 * 256 // 8 + 4 * nnz
    assert report.file_bytes <= report.rows[0].stored_bytes + 1024  # the header
    assert report.file_bytes / report.dense_bytes <= 1 / 32 + nnz / w.numel() + 0.02


def test_module_and_strict_load(tmp_path):
    net = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.Linear(30, 2))
    with torch.no_grad():
        net[0].weight[torch.rand_like(net[0].weight) < 0.9] = 0
    report = save_sparse(net, tmp_path / "n.safetensors")
    assert "Total" in str(report)
    assert "sparse" in report.summary()
    fresh = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.Linear(30, 2))
    assert load_sparse(tmp_path / "n.safetensors", model=fresh) is fresh
    for (k, a), b in zip(net.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_sparse(
            tmp_path / "n.safetensors", model=nn.Sequential(nn.Linear(20, 31), nn.BatchNorm1d(30), nn.Linear(30, 2))
        )
    # read_state_dict, the pack's one weight reader, understands the compact file
    assert torch.equal(read_state_dict(tmp_path / "n.safetensors")["0.weight"], net[0].weight)


def _rewrite(src, dst, edit):
    tensors = load_file(src)
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    edit(tensors, meta)
    save_file(tensors, dst, metadata=meta)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t, m: t.__setitem__("w::values", t["w::values"][:-1]), "'w' has a mask with 5 set bits but 4 values"),
        (lambda t, m: t.__setitem__("w::mask", t["w::mask"][:-1]), "'w' has a mask of"),
        (
            lambda t, m: m.__setitem__(
                "tensors", json.dumps({"w": {"encoding": "bitmask", "shape": [10, 11], "dtype": "float32"}})
            ),
            "'w' has a mask of",
        ),
        (
            lambda t, m: m.__setitem__(
                "tensors", json.dumps({"w": {"encoding": "bitmask", "shape": [100], "dtype": "float16"}})
            ),
            "'w' has values of",
        ),
        (lambda t, m: t.__setitem__("b", t.pop("b")[:2]), "'b' is"),
        (lambda t, m: t.pop("b"), "'b' is missing"),
        (lambda t, m: t.__setitem__("x", torch.ones(1)), "'x' is stored but not listed"),
        (lambda t, m: m.__setitem__("format", "other"), "not a lightning-grda sparse file"),
        (lambda t, m: m.__setitem__("format_version", "99"), "format version '99'"),
        (lambda t, m: m.__setitem__("tensors", "{"), "not JSON"),
    ],
)
def test_corrupt_files(tmp_path, edit, match):
    w = torch.zeros(100)
    w[:5] = 1.0
    save_sparse({"w": w, "b": torch.ones(3)}, tmp_path / "ok.safetensors")
    _rewrite(tmp_path / "ok.safetensors", tmp_path / "bad.safetensors", edit)
    with pytest.raises(ValueError, match=match):
        load_sparse(tmp_path / "bad.safetensors")


def test_truncated_and_foreign_files(tmp_path):
    w = torch.zeros(1000)
    w[:50] = 1.0
    save_sparse({"w": w}, tmp_path / "ok.safetensors")
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="cut.safetensors.*not a readable safetensors file"):
        load_sparse(tmp_path / "cut.safetensors")
    save_file({"w": w}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a lightning-grda sparse file"):
        load_sparse(tmp_path / "plain.safetensors")
    torch.save({"w": w}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_sparse(tmp_path / "t.pt")
    with pytest.raises(ValueError, match="does not exist"):
        load_sparse(tmp_path / "nope.safetensors")


def test_bad_source_and_unwritable_path(tmp_path):
    with pytest.raises(ValueError, match="Invalid source: list"):
        save_sparse([1, 2], tmp_path / "x.safetensors")
    with pytest.raises(OSError, match="missing_dir"):
        save_sparse({"w": torch.ones(3)}, tmp_path / "missing_dir" / "x.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_bake_masks_of_a_pruned_module(tmp_path):
    from torch.nn.utils import prune

    net = nn.Sequential(nn.Linear(8, 8))
    prune.l1_unstructured(net[0], "weight", amount=0.75)
    baked = bake_masks(net.state_dict())
    assert set(baked) == {"0.weight", "0.bias"}
    assert torch.equal(baked["0.weight"], net[0].weight)
    assert int((baked["0.weight"] == 0).sum()) == 48
