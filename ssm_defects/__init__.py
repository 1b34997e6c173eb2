"""State space models from first principles to defect inspection: selective scans, MambaAD, Pyramid-Mamba and MemoryMamba in literate notebooks

Modules:

- `ssm_defects.features`: What every reconstruction detector of this project shares: a frozen ImageNet encoder run in its own network, the Half-FPN bottleneck, the distance maps between encoder and decoder features, and the training loss.
- `ssm_defects.inspection`: From anomaly maps to what an inspection line acts on: an OK/NG threshold calibrated on validation images, defect masks and boxes, heat maps on one colour scale, and predictions streamed over folders of any size.
- `ssm_defects.training`: The machinery under the three models: the interface an anomaly detector has, the optimiser and schedule, metrics during training, checkpoints that hold data and never code, prediction and evaluation.
- `ssm_defects.verdicts`: The half of the inspection decisions that needs neither PyTorch nor SciPy: defect regions and their boxes and the heat-map colours (here); the records, masks at image size, image lists and prediction files (exported by chapter 12b)."""

__version__ = "0.1.0"

import warnings as _warnings
# fastai's layers call torch.jit.script at import, which PyTorch 2.x flags as deprecated: noise for our users, not news
_warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
