"""verify: check an exported Core ML model against its Keras model, on macOS and on Linux.

- :mod:`verify.verify`: ``verify_model(model_dir, exports, images, config)``, the whole check
  (``boxstrap verify``), writing ``verify_report.json`` and ``verify_report.txt``.
- :mod:`verify.verify_config`: ``VerifyConfig`` (backend, tolerances per precision, limits).
- :mod:`verify.static_checks`: the spec against the saved preprocessing and labels.
- :mod:`verify.parity`: ``compare_outputs``, the one comparison used by tests and verify.
- :mod:`verify.backends`: Core ML itself (macOS) or the reference runtime; ``auto`` picks.
- :mod:`verify.reference_runtime`: the numpy runtime of the Core ML spec
  (:mod:`verify.nn_runtime` for ``.mlmodel``, :mod:`verify.mil_runtime` for ``.mlpackage``,
  kernels in :mod:`verify.kernels`, the spec read by :mod:`verify.model_info`).
- :mod:`verify.divergence`: the first diverging layer and the likely export mistake.
- :mod:`verify.box_parity`: the same check for the detector, box by box.
- :mod:`verify.verify_images`: the photos a check runs on; :mod:`verify.runtime_result` and
  :mod:`verify.report_table`: one runtime's outputs and the report's table.
"""

__boxstrap_stage__ = "verify"

__all__: list[str] = []
