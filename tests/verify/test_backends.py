import sys

import numpy as np
import pytest
from PIL import Image

from classifier.backbones.vgg16 import vgg16_preprocessing
from tests.verify.conftest import SIZE
from verify.backends import CoreMLBackend, ReferenceBackend, make_backend, resolve_backend
from verify.model_info import read_model_info

ON_MACOS = sys.platform == "darwin"
needs_macos = pytest.mark.skipif(not ON_MACOS, reason="Core ML (MLModel.predict) runs on macOS only")


class TestResolveBackend:
    def test_auto(self):
        assert resolve_backend("auto") == ("coreml" if ON_MACOS else "reference")
        assert resolve_backend("reference") == "reference"

    def test_unknown(self):
        with pytest.raises(ValueError, match="backend must be 'auto', 'coreml' or 'reference'"):
            resolve_backend("onnx")

    @pytest.mark.skipif(ON_MACOS, reason="checks the error off macOS")
    def test_coreml_off_macos(self, exports):
        with pytest.raises(ValueError, match="needs macOS"):
            resolve_backend("coreml")
        with pytest.raises(RuntimeError, match="needs macOS"):
            CoreMLBackend(read_model_info(exports["mlprogram_fp32"]))

    def test_reference_backend(self, exports):
        backend = make_backend("reference", read_model_info(exports["neuralnetwork"]))
        assert isinstance(backend, ReferenceBackend) and backend.has_intermediates
        outputs = backend.run(np.zeros((*SIZE, 3), np.uint8)).outputs
        assert outputs["classLabel"] in ("one", "ten")


@pytest.mark.macos
@needs_macos
class TestCoreMLBackend:
    @pytest.mark.parametrize("name", ["mlprogram_fp32", "mlprogram_fp16", "neuralnetwork"])
    @pytest.mark.parametrize("units", ["cpu", "all"])
    def test_core_ml_agrees_with_the_reference_runtime(self, exports, images_dir, name, units):
        info = read_model_info(exports[name])
        coreml = make_backend("coreml", info, compute_units=units)
        reference = make_backend("reference", info)
        tolerance = 1e-4 if info.precision == "FP32" and units == "cpu" else 2e-2
        pre = vgg16_preprocessing(SIZE)
        for path in sorted(images_dir.glob("*.png")):
            rgb = pre.resize(Image.open(path))
            a, b = coreml.run(rgb).outputs, reference.run(rgb).outputs
            probabilities = info.probabilities_output
            assert a["classLabel"] == b["classLabel"]
            for label in ("one", "ten"):
                assert abs(a[probabilities][label] - b[probabilities][label]) <= tolerance

    def test_verify_with_core_ml(self, model_dir, exports, images_dir, tmp_path):
        from verify.verify import verify_model
        from verify.verify_config import VerifyConfig

        result = verify_model(model_dir, [exports["mlprogram_fp32"], exports["swapped_colour"]], images_dir,
                              VerifyConfig(backend="coreml"), output_dir=tmp_path)
        passed = [e["passed"] for e in result.report["exports"]]
        assert passed == [True, False]
        assert result.report["exports"][0]["backend"] == "coreml"
