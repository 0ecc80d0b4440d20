"""classifier: a backbone from the registry (EfficientNet-Lite0 by default, VGG16) with a fully
convolutional class-map head, trained on a CPU, exported to Core ML; its forward pass over photos
at several views (:mod:`classifier.forward_photos`) gives the maps and descriptors that
``localize`` and ``detector`` read."""

__boxstrap_stage__ = "classifier"

__all__: list[str] = []
