"""Training batches on the device: real pairs, sharp photos blurred on the fly, and video-frame exposures.

Each batch is drawn from a generator seeded by (seed, step, rank): a resumed run sees exactly the
batches an uninterrupted one would have, with no random state to save.
"""

from __future__ import annotations

import torch

from deblur.errors import InputError
from deblur.training.data import SYNTHETIC_MARGIN, augment, random_crop, step_generator
from deblur.training.frames import clip_batch
from deblur.training.kernels import BlurSettings
from deblur.training.synthesis import synthesize


class BatchMaker:
    """Random (blurry, sharp) training batches from paired examples, sharp examples and video clips.

    A step draws from clips with probability `frames_share` (always, when they are the only data);
    otherwise from pairs or sharp photos, in proportion to how many examples each kind has.
    """

    def __init__(self, paired: list, sharp: list, crop: int, batch_size: int, device,
                 blur: BlurSettings = BlurSettings(), pipeline: str = "srgb", clips: list = (),
                 frames_share: float = 0.0):
        if not paired and not sharp and not clips:
            raise InputError("no training images: pass a paired folder, --sharp DIR and/or --frames DIR")
        self.paired, self.sharp, self.clips = paired, sharp, list(clips)
        self.crop, self.batch_size, self.device = crop, batch_size, torch.device(device)
        self.blur, self.pipeline = blur, pipeline
        self.frames_share = frames_share if (paired or sharp) else 1.0

    def batch(self, seed: int, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        gen = step_generator(seed, step, rank)
        device_gen = step_generator(seed, step, rank, self.device)
        # runs without clips draw nothing here, so their batches stay what they always were
        if self.clips and self.frames_share > 0 and torch.rand(1, generator=gen).item() < self.frames_share:
            return clip_batch(self.clips, self.crop, self.batch_size, gen, device_gen, self.blur)
        total = len(self.paired) + len(self.sharp)
        use_paired = torch.randint(0, total, (1,), generator=gen).item() < len(self.paired)
        pool = self.paired if use_paired else self.sharp
        picks = torch.randint(0, len(pool), (self.batch_size,), generator=gen).tolist()
        if use_paired:
            pairs = [augment(random_crop(pool[i].images()[::-1], self.crop, gen), gen) for i in picks]
            blurry = torch.stack([b for b, _ in pairs]).to(self.device).float() / 255
            sharp = torch.stack([s for _, s in pairs]).to(self.device).float() / 255
            return blurry, sharp
        crops = [augment(random_crop(pool[i].images()[:1], self.crop + SYNTHETIC_MARGIN, gen), gen)[0]
                 for i in picks]
        sharp = torch.stack(crops).to(self.device).float() / 255
        return synthesize(sharp, device_gen, self.blur, self.pipeline)
