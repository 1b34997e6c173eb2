"The `ssm-defects` console script: help for every command, and train → evaluate → predict → export on a tiny dataset."
import json, os, shutil, subprocess, sys
import pytest
from cli_fixtures import isolated, trained, TINY
from ssm_defects.cli import main, parser

COMMANDS = ['demo', 'train', 'evaluate', 'predict', 'export']


@pytest.mark.parametrize('command', COMMANDS)
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as e: main([command, '--help'])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f'usage: ssm-defects {command}' in out and '--device' in out or command == 'export'


def test_console_script_is_installed():
    exe = shutil.which('ssm-defects') or os.path.join(os.path.dirname(sys.executable), 'ssm-defects')
    res = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and all(c in res.stdout for c in COMMANDS), res.stderr


def test_train_writes_checkpoint_resume_state_and_report(trained):
    assert trained['checkpoint'].is_file() and trained['last'].is_file()
    md = trained['report'].read_text()
    for part in ('## Metrics (%)', '| mean |', '![anomaly maps](heatmaps.png)', '![training curve](training.png)'):
        assert part in md
    assert {p.name for p in trained['report'].parent.iterdir()} == {'report.md', 'metrics.csv', 'heatmaps.png', 'training.png'}


def test_evaluate_command_writes_a_new_report(trained, isolated, capsys):
    assert main(['evaluate', str(trained['checkpoint']), '--data', str(trained['data'])]) == 0
    path = capsys.readouterr().out.strip().split('report: ')[-1]
    assert path.startswith(str(isolated/'reports')) and 'brick' in open(path).read()


def test_predict_command_writes_heatmaps_and_scores(trained, tmp_path):
    imgs = sorted((trained['data']/'brick'/'test').rglob('*.png'))
    assert main(['predict', str(trained['checkpoint']), *map(str, imgs), '--out', str(tmp_path/'pred')]) == 0
    doc = json.loads((tmp_path/'pred'/'scores.json').read_text())
    assert doc['input_size'] == TINY['size'] and len(doc['images']) == len(imgs)
    assert all((tmp_path/'pred'/r['heatmap']).is_file() for r in doc['images'])
    assert len({r['heatmap'] for r in doc['images']}) == len(imgs)            # same file names in different folders kept apart


@pytest.mark.slow
def test_demo_from_a_fresh_folder(tmp_path):
    "The README's main command with nothing prepared: a settings file pointing to empty folders."
    (tmp_path/'settings.ini').write_text("[ssm_defects]\ndata_root = data\ncheckpoint_dir = checkpoints\nreport_dir = reports\n")
    env = dict(os.environ, SSM_DEFECTS_SETTINGS=str(tmp_path/'settings.ini'))
    res = subprocess.run(['ssm-defects', 'demo'], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = res.stdout.strip().split('report: ')[-1]
    assert report.startswith(str(tmp_path/'reports')) and (tmp_path/'data'/'textures'/'fixture.json').is_file()


@pytest.fixture(scope='module')
def tiny_classes(tmp_path_factory):
    "A tiny class-folder copy of the surface-defects fixture: 4 train and 2 test images per class."
    from ssm_defects.data import make_surface_defects
    src, dst = make_surface_defects(), tmp_path_factory.mktemp('classes')/'defects'
    for split, n in (('train', 4), ('test', 2)):
        for c in sorted(p.name for p in (src/split).iterdir()):
            (dst/split/c).mkdir(parents=True)
            for f in sorted((src/split/c).glob('*.png'))[:n]: shutil.copy(f, dst/split/c)
    return dst


def test_memorymamba_train_evaluate_predict(tiny_classes, isolated, tmp_path, capsys):
    "`train memorymamba` on class folders: checkpoint with the class names, report with the confusion matrix; evaluate and predict."
    assert main(['train', 'memorymamba', '--data', str(tiny_classes), '--epochs', '1', '--bs', '8']) == 0
    out = capsys.readouterr().out
    ckpt, report = out.split('checkpoint: ')[-1].split('\n')[0], out.split('report: ')[-1].strip()
    md = open(report).read()
    classes = sorted(p.name for p in (tiny_classes/'train').iterdir())
    assert '| overall |' in md and all(f'| {c} |' in md for c in classes) and '![Confusion matrix (test images)](confusion.png)' in md
    assert main(['evaluate', ckpt, '--data', str(tiny_classes)]) == 0
    assert 'report: ' in capsys.readouterr().out
    imgs = sorted((tiny_classes/'test'/classes[0]).glob('*.png'))
    assert main(['predict', ckpt, *map(str, imgs), '--out', str(tmp_path/'pred')]) == 0
    doc = json.loads((tmp_path/'pred'/'scores.json').read_text())
    assert doc['classes'] == classes and len(doc['images']) == len(imgs)
    for r in doc['images']:
        assert r['predicted'] in classes and abs(sum(r['probabilities'].values()) - 1) < 1e-5
