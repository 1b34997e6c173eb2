"""Every bad input the `ssm-defects` command line can receive gets a one-line error naming the problem and the fix (exit
code 2) or the documented behaviour; nothing earlier is lost; a run can be resumed; the same seed gives the same metrics."""
import json
import numpy as np
import pytest
import torch
from PIL import Image
from fastai.callback.core import Callback
from cli_fixtures import Interrupt, isolated, tiny_data, trained, copy_tiny, TINY
from ssm_defects.cli import main, train_model, load_image, RunState


def run(capsys, *argv):
    "Run the CLI in-process: (exit code, stderr)."
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def fails_with(capsys, *argv, contains):
    code, err = run(capsys, *argv)
    assert code == 2, err
    assert contains in err, err
    assert 'Traceback' not in err
    return err


def png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return path


# --- data folders -------------------------------------------------------------------------------------------------

def test_missing_data_folder(isolated, capsys):
    fails_with(capsys, 'train', 'mambaad', '--data', isolated/'nope', contains='does not exist')


def test_empty_data_folder(isolated, capsys):
    (isolated/'empty').mkdir()
    fails_with(capsys, 'train', 'mambaad', '--data', isolated/'empty', contains='is empty')


def test_data_folder_without_categories(isolated, capsys):
    (isolated/'flat').mkdir(); png(isolated/'flat'/'a.png', np.zeros((64, 64), np.uint8))
    fails_with(capsys, 'train', 'mambaad', '--data', isolated/'flat', contains='holds no category folders')


def test_category_that_does_not_exist(isolated, tiny_data, capsys):
    fails_with(capsys, 'train', 'mambaad', '--data', tiny_data, '--categories', 'tiles', contains="category 'tiles' not found")


# --- image files ---------------------------------------------------------------------------------------------------

def test_corrupt_training_image(isolated, tiny_data, capsys):
    (tiny_data/'brick'/'train'/'good'/'001.png').write_bytes(b'\x89PNG\r\n\x1a\n broken')
    fails_with(capsys, 'train', 'mambaad', '--data', tiny_data, contains='001.png is not a readable image')


def test_corrupt_image_to_predict(trained, tmp_path, capsys):
    bad = tmp_path/'bad.png'; bad.write_bytes(b'not an image at all')
    fails_with(capsys, 'predict', trained['checkpoint'], bad, '--out', tmp_path/'out', contains='bad.png is not a readable image')
    assert not (tmp_path/'out').exists()                                     # nothing written for a failed batch


def test_mask_image_size_mismatch(isolated, tiny_data, capsys):
    m = tiny_data/'brick'/'validation_ground_truth'/'crack'/'000_mask.png'
    png(m, np.zeros((64, 100), np.uint8))
    fails_with(capsys, 'train', 'mambaad', '--data', tiny_data, contains='but its image')


def test_mask_without_image(isolated, tiny_data, capsys):
    (tiny_data/'brick'/'validation'/'hole'/'000.png').unlink()
    fails_with(capsys, 'train', 'mambaad', '--data', tiny_data, contains='has no image')


def test_image_smaller_than_model_minimum(trained, tmp_path, capsys):
    small = png(tmp_path/'small.png', np.zeros((48, 200, 3), np.uint8))
    fails_with(capsys, 'predict', trained['checkpoint'], small, '--out', tmp_path/'out', contains='200x48 px, smaller than')


def test_training_image_smaller_than_model_minimum(isolated, tiny_data, capsys):
    png(tiny_data/'brick'/'train'/'good'/'000.png', np.zeros((40, 40), np.uint8))
    fails_with(capsys, 'train', 'mambaad', '--data', tiny_data, contains='40x40 px, smaller than')


def test_size_not_a_multiple_of_32_or_too_small(isolated, tiny_data, capsys):
    fails_with(capsys, 'train', 'mambaad', '--data', tiny_data, '--size', 100, contains='multiple of 32')
    fails_with(capsys, 'train', 'mambaad', '--data', tiny_data, '--size', 32, contains='at least 64')


