"The `ssm-defects` console script: help for every command, and train → evaluate → predict → export on a tiny dataset."
import csv, importlib.util, json, os, re, shutil, subprocess, sys
import pytest
from cli_fixtures import isolated, trained, tiny_data, copy_tiny, TINY
from ssm_defects.cli import main, parser

COMMANDS = ['demo', 'train', 'evaluate', 'predict', 'export', 'benchmark']


@pytest.mark.parametrize('command', COMMANDS)
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as e: main([command, '--help'])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f'usage: ssm-defects {command}' in out and ('--device' in out or command in ('export', 'benchmark'))   # these run on the CPU


def test_console_script_is_installed():
    exe = shutil.which('ssm-defects') or os.path.join(os.path.dirname(sys.executable), 'ssm-defects')
    res = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and all(c in res.stdout for c in COMMANDS), res.stderr


def test_train_writes_checkpoint_resume_state_and_report(trained):
    assert trained['checkpoint'].is_file() and trained['last'].is_file()
    md = trained['report'].read_text()
    for part in ('## Metrics (%)', '| mean |', '![anomaly maps](heatmaps.png)', '![training curve](training.png)'):
        assert part in md
    files = {p.name for p in trained['report'].parent.iterdir()}
    assert {'report.md', 'metrics.csv', 'heatmaps.png', 'training.png', 'history.csv', 'decisions.csv'} <= files <= \
           {'report.md', 'metrics.csv', 'heatmaps.png', 'training.png', 'history.csv', 'decisions.csv', 'misses.png'}
    assert ('misses.png' in files) == ('## Worst misses at the stored threshold' in md)
    for part in ('- **false_reject_rate**:', '- **escape_rate**:', 'good images called NG', '[history.csv](history.csv)'):
        assert part in md
    rows = list(csv.DictReader(open(trained['report'].parent/'decisions.csv')))
    n_images = int(re.search(r'evaluated_on\*\*: .*\((\d+) images', md).group(1))
    assert {r['prediction'] for r in rows} <= {'OK', 'NG'} and len(rows) == n_images


def test_evaluate_command_writes_a_new_report(trained, isolated, capsys):
    assert main(['evaluate', str(trained['checkpoint']), '--data', str(trained['data'])]) == 0
    path = capsys.readouterr().out.strip().split('report: ')[-1]
    assert path.startswith(str(isolated/'reports')) and 'brick' in open(path).read()


def test_predict_command_writes_decisions(trained, tmp_path):
    "A calibrated decision travels in the checkpoint; `predict` on a folder gives OK/NG per image in a CSV, masks for NG."
    from ssm_defects.training import load_checkpoint
    decision = load_checkpoint(trained['checkpoint']).checkpoint_metrics['decision']
    assert decision['image_threshold'] > 0 and decision['calibrated_on']
    folder = trained['data']/'brick'/'test'
    assert main(['predict', str(trained['checkpoint']), str(folder), '--out', str(tmp_path/'pred')]) == 0
    doc = json.loads((tmp_path/'pred'/'predictions.json').read_text())
    n = len(sorted(folder.rglob('*.png')))
    assert doc['size'] == TINY['size'] and doc['threshold'] == decision['image_threshold'] and doc['counts']['images'] == n
    rows = list(csv.DictReader(open(tmp_path/'pred'/'predictions.csv')))
    assert len(rows) == n and {r['label'] for r in rows} <= {'OK', 'NG'}
    assert all((float(r['score']) >= doc['threshold']) == (r['label'] == 'NG') for r in rows)
    assert all((tmp_path/'pred'/r['heatmap']).is_file() for r in rows)
    assert all((tmp_path/'pred'/r['mask']).is_file() for r in rows if r['label'] == 'NG' and r['mask'])
    # --threshold overrides the stored one: above every score, every image is OK
    assert main(['predict', str(trained['checkpoint']), str(folder), '--out', str(tmp_path/'all_ok'), '--threshold', '1e9']) == 0
    assert {r['label'] for r in csv.DictReader(open(tmp_path/'all_ok'/'predictions.csv'))} == {'OK'}


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
    assert '- **images_used**: 18 training, 6 validation (6 training images held out, 20% of each class)' in md   # never test
    assert main(['evaluate', ckpt, '--data', str(tiny_classes)]) == 0
    assert 'report: ' in capsys.readouterr().out
    imgs = sorted((tiny_classes/'test'/classes[0]).glob('*.png'))
    assert main(['predict', ckpt, *map(str, imgs), '--out', str(tmp_path/'pred')]) == 0
    doc = json.loads((tmp_path/'pred'/'scores.json').read_text())
    assert doc['classes'] == classes and len(doc['images']) == len(imgs)
    for r in doc['images']:
        assert r['predicted'] in classes and abs(sum(r['probabilities'].values()) - 1) < 1e-5


