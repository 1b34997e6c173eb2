"""The torch-free inferencer (`ssm_defects.inferencer`): runs in a process where importing torch fails, and writes the
same predictions as the PyTorch path (`ssm_defects.inspection.predict_to_folder`); its numpy parts equal the library's."""
import csv, json, subprocess, sys, textwrap
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from cli_fixtures import trained

pytest.importorskip('onnxruntime')
from ssm_defects.inferencer import Inferencer, predict_to_folder, read_rgb, resized
from ssm_defects.verdicts import region_boxes, CSV_COLUMNS


@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    from ssm_defects.cli import load_anomaly_model
    from ssm_defects.deploy import export_onnx
    return export_onnx(load_anomaly_model(trained['checkpoint']), tmp_path_factory.mktemp('onnx')/'m.onnx', 64)


def _images(trained): return sorted(str(p) for p in Path(trained['data']).rglob('test/*/*.png'))


def test_runs_without_torch(trained, exported, tmp_path):
    (tmp_path/'broken.png').write_bytes(b'not an image')
    code = textwrap.dedent(f"""
        import sys
        sys.modules['torch'] = None                      # `import torch` raises ImportError from here on
        from ssm_defects.inferencer import Inferencer, predict_to_folder
        out = predict_to_folder(Inferencer({str(exported)!r}), {_images(trained) + [str(tmp_path/'broken.png')]!r}, {str(tmp_path/'out')!r})
        assert sys.modules['torch'] is None and not any(m.startswith(('torch.', 'fastai', 'scipy')) for m in sys.modules)
        print(out)""")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path/'out'/'predictions.json').read_text())
    assert doc['counts']['images'] == len(_images(trained)) and doc['counts']['skipped'] == 1 and (tmp_path/'out'/'predictions.csv').is_file()


def _rows(path):
    with open(path, newline='') as f: return list(csv.DictReader(f))


@pytest.mark.parametrize('threshold', [None, 'median'])
def test_same_predictions_as_pytorch(trained, exported, tmp_path, threshold):
    from ssm_defects.cli import load_anomaly_model
    from ssm_defects.inspection import predict_to_folder as predict_torch, stored_decision
    model = load_anomaly_model(trained['checkpoint'])
    images, decision = _images(trained), stored_decision(model)
    if threshold == 'median':                                                  # an override between two scores
        threshold = float(np.median(Inferencer(exported).run(np.stack([resized(read_rgb(p), 64) for p in images]))['score']))
    ref = json.loads(predict_torch(model, images, tmp_path/'pt', 64, decision, bs=3, threshold=threshold, progress=False).read_text())
    got = json.loads(predict_to_folder(Inferencer(exported), images, tmp_path/'ort', bs=3, threshold=threshold).read_text())
    assert set(got) == set(ref) and got['counts'] == ref['counts'] and got['decision'] == ref['decision']
    assert len(got['records']) == len(ref['records']) > 0
    for g, r in zip(got['records'], ref['records']):
        assert set(g) == set(r) == set(CSV_COLUMNS)
        for k in ('path', 'label', 'threshold', 'heatmap', 'mask', 'boxes', 'area_px'): assert g[k] == r[k], (k, g, r)
        assert g['score'] == pytest.approx(r['score'], rel=1e-5)                  # float32 rounding, amplified below by 1/(max − min)
        assert abs(g['normalized_score'] - r['normalized_score']) <= abs(g['score'] - r['score']) / (decision['score_max'] - decision['score_min']) + 1e-6
    g_csv, r_csv = _rows(tmp_path/'ort'/'predictions.csv'), _rows(tmp_path/'pt'/'predictions.csv')
    assert [list(r) for r in g_csv] == [list(r) for r in r_csv]                  # same columns, same order
    assert [(r['path'], r['label'], r['boxes'], r['mask']) for r in g_csv] == [(r['path'], r['label'], r['boxes'], r['mask']) for r in r_csv]


def test_numpy_parts_equal_the_library():
    import torch
    from scipy import ndimage
    from ssm_defects import inspection, inferencer, verdicts
    from ssm_defects.data import image_tensor
    rng = np.random.default_rng(0)
    for p in (0.05, 0.3, 0.6):                                                   # sparse to crowded masks
        for shape in ((17, 23), (64, 64)):
            mask = rng.random(shape) < p
            regions, _ = ndimage.label(mask, structure=np.ones((3, 3), int))
            assert region_boxes(mask) == [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndimage.find_objects(regions)]
    assert region_boxes(np.zeros((5, 5), bool)) == [] and region_boxes(np.ones((3, 4), bool)) == [(0, 0, 4, 3)]
    for name in ('image_paths', 'at_image_size', 'verdict', 'normalize_score', '_unique_stems', '_write_outputs', '_write_csv'):
        assert getattr(inferencer, name) is getattr(inspection, name) is getattr(verdicts, name), name   # one implementation
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    assert torch.equal(torch.from_numpy(resized(image, 64)).permute(2, 0, 1) / 255., image_tensor(image, 64))


