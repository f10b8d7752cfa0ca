"""The data directory of a service (``--data-dir``): one service at a time, made for one venue,
mode, account and set of symbols, readable by its owner only.

* ``claim(path)`` creates the directory (mode 0700) if needed, takes its lock, and reads its
  manifest. The lock is ``actortrade.lock`` (``flock``, so the kernel drops it with the process,
  however it dies), and holds the pid of the service that has it: a second claim raises
  ``DataDirLocked`` naming it. It covers everything in the directory: the ledger and the sim
  venue's journal alike.
* ``DataDir.admit(asked, ...)`` compares what a start asks for with what the directory was made
  for, and raises ``DataDirMismatch`` when trading on would lose track of something: another
  venue, mode or account, or a symbol left out while it has open lots here. Otherwise it returns
  the manifest to record: symbols may be added (the directory's set only grows).
* ``DataDir.record(manifest)`` writes the manifest atomically (a temporary file, fsync, rename,
  fsync of the directory) and takes away any group and other permission left on what the
  directory holds (from an earlier version, or a loose umask).

The manifest is ``manifest.json``. It never holds the IB account id, a secret: only a salted
scrypt digest of it, which a start with the same ``IB_ACCOUNT`` reproduces (an account id is
short enough to guess, hence a slow, salted hash rather than a plain one).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import attrs
import msgspec

__all__ = [
    "DataDirError",
    "DataDirLocked",
    "DataDirMismatch",
    "AccountDigest",
    "Manifest",
    "Asked",
    "Admission",
    "DataDir",
    "claim",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "FORMAT",
    "VENUES",
]

log = logging.getLogger("actortrade.datadir")

LOCK_NAME = "actortrade.lock"
MANIFEST_NAME = "manifest.json"
FORMAT = 1
"""The manifest's format; a directory with a newer one is refused."""

VENUES = {"sim": "the embedded sim venue", "ib": "IB"}
"""Venue kind -> how messages name it. ``sim``: ``--broker embedded`` and ``inprocess`` (the
same venue, its books in the directory's journal); ``ib``: a real TWS / IB Gateway."""

_DIR_MODE = 0o700
_FILE_MODE = 0o600
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 16}


class DataDirError(RuntimeError):
    """Raised by ``claim``, ``DataDir.admit`` and ``DataDir.record``; the message names the
    directory or the file."""


class DataDirLocked(DataDirError):
    """Raised by ``claim`` when another process holds the directory."""


class DataDirMismatch(DataDirError):
    """Raised by ``DataDir.admit`` when a start asks for something the directory was not made
    for; the message says what it holds and what was asked."""


class AccountDigest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """scrypt(account id, salt), both hex: the account's stand-in in the manifest."""

    salt: str
    digest: str

    @classmethod
    def of(cls, account: str) -> AccountDigest:
        salt = secrets.token_bytes(16)
        return cls(salt=salt.hex(), digest=_scrypt(account, salt))

    def matches(self, account: str) -> bool:
        return hmac.compare_digest(_scrypt(account, bytes.fromhex(self.salt)), self.digest)


def _scrypt(account: str, salt: bytes) -> str:
    return hashlib.scrypt(account.encode(), salt=salt, **_SCRYPT).hex()


class Manifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a data directory was made for."""

    format: int = FORMAT
    venue: str | None
    """A key of ``VENUES``; None only in a manifest inferred from an older directory that
    does not tell (a ledger without the sim venue's journal: an IB directory, or a sim one whose
    journal is gone, or a ledger restored into a new directory)."""
    mode: str | None = None
    """``paper`` or ``live``; None when not known (a manifest inferred from an older directory)."""
    symbols: tuple[str, ...]
    account: AccountDigest | None = None
    """The IB account's digest; None on the sim venue, or when ``IB_ACCOUNT`` was never set."""


