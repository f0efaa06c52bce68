"""VGG perceptual and style losses (``train.perceptual_opt``), with BasicSR's options.

"Perceptual Losses for Real-Time Style Transfer and Super-Resolution" (Johnson et al., ECCV 2016,
arXiv:1603.08155); the option names are BasicSR's ``PerceptualLoss`` (``layer_weights``,
``vgg_type``, ``use_input_norm``, ``range_norm``, ``perceptual_weight``, ``style_weight``,
``criterion``), e.g.::

    perceptual_opt:
      type: PerceptualLoss
      pretrained: experiments/pretrained_models/vgg19-dcbb9e9d.pth   # torchvision's VGG19 weights
      layer_weights: {conv5_4: 1.0}
      perceptual_weight: 1.0
      style_weight: 0

Differences from BasicSR:

* the VGG weights come from the local file ``pretrained`` (torchvision's ``vgg*.pth`` state dict,
  ``features.<i>.*`` keys; the classifier is ignored); nothing is downloaded, and without the key
  the loss refuses to start (a perceptual loss on random VGG weights measures nothing);
* video clips ``(n, t, c, h, w)`` are scored frame by frame (time folded into the batch);
* layers are named from the network layout (``conv<block>_<i>``, ``relu<block>_<i>``,
  ``bn<block>_<i>`` for ``*_bn`` types, ``pool<block>``) instead of fixed name lists.
"""

from __future__ import annotations

from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from vsrt.registry import LOSS_REGISTRY
from vsrt.utils.safe_load import read_checkpoint

# channels of each 3x3 convolution, "M" a 2x2 max-pooling (the VGG configurations A, B, D, E)
VGG_LAYOUTS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CRITERIA = ("l1", "l2", "fro")


def vgg_layers(vgg_type: str, pooling_stride: int = 2) -> tuple[list[str], list[nn.Module]]:
    """Names and modules of ``torchvision.models.<vgg_type>().features``, in the same order (so indices match)."""
    base, batch_norm = (vgg_type[:-3], True) if vgg_type.endswith("_bn") else (vgg_type, False)
    if base not in VGG_LAYOUTS:
        raise ValueError(f"vgg_type '{vgg_type}' is not one of "
                         f"{', '.join(sorted(VGG_LAYOUTS) + [v + '_bn' for v in sorted(VGG_LAYOUTS)])}")
    names: list[str] = []
    modules: list[nn.Module] = []
    block, index, channels = 1, 1, 3
    for item in VGG_LAYOUTS[base]:
        if item == "M":
            names.append(f"pool{block}")
            modules.append(nn.MaxPool2d(kernel_size=2, stride=pooling_stride))
            block, index = block + 1, 1
            continue
        names.append(f"conv{block}_{index}")
        modules.append(nn.Conv2d(channels, int(item), kernel_size=3, padding=1))
        if batch_norm:
            names.append(f"bn{block}_{index}")
            modules.append(nn.BatchNorm2d(int(item)))
        names.append(f"relu{block}_{index}")
        modules.append(nn.ReLU(inplace=False))
        channels, index = int(item), index + 1
    return names, modules