def test_verdicts_needs_no_torch_scipy_or_pandas():
    code = ("import sys\nfor m in ('torch', 'scipy', 'pandas', 'fastai'): sys.modules[m] = None\n"
            "import ssm_defects.verdicts, ssm_defects.inferencer")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_read_rgb_equals_read_image(tmp_path):
    from ssm_defects.data import read_image
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 65536, (9, 11), dtype=np.uint16)).save(tmp_path/'g16.png')
    Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8)).save(tmp_path/'g8.png')
    Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(tmp_path/'rgb.jpg')
    for f in ('g16.png', 'g8.png', 'rgb.jpg'): assert (read_rgb(tmp_path/f) == read_image(tmp_path/f)).all()
    (tmp_path/'bad.png').write_bytes(b'not an image')
    with pytest.raises(ValueError, match='not a readable image'): read_rgb(tmp_path/'bad.png')


def test_bad_inputs(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match='ssm-defects export'): Inferencer(tmp_path/'none.onnx')
    with pytest.raises(ValueError, match="engine='x'"): Inferencer(exported, engine='x')
    with pytest.raises(ValueError, match=r'\(B, 64, 64, 3\)'): Inferencer(exported).run(np.zeros((2, 3, 64, 64), np.uint8))


def test_classifier_same_scores_as_pytorch(trained, tmp_path):
    import torch
    from ssm_defects.cli import predict_classes
    from ssm_defects.deploy import export_onnx
    from ssm_defects.memorymamba import MemoryMamba
    from ssm_defects.training import save_checkpoint
    torch.manual_seed(0)
    model = MemoryMamba(3, 'tiny', classes=['crack', 'hole', 'ok']).eval()
    ckpt = save_checkpoint(model, tmp_path/'mm.pth', dict(size=64))
    images = _images(trained)
    ref = json.loads(predict_classes(ckpt, images, tmp_path/'pt').read_text())
    got = json.loads(predict_to_folder(Inferencer(export_onnx(model, tmp_path/'mm.onnx', 64)), images, tmp_path/'ort').read_text())
    assert set(got) == set(ref) and (got['input_size'], got['classes']) == (ref['input_size'], ref['classes'])
    for g, r in zip(got['images'], ref['images'], strict=True):
        assert (g['image'], g['predicted'], list(g['probabilities'])) == (r['image'], r['predicted'], list(r['probabilities']))
        assert np.allclose(list(g['probabilities'].values()), list(r['probabilities'].values()), atol=1e-5)


def test_non_square_model_same_predictions_as_pytorch(tmp_path):
    "A model trained at (64, 96): each image resized to 96 x 64 px as `image_tensor` does, the same records as the PyTorch path."
    from wide_fixtures import wide_knn
    from ssm_defects.cli import load_anomaly_model
    from ssm_defects.deploy import export_onnx
    from ssm_defects.inspection import predict_to_folder as predict_torch, stored_decision
    ckpt, data = wide_knn(tmp_path)
    model = load_anomaly_model(ckpt)
    images, decision = sorted(str(p) for p in data.rglob('test/*/*.png')), stored_decision(model)
    onnx = Inferencer(export_onnx(model, tmp_path/'w.onnx', (64, 96)))
    ref = json.loads(predict_torch(model, images, tmp_path/'pt', (64, 96), decision, bs=3, progress=False).read_text())
    got = json.loads(predict_to_folder(onnx, images, tmp_path/'ort', bs=3).read_text())
    assert got['size'] == ref['size'] == [64, 96] and got['counts'] == ref['counts'] and got['decision'] == ref['decision']
    for g, r in zip(got['records'], ref['records'], strict=True):
        for k in ('path', 'label', 'threshold', 'heatmap', 'mask', 'boxes', 'area_px'): assert g[k] == r[k], (k, g, r)
        assert g['score'] == pytest.approx(r['score'], rel=1e-5)
    assert [r['label'] for r in onnx.predict([read_rgb(p) for p in images])] == [r['label'] for r in ref['records']]
