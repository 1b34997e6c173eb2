"Pyramid-Mamba pieces (nbs/12_pyramid.ipynb): bad inputs with errors that say the fix, the reference's level-2 cascade, the two training recipes."
import pytest, torch
from fastai.callback.training import GradientClip
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.optimizer import l2_reg, weight_decay
from ssm_defects.blocks import SS2D
from ssm_defects.features import OFFLINE_DEFAULT
from ssm_defects.training import StepDecay
from ssm_defects.pyramid import split_grid, merge_grid, max_levels, PyramidSS2D, PyramidMamba, pyramid_learner

TINY = dict(backbone=OFFLINE_DEFAULT['backbone'], depths=(2, 2, 2, 2), d_state=2)   # random encoder: structure only

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
    with pytest.raises(ValueError, match="PyramidSS2D or a subclass"): PyramidMamba(ss2d_cls=SS2D, **TINY)
    with pytest.raises(ValueError, match="32·2\\^levels = 64"): PyramidMamba(levels=1, **TINY)(torch.zeros(1, 3, 32, 32))

def _cut(x):
    "The four quadrants of x (..., H, W) by slicing, in reading order."
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    return [x[..., i*h:(i+1)*h, j*w:(j+1)*w] for i in (0, 1) for j in (0, 1)]

def _glue(q): return torch.cat([torch.cat(q[:2], -1), torch.cat(q[2:], -1)], -2)

def test_levels_2_is_the_reference_cascade():
    "Reference `SS2D.forward_core` at level 2: (main + quadrants + each quadrant's output cut and scanned again) / 3."
    torch.manual_seed(0)
    pss = PyramidSS2D(8, levels=2, d_state=4)
    plain = SS2D(8, d_state=4, scan=pss.scan, directions=pss.directions); plain.load_state_dict(pss.state_dict())
    x = torch.randn(2, pss.d_inner, 8, 12)
    quads = [plain.scan_map(q) for q in _cut(x)]
    sub = _glue([_glue([plain.scan_map(s) for s in _cut(p)]) for p in quads])
    torch.testing.assert_close(pss.scan_map(x), (plain.scan_map(x) + _glue(quads) + sub) / 3)
    flat = merge_grid(plain.scan_map(split_grid(x, 4)), 4)                     # a flat 4×4 grid of the input is not it
    assert not torch.allclose(sub, flat, rtol=1e-3, atol=1e-3)

@pytest.fixture(scope='module')
def model(): return PyramidMamba(**dict(OFFLINE_DEFAULT, depths=(2, 2, 2, 2), d_state=2))   # the Learner refuses a random encoder

@pytest.fixture(scope='module')
def dls():
    ds = [(torch.rand(3, 64, 64),)] * 8
    return DataLoaders(DataLoader(ds, bs=4), DataLoader(ds, bs=4))

def _fitted_opt(learn):
    "Build the optimizer and set its hyper-parameters as `fit` does, without a step."
    with learn.no_bar(), learn.no_logging(): learn.fit(0)
    return learn.opt

def test_recipes_build_their_optimizers(dls, model):
    paper = pyramid_learner(dls, model, recipe='paper', metrics=False, checkpoint=False)
    opt = _fitted_opt(paper)
    assert paper.recipe == 'paper'
    assert [(h['lr'], h['wd'], h['mom'], h['sqr_mom'], h['eps']) for h in opt.hypers] == [(5e-4, 1e-4, 0.9, 0.999, 1e-8), (5e-4, 0., 0.9, 0.999, 1e-8)]
    assert l2_reg in opt.cbs and weight_decay not in opt.cbs                        # classic Adam: L2 in the gradient
    assert not any(isinstance(cb, (GradientClip, StepDecay)) for cb in paper.cbs)  # constant lr, no clipping
    own = GradientClip(1.)
    assert own in pyramid_learner(dls, model, recipe='paper', metrics=False, checkpoint=False, cbs=[own]).cbs   # a caller's own callback stays

    released = pyramid_learner(dls, model, recipe='released', metrics=False, checkpoint=False)
    opt = _fitted_opt(released)
    assert released.recipe == 'released'
    assert [(h['lr'], h['wd'], h['mom'], h['sqr_mom'], h['eps']) for h in opt.hypers] == [(0.005 * 4 / 16, 1e-4, 0.9, 0.999, 1e-8), (0.005 * 4 / 16, 0., 0.9, 0.999, 1e-8)]
    assert weight_decay in opt.cbs and l2_reg not in opt.cbs                        # AdamW: decoupled decay
    assert [cb.max_norm for cb in released.cbs if isinstance(cb, GradientClip)] == [5.]
    assert [(cb.pct, cb.factor) for cb in released.cbs if isinstance(cb, StepDecay)] == [(0.8, 0.1)]

def test_learner_keeps_the_cli_arguments(dls, model):
    "The CLI calls `pyramid_learner(dls, model, lr=..., checkpoint=..., metrics=..., cbs=...)`."
    for recipe in ('paper', 'released'):
        learn = pyramid_learner(dls, model, recipe=recipe, lr=1e-3, checkpoint=False, metrics=False, cbs=[])
        assert learn.lr == 1e-3 and learn.recipe == recipe
    assert pyramid_learner(dls, model, lr=1e-3, checkpoint=False, metrics=False).recipe == 'paper'   # the default

def test_learner_rejects_unknown_recipes(dls, model):
    with pytest.raises(ValueError, match="recipe must be one of"): pyramid_learner(dls, model, recipe='adamw')
    with pytest.raises(ValueError, match="recipe='released'"): pyramid_learner(dls, model, recipe='paper', clip=1.)
