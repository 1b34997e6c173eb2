"Shared by the export and inferencer tests: a kNN detector trained and calibrated at a non-square input size (H, W) = (64, 96)."
import warnings
import torch
from cli_fixtures import copy_tiny

WIDE = (64, 96)


def wide_knn(folder):
    """(checkpoint, data folder): a kNN detector (chapter 11b) on a tiny copy of the textures at 64 x 96 (the 128 px
    squares squashed on purpose), its decision calibrated on the validation images, saved with size (64, 96)."""
    from ssm_defects.baselines import knn_model, knn_learner
    from ssm_defects.data import anomaly_dls
    from ssm_defects.inspection import calibrate_on
    from ssm_defects.training import save_checkpoint
    data = copy_tiny(folder/'tiny')
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)                       # "squashed": deliberate here
        dls = anomaly_dls(data, size=WIDE, bs=4)
    knn = knn_model(dls)
    learn = knn_learner(dls, knn, checkpoint=False, metrics=False)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)                  # fills the memory bank
    return save_checkpoint(knn, folder/'wide.pth', dict(size=WIDE, decision=calibrate_on(knn, dls.valid))), data