# --- model selection never on test ---------------------------------------------------------------------------------

def _printed(out, key): return out.split(f'{key}: ')[-1].split('\n')[0].strip()


def test_dataset_without_validation_never_selects_on_test(isolated, tmp_path):
    "MVTec-AD's layout (train and test only): validation images are held-out train/good images, never trained on, never test."
    import torch
    from ssm_defects.cli import anomaly_data, train_model
    data = copy_tiny(tmp_path/'mvtec', n_train=10, splits=('test',))
    dls = anomaly_data(data, size=TINY['size'], bs=TINY['bs'])
    train, valid = ([r['path'] for r in dl.dataset.ds.records] for dl in (dls.train, dls.valid))
    assert valid and all(p.parent == data/'brick'/'train'/'good' for p in valid)          # none from test/
    assert not set(valid) & set(train) and len(valid) + len(train) == 10                 # held out = not trained on
    assert dls.valid_source == '2 good training images held out, 1 painted with synthetic defects'
    out = train_model('mambaad', data, size=TINY['size'], epochs=2, bs=TINY['bs'], preset=TINY['preset'], quiet=True)
    m = torch.load(out["checkpoint"], weights_only=True)['metrics']
    assert m['selected_on'] == dls.valid_source and m['selected_by'] == 'mAD'
    md = out['report'].read_text()
    assert f"- **selected_on**: {dls.valid_source}" in md and '- **evaluated_on**: test split (4 images, 2 defective)' in md


@pytest.mark.parametrize('test_split', ['absent', 'good images only'])
def test_good_images_only_dataset_trains_writes_checkpoint_and_report(isolated, tmp_path, capsys, test_split):
    "A production line's folder (train/good, and maybe test/good): training selects on painted held-out images; the report gives image scores."
    data = copy_tiny(tmp_path/'line', n_train=10, defects=(), splits=('test',) if test_split != 'absent' else ())
    code = main(['train', 'mambaad', '--data', str(data), '--size', str(TINY['size']), '--epochs', '1', '--bs', str(TINY['bs']),
                 '--preset', TINY['preset']])
    out = capsys.readouterr()
    assert code == 0, out.err
    ckpt, report = _printed(out.out, 'checkpoint'), _printed(out.out, 'report')
    assert os.path.isfile(ckpt)
    md = open(report).read()
    assert '## Image scores of good images' in md and 'AUROC' not in md and '| all | 2 |' in md
    where = 'test split' if test_split != 'absent' else 'held-out good training images, unpainted'
    assert f'- **evaluated_on**: {where} (2 images, 0 defective)' in md
    assert '- **selected_on**: 2 good training images held out, 1 painted with synthetic defects' in md
    from ssm_defects.training import load_checkpoint
    decision = load_checkpoint(ckpt).checkpoint_metrics['decision']      # calibrated on the held-out images, one painted
    assert (decision['n_good'], decision['n_defective']) == (1, 1) and decision['calibrated_on'].startswith('2 good training images')


# --- presets, encoders, metrics, model names -----------------------------------------------------------------------

