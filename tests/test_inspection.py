"""`predict_to_folder` outside a notebook: worker processes read the images (the items and the collate function
pickle), the progress bar runs, and the results equal those of the in-process loader."""
import json
import numpy as np, torch, torch.nn as nn
from PIL import Image
from ssm_defects.inspection import calibrate, predict_to_folder

class Brightness(nn.Module):
    "Stand-in detector: anomaly map = mean over colours, score = its maximum."
    def __init__(self): super().__init__(); self.unused = nn.Parameter(torch.zeros(()))
    def anomaly_maps(self, x):                                   # (B, 3, H, W) in [0, 1]
        maps = x.mean(1)                                         # (B, H, W)
        return maps, maps.flatten(1).amax(1)

def test_workers_and_progress_bar_give_the_same_predictions(tmp_path):
    g = np.random.default_rng(0)
    for i in range(13):
        img = (g.random((50, 70)) * 60).astype(np.uint8)         # grayscale, non-square
        if i % 4 == 0: img[5:15, 5:20] = 255
        Image.fromarray(img).save(tmp_path/f'{i:02d}.png')
    (tmp_path/'broken.png').write_bytes(b'not a png')
    decision = calibrate([0.1, 0.2, 0.25, 0.9, 1.0], [0, 0, 0, 1, 1])
    docs = [json.loads(predict_to_folder(Brightness(), tmp_path, tmp_path.parent/f'out{w}', 32, decision, bs=4,
                                         num_workers=w, progress=bool(w)).read_text()) for w in (0, 2)]
    drop = lambda recs: [{k: v for k, v in r.items() if k != 'latency_ms'} for r in recs]
    assert drop(docs[0]['records']) == drop(docs[1]['records'])
    assert docs[1]['counts'] == dict(images=13, NG=4, OK=9, skipped=1)
    assert docs[1]['skipped'][0]['path'].endswith('broken.png')


def test_csv_writer_writes_what_pandas_writes(tmp_path):
    "`_write_csv` (csv module, no pandas) gives the bytes of `DataFrame.to_csv` on the same records."
    import pandas as pd
    from ssm_defects.verdicts import _write_csv, CSV_COLUMNS
    g = np.random.default_rng(0)
    records = [dict(path=f'/a b/c,"d"{i}.png', label='NG' if i % 2 else 'OK', score=float(np.float32(g.random() * 10. ** g.integers(-8, 8))),
                    normalized_score=float(g.random()) if i % 3 else 1.0, threshold=float(np.float32(0.3)), area_px=7 * i,
                    boxes=[[1, 2, 3, 4], [5, 6, 7, 8]] if i % 2 else [], heatmap=f'x{i}_heatmap.png', mask=f'm{i}.png' if i % 2 else '',
                    latency_ms=1000 * g.random() / 3) for i in range(50)]
    for recs in (records, []):
        _write_csv(tmp_path/'ours.csv', recs)
        pd.DataFrame(recs, columns=list(CSV_COLUMNS)).assign(boxes=[json.dumps(r['boxes']) for r in recs]).to_csv(tmp_path/'pandas.csv', index=False)
        assert (tmp_path/'ours.csv').read_bytes() == (tmp_path/'pandas.csv').read_bytes()
