"""FileStorage: the storage contract, plus what only a maildir-style file storage has to prove.

* the contract suite, twice: with the thread lock (and ``levels=2``), and without it (``levels=0``);
* the seed's parameters, defaults and examples (the seed's absolute paths are accepted lazily, then run with
  the same parameters under a temporary root);
* the layout on disk: sortable ready names, token-named in-flight files whose mtime is the lease, hashed
  key/value folders, queue names that cannot escape ``path``;
* result retention (expired values gone on read and swept from disk), stray and half-written files ignored;
* bad input: unwritable or impossible paths and bad parameters, refused by name with nothing created.

Crash points and several processes at once are in ``tests/chaos/test_file_processes.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_tasks_q import FileHuey
from django_tasks_q.backends.base import BaseStorage, EmptyData
from django_tasks_q.backends.file import FileStorage
from django_tasks_q.exceptions import ConfigurationError, StorageError
from tests.support.storage_contract import StorageContract


class TestFileStorage(StorageContract):
    __test__ = True

    supports_named_isolation = True
    options: dict[str, Any] = {}

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[FileStorage]:
        storage = FileStorage("contract", path=tmp_path / "queues", **self.options)
        yield storage
        storage.flush_all()
        storage.close()

    def open_storage(self, storage: BaseStorage, name: str) -> BaseStorage:
        assert isinstance(storage, FileStorage)
        return FileStorage(name, path=storage.path, **self.options)

    unreadable_kinds = ("folder", "fifo", "sparse_file", "symlink_to_dev_zero")

    def corrupt_record(self, storage: BaseStorage, data: bytes, kind: str, in_flight: bool) -> None:
        assert isinstance(storage, FileStorage)
        replace_message_file(Path(storage.root) / ("inflight" if in_flight else "ready"), data, kind)


class TestFileStorageWithoutThreadLockWithFsync(TestFileStorage):
    options = {"use_thread_lock": False, "levels": 0, "fsync": True}


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def replace_message_file(folder: Path, data: bytes, kind: str) -> Path:
    """Put something that is not a readable message file where the message ``data`` is, under its name."""
    regular = [p for p in folder.iterdir() if not p.is_symlink() and p.is_file()]
    (path,) = [p for p in regular if p.read_bytes() == data]
    path.unlink()
    if kind == "folder":
        path.mkdir()
        (path / "inside").write_bytes(b"x")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "sparse_file":
        with open(path, "wb") as handle:
            handle.truncate(3 * 1024**3)
    elif kind == "symlink_to_dev_zero":
        path.symlink_to("/dev/zero")
    else:
        raise AssertionError(f"unknown kind {kind!r}")
    return path


# ---------------------------------------------------------------------------- parameters and defaults


def test_seed_parameters_and_defaults_and_nothing_touched_before_use() -> None:
    existed = os.path.exists("/tmp/huey")
    storage = FileStorage()
    assert (storage.name, storage.path, storage.levels, storage.use_thread_lock, storage.fsync) == (
        "huey",
        "/tmp/huey",
        2,
        True,
        False,
    )
    assert storage.root == "/tmp/huey/huey"
    assert (FileStorage.blocking, FileStorage.priority) == (False, True)
    assert FileStorage.features == {
        "reliable", "dead_letters", "counters", "key_listing", "wait_for_messages", "reap_by_progress"
    }
    assert os.path.exists("/tmp/huey") is existed
    assert "/tmp/huey" in repr(storage)


def test_folders_are_created_on_first_use(tmp_path: Path) -> None:
    storage = FileStorage("q", path=tmp_path / "new" / "folder")
    assert not (tmp_path / "new").exists()
    assert storage.queue_size() == 0
    assert files(tmp_path / "new" / "folder" / "q") == [
        "counters",
        "data",
        "dead",
        "inflight",
        "locks",
        "ready",
        "schedule",
        "tmp",
    ]


def test_relative_path_is_resolved_when_the_storage_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = FileStorage("q", path="queues")
    monkeypatch.chdir("/")
    storage.enqueue(b"m")
    assert (tmp_path / "queues" / "q" / "ready").is_dir()


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("emails", "emails"),
        ("../escape", "%2E.%2Fescape"),
        ("a/b", "a%2Fb"),
        ("ünï", "%C3%BCn%C3%AF"),
        (".", "%2E"),
    ],
)
def test_queue_names_become_one_folder_inside_path(tmp_path: Path, name: str, folder: str) -> None:
    storage = FileStorage(name, path=tmp_path)
    storage.enqueue(b"m")
    assert files(tmp_path) == [folder]
    assert storage.enqueued_items() == [b"m"]


# ---------------------------------------------------------------------------- layout


def test_ready_files_sort_in_delivery_order(tmp_path: Path) -> None:
    storage = FileStorage("order", path=tmp_path)
    plan = [(b"low", -5), (b"zero-1", None), (b"high", 7), (b"zero-2", 0), (b"top", 2**62)]
    for data, priority in plan:
        storage.enqueue(data, priority)
    ready = tmp_path / "order" / "ready"
    names = files(ready)
    assert all(re.fullmatch(r"[0-9a-f]{16}-[0-9]{20}-[0-9a-f]{32}\.0", n) for n in names)
    assert [(ready / n).read_bytes() for n in names] == [b"top", b"high", b"zero-1", b"zero-2", b"low"]
    assert storage.enqueued_items() == [b"top", b"high", b"zero-1", b"zero-2", b"low"]
    with pytest.raises(ValueError, match="64-bit"):
        storage.enqueue(b"too high", 2**63)
    assert storage.queue_size() == 5


def test_in_flight_file_carries_the_token_and_its_mtime_is_the_lease(tmp_path: Path) -> None:
    storage = FileStorage("lease", path=tmp_path)
    storage.enqueue(b"m", 3)
    reservation = storage.reserve(100)
    assert reservation is not None
    inflight = tmp_path / "lease" / "inflight"
    (name,) = files(inflight)
    assert name.startswith(f"{reservation.message_id}.1.{reservation.token}.")
    assert os.stat(inflight / name).st_mtime == pytest.approx(reservation.deadline, abs=0.01)
    assert files(tmp_path / "lease" / "ready") == []
    assert storage.renew(reservation, 500)
    assert os.stat(inflight / name).st_mtime == pytest.approx(time.time() + 500, abs=2)
    assert storage.release(reservation)
    assert files(tmp_path / "lease" / "ready") == [f"{reservation.message_id}.0"]  # back in its place
    again = storage.reserve(100)
    assert again is not None and again.message_id == reservation.message_id and again.priority == 3
    assert storage.ack(again)
    assert files(inflight) == []


@pytest.mark.parametrize("levels", [0, 2, 3])
def test_key_value_entries_live_in_hashed_folders(tmp_path: Path, levels: int) -> None:
    storage = FileStorage("kv", path=tmp_path, levels=levels)
    storage.put_data("result:1", b"\x00value", is_result=True)
    storage.incr("hits", 2)
    for area in ("data", "counters"):
        (entry,) = [p for p in (tmp_path / "kv" / area).rglob("*") if p.is_file()]
        relative = entry.relative_to(tmp_path / "kv" / area).parts
        assert len(relative) == levels + 1
        assert re.fullmatch(r"[0-9a-f]{64}", relative[-1])
        assert all(part == relative[-1][2 * i : 2 * i + 2] for i, part in enumerate(relative[:-1]))
    (data_file,) = [p for p in (tmp_path / "kv" / "data").rglob("*") if p.is_file()]
    assert data_file.read_bytes().split(b"\n", 1)[1] == b"\x00value"


def test_dead_letter_files(tmp_path: Path) -> None:
    storage = FileStorage("dead", path=tmp_path)
    storage.enqueue(b"poison", -2)
    reservation = storage.reserve(30)
    assert reservation is not None
    assert storage.bury(reservation, "bad_signature", "détail")
    names = files(tmp_path / "dead" / "dead")
    assert len(names) == 2
    msg_name = next(n for n in names if n.endswith(".msg"))
    assert re.fullmatch(rf"[0-9]{{20}}-{reservation.message_id}\.1\.-2\.msg", msg_name)
    (letter,) = storage.dead_letters()
    assert (letter.id, letter.reason, letter.detail, letter.attempts, letter.priority) == (
        reservation.message_id,
        "bad_signature",
        "détail",
        1,
        -2,
    )


def test_a_folder_written_in_the_on_disk_format_is_read_as_it_was_written(tmp_path: Path) -> None:
    """Files named and filled as the layout documents (what earlier versions wrote) are read back unchanged."""
    root = tmp_path / "disk%20q"
    for area in ("ready", "inflight", "schedule", "data", "counters", "dead"):
        (root / area).mkdir(parents=True)

    def message_id(priority: int, ns: int, tail: str) -> str:
        return f"{2**63 - 1 - priority:016x}-{ns:020d}-{tail * 32}"

    def hashed(area: str, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        path = root / area / digest[:2] / digest[2:4] / digest
        path.parent.mkdir(parents=True)
        return path

    now_ns = time.time_ns()
    (root / "ready" / f"{message_id(0, now_ns, 'a')}.0").write_bytes(b"low")
    (root / "ready" / f"{message_id(5, now_ns + 1, 'b')}.2").write_bytes(b"high, delivered twice")
    held = message_id(1, now_ns + 2, "c")
    in_flight = root / "inflight" / f"{held}.1.{'d' * 32}.{now_ns // 1000}"
    in_flight.write_bytes(b"held")
    os.utime(in_flight, ns=(now_ns + 600 * 10**9, now_ns + 600 * 10**9))
    (root / "schedule" / f"{now_ns - 10**9:020d}-{1:020d}-{'e' * 32}.3").write_bytes(b"due")
    (root / "schedule" / f"{now_ns + 3600 * 10**9:020d}-{2:020d}-{'f' * 32}.0").write_bytes(b"later")
    header = {"key": "result:1", "result": True, "expires": None}
    hashed("data", "result:1").write_bytes(json.dumps(header).encode() + b"\nvalue")
    hashed("counters", "hits").write_text(json.dumps({"key": "hits", "value": 4, "expires": None}))
    letter = f"{now_ns:020d}-{'9' * 32}"
    (root / "dead" / f"{letter}.3.-1.msg").write_bytes(b"poison")
    (root / "dead" / f"{letter}.json").write_text(json.dumps({"reason": "error", "detail": "boom"}))

    storage = FileStorage("disk q", path=tmp_path)
    assert storage.enqueued_items() == [b"high, delivered twice", b"low"]
    assert storage.scheduled_items() == [b"due", b"later"]
    (reservation,) = storage.in_flight_items()
    assert (reservation.message_id, reservation.token, reservation.attempt, reservation.data) == (
        held,
        "d" * 32,
        1,
        b"held",
    )
    assert reservation.priority == 1 and reservation.deadline == pytest.approx(now_ns / 1e9 + 600)
    assert storage.task_results() == {"result:1": b"value"}
    assert storage.incr("hits") == 5
    (dead,) = storage.dead_letters()
    assert (dead.id, dead.data, dead.reason, dead.detail, dead.attempts, dead.priority) == (
        "9" * 32,
        b"poison",
        "error",
        "boom",
        3,
        -1,
    )
    first = storage.reserve(30)
    assert first is not None and (first.data, first.attempt, first.priority) == (b"high, delivered twice", 3, 5)
    assert storage.ack(reservation, ("result:2", b"done", None))
    assert storage.peek_data("result:2") == b"done" and storage.in_flight_size() == 1


def test_use_thread_lock_chooses_the_guard(tmp_path: Path) -> None:
    locked = FileStorage("a", path=tmp_path)
    unlocked = FileStorage("b", path=tmp_path, use_thread_lock=False)
    assert locked._guard() is locked._lock
    assert unlocked._guard() is not unlocked._lock


# ---------------------------------------------------------------------------- retention and leftovers


def test_expired_values_are_gone_on_read_and_swept_from_disk(tmp_path: Path) -> None:
    storage = FileStorage("ttl", path=tmp_path)
    storage.put_data("result", b"r", is_result=True, ttl=0.05)
    storage.put_data("keep", b"k", is_result=True)
    assert storage.put_if_empty("lock", b"l", ttl=0.05)
    storage.incr("window", ttl=0.05)
    time.sleep(0.1)
    assert storage.peek_data("result") is EmptyData
    assert storage.has_data_for_key("lock") is False
    assert storage.result_items() == {"keep": b"k"}

    def on_disk() -> int:
        return sum(
            1 for area in ("data", "counters") for p in (tmp_path / "ttl" / area).rglob("*") if p.is_file()
        )

    assert on_disk() == 4, "expired files stay until swept"
    assert storage.purge_expired() == 3
    assert on_disk() == 1
    storage.put_data("again", b"x", ttl=0.05)
    time.sleep(0.1)
    storage.purge_interval = 0  # writes sweep by themselves (normally at most every purge_interval s)
    storage.put_data("trigger", b"y")
    assert on_disk() == 2
    assert storage.peek_data("keep") == b"k"


def test_leftovers_of_a_crash_are_ignored_then_swept(tmp_path: Path) -> None:
    storage = FileStorage("left", path=tmp_path)
    storage.enqueue(b"real")
    root = tmp_path / "left"
    (root / "tmp" / "0123.tmp").write_bytes(b"half a mess")  # a writer died here
    (root / "dead" / f"{'0' * 20}-{'a' * 32}.json").write_text('{"reason": "x", "detail": ""}')  # no message
    for folder in ("ready", "inflight", "schedule", "dead"):
        (root / folder / "README.txt").write_text("not a message")
        (root / folder / ".hidden").write_text("")
    assert storage.queue_size() == 1
    assert storage.enqueued_items() == [b"real"]
    assert storage.in_flight_items() == []
    assert storage.scheduled_items() == []
    assert storage.dead_letters() == []
    assert storage.requeue_expired(time.time() + 3600, 5) == []
    reservation = storage.reserve(30)
    assert reservation is not None and reservation.data == b"real"
    storage.orphan_age = 0
    storage.purge_expired()
    assert files(root / "tmp") == []
    assert files(root / "dead") == [".hidden", "README.txt"]


def test_enqueue_many_that_fails_part_way_keeps_what_it_published_and_no_staged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FileStorage("many", path=tmp_path)
    real_rename = os.rename
    renamed: list[str] = []

    def rename(source: str, destination: str) -> None:  # the disk gives out at the third message
        if len(renamed) == 2:
            raise OSError(28, "No space left on device")
        real_rename(source, destination)
        renamed.append(destination)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(StorageError, match="No space left on device"):
        storage.enqueue_many([(f"m{i}".encode(), None) for i in range(5)])
    monkeypatch.setattr(os, "rename", real_rename)
    assert storage.enqueued_items() == [b"m0", b"m1"]  # published before the failure, in order
    assert files(tmp_path / "many" / "tmp") == []  # the staged rest removed


# ---------------------------------------------------------------------------- what cannot be read


def test_a_file_over_the_size_limit_is_set_aside_unread_and_purging_its_letter_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FileStorage, "max_file_size", 16)
    storage = FileStorage("q", path=tmp_path)
    with pytest.raises(ValueError, match=r"17 bytes is over the storage's limit of 16 bytes.*max_file_size"):
        storage.enqueue(b"x" * 17)
    assert storage.queue_size() == 0
    storage.enqueue(b"first")
    storage.enqueue(b"x" * 16)  # exactly at the limit: fine
    storage.enqueue(b"grows later")
    (grown,) = [p for p in (tmp_path / "q" / "ready").iterdir() if p.read_bytes() == b"grows later"]
    grown.write_bytes(b"y" * 17)
    assert [storage.reserve(30).data for _ in range(2)] == [b"first", b"x" * 16]  # type: ignore[union-attr]
    assert storage.reserve(30) is None
    (letter,) = storage.dead_letters()
    assert (letter.reason, letter.data) == ("unreadable_record", b"")
    assert "a file of 17 bytes, over the limit of 16 bytes" in letter.detail
    quarantined = tmp_path / "q" / "quarantine"
    assert [p.read_bytes() for p in quarantined.iterdir()] == [b"y" * 17]
    assert storage.purge_dead_letters() == 1
    assert list(quarantined.iterdir()) == []


def test_flush_all_removes_what_was_set_aside_and_folders_in_ready(tmp_path: Path) -> None:
    storage = FileStorage("q", path=tmp_path)
    storage.enqueue(b"one")
    storage.enqueue(b"two")
    replace_message_file(tmp_path / "q" / "ready", b"one", "folder")
    replace_message_file(tmp_path / "q" / "ready", b"two", "symlink_to_dev_zero")
    assert storage.enqueued_items() == []  # a listing skips them without touching them
    assert storage.dequeue() is None  # the huey-style dequeue sets them aside too
    assert storage.dead_letter_count() == 2
    storage.enqueue(b"three")
    replace_message_file(tmp_path / "q" / "ready", b"three", "folder")
    storage.flush_all()
    assert files(tmp_path / "q" / "ready") == files(tmp_path / "q" / "dead") == []
    assert not (tmp_path / "q" / "quarantine").exists()


@pytest.mark.parametrize("fsync", [False, True])
def test_fsync_decides_whether_writes_are_synced_before_the_call_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    storage = FileStorage("q", path=tmp_path, fsync=fsync)
    storage.queue_size()  # the folders exist before counting
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    storage.enqueue(b"message")
    storage.put_data("key", b"value")
    storage.add_to_schedule(b"later", time.time() + 60)
    assert len(synced) == (6 if fsync else 0)  # each write: the file, then its folder
    assert storage.enqueued_items() == [b"message"] and storage.peek_data("key") == b"value"


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"path": ""}, "path"),
        ({"path": 42}, "path"),
        ({"levels": -1}, "levels"),
        ({"levels": 9}, "levels"),
        ({"levels": "2"}, "levels"),
        ({"use_thread_lock": "yes"}, "use_thread_lock"),
        ({"fsync": "yes"}, "fsync"),
    ],
)
def test_bad_parameters_are_refused_by_name(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        FileStorage("bad", **options)


def test_empty_queue_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="name"):
        FileStorage("")


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"I am a file")
    for path in (blocker, blocker / "below"):
        storage = FileStorage("q", path=path)
        with pytest.raises(ConfigurationError) as info:
            storage.enqueue(b"m")
        message = str(info.value)
        assert f"path={str(path)!r}" in message
        assert "not a folder" in message and "Set path=" in message
    assert blocker.read_bytes() == b"I am a file"
    assert files(tmp_path) == ["blocker"]


def test_an_unwritable_path_is_refused_with_what_to_do() -> None:
    storage = FileStorage("q", path="/proc/django-tasks-q")  # no one can create folders in /proc
    with pytest.raises(ConfigurationError) as info:
        storage.queue_size()
    message = str(info.value)
    assert "path='/proc/django-tasks-q'" in message
    assert "writable" in message
    assert not os.path.exists("/proc/django-tasks-q")


# ---------------------------------------------------------------------------- the seed's examples

SEED_EXAMPLES = [
    ("my-app", {"path": "/var/huey_data"}),
    ("my-app", {"path": "/tmp/huey_tasks", "levels": 3, "use_thread_lock": True}),
    ("simple-app", {"path": "/opt/tasks"}),
]


@pytest.mark.parametrize(("name", "options"), SEED_EXAMPLES)
def test_seed_examples_are_accepted_lazily(name: str, options: dict[str, Any]) -> None:
    """The seed's calls as written: building the queue and its storage creates nothing on disk."""
    existed = os.path.exists(options["path"])
    huey = FileHuey(name, **options)
    storage = huey.storage
    assert isinstance(storage, FileStorage)
    assert storage.path == options["path"]
    assert storage.levels == options.get("levels", 2)
    assert storage.use_thread_lock is True
    assert os.path.exists(options["path"]) is existed


@pytest.mark.parametrize(("name", "options"), SEED_EXAMPLES)
def test_seed_examples_run_under_a_temporary_root(tmp_path: Path, name: str, options: dict[str, Any]) -> None:
    """The same calls with the seed's absolute path re-rooted under a temporary folder."""
    path = tmp_path / options["path"].lstrip("/")
    huey = FileHuey(name, **{**options, "path": str(path)})

    @huey.task(priority=10)
    def high_priority_task() -> str:
        return "High priority"

    @huey.task()
    def normal_task() -> str:
        return "Normal priority"

    normal = normal_task()
    high = high_priority_task()
    for _ in range(2):
        reservation = huey.reserve()
        assert reservation is not None
        huey.process(reservation)
    assert (high(), normal()) == ("High priority", "Normal priority")
    assert (path / name / "ready").is_dir()
    assert files(path / name / "inflight") == []
