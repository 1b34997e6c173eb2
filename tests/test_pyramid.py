"Bad inputs of the Pyramid-Mamba pieces (nbs/12_pyramid.ipynb): each error says what is wrong and how to fix it."
import pytest, torch
from ssm_defects.blocks import SS2D
from ssm_defects.pyramid import split_grid, merge_grid, max_levels, PyramidSS2D, PyramidMamba

def test_split_grid_needs_divisible_sides():
    with pytest.raises(ValueError, match="divisible by 2"): split_grid(torch.zeros(1, 2, 3, 4), 2)
    with pytest.raises(ValueError, match="multiple of n²"): merge_grid(torch.zeros(3, 2, 2, 2), 2)

@pytest.mark.parametrize("h,w,expected", [(1, 1, 0), (5, 8, 0), (2, 6, 1), (8, 8, 3), (64, 32, 5)])
def test_max_levels(h, w, expected): assert max_levels(h, w) == expected

@pytest.mark.parametrize("levels", [-1, 1.5, '1'])
def test_pss_rejects_bad_levels(levels):
    with pytest.raises(ValueError, match="levels must be an int"): PyramidSS2D(8, levels=levels)

def test_pss_rejects_maps_it_cannot_split():
    pss = PyramidSS2D(8, levels=1, d_state=2)
    with pytest.raises(ValueError, match="cap=True"): pss(torch.zeros(1, 3, 4, 8))
    assert PyramidSS2D(8, levels=1, cap=True, d_state=2)(torch.zeros(1, 3, 4, 8)).shape == (1, 3, 4, 8)

def test_pyramid_mamba_input_rule_and_scan_class():
    tiny = dict(backbone='efficientnet_lite0', depths=(2, 2, 2, 2), d_state=2)
    with pytest.raises(ValueError, match="PyramidSS2D or a subclass"): PyramidMamba(ss2d_cls=SS2D, **tiny)
    with pytest.raises(ValueError, match="32·2\\^levels = 64"): PyramidMamba(levels=1, **tiny)(torch.zeros(1, 3, 32, 32))
