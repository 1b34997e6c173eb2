"""Dynamic INT8 quantization of an exported anomaly model: its speed and its change in test metrics.

onnxruntime's `quantize_dynamic` stores the weights of the chosen operators in int8 and quantizes their inputs on the
fly. The checkpoint is exported with `ssm_defects.deploy.export_onnx` (float32, the graph `ssm-defects export`
writes), quantized two ways (MatMul only: the decoder's projections; MatMul and Conv: the encoder too), and all
three graphs score the test split of `--data` through the torch-free `Inferencer`; metrics by the library's
`anomaly_report`, latency by `ssm_defects.deploy.median_ms` (batch 1 and 8, on the same images). Nothing is chosen
here: the test split is only read. Writes kernels/results/int8.csv and int8.md. Run it alone on the machine:

    OMP_NUM_THREADS=2 python kernels/bench_int8.py reports/demo-*/checkpoint.pth     # a trained demo checkpoint
"""
import argparse, os, platform, tempfile, time
from pathlib import Path

RESULTS = Path(__file__).parent / 'results'


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('checkpoint'); ap.add_argument('--data', default=None); ap.add_argument('--categories', nargs='+')
    ap.add_argument('--runs', type=int, default=7); ap.add_argument('--warmup', type=int, default=2)
    a = ap.parse_args()
    import numpy as np, pandas as pd, torch, onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from ssm_defects.cli import _dataset_root, _test_maps, checkpoint_size, load_anomaly_model
    from ssm_defects.deploy import export_onnx, median_ms
    from ssm_defects.inferencer import Inferencer
    from ssm_defects.metrics import anomaly_report
    load0, t0, threads = os.getloadavg(), time.time(), torch.get_num_threads()
    model = load_anomaly_model(a.checkpoint, 'cpu')
    size = checkpoint_size(model, None)
    r = _test_maps(model, _dataset_root(a.data), a.categories, size)
    images = (r['x'] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()   # (N, H, W, 3): the resized images
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp)/'fp32.onnx', size)
        graphs = {'float32': fp32}
        for name, ops in (('int8 MatMul', ['MatMul']), ('int8 MatMul + Conv', ['MatMul', 'Conv'])):
            graphs[name] = Path(tmp)/f"{name.replace(' ', '_').replace('+', '')}.onnx"
            quantize_dynamic(str(fp32), str(graphs[name]), op_types_to_quantize=ops, weight_type=QuantType.QInt8)
        for name, path in graphs.items():
            run = Inferencer(path, threads=threads).run
            out = [run(images[i:i + 8]) for i in range(0, len(images), 8)]
            maps, scores = np.concatenate([o['anomaly_map'] for o in out]), np.concatenate([o['score'] for o in out])
            rep = anomaly_report(r['categories'], r['labels'], scores, r['masks'].numpy(), maps)
            mean = rep.loc['mean'] if 'mean' in rep.index else rep.iloc[-1]
            ms = {b: median_ms(run, images[:b], a.runs, a.warmup) / b for b in (1, 8)}
            rows.append(dict(graph=name, MB=path.stat().st_size / 2**20, ms_batch1=ms[1], ms_batch8=ms[8],
                             max_map_change=float(np.abs(maps - r['maps'].numpy()).max() / np.ptp(r['maps'].numpy())),
                             **{k: 100 * float(mean[k]) for k in ('image_AUROC', 'pixel_AUROC', 'pixel_AUPRO') if k in mean}))
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    cols = list(df.columns)
    lines = ['# Dynamic INT8 quantization (kernels/bench_int8.py)', '',
             f"`{a.checkpoint}` ({type(model).__name__}, {size} px), test split of {_dataset_root(a.data)}, {len(images)} images; "
             f"{platform.processor() or platform.machine()}, {threads} threads, onnxruntime {onnxruntime.__version__}; "
             f"latency: median of {a.runs} runs after {a.warmup} warm-up, ms per image; max_map_change: largest |map − "
             f"PyTorch's map| over the map's range; metrics in % (mean over categories); load average before "
             f"{load0[0]:.2f}, after {os.getloadavg()[0]:.2f}; {time.time() - t0:.0f} s.", '',
             '| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    lines += ['| ' + ' | '.join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + ' |' for row in df.itertuples(index=False)]
    RESULTS.mkdir(exist_ok=True)
    df.round(4).to_csv(RESULTS / 'int8.csv', index=False)                       # read by nbs/14_deploy.ipynb
    (RESULTS / 'int8.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