class VGGFeatureExtractor(nn.Module):
    """The named VGG features of ``layer_name_list`` for images ``(n, 3, h, w)`` in [0, 1] (or [-1, 1]).

    Only the layers up to the deepest requested one are built. ``pretrained`` is a torchvision VGG
    state dict file; ``requires_grad=False`` freezes the network (and keeps it in eval mode).
    """

    def __init__(self, layer_name_list: list[str], vgg_type: str = "vgg19", use_input_norm: bool = True,
                 range_norm: bool = False, requires_grad: bool = False, remove_pooling: bool = False,
                 pooling_stride: int = 2, pretrained: str | None = None) -> None:
        super().__init__()
        names, modules = vgg_layers(vgg_type, pooling_stride)
        unknown = [name for name in layer_name_list if name not in names]
        if unknown or not layer_name_list:
            raise ValueError(f"layer_weights: {unknown or 'no layers'}; layers of {vgg_type}: {', '.join(names)}")
        depth = max(names.index(name) for name in layer_name_list) + 1
        self.layer_names = names[:depth]
        self.layer_name_list = list(layer_name_list)
        self.vgg_net = nn.Sequential(*modules[:depth])  # keys '<i>.weight' = torchvision's 'features.<i>.weight'
        self.remove_pooling = remove_pooling
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained is not None:
            self.load_vgg_weights(pretrained)
        self.requires_grad_(requires_grad)
        if not requires_grad:
            self.eval()

    def load_vgg_weights(self, path: str | Path) -> None:
        """Load the kept layers from a torchvision VGG state dict (``features.<i>.*``; other keys ignored)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained: VGG weights {path} not found (vsrt never downloads them; "
                                    "torchvision's vgg19-dcbb9e9d.pth is the usual file)")
        checkpoint = read_checkpoint(path, "pretrained: VGG weights")  # data only; errors name the file
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("params"), dict):
            checkpoint = checkpoint["params"]
        state = {key[len("features."):]: value for key, value in checkpoint.items() if key.startswith("features.")}
        own = self.vgg_net.state_dict()
        missing = [key for key in own if key not in state]
        mismatched = [key for key in own if key in state and state[key].shape != own[key].shape]
        if missing or mismatched:
            raise RuntimeError(f"pretrained: {path} is not a torchvision VGG state dict for these layers "
                               f"(missing: {missing[:5]}, shape mismatch: {mismatched[:5]})")
        self.vgg_net.load_state_dict({key: state[key] for key in own})

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        # a frozen extractor stays in eval mode (BatchNorm statistics of the *_bn types)
        return super().train(mode and any(p.requires_grad for p in self.parameters()))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        features = {}
        for name, layer in zip(self.layer_names, self.vgg_net):
            if name.startswith("pool") and self.remove_pooling:
                continue
            x = layer(x)
            if name in self.layer_name_list:
                features[name] = x
        return features


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``(n, c, h, w)`` -> ``(n, c, c)`` channel correlations divided by ``c * h * w``."""
    n, c, h, w = features.shape
    flat = rearrange(features, "n c h w -> n c (h w)")
    return flat @ flat.transpose(1, 2) / (c * h * w)


@LOSS_REGISTRY.register()
class PerceptualLoss(nn.Module):
    """``perceptual_weight * sum_l w_l d(phi_l(x), phi_l(gt))`` and the same over Gram matrices (style).

    ``forward(x, gt)`` takes images ``(n, c, h, w)`` or clips ``(n, t, c, h, w)`` and returns
    ``(perceptual, style)``; a term whose weight is 0 is None. ``criterion`` is ``l1`` or ``l2``
    (means over all elements) or ``fro`` (the Frobenius norm of the difference).
    """

    def __init__(self, layer_weights: dict[str, float], vgg_type: str = "vgg19", use_input_norm: bool = True,
                 range_norm: bool = False, perceptual_weight: float = 1.0, style_weight: float = 0.0,
                 criterion: str = "l1", pretrained: str | None = None) -> None:
        super().__init__()
        if pretrained is None:
            raise ValueError("pretrained: the path of the VGG weights (torchvision's vgg19-dcbb9e9d.pth for "
                             "vgg19) is required; vsrt does not download them at run time")
        if perceptual_weight <= 0 and style_weight <= 0:
            raise ValueError("perceptual_weight and style_weight are both 0: the loss would add nothing")
        if criterion not in CRITERIA:
            raise ValueError(f"criterion '{criterion}' is not one of {', '.join(CRITERIA)}")
        self.layer_weights = {name: float(weight) for name, weight in layer_weights.items()}
        self.perceptual_weight = float(perceptual_weight)
        self.style_weight = float(style_weight)
        self.criterion_type = criterion
        self.vgg = VGGFeatureExtractor(list(self.layer_weights), vgg_type, use_input_norm=use_input_norm,
                                       range_norm=range_norm, pretrained=pretrained)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.criterion_type == "fro":  # over all elements, batch included
            return torch.sqrt(((a - b) ** 2).sum())
        if self.criterion_type == "l2":
            return nn.functional.mse_loss(a, b)
        return nn.functional.l1_loss(a, b)

    def forward(self, x: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if x.dim() == 5:  # (n, t, c, h, w): every frame is an image
            x, gt = rearrange(x, "n t c h w -> (n t) c h w"), rearrange(gt, "n t c h w -> (n t) c h w")
        x_features = self.vgg(x)
        gt_features = self.vgg(gt.detach())
        perceptual = style = None
        if self.perceptual_weight > 0:
            perceptual = self.perceptual_weight * sum(
                weight * self.distance(x_features[name], gt_features[name])
                for name, weight in self.layer_weights.items())
        if self.style_weight > 0:
            style = self.style_weight * sum(
                weight * self.distance(gram_matrix(x_features[name]), gram_matrix(gt_features[name]))
                for name, weight in self.layer_weights.items())
        return perceptual, style

    def extra_repr(self) -> str:
        return (f"layer_weights={self.layer_weights}, perceptual_weight={self.perceptual_weight}, "
                f"style_weight={self.style_weight}, criterion='{self.criterion_type}'")