def test_paper_preset_offline_without_weights_says_how_to_get_them(isolated, tiny_data, capsys, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)        # no network, fast
    assert main(['train', 'mambaad', '--preset', 'paper', '--data', str(tiny_data), '--epochs', '1', '--bs', str(TINY['bs'])]) == 2
    err = capsys.readouterr().err
    assert '--weights' in err and 'resnet34.bt_in1k' in err and 'Traceback' not in err


def test_backbone_weights_file_and_ader_metrics(isolated, tiny_data, tmp_path, capsys):
    "`--backbone resnet18 --weights FILE` trains on the file's encoder weights; `--metrics ader` is named in the report."
    import timm, torch
    weights = tmp_path/'resnet18.pth'; torch.save(timm.create_model('resnet18').state_dict(), weights)
    assert main(['train', 'mambaad', '--data', str(tiny_data), '--size', str(TINY['size']), '--epochs', '1', '--bs', str(TINY['bs']),
                 '--preset', TINY['preset'], '--backbone', 'resnet18', '--weights', str(weights), '--metrics', 'ader']) == 0
    out = capsys.readouterr().out
    ckpt = torch.load(_printed(out, "checkpoint"), weights_only=True)
    assert ckpt['config']['backbone'] == 'resnet18' and ckpt['config']['weights'] == str(weights)
    md = open(_printed(out, 'report')).read()
    assert "- **metrics**: ader: " in md and f"- **weights**: {weights}" in md
    assert main(['evaluate', _printed(out, 'checkpoint'), '--data', str(tiny_data)]) == 0
    assert '- **metrics**: official: ' in open(_printed(capsys.readouterr().out, 'report')).read()


def test_baselines_are_built_and_trained_through_their_module(isolated, tiny_data, monkeypatch):
    "knn and convdecoder: `ssm_defects.baselines.<name>_model(dls, **encoder options)` and `<name>_learner(dls, model, ...)`."
    import types
    from ssm_defects import mambaad
    from ssm_defects.cli import train_model, _model_name
    calls = []
    def make(name):
        def build(dls, **kwargs):
            calls.append((name, kwargs)); return mambaad.default_model(dls, depths=(2, 2, 2, 2), directions=2, d_state=4)
        return build
    fake = types.ModuleType('ssm_defects.baselines')
    fake.knn_model, fake.convdecoder_model = make('knn'), make('convdecoder')
    fake.knn_learner = fake.convdecoder_learner = mambaad.mambaad_learner
    monkeypatch.setitem(sys.modules, 'ssm_defects.baselines', fake)
    out = train_model('convdecoder', tiny_data, size=TINY['size'], epochs=1, bs=TINY['bs'], backbone='tf_efficientnet_lite0', quiet=True)
    assert calls == [('convdecoder', dict(backbone='tf_efficientnet_lite0', pretrained=True))] and out['report'].is_file()
    assert _model_name('ssm_defects.baselines:ConvDecoder') == 'convdecoder' and _model_name('ssm_defects.baselines:PatchKNN') == 'knn'