@attrs.frozen(kw_only=True)
class Asked:
    """What a start asks of a directory."""

    venue: str
    mode: str
    symbols: tuple[str, ...]
    account: str | None = attrs.field(default=None, repr=False)
    """The IB account id (a secret: compared through its digest, never stored or shown)."""


@attrs.frozen(kw_only=True)
class Admission:
    """A start the directory admits: the manifest to record once the ledger and the journal are
    open, and what the caller should tell the operator."""

    manifest: Manifest
    left_out: tuple[str, ...] = ()
    """Symbols of the directory this start does not trade (none of them has open lots)."""
    account_unchecked: bool = False
    """The directory was made for an account, and this start names none to compare."""


OpenLots = Callable[[str], tuple[int, int]]
"""Symbol -> (open lots, their shares) in the directory's ledger."""


class DataDir:
    """A claimed data directory (see the module doc); ``release`` (or leaving the ``with``
    block) unlocks it."""

    def __init__(self, path: Path, lock: int, manifest: Manifest | None) -> None:
        self.path = path
        self.manifest = manifest
        """As read at the claim; None when the directory has none (new, or older than
        manifests)."""
        self._lock: int | None = lock

    def admit(
        self,
        asked: Asked,
        *,
        open_lots: OpenLots,
        inferred: Callable[[], Manifest | None] = lambda: None,
    ) -> Admission:
        """Compare ``asked`` with the manifest (or, for a directory without one, with what
        ``inferred`` makes of its contents); raise ``DataDirMismatch`` naming both, or return
        the admission. ``open_lots`` is asked only about symbols left out. On success the lock
        file names this process."""
        held = self.manifest if self.manifest is not None else inferred()
        admission = self._compare(held, asked, open_lots)
        self._name_holder()
        return admission

    def subdir(self, name: str) -> Path:
        """``name`` in the directory, created owner-only if missing."""
        path = self.path / name
        path.mkdir(mode=_DIR_MODE, exist_ok=True)
        return path

    def record(self, manifest: Manifest) -> None:
        """Write ``manifest`` atomically, mode 0600; then make everything in the directory
        owner-only."""
        if manifest != self.manifest:
            _write_atomically(self.path / MANIFEST_NAME, _encode(manifest))
            self.manifest = manifest
        _owner_only(self.path)

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor drops the flock
            self._lock = None

    def __enter__(self) -> DataDir:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()

    # -- internals ---------------------------------------------------------------------------

    def _compare(self, held: Manifest | None, asked: Asked, open_lots: OpenLots) -> Admission:
        digest = AccountDigest.of(asked.account) if asked.account else None
        if held is None:
            return Admission(
                manifest=Manifest(
                    venue=asked.venue, mode=asked.mode, symbols=asked.symbols, account=digest
                )
            )
        holds = f"{self.path}: this data directory trades {_names(held.symbols)}"
        wants = f"asked for {_names(asked.symbols)}"
        if held.venue is not None and held.venue != asked.venue:
            raise DataDirMismatch(
                f"{holds} on {_venue(held.venue)}; {wants} on {_venue(asked.venue)}: its ledger "
                "is that venue's, and the other does not hold its lots; use another --data-dir"
            )
        if held.mode is not None and held.mode != asked.mode:
            raise DataDirMismatch(
                f"{holds} in {held.mode.upper()} mode; {wants} in {asked.mode.upper()} mode: "
                "its lots are not this mode's; use another --data-dir"
            )
        if held.account is not None and asked.account and not held.account.matches(asked.account):
            raise DataDirMismatch(
                f"{holds} through IB for another account than the one IB_ACCOUNT names: its "
                "lots are not this account's; use another --data-dir (or the account it was "
                "made with)"
            )
        left_out = tuple(s for s in held.symbols if s not in asked.symbols)
        holding = {s: open_lots(s) for s in left_out}
        abandoned = [
            f"{s} has {n} open lots ({shares} shares)" for s, (n, shares) in holding.items() if n
        ]
        if abandoned:
            raise DataDirMismatch(
                f"{holds} on {_venue(held.venue or asked.venue)}; {wants}: "
                f"{', '.join(abandoned)} here, which "
                "nothing would sell or watch; trade "
                f"{'it' if len(abandoned) == 1 else 'them'} too (list every symbol in the "
                "config's [[symbols]]: --symbol trades only one), or use another --data-dir"
            )
        added = tuple(s for s in asked.symbols if s not in held.symbols)
        return Admission(
            manifest=Manifest(
                venue=held.venue or asked.venue,
                mode=held.mode if held.mode is not None else asked.mode,
                symbols=(*held.symbols, *added),
                account=held.account if held.account is not None else digest,
            ),
            left_out=left_out,
            account_unchecked=held.account is not None and not asked.account,
        )

    def _name_holder(self) -> None:
        # Written only once admitted: a refused start leaves the directory as it found it.
        if self._lock is None:
            raise DataDirError(f"{self.path}: released; claim it again")
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, f"{os.getpid()}\n".encode(), 0)


