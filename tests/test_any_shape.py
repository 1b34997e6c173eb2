"""Any image shape: `size=(H, W)` through data, a real model and `predict_to_folder`; tiles for large images."""
import json, warnings
import numpy as np, pytest, torch, torch.nn as nn, torch.nn.functional as F
from PIL import Image
from scipy import ndimage
from ssm_defects.data import anomaly_dls, image_shape, image_tensor, mask_tensor, make_textures, MVTecDataset
from ssm_defects.inspection import calibrate, calibrate_on, predict_to_folder, tiled_anomaly_maps, tile_starts


def test_image_shape_accepts_a_side_or_multiples_of_32():
    assert image_shape(100) == (100, 100) and image_shape((64, 96)) == (64, 96) and image_shape(None) is None
    assert image_shape(np.int64(64)) == (64, 64) and image_shape([np.int64(96), 32]) == (96, 32)
    for bad in ((64, 100), (64, 96, 3), (-32, 64), (64.0, 96.0), 'big'):
        with pytest.raises(ValueError, match=r"multiples of 32 .*e\.g\. \(256, 384\) for 1500x1000"): image_shape(bad)
    with pytest.raises(ValueError, match="multiples of 32"): MVTecDataset(make_textures(), 'brick', size=(64, 90))[0]


def wide_dataset(root, w=96, h=64, n=10):
    "An MVTec-layout category of w × h images (wider than tall), one defective test image with its mask."
    g = np.random.default_rng(0)
    for i in range(n):
        p = root/'widget'/'train'/'good'/f'{i:03d}.png'; p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((g.random((h, w, 3)) * 255).astype(np.uint8)).save(p)
    for split, d in (('test', 'good'), ('test', 'dent')):
        p = root/'widget'/split/d/'000.png'; p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((g.random((h, w, 3)) * 255).astype(np.uint8)).save(p)
    m = np.zeros((h, w), np.uint8); m[10:20, 70:90] = 255
    p = root/'widget'/'ground_truth'/'dent'/'000_mask.png'; p.parent.mkdir(parents=True); Image.fromarray(m).save(p)
    return root


def test_pair_sizes_keep_the_aspect_ratio_and_warn_when_they_do_not(tmp_path):
    root = wide_dataset(tmp_path/'wide')
    with warnings.catch_warnings():
        warnings.simplefilter('error')                                     # the images' own aspect ratio: silent
        dls = anomaly_dls(root, size=(64, 96), bs=2, valid_split='heldout')
    x, mask, label, _ = dls.one_batch()
    assert x.shape == (2, 3, 64, 96) and mask.shape == (2, 1, 64, 96)
    items = [dls.valid_ds[i] for i in range(len(dls.valid_ds))]
    assert sum(int(l) for *_, l, _ in items) == 1                          # one painted at (64, 96), masked exactly
    assert all(bool(m.sum() > 0) == bool(l) for _, m, l, _ in items)
    test = anomaly_dls(root, size=(64, 96), bs=2, valid_split='test').valid_ds
    _, m, l, _ = test[[i for i in range(len(test)) if int(test[i][2])][0]]
    assert m[0, 10:20, 70:90].all() and m.sum() == 200                     # a mask at the image's size: unchanged
    with pytest.warns(UserWarning, match=r"96x64 px \(W x H\) resized to size=64 are squashed 1\.50x; pass size=\(64, 96\)"):
        anomaly_dls(root, size=64, bs=2, valid_split='heldout')
    with pytest.warns(UserWarning, match=r"squashed 1\.50x; pass size=\(96, 128\)"):
        anomaly_dls(root, size=(96, 96), bs=2, valid_split='heldout')
    with warnings.catch_warnings():
        warnings.simplefilter('error'); anomaly_dls(root, size=(96, 128), bs=2, valid_split='heldout')   # the advice holds
    assert image_tensor(np.zeros((64, 96, 3), np.uint8), (32, 64)).shape == (3, 32, 64)
    assert mask_tensor(np.ones((64, 96), bool), (96, 32)).shape == (1, 96, 32)


def test_knn_model_trains_and_predicts_at_a_non_square_size(tmp_path):
    from ssm_defects.baselines import knn_model, knn_learner
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="squashed"):                     # the 128 px squares, deliberately squashed
        dls = anomaly_dls(categories=['brick'], size=(64, 96), bs=8, valid_split='validation')
    knn = knn_model()
    learn = knn_learner(dls, knn, checkpoint=False, metrics=False)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    maps, scores = knn.anomaly_maps(dls.one_batch()[0])
    assert maps.shape == (8, 64, 96) and scores.shape == (8,)
    decision = calibrate_on(knn, dls.valid, max_false_reject=0.1)
    doc = json.loads(predict_to_folder(knn, make_textures()/'brick'/'test'/'hole', tmp_path/'out', (64, 96), decision,
                                       progress=False).read_text())
    assert doc['counts']['images'] == 2 and doc['size'] == [64, 96]
    assert all(Image.open(tmp_path/'out'/r['heatmap']).size == (128, 128) for r in doc['records'])   # the file's size


class LocalContrast(nn.Module):
    "Stand-in detector: map = |x − its 3×3 mean| averaged over colours, at the input's resolution; score = maximum."
    def __init__(self): super().__init__(); self.unused = nn.Parameter(torch.zeros(()))
    def anomaly_maps(self, x):                                             # (B, 3, h, w)
        maps = (x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).abs().mean(1)   # (B, h, w)
        return maps, maps.flatten(1).amax(1)


