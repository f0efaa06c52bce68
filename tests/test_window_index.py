"""Attention layout: window_index (shifted partition / reverse as flat gathers, unmasked windows first)
and head dims padded for the fused GPU kernels (and the CPU kernel)."""

from __future__ import annotations

import pytest
import torch

from vsrt.archs.layers.attention import WindowAttention3D, scaled_dot_product
from vsrt.archs.layers.execution import force_sync_free, fused_head_dim
from vsrt.archs.layers.window import (
    pad_to_windows,
    shifted_window_mask,
    take_tokens,
    window_index,
    window_partition,
    window_reverse,
)


@pytest.mark.parametrize(("padded", "window", "shift", "frames", "hw"), [
    ((3, 16, 24), (3, 8, 8), (3, 4, 4), (0, 3), (13, 21)),  # PSRT: frame roll is the identity, cropped
    ((3, 16, 16), (3, 8, 8), (0, 0, 0), (0, 3), (16, 16)),  # no shift
    ((4, 8, 12), (2, 4, 4), (1, 2, 2), (0, 3), (8, 10)),  # a real frame shift
    ((4, 8, 12), (2, 4, 4), (2, 2, 0), (1, 4), (7, 12)),  # shift of a whole window, none on one axis
])
def test_gathers_equal_roll_partition_reverse(padded, window, shift, frames, hw):
    n, c = 2, 5
    x = torch.randn(n, *padded, c)
    num_tokens = window[0] * window[1] * window[2]
    index = window_index(padded, window, shift, frames, hw, num_tokens, x.device)
    rolled = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    want = window_partition(rolled, window).view(n, -1, num_tokens, c)[:, index.order].flatten(0, 1)
    windows = x.reshape(n, -1, c).index_select(1, index.gather).view(-1, num_tokens, c)
    assert torch.equal(windows, want)
    # the shift mask of the first num_unmasked windows (in this order) is all zero, of the others not
    mask = shifted_window_mask(padded, window, shift)[index.order]
    nonzero = mask.flatten(1).ne(0).any(1)
    assert not nonzero[:index.num_unmasked].any() and nonzero[index.num_unmasked:].all()
    # reverse: windows back to the grid, rolled back, cropped
    processed = windows * 2 + 1
    unordered = torch.empty_like(processed.view(n, -1, num_tokens, c))
    unordered[:, index.order] = processed.view(n, -1, num_tokens, c)
    grid = torch.roll(window_reverse(unordered.flatten(0, 1), window, n, padded), shifts=shift, dims=(1, 2, 3))
    back = processed.view(n, -1, c).index_select(1, index.scatter)
    assert torch.equal(back, grid[:, frames[0]:frames[1], :hw[0], :hw[1]].reshape(n, -1, c))


@pytest.mark.parametrize("last_frame_queries", [False, True])
def test_split_attention_equals_one_masked_batch(last_frame_queries):
    """Unmasked windows with the bias alone + the rest with bias + mask == every window with bias + mask."""
    torch.manual_seed(0)
    window, padded, shift = (3, 4, 4), (3, 12, 8), (3, 2, 2)
    attn = WindowAttention3D(12, window, 2, last_frame_queries=last_frame_queries)
    index = window_index(padded, window, shift, (0, 3), (12, 8), attn.num_queries, torch.device("cpu"))
    mask = shifted_window_mask(padded, window, shift)[index.order][:, -attn.num_queries:]
    windows = torch.randn(2 * mask.shape[0], 48, 12)  # 2 samples
    assert 0 < index.num_unmasked < mask.shape[0]
    torch.testing.assert_close(attn(windows, mask, index.num_unmasked), attn(windows, mask), atol=1e-6, rtol=0)


