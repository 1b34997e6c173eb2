"""Training time of the demo's MambaAD recipe with the fused SS2D scan (chapter 05b) against the unfused one.

The demo recipe (`small`: depths 2-2-2-2, 2 directions, d_state 4; EfficientNet-Lite0 frozen; 128 px, batch 8) on the
`textures` fixture, trained `--epochs` epochs without per-epoch validation, `fused=True` and `fused=False` in turn
(interleaved), best of `--repeats`; seconds per epoch and their ratio (unfused / fused) go to
kernels/results/demo_training.md. Quiet machine only: the ratio is what to read.

    python kernels/bench_demo_training.py
"""
import argparse, datetime, os, platform, time
from pathlib import Path
import torch
from fastai.torch_core import set_seed
from ssm_defects.data import anomaly_dls
from ssm_defects.mambaad import default_model, mambaad_learner
from ssm_defects.blocks import SS2D

RESULTS = Path(__file__).resolve().parent/'results'/'demo_training.md'

def epoch_seconds(dls, fused, epochs):
    "Seconds per training epoch of a fresh demo-recipe model with every SS2D `fused` or not."
    set_seed(0)
    model = default_model(dls, depths=(2, 2, 2, 2), directions=2, d_state=4)
    for m in model.modules():
        if isinstance(m, SS2D): m.fused = fused
    learn = mambaad_learner(dls, model, checkpoint=False, metrics=False)
    t0 = time.time()
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs)
    return (time.time() - t0) / epochs

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=2); p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--threads', type=int, default=2); p.add_argument('--out', type=Path, default=RESULTS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dls = anomaly_dls(size=128, bs=8)
    best = {False: float('inf'), True: float('inf')}
    for _ in range(a.repeats):
        for fused in (False, True): best[fused] = min(best[fused], epoch_seconds(dls, fused, a.epochs))
    text = (f"# Demo recipe: training seconds per epoch, fused vs unfused SS2D\n\n`python kernels/bench_demo_training.py` — "
            f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.machine()}, torch {torch.__version__}, {a.threads} threads, "
            f"{a.epochs} epochs per run, best of {a.repeats} interleaved runs; load average at the end {os.getloadavg()[0]:.2f}.\n\n"
            f"| SS2D | s / epoch |\n|---|---|\n| unfused | {best[False]:.2f} |\n| fused | {best[True]:.2f} |\n\n"
            f"Ratio unfused / fused: **{best[False] / best[True]:.2f}×**.\n")
    a.out.write_text(text); print(text)
