"""Selective scan on the GPU: Triton (chapter 03) vs mamba_ssm's CUDA kernel vs the PyTorch scan, forward and forward+backward.

Shapes are MambaAD's SS2D call: batch 8, 8 scan directions as 8 groups of B/C (u is (batch, 8·dim, L), B and C are
(batch, 8, N, L), i.e. batch·8 sequences of `dim` channels), N = 16, dim 128-512, L 256-4096, float32, with D,
delta_bias and softplus as in SS2D (z=None). Every timing is bracketed by torch.cuda.synchronize().

    python kernels/bench_scan_gpu.py                 # full grid, writes kernels/results/scan_gpu.md
    python kernels/bench_scan_gpu.py --quick         # one small size, to check the setup
    python kernels/bench_scan_gpu.py --chunk 64      # another Triton chunk size

Needs a CUDA GPU; without one it says so and exits with status 1, writing nothing.
"""
import argparse, datetime, platform, sys, time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / 'results' / 'scan_gpu.md'


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--directions', type=int, default=8)
    p.add_argument('--d-state', type=int, default=16)
    p.add_argument('--dims', type=int, nargs='+', default=[128, 256, 512])
    p.add_argument('--lengths', type=int, nargs='+', default=[256, 1024, 4096])
    p.add_argument('--chunk', type=int, default=None, help='Triton chunk size (default: the module default)')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--quick', action='store_true', help='one size (dim 128, L 256), 3 repeats')
    p.add_argument('--out', type=Path, default=RESULTS)
    a = p.parse_args()
    if a.quick: a.dims, a.lengths, a.repeats = [128], [256], 3
    return a


def make_args(batch, directions, dim, N, L, device='cuda'):
    "SS2D-like arguments: A = -(1..N), Δ small with a dt bias, B/C grouped by direction, D = 1."
    g = torch.Generator(device=device).manual_seed(0)
    channels = directions * dim
    r = lambda *s: torch.randn(*s, device=device, generator=g)
    A = -torch.arange(1, N + 1, device=device, dtype=torch.float32).repeat(channels, 1)
    return dict(u=r(batch, channels, L), delta=0.1 * r(batch, channels, L), A=A,
                B=r(batch, directions, N, L), C=r(batch, directions, N, L), D=torch.ones(channels, device=device),
                delta_bias=torch.full((channels,), -4.0, device=device), delta_softplus=True)


def backends(chunk):
    "name -> scan function with the selective_scan_fn signature, for every backend that is really there."
    from ssm_defects import scan
    from ssm_defects.triton_scan import selective_scan_triton
    found = {'triton': selective_scan_triton if chunk is None else
             (lambda *a, **k: selective_scan_triton(*a, **k, chunk=chunk))}
    found['triton via selective_scan'] = lambda *a, **k: scan.selective_scan(*a, **k, backend='triton')
    try:
        import selective_scan_cuda  # noqa: F401  (newer mamba_ssm imports without its compiled kernel)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        found['mamba_ssm CUDA'] = selective_scan_fn
    except Exception as e:
        print(f'mamba_ssm CUDA kernel not available ({type(e).__name__}: {e}); skipping it.')
    for name in ('chunked',):   # the PyTorch scan of chapter 02
        try:
            scan.resolve_backend(name, torch.empty(1, device='cuda'))
            found[f'PyTorch ({name})'] = lambda *a, _n=name, **k: scan.selective_scan(*a, **k, backend=_n)
        except Exception as e:
            print(f'PyTorch backend {name!r} not available ({e}); skipping it.')
    return found


def time_ms(fn, repeats):
    "Median milliseconds of fn(), with the device synchronized before and after every call."
    fn(); torch.cuda.synchronize()                      # warm-up (and Triton's compilation)
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize(); start = time.perf_counter()
        fn()
        torch.cuda.synchronize(); times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def measure(scan_fn, args, repeats):
    "(forward ms without autograd, forward+backward ms, output) of one backend on one size."
    leaves = {k: v.detach().clone().requires_grad_() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    with torch.no_grad():
        out = scan_fn(**leaves)
        fwd = time_ms(lambda: scan_fn(**leaves), repeats)
    def fwd_bwd():
        for v in leaves.values():
            if isinstance(v, torch.Tensor): v.grad = None
        scan_fn(**leaves).sum().backward()
    return fwd, time_ms(fwd_bwd, repeats), out.detach()


def main():
    a = parse_args()
    if not torch.cuda.is_available():
        sys.exit('bench_scan_gpu.py needs a CUDA GPU and none is visible (torch.cuda.is_available() is False): '
                 'nothing was measured and kernels/results/scan_gpu.md was not written. Run it on a CUDA machine.')
    import triton
    found = backends(a.chunk)
    rows = []
    for dim in a.dims:
        for L in a.lengths:
            args = make_args(a.batch, a.directions, dim, a.d_state, L)
            reference = None
            for name, fn in found.items():
                try:
                    fwd, fwd_bwd, out = measure(fn, args, a.repeats)
                    reference = out if reference is None else reference
                    err = (out.float() - reference.float()).abs().max().item()
                    rows.append((dim, L, name, f'{fwd:.2f}', f'{fwd_bwd:.2f}', f'{err:.1e}'))
                except torch.cuda.OutOfMemoryError:
                    rows.append((dim, L, name, 'OOM', 'OOM', '-'))
                torch.cuda.empty_cache()
                print(*rows[-1], sep='\t', flush=True)
    props = torch.cuda.get_device_properties(0)
    header = ['dim', 'L', 'backend', 'forward ms', 'forward+backward ms', 'max abs diff of out vs triton']
    lines = [f'# Selective scan on the GPU ({props.name})', '',
             f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC · torch {torch.__version__} · '
             f'triton {triton.__version__} · CUDA {torch.version.cuda} · {platform.node()}', '',
             f'batch {a.batch}, {a.directions} directions (groups of B/C; u is (batch, {a.directions}·dim, L)), '
             f'N {a.d_state}, float32, D + delta_bias + softplus, z=None; median of {a.repeats} runs, '
             f'torch.cuda.synchronize() around each; Triton chunk {a.chunk or "default"}. '
             '"triton via selective_scan" goes through the scan operator of chapter 02b '
             '(one extra forward in the backward).', '',
             '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text('\n'.join(lines) + '\n')
    print(f'wrote {a.out}')


if __name__ == '__main__':
    main()
