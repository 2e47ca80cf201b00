"""``BatchFeature``: the dict the processors return, convertible to torch / NumPy and movable with ``.to()``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

RETURN_TENSORS = ("pt", "np", None)


def check_return_tensors(return_tensors: Any) -> str | None:
    if return_tensors not in RETURN_TENSORS:
        raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
    return return_tensors


def _is_ragged(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple))
            and len({len(row) for row in value}) > 1)


def to_tensor(key: str, value: Any, return_tensors: str | None) -> Any:
    if return_tensors is None or value is None:
        return value
    if _is_ragged(value):
        raise ValueError(f"{key!r} has rows of different lengths {sorted({len(r) for r in value})}; pass "
                         "padding=True (or 'max_length') to get a tensor")
    if return_tensors == "pt":
        if isinstance(value, torch.Tensor):
            return value
        return torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else torch.tensor(value)
    if isinstance(value, torch.Tensor):
        return value.numpy()
    return np.asarray(value)


class BatchFeature(dict):
    """Model inputs by name; ``inputs.input_ids`` works like ``inputs["input_ids"]``.

    >>> inputs = processor(text=prompt, images=image, return_tensors="pt").to("cuda")   # doctest: +SKIP
    >>> model.generate(**inputs)                                                       # doctest: +SKIP
    """

    def __init__(self, data: dict | None = None, tensor_type: str | None = None):
        super().__init__(data or {})
        self.convert_to_tensors(tensor_type)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchFeature has no field {name!r}; fields: {sorted(self)}") from None

    def convert_to_tensors(self, tensor_type: str | None = None) -> "BatchFeature":
        check_return_tensors(tensor_type)
        for key, value in self.items():
            self[key] = to_tensor(key, value, tensor_type)
        return self

    def to(self, *args, **kwargs) -> "BatchFeature":
        """Move every tensor like ``Tensor.to``; a dtype applies to floating-point tensors only (ids stay int)."""
        dtype = kwargs.get("dtype") or next((a for a in args if isinstance(a, torch.dtype)), None)
        device = kwargs.get("device") or next((a for a in args if isinstance(a, (str, torch.device, int))), None)
        for key, value in self.items():
            if not isinstance(value, torch.Tensor):
                continue
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype=dtype)
            if device is not None:
                value = value.to(device=device, non_blocking=kwargs.get("non_blocking", False))
            self[key] = value
        return self
