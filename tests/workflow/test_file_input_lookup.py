"""Finding the file inputs of a workflow reads the node definitions of the classes it uses
only: a server lists hundreds of classes, and the look-up runs twice on every submit."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from comfy_nb.emulator._object_info import recorded_object_info
from comfy_nb.workflow._inputs import pending_uploads


class OnlyLookups(Mapping[str, Any]):
    """Node definitions that may be looked up by class but not listed, and that say which
    classes were looked up."""

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        self.read.add(name)
        return self._info[name]

    def __contains__(self, name: object) -> bool:
        return name in self._info

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("every node class was listed")

    def __len__(self) -> int:
        return len(self._info)


def workflow(image: Any) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "x"}},
    }


def test_pending_uploads_reads_the_classes_used(tmp_path: Any) -> None:
    info = OnlyLookups(recorded_object_info())
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n")
    found = pending_uploads(workflow(str(photo)), info)  # type: ignore[arg-type]
    assert found == [("1", "image", str(photo))]
    assert info.read <= {"LoadImage", "ImageInvert", "SaveImage"}

