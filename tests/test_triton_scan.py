"How `ssm_defects.triton_scan` chooses interpreter or compiler at import (whatever imported Triton first), that its kernels compile for a GPU without one, that `backend='auto'` never sends CPU tensors to Triton, its errors, and the GPU benchmark's refusal to run without a GPU."
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
@pytest.mark.parametrize('first', ['ssm_defects.scan', 'ssm_defects.mambaad', 'triton.language'])
def test_triton_backend_works_whatever_imported_triton_first(first):
    "`selective_scan(..., backend='triton')` in a fresh process without TRITON_INTERPRET, after `first` imported triton.language."
    code = (f"import {first}\n"
            "import torch; from ssm_defects.scan import selective_scan\n"
            "u, dt, A = torch.randn(1, 2, 16), torch.rand(1, 2, 16), -torch.rand(2, 4)\n"
            "B, C = torch.randn(1, 4, 16), torch.randn(1, 4, 16)\n"
            "y = selective_scan(u, dt, A, B, C, backend='triton')\n"
            "torch.testing.assert_close(y, selective_scan(u, dt, A, B, C, backend='ref'), rtol=1e-4, atol=1e-4)\n")
    r = run_python(code)
    assert r.returncode == 0, (first, r.stderr[-2000:])


def test_auto_backend_never_sends_cpu_tensors_to_triton():
    "Compiled Triton cannot run CPU tensors and the interpreter is thousands of times slower than the CPU scans."
    code = ("import torch\n"
            "from ssm_defects.scan import selective_scan, selective_scan_ref, resolve_backend, register_backend\n"
            "u = torch.randn(1, 4, 16)\n"
            "assert resolve_backend('auto', u) != 'triton'\n"
            "def must_not_run(*args, **kwargs): raise AssertionError('backend=\"auto\" picked Triton for CPU tensors')\n"
            "register_backend('triton', must_not_run)\n"
            "a = dict(u=u, delta=0.5 * torch.rand(1, 4, 16), A=-0.5 * torch.rand(4, 8), B=torch.randn(1, 8, 16), C=torch.randn(1, 8, 16),\n"
            "         D=torch.randn(4), z=torch.randn(1, 4, 16), delta_bias=0.5 * torch.rand(4))\n"
            "torch.testing.assert_close(selective_scan(**a, delta_softplus=True, backend='auto'),\n"
            "                           selective_scan_ref(**a, delta_softplus=True), rtol=1e-4, atol=1e-4)\n")
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-2000:]


def test_kernels_compile_for_a_gpu_without_one():
    "The interpreter accepts code the compiler rejects: compile both kernels to a cubin for sm_80 (every option on, N = 16)."
    code = ("import os; os.environ.update(TRITON_INTERPRET='0', TRITON_ALWAYS_COMPILE='1')\n"
            "import triton\n"
            "from triton.backends.compiler import GPUTarget\n"
            "from triton.compiler import ASTSource\n"
            "import ssm_defects.triton_scan as ts\n"
            "flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, N_BLOCK=16, CHUNK=ts.DEFAULT_CHUNK)\n"
            "for kernel in (ts.selective_scan_fwd_kernel, ts.selective_scan_bwd_kernel):\n"
            "    signature = {n: 'constexpr' if n in flags else '*fp32' if n.endswith('_ptr') else 'i32' for n in kernel.arg_names}\n"
            "    constexprs = {(kernel.arg_names.index(n),): v for n, v in flags.items()}\n"
            "    compiled = triton.compile(ASTSource(kernel, signature, constexprs), target=GPUTarget('cuda', 80, 32))\n"
            "    print(kernel.__name__, 'cubin' in compiled.asm)\n")
    r = run_python(code, TRITON_INTERPRET='0')
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ['selective_scan_fwd_kernel', 'True', 'selective_scan_bwd_kernel', 'True']


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
