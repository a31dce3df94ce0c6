"""DCGAN follows the paper's architecture rules, at any power-of-two size, with or without
classes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from condsynth.errors import ConfigError
from condsynth.registry import build_method
from tests.tiny import tiny_config


def layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if not list(m.children())]


@pytest.mark.parametrize("size", [16, 32, 64])
def test_the_papers_rules(size):
    method = build_method(tiny_config("dcgan", extra=[f"data.crop_size={size}"]))
    g, d = layers(method.generator), layers(method.discriminator)
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in g + d)
    # G: fractionally-strided convolutions, batch norm + ReLU after each but the output layer,
    # which ends in Tanh.
    g_convs = [m for m in g if isinstance(m, nn.ConvTranspose2d)]
    assert all(m.stride == (2, 2) for m in g_convs[1:])
    assert isinstance(g[-1], nn.Tanh) and isinstance(g[-2], nn.ConvTranspose2d)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g) == len(g_convs) - 1
    assert all(isinstance(m, (nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.Tanh)) for m in g)
    # D: strided convolutions, LeakyReLU 0.2, no batch norm on the input layer.
    d_convs = [m for m in d if isinstance(m, nn.Conv2d)]
    assert all(m.stride == (2, 2) for m in d_convs[:-1])
    assert isinstance(d[1], nn.LeakyReLU) and d[1].negative_slope == 0.2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d) == len(d_convs) - 2
    z = torch.randn(3, method.latent_size())
    assert method.eval().generate(z=z).shape == (3, 3, size, size)


def test_initialization_is_normal_0_002():
    torch.manual_seed(0)
    method = build_method(tiny_config("dcgan", extra=["model.ngf=64", "model.ndf=64"]))
    weights = torch.cat([m.weight.flatten() for m in method.modules()
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    weights = weights.detach()
    assert abs(float(weights.mean())) < 1e-3 and abs(float(weights.std()) - 0.02) < 1e-3
    gains = torch.cat([m.weight.detach() for m in method.modules()
                       if isinstance(m, nn.BatchNorm2d)])
    assert abs(float(gains.mean()) - 1) < 5e-3 and abs(float(gains.std()) - 0.02) < 5e-3


def test_class_conditional_models_take_classes():
    method = build_method(tiny_config("dcgan", extra=["condition.kind=class",
                                                      "condition.num_classes=5"])).eval()
    z = torch.randn(2, method.latent_size())
    a = method.generate(torch.tensor([0, 0]), z=z)
    b = method.generate(torch.tensor([1, 1]), z=z)
    assert not torch.equal(a, b)                         # the class steers the picture
    with pytest.raises(Exception, match="class"):
        method.generate(batch_size=2)                   # a class model needs its classes
    assert method.discriminate(torch.zeros(2, 3, 32, 32)).shape == (2,)


@pytest.mark.parametrize("bad", ["data.crop_size=48", "data.crop_size=4",
                                 "data.aspect_ratio=2.0"])
def test_sizes_that_are_not_square_powers_of_two_are_refused(bad):
    with pytest.raises(ConfigError, match="power of two"):
        build_method(tiny_config("dcgan", extra=[bad]))


def test_greyscale_images():
    method = build_method(tiny_config("dcgan", extra=["data.channels=1"])).eval()
    assert method.generate(batch_size=2).shape == (2, 1, 32, 32)


def test_a_class_model_needs_its_class_count():
    with pytest.raises(ConfigError, match="num_classes is not resolved"):
        build_method(tiny_config("dcgan", extra=["condition.kind=class"]))
