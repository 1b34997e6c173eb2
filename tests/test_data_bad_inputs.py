"Bad inputs to the dataset loaders of `ssm_defects.data` raise errors that name the problem and the fix."
import csv, shutil
import numpy as np
import pytest
from PIL import Image
from ssm_defects.data import (MVTecDataset, VisADataset, ClassFolderDataset, make_textures, file_hashes,
                              build_fixture, VISA_SPLIT_FILE, VISA_COLUMNS)


def png(path, size=(16, 16), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)


@pytest.fixture
def mvtec(tmp_path):
    "A tiny valid MVTec-layout dataset: one category, 2 train, 1 good + 2 defective test images with masks."
    c = tmp_path/'mv'/'widget'
    for i in range(2): png(c/'train'/'good'/f'{i:03d}.png')
    png(c/'test'/'good'/'000.png')
    for i in range(2):
        png(c/'test'/'dent'/f'{i:03d}.png'); png(c/'ground_truth'/'dent'/f'{i:03d}_mask.png', value=255)
    return tmp_path/'mv'


def test_valid_tree_loads(mvtec):
    ds = MVTecDataset(mvtec, split='test')
    assert len(ds) == 3 and ds.labels == [1, 1, 0]                   # defect folders sorted: 'dent' before 'good'
    assert ds[0]['mask'].shape == (1, 16, 16)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"): MVTecDataset(tmp_path/'nope')


def test_missing_category(mvtec):
    with pytest.raises(FileNotFoundError, match="category 'gadget' not found.*available: \\['widget'\\]"):
        MVTecDataset(mvtec, 'gadget')


def test_missing_split(mvtec):
    with pytest.raises(FileNotFoundError, match="no 'validation' split folder"): MVTecDataset(mvtec, split='validation')


def test_image_without_mask(mvtec):
    "A defective image without its mask is accepted: mask unknown (−1 everywhere), never 'all good'; the others keep theirs."
    (mvtec/'widget'/'ground_truth'/'dent'/'001_mask.png').unlink()
    ds = MVTecDataset(mvtec, split='test')
    assert [(r['mask_path'] is None, r['mask_known']) for r in ds.records] == [(False, True), (True, False), (True, True)]
    assert ds[1]['label'] == 1 and (ds[1]['mask'] == -1).all() and ds[1]['mask'].shape == (1, 16, 16)
    assert (ds[0]['mask'] == 1).all() and (ds[2]['mask'] == 0).all()
    png(mvtec/'widget'/'ground_truth'/'dent'/'001_mask.png', value=0)          # a mask that marks nothing: refused
    with pytest.raises(ValueError, match="marks no pixel: outline the defect, or delete the mask"): MVTecDataset(mvtec, split='test')[1]


def test_mask_without_image(mvtec):
    (mvtec/'widget'/'test'/'dent'/'001.png').unlink()
    with pytest.raises(FileNotFoundError, match="001_mask.png has no image"): MVTecDataset(mvtec, split='test')


def test_corrupt_file(mvtec):
    (mvtec/'widget'/'train'/'good'/'001.png').write_bytes(b'\x00garbage')
    with pytest.raises(ValueError, match="001.png is not a readable image"): MVTecDataset(mvtec)


def test_truncated_file_fails_when_read(mvtec):
    f = mvtec/'widget'/'train'/'good'/'001.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(f)
    f.write_bytes(f.read_bytes()[:200])
    ds = MVTecDataset(mvtec)
    with pytest.raises(ValueError, match="001.png is not a readable image"): ds[1]


def test_mask_size_differs(mvtec):
    png(mvtec/'widget'/'ground_truth'/'dent'/'000_mask.png', size=(8, 16), value=255)
    with pytest.raises(ValueError, match="is 8x16 but its image .* is 16x16"): MVTecDataset(mvtec, split='test')


def test_defects_in_train(mvtec):
    png(mvtec/'widget'/'train'/'dent'/'000.png')
    with pytest.raises(ValueError, match="only normal images"): MVTecDataset(mvtec)


@pytest.fixture
def visa(tmp_path):
    r = tmp_path/'visa'
    png(r/'pcb'/'Data'/'Images'/'Normal'/'0000.JPG'); png(r/'pcb'/'Data'/'Images'/'Anomaly'/'000.JPG')
    png(r/'pcb'/'Data'/'Masks'/'Anomaly'/'000.png', value=2)
    rows = [dict(object='pcb', split='train', label='normal', image='pcb/Data/Images/Normal/0000.JPG', mask=''),
            dict(object='pcb', split='test', label='anomaly', image='pcb/Data/Images/Anomaly/000.JPG',
                 mask='pcb/Data/Masks/Anomaly/000.png')]
    (r/'split_csv').mkdir()
    with open(r/VISA_SPLIT_FILE, 'w', newline='') as f:
        w = csv.DictWriter(f, VISA_COLUMNS); w.writeheader(); w.writerows(rows)
    return r


