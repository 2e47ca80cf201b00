"""Checkpoints: resolving a local directory or hub repo id, safetensors shards <-> modules, and key-name mapping.

The mapping between the on-disk (original Tencent) names and our in-memory names is data: an ordered list of
``(regex, replacement)`` rules per direction. Loading accepts both spellings (in-memory names pass through the load
rules unchanged); saving always writes the on-disk spelling, so checkpoints we write load in transformers and in
the official tools.

Weights are assigned tensor by tensor into a model built on the meta device, so loading never holds two full
copies of the weights.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from safetensors import safe_open
from safetensors.torch import save_file

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"

Rules = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StackedSlice:
    """An on-disk per-expert tensor ``<module>.<e>.<disk>`` that is row block ``part`` (of ``parts`` equal blocks)
    of expert e's slice of the stacked in-memory parameter ``<module>.<param>`` (shape (E, rows, cols))."""

    disk: str
    param: str
    part: int = 0
    parts: int = 1


@dataclass(frozen=True)
class CheckpointFormat:
    load_rules: Rules  # on-disk (or in-memory) name -> in-memory name
    save_rules: Rules  # in-memory name -> on-disk name
    stacked: tuple[StackedSlice, ...] = ()  # per-expert tensors stacked at load, split again at save

    def to_memory(self, name: str) -> str:
        return _apply(self.load_rules, name)

    def to_disk(self, name: str) -> str:
        return _apply(self.save_rules, name)

    def locate_slice(self, name: str) -> tuple[str, int, StackedSlice] | None:
        """(stacked parameter name, expert, slice) for an in-memory-spelled per-expert name, else None."""
        match = _EXPERT_KEY.match(name)
        if match is None:
            return None
        for spec in self.stacked:
            if match["suffix"] == spec.disk:
                return f"{match['module']}.{spec.param}", int(match["expert"]), spec
        return None

    def split_stacked(self, name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The per-expert on-disk tensors (views) of a stacked parameter, or None if ``name`` is not stacked."""
        module, _, param = name.rpartition(".")
        specs = [spec for spec in self.stacked if spec.param == param]
        if not specs or not module.endswith(".experts"):
            return None
        out = {}
        for expert in range(tensor.shape[0]):
            for spec in specs:
                out[self.to_disk(f"{module}.{expert}.{spec.disk}")] = tensor[expert].chunk(spec.parts)[spec.part]
        return out


_EXPERT_KEY = re.compile(r"^(?P<module>.+\.experts)\.(?P<expert>\d+)\.(?P<suffix>.+)$")


def _apply(rules: Rules, name: str) -> str:
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name


# spec 7.1: HunYuanVL on disk uses `model.*` for the text stack and `vit.*` for the vision tower + merger
HUNYUAN_VL_FORMAT = CheckpointFormat(
    load_rules=(
        (r"^(?:model\.)?vit\.(?:vit\.)?", "model.vision_tower."),
        (r"^model\.(?!language_model\.|vision_tower\.)", "model.language_model."),
        (r"^(model\.vision_tower\.layers\.\d+\.)input_layernorm\.", r"\1layer_norm1."),
        (r"^(model\.vision_tower\.layers\.\d+\.)post_attention_layernorm\.", r"\1layer_norm2."),
        (r"\.mlp\.dense_h_to_4h\.", ".mlp.fc1."),
        (r"\.mlp\.dense_4h_to_h\.", ".mlp.fc2."),
        (r"\.perceive\.proj\.0\.", ".patch_merger.proj_conv."),
        (r"\.perceive\.proj\.2\.", ".patch_merger.proj_out."),
        (r"\.perceive\.", ".patch_merger."),
    ),
    save_rules=(
        (r"^model\.language_model\.", "model."),
        (r"^model\.vision_tower\.", "vit."),
        (r"^(vit\.layers\.\d+\.)layer_norm1\.", r"\1input_layernorm."),
        (r"^(vit\.layers\.\d+\.)layer_norm2\.", r"\1post_attention_layernorm."),
        (r"^(vit\.layers\.\d+\.mlp\.)fc1\.", r"\1dense_h_to_4h."),
        (r"^(vit\.layers\.\d+\.mlp\.)fc2\.", r"\1dense_4h_to_h."),
        (r"^vit\.patch_merger\.proj_conv\.", "vit.perceive.proj.0."),
        (r"^vit\.patch_merger\.proj_out\.", "vit.perceive.proj.2."),
        (r"^vit\.patch_merger\.", "vit.perceive."),
    ),
)


# spec 7.2/7.3: the Dense/MoE LMs keep their names on disk, except that MoE experts are stored one per key
# (`mlp.experts.{e}.{gate,up,down}_proj.weight`) and held stacked in memory (`gate_up_proj` (E, 2I, H), gate rows
# first; `down_proj` (E, H, I))
MOE_EXPERT_SLICES = (
    StackedSlice("gate_proj.weight", "gate_up_proj", part=0, parts=2),
    StackedSlice("up_proj.weight", "gate_up_proj", part=1, parts=2),
    StackedSlice("down_proj.weight", "down_proj"),
)
HUNYUAN_TEXT_FORMAT = CheckpointFormat(load_rules=((r"^(?!model\.|lm_head\.|score\.)", "model."),), save_rules=(),
                                       stacked=MOE_EXPERT_SLICES)
# a bare decoder (``*Model``) reads full checkpoints (dropping the ``model.`` prefix) and writes the prefix, so
# what it saves loads into the ``*ForCausalLM`` class as well
HUNYUAN_TEXT_BASE_FORMAT = CheckpointFormat(load_rules=((r"^model\.", ""),), save_rules=((r"^", "model."),),
                                            stacked=MOE_EXPERT_SLICES)


class CheckpointError(ValueError):
    """A checkpoint that does not match the model (missing / unexpected keys, wrong shapes, no weight files)."""


# ---------------------------------------------------------------------------------------------------------------------
# Locating files
# ---------------------------------------------------------------------------------------------------------------------


def _offline_hint(repo_id: str, subfolder: str) -> str:
    sub = f" (subfolder {subfolder!r})" if subfolder else ""
    return (
        f"Could not fetch {repo_id!r}{sub} from the Hugging Face hub and it is not in the local cache. If this "
        "machine is offline, download the checkpoint where there is network, e.g. "
        f"`huggingface-cli download {repo_id} --local-dir ./{repo_id.split('/')[-1]}`, copy it here and pass the "
        "local directory instead of the repo id."
    )


def _looks_like_repo_id(path: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", path)) and not path.startswith((".", "/"))


def resolve_file(path_or_repo_id: str | os.PathLike, filename: str, *, subfolder: str = "", revision: str | None = None,
                 cache_dir: str | None = None, local_files_only: bool = False, token: str | bool | None = None,
                 optional: bool = False) -> str | None:
    """Local path of ``filename`` inside a local checkpoint directory or a hub repo (local cache first)."""
    path = str(path_or_repo_id)
    if os.path.isdir(path):
        candidate = os.path.join(path, subfolder, filename)
        if os.path.isfile(candidate):
            return candidate
        if optional:
            return None
        raise FileNotFoundError(f"{filename} not found in checkpoint directory {os.path.join(path, subfolder)}")
    if not _looks_like_repo_id(path):
        raise FileNotFoundError(
            f"{path!r} is neither an existing local directory nor a hub repo id of the form 'owner/name'")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    kwargs = dict(subfolder=subfolder or None, revision=revision, cache_dir=cache_dir, token=token)
    try:
        return hf_hub_download(path, filename, local_files_only=True, **kwargs)
    except Exception:  # not cached: fall through to the network
        pass
    try:
        return hf_hub_download(path, filename, local_files_only=local_files_only, **kwargs)
    except LocalEntryNotFoundError as err:  # offline (HF_HUB_OFFLINE, local_files_only, no connection)
        if optional:
            return None
        raise OSError(_offline_hint(path, subfolder)) from err
    except EntryNotFoundError:  # the repo answered: no such file
        if optional:
            return None
        raise FileNotFoundError(f"{filename} not found in hub repo {path!r}") from None
    except Exception as err:
        raise OSError(_offline_hint(path, subfolder)) from err


def read_json_object(path: str) -> dict:
    """A JSON file holding an object; malformed files raise ``ValueError`` naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_optional_json(path_or_repo_id: str | os.PathLike, filename: str, *, subfolder: str = "",
                       **hub_kwargs) -> dict:
    """``filename`` of a checkpoint as a dict, or ``{}`` when the checkpoint has no such file."""
    path = resolve_file(path_or_repo_id, filename, subfolder=subfolder, optional=True, **hub_kwargs)
    return {} if path is None else read_json_object(path)


def weight_files(path_or_repo_id: str | os.PathLike, *, subfolder: str = "", **hub_kwargs) -> list[str]:
    """Local paths of every safetensors shard of a checkpoint (sharded via the index json, or a single file)."""
    index = resolve_file(path_or_repo_id, WEIGHTS_INDEX_NAME, subfolder=subfolder, optional=True, **hub_kwargs)
    if index is not None:
        with open(index, encoding="utf-8") as fh:
            weight_map = json.load(fh).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index} has no 'weight_map'")
        return [resolve_file(path_or_repo_id, shard, subfolder=subfolder, **hub_kwargs)
                for shard in sorted(set(weight_map.values()))]
    if not os.path.isdir(str(path_or_repo_id)):  # a hub repo: the required file's own error says what is wrong
        return [resolve_file(path_or_repo_id, WEIGHTS_NAME, subfolder=subfolder, **hub_kwargs)]
    single = resolve_file(path_or_repo_id, WEIGHTS_NAME, subfolder=subfolder, optional=True, **hub_kwargs)
    if single is not None:
        return [single]
    where = os.path.join(str(path_or_repo_id), subfolder)
    found = sorted(os.listdir(where)) if os.path.isdir(where) else []
    raise CheckpointError(f"no {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME} in {where}" +
                          (f" (found: {', '.join(found[:10])})" if found else ""))