@pytest.mark.skipif(importlib.util.find_spec('ssm_defects.baselines') is None, reason='ssm_defects.baselines not written yet')
@pytest.mark.parametrize('name', ['knn', 'convdecoder'])
def test_baseline_train_evaluate(name, isolated, tiny_data, capsys):
    assert main(['train', name, '--data', str(tiny_data), '--size', str(TINY['size']), '--epochs', '1', '--bs', str(TINY['bs'])]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert '| mean |' in open(_printed(out, 'report')).read()
    assert main(['evaluate', _printed(out, 'checkpoint'), '--data', str(tiny_data)]) == 0


def test_non_square_size_and_tiled_prediction(isolated, tiny_data, tmp_path, capsys):
    "`--size H W` trains and predicts without squashing to a square; `predict --tile` reads every image at its own size."
    from ssm_defects.training import load_checkpoint
    code = main(['train', 'knn', '--data', str(tiny_data), '--size', '64', '96', '--bs', str(TINY['bs'])])
    out = capsys.readouterr()
    assert code == 0, out.err
    ckpt = _printed(out.out, 'checkpoint')
    assert tuple(load_checkpoint(ckpt).checkpoint_metrics['size']) == (64, 96)
    folder = tiny_data/'brick'/'test'
    assert main(['predict', ckpt, str(folder), '--out', str(tmp_path/'refused'), '--tile']) == 2    # decision made on resized images
    assert 'calibrate CHECKPOINT --tile' in capsys.readouterr().err
    for extra, name in (([], 'resized'), (['--tile'], 'tiled')):
        if extra:                                                    # the decision again, on tiles, for `predict --tile`
            assert main(['calibrate', ckpt, '--data', str(tiny_data), '--tile', '--bs', '4']) == 0, capsys.readouterr().err
            assert "tiling {'tile'" in capsys.readouterr().out
        assert main(['predict', ckpt, str(folder), '--out', str(tmp_path/name), *extra]) == 0, capsys.readouterr().err
        doc = json.loads((tmp_path/name/'predictions.json').read_text())
        assert doc['tile'] == bool(extra) and doc['counts']['images'] == len(list(folder.rglob('*.png')))
    assert main(['train', 'knn', '--data', str(tiny_data), '--size', '64', '96', '128']) == 2
    assert 'give one side S or two sides H W' in capsys.readouterr().err


def test_defective_images_without_masks_count_for_image_metrics_only(isolated, tiny_data, capsys):
    "A line's folder rarely has masks: a defective image without one is scored, left out of the pixel metrics, and the report says so."
    (tiny_data/'brick'/'ground_truth'/'crack'/'000_mask.png').unlink()
    (tiny_data/'brick'/'validation_ground_truth'/'hole'/'000_mask.png').unlink()
    code = main(['train', 'knn', '--data', str(tiny_data), '--size', str(TINY['size']), '--bs', str(TINY['bs'])])
    out = capsys.readouterr()
    assert code == 0, out.err
    md = open(_printed(out.out, 'report')).read()
    assert '- **without_masks**: 1 defective images without masks: counted in the image metrics, left out of the pixel metrics' in md
    metrics = open(os.path.join(os.path.dirname(_printed(out.out, 'report')), 'metrics.csv')).read().splitlines()
    header, mean = metrics[0].split(','), dict(zip(metrics[0].split(','), metrics[-1].split(',')))
    assert 'pixel_images' in header and float(mean['images']) - float(mean['pixel_images']) == 1


def test_good_only_line_calibrates_by_false_reject_rate_and_predicts_a_mixed_folder(isolated, tmp_path, capsys):
    "A folder of good parts only: the threshold comes from a false-reject budget; predict on good and defective parts writes OK/NG, masks and boxes."
    data = copy_tiny(tmp_path/'line', n_train=10, defects=(), splits=())
    code = main(['train', 'knn', '--data', str(data), '--size', str(TINY['size']), '--bs', str(TINY['bs']), '--max-false-reject', '0.5'])
    out = capsys.readouterr()
    assert code == 0, out.err
    from ssm_defects.training import load_checkpoint
    decision = load_checkpoint(_printed(out.out, 'checkpoint')).checkpoint_metrics['decision']
    assert decision['max_false_reject'] == 0.5 and 'false-reject rate <= 0.5' in decision['image_rule']
    mixed = tmp_path/'mixed'
    copy_tiny(mixed, n_train=0, n_good=2, defects=('crack', 'hole'), splits=('test',))
    assert main(['predict', _printed(out.out, 'checkpoint'), str(mixed/'brick'/'test'), '--out', str(tmp_path/'v')]) == 0
    rows = list(csv.DictReader(open(tmp_path/'v'/'predictions.csv')))
    assert len(rows) == 4 and all((float(r['score']) >= decision['image_threshold']) == (r['label'] == 'NG') for r in rows)
    for r in rows:
        boxes = json.loads(r['boxes'])
        assert (r['label'] == 'OK') <= (boxes == [] and r['mask'] == '')                   # OK parts: no mask, no box
        assert all(x0 < x1 and y0 < y1 for x0, y0, x1, y1 in boxes) and (int(r['area_px']) > 0) == bool(boxes)
