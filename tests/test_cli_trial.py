"""The cases of a bad-input trial of the command line, as a new user would meet them (issue #17 item 7): each gets a
clear error (exit code 2, no traceback) or the right behaviour."""
import json, os, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest, torch
from cli_fixtures import Interrupt, isolated, tiny_data, TINY
from ssm_defects import cli
from ssm_defects.cli import main, train_model, reserve_run


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def fails_with(capsys, *argv, contains, code=2):
    got, out = run(capsys, *argv)
    assert got == code, out.err
    assert contains in out.err and 'Traceback' not in out.err, out.err
    return out.err


TRAIN = ['train', 'mambaad', '--size', TINY['size'], '--bs', TINY['bs'], '--preset', TINY['preset']]


def test_two_trainings_started_in_the_same_second_get_different_run_names(tmp_path):
    with ThreadPoolExecutor(4) as ex: names = list(ex.map(lambda i: reserve_run(tmp_path, 'mambaad-data-20261201-120000', {}), range(4)))
    assert len(set(names)) == 4 and all((tmp_path/f'{n}-config.json').is_file() for n in names)


def test_run_name_holds_the_categories():
    assert cli.run_name('mambaad', '/d/mvtec', ['bottle']).startswith('mambaad-mvtec-bottle-')


@pytest.mark.parametrize('flag,value,contains', [('--epochs', 0, '--epochs 0: must be a whole number'),
                                                 ('--epochs', -1, '--epochs -1: must be a whole number'),
                                                 ('--bs', 0, '--bs 0: must be a whole number'),
                                                 ('--size', 0, '--size 0'),
                                                 ('--lr', -1, '--lr -1.0: a learning rate is a positive number'),
                                                 ('--max-false-reject', 1.5, '--max-false-reject 1.5')])
def test_invalid_numbers_are_refused_before_training(isolated, tiny_data, capsys, flag, value, contains):
    options = {'--size': TINY['size'], '--bs': TINY['bs'], '--epochs': 1} | {flag: value}
    fails_with(capsys, 'train', 'mambaad', '--data', tiny_data, '--preset', TINY['preset'],
               *[x for kv in options.items() for x in kv], contains=contains)
    assert not any((isolated/'checkpoints').glob('*.pth'))


def test_resume_refuses_changed_options_and_follows_a_moved_data_folder(isolated, tiny_data, capsys):
    with pytest.raises(KeyboardInterrupt):
        train_model('mambaad', tiny_data, size=TINY['size'], bs=TINY['bs'], preset=TINY['preset'], epochs=2,
                    cbs=[Interrupt(0)], run='moved', quiet=True)
    last = isolated/'checkpoints'/'moved-last.pth'
    fails_with(capsys, 'train', 'mambaad', '--resume', last, '--bs', 2, contains='--bs 2 (the run has 4)')
    fails_with(capsys, 'train', 'mambaad', '--resume', last, '--size', 96, contains='--size 96 (the run has 64)')
    moved = tiny_data.rename(tiny_data.parent/'moved_data')
    code, out = run(capsys, 'train', 'mambaad', '--resume', last, '--data', moved, '--epochs', 2)
    assert code == 0, out.err
    state = torch.load(last, weights_only=True)
    assert state['epoch'] == 1 and state['args']['data'] == str(moved)


def test_a_settings_ini_of_another_tool_is_ignored(isolated, tmp_path, monkeypatch, capsys):
    project = tmp_path/'nbdev2_project'; project.mkdir()
    (project/'settings.ini').write_text('[DEFAULT]\nlib_name = other\nversion = 0.1\n')
    monkeypatch.chdir(project)
    monkeypatch.delenv('SSM_DEFECTS_SETTINGS', raising=False)
    from ssm_defects.settings import load_settings
    assert load_settings().source != project/'settings.ini'
    with pytest.raises(SystemExit) as e: main(['train', '--help'])
    assert e.value.code == 0


def test_unknown_device_is_a_clear_error(isolated, tiny_data, capsys):
    fails_with(capsys, *TRAIN, '--data', tiny_data, '--epochs', 1, '--device', 'gpu', contains="unknown device 'gpu'")


def test_report_folder_that_cannot_be_written_fails_before_training(isolated, tiny_data, monkeypatch, capsys):
    blocker = isolated/'a_file'; blocker.write_text('not a folder')
    monkeypatch.setenv('SSM_DEFECTS_REPORT_DIR', str(blocker/'reports'))       # works as root too, unlike chmod
    fails_with(capsys, *TRAIN, '--data', tiny_data, '--epochs', 1, contains='cannot write the report into')
    assert not any((isolated/'checkpoints').glob('*.pth'))


def test_ctrl_c_prints_the_resume_command(isolated, tiny_data, monkeypatch, capsys):
    with pytest.raises(KeyboardInterrupt) as e:
        train_model('mambaad', tiny_data, size=TINY['size'], bs=TINY['bs'], preset=TINY['preset'], epochs=2,
                    cbs=[Interrupt(0)], run='stopped', quiet=True)
    assert f"--resume {isolated/'checkpoints'/'stopped-last.pth'}" in str(e.value)
    monkeypatch.setattr(cli, 'train_model', lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt(str(e.value))))
    err = fails_with(capsys, *TRAIN, '--data', tiny_data, contains='interrupted: training stopped; continue it with', code=130)
    assert len(err.strip().splitlines()) == 1


def test_full_disk_is_one_line_not_a_traceback(isolated, tiny_data, monkeypatch, capsys):
    def full(*a, **k): raise OSError(28, 'No space left on device', str(isolated/'checkpoints'/'x.pth'))
    monkeypatch.setattr(cli, 'train_model', full)
    fails_with(capsys, *TRAIN, '--data', tiny_data, contains='No space left on device', code=1)


def test_config_repeats_a_run(isolated, tiny_data, capsys):
    code, out = run(capsys, *TRAIN, '--data', tiny_data, '--epochs', 1, '--seed', 5, '--lr', 0.002)
    assert code == 0, out.err
    first = sorted((isolated/'checkpoints').glob('*-config.json'))[0]
    code, out = run(capsys, 'train', 'mambaad', '--config', first)
    assert code == 0, out.err
    second = [p for p in (isolated/'checkpoints').glob('*-config.json') if p != first][0]
    assert json.loads(second.read_text()) == json.loads(first.read_text())
    fails_with(capsys, 'train', 'pyramid', '--config', first, contains="is a run of 'mambaad', not 'pyramid'")


def test_tensorboard_without_the_package_says_how_to_get_it(isolated, tiny_data, monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'tensorboard' else real(name, *a))
    fails_with(capsys, *TRAIN, '--data', tiny_data, '--epochs', 1, '--tensorboard', contains='pip install tensorboard')


@pytest.mark.skipif(__import__('importlib').util.find_spec('tensorboard') is None, reason="tensorboard not installed")
def test_tensorboard_logs_every_epoch(isolated, tiny_data, capsys):
    code, out = run(capsys, *TRAIN, '--data', tiny_data, '--epochs', 2, '--tensorboard')
    assert code == 0, out.err
    logs = list((isolated/'reports').glob('*-tensorboard/**/events.out.tfevents.*'))
    assert logs and all(p.stat().st_size > 0 for p in logs)
