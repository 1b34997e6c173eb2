"""One ONNX graph per model kind (`ssm_defects.deploy.export_onnx`): uint8 images in, dynamic batch; maps equal PyTorch's
within 1e-4 of the map's range, scores close, labels identical on the fixture's test split, batch 1 = batch 8."""
import json
import numpy as np
import pytest
import torch
from cli_fixtures import trained, copy_tiny
from ssm_defects.cli import main, load_anomaly_model
from ssm_defects.data import anomaly_dataset, read_image

pytest.importorskip('onnxruntime')
from ssm_defects.deploy import export_onnx, deploy_graph
from ssm_defects.inferencer import Inferencer, resized


def _images(root, size):
    "uint8 (N, h, w, 3) of a dataset's test split, resized as the models read them to `size` (a side or (h, w))."
    ds = anomaly_dataset(root, split='test', size=size)
    return np.stack([resized(read_image(r['path']), size) for r in ds.records])


def _pytorch(model, images, decision=None):
    graph, names, _ = deploy_graph(model, decision)
    with torch.no_grad(): return dict(zip(names, (t.numpy() for t in graph(torch.from_numpy(images)))))


def assert_parity(got, ref):
    "Maps within 1e-4 of their range, scores close, labels and (nearly all) mask pixels identical."
    span = float(ref['anomaly_map'].max() - ref['anomaly_map'].min())
    assert span > 0 and np.abs(got['anomaly_map'] - ref['anomaly_map']).max() <= 1e-4 * span
    np.testing.assert_allclose(got['score'], ref['score'], rtol=1e-5, atol=1e-4 * span)
    if 'label' in ref:
        np.testing.assert_array_equal(got['label'], ref['label'])
        np.testing.assert_allclose(got['normalized_score'], ref['normalized_score'], atol=1e-5)
        assert (got['mask'] != ref['mask']).mean() <= 1e-3


def test_anomaly_graph_equals_pytorch(trained, tmp_path):
    assert main(['export', str(trained['checkpoint']), '--out', str(tmp_path/'m.onnx')]) == 0
    model = load_anomaly_model(trained['checkpoint'])
    x = _images(trained['data'], 64)                                           # (N, 64, 64, 3) uint8
    ref = _pytorch(model, x)
    assert set(ref) == {'anomaly_map', 'score', 'normalized_score', 'label', 'mask'}      # the checkpoint holds a decision
    assert np.allclose(ref['score'], model.anomaly_maps(torch.from_numpy(x).permute(0, 3, 1, 2) / 255.)[1].numpy(), rtol=1e-6)
    m = Inferencer(tmp_path/'m.onnx')
    assert (m.kind, m.size, m.decision) == ('anomaly', 64, model.checkpoint_metrics['decision'])
    assert_parity(m.run(x), ref)
    one = [m.run(x[i:i + 1]) for i in range(len(x))]                            # batch 1, image by image
    eight = m.run(np.concatenate([x] * 8)[:8])                                  # batch 8
    for k in ref:
        by_one = np.concatenate([o[k] for o in one] * 8)[:8]
        np.testing.assert_allclose(eight[k], by_one, rtol=1e-5, atol=1e-6)
        assert k != 'label' or (eight[k] == by_one).all()
    with pytest.raises(ValueError, match='resize with'): m.run(np.zeros((1, 32, 32, 3), np.uint8))


def test_knn_graph_equals_pytorch(tmp_path):
    from ssm_defects.baselines import knn_model
    from ssm_defects.cli import anomaly_data
    from ssm_defects.inspection import calibrate_on
    data = copy_tiny(tmp_path/'tiny')
    dls = anomaly_data(data, size=64, bs=4)
    model = knn_model(dls, fraction=0.5).eval()
    feats = torch.cat([model(x) for x, *_ in dls.train.new(shuffle=False, drop_last=False)])  # (N, D, 8, 8)
    model.fill_memory(feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1]))
    decision = calibrate_on(model, dls.valid)
    export_onnx(model, tmp_path/'knn.onnx', 64, decision)
    x = _images(data, 64)
    m = Inferencer(tmp_path/'knn.onnx')
    assert_parity(m.run(x), _pytorch(model, x, decision))
    assert_parity(m.run(np.concatenate([x, x])[:8]), _pytorch(model, np.concatenate([x, x])[:8], decision))


