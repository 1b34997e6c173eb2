"How `ssm_defects.triton_scan` chooses interpreter or compiler at import (whatever imported Triton first), its errors, and the GPU benchmark's refusal to run without a GPU."
import os, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason='checks the behaviour on a machine without a GPU')


def run_python(code, **env):
    "Run `code` in a fresh interpreter (Triton decides interpreter/compiler at import, so each case needs its own process)."
    full_env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'} | env
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=full_env, cwd=ROOT)


@no_gpu
def test_import_without_gpu_turns_the_interpreter_on():
    r = run_python("import os, ssm_defects.triton_scan as ts; print(os.environ['TRITON_INTERPRET'], ts.INTERPRETED)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['1', 'True']


def test_importing_the_scan_module_leaves_triton_alone():
    r = run_python("import os, ssm_defects.scan; print(os.environ.get('TRITON_INTERPRET', 'unset'))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['unset']


@no_gpu
def test_interpreter_works_when_triton_language_was_imported_first():
    code = ("import triton.language as tl\n"
            "import torch, ssm_defects.triton_scan as ts\n"
            "assert ts.INTERPRETED and type(tl.sum).__name__ == 'InterpretedFunction'\n"
            "u, dt, A, B, C = torch.randn(1, 2, 16), torch.rand(1, 2, 16), -torch.rand(2, 4), torch.randn(1, 4, 16), torch.randn(1, 4, 16)\n"
            "from ssm_defects.scan import selective_scan_ref\n"
            "torch.testing.assert_close(ts.selective_scan_triton(u, dt, A, B, C), selective_scan_ref(u, dt, A, B, C), rtol=1e-4, atol=1e-4)\n")
    r = run_python(code)
    assert r.returncode == 0, r.stderr


@no_gpu
def test_compiled_kernels_refuse_cpu_tensors_with_a_clear_message():
    code = ("import torch, ssm_defects.triton_scan as ts\n"
            "assert not ts.INTERPRETED\n"
            "u = torch.randn(1, 2, 8)\n"
            "ts.selective_scan_triton(u, u.abs(), -torch.rand(2, 4), torch.randn(1, 4, 8), torch.randn(1, 4, 8))\n")
    r = run_python(code, TRITON_INTERPRET='0')            # the user's explicit choice is respected
    assert r.returncode != 0
    assert 'compiled for the GPU' in r.stderr and 'TRITON_INTERPRET=1' in r.stderr


@no_gpu
def test_gpu_benchmark_stops_with_a_message_and_writes_nothing(tmp_path):
    out = tmp_path / 'scan_gpu.md'
    r = subprocess.run([sys.executable, str(ROOT / 'kernels' / 'bench_scan_gpu.py'), '--quick', '--out', str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1
    assert 'needs a CUDA GPU' in r.stderr
    assert not out.exists()