def test_visa_ok_and_region_ids_are_defects(visa):
    it = VisADataset(visa, split='test')[0]
    assert it['label'] == 1 and it['mask'].min() == 1


def test_visa_missing_split_file(visa):
    (visa/VISA_SPLIT_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="prepare_data"): VisADataset(visa)


def test_visa_missing_mask_and_image(visa):
    (visa/'pcb'/'Data'/'Masks'/'Anomaly'/'000.png').unlink()
    with pytest.raises(FileNotFoundError, match="000.png listed in row 3 .* does not exist: restore it, or empty the row's mask column"):
        VisADataset(visa, split='test')
    (visa/'pcb'/'Data'/'Images'/'Normal'/'0000.JPG').unlink()
    with pytest.raises(FileNotFoundError, match="does not exist: restore it"): VisADataset(visa, split='train')


@pytest.fixture
def classes(tmp_path):
    r = tmp_path/'cls'
    for split in ('train', 'test'):
        for c in ('crack', 'dent'):
            for i in range(3): png(r/split/c/f'{i}.png')
    return r


def test_class_folders(classes):
    ds = ClassFolderDataset(classes, 'test')
    assert ds.classes == ['crack', 'dent'] and ds.labels == [0, 0, 0, 1, 1, 1]
    with pytest.raises(FileNotFoundError, match="no 'valid' split folder"): ClassFolderDataset(classes, 'valid')
    png(classes/'test'/'hole'/'0.png')
    with pytest.raises(ValueError, match="not in the classes"): ClassFolderDataset(classes, 'test')
    for p in (classes/'train'/'dent').iterdir(): p.unlink()
    with pytest.raises(FileNotFoundError, match="no .* images in .*dent"): ClassFolderDataset(classes, 'train')


def test_fixture_deterministic_and_atomic(tmp_path):
    a, b = make_textures(tmp_path/'a', seed=3), make_textures(tmp_path/'b', seed=3)
    assert file_hashes(a) == file_hashes(b) and len(file_hashes(a)) > 200
    assert len(MVTecDataset(a, split='validation')) == 36
    def interrupted(tmp):
        png(tmp/'x.png'); raise RuntimeError('interrupted')
    with pytest.raises(RuntimeError): build_fixture(tmp_path/'half', interrupted, name='half', seed=0)
    assert not (tmp_path/'half').exists() and not any(p.name.startswith('.half') for p in tmp_path.iterdir())


def test_holdout_needs_enough_good_training_images(mvtec):
    "Without a validation split, 2 good training images cannot be shared between training and validation: say what to add."
    from ssm_defects.data import anomaly_dls
    with pytest.raises(ValueError, match="has 2 good training images: holding out 2 for validation would leave 0 .*at least 4"):
        anomaly_dls(mvtec, size=64)


def test_visa_split_file_errors(visa):
    "Every damage to VisA's split file names the row or column and the fix."
    f = visa/VISA_SPLIT_FILE
    with pytest.raises(ValueError, match="holds out training images"): VisADataset(visa, split='validation')
    lines = f.read_text().splitlines()
    i_anom = next(i for i, l in enumerate(lines) if ',anomaly,' in l)
    f.write_text('\n'.join(lines[:i_anom] + [lines[i_anom].rsplit(',', 1)[0] + ','] + lines[i_anom+1:]))
    ds = VisADataset(visa, split='test')                               # an empty mask column: accepted, mask unknown
    assert ds.records[0]['mask_known'] is False and ds[0]['label'] == 1 and (ds[0]['mask'] == -1).all()
    f.write_text('\n'.join(lines[:1] + [lines[1].replace('.JPG', '_gone.JPG')] + lines[2:]))
    with pytest.raises(FileNotFoundError, match="does not exist: restore it or remove the row"): VisADataset(visa, split='train')
    f.write_text('\n'.join(['obj,split,label,image,mask'] + lines[1:]))
    with pytest.raises(ValueError, match="must have the columns object,split,label,image,mask"): VisADataset(visa)
    f.unlink()
    with pytest.raises(FileNotFoundError, match="prepare_data script"): VisADataset(visa)


def test_class_folder_errors(classes, tmp_path):
    "Every damage to a class-folder dataset names the folder and the fix."
    with pytest.raises(FileNotFoundError, match="has no 'valid' split folder"): ClassFolderDataset(classes, 'valid')
    png(classes/'test'/'hole'/'0.png')
    with pytest.raises(ValueError, match="not in the classes"): ClassFolderDataset(classes, 'test')
    shutil.rmtree(classes/'test'/'hole'); shutil.rmtree(classes/'test'/'dent')
    with pytest.raises(FileNotFoundError, match="class folder"): ClassFolderDataset(classes, 'test')
    for p in (classes/'train'/'crack').iterdir(): p.unlink()
    with pytest.raises(FileNotFoundError, match="no .png"): ClassFolderDataset(classes, 'train')
    with pytest.raises(FileNotFoundError, match=r"make_surface_defects\(\)"): ClassFolderDataset(tmp_path/'nowhere')


