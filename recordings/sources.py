"""Read-only view of a recording folder or an evidence zip, by relative POSIX path."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import IO


class RecordingSource:
    def names(self) -> list[str]:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def size(self, name: str) -> int | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FolderSource(RecordingSource):
    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def open(self, name: str) -> IO[bytes]:
        return (self.root / name).open("rb")

    def size(self, name: str) -> int | None:
        path = self.root / name
        return path.stat().st_size if path.is_file() else None


class ZipSource(RecordingSource):
    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path)
        self._infos = {i.filename: i for i in self._zip.infolist() if not i.is_dir()}

    def names(self) -> list[str]:
        return sorted(self._infos)

    def open(self, name: str) -> IO[bytes]:
        return self._zip.open(self._infos[name])

    def size(self, name: str) -> int | None:
        info = self._infos.get(name)
        return info.file_size if info is not None else None

    def close(self) -> None:
        self._zip.close()


def open_source(path: Path) -> RecordingSource | None:
    """None when `path` is neither a folder nor a zip file."""
    if path.is_dir():
        return FolderSource(path)
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            return ZipSource(path)
        except (zipfile.BadZipFile, OSError):
            return None
    return None


def sibling(manifest_name: str, file_name: str) -> str | None:
    """Path of a segment next to its manifest; None if the name tries to leave the folder."""
    pure = PurePosixPath(file_name)
    if pure.is_absolute() or len(pure.parts) != 1 or pure.name in ("", ".", ".."):
        return None
    parent = PurePosixPath(manifest_name).parent
    return (parent / pure.name).as_posix() if str(parent) != "." else pure.name
