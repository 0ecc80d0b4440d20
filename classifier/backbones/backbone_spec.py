"""``BackboneSpec``: what boxstrap needs to know of a backbone, as data (as timm's registry does).

Everything outside ``classifier/backbones/`` reaches a backbone through its spec: it builds the
layers, names the layer the class-map head reads (``feature_layer``) and its stride, gives the
default :class:`~datasets.preprocessing.Preprocessing` and starting weights, checks input sizes,
and lists the named boundaries where the network may be cut into a frozen lower part (run once,
cached) and a trainable upper part. Cutting works on Keras functional sub-models built from the
boundary's output tensor, so a spec may describe a network with branches and residual adds, not
only a chain.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.preprocessing import Preprocessing

__all__ = ["BackboneSpec"]


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone of the registry (:func:`classifier.backbones.registry.get_backbone`).

    Parameters
    ----------
    name : str
        Registry name, saved as ``backbone`` in ``train_config.json``.
    widths : tuple of int
        The real network's widths; ``build`` also takes tiny ones (tests).
    build : callable
        ``build(image, widths) -> {layer name: output tensor}``: creates the backbone's layers,
        applies them to the Keras tensor ``image`` and returns every named layer's output in
        network order, ending at ``context_layer`` (or ``feature_layer`` when there is none).
    preprocessing : callable
        ``preprocessing((height, width)) -> Preprocessing``: the input the weights expect.
    weight_choices : tuple of str
        Named starting weights (besides a file path), e.g. ``("hed-vgg16", "imagenet", "none")``.
    default_weights : str
        The choice used when none is given; must work offline.
    resolve_weights : callable
        ``resolve_weights(choice) -> Path | None``: the file a choice reads (``None``: random).
    load_weights : callable
        ``load_weights(layers, choice) -> str``: sets the backbone layers among ``layers`` from
        a choice and describes what was loaded.
    feature_layer : str
        The layer whose output the class-map head, the box model and the localizer's
        descriptors read.
    feature_stride : int
        Input pixels per cell of ``feature_layer``'s grid.
    size_multiple : int
        Input height and width must be multiples of it.
    boundaries : tuple of str
        Layers whose output alone feeds everything after them (cuts of the graph), in network
        order, ending at ``feature_layer``: where the network may be split into a cached lower
        part and an upper part.
    multilevel_taps : tuple of (layer name, pooling factor)
        The layers the ``multilevel`` head reads, each with the average pooling that brings it
        to the ``feature_layer`` grid.
    fine_tune_cuts : mapping of str to str
        ``{first trainable layer: boundary layer}`` in network order: where phase 2 of training
        may start, and the layer (one of ``boundaries``) whose output is cached before it.
    context_layer : str or None
        A deeper, coarser layer computed from ``feature_layer`` that the default class-map head
        also reads (``TrainConfig.context``), brought to the feature grid by nearest-neighbour
        upsampling: what the object is, beside where it is. ``None``: the head reads
        ``feature_layer`` alone.
    context_stride : int or None
        Input pixels per cell of ``context_layer``'s grid (a multiple of ``feature_stride``;
        ``size_multiple`` must be a multiple of it).
    """

    name: str
    widths: tuple[int, ...]
    build: Callable[[Any, tuple[int, ...]], dict[str, Any]] = field(repr=False)
    preprocessing: Callable[[tuple[int, int]], Preprocessing] = field(repr=False)
    weight_choices: tuple[str, ...]
    default_weights: str
    resolve_weights: Callable[[str | os.PathLike], Path | None] = field(repr=False)
    load_weights: Callable[[Sequence[Any], str | os.PathLike], str] = field(repr=False)
    feature_layer: str
    feature_stride: int
    size_multiple: int
    boundaries: tuple[str, ...]
    multilevel_taps: tuple[tuple[str, int], ...]
    fine_tune_cuts: Mapping[str, str] = field(repr=False)
    context_layer: str | None = None
    context_stride: int | None = None

    def __post_init__(self) -> None:
        if self.default_weights not in self.weight_choices:
            raise ValueError(f"default_weights must be one of weight_choices {self.weight_choices}. "
                             f"Received: {self.default_weights!r}")
        if not self.boundaries or self.boundaries[-1] != self.feature_layer:
            raise ValueError(f"boundaries must end at feature_layer {self.feature_layer!r}. "
                             f"Received: {self.boundaries}")
        if (self.context_layer is None) != (self.context_stride is None) or (self.context_stride is not None and (
                self.context_stride % self.feature_stride or self.size_multiple % self.context_stride)):
            raise ValueError(f"context_layer and context_stride go together; context_stride must be a multiple of "
                             f"feature_stride {self.feature_stride} and divide size_multiple {self.size_multiple}. "
                             f"Received: {self.context_layer!r}, {self.context_stride!r}")
        stray = sorted(set(self.fine_tune_cuts.values()) - set(self.boundaries))
        if stray:
            raise ValueError(f"fine_tune_cuts must cut at boundaries; {stray} are not among {self.boundaries}")

    def check_input_size(self, input_size: Sequence[int]) -> tuple[int, int]:
        """Return ``(height, width)`` as ints if both are positive multiples of ``size_multiple``.

        Raises
        ------
        ValueError
            Naming the size received and the nearest valid one.

        Examples
        --------
        >>> from classifier.backbones.registry import get_backbone
        >>> get_backbone("vgg16").check_input_size([224, 288])
        (224, 288)
        """
        step = self.size_multiple
        size = tuple(int(v) for v in input_size)
        if len(size) != 2 or any(v < step or v % step for v in size):
            nearest = (tuple(max(step, round(int(v) / step) * step) for v in size) if len(size) == 2
                       else (7 * step, 7 * step))
            raise ValueError(
                f"input_size must be (height, width), each a positive multiple of {step} (the {self.name} "
                f"backbone halves it {step.bit_length() - 1} times). Received: {tuple(input_size)}; "
                f"nearest valid: {nearest}"
            )
        return size

    def boundary_before(self, fine_tune_from: str) -> str:
        """The layer whose output is cached when training starts at ``fine_tune_from``.

        Raises
        ------
        ValueError
            If ``fine_tune_from`` is not one of the spec's cut points.
        """
        if fine_tune_from not in self.fine_tune_cuts:
            raise ValueError(f"fine_tune_from must be None or a layer of the {self.name} backbone where training "
                             f"may start, one of {list(self.fine_tune_cuts)}. Received: {fine_tune_from!r}")
        return self.fine_tune_cuts[fine_tune_from]

    @property
    def context_factor(self) -> int:
        """How many feature-grid cells one ``context_layer`` cell covers per side (1 without one)."""
        return 1 if self.context_stride is None else self.context_stride // self.feature_stride
