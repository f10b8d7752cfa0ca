"""Check an LMDB data file against its own header before LMDB maps it.

LMDB maps ``data.mdb`` and trusts it: a file cut short makes the first read past its end a
SIGBUS that kills the process with no message, and a damaged meta page is only a terse
``mdb_env_open`` error. This module reads the file with plain ``pread`` (never a mapping, so a
short file is an answer, not a crash) and says what is wrong, or None.

The layout is LMDB 0.9's (``lib/mdb.c``: ``MDB_page``, ``MDB_meta``, ``MDB_db``, ``MDB_node``),
for 64-bit little-endian builds, where ``pgno_t``, ``size_t`` and ``txnid_t`` are 8 bytes:

* Pages 0 and 1 are the two meta pages: a 16-byte page header (``mp_pgno`` u64, ``mp_pad``
  u16, ``mp_flags`` u16 at offset 10, ``mp_lower``/``mp_upper`` u16) then ``MDB_meta``:
  ``mm_magic`` u32 at 16 (``0xBEEFC0DE``), ``mm_version`` u32 at 20 (1), ``mm_address`` at 24,
  ``mm_mapsize`` at 32, ``mm_dbs[2]`` (48 bytes each) at 40 and 88, ``mm_last_pg`` at 136,
  ``mm_txnid`` at 144. The page size is ``mm_dbs[0].md_pad`` (u32 at 40); a ``MDB_db``'s root
  page is its last field (u64 at +40). LMDB uses the meta with the larger txnid.
* LMDB refuses the file unless both meta pages carry ``P_META``, the magic and the version
  (``mdb_env_read_header``); checked here first so that the refusal can say which page.
* The newest meta's ``mm_last_pg`` is the last page the file uses. The file is normally at least
  ``(mm_last_pg + 1) * page size`` bytes, but, as ``mdb.c`` notes on ``mm_last_pg``, it may be
  shorter when the final pages are free (pages a transaction allocated and freed again are
  never written). So a short file is not damage by itself: then every page reachable from the
  newest meta (branch and leaf pages, overflow runs, named databases) is walked, and only one
  past the end is.

Verified against files written by py-lmdb (LMDB 0.9.x) on x86-64:
``tests/runtime/test_store_damage.py``.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

MAGIC = 0xBEEFC0DE
DATA_VERSION = 1
PAGE_HEADER = 16
META_SIZE = 152
"""``MDB_meta`` ends with ``mm_txnid`` at 144..152."""
P_INVALID = (1 << 64) - 1

P_BRANCH = 0x01
P_LEAF = 0x02
P_OVERFLOW = 0x04
P_META = 0x08
P_LEAF2 = 0x20

F_BIGDATA = 0x01
F_SUBDATA = 0x02

_MIN_PAGE = 512
_MAX_PAGE = 0x10000

SUPPORTED = struct.calcsize("P") == 8 and sys.byteorder == "little"
"""The offsets here are those of 64-bit little-endian builds; elsewhere nothing is checked."""


class _Damage(Exception):
    pass


def check_data_file(path: Path) -> str | None:
    """What is wrong with the LMDB data file ``path``, or None when LMDB can open and read it
    without reading past its end (or when it does not exist yet)."""
    if not SUPPORTED:
        return None
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _check(handle, os.fstat(handle).st_size)
    except _Damage as damage:
        return str(damage)
    finally:
        os.close(handle)


class Meta:
    """The fields of one meta page this module reads."""

    __slots__ = ("index", "psize", "free_root", "main_root", "last_pg", "txnid")

    def __init__(self, index: int, page: bytes) -> None:
        self.index = index
        self.psize = struct.unpack_from("<I", page, 40)[0]
        self.free_root = struct.unpack_from("<Q", page, 80)[0]
        self.main_root = struct.unpack_from("<Q", page, 128)[0]
        self.last_pg, self.txnid = struct.unpack_from("<QQ", page, 136)


def read_metas(path: Path) -> tuple[Meta, Meta]:
    """Both meta pages of the data file ``path`` (``_Damage`` if they are not LMDB's)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(handle).st_size
        first = _meta(handle, 0, 0, size)
        return first, _meta(handle, 1, first.psize, size)
    finally:
        os.close(handle)


def _check(handle: int, size: int) -> str | None:
    if size == 0:
        return "the file is empty (0 bytes): it holds neither of LMDB's two meta pages"
    if size < PAGE_HEADER + META_SIZE:
        return f"the file is {size} bytes: too short for even its first meta page"
    first = _meta(handle, 0, 0, size)
    psize = first.psize
    if size < 2 * psize:
        return (
            f"the file is {size} bytes, shorter than its two meta pages ({2 * psize} bytes with "
            f"its {psize}-byte pages): it was cut short"
        )
    second = _meta(handle, 1, psize, size)
    if second.psize != psize:
        raise _Damage(f"meta page 1 says pages are {second.psize} bytes, meta page 0 says {psize}")
    newest = second if second.txnid > first.txnid else first
    where = f"meta page {newest.index} (the newest, transaction {newest.txnid})"
    if newest.last_pg < 1:
        raise _Damage(f"{where}: last page {newest.last_pg} is one of the meta pages")
    for name, root in (("free-page", newest.free_root), ("main", newest.main_root)):
        if root != P_INVALID and not 2 <= root <= newest.last_pg:
            raise _Damage(
                f"{where}: the {name} database's root is page {root}, outside pages 2 to "
                f"{newest.last_pg}"
            )
    needed = (newest.last_pg + 1) * psize
    if size >= needed:
        return None
    # Shorter than the last page: damage unless only free pages are missing (see the doc).
    missing = _Walk(handle, psize, size // psize, newest.last_pg).first_missing(
        (newest.free_root, newest.main_root)
    )
    if missing is None:
        return None
    return (
        f"the file is {size} bytes ({size // psize} pages of {psize}) but {where} needs page "
        f"{missing}, past its end (it uses pages up to {newest.last_pg}, {needed} bytes): it "
        "was cut short"
    )


def _meta(handle: int, index: int, offset: int, size: int) -> Meta:
    page = os.pread(handle, PAGE_HEADER + META_SIZE, offset)
    if len(page) < PAGE_HEADER + META_SIZE:
        raise _Damage(f"meta page {index} is cut short at byte {size}")
    flags = struct.unpack_from("<H", page, 10)[0]
    magic, version = struct.unpack_from("<II", page, 16)
    if not flags & P_META:
        raise _Damage(f"page {index} is not a meta page (flags {flags:#06x})")
    if magic != MAGIC:
        raise _Damage(f"meta page {index} has magic {magic:#010x}, not LMDB's {MAGIC:#010x}")
    if version != DATA_VERSION:
        raise _Damage(f"meta page {index} has data version {version}, not {DATA_VERSION}")
    meta = Meta(index, page)
    if meta.psize & (meta.psize - 1) or not _MIN_PAGE <= meta.psize <= _MAX_PAGE:
        raise _Damage(f"meta page {index} has an impossible page size {meta.psize}")
    return meta


class _Walk:
    """Every page reachable from a meta's two roots, read with pread, bounds-checked."""

    def __init__(self, handle: int, psize: int, pages: int, last_pg: int) -> None:
        self.handle = handle
        self.psize = psize
        self.pages = pages
        """Whole pages in the file."""
        self.last_pg = last_pg
        self.seen: set[int] = set()

    def first_missing(self, roots: tuple[int, ...]) -> int | None:
        stack = list(roots)
        while stack:
            pgno = stack.pop()
            if pgno == P_INVALID or pgno in self.seen:
                continue
            self.seen.add(pgno)
            if pgno >= self.pages:
                return pgno
            try:
                found = self._page(pgno, stack)
            except (struct.error, IndexError):
                raise _Damage(f"page {pgno} is malformed") from None
            if found is not None:
                return found
        return None

    def _page(self, pgno: int, stack: list[int]) -> int | None:
        page = os.pread(self.handle, self.psize, pgno * self.psize)
        stored, _pad, flags, lower = struct.unpack_from("<QHHH", page, 0)
        if stored != pgno:
            raise _Damage(f"page {pgno} says it is page {stored}")
        if flags & P_LEAF2 or not flags & (P_BRANCH | P_LEAF):
            return None  # no nodes that point to other pages
        for slot in range((lower - PAGE_HEADER) >> 1):
            offset = struct.unpack_from("<H", page, PAGE_HEADER + 2 * slot)[0]
            lo, hi, node_flags, ksize = struct.unpack_from("<HHHH", page, offset)
            if flags & P_BRANCH:
                stack.append(lo | hi << 16 | node_flags << 32)
                continue
            data = offset + 8 + ksize
            if node_flags & F_BIGDATA:
                first = struct.unpack_from("<Q", page, data)[0]
                missing = self._overflow(first)
                if missing is not None:
                    return missing
            elif node_flags & F_SUBDATA:
                stack.append(struct.unpack_from("<Q", page, data + 40)[0])
        return None

    def _overflow(self, first: int) -> int | None:
        if first >= self.pages:
            return first
        header = os.pread(self.handle, PAGE_HEADER, first * self.psize)
        stored, _pad, flags = struct.unpack_from("<QHH", header, 0)
        count = struct.unpack_from("<I", header, 12)[0]
        if stored != first or not flags & P_OVERFLOW:
            raise _Damage(f"page {first} should start an overflow run and does not")
        last = first + count - 1
        return last if last >= self.pages else None
