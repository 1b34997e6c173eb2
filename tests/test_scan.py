"Property tests of the selective scan: every backend equals the reference for random shapes and layouts (float64)."
import functools
import torch
from hypothesis import given, settings, strategies as st
from ssm_defects.scan import selective_scan, selective_scan_ref, count_scan_flops


@st.composite
def scan_problems(draw):
    batch, dim, N, L = draw(st.integers(1, 2)), draw(st.sampled_from([1, 2, 4, 6])), draw(st.integers(1, 9)), draw(st.integers(1, 150))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)

    def bc():
        kind = draw(st.sampled_from(['invariant', 'shared', 'grouped']))
        if kind == 'invariant': return r(dim, N)
        if kind == 'shared': return r(batch, N, L)
        return r(batch, draw(st.sampled_from([d for d in (1, 2, 3) if dim % d == 0])), N, L)

    maybe = lambda t: t if draw(st.booleans()) else None
    return dict(u=r(batch, dim, L), delta=r(batch, dim, L), A=-torch.rand(dim, N, generator=g, dtype=torch.float64) * 3,
                B=bc(), C=bc(), D=maybe(r(dim)), z=maybe(r(batch, dim, L)), delta_bias=maybe(r(dim))), draw(st.booleans())


def outputs_and_grads(fn, args, softplus):
    x = {k: v.clone().requires_grad_() for k, v in args.items() if v is not None}
    if not softplus:                                                                   # Δ must be positive without softplus
        for k in ('delta', 'delta_bias'):
            if k in x: x[k] = x[k].detach().abs().requires_grad_()
    out, last = fn(**{**args, **x}, delta_softplus=softplus, return_last_state=True)
    (out.sin().sum() + last.cos().sum()).backward()
    return [out.detach(), last.detach(), *(v.grad for v in x.values())]


@settings(max_examples=30, deadline=None)
@given(scan_problems())
def test_backends_equal_reference(problem):
    args, softplus = problem
    ref = outputs_and_grads(selective_scan_ref, args, softplus)
    for backend in ('cpu', 'chunked', 'ref'):
        got = outputs_and_grads(functools.partial(selective_scan, backend=backend), args, softplus)
        for a, b in zip(got, ref): torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)   # float64: a bug shows as O(1)


def test_flop_count_toggle():
    from torch.utils.flop_counter import FlopCounterMode
    u = torch.randn(1, 2, 5)
    args = (u, torch.rand(1, 2, 5), -torch.rand(2, 3), torch.randn(1, 3, 5), torch.randn(1, 3, 5))
    with FlopCounterMode(display=False) as fc: selective_scan(*args)
    assert fc.get_total_flops() == 18 * 1 * 5 * 2 * 3
    with count_scan_flops(False), FlopCounterMode(display=False) as fc: selective_scan(*args)
    assert fc.get_total_flops() == 0