def surface(seed, pit, n=512, side=8):
    "Smooth noise, (n, n, 3) uint8, with a dark side × side pit if `pit`; the pit's box (x0, y0, x1, y1)."
    g = np.random.default_rng(seed)
    s = ndimage.gaussian_filter(g.normal(size=(n, n)), 4); s = 0.5 + 0.12 * s / s.std()
    y, x = (int(v) for v in g.integers(40, n - 40, 2))
    if pit: s[y:y + side, x:x + side] -= 0.3
    return np.repeat(np.round(np.clip(s, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1), (x, y, x + side, y + side)


def test_tiles_find_a_small_defect_that_a_whole_image_resize_misses():
    detector, resized, tiled = LocalContrast(), {0: [], 1: []}, {0: [], 1: []}
    for seed in range(20, 30):                                             # other surfaces than the chapter's
        image, (x0, y0, x1, y1) = surface(seed, pit=seed % 2)
        resized[seed % 2].append(float(detector.anomaly_maps(image_tensor(image, 64)[None])[1][0]))
        amap, score = tiled_anomaly_maps(detector, image_tensor(image), 64, bs=32)
        assert amap.shape == (512, 512) and score == amap.max()
        tiled[seed % 2].append(float(score))
        if seed % 2:
            y, x = np.unravel_index(int(amap.argmax()), amap.shape)
            assert x0 - 1 <= x <= x1 and y0 - 1 <= y <= y1                # the stitched map peaks on the pit
    assert min(resized[1]) <= max(resized[0])                              # resized: no threshold separates them
    assert min(tiled[1]) > max(tiled[0])                                   # tiled: every pit above every clean surface


def test_tiles_cover_every_pixel_and_stitch_without_seams():
    for n, t, s in ((512, 64, 48), (100, 32, 24), (64, 64, 48), (65, 64, 48), (1000, 96, 72)):
        starts = tile_starts(n, t, s)
        assert starts[0] == 0 and starts[-1] == n - t and all(0 < b - a <= s for a, b in zip(starts, starts[1:]))
    class Constant(nn.Module):                                             # the same map value everywhere in every tile
        def __init__(self): super().__init__(); self.unused = nn.Parameter(torch.zeros(()))
        def anomaly_maps(self, x): return torch.full((len(x), *x.shape[2:]), 0.7), torch.full((len(x),), 0.7)
    amap, score = tiled_anomaly_maps(Constant(), torch.rand(3, 130, 75), 32)
    assert amap.shape == (130, 75) and torch.allclose(amap, torch.tensor(0.7)) and abs(float(score) - 0.7) < 1e-6


def _item(seed, pit):
    "A validation item as an `AnomalyDataset` with size=None gives it: a 512 px surface (3, H, W), its pit's box as mask, label."
    image, (x0, y0, x1, y1) = surface(seed, pit)
    mask = torch.zeros(1, *image.shape[:2]); mask[0, y0:y1, x0:x1] = pit
    return dict(image=image_tensor(image), mask=mask, label=pit)


def test_tiled_calibration_separates_tiled_images_and_a_resized_decision_is_refused(tmp_path):
    from ssm_defects.inspection import calibrate_tiled, TILE_OVERLAP
    detector = LocalContrast()
    decision = calibrate_tiled(detector, [_item(40 + i, i % 2) for i in range(10)], 64, bs=32)   # other surfaces than the chapter's
    assert decision['tiling'] == dict(tile=[64, 64], overlap=TILE_OVERLAP)
    folder = tmp_path/'line'; folder.mkdir()
    for i in range(8): Image.fromarray(surface(60 + i, i % 2)[0]).save(folder/f'{i}.png')
    doc = json.loads(predict_to_folder(detector, folder, tmp_path/'tiled', 64, decision, bs=32, progress=False, tile=True).read_text())
    scores = {pit: [r['score'] for r in doc['records'] if int(r['path'][-5]) % 2 == pit] for pit in (0, 1)}
    assert max(scores[0]) < decision['image_threshold'] <= min(scores[1])           # separates tiled good from tiled pitted
    assert [r['label'] for r in doc['records']] == ['OK', 'NG'] * 4
    resized = calibrate([float(detector.anomaly_maps(image_tensor(surface(40 + i, i % 2)[0], 64)[None])[1][0]) for i in range(10)],
                        [i % 2 for i in range(10)])                                  # the same validation surfaces, resized
    assert resized['tiling'] is None
    with pytest.raises(ValueError, match=r"calibrated on whole images resized to the model's input, but these maps are tiles "
                                         r"of 64 x 64 px .*calibrate_tiled.*--threshold"):
        predict_to_folder(detector, folder, tmp_path/'wrong', 64, resized, progress=False, tile=True)
    assert not (tmp_path/'wrong').exists()                                           # refused before any work
    with pytest.raises(ValueError, match=r"calibrated on tiles of 64 x 64 px .*, but these maps are whole images resized.*calibrate_on"):
        predict_to_folder(detector, folder, tmp_path/'wrong', 64, decision, progress=False)
    with pytest.warns(UserWarning, match=r"threshold .* is yours"):
        forced = json.loads(predict_to_folder(detector, folder, tmp_path/'forced', 64, resized, bs=32, progress=False, tile=True,
                                              threshold=decision['image_threshold']).read_text())
    assert [r['label'] for r in forced['records']] == [r['label'] for r in doc['records']]
