"""verify: check an exported Core ML model against its Keras model, on macOS and on Linux."""

__boxstrap_stage__ = "verify"
