"""Latency of the deployed models: PyTorch eager, ONNX Runtime and (when installed) OpenVINO, batch 1 and 8.

Two models at their input sizes: the demo model (`ssm-defects demo`: MambaAD, `small` preset on the offline
EfficientNet-Lite0 encoder, 128 px) and the paper-size MambaAD (ResNet34, depths 3-4-6-3, Hilbert scan x 8, d_state 16,
256 px). Weights are random (they time the same as trained ones); the graph includes a decision with placeholder
constants, as an exported checkpoint's does. `ssm_defects.deploy.benchmark`: median of --runs timed calls after
--warmup untimed ones, ms/image = median / batch, every engine on the same thread count (torch's, i.e. OMP_NUM_THREADS).
Writes kernels/results/deploy_latency.csv (read by nbs/14_deploy.ipynb; rows of models not measured in this run are
kept) and deploy_latency.md (with the machine).
Run it alone on the machine:

    OMP_NUM_THREADS=2 python kernels/bench_deploy.py
    OMP_NUM_THREADS=2 python kernels/bench_deploy.py --models demo --runs 3     # a quick one
"""
import argparse, os, platform, time
from pathlib import Path

RESULTS = Path(__file__).parent / 'results'
DECISION = dict(image_threshold=1.0, pixel_threshold=0.9, score_min=0.5, score_max=1.5)    # placeholders: timing only


def models():
    "name → (model factory, input side)."
    from ssm_defects.cli import PRESETS, TRAIN_DEFAULTS
    from ssm_defects.features import OFFLINE_DEFAULT
    from ssm_defects.mambaad import MambaAD
    small = {k: v for k, v in PRESETS['small'].items() if k != 'size'}
    paper = {k: v for k, v in PRESETS['paper'].items() if k != 'size'} | dict(pretrained=False)
    return dict(demo=(lambda: MambaAD(**OFFLINE_DEFAULT, **small), TRAIN_DEFAULTS['anomaly']['size']),
                paper=(lambda: MambaAD(**paper), PRESETS['paper']['size']))


def save(df):
    "Write `df` to deploy_latency.csv, keeping the rows of models this run did not measure; returns the whole table."
    import pandas as pd
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / 'deploy_latency.csv'
    if path.is_file():
        old = pd.read_csv(path)
        df = pd.concat([old[~old.model.isin(df.model)], df], ignore_index=True)
    df.round(3).to_csv(path, index=False)
    return df


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--models', nargs='+', default=['demo', 'paper'], choices=['demo', 'paper'])
    ap.add_argument('--runs', type=int, default=7); ap.add_argument('--warmup', type=int, default=2)
    a = ap.parse_args()
    import pandas as pd, torch
    from ssm_defects.deploy import benchmark
    load0, t0, tables = os.getloadavg(), time.time(), []
    for name in a.models:
        make, size = models()[name]
        torch.manual_seed(0)
        table = benchmark(make().eval(), size, runs=a.runs, warmup=a.warmup, decision=DECISION)
        tables.append(table.assign(model=f"{name} ({size} px)")[['model', 'engine', 'batch', 'threads', 'ms_per_image', 'images_per_s']])
        print(tables[-1].round(2).to_string(index=False), flush=True)
        df = save(pd.concat(tables, ignore_index=True))                      # after each model: a long run keeps what it measured
    import onnxruntime
    lines = ['# Deployment latency (kernels/bench_deploy.py)', '',
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
             f"onnxruntime {onnxruntime.__version__}; runs {a.runs} after {a.warmup} warm-up; load average before "
             f"{load0[0]:.2f}, after {os.getloadavg()[0]:.2f}; {time.time() - t0:.0f} s.", '',
             '| model | engine | batch | threads | ms/image | images/s |', '|---|---|---|---|---|---|']
    lines += [f"| {r.model} | {r.engine} | {r.batch} | {r.threads} | {r.ms_per_image:.1f} | {r.images_per_s:.1f} |" for r in df.itertuples()]
    (RESULTS / 'deploy_latency.md').write_text('\n'.join(lines) + '\n')
    print(f"wrote {RESULTS / 'deploy_latency.csv'} and deploy_latency.md")


if __name__ == '__main__':
    main()
