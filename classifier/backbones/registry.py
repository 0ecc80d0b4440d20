"""The backbone registry: every :class:`BackboneSpec` boxstrap can train, by name."""

from __future__ import annotations

from classifier.backbones.backbone_spec import BackboneSpec
from classifier.backbones.efficientnet_lite import EFFICIENTNET_LITE0
from classifier.backbones.vgg16 import VGG16

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "UNNAMED_BACKBONE", "get_backbone"]

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in (VGG16, EFFICIENTNET_LITE0)}
DEFAULT_BACKBONE = "efficientnet-lite0"
# Models trained before the registry existed have no ``backbone`` in train_config.json: all VGG16.
UNNAMED_BACKBONE = "vgg16"


def get_backbone(name: str) -> BackboneSpec:
    """Return the spec registered under ``name``.

    Raises
    ------
    ValueError
        Naming the backbones there are.

    Examples
    --------
    >>> get_backbone("vgg16").feature_stride
    16
    """
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}. Received: {name!r}")
    return BACKBONES[name]
