"""``VerifyConfig``: the settings of ``boxstrap verify`` (backend, tolerances, limits)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VerifyConfig"]

BACKENDS = ("auto", "reference", "coreml")
COMPUTE_UNITS = ("cpu", "all")
PRECISIONS = ("FP32", "FP16", "INT8")


@dataclass(frozen=True)
class VerifyConfig:
    """How an exported Core ML model is checked against its Keras model.

    Parameters
    ----------
    backend : {"auto", "reference", "coreml"}
        "coreml" runs Core ML itself (macOS only); "reference" the numpy runtime of the spec;
        "auto" picks Core ML on macOS and the reference runtime elsewhere.
    compute_units : {"cpu", "all"}
        Core ML backend only: CPU only, or all compute units (GPU, Neural Engine).
    fp32_max_abs_diff, fp16_max_abs_diff, int8_max_abs_diff : float
        Largest allowed absolute difference of any probability, by the model's precision
        ("INT8": 8-bit quantized weights).
    min_top1_agreement : float
        Share of images whose top-1 class must agree (1.0 = all).
    near_ties_agree : bool
        Count a top-1 flip as agreement when Keras' probabilities of the two classes are
        within twice the probability tolerance (outputs within tolerance can swap them). The
        report lists these images and the raw agreement either way.
    fp32_heatmap_rtol, fp16_heatmap_rtol, int8_heatmap_rtol : float
        Largest allowed heatmap difference relative to the Keras heatmap's largest magnitude
        (8-bit weights: up to 0.117 on the default network's real photos, benchmarks/NOTES.md,
        "8-bit weights and the layer check").
    fp32_layer_rtol, fp16_layer_rtol, int8_layer_rtol : float
        Relative difference above which an intermediate value counts as diverged when
        looking for the first diverging layer. 8-bit weights alone move the default network's
        middle blocks by up to 0.42 of a layer's range on real photos (benchmarks/NOTES.md,
        "8-bit weights and the layer check"): with them only a gross fault shows in the layers,
        and the outputs' tolerance is the check that counts.
    bias_atol, scale_rtol : float
        Tolerances of the static bias and scale checks against the saved preprocessing.
    max_file_size_mb : float
        Largest acceptable model size on disk.
    deployment_target : str or None
        Oldest OS the model must run on (e.g. "iOS15"); None only reports the model's target.
    input_name : str
        Name the image input must have.
    class_label_output : str
        Name of the classifier's label output.
    heatmap_output : str or None
        Core ML output holding the class maps; None finds a multi-array output of rank >= 3.
    split : str
        Split to read when ``images`` is a prepared dataset folder (with ``manifest.json``).
    max_images : int or None
        Check at most this many images (None: all).
    batch_size : int
        Keras batch size.
    check_layers : bool
        Reference backend: compare every Keras layer's output with the runtime's value for
        one image (the worst one when the outputs fail, else the first) and name the first
        layer that diverges; a divergence fails the check even when the outputs agree (an
        insensitive model can hide an export fault in its outputs).
    """

    backend: str = "auto"
    compute_units: str = "cpu"
    fp32_max_abs_diff: float = 1e-4
    fp16_max_abs_diff: float = 1e-2
    int8_max_abs_diff: float = 5e-2
    min_top1_agreement: float = 1.0
    near_ties_agree: bool = True
    fp32_heatmap_rtol: float = 1e-3
    fp16_heatmap_rtol: float = 5e-2
    int8_heatmap_rtol: float = 0.2
    fp32_layer_rtol: float = 1e-3
    fp16_layer_rtol: float = 5e-2
    int8_layer_rtol: float = 0.6
    bias_atol: float = 1e-3
    scale_rtol: float = 1e-5
    max_file_size_mb: float = 100.0
    deployment_target: str | None = None
    input_name: str = "image"
    class_label_output: str = "classLabel"
    heatmap_output: str | None = None
    split: str = "valid"
    max_images: int | None = None
    batch_size: int = 16
    check_layers: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}. Received: {self.backend!r}")
        if self.compute_units not in COMPUTE_UNITS:
            raise ValueError(f"compute_units must be one of {COMPUTE_UNITS}. Received: {self.compute_units!r}")
        for name in ("fp32_max_abs_diff", "fp16_max_abs_diff", "int8_max_abs_diff", "fp32_heatmap_rtol",
                     "fp16_heatmap_rtol", "int8_heatmap_rtol", "fp32_layer_rtol", "fp16_layer_rtol",
                     "int8_layer_rtol", "bias_atol", "scale_rtol", "max_file_size_mb"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0. Received: {value!r}")
        if not 0.0 <= self.min_top1_agreement <= 1.0:
            raise ValueError(f"min_top1_agreement must be within [0, 1]. Received: {self.min_top1_agreement!r}")
        if self.max_images is not None and (not isinstance(self.max_images, int) or self.max_images < 1):
            raise ValueError(f"max_images must be a positive int or None. Received: {self.max_images!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int. Received: {self.batch_size!r}")
        if self.deployment_target is not None and not str(self.deployment_target).startswith("iOS"):
            raise ValueError(f"deployment_target must look like 'iOS15' or be None. Received: {self.deployment_target!r}")

    def _by_precision(self, kind: str, precision: str) -> float:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}. Received: {precision!r}")
        return getattr(self, f"{precision.lower()}_{kind}")

    def max_abs_diff(self, precision: str) -> float:
        """Probability tolerance for a model of ``precision`` ("FP32", "FP16" or "INT8")."""
        return self._by_precision("max_abs_diff", precision)

    def heatmap_rtol(self, precision: str) -> float:
        """Relative heatmap tolerance for ``precision``."""
        return self._by_precision("heatmap_rtol", precision)

    def layer_rtol(self, precision: str) -> float:
        """Relative tolerance of intermediate values for ``precision``."""
        return self._by_precision("layer_rtol", precision)
