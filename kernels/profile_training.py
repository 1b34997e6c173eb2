"""CPU profile of a MambaAD training step (forward + backward + AdamW step), per part, for the demo and the paper model.

Two models, random weights (the weights do not change the cost), fp32, `torch.profiler`:

- demo: the recipe `ssm-defects demo` trains (`TRAIN_DEFAULTS['anomaly']`: preset `small` — depths 2-2-2-2,
  2 directions, d_state 4 — on the offline EfficientNet-Lite0 encoder, 128 px, batch 8);
- paper: `MambaAD()` (ResNet34, depths 3-4-6-3, Hilbert, 8 directions, d_state 16), 256 px, batch 8.

One step is what the demo's fastai `Learner` runs per batch: forward, the reconstruction loss, backward, gradient
clipping (norm 5) and fastai's Adam with decoupled weight decay (= torch AdamW; wd 1e-4 on weight matrices only),
then zeroing the gradients. Reported per image: encoder forward, bottleneck, decoder forward split into its
selective scans and the rest ("dense": projections, convolutions, norms, layout changes), loss, backward split the
same way (the scans' backward operators against everything else), optimizer (clip + step + zero). Each part is
timed with `--clock` in `--repeats` unprofiled steps (the fastest step is kept); as many profiled steps give the
scans' share of the decoder forward and of the backward, and the operators with the most self time.

    python kernels/profile_training.py               # fused SS2D (the default) → kernels/results/profile_training.md
    python kernels/profile_training.py --unfused     # SS2D(fused=False) → kernels/results/profile_training_unfused.md
    python kernels/profile_training.py --compile     # decoder under torch.compile → kernels/results/profile_training_compiled.md
    python kernels/profile_training.py --models demo --threads 1 --clock process   # a quick one-core check
"""
import argparse, datetime, os, platform, sys, time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.profiler import profile, record_function, ProfilerActivity
from fastai.optimizer import Adam

from ssm_defects.cli import PRESETS, TRAIN_DEFAULTS
from ssm_defects.features import OFFLINE_DEFAULT, reconstruction_loss
from ssm_defects.mambaad import MambaAD
from ssm_defects.training import decay_groups, reference_lr

RESULTS = Path(__file__).resolve().parent / 'results'
SCAN_FWD = ('ssm_defects::selective_scan', 'ssm_defects::fused_direction_scan')
SCAN_BWD = ('ssm_defects::selective_scan_backward', 'ssm_defects::fused_direction_scan_backward')
PARTS = ('encoder', 'bottleneck', 'decoder', 'loss', 'backward', 'optimizer')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=['demo', 'paper'], choices=['demo', 'paper'])
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--paper-size', type=int, default=256, help="the paper model's input side (the demo's is TRAIN_DEFAULTS')")
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=3, help='timed (and as many profiled) steps per model after one warm-up step; the fastest is kept')
    p.add_argument('--unfused', action='store_true', help='SS2D(fused=False): gathers, scan operator, decode')
    p.add_argument('--compile', action='store_true', help='torch.compile the decoder (inductor); the warm-up step then compiles')
    p.add_argument('--clock', choices=['wall', 'process'], default='wall',
                   help='timer of the parts: wall (a quiet machine) or process CPU time (a shared machine, one thread)')
    p.add_argument('--out', type=Path, default=None, help='default: results/profile_training[_unfused].md')
    return p.parse_args()


def build(name, unfused):
    "(model, input side, description) of the demo recipe or the paper model."
    ss2d = dict(fused=False) if unfused else {}
    if name == 'demo':
        recipe = TRAIN_DEFAULTS['anomaly']
        arch = PRESETS[recipe['preset']]
        model = MambaAD(**(OFFLINE_DEFAULT | dict(pretrained=False) | arch), ss2d_kwargs=ss2d)
        return model, recipe['size'], f"demo: preset `{recipe['preset']}` {arch} on {OFFLINE_DEFAULT['backbone']}"
    return MambaAD(ss2d_kwargs=ss2d), None, 'paper: `MambaAD()` (ResNet34, depths (3, 4, 6, 3), Hilbert, 8 directions, d_state 16)'


def make_step(model, x, clock):
    "One training step as the demo's Learner runs it; `step()` returns the `clock` seconds of each part."
    opt = Adam(decay_groups(model), lr=reference_lr(x.shape[0]), mom=0.9, sqr_mom=0.999, eps=1e-8, wd=1e-4)
    opt.set_hyper('wd', [1e-4, 0.])                              # weight decay on matrices only (decay_groups)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    def step():
        times = {}
        @contextmanager
        def part(name):                                          # a profiler label and a clock reading per part
            t0 = clock()
            with record_function(name): yield
            times[name] = clock() - t0
        with part('encoder'): enc = model.encoder(x)
        with part('bottleneck'): z = model.bottleneck(enc)
        with part('decoder'): dec = model.decoder(z)
        with part('loss'): loss = reconstruction_loss((enc, dec))
        with part('backward'): loss.backward()
        with part('optimizer'):
            torch.nn.utils.clip_grad_norm_(params, 5.)
            opt.step(); opt.zero_grad()
        return times
    return step


