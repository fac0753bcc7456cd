"""Non-uniform camera shake: a hand-held camera's small rotations, rendered as homography-warped copies.

A shaking camera turns about all three axes; a rotation about the optical axis (roll) smears pixels
far from the image centre more than near it, so the blur changes across the frame, as Kohler et al.
(ECCV 2012) measured on real cameras and as a single kernel cannot. Following Whyte et al. (2012),
the exposure is the average of the scene seen through the homographies K R(t) K^-1 along a random
trajectory. Crops are windows of a virtual photo: the principal point may lie far outside the crop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deblur.training.kernels import uniform

POSES = 48  # samples of the trajectory; about one pixel apart for the longest blurs


def _rotations(angles: torch.Tensor) -> torch.Tensor:
    """(..., 3) yaw, pitch, roll in radians -> (..., 3, 3) rotation matrices R = Rz(roll) Ry(yaw) Rx(pitch)."""
    yaw, pitch, roll = angles.unbind(-1)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)

    def matrix(rows):
        return torch.stack([torch.stack(row, -1) for row in rows], -2)

    rx = matrix([[one, zero, zero], [zero, pitch.cos(), -pitch.sin()], [zero, pitch.sin(), pitch.cos()]])
    ry = matrix([[yaw.cos(), zero, yaw.sin()], [zero, one, zero], [-yaw.sin(), zero, yaw.cos()]])
    rz = matrix([[roll.cos(), -roll.sin(), zero], [roll.sin(), roll.cos(), zero], [zero, zero, one]])
    return rz @ ry @ rx


def homographies(angles: torch.Tensor, focal: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """(N, P, 3) angles, (N,) focal lengths and (N, 2) principal points in pixels -> (N, P, 3, 3) K R K^-1."""
    n = angles.shape[0]
    k = torch.zeros(n, 3, 3, device=angles.device, dtype=angles.dtype)
    k[:, 0, 0] = k[:, 1, 1] = focal
    k[:, :2, 2] = centre
    k[:, 2, 2] = 1
    return k[:, None] @ _rotations(angles) @ torch.linalg.inv(k)[:, None]


def _apply(h: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(N, P, 3, 3) homographies applied to (M, 2) pixel positions -> (N, P, M, 2)."""
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], 1)  # (M, 3)
    mapped = h @ homogeneous.T  # (N, P, 3, M)
    return (mapped[..., :2, :] / mapped[..., 2:, :]).transpose(-1, -2)


def random_trajectories(n: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
    """(N, POSES, 3) unscaled yaw/pitch/roll paths: a random walk with inertia like a hand, mean zero.

    Roll gets its own random weight (0 to 3x): some shakes barely turn about the optical axis."""
    accel = torch.randn(n, POSES, 3, generator=generator, device=device)
    velocity = torch.randn(n, 1, 3, generator=generator, device=device) * 2 + accel.cumsum(1) * 0.35
    path = velocity.cumsum(1)
    path = path * torch.cat([torch.ones(n, 2, device=device),
                             3 * torch.rand(n, 1, generator=generator, device=device)], 1)[:, None]
    return path - path.mean(1, keepdim=True)


def camera_shake_blur(images: torch.Tensor, generator: torch.Generator, margin: int, min_length: float,
                      max_length: float) -> torch.Tensor:
    """Blur (N, C, H, W) images by random camera rotations; 'valid' like a kernel blur: the result loses
    `margin` pixels on each side, and no pixel moves further than `margin`.

    Each image's longest blur path spans min_length to max_length pixels (at most 2 * margin).
    """
    n, c, height, width = images.shape
    device, dtype = images.device, torch.float32
    out_h, out_w = height - 2 * margin, width - 2 * margin
    size = max(out_h, out_w)
    focal = size * (1 + 2 * torch.rand(n, generator=generator, device=device))
    # the principal point: anywhere within half a focal length of the crop's centre
    offset = (torch.rand(n, 2, generator=generator, device=device) - 0.5) * focal[:, None]
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], device=device) + offset
    length = uniform(n, min_length, min(max_length, 2 * margin), generator, device)
    path = random_trajectories(n, generator, device)

    # Scale the path so that the output's corners and centre move at most length / 2 from the mean pose;
    # rotations this small are nearly linear in angle, and the second pass corrects what is not.
    probes = torch.tensor([[margin, margin], [margin + out_w - 1, margin], [margin, margin + out_h - 1],
                           [margin + out_w - 1, margin + out_h - 1], [(width - 1) / 2, (height - 1) / 2]],
                          device=device, dtype=dtype)
    angles = path / focal[:, None, None]
    for _ in range(2):
        moved = (_apply(homographies(angles, focal, centre), probes) - probes).norm(dim=-1).amax((1, 2))
        angles = angles * ((length / 2) / moved.clamp_min(1e-6))[:, None, None]

    ys, xs = torch.meshgrid(torch.arange(out_h, device=device, dtype=dtype) + margin,
                            torch.arange(out_w, device=device, dtype=dtype) + margin, indexing="ij")
    pixels = torch.stack([xs.flatten(), ys.flatten()], 1)
    scale = torch.tensor([2 / width, 2 / height], device=device)
    h = homographies(angles, focal, centre)
    total = torch.zeros(n, c, out_h, out_w, device=device, dtype=images.dtype)
    for pose in range(POSES):
        seen = _apply(h[:, pose:pose + 1], pixels)[:, 0]  # (N, M, 2) where each output pixel looks
        grid = ((seen + 0.5) * scale - 1).view(n, out_h, out_w, 2)
        total += F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border",
                               align_corners=False)
    return total / POSES