def test_memorymamba_graph_equals_pytorch(tmp_path):
    from ssm_defects.memorymamba import MemoryMamba
    from ssm_defects.data import image_tensor, make_textures
    torch.manual_seed(0)
    model = MemoryMamba(3, 'tiny', classes=['crack', 'hole', 'ok']).eval()
    export_onnx(model, tmp_path/'mm.onnx', 64)
    x = _images(copy_tiny(tmp_path/'tiny'), 64)
    m = Inferencer(tmp_path/'mm.onnx')
    assert (m.kind, m.classes) == ('classification', ['crack', 'hole', 'ok'])
    got = m.run(x)
    with torch.no_grad(): ref = model(torch.stack([image_tensor(a, normalize=True) for a in x])).softmax(1).numpy()
    np.testing.assert_allclose(got['probabilities'], ref, atol=1e-5)
    np.testing.assert_array_equal(got['label'], ref.argmax(1))
    np.testing.assert_allclose(m.run(x[:1])['probabilities'], got['probabilities'][:1], atol=1e-6)


def test_openvino_equals_onnxruntime(trained, tmp_path):
    pytest.importorskip('openvino')
    model = load_anomaly_model(trained['checkpoint'])
    export_onnx(model, tmp_path/'m.onnx', 64)
    x = _images(trained['data'], 64)
    assert_parity(Inferencer(tmp_path/'m.onnx', engine='openvino').run(x), _pytorch(model, x))


@pytest.mark.parametrize('name', ['pyramid', 'convdecoder'])
def test_other_anomaly_models_export(name, tmp_path):
    "Pyramid-Mamba and the convolutional baseline share ReconstructionAD's maps: their graphs (no decision) equal PyTorch too."
    from ssm_defects.cli import build_model
    torch.manual_seed(0)
    model = build_model(name, None, preset='small' if name == 'pyramid' else None).eval()
    export_onnx(model, tmp_path/'m.onnx', 64)
    x = _images(copy_tiny(tmp_path/'tiny'), 64)
    m = Inferencer(tmp_path/'m.onnx')
    assert m.decision is None and set(m.run(x[:1])) == {'anomaly_map', 'score'}
    assert_parity(m.run(x), _pytorch(model, x))


def test_predict_with_onnx_writes_what_the_checkpoint_path_writes(trained, tmp_path, capsys):
    "`predict --onnx MODEL.onnx IMAGES` (no PyTorch in its path) gives the same labels, boxes and rows as `predict CHECKPOINT IMAGES`."
    import csv
    assert main(['export', str(trained['checkpoint']), '--out', str(tmp_path/'m.onnx')]) == 0
    folder = trained['data']/'brick'/'test'
    assert main(['predict', str(trained['checkpoint']), str(folder), '--out', str(tmp_path/'torch')]) == 0
    assert main(['predict', '--onnx', str(tmp_path/'m.onnx'), str(folder), '--out', str(tmp_path/'onnx')]) == 0
    rows = {k: list(csv.DictReader(open(tmp_path/k/'predictions.csv'))) for k in ('torch', 'onnx')}
    assert [r['path'] for r in rows['onnx']] == [r['path'] for r in rows['torch']] and rows['onnx']
    assert [r['label'] for r in rows['onnx']] == [r['label'] for r in rows['torch']]
    np.testing.assert_allclose([float(r['score']) for r in rows['onnx']], [float(r['score']) for r in rows['torch']], rtol=1e-4)
    assert main(['predict', '--onnx', str(tmp_path/'m.onnx'), str(folder), '--out', str(tmp_path/'x'), '--tile']) == 2
    assert '--size and --tile are for checkpoints' in capsys.readouterr().err


def test_benchmark_command_prints_every_engine_and_batch(trained, capsys):
    assert main(['benchmark', str(trained['checkpoint']), '--runs', '2']) == 0
    out = capsys.readouterr().out
    rows = [l.split('|')[1:3] for l in out.splitlines()[2:] if l.startswith('|')]
    engines = {(e.strip(), int(b)) for e, b in rows}
    assert {('PyTorch eager', 1), ('PyTorch eager', 8), ('ONNX Runtime', 1), ('ONNX Runtime', 8)} <= engines
    assert 'ms_per_image' in out.splitlines()[0]


@pytest.fixture(scope='module')
def wide(tmp_path_factory):
    from wide_fixtures import wide_knn
    return wide_knn(tmp_path_factory.mktemp('wide'))


