"""What a training run reads and which data it refuses (issue #17 item 7): images in every format Pillow decodes are
used and counted, other files are listed with their reason; MemoryMamba's `--categories` chooses classes, and data a
classifier cannot learn from is refused with a message that says what to do."""
import json, shutil
from pathlib import Path
import pytest, torch
from PIL import Image
from cli_fixtures import isolated, copy_tiny, TINY
from ssm_defects.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def fails_with(capsys, *argv, contains):
    code, out = run(capsys, *argv)
    assert code == 2, out.err
    assert contains in out.err and 'Traceback' not in out.err, out.err
    return out.err


def test_webp_images_are_used_and_skipped_files_reported(isolated, tmp_path, capsys):
    data = copy_tiny(tmp_path/'tiny', n_train=4)
    good = data/'brick'/'train'/'good'
    Image.open(good/'000.png').save(good/'000.webp', lossless=True); (good/'000.png').unlink()
    (good/'notes.txt').write_text('lot 7'); (good/'IMG_0001.heic').write_bytes(b'not decodable here')
    code, out = run(capsys, 'train', 'knn', '--data', data, '--size', TINY['size'], '--bs', TINY['bs'])
    assert code == 0, out.err
    assert 'images used: 4 training, 4 validation (validation folder)' in out.out               # the WebP is one of the 4
    md = Path(out.out.split('report: ')[-1].strip()).read_text()
    assert '- **images_used**: 4 training, 4 validation (validation folder)' in md
    assert ('- **files_skipped**: 2 files: not an image Pillow reads (convert it to PNG if it is one, or move it out of '
            'the data folder): brick/train/good/IMG_0001.heic, brick/train/good/notes.txt') in md
    (data/'brick'/'test'/'good'/'Thumbs.db').write_bytes(b'\0')                       # a stray file in the evaluated split
    code, out = run(capsys, 'evaluate', out.out.split('checkpoint: ')[-1].split('\n')[0], '--data', data)
    assert code == 0, out.err
    md = Path(out.out.split('report: ')[-1].strip()).read_text()
    assert '- **skipped_in_evaluation**: 1 file: not an image Pillow reads' in md and 'brick/test/good/Thumbs.db' in md


@pytest.fixture
def classes(tmp_path):
    "Class folders without split folders, 5 images per class (a seeded 20 % test split: 1 to test, 4 to train)."
    from ssm_defects.data import make_surface_defects
    src, dst = make_surface_defects(), tmp_path/'defects'
    for c in ('crazing', 'patches', 'scratches'):
        (dst/c).mkdir(parents=True)
        for f in sorted((src/'train'/c).glob('*.png'))[:5]: shutil.copy(f, dst/c)
    return dst


def test_memorymamba_categories_train_a_subset(isolated, classes, capsys):
    code, out = run(capsys, 'train', 'memorymamba', '--data', classes, '--categories', 'scratches', 'crazing',
                    '--epochs', 1, '--bs', 4, '--size', 64)
    assert code == 0, out.err
    ckpt = out.out.split('checkpoint: ')[-1].split('\n')[0]
    assert '-scratches+crazing-' in ckpt
    assert torch.load(ckpt, weights_only=True)['config']['classes'] == ['scratches', 'crazing']
    md = Path(out.out.split('report: ')[-1].strip()).read_text()
    assert '| scratches |' in md and '| crazing |' in md and '| patches |' not in md
    code, out = run(capsys, 'evaluate', ckpt, '--data', classes)                 # without --categories: the model's classes
    assert code == 0, out.err
    md = Path(out.out.split('report: ')[-1].strip()).read_text()
    assert '| scratches |' in md and '| patches |' not in md


def test_memorymamba_category_typo_names_the_folder_and_the_classes(isolated, classes, capsys):
    fails_with(capsys, 'train', 'memorymamba', '--data', classes, '--categories', 'scrathces', 'crazing', '--epochs', 1,
               contains=f"no class folder 'scrathces' in {classes}; classes are: crazing, patches, scratches (did you mean 'scratches'?)")


def test_memorymamba_class_with_too_few_images_names_its_count_and_the_minimum(isolated, classes, capsys):
    for f in sorted((classes/'patches').iterdir())[2:]: f.unlink()
    fails_with(capsys, 'train', 'memorymamba', '--data', classes, '--epochs', 1,
               contains=f"class 'patches' has 2 images in {classes/'patches'}, too few for a seeded 20% test split: it needs at least 3")


def test_memorymamba_refuses_a_single_class(isolated, classes, capsys):
    fails_with(capsys, 'train', 'memorymamba', '--data', classes, '--categories', 'crazing', '--epochs', 1,
               contains="a classifier needs at least 2 classes, and there is only 'crazing'")


def test_memorymamba_refuses_an_anomaly_detection_folder(isolated, tmp_path, capsys):
    data = copy_tiny(tmp_path/'mvtec')
    for folder in (data, data/'brick'):                         # the dataset, or one of its categories
        err = fails_with(capsys, 'train', 'memorymamba', '--data', folder, '--epochs', 1, contains="looks like an anomaly-detection dataset")
        assert 'mambaad' in err and 'knn' in err
