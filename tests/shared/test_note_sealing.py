"""A task result's note travels sealed: only the key's holders read it, and only for its task."""

from __future__ import annotations

from zhibao_shared.note_sealing import NoteSealer

TASK = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def test_a_sealed_note_opens_with_the_same_key_for_its_task_only() -> None:
    sealed = NoteSealer(b"k" * 40).seal(TASK, "王芳的邻居说她已搬走")
    assert "王芳" not in sealed
    assert NoteSealer(b"k" * 40).open(TASK, sealed) == "王芳的邻居说她已搬走"
    assert NoteSealer(b"k" * 40).open(OTHER, sealed) is None
    assert NoteSealer(b"x" * 40).open(TASK, sealed) is None
    assert NoteSealer(b"k" * 40).open(TASK, "not-a-sealed-note") is None
