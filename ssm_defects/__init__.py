__version__ = "0.1.0"

import warnings as _warnings
# fastai's layers call torch.jit.script at import, which PyTorch 2.x flags as deprecated: noise for our users, not news
_warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
