"Shared fixtures of the CLI tests: isolated settings, a tiny MVTec-layout dataset cut from the textures fixture, a tiny trained checkpoint."
import shutil
from pathlib import Path
import pytest
from fastai.callback.core import Callback
from ssm_defects.data import make_textures, mask_folder
from ssm_defects.cli import RunState

TINY = dict(size=64, epochs=1, bs=4, preset='small')


def copy_tiny(dst, categories=('brick',), n_train=4, n_good=2, defects=('crack', 'hole'), splits=('validation', 'test')):
    """A tiny MVTec-layout copy of the textures fixture: n_train normal train images, and per split of `splits` n_good
    good + one image per defect (`splits=('test',)`: MVTec-AD's layout; `()`: good training images only)."""
    src = make_textures()
    for c in categories:
        for i in range(n_train):
            f = src/c/'train'/'good'/f'{i:03d}.png'; (dst/c/'train'/'good').mkdir(parents=True, exist_ok=True); shutil.copy(f, dst/c/'train'/'good'/f.name)
        for split in splits:
            for i in range(n_good):
                (dst/c/split/'good').mkdir(parents=True, exist_ok=True); shutil.copy(src/c/split/'good'/f'{i:03d}.png', dst/c/split/'good')
            for d in defects:
                (dst/c/split/d).mkdir(parents=True, exist_ok=True); (dst/c/mask_folder(split)/d).mkdir(parents=True, exist_ok=True)
                shutil.copy(src/c/split/d/'000.png', dst/c/split/d/'000.png')
                shutil.copy(src/c/mask_folder(split)/d/'000_mask.png', dst/c/mask_folder(split)/d/'000_mask.png')
    return dst


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    "Checkpoints and reports of this test in tmp_path (data_root stays the repository's, so the textures fixture is reused)."
    monkeypatch.setenv('SSM_DEFECTS_CHECKPOINT_DIR', str(tmp_path/'checkpoints'))
    monkeypatch.setenv('SSM_DEFECTS_REPORT_DIR', str(tmp_path/'reports'))
    monkeypatch.setenv('SSM_DEFECTS_DEVICE', 'cpu')
    return tmp_path


@pytest.fixture
def tiny_data(tmp_path):
    return copy_tiny(tmp_path/'tiny')


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    "One tiny training run shared by the tests: dict(checkpoint, last, report, data, root)."
    import os
    from ssm_defects.cli import train_model
    root = tmp_path_factory.mktemp('trained')
    data = copy_tiny(root/'tiny')
    env = dict(SSM_DEFECTS_CHECKPOINT_DIR=str(root/'checkpoints'), SSM_DEFECTS_REPORT_DIR=str(root/'reports'), SSM_DEFECTS_DEVICE='cpu')
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try: out = train_model('mambaad', data, size=TINY['size'], epochs=TINY['epochs'], bs=TINY['bs'], preset=TINY['preset'], quiet=True)
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return dict(out, data=data, root=root)


class Interrupt(Callback):
    "Simulate a killed process right after epoch `at` has been saved."
    order = RunState.order + 1
    def __init__(self, at): self.at = at
    def after_epoch(self):
        if self.epoch == self.at: raise KeyboardInterrupt('simulated kill')
