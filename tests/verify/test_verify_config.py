import pytest

from groundwork.config import load_config, save_config
from verify.verify_config import VerifyConfig


class TestVerifyConfig:
    def test_defaults(self):
        config = VerifyConfig()
        assert (config.fp32_max_abs_diff, config.fp16_max_abs_diff, config.min_top1_agreement) == (1e-4, 1e-2, 1.0)
        assert config.max_abs_diff("FP16") == 1e-2 and config.max_abs_diff("FP32") == 1e-4
        assert config.max_abs_diff("INT8") == config.int8_max_abs_diff

    def test_round_trip(self, tmp_path):
        config = VerifyConfig(backend="reference", max_images=3, deployment_target="iOS15")
        assert load_config(VerifyConfig, save_config(config, tmp_path / "c.json")) == config

    @pytest.mark.parametrize("kwargs,match", [
        ({"backend": "onnx"}, "backend must be one of"),
        ({"compute_units": "gpu"}, "compute_units must be one of"),
        ({"fp16_max_abs_diff": -1.0}, "fp16_max_abs_diff must be a number >= 0"),
        ({"min_top1_agreement": 1.5}, r"min_top1_agreement must be within \[0, 1\]"),
        ({"max_images": 0}, "max_images must be a positive int"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"deployment_target": "15"}, "deployment_target must look like 'iOS15'"),
    ])
    def test_invalid_values(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            VerifyConfig(**kwargs)

    def test_unknown_precision(self):
        with pytest.raises(ValueError, match="precision must be one of"):
            VerifyConfig().max_abs_diff("FP8")
