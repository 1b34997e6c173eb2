"""CPU benchmark of the selective scan: our backends, mambapy's parallel scan and the exp floor, side by side.

batch 2, dim 256, N 16, L in {256, 1024, 4096}, float32, 2 threads; forward and forward+backward. Every measurement
runs in a fresh subprocess so its peak memory (maximum resident set size) is its own. Writes
kernels/results/scan_cpu.md (table, ratios, load average) and kernels/results/scan_cpu.csv (for the plot of nbs/appendix/scan_benchmarks.ipynb).

    python kernels/bench_scan.py                 # the full run (a few minutes)
    python kernels/bench_scan.py --lengths 256   # a quick one
"""
import argparse, csv, json, os, platform, resource, subprocess, sys, time
from pathlib import Path

BATCH, DIM, N = 2, 256, 16
REF_MAX_L = 1024          # the reference loop is skipped above this length (its backward takes minutes there)
METHODS = ('floor', 'ref_indexed', 'ref', 'cpu', 'chunked', 'mambapy')
SLOW = ('ref_indexed', 'ref', 'chunked')   # timed once, without a full-size warm-up
RESULTS = Path(__file__).parent / 'results'


def make_inputs(L, seed=0):
    "Δ (already positive), A, B, C, D and u, drawn as in the DESIGN §3 grid; B, C shared by all channels."
    import torch
    g = torch.Generator().manual_seed(seed)
    return dict(u=torch.randn(BATCH, DIM, L, generator=g), delta=0.5 * torch.rand(BATCH, DIM, L, generator=g),
                A=-0.5 * torch.rand(DIM, N, generator=g), B=torch.randn(BATCH, N, L, generator=g),
                C=torch.randn(BATCH, N, L, generator=g), D=torch.randn(DIM, generator=g))


def mambapy_scan(u, delta, A, B, C, D):
    "mambapy's selective scan (mamba.py's MambaBlock.selective_scan) on our layout: its pscan over (B, L, D, N)."
    import torch
    from mambapy.pscan import pscan
    u_, delta_ = u.transpose(1, 2), delta.transpose(1, 2)                          # (B, L, D)
    B_, C_ = B.transpose(1, 2), C.transpose(1, 2)                                  # (B, L, N)
    deltaA = torch.exp(delta_.unsqueeze(-1) * A)                                   # (B, L, D, N)
    BX = delta_.unsqueeze(-1) * B_.unsqueeze(2) * u_.unsqueeze(-1)                 # (B, L, D, N)
    hs = pscan(deltaA, BX)                                                         # (B, L, D, N)
    y = (hs @ C_.unsqueeze(-1)).squeeze(3) + D * u_                                # (B, L, D)
    return y.transpose(1, 2)


def ref_indexed(u, delta, A, B, C, D):
    """The reference loop as mamba_ssm writes it: each step read by indexing `x[:, :, t]`, whose backward allocates
    a full-size zero gradient per step (an O(L^2) backward). `selective_scan_ref` uses `unbind` instead."""
    import torch
    A_bar = torch.exp(delta[..., None] * A[:, None])                              # (B, D, L, N)
    Bu_bar = (delta * u)[..., None] * B.transpose(1, 2)[:, None]                  # (B, D, L, N)
    Cs = C.transpose(1, 2)[:, None]                                               # (B, 1, L, N)
    h, ys = u.new_zeros(u.shape[0], u.shape[1], A.shape[1]), []
    for t in range(u.shape[2]):
        h = A_bar[:, :, t] * h + Bu_bar[:, :, t]
        ys.append((h * Cs[:, :, t]).sum(-1))
    return torch.stack(ys, -1) + D[:, None] * u


def scan_fn(method):
    from functools import partial
    from ssm_defects.scan import selective_scan, selective_scan_ref
    return dict(ref=selective_scan_ref, ref_indexed=ref_indexed, cpu=partial(selective_scan, backend='cpu'),
                chunked=partial(selective_scan, backend='chunked'), mambapy=mambapy_scan)[method]


