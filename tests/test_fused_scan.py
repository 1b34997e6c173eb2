"Property tests of the fused direction scan (chapter 05b): SS2D's scan equals the unfused path on random maps (float64)."
import torch
from hypothesis import given, settings, strategies as st
from ssm_defects.blocks import SS2D
from ssm_defects.curves import METHODS
from ssm_defects.fused_scan import use_fused

dir_sets = st.one_of(st.sampled_from([1, 2, 4, 8]),
                     st.lists(st.integers(0, 7), min_size=1, max_size=8, unique=True).map(tuple))


@st.composite
def ss2d_problems(draw):
    kw = dict(d_model=draw(st.integers(2, 20)), d_state=draw(st.integers(1, 9)), scan=draw(st.sampled_from(METHODS)),
              directions=draw(dir_sets), gate=draw(st.booleans()))
    return kw, (draw(st.integers(1, 2)), draw(st.integers(1, 14)), draw(st.integers(1, 14))), draw(st.integers(0, 2**16))


def map_and_grads(m, x):
    m.zero_grad(); x = x.clone().requires_grad_()
    y = m.scan_map(x)
    (y.sin().sum()).backward()
    return [y.detach(), x.grad, *(p.grad for p in (m.x_proj_weight, m.dt_proj_weight, m.dt_proj_bias, m.A_log, m.D))]


@settings(max_examples=30, deadline=None)
@given(ss2d_problems())
def test_fused_equals_unfused(problem):
    kw, (b, h, w), seed = problem
    torch.manual_seed(seed)
    fused = SS2D(**kw).double()
    with torch.no_grad():
        for p in (fused.dt_proj_bias, fused.A_log, fused.D): p.add_(torch.randn_like(p))
    unfused = SS2D(**kw, fused=False).double()
    unfused.load_state_dict(fused.state_dict())
    x = torch.randn(b, fused.d_inner, h, w, dtype=torch.float64)
    assert use_fused(fused.backend, x, fused.d_state)
    for got, want in zip(map_and_grads(fused, x), map_and_grads(unfused, x)):
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)          # float64: a bug shows as O(1)


def test_fused_only_where_the_kernel_runs():
    x = torch.randn(1, 4, 3, 3)
    assert use_fused(None, x, 16) and use_fused('cpu', x, 16) and use_fused('auto', x.double(), 16)
    assert not use_fused('chunked', x, 16) and not use_fused('ref', x, 16)        # other backends: unfused
    assert not use_fused('auto', x.half(), 16) and not use_fused('auto', x.to('meta'), 16)
    assert not use_fused('auto', x, 300)                                           # beyond the kernel's NMAX


def test_channels_last_map_and_batch_of_one():
    torch.manual_seed(0)
    fused = SS2D(8, scan='zigzag', directions=(1, 6))
    unfused = SS2D(8, scan='zigzag', directions=(1, 6), fused=False)
    unfused.load_state_dict(fused.state_dict())
    x = torch.randn(1, 16, 7, 5).to(memory_format=torch.channels_last)
    for got, want in zip(map_and_grads(fused, x), map_and_grads(unfused, x)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
