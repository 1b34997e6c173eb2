"Property tests for ssm_defects.metrics: exact metrics equal scikit-learn / brute force on arbitrary inputs."
import warnings
import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from ssm_defects.metrics import image_metrics, pixel_metrics, au_pro, classification_metrics, anomaly_report, METRIC_NAMES

scores_st = arrays(np.float64, st.integers(2, 60), elements=st.integers(-5, 5).map(float))  # many ties

@settings(max_examples=60, deadline=None)
@given(scores_st, st.data())
def test_image_metrics_equal_sklearn(scores, data):
    labels = np.array(data.draw(st.lists(st.booleans(), min_size=len(scores), max_size=len(scores))))
    if labels.all() or not labels.any(): labels[0], labels[-1] = True, False
    m = image_metrics(labels, scores)
    assert m['image_AUROC'] == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert m['image_AP'] == pytest.approx(skm.average_precision_score(labels, scores), abs=1e-12)
    f1 = max(skm.f1_score(labels, scores >= t) for t in np.unique(scores))
    assert m['image_F1max'] == pytest.approx(f1, abs=1e-12)

@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_au_pro_order_invariant_and_bounded(seed):
    rng = np.random.default_rng(seed)
    masks = rng.random((3, 10, 10)) < 0.15
    masks[0] = False; masks[1, 0, 0] = True                       # at least one region, one good image
    maps = np.round(rng.random((3, 10, 10)) * 4) / 4 + masks * rng.random()
    a = au_pro(masks, maps)
    assert 0 <= a <= 1
    assert au_pro(masks, np.exp(3 * maps)) == pytest.approx(a, abs=1e-12)
    assert pixel_metrics(masks, maps)['pixel_AUPRO'] == pytest.approx(a, abs=1e-12)

@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=80))
def test_classification_metrics_equal_sklearn(pairs):
    y_true, y_pred = map(np.array, zip(*pairs))
    c = classification_metrics(y_true, y_pred)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average='macro', zero_division=0)
    assert (c['precision'], c['recall'], c['F1']) == pytest.approx((p, r, f), abs=1e-12)
    assert c['accuracy'] == pytest.approx(skm.accuracy_score(y_true, y_pred))

@pytest.mark.parametrize('call, message', [
    (lambda: pixel_metrics(np.zeros((2, 4, 4)), np.zeros((2, 5, 5))), 'differ in shape'),
    (lambda: pixel_metrics(np.full((2, 4, 4), 255), np.zeros((2, 4, 4))), 'must be binary'),
    (lambda: pixel_metrics(np.zeros((2, 4, 4)), np.full((2, 4, 4), np.nan)), 'NaN'),
    (lambda: image_metrics([0, 1], [0.5]), 'one entry per image'),
    (lambda: au_pro(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), method='fast'), "'official' or 'ader'"),
    (lambda: au_pro(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), fpr_limit=0), 'fpr_limit'),
    (lambda: classification_metrics([0, 1], [0.3, 1.0]), 'class indices'),
])
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message): call()

def test_single_class_is_nan_with_warning():
    with pytest.warns(UserWarning, match='only one class'):
        assert np.isnan(image_metrics([1, 1], [0.1, 0.2])['image_AUROC'])

@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_unknown_masks_left_out_of_pixel_metrics_only(seed):
    "Images whose mask is −1 (unknown) count for the image metrics and for no pixel metric (official and ADer variants)."
    rng = np.random.default_rng(seed)
    n = 12; labels = np.arange(n) % 2 == 1                          # odd images defective
    masks = np.zeros((n, 10, 10)); masks[labels, 2:5, 3:7] = 1
    maps = rng.random((n, 10, 10)) + masks * rng.random()
    scores = maps.max((1, 2)); cats = np.array(['a', 'b'] * 6)[np.argsort(rng.random(n))]
    unknown = labels & (rng.random(n) < 0.5); unknown[1] = True; unknown[3] = False   # some, not all, defective images
    raw = np.where(unknown[:, None, None], -1., masks)
    for kw in ({}, dict(pro_method='ader', f1_method='ader')):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            got = anomaly_report(cats, labels, scores, raw, maps + 9 * unknown[:, None, None], **kw)   # unknown maps: anything
            sub = anomaly_report(cats[~unknown], labels[~unknown], scores[~unknown], masks[~unknown], maps[~unknown], **kw)
            full = anomaly_report(cats, labels, scores, masks, maps, **kw)
        pix = [c for c in METRIC_NAMES if c.startswith('pixel')]; img = [c for c in METRIC_NAMES if c.startswith('image')]
        assert np.allclose(got[pix].loc[sub.index].to_numpy(float), sub[pix].to_numpy(float), equal_nan=True)
        assert np.allclose(got[img].to_numpy(float), full[img].to_numpy(float), equal_nan=True)
        assert got.loc['mean', 'images'] == n and got.loc['mean', 'pixel_images'] == n - unknown.sum()

def test_thresholded_unknown_masks_are_refused():
    "`mask > 0.5` on an unknown (−1) mask makes a defective image look defect-free: refused, not silently 'all good'."
    masks = np.zeros((4, 8, 8)); masks[2, 1:3, 1:3] = 1; masks[3] = -1
    labels, maps = np.array([0, 0, 1, 1]), np.random.default_rng(0).random((4, 8, 8))
    anomaly_report(['a'] * 4, labels, maps.max((1, 2)), masks, maps)                       # raw masks: fine
    for thresholded in (masks > 0.5, (masks > 0.5).astype(np.float32), np.clip(masks, 0, 1)):
        with pytest.raises(ValueError, match=r"images \[3\] are labelled defective but their masks mark no pixel"):
            anomaly_report(['a'] * 4, labels, maps.max((1, 2)), thresholded, maps)
    with pytest.raises(ValueError, match="must fill an image's whole mask"):
        pixel_metrics(np.where(masks == 1, -1, masks), maps)
