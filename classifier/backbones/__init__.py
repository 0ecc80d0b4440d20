"""The backbones a boxstrap classifier can stand on, one :class:`BackboneSpec` each.

A spec is the one place a backbone's layer names, widths, starting weights, preprocessing,
feature layer, stride and the boundaries where training may cut it are written down
(:mod:`classifier.backbones.backbone_spec`). The classifier, training, export, localize and
verify read the spec named in a model's ``train_config.json`` (:func:`get_backbone`) and never
restate those facts. The entries (:mod:`classifier.backbones.registry`): ``efficientnet-lite0``
(:mod:`classifier.backbones.efficientnet_lite`, the default) and ``vgg16``
(:mod:`classifier.backbones.vgg16`).
"""

__all__: list[str] = []
