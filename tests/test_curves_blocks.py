"Property tests for `ssm_defects.curves` on random sizes, and bad-input tests for `ssm_defects.blocks`."
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from ssm_defects.curves import METHODS, curve, direction_tables, direction_ids, encode, decode
from ssm_defects.blocks import SS2D, HSSBlock, LSSModule, PatchEmbed, PatchMerging, PatchExpand, DropPath

sizes = st.integers(1, 48)
dir_sets = st.one_of(st.sampled_from([1, 2, 4, 8]),
                     st.lists(st.integers(0, 7), min_size=1, max_size=8, unique=True).map(tuple))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(METHODS), sizes, sizes)
def test_every_curve_is_a_permutation(method, h, w):
    assert sorted(curve(method, h, w).tolist()) == list(range(h * w))


@settings(max_examples=60, deadline=None)
@given(sizes, sizes)
def test_hilbert_steps_are_neighbours_but_at_most_one_diagonal(h, w):
    order = np.asarray(curve('hilbert', h, w))
    steps = np.abs(np.diff(np.stack(np.divmod(order, w), 1), axis=0))
    assert (steps.max(1, initial=1) == 1).all()                       # never further than a diagonal
    expected_diagonals = int(h % 2 == 0 and h > 2 and w % 2 == 1 and w > 1)
    assert int((steps.sum(1) == 2).sum()) == expected_diagonals
    ends_top_right = not ((w == 1 and h > 1) or (h == 2 and w % 2))
    assert order[0] == 0 and (order[-1] == w - 1) == ends_top_right


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(METHODS), st.integers(1, 20), st.integers(1, 20), dir_sets)
def test_decode_undoes_encode(method, h, w, dirs):
    k = len(direction_ids(dirs))
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    seqs = encode(x, method, dirs)
    assert seqs.shape == (2, k, 3, h * w)
    torch.testing.assert_close(decode(seqs, h, w, method, dirs), k * x)
    tables = direction_tables(method, h, w, dirs)
    assert all(sorted(row) == list(range(h * w)) for row in tables.tolist())


@pytest.mark.parametrize("make, x, message", [
    (lambda: SS2D(8), torch.randn(1, 8, 4, 4), "channels-last"),
    (lambda: SS2D(8), torch.randn(1, 4, 4), "channels-last"),
    (lambda: HSSBlock(8), torch.randn(1, 4, 0, 8), "at least 1×1"),
    (lambda: PatchMerging(8), torch.randn(1, 4, 3, 8), "even H and W"),
    (lambda: PatchExpand(8), torch.randn(1, 4, 4, 6), "channels-last"),
    (lambda: PatchEmbed(3, 8), torch.randn(1, 1, 8, 8), "multiples of 4"),
])
def test_blocks_reject_bad_inputs(make, x, message):
    with pytest.raises(ValueError, match=message): make()(x)


@pytest.mark.parametrize("make, message", [
    (lambda: SS2D(8, scan='spiral'), "unknown scan"),
    (lambda: SS2D(8, directions=6), "use 1, 2, 4 or 8"),
    (lambda: SS2D(8, directions=(0, 0)), "distinct ids"),
    (lambda: LSSModule(8, 0), "n_hss"),
    (lambda: PatchExpand(7), "even"),
    (lambda: DropPath(-0.1), r"\[0, 1\)"),
])
def test_blocks_reject_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message): make()
