"""Downloading checkpoint files from a Hugging Face Hub, and nothing else.

Every call passes the endpoint and the offline choice explicitly: huggingface_hub reads HF_ENDPOINT
and HF_HUB_OFFLINE once at import, which makes its own reading depend on import order.
Errors become ModelError messages that say which repository, revision and file, and what to do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from deblur.errors import ModelError

DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE_WORDS = {"1", "on", "yes", "true"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")

# progress(filename, bytes_done, bytes_total or None)
DownloadProgress = Callable[[str, int, Optional[int]], None]


def endpoint() -> str:
    return (os.environ.get("DEBLUR_HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline_requested(flag: bool = False) -> bool:
    """--offline, DEBLUR_OFFLINE or HF_HUB_OFFLINE (the hub's own switch, honoured as well)."""
    env = (os.environ.get(name, "").strip().lower() for name in ("DEBLUR_OFFLINE", "HF_HUB_OFFLINE"))
    return flag or any(value in TRUE_WORDS for value in env)


@dataclass(frozen=True)
class HubReference:
    """`hf://org/repo/path/in/repo.safetensors[@revision]`."""

    repo_id: str
    filename: str
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> "HubReference":
        body = text[len("hf://"):]
        path, _, revision = body.rpartition("@") if "@" in body else (body, "", None)
        parts = path.split("/")
        if len(parts) < 3 or not all(parts) or ".." in parts:
            raise ModelError(f"'{text}' is not a hub reference; write hf://ORG/REPO/FILE.safetensors[@REVISION]")
        return cls(repo_id="/".join(parts[:2]), filename="/".join(parts[2:]), revision=revision or None)

    def __str__(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


def is_reference(text: str) -> bool:
    return str(text).startswith("hf://")


def download(repo_id: str, filename: str, revision: str | None, *, local_dir: Path | None = None,
             cache_dir: Path | None = None, offline: bool = False, progress: DownloadProgress | None = None,
             unavailable_hint: str = "") -> Path:
    """The local path of `filename` from the hub, fetched if needed (from the cache only when offline).

    `local_dir` stores a plain copy (our per-model store); `cache_dir` uses the hub's own cache
    layout (blobs named by ETag, snapshots per commit). A transfer is written to a temporary file
    and renamed when complete, so an interrupted one never looks finished.
    """
    os.environ.setdefault("HF_HUB_DISABLE_SYMLINKS_WARNING", "1")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)

    where = endpoint()
    at = f"{repo_id}@{revision or 'main'}"
    def fetch(local_files_only: bool) -> str:
        return hf_hub_download(
            repo_id, filename, revision=revision, endpoint=where, local_dir=local_dir, cache_dir=cache_dir,
            local_files_only=local_files_only, tqdm_class=_progress_bar_class(filename, progress),
        )

    if revision and COMMIT.match(revision) and not offline:
        try:  # a commit never changes: a cached copy needs no request at all
            return Path(fetch(local_files_only=True))
        except LocalEntryNotFoundError:
            pass
    unreachable = None if offline else _connection_refused(repo_id, filename, revision, where)
    try:
        path = fetch(local_files_only=offline or unreachable is not None)
    except LocalEntryNotFoundError as exc:
        if offline:
            reason = "offline mode is on, and it is not cached"
        else:
            reason = f"the hub at {where} cannot be reached ({unreachable or _first_line(exc.__cause__ or exc)})"
        raise ModelError(f"cannot get {filename} from {at}: {reason}{unavailable_hint}") from None
    except RevisionNotFoundError:
        raise ModelError(f"revision '{revision}' does not exist in {repo_id} on {where}") from None
    except GatedRepoError:
        raise ModelError(f"{repo_id} on {where} is gated: accept its terms on the hub, then set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ModelError(f"no repository {repo_id} on {where} (a private one needs HF_TOKEN)") from None
    except EntryNotFoundError:
        raise ModelError(f"{at} on {where} has no file {filename}") from None
    except HfHubHTTPError as exc:
        raise ModelError(f"the hub at {where} refused {filename} from {at}: {_first_line(exc)}") from None
    except Exception as exc:  # a transfer cut short, a full disk, a broken connection: nothing is kept
        raise ModelError(f"downloading {filename} from {at} on {where} failed ({type(exc).__name__}: "
                         f"{_first_line(exc)}); nothing was kept, run the command again to retry") from None
    return Path(path)


def _connection_refused(repo_id: str, filename: str, revision: str | None, where: str) -> str | None:
    """Why no connection to the hub can be made at all (no network, refused, unknown host), else None.

    One HEAD without retries: huggingface_hub retries such failures for ~23 s when nothing is
    cached, which only delays the answer for a machine that is simply offline. Slow or failing
    servers (timeouts, 5xx) are left to its retries.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision, endpoint=where), endpoint=where)
    except Exception as exc:  # noqa: BLE001 - anything but a failed connection is for the real call to report
        # httpx and httpx2 (huggingface_hub 1.x / 2.x) both name it ConnectError
        if any(cls.__name__ == "ConnectError" for cls in type(exc).__mro__):
            return _first_line(exc)
    return None


def etag_sha256(path: Path) -> str | None:
    """In the hub's cache a file links to blobs/<ETag>; for LFS files the ETag is their sha256."""
    name = Path(os.path.realpath(path)).name
    return name if HEX64.match(name) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _progress_bar_class(filename: str, progress: DownloadProgress | None):
    """A tqdm stand-in that forwards byte counts to `progress` (and draws nothing itself)."""

    class ProgressForwarder:
        def __init__(self, *args, total=None, initial=0, **kwargs):
            self.total, self.n = total, initial
            self._report()

        def update(self, n=1):
            self.n += n
            self._report()

        def _report(self):
            if progress is not None:
                progress(filename, self.n, self.total)

        def close(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    return ProgressForwarder