def test_head_dim_padded_for_fused_kernels_gives_the_same_attention():
    """On the GPU path q, k, v are zero-padded to a head dim multiple of 8 (20 -> 24); scale stays 20**-0.5."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 16, 20, generator=g) for _ in range(3))
    mask = torch.randn(1, 2, 16, 16, generator=g)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=20 ** -0.5)
    assert fused_head_dim(q, 20) == 20  # CPU: unchanged (4 columns short of a multiple of 8)
    with force_sync_free():
        assert (fused_head_dim(q, 20), fused_head_dim(q, 30), fused_head_dim(q, 32)) == (24, 32, 32)
        got = scaled_dot_product(q, k, v, mask, 20 ** -0.5)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("head_dim", [30, 14])
def test_cpu_pads_head_dims_just_short_of_a_multiple_of_8_with_the_same_attention(head_dim):
    """CPU float32: 30 -> 32 and 14 -> 16 (the fused CPU kernel is faster there), 20 and 32 stay; half precision
    stays; the padded attention equals the plain one (zero columns add nothing)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 16, head_dim, generator=g) for _ in range(3))
    mask = torch.randn(1, 2, 16, 16, generator=g)
    assert fused_head_dim(q, head_dim) == head_dim + 2
    assert (fused_head_dim(q, 20), fused_head_dim(q, 32), fused_head_dim(q.bfloat16(), head_dim)) == (20, 32, head_dim)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = scaled_dot_product(q, k, v, mask, head_dim ** -0.5)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_shift_mask_in_window_order_equals_the_reordered_mask():
    padded, window, shift = (1, 24, 24), (1, 8, 8), (0, 4, 4)  # 3x3 windows: the last row and column masked
    order = window_index(padded, window, shift, (0, 1), (24, 24), 64, torch.device("cpu")).order
    want = shifted_window_mask(padded, window, shift)[order]
    assert not torch.equal(order, torch.arange(len(order)))
    assert torch.equal(shifted_window_mask(padded, window, shift, order=order), want)
    last_frame = shifted_window_mask(padded, window, shift, order=order, num_queries=16)  # MIA-VSR's query rows
    assert last_frame.is_contiguous() and torch.equal(last_frame, want[:, -16:])


def test_unmasked_first_is_the_stable_argsort_of_the_mask():
    from vsrt.archs.layers.window import unmasked_first

    generator = torch.Generator().manual_seed(0)
    for size in (1, 2, 7, 30):
        masked = torch.rand(size, generator=generator) < 0.4
        expected = torch.argsort(masked.to(torch.uint8), stable=True)
        assert torch.equal(unmasked_first(masked, int((~masked).sum())), expected)


@pytest.mark.parametrize("size", [(8, 8), (6, 9)])  # (6, 9): padded rows and columns
def test_step_windows_equal_stacking_normalising_and_gathering_every_block(size):
    """StepWindows (inference) gives every block the windows that the block's own stack + norm1 + pad + gather
    gives, while the current frame changes from block to block and shifted and unshifted blocks alternate."""
    from vsrt.archs.layers.window import StepWindows
    from vsrt.archs.mia_vsr_arch import IntraInterFrameBlock

    torch.manual_seed(0)
    h, w = size
    blocks = [IntraInterFrameBlock(12, 2, (3, 4, 4), shifted=i % 2 == 1) for i in range(4)]
    for block in blocks:
        torch.nn.init.normal_(block.norm1.weight, 1.0, 0.3)
        torch.nn.init.normal_(block.norm1.bias, 0.0, 0.3)  # padding must come out as 0, not the bias
    neighbours = torch.randn(2, 2, h, w, 12)
    step = StepWindows(neighbours)
    with torch.no_grad():
        for block in blocks:
            x = torch.randn(2, h, w, 12)
            index = block._window_index(x, 3)
            stacked = pad_to_windows(block.norm1(torch.cat([neighbours, x.unsqueeze(1)], dim=1)), (3, 4, 4))
            expected = stacked.reshape(2, -1, 12).index_select(1, index.gather).view(-1, 48, 12)
            got = step.normalised(x, index, block.window_size, block.shift_size, block.norm1)
            torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("n", [1, 3])
def test_take_tokens_is_index_select_along_the_tokens(n: int) -> None:
    """The dim-0 gather behind every window partition / reverse gives index_select(1)'s values and gradients,
    for one sample and for several (each sample's rows offset by its own token count)."""
    torch.manual_seed(0)
    tokens = torch.randn(n, 10, 4, requires_grad=True)
    index = torch.tensor([9, 0, 3, 3, 7])
    got = take_tokens(tokens, index)
    want = tokens.index_select(1, index)
    assert torch.equal(got, want)
    weights = torch.randn_like(want)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), tokens)
    (grad_want,) = torch.autograd.grad((want * weights).sum(), tokens)
    assert torch.equal(grad_got, grad_want)