def test_non_rgb_images_predict_like_their_rgb_version(trained, tmp_path):
    "Grayscale, RGBA, palette and 16-bit files are converted as documented in `load_image` and score like their RGB copy."
    rgb = np.asarray(Image.open(trained['data']/'brick'/'test'/'crack'/'000.png').convert('RGB'))
    gray = rgb[..., 0]
    files = dict(rgb=png(tmp_path/'rgb.png', rgb), gray=png(tmp_path/'gray.png', gray),
                 rgba=png(tmp_path/'rgba.png', np.dstack([rgb, np.full(gray.shape, 128, np.uint8)]), 'RGBA'),
                 palette=tmp_path/'palette.png', gray16=png(tmp_path/'gray16.png', gray.astype(np.uint16) * 257))
    Image.fromarray(gray).convert('P').save(files['palette'])
    assert Image.open(files['gray16']).mode == 'I;16'
    for f in files.values(): np.testing.assert_array_equal(load_image(f), rgb)       # all become the same RGB image
    assert main(['predict', str(trained['checkpoint']), *map(str, files.values()), '--out', str(tmp_path/'out')]) == 0
    scores = [r['score'] for r in json.loads((tmp_path/'out'/'predictions.json').read_text())['records']]
    np.testing.assert_allclose(scores, scores[0], rtol=1e-5)


def test_16bit_training_data_is_read_like_its_8bit_copy(isolated, tiny_data, capsys):
    "A 16-bit grayscale training image (v·257) gives the loader the same tensor as its 8-bit copy, and training runs."
    from ssm_defects.data import anomaly_dls
    load = lambda: anomaly_dls(tiny_data, size=64, bs=4, valid_split='validation', shuffle=False).train_ds[2][0]
    f = tiny_data/'brick'/'train'/'good'/'002.png'
    gray = np.asarray(Image.open(f).convert('L'))
    png(f, gray)                                                       # the 8-bit grayscale image
    eight = load()
    png(f, gray.astype(np.uint16) * 257)                               # the same image in 16 bit
    assert Image.open(f).mode == 'I;16'
    assert (np.asarray(Image.open(f).convert('RGB')) == 255).mean() > 0.9   # what Pillow alone reads: clipped white
    torch.testing.assert_close(load(), eight)
    code, err = run(capsys, 'train', 'mambaad', '--data', tiny_data, '--size', 64, '--epochs', 1, '--bs', 4)
    assert code == 0, err


def test_float_image_refused(trained, tmp_path, capsys):
    f = tmp_path/'float.tif'; Image.fromarray(np.zeros((64, 64), np.float32), 'F').save(f)
    fails_with(capsys, 'predict', trained['checkpoint'], f, '--out', tmp_path/'out', contains='floating-point')


# --- checkpoints -------------------------------------------------------------------------------------------------

def test_checkpoint_from_another_model(trained, tmp_path, capsys):
    "A classifier checkpoint exports as a classifier; given to evaluate on anomaly data, or with a config that does not fit the installed class, it gets clear errors."
    from ssm_defects.memorymamba import MemoryMamba
    from ssm_defects.training import save_checkpoint
    classifier = save_checkpoint(MemoryMamba(6, 'tiny', classes=list('abcdef')), tmp_path/'memorymamba.pth', dict(size=64))
    assert main(['export', str(classifier), '--out', str(tmp_path/'m.onnx')]) == 0             # MemoryMamba exports too (chapter 14)
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(tmp_path/'m.onnx')).metadata_props}
    assert meta['kind'] == 'classification' and json.loads(meta['classes']) == list('abcdef')
    fails_with(capsys, 'evaluate', classifier, '--data', trained['data'], contains="are not among the checkpoint's classes")
    broken = tmp_path/'broken.pth'
    torch.save(dict(model='ssm_defects.memorymamba:MemoryMamba', config={'no_such_option': 1}, state_dict={}, metrics=None), broken)
    for cmd in (['evaluate', broken, '--data', trained['data']], ['predict', broken, trained['data']/'brick'/'test'/'good'/'000.png', '--out', tmp_path/'o']):
        fails_with(capsys, *cmd, contains='cannot be rebuilt from the saved config')