def claim(path: Path) -> DataDir:
    """Create ``path`` and its missing parents (0700), lock it, and read its manifest:
    ``DataDirLocked`` names the process holding it, ``DataDirError`` a manifest it cannot
    read."""
    try:
        # Missing parents too are made owner-only (mkdir's default would follow the umask: a
        # parent others may write to lets them swap the directory for another).
        for directory in (*reversed(path.parents), path):
            if not directory.exists():
                directory.mkdir(mode=_DIR_MODE, exist_ok=True)
        lock = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    except OSError as exc:
        raise DataDirError(f"{path}: cannot use it as the data directory: {exc.strerror}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(lock, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(lock)
        raise DataDirLocked(
            f"{path} is in use by another actortrade process (pid {holder}); stop it first, or "
            "use another data directory"
        ) from None
    try:
        return DataDir(path, lock, _read_manifest(path / MANIFEST_NAME))
    except BaseException:
        os.close(lock)
        raise


def _read_manifest(file: Path) -> Manifest | None:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataDirError(f"{file}: cannot read the manifest: {exc.strerror}") from exc
    try:
        raw = msgspec.json.decode(data)
        version = raw.get("format") if isinstance(raw, dict) else None
        if isinstance(version, int) and version > FORMAT:
            raise DataDirError(
                f"{file}: written by a newer actortrade (manifest format {version}; this "
                f"version reads up to {FORMAT}): refusing the directory"
            )
        manifest = msgspec.convert(raw, Manifest)
    except msgspec.MsgspecError as exc:
        raise DataDirError(
            f"{file}: not a manifest ({exc}); if it was damaged, remove it: the next start "
            "writes it again from what the directory holds"
        ) from None
    if manifest.venue not in VENUES:
        raise DataDirError(f"{file}: unknown venue {manifest.venue!r} (known: {', '.join(VENUES)})")
    return manifest


def _encode(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def _write_atomically(file: Path, data: bytes) -> None:
    temporary = file.with_name(f".{file.name}.tmp")
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
        try:
            os.fchmod(handle, _FILE_MODE)  # a leftover temporary file keeps its old mode
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temporary, file)
        directory = os.open(file.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise DataDirError(f"{file}: cannot write the manifest: {exc.strerror}") from exc


def _owner_only(root: Path) -> None:
    # Directories 0700 and files 0600 at most: nothing of the group's or the world's, whatever
    # an earlier version or the umask left. Symbolic links are not followed.
    paths = [str(root)]
    for directory, dirs, files in os.walk(root):
        paths.extend(os.path.join(directory, name) for name in (*dirs, *files))
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
                continue
            os.chmod(path, stat.S_IMODE(mode) & 0o700)
        except OSError as exc:
            log.warning("%s: cannot make it owner-only: %s", path, exc.strerror)


def _names(symbols: Sequence[str]) -> str:
    return ", ".join(symbols) if symbols else "no symbol yet"


def _venue(kind: str) -> str:
    return VENUES.get(kind, kind)
