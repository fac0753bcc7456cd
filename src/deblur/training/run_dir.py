"""A training run's folder: everything needed to use the result and to resume, written atomically.

    RUN_DIR/config.json        what was asked (model, data, hyper-parameters): `--resume` reads it
    RUN_DIR/model.safetensors  the deblurring weights (EMA) + the reblurring module: `--weights` takes it
    RUN_DIR/state.pt           raw weights, optimiser and schedule state, step: for `--resume`
    RUN_DIR/log.jsonl          one JSON object per logged step and per validation
    RUN_DIR/previews/          blurry | output | sharp at each validation

Each file is replaced atomically, so a crash at any moment leaves the previous good one.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import torch

from deblur.checkpoints import write_checkpoint
from deblur.errors import InputError
from deblur.files import write_atomic


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def model_file(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def state_file(self) -> Path:
        return self.path / "state.pt"

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def log_file(self) -> Path:
        return self.path / "log.jsonl"

    def has_run(self) -> bool:
        return self.state_file.exists() or self.config_file.exists()

    def write_config(self, config: dict) -> None:
        write_atomic(self.config_file, json.dumps(config, indent=2, sort_keys=True).encode(), overwrite=True)

    def read_config(self) -> dict:
        try:
            return json.loads(self.config_file.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot resume from '{self.path}': its config.json is missing or damaged ({exc})") from None

    def save_model(self, state: dict, arch: str, config: dict, step: int, reblur=None) -> None:
        write_checkpoint(self.model_file, state, arch, config, extra={"step": step, "trained_by": "deblur train"},
                         reblur=reblur)

    def save_state(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomic(self.state_file, buffer.getvalue(), overwrite=True)

    def load_state(self, device) -> dict:
        if not self.state_file.exists():
            raise InputError(f"cannot resume from '{self.path}': it has no state.pt (was it saved?)")
        # weights_only: tensors and plain containers, never arbitrary objects
        return torch.load(self.state_file, map_location=device, weights_only=True)

    def log(self, record: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def write_preview(self, step: int, blurry: torch.Tensor, output: torch.Tensor, sharp: torch.Tensor) -> Path:
        """blurry | output | sharp, side by side, as a JPEG."""
        from PIL import Image

        from deblur.training.data_preview import side_by_side

        buffer = io.BytesIO()
        Image.fromarray(side_by_side([blurry, output, sharp], 4)).save(buffer, "JPEG", quality=92)
        path = self.path / "previews" / f"step_{step:07d}.jpg"
        write_atomic(path, buffer.getvalue(), overwrite=True)
        return path
