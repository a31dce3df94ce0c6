"""Each Auto-painter loss term against a hand computation on tiny tensors, and the switches."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from condsynth.errors import CheckpointError, ConfigError
from condsynth.losses import (
    VGG16FeatureLoss,
    isotropic_total_variation,
    total_variation,
    vgg19_feature_layers,
)
from condsynth.registry import build_method
from tests.tiny import tiny_config

GRID = torch.tensor([[0.0, 1.0, 3.0],
                     [2.0, 2.0, 2.0],
                     [5.0, 0.0, 1.0]])[None, None]                 # (1, 1, 3, 3)


def test_isotropic_tv_by_hand():
    # Pixels with both neighbours: (0,0): dh 2, dw 1; (0,1): dh 1, dw 2; (1,0): dh 3, dw 0;
    # (1,1): dh -2, dw 0  ->  mean(sqrt 5, sqrt 5, 3, 2).
    expected = (2 * math.sqrt(5) + 3 + 2) / 4
    assert isotropic_total_variation(GRID).item() == pytest.approx(expected, rel=1e-6)
    flat = torch.full((2, 3, 4, 4), 0.3, requires_grad=True)
    isotropic_total_variation(flat).backward()
    assert torch.isfinite(flat.grad).all() and flat.grad.abs().max() == 0


def test_anisotropic_tv_by_hand():
    # |vertical| differences 2,1,1,3,2,1 over 6; |horizontal| 1,2,0,0,5,1 over 6.
    assert total_variation(GRID).item() == pytest.approx(10 / 6 + 9 / 6, rel=1e-6)


def method_with(extra: list[str]):
    return build_method(tiny_config("autopainter", extra=extra))


class StubDiscriminator(nn.Module):
    """Patch logits fixed per half of the batch: ``fake`` for the first B items (or all of a
    G-step batch), ``real`` for the rest."""

    def __init__(self, fake: float, real: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.fake, self.real = fake, real

    def forward(self, x):
        n = x.shape[0]
        values = torch.full((n, 1, 2, 2), self.fake)
        if n % 2 == 0 and getattr(self, "joint", False):
            values[n // 2:] = self.real
        return [x, values * self.scale]


def test_gan_terms_by_hand():
    method = method_with(["model.lambda_pix=0", "model.lambda_tv=0", "model.lambda_adv=2.0"])
    stub = StubDiscriminator(fake=0.7, real=-0.4)
    method.discriminator = stub
    batch = {"source": torch.zeros(2, 1, 32, 32), "image": torch.zeros(2, 3, 32, 32)}
    out = method.forward_generator(batch)
    stub.joint = True
    d = method.discriminator_step(batch, out)
    # vanilla GAN: D wants sigmoid(real) -> 1, sigmoid(fake) -> 0; the sum of the two terms
    # as the official code (pix2pix halves it).
    assert d["d_fake"].item() == pytest.approx(-math.log(1 - 1 / (1 + math.exp(-0.7))))
    assert d["d_real"].item() == pytest.approx(-math.log(1 / (1 + math.exp(0.4))))
    stub.joint = False
    g = method.generator_step(batch, out)
    assert set(g) == {"g_gan"}
    assert g["g_gan"].item() == pytest.approx(2.0 * -math.log(1 / (1 + math.exp(-0.7))))


def test_pixel_and_tv_terms_by_hand():
    method = method_with(["model.lambda_adv=0", "model.lambda_pix=3.0", "model.lambda_tv=0.5",
                          "model.tv_norm=isotropic"])
    fake = torch.zeros(1, 3, 3, 3)
    fake[0, 1] = GRID[0, 0]
    real = torch.ones(1, 3, 3, 3)
    g = method.generator_step({"image": real}, {"fake": fake, "condition": None})
    assert set(g) == {"g_l1", "g_tv"}
    l1 = (fake - real).abs().sum().item() / 27                # hand: mean absolute error
    assert l1 == pytest.approx((9 + 9 + (1 + 0 + 2 + 1 + 1 + 1 + 4 + 1 + 0)) / 27)
    assert g["g_l1"].item() == pytest.approx(3.0 * l1)
    # TV per channel, averaged: two flat channels give 0, the GRID channel its value above.
    assert g["g_tv"].item() == pytest.approx(0.5 * (2 * math.sqrt(5) + 5) / 4 / 3, rel=1e-6)
    method = method_with(["model.lambda_adv=0", "model.lambda_tv=0.5"])   # the default
    assert method.config.model.tv_norm == "anisotropic"
    g = method.generator_step({"image": real}, {"fake": fake, "condition": None})
    assert g["g_tv"].item() == pytest.approx(0.5 * (19 / 6) / 3, rel=1e-6)


def test_feature_term_is_mse_of_vgg16_relu4_3(vgg16_file):
    method = method_with(["model.lambda_adv=0", "model.lambda_pix=0", "model.lambda_tv=0",
                          "model.lambda_feat=2.5", f"model.vgg_weights={vgg16_file}"])
    torch.manual_seed(3)
    fake = torch.rand(2, 3, 24, 24) * 2 - 1
    real = torch.rand(2, 3, 24, 24) * 2 - 1
    g = method.generator_step({"image": real}, {"fake": fake, "condition": None})
    assert set(g) == {"g_feat"}
    # The same by hand with torchvision's own VGG16: features[22] is relu4_3.
    # (torchvision's VGG16 "D" configuration; its classifier is not needed, so not built.)
    vgg = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    vgg.load_state_dict({k[len("features."):]: v
                         for k, v in torch.load(vgg16_file).items()}, strict=False)
    trunk = vgg[:23].eval()
    assert isinstance(trunk[22], nn.ReLU) and isinstance(vgg[23], nn.MaxPool2d)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        f, r = (trunk(((x + 1) / 2 - mean) / std) for x in (fake, real))
    expected = 2.5 * ((f - r) ** 2).sum() / f.numel()
    assert f.shape == (2, 512, 3, 3)
    assert g["g_feat"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_feature_loss_gradient_reaches_only_the_fake(vgg16_file):
    loss = VGG16FeatureLoss(str(vgg16_file))
    fake = torch.rand(1, 3, 16, 16, requires_grad=True)
    real = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss(fake, real).backward()
    assert fake.grad.abs().sum() > 0 and real.grad is None
    assert not any(p.requires_grad for p in loss.parameters())


def test_switched_off_terms_are_not_computed():
    # A missing weights file proves VGG16 is never loaded when its term is off.
    method = method_with(["model.lambda_feat=0", "model.vgg_weights=/nowhere/vgg16.pth"])
    batch = {"source": torch.zeros(2, 1, 32, 32), "image": torch.zeros(2, 3, 32, 32)}
    out = method.forward_generator(batch)
    assert set(method.generator_step(batch, out)) == {"g_gan", "g_l1", "g_tv"}
    assert method.feature_loss is None
    none = method_with(["model.lambda_adv=0", "model.lambda_pix=0", "model.lambda_tv=0",
                        "model.lambda_feat=0"])
    with pytest.raises(ConfigError, match="every generator loss weight"):
        none.generator_step(batch, none.forward_generator(batch))


def test_missing_vgg16_weights_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))           # an empty torchvision cache
    monkeypatch.delenv("CONDSYNTH_VGG16_WEIGHTS", raising=False)
    with pytest.raises(CheckpointError, match=r"VGG16 weights are needed.*never downloads.*"
                                              r"model.vgg_weights.*vgg16-397923af.pth"):
        VGG16FeatureLoss()
    with pytest.raises(CheckpointError, match=r"nowhere.pth does not exist.*model.vgg_weights"):
        VGG16FeatureLoss(str(tmp_path / "nowhere.pth"))


def test_vgg16_files_full_or_trunk_and_not_vgg19(vgg16_file, tmp_path):
    state = torch.load(vgg16_file)
    state["classifier.0.weight"] = torch.zeros(2, 2)          # a full model's extra tensors
    torch.save(state, tmp_path / "full.pth")
    VGG16FeatureLoss(str(tmp_path / "full.pth"))
    torch.save({f"features.{k}": v for k, v in vgg19_feature_layers().state_dict().items()},
               tmp_path / "vgg19.pth")
    with pytest.raises(CheckpointError, match="VGG16 weights .*vgg19.pth.*features.17"):
        VGG16FeatureLoss(str(tmp_path / "vgg19.pth"))
