import pytest
import torch

from deblur.devices import choose, is_out_of_memory, resolve_device, resolve_precision
from deblur.errors import DeviceError, UsageError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu").type == "cpu"
    choice = choose("auto")
    assert choice.device.type in ("cpu", "cuda", "mps") and "auto-selected" in choice.reason


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA:1"])
def test_a_missing_device_asked_for_by_name_is_an_error(name):
    with pytest.raises(DeviceError, match="not available") as err:
        resolve_device(name)
    assert err.value.exit_code == 4


def test_unknown_device_and_precision_are_usage_errors():
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(UsageError, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))


def test_precision_auto_is_fp32_on_cpu_and_explicit_choices_are_kept():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(UsageError, match="does not support fp16"):
        resolve_precision("fp16", cpu, supports_fp16=False)


def test_out_of_memory_is_recognised_across_backends():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_the_reason_says_which_choices_were_requested():
    assert choose("cpu", "fp32").reason == "cpu, fp32 (requested)"
    assert choose("auto", "fp32").reason.endswith("(device auto-selected, precision requested)")
    assert choose("cpu", "auto").reason == "cpu, fp32 (device requested, precision auto-selected)"


def test_auto_precision_on_the_cpu_is_bf16_only_where_it_is_native_and_measured(monkeypatch):
    from deblur import devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cpu, cpu_bf16=True) == "bf16"
    assert resolve_precision("auto", cpu, cpu_bf16=False) == "fp32"  # not measured for this model
    assert resolve_precision("auto", cpu, supports_bf16=False, cpu_bf16=True) == "fp32"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu, cpu_bf16=True) == "fp32"  # emulated bf16 is slower
    assert resolve_precision("fp32", cpu, cpu_bf16=True) == "fp32"
