"""Checkpoints and resume states hold only tensors and plain data and are read with `weights_only=True`: a `.pth` whose
pickle would run code is refused by every command before any of it runs; an older file of our own format is refused
with the way to convert it, and converts; a resumed run continues with the optimizer state it saved."""
import pathlib
import numpy as np
import pytest
import torch
from fastai.callback.core import Callback
from fastcore.foundation import L
from cli_fixtures import Interrupt, isolated, tiny_data, trained, TINY
from ssm_defects.cli import main, train_model, RunState, RESUME_KIND
from ssm_defects.training import load_checkpoint, convert_checkpoint, read_checkpoint

REFUSED = 'contains something other than tensors and plain data'
PLAIN = (dict, list, tuple, str, int, float, bool, type(None), torch.Tensor)


class Payload:
    "Unpickling this creates the file `marker`: a stand-in for any code a .pth can carry."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (pathlib.Path.touch, (pathlib.Path(self.marker),))


class OptimizerAtStart(Callback):
    "Keep a copy of the optimizer state as the fit starts (after `--resume` restored it, before any step)."
    order = -10
    def before_fit(self):
        sd = self.learn.opt.state_dict()
        self.hypers_type, self.hypers = type(sd['hypers']), [dict(h) for h in sd['hypers']]
        self.state = [{k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for s in sd['state']]


def only_plain(obj, where='file'):
    "Every object inside `obj` is a tensor or a plain container/scalar (exact types, not subclasses)."
    assert type(obj) in PLAIN or type(obj).__name__ == 'OrderedDict', f"{where}: {type(obj)}"
    if isinstance(obj, dict):
        for k, v in obj.items(): only_plain(k, f"{where} key"); only_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj): only_plain(v, f"{where}[{i}]")


def refused(capsys, path, *argv):
    "The command exits with 2 and one line naming `path`, what is wrong and what to do."
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().count('\n') == 0 and 'Traceback' not in err, err
    assert f"{path} {REFUSED}" in err and 'was not loaded' in err and 'convert_checkpoint' in err, err
    return err


def test_written_checkpoint_and_resume_state_are_plain_data(trained):
    for f in (trained['checkpoint'], trained['last']):
        only_plain(torch.load(f, map_location='cpu', weights_only=True), f.name)


def test_crafted_pickle_is_refused_by_every_loading_path(trained, isolated, tmp_path, capsys):
    marker = tmp_path/'marker'
    evil = tmp_path/'evil.pth'
    torch.save(dict(model='ssm_defects.mambaad:MambaAD', config={}, state_dict={}, metrics=Payload(marker)), evil)
    evil_last = tmp_path/'evil-last.pth'
    torch.save(dict(kind=RESUME_KIND, model='ssm_defects.mambaad:MambaAD', config={}, state_dict={}, opt=Payload(marker),
                    epoch=0, history=[], args={}, best=None), evil_last)
    img = trained['data']/'brick'/'test'/'good'/'000.png'
    refused(capsys, evil, 'evaluate', evil, '--data', trained['data'])
    refused(capsys, evil, 'predict', evil, img, '--out', tmp_path/'pred')
    refused(capsys, evil, 'export', evil, '--out', tmp_path/'m.onnx')
    refused(capsys, evil_last, 'train', 'mambaad', '--resume', evil_last)
    with pytest.raises(ValueError, match=REFUSED): load_checkpoint(evil)
    assert not marker.exists()
    assert not (tmp_path/'pred').exists() and not (tmp_path/'m.onnx').exists()


def test_old_checkpoint_is_refused_and_converts(trained, tmp_path, capsys):
    "A checkpoint as written before the plain-data rule (numpy strings and numbers in its metrics) converts once."
    ckpt = torch.load(trained['checkpoint'], weights_only=True)
    report = ckpt['metrics']['report']
    ckpt['metrics']['report'] = {np.str_(k): {c: np.float64(v) for c, v in row.items()} for k, row in report.items()}
    old = tmp_path/'old.pth'; torch.save(ckpt, old)
    refused(capsys, old, 'evaluate', old, '--data', trained['data'])
    new = convert_checkpoint(old, tmp_path/'new.pth')
    model = load_checkpoint(new)
    assert model.checkpoint_metrics['report'] == report
    for k, v in ckpt['state_dict'].items(): torch.testing.assert_close(model.state_dict()[k], v)
    assert main(['evaluate', str(new), '--data', str(trained['data'])]) == 0, capsys.readouterr().err


def test_old_resume_state_converts_in_place_and_resumes_with_its_optimizer(isolated, tiny_data, capsys):
    "A resume state with fastai's `L` inside (the format before) is refused; converted in place, the run resumes exactly."
    kw = dict(size=TINY['size'], bs=TINY['bs'], preset=TINY['preset'], quiet=True)
    with pytest.raises(KeyboardInterrupt):
        train_model('mambaad', tiny_data, epochs=2, cbs=[Interrupt(0)], run='killed', **kw)
    last = isolated/'checkpoints'/'killed-last.pth'
    saved = torch.load(last, weights_only=True)
    old = dict(saved, opt=dict(saved['opt'], hypers=L(saved['opt']['hypers'])),
               history=[{k: np.float64(v) if isinstance(v, float) else v for k, v in h.items()} for h in saved['history']])
    torch.save(old, last)
    refused(capsys, last, 'train', 'mambaad', '--resume', last)
    assert convert_checkpoint(last, last) == last
    assert read_checkpoint(last)['opt']['hypers'] == saved['opt']['hypers']
    probe = OptimizerAtStart()
    out = train_model('mambaad', epochs=2, resume=last, cbs=[probe], **kw)
    assert probe.hypers_type is L and probe.hypers == saved['opt']['hypers']
    assert len(probe.state) == len(saved['opt']['state']) > 0
    for got, want in zip(probe.state, saved['opt']['state']):
        assert got.keys() == want.keys()
        for k in want:
            if torch.is_tensor(want[k]): torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
            else: assert got[k] == want[k]
    assert [h['epoch'] for h in out['history']] == [0, 1] and out['history'][0] == saved['history'][0]
    only_plain(torch.load(last, weights_only=True))
