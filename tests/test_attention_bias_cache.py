"""WindowAttention3D reuses its gathered position bias without gradients, and never serves a stale one."""

from __future__ import annotations

import copy

import torch

from vsrt.archs.layers.attention import WindowAttention3D


def naive_bias(attn: WindowAttention3D) -> torch.Tensor:
    """``(heads, Nq, N)``: bias[h, q, k] = table[index[q, k], h], element by element."""
    index, table = attn.relative_position_index, attn.relative_position_bias_table.detach()
    nq, n = index.shape
    out = torch.empty(table.shape[1], nq, n)
    for q in range(nq):
        for k in range(n):
            out[:, q, k] = table[index[q, k]]
    return out


def test_bias_is_gathered_once_without_gradients_and_follows_every_change():
    torch.manual_seed(0)
    attn = WindowAttention3D(dim=12, window_size=(2, 2, 2), num_heads=3, last_frame_queries=True)
    with torch.no_grad():
        first = attn.position_bias()
        assert attn.position_bias() is first  # reused
        assert torch.equal(first, naive_bias(attn))
        attn.relative_position_bias_table.add_(0.5)  # what an optimizer step or an EMA update does
        moved = attn.position_bias()
        assert moved is not first and torch.equal(moved, naive_bias(attn))
    other = WindowAttention3D(dim=12, window_size=(2, 2, 2), num_heads=3, last_frame_queries=True)
    attn.load_state_dict(other.state_dict())  # a checkpoint loaded into a used module
    with torch.no_grad():
        assert torch.equal(attn.position_bias(), naive_bias(other))
        twin = copy.deepcopy(attn)  # an EMA copy: its own storage, its own cache
        with torch.no_grad():
            twin.relative_position_bias_table.mul_(2)
        assert torch.equal(twin.position_bias(), naive_bias(twin))
        assert torch.equal(attn.position_bias(), naive_bias(other))
    with torch.inference_mode():
        assert torch.equal(attn.position_bias(), naive_bias(other))


def test_bias_keeps_its_gradient_path_in_training():
    attn = WindowAttention3D(dim=12, window_size=(2, 2, 2), num_heads=3)
    with torch.no_grad():
        attn.position_bias()  # a cached inference bias must not leak into training
    bias = attn.position_bias()
    assert bias.grad_fn is not None
    bias.sum().backward()
    table = attn.relative_position_bias_table
    counts = torch.bincount(attn.relative_position_index.flatten(), minlength=table.shape[0])
    assert torch.equal(table.grad, counts[:, None].float().expand(-1, 3))  # d(sum)/d(row) = uses of the row