# ---------------------------------------------------------------------------------------------------------------------
# Reading and writing tensors
# ---------------------------------------------------------------------------------------------------------------------


@contextmanager
def _open_safetensors(path: str, device: str = "cpu"):
    """``safe_open`` whose failures (truncated file, corrupt header) become a CheckpointError naming the file."""
    try:
        fh = safe_open(path, framework="pt", device=device)
    except Exception as err:  # safetensors raises its own error type
        raise CheckpointError(f"cannot read safetensors file {path}: {err}") from None
    with fh:
        try:
            yield fh
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(f"cannot read safetensors file {path}: {err}") from None


def iter_tensors(files: list[str], device: str = "cpu") -> Iterator[tuple[str, torch.Tensor]]:
    for path in files:
        with _open_safetensors(path, device) as fh:
            for key in fh.keys():
                yield key, fh.get_tensor(key)


_SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def checkpoint_dtype(files: list[str]) -> torch.dtype | None:
    """dtype of the first floating-point tensor in the checkpoint (for ``dtype="auto"``)."""
    for path in files:
        with _open_safetensors(path) as fh:
            for key in fh.keys():
                dtype = _SAFETENSORS_DTYPES.get(fh.get_slice(key).get_dtype())
                if dtype is not None:
                    return dtype
    return None


def parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B)\s*", size, re.IGNORECASE)
    if not match:
        raise ValueError(f"max_shard_size={size!r} is invalid: expected an int of bytes or e.g. '5GB', '500MB'")
    units = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    return int(float(match.group(1)) * units[match.group(2).lower()])


def save_tensors(tensors: dict[str, torch.Tensor], save_directory: str, max_shard_size: int | str = "5GB") -> list[str]:
    """Write ``tensors`` as one ``model.safetensors`` or as shards plus ``model.safetensors.index.json``."""
    limit = parse_size(max_shard_size)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][name] = tensor.detach().contiguous().cpu()
        size += nbytes
    os.makedirs(save_directory, exist_ok=True)
    for stale in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME):
        if os.path.exists(os.path.join(save_directory, stale)):
            os.remove(os.path.join(save_directory, stale))
    if len(shards) == 1:
        save_file(shards[0], os.path.join(save_directory, WEIGHTS_NAME), metadata={"format": "pt"})
        return [WEIGHTS_NAME]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for name, shard in zip(names, shards):
        save_file(shard, os.path.join(save_directory, name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(save_directory, WEIGHTS_INDEX_NAME), "w", encoding="utf-8") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2)
    return names