def test_non_square_graph_equals_pytorch(wide, tmp_path):
    "A checkpoint trained at (H, W) = (64, 96) exports at (64, 96): maps, scores and labels of PyTorch, batch 1 = batch 8."
    from ssm_defects.cli import checkpoint_size
    from ssm_defects.data import image_tensor
    ckpt, data = wide
    model = load_anomaly_model(ckpt)
    assert checkpoint_size(model) == (64, 96)
    export_onnx(model, tmp_path/'w.onnx', checkpoint_size(model))
    m = Inferencer(tmp_path/'w.onnx')
    assert (m.size, m.shape, m.meta['input_size'], m.decision) == ((64, 96), (64, 96), '[64, 96]', model.checkpoint_metrics['decision'])
    x = _images(data, (64, 96))                                                 # (N, 64, 96, 3) uint8
    paths = [r['path'] for r in anomaly_dataset(data, split='test').records]
    assert torch.equal(torch.from_numpy(x).permute(0, 3, 1, 2) / 255., torch.stack([image_tensor(read_image(p), (64, 96)) for p in paths]))
    x8 = np.concatenate([x] * 8)[:8]
    ref = _pytorch(model, x8)
    eight = m.run(x8)
    one = {k: np.concatenate([m.run(x8[i:i + 1])[k] for i in range(8)]) for k in eight}
    for got in (eight, one):
        assert got['anomaly_map'].shape == (8, 64, 96)
        assert_parity(got, ref)
    np.testing.assert_array_equal(one['label'], eight['label'])
    with pytest.raises(ValueError, match=r'\(B, 64, 96, 3\)'): m.run(np.zeros((1, 96, 64, 3), np.uint8))


def test_non_square_mambaad_graph_equals_pytorch(tmp_path):
    from ssm_defects.cli import build_model
    torch.manual_seed(0)
    model = build_model('mambaad', None, preset='small').eval()
    export_onnx(model, tmp_path/'m.onnx', (64, 96))
    x = _images(copy_tiny(tmp_path/'tiny'), (64, 96))
    got = Inferencer(tmp_path/'m.onnx').run(x)
    assert got['anomaly_map'].shape == (len(x), 64, 96)
    assert_parity(got, _pytorch(model, x))


def test_export_and_predict_commands_on_a_non_square_checkpoint(wide, tmp_path):
    "`export` writes a (64, 96) graph of a (64, 96) checkpoint; `predict --onnx` then writes the labels `predict` writes."
    import csv
    ckpt, data = wide
    assert main(['export', str(ckpt), '--out', str(tmp_path/'w.onnx')]) == 0
    assert Inferencer(tmp_path/'w.onnx').size == (64, 96)
    folder = data/'brick'/'test'
    assert main(['predict', str(ckpt), str(folder), '--out', str(tmp_path/'torch')]) == 0
    assert main(['predict', '--onnx', str(tmp_path/'w.onnx'), str(folder), '--out', str(tmp_path/'onnx')]) == 0
    rows = {k: list(csv.DictReader(open(tmp_path/k/'predictions.csv'))) for k in ('torch', 'onnx')}
    assert [r['path'] for r in rows['onnx']] == [r['path'] for r in rows['torch']] and rows['onnx']
    assert [r['label'] for r in rows['onnx']] == [r['label'] for r in rows['torch']]
    np.testing.assert_allclose([float(r['score']) for r in rows['onnx']], [float(r['score']) for r in rows['torch']], rtol=1e-4)
    sizes = {k: json.loads((tmp_path/k/'predictions.json').read_text())['size'] for k in ('torch', 'onnx')}
    assert sizes == dict(torch=[64, 96], onnx=[64, 96])


def test_export_refuses_a_decision_calibrated_on_tiles(wide, tmp_path):
    "The graph scores whole resized images; a decision calibrated on tiles (chapter 12c) would misjudge them."
    model = load_anomaly_model(wide[0])
    tiled = dict(model.checkpoint_metrics['decision'], tiling=dict(tile=[64, 96], overlap=0.25))
    with pytest.raises(ValueError, match=r'calibrated on tiles .*calibrate CHECKPOINT` without --tile'):
        export_onnx(model, tmp_path/'t.onnx', (64, 96), tiled)
    assert not (tmp_path/'t.onnx').exists()
