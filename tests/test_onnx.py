"ONNX export of a trained MambaAD (pure-PyTorch scan, unsmoothed maps) run by onnxruntime on CPU equals PyTorch."
import pytest
import torch
from cli_fixtures import trained
from ssm_defects.cli import main, load_anomaly_model
from ssm_defects.data import anomaly_dataset

pytest.importorskip('onnxruntime')


def test_onnx_maps_equal_pytorch_within_1e4_of_range(trained, tmp_path):
    assert main(['export', str(trained['checkpoint']), '--out', str(tmp_path/'m.onnx')]) == 0
    from ssm_defects.deploy import OnnxAnomalyModel, UnsmoothedMaps
    from ssm_defects.training import predict
    model = load_anomaly_model(trained['checkpoint'])
    ds = anomaly_dataset(trained['data'], split='test', size=64)
    x = torch.stack([ds[i]['image'] for i in range(len(ds))])                  # (N, 3, 64, 64), N > 1: dynamic batch
    with torch.no_grad(): ref = UnsmoothedMaps(model)(x)                       # the library's scan (compiled CPU kernel)
    ort = OnnxAnomalyModel(tmp_path/'m.onnx')
    got = ort.maps_unsmoothed(x)
    span = (ref.max() - ref.min()).item()
    assert span > 0 and (got - ref).abs().max().item() <= 1e-4 * span
    maps_pt, scores_pt = predict(model, x)                                     # smoothing outside the graph: same too
    maps_ort, scores_ort = ort.predict(x)
    assert (maps_ort - maps_pt).abs().max().item() <= 1e-4 * (maps_pt.max() - maps_pt.min()).item()
    torch.testing.assert_close(scores_ort, scores_pt, rtol=1e-4, atol=1e-4 * span)
