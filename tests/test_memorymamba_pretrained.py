"MemoryMamba's pretrained variant (`encoder=`, chapter 10) and the from-scratch default it must leave unchanged."
import pytest, torch, torch.nn.functional as F
from ssm_defects.memorymamba import MemoryMamba, EncoderEmbed, memorymamba_learner, main_path_splitter
from ssm_defects.blocks import PatchEmbed
from ssm_defects.data import classification_dls

ENC = 'tf_efficientnet_lite0'

def test_from_scratch_default_unchanged():
    "Seeded default model: the parameter count and logits it had before the `encoder=` option existed."
    torch.manual_seed(0); m = MemoryMamba(6, 'tiny', pool='max').eval()
    torch.manual_seed(1); x = torch.randn(2, 3, 64, 64)
    assert isinstance(m.patch_embed, PatchEmbed) and not any(isinstance(k, EncoderEmbed) for k in m.modules())
    assert sum(p.numel() for p in m.parameters()) == 451974
    want = torch.tensor([[-0.369464, 0.094790, -0.017566, -0.167125, -0.738027, -0.284318],
                         [-0.273088, -0.144608, -0.072886, -0.320146, -0.658358, 0.062701]])
    with torch.no_grad(): torch.testing.assert_close(m(x), want, rtol=0, atol=1e-5)
    assert len(main_path_splitter(m)) == 2

def test_encoder_batchnorm_keeps_imagenet_statistics():
    m = MemoryMamba(6, 'tiny', encoder=ENC, freeze_encoder=False).train()
    before = {k: v.clone() for k, v in m.patch_embed.body.state_dict().items()}
    m(torch.randn(4, 3, 64, 64))
    assert all(torch.equal(before[k], v) for k, v in m.patch_embed.body.state_dict().items())

def test_encoder_lr_group():
    dls = classification_dls(size=64, bs=4)
    dls.train.n, dls.valid.n = 8, 4                                   # two batches
    model = MemoryMamba(6, 'tiny', encoder=ENC, freeze_encoder=False)
    learn = memorymamba_learner(dls, model, encoder_lr=0.2)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert len(learn.opt.param_lists) == 3                            # main path, encoder, rest
    assert {id(p) for p in learn.opt.param_lists[1]} == {id(p) for p in model.patch_embed.body.parameters()}
    assert learn.opt.hypers[1]['lr'] == pytest.approx(0.2 * learn.opt.hypers[2]['lr'])
    assert learn.opt.hypers[0]['lr'] == pytest.approx(0.1 * learn.opt.hypers[2]['lr'])

def test_frozen_encoder_does_not_move():
    dls = classification_dls(size=64, bs=4)
    dls.train.n, dls.valid.n = 8, 4
    model = MemoryMamba(6, 'tiny', encoder=ENC)
    before = {k: v.clone() for k, v in model.patch_embed.body.state_dict().items()}
    learn = memorymamba_learner(dls, model)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert all(torch.equal(before[k], v) for k, v in model.patch_embed.body.state_dict().items())

def test_bad_encoder_arguments():
    with pytest.raises(ValueError, match='offline'): MemoryMamba(6, encoder='resnet18')
    with pytest.raises(ValueError, match='in_chans=3'): MemoryMamba(6, in_chans=1, encoder=ENC)

def test_pretrained_recipe_trains():
    "`PRETRAINED_RECIPE` (the command line's default) builds its model, which trains with its lr and keeps the stem frozen."
    from ssm_defects.memorymamba import PRETRAINED_RECIPE, DEFECT_RECIPE
    r = PRETRAINED_RECIPE
    assert set(DEFECT_RECIPE) < set(r) and r['encoder'] == ENC and r['freeze_encoder'] is True
    dls = classification_dls(size=r['size'], bs=4)
    dls.train.n, dls.valid.n = 8, 4                                   # two batches
    model = MemoryMamba(dls.c, r['preset'], pool=r['pool'], encoder=r['encoder'], freeze_encoder=r['freeze_encoder'],
                        encoder_blocks=r['encoder_blocks'])
    before = {k: v.clone() for k, v in model.patch_embed.body.state_dict().items()}
    learn = memorymamba_learner(dls, model)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, r['lr'])
    assert all(torch.equal(before[k], v) for k, v in model.patch_embed.body.state_dict().items())
    assert not any(p.requires_grad for p in model.patch_embed.body.parameters())
    assert all(p.requires_grad for p in model.layers.parameters())     # the Mem-SSM stages train
