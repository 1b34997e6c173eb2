"""Data-parallel training with fastai's distributed support and Hugging Face Accelerate: `accelerate launch` starts 2 CPU
processes (gloo), both finish, exactly one checkpoint is written, and it reloads."""
import os, shutil, subprocess, sys
import pytest
import torch
from cli_fixtures import copy_tiny, TINY


def test_two_cpu_processes_train_one_checkpoint_that_reloads(tmp_path):
    data = copy_tiny(tmp_path/'tiny', n_train=8)
    env = dict(os.environ, SSM_DEFECTS_CHECKPOINT_DIR=str(tmp_path/'ck'), SSM_DEFECTS_REPORT_DIR=str(tmp_path/'rep'),
               SSM_DEFECTS_DEVICE='cpu', OMP_NUM_THREADS='1')
    exe = shutil.which('ssm-defects') or os.path.join(os.path.dirname(sys.executable), 'ssm-defects')
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
           '--mixed_precision', 'no', '--dynamo_backend', 'no', exe, 'train', 'mambaad', '--data', str(data),
           '--size', str(TINY['size']), '--epochs', '1', '--bs', '2', '--device', 'cpu']
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    ckpts = sorted((tmp_path/'ck').glob('*.pth'))
    best = [p for p in ckpts if not p.name.endswith('-last.pth')]
    assert len(ckpts) == 2 and len(best) == 1, ckpts                          # one checkpoint + its resume state
    from ssm_defects.cli import load_anomaly_model
    model = load_anomaly_model(best[0])
    assert model.checkpoint_metrics['processes'] == 2
    maps, scores = model.anomaly_maps(torch.zeros(1, 3, TINY['size'], TINY['size']))
    assert maps.shape == (1, TINY['size'], TINY['size']) and torch.isfinite(scores).all()
    assert res.stdout.count('report: ') == 1                                   # the main process reports once