def test_checkpoint_that_is_a_bare_state_dict_or_not_torch(trained, tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path/'sd.pth')
    fails_with(capsys, 'evaluate', tmp_path/'sd.pth', '--data', trained['data'], contains='not an ssm_defects checkpoint')
    (tmp_path/'text.pth').write_text('hello')
    fails_with(capsys, 'evaluate', tmp_path/'text.pth', '--data', trained['data'], contains='not a PyTorch checkpoint')
    fails_with(capsys, 'evaluate', tmp_path/'missing.pth', '--data', trained['data'], contains='no checkpoint at')


def test_resume_state_given_where_a_checkpoint_is_needed_and_vice_versa(trained, isolated, capsys):
    fails_with(capsys, 'evaluate', trained['last'], '--data', trained['data'], contains='is a resume state')
    fails_with(capsys, 'train', 'mambaad', '--resume', trained['checkpoint'], contains='not a resume state')
    fails_with(capsys, 'train', 'pyramid', '--resume', trained['last'], contains="resume state of 'mambaad', not of 'pyramid'")


# --- interruption, nothing lost, determinism ---------------------------------------------------------------------

def test_interrupted_training_resumes_from_last_checkpoint(isolated, tiny_data):
    kw = dict(size=TINY['size'], bs=TINY['bs'], preset=TINY['preset'], quiet=True)
    with pytest.raises(KeyboardInterrupt):
        train_model('mambaad', tiny_data, epochs=2, cbs=[Interrupt(0)], run='killed', **kw)
    last, best = isolated/'checkpoints'/'killed-last.pth', isolated/'checkpoints'/'killed.pth'
    state = torch.load(last, weights_only=True)
    assert state['epoch'] == 0 and len(state['history']) == 1 and best.is_file()
    out = train_model('mambaad', epochs=2, resume=last, **kw)
    assert out['checkpoint'] == best and [h['epoch'] for h in out['history']] == [0, 1]
    assert out['history'][0] == state['history'][0]                          # epoch 0 kept, not redone
    assert torch.load(last, weights_only=True)['epoch'] == 1
    assert out['report'].is_file() and 'training.png' in out['report'].read_text()


def test_same_seed_same_metrics_and_no_checkpoint_or_report_lost(isolated, tiny_data):
    kw = dict(size=TINY['size'], epochs=1, bs=TINY['bs'], preset=TINY['preset'], seed=3, quiet=True, run='same')
    a = train_model('mambaad', tiny_data, **kw)
    first_ckpt, first_report = a['checkpoint'].read_bytes(), a['report'].read_text()
    b = train_model('mambaad', tiny_data, **kw)                           # same run name on purpose
    assert b['checkpoint'] != a['checkpoint'] and b['report'].parent != a['report'].parent
    assert a['checkpoint'].read_bytes() == first_ckpt and a['report'].read_text() == first_report   # untouched
    assert a['history'] == b['history']
    np.testing.assert_array_equal(a['metrics'].to_numpy(), b['metrics'].to_numpy())


def test_outputs_are_never_overwritten(trained, tmp_path, capsys):
    img = trained['data']/'brick'/'test'/'good'/'000.png'
    assert main(['predict', str(trained['checkpoint']), str(img), '--out', str(tmp_path/'out')]) == 0
    before = (tmp_path/'out'/'predictions.json').read_text()
    fails_with(capsys, 'predict', trained['checkpoint'], img, '--out', tmp_path/'out', contains='exists: choose another')
    assert (tmp_path/'out'/'predictions.json').read_text() == before
    (tmp_path/'m.onnx').write_text('earlier export')
    fails_with(capsys, 'export', trained['checkpoint'], '--out', tmp_path/'m.onnx', contains='exists')
    assert (tmp_path/'m.onnx').read_text() == 'earlier export'