def rss_mb():
    "Current resident set size (MB)."
    return int(Path('/proc/self/statm').read_text().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def peak_rss_mb():
    """Peak resident set size of this process (MB): VmHWM belongs to the address space, so unlike getrusage's
    ru_maxrss it does not inherit the parent's peak at fork."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(method, mode, L, repeats, threads):
    """One measurement: best of `repeats` after a warm-up; prints JSON with the time and the peak memory.
    A first run at L = 64 triggers lazy imports and kernel loading before the baseline memory is taken."""
    import torch
    torch.set_num_threads(threads)
    if L > 64: worker_run(method, mode, 64)()
    run = worker_run(method, mode, L)
    base = rss_mb()
    if method in SLOW: repeats = 1
    else: run()                                                                    # warm-up at full size
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
    print(json.dumps(dict(method=method, mode=mode, L=L, seconds=min(times), peak_mb=peak_rss_mb(), base_mb=base)))


def worker_run(method, mode, L):
    "A function running one forward (or forward+backward) of `method` at length L on fixed inputs."
    import torch
    x = make_inputs(L)
    if method == 'floor':
        arg = (x['delta'][..., None] * x['A'][:, None]).contiguous()               # (B, D, L, N): Δ·A, the exp argument
        run = lambda: torch.exp(arg)
    else:
        fn = scan_fn(method)
        if mode == 'fwd':
            def run():
                with torch.no_grad(): return fn(**x)
        else:
            leaves = {k: v.clone().requires_grad_() for k, v in x.items()}
            gy = torch.randn(BATCH, DIM, L, generator=torch.Generator().manual_seed(1))
            def run():
                for v in leaves.values(): v.grad = None
                fn(**leaves).backward(gy)
    return run


def measure(method, mode, L, repeats, threads):
    cmd = [sys.executable, __file__, '--worker', method, mode, str(L), '--repeats', str(repeats), '--threads', str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f'{method} {mode} L={L} failed:\n{r.stderr[-2000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def check_same_computation():
    "mambapy's scan, our fast scans and the reference give the same output on these inputs."
    import torch
    x = make_inputs(256)
    ref = scan_fn('ref')(**x)
    for m in ('ref_indexed', 'cpu', 'chunked', 'mambapy'): torch.testing.assert_close(scan_fn(m)(**x), ref, rtol=1e-4, atol=1e-4)


def cpu_model():
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except Exception: return platform.processor()


def fmt(row, key):
    return '—' if row is None else f'{row[key]:.3f}' if key == 'seconds' else f'{row[key]:.0f}'


def write_results(rows, lengths, threads, repeats, load_before, load_after):
    torch_version = subprocess.run([sys.executable, '-c', 'import torch; print(torch.__version__)'], capture_output=True, text=True).stdout.strip()
    get = lambda m, mode, L: next((r for r in rows if (r['method'], r['mode'], r['L']) == (m, mode, L)), None)
    lines = ['# Selective scan on CPU', '',
             f'batch {BATCH}, dim {DIM}, N {N}, float32, {threads} threads, best of {repeats} after a warm-up; '
             f'each cell a fresh subprocess. {cpu_model()}, torch {torch_version}, {time.strftime("%Y-%m-%d %H:%M")}.',
             f'Load average (1, 5, 15 min) at the start: {", ".join(f"{v:.2f}" for v in load_before)}; at the end: '
             f'{", ".join(f"{v:.2f}" for v in load_after)} (the machine has 2 cores shared with other jobs: a load above 2 slows every number).',
             '', 'Methods: `floor` = one `torch.exp` over the (B, D, L, N) tensor Δ·A (the elementwise work no scan avoids); '
             '`ref_indexed` = the same loop written like mamba_ssm\'s reference (per-step indexing: an O(L²) backward); '
             '`ref` = `selective_scan_ref`, the loop with `unbind` (both skipped above L = 1024); `cpu` = the compiled C kernel '
             '(`backend="cpu"`, what `"auto"` picks on CPU); `chunked` = the chunked plain-PyTorch scan; '
             '`mambapy` = `mambapy.pscan.pscan` driven with the same Δ, A, B, C, D. Peak RSS is the whole process '
             '(about 0.5 GB of it is `import torch`); "extra" is the peak minus the RSS just before the measurement '
             '(inputs built, one run at L = 64 done for lazy imports and kernel loading), i.e. what the method itself '
             'allocated at its worst. `ref_indexed`, `ref` and `chunked` are timed once without a full-size warm-up, '
             'the others are the best of the repeats after one.', '',
             '| method | L | forward (s) | fwd+bwd (s) | peak RSS fwd (MB) | peak RSS fwd+bwd (MB) | extra fwd (MB) | extra fwd+bwd (MB) |',
             '|---|---|---|---|---|---|---|---|']
    for L in lengths:
        for m in METHODS:
            f, fb = get(m, 'fwd', L), get(m, 'fwdbwd', L)
            if f is None and fb is None:
                lines.append(f'| {m} | {L} | skipped | skipped | | | | |'); continue
            extra = lambda r: '—' if r is None else f"{r['peak_mb'] - r['base_mb']:.0f}"
            lines.append(f'| {m} | {L} | {fmt(f, "seconds")} | {fmt(fb, "seconds")} | {fmt(f, "peak_mb")} | '
                         f'{fmt(fb, "peak_mb")} | {extra(f)} | {extra(fb)} |')
    lines += ['', '## Ratios', '', '| L | cpu fwd / floor | mambapy / cpu, fwd | mambapy / cpu, fwd+bwd | ref_indexed / cpu, fwd+bwd '
              '| ref / cpu, fwd+bwd | chunked / cpu, fwd+bwd | cpu / mambapy peak RSS, fwd+bwd |', '|---|---|---|---|---|---|---|---|']
    ratio = lambda a, b, k='seconds': f'{a[k] / b[k]:.1f}' if a and b else '—'
    for L in lengths:
        c, cb = get('cpu', 'fwd', L), get('cpu', 'fwdbwd', L)
        mem = (f"{get('cpu', 'fwdbwd', L)['peak_mb'] / get('mambapy', 'fwdbwd', L)['peak_mb']:.2f}"
               if get('cpu', 'fwdbwd', L) and get('mambapy', 'fwdbwd', L) else '—')
        lines.append(f"| {L} | {ratio(c, get('floor', 'fwd', L))} | {ratio(get('mambapy', 'fwd', L), c)} | "
                     f"{ratio(get('mambapy', 'fwdbwd', L), cb)} | {ratio(get('ref_indexed', 'fwdbwd', L), cb)} | {ratio(get('ref', 'fwdbwd', L), cb)} | "
                     f"{ratio(get('chunked', 'fwdbwd', L), cb)} | {mem} |")
    targets = []
    for m, what in (('ref_indexed', 'the mamba_ssm-style reference loop'), ('ref', 'our `selective_scan_ref` (unbind)')):
        if 1024 in lengths and get(m, 'fwdbwd', 1024):
            r = get(m, 'fwdbwd', 1024)['seconds'] / get('cpu', 'fwdbwd', 1024)['seconds']
            targets.append(f'- L = 1024: cpu fwd+bwd is {r:.0f}× faster than {what} (target ≥ 30×): {"met" if r >= 30 else "NOT met"}.')
    if 4096 in lengths:
        r1 = get('mambapy', 'fwdbwd', 4096)['seconds'] / get('cpu', 'fwdbwd', 4096)['seconds']
        r2 = get('cpu', 'fwd', 4096)['seconds'] / get('floor', 'fwd', 4096)['seconds']
        m1, m2 = get('cpu', 'fwdbwd', 4096)['peak_mb'], get('mambapy', 'fwdbwd', 4096)['peak_mb']
        targets += [f'- L = 4096: cpu fwd+bwd is {r1:.1f}× faster than mambapy (target ≥ 1.5×): {"met" if r1 >= 1.5 else "NOT met"}.',
                    f'- L = 4096: cpu forward is {r2:.2f}× the floor (target ≤ 5×): {"met" if r2 <= 5 else "NOT met"}.',
                    f'- L = 4096: cpu fwd+bwd peak RSS {m1:.0f} MB vs mambapy {m2:.0f} MB (target: below): {"met" if m1 < m2 else "NOT met"}.']
    if targets: lines += ['', '## Targets (issue 3)', '', *targets]
    lines += ['', 'Reproduce: `python kernels/bench_scan.py` (from the repository root, with the package installed).', '']
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / 'scan_cpu.md').write_text('\n'.join(lines))
    with open(RESULTS / 'scan_cpu.csv', 'w', newline='') as fh:
        w = csv.DictWriter(fh, fieldnames=['method', 'mode', 'L', 'seconds', 'peak_mb', 'base_mb'])
        w.writeheader(); w.writerows(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--lengths', type=int, nargs='+', default=[256, 1024, 4096])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--worker', nargs=3, metavar=('METHOD', 'MODE', 'L'), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker == ['check', '-', '0']: return check_same_computation()
    if a.worker: return worker(a.worker[0], a.worker[1], int(a.worker[2]), a.repeats, a.threads)
    # this process never imports torch: it stays small, so the workers it starts measure only themselves
    subprocess.run([sys.executable, __file__, '--worker', 'check', '-', '0'], check=True)
    load_before, rows = os.getloadavg(), []
    for L in a.lengths:
        for m in METHODS:
            if m.startswith('ref') and L > REF_MAX_L: continue
            for mode in (('fwd',) if m == 'floor' else ('fwd', 'fwdbwd')):
                rows.append(measure(m, mode, L, a.repeats, a.threads))
                print(rows[-1], flush=True)
    write_results(rows, a.lengths, a.threads, a.repeats, load_before, os.getloadavg())
    print((RESULTS / 'scan_cpu.md').read_text())


if __name__ == '__main__':
    main()
