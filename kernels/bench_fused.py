"""Fused vs unfused SS2D direction scan on CPU (chapter 05b): interleaved best-of-n timings, reported as ratios.

Two layers are compared with the same weights, `fused=True` (the default on CPU) against `fused=False`:

- `SS2D.scan_map` at the four decoder-stage shapes of `MambaAD()` (widths 512, 256, 128, 64 on maps of size/32 to
  size/4; Hilbert, 8 directions, d_state 16), forward (`no_grad`) and forward + backward;
- the whole `MambaAD()` (random ResNet34 encoder, which does not change the cost), forward (`no_grad`) and forward +
  backward of the reconstruction loss (a training step without the optimizer).

Each repeat runs every variant once, in turn (interleaved), and the best of the repeats is kept, so a busy machine
slows both sides alike; ratio = unfused / fused (above 1: fused is faster). Absolute seconds are listed too, but only
mean something on a quiet machine.

    python kernels/bench_fused.py                                  # batch 8, 256², 2 threads → kernels/results/bench_fused.md
    python kernels/bench_fused.py --batch 1 --size 64 --threads 1  # a quick check
"""
import argparse, datetime, platform, sys, time
from pathlib import Path

import torch

from ssm_defects.blocks import SS2D
from ssm_defects.features import reconstruction_loss
from ssm_defects.mambaad import MambaAD

RESULTS = Path(__file__).resolve().parent / 'results' / 'bench_fused.md'


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=256, help='image side; the decoder maps are size/32 … size/4')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=3, help='interleaved repeats; the best of each is kept')
    p.add_argument('--skip-model', action='store_true', help='time the SS2D blocks only')
    p.add_argument('--out', type=Path, default=RESULTS)
    return p.parse_args()


def best_of(fns, repeats):
    "Best wall time of each callable in `fns` (a dict), run interleaved `repeats` times after one untimed warm-up."
    for f in fns.values(): f()
    best = dict.fromkeys(fns, float('inf'))
    for _ in range(repeats):
        for name, f in fns.items():
            t0 = time.perf_counter(); f(); best[name] = min(best[name], time.perf_counter() - t0)
    return best


def pair(make):
    "The fused and the unfused version of a module, with the same weights."
    torch.manual_seed(0)
    fused, unfused = make(True), make(False)
    unfused.load_state_dict(fused.state_dict())
    return fused, unfused


def block_rows(a):
    rows = []
    for d_model, div in [(512, 32), (256, 16), (128, 8), (64, 4)]:
        fused, unfused = pair(lambda f: SS2D(d_model, fused=f))
        s = a.size // div
        x = torch.randn(a.batch, fused.d_inner, s, s).to(memory_format=torch.channels_last)   # as SS2D's conv leaves it
        xg = x.clone().requires_grad_()
        def fwd(m):
            with torch.no_grad(): m.scan_map(x)
        def fwd_bwd(m): m.scan_map(xg).sum().backward()
        for mode, run in (('forward', fwd), ('forward + backward', fwd_bwd)):
            t = best_of({'unfused': lambda: run(unfused), 'fused': lambda: run(fused)}, a.repeats)
            rows.append((f'SS2D({d_model}).scan_map, {s}×{s}', mode, t))
    return rows


def model_rows(a):
    fused, unfused = pair(lambda f: MambaAD(ss2d_kwargs=dict(fused=f)))
    x = torch.rand(a.batch, 3, a.size, a.size)
    def fwd(m):
        with torch.no_grad(): m.eval()(x)
    def fwd_bwd(m):
        m.train(); m.zero_grad(); reconstruction_loss(m(x)).backward()
    return [('MambaAD()', mode, best_of({'unfused': lambda: run(unfused), 'fused': lambda: run(fused)}, a.repeats))
            for mode, run in (('forward', fwd), ('forward + backward', fwd_bwd))]


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    rows = block_rows(a) + ([] if a.skip_model else model_rows(a))
    load = open('/proc/loadavg').read().split()[0] if Path('/proc/loadavg').exists() else '?'
    lines = ["# Fused vs unfused SS2D direction scan on CPU", "",
             f"`python kernels/bench_fused.py {' '.join(sys.argv[1:])}` — {datetime.datetime.now():%Y-%m-%d %H:%M}, "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} threads, batch {a.batch}, "
             f"{a.size}², fp32, best of {a.repeats} interleaved runs; load average at the end {load}. "
             "Ratio = unfused / fused (above 1: the fused kernel is faster); seconds are per call, for the whole batch.", "",
             "| what | pass | unfused / fused | unfused s | fused s |", "|---|---|---|---|---|"]
    lines += [f"| {what} | {mode} | **{t['unfused'] / t['fused']:.2f}×** | {t['unfused']:.3f} | {t['fused']:.3f} |"
              for what, mode, t in rows]
    text = '\n'.join(lines) + '\n'
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)


if __name__ == '__main__':
    main()