def test_anomaly_dls_on_visa(tmp_path):
    "VisA has no validation split: by default training images are held out (and half painted); a split asked for by name is used."
    from ssm_defects.data import anomaly_dls, has_split
    r = tmp_path/'visa'
    rows = []
    for i in range(10):
        png(r/'pcb'/'Data'/'Images'/'Normal'/f'{i:04d}.JPG', value=100 + i)
        rows.append(dict(object='pcb', split='train', label='normal', image=f'pcb/Data/Images/Normal/{i:04d}.JPG', mask=''))
    png(r/'pcb'/'Data'/'Images'/'Normal'/'0100.JPG'); png(r/'pcb'/'Data'/'Images'/'Anomaly'/'000.JPG')
    png(r/'pcb'/'Data'/'Masks'/'Anomaly'/'000.png', value=2)
    rows += [dict(object='pcb', split='test', label='normal', image='pcb/Data/Images/Normal/0100.JPG', mask=''),
             dict(object='pcb', split='test', label='anomaly', image='pcb/Data/Images/Anomaly/000.JPG', mask='pcb/Data/Masks/Anomaly/000.png')]
    (r/'split_csv').mkdir()
    with open(r/VISA_SPLIT_FILE, 'w', newline='') as f:
        w = csv.DictWriter(f, VISA_COLUMNS); w.writeheader(); w.writerows(rows)
    assert not has_split(r, 'validation')
    assert len(anomaly_dls(r, size=16, bs=2, valid_split='test').valid.dataset) == 2
    assert anomaly_dls(r, size=16, bs=2).valid_source == '2 good training images held out, 1 painted with synthetic defects'


def test_damaged_copies_of_the_textures_fixture(tmp_path):
    "Chapter 7's cases on copies of the fixture's `brick` category: each damage gets an error naming the problem and the fix."
    import torch
    from ssm_defects.data import save_png
    textures = make_textures()

    def small_copy(name):
        "A fresh copy of the fixture's `brick` category to damage."
        dst = tmp_path/name/'brick'; shutil.copytree(textures/'brick', dst); return dst.parent

    r = small_copy('ok'); assert len(MVTecDataset(r, split='test')) == 24
    with pytest.raises(FileNotFoundError, match="does not exist"): MVTecDataset(tmp_path/'nowhere')             # missing root
    with pytest.raises(FileNotFoundError, match="category 'carpet' not found"): MVTecDataset(r, 'carpet')       # missing category
    shutil.rmtree(r/'brick'/'validation')
    with pytest.raises(FileNotFoundError, match="has no 'validation' split folder"): MVTecDataset(r, split='validation')
    r = small_copy('no_mask'); (r/'brick'/'ground_truth'/'hole'/'000_mask.png').unlink()
    ds = MVTecDataset(r, split='test', size=32)
    i = next(j for j, x in enumerate(ds.records) if x['defect'] == 'hole' and x['path'].name == '000.png')
    assert (ds.records[i]['defect'], ds.records[i]['mask_path'], ds.records[i]['mask_known']) == ('hole', None, False)
    assert (ds[i]['label'], ds[i]['mask'].unique().tolist()) == (1, [-1.])   # image without mask: accepted, mask unknown (−1)
    assert sum(not x['mask_known'] for x in ds.records) == 1
    assert all(ds[j]['mask'].max() == 1 for j, x in enumerate(ds.records) if x['label'] and j != i)  # the others: theirs
    save_png(r/'brick'/'ground_truth'/'hole'/'000_mask.png', np.zeros((128, 128), bool))
    with pytest.raises(ValueError, match="marks no pixel: outline the defect, or delete the mask"): MVTecDataset(r, split='test')[i]
    r = small_copy('no_image'); (r/'brick'/'test'/'hole'/'001.png').unlink()
    with pytest.raises(FileNotFoundError, match="has no image"): MVTecDataset(r, split='test')                  # mask without image
    r = small_copy('corrupt'); (r/'brick'/'test'/'good'/'003.png').write_bytes(b'not a png at all')
    with pytest.raises(ValueError, match="003.png is not a readable image"): MVTecDataset(r, split='test')     # garbage file
    r = small_copy('truncated'); f = r/'brick'/'test'/'good'/'003.png'; f.write_bytes(f.read_bytes()[:400])
    ds = MVTecDataset(r, split='test')                                     # the header is intact: found when decoded
    with pytest.raises(ValueError, match="is not a readable image"): ds[[str(x['path']) for x in ds.records].index(str(f))]
    r = small_copy('mask_size'); save_png(r/'brick'/'ground_truth'/'scratch'/'000_mask.png', np.zeros((64, 64), bool))
    with pytest.raises(ValueError, match="is 64x64 but its image"): MVTecDataset(r, split='test')              # size mismatch
    r = small_copy('bad_train'); shutil.copytree(r/'brick'/'test'/'hole', r/'brick'/'train'/'hole')
    with pytest.raises(ValueError, match="must hold only normal images"): MVTecDataset(r, split='train')       # defects in train