def seconds(prof, names):
    "CPU seconds of the events named `names` (their totals: children included)."
    return sum(e.cpu_time_total for e in prof.key_averages() if e.key in names) / 1e6


def profile_model(name, a):
    torch.manual_seed(0)
    model, size, what = build(name, a.unfused)
    size = size or a.paper_size
    x = torch.rand(a.batch, 3, size, size)
    if a.compile:                                                # a cold compile: what a first training run pays
        os.environ['TORCHINDUCTOR_FORCE_DISABLE_CACHES'] = '1'
        model.decoder = torch.compile(model.decoder)
    clock = time.process_time if a.clock == 'process' else time.perf_counter
    step = make_step(model, x, clock)
    warmup = sum(step().values())                                # warm-up: kernels, caches, optimizer state, compilation
    best, split = None, None
    for _ in range(a.repeats):
        times = step()                                           # the parts, timed by `clock` without the profiler
        if best is None or sum(times.values()) < sum(best.values()): best = times
        with profile(activities=[ProfilerActivity.CPU]) as prof: step()
        prof_step = seconds(prof, PARTS)
        if split is None or prof_step < split[0]:                # the scans' share of decoder forward and of backward
            split = (prof_step, seconds(prof, SCAN_FWD) / seconds(prof, ('decoder',)),
                     seconds(prof, SCAN_BWD) / seconds(prof, ('backward',)), top_operators(prof))
    sec = dict(best, scan_fwd=split[1] * best['decoder'], scan_bwd=split[2] * best['backward'], step=sum(best.values()))
    return what, size, {k: v / a.batch for k, v in sec.items()}, warmup, split[3]


def top_operators(prof, n=12):
    "(name, self CPU s, calls) of the `n` operators with the most self time, labels left out."
    evs = [e for e in prof.key_averages() if e.key not in PARTS]
    return [(e.key, e.self_cpu_time_total / 1e6, e.count) for e in sorted(evs, key=lambda e: -e.self_cpu_time_total)[:n]]


def table(name, what, size, s, warmup, ops, a):
    rows = [('encoder forward (frozen)', s['encoder']), ('bottleneck forward', s['bottleneck']),
            ('decoder forward', s['decoder']), ('… selective scans', s['scan_fwd']),
            ('… dense (decoder − scans)', s['decoder'] - s['scan_fwd']), ('loss', s['loss']),
            ('backward', s['backward']), ('… selective scans', s['scan_bwd']),
            ('… dense (backward − scans)', s['backward'] - s['scan_bwd']), ('optimizer (clip + AdamW + zero)', s['optimizer'])]
    lines = [f"## {name}", "", f"{what}; {size}², batch {a.batch}.", "",
             "| part | s / image | share of the step |", "|---|---|---|"]
    lines += [f"| {p} | {v:.4f} | {100 * v / s['step']:.1f} % |" for p, v in rows]
    lines += [f"| **training step** | **{s['step']:.4f}** | 100 % |", "",
              f"Scans {100 * (s['scan_fwd'] + s['scan_bwd']) / s['step']:.0f} % of the step, "
              f"backward / forward (encoder + bottleneck + decoder) "
              f"{s['backward'] / (s['encoder'] + s['bottleneck'] + s['decoder']):.1f}×. First (warm-up) step: "
              f"{warmup:.2f} s for the batch{' (includes compiling the decoder)' if a.compile else ''}.", "",
              "Operators with the most self CPU time in that step (forward, backward and optimizer; "
              "`GeneratedBackwardFor_ssm_defects_…_default` is a scan operator's *forward* kernel run under autograd):", "",
              "| operator | self CPU s / image | calls |", "|---|---|---|"]
    lines += [f"| `{k}` | {t / a.batch:.4f} | {n} |" for k, t, n in ops]
    return lines + [""]


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    out = a.out or RESULTS / f"profile_training{'_unfused' if a.unfused else ''}{'_compiled' if a.compile else ''}.md"
    load = os.getloadavg()[0]
    lines = ["# MambaAD training step on CPU: encoder, decoder (scans vs dense), backward, optimizer", "",
             f"`python kernels/profile_training.py {' '.join(sys.argv[1:])}` — {datetime.datetime.now():%Y-%m-%d %H:%M}, "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} threads, load average "
             f"at start {load:.2f}; SS2D {'unfused (`fused=False`)' if a.unfused else 'fused (the CPU default)'}"
             f"{', decoder under `torch.compile`' if a.compile else ''}. Parts in seconds per image of the fastest of "
             f"{a.repeats} steps ({a.clock} time, no profiler); the scans' part of the decoder forward and of the backward "
             "is their share in the fastest of as many profiled steps (absolute times move with the machine's load; the "
             "shares much less).", ""]
    for name in a.models:
        what, size, s, warmup, ops = profile_model(name, a)
        lines += table(name, what, size, s, warmup, ops, a)
        print('\n'.join(lines[-34:]), flush=True)
    text = '\n'.join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written: {out}")


if __name__ == '__main__':
    main()
