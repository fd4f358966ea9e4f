"""Deterministic file contents."""

import hashlib
import random

from .common import MIB


class Content:
    """Deterministic file bytes of `size`, readable at any range without holding the file:
    1 MiB blocks, each a rotation of one random base block with its index stamped in, so
    a part stored at the wrong place or twice is caught. Starts like a DICOM file (or a
    PDF) so the server's type check accepts it."""

    BLOCK = MIB

    def __init__(self, seed, size, kind="dcm"):
        self.seed, self.size, self.kind = seed, size, kind
        self._base = random.Random(f"medport-fault-{seed}").randbytes(self.BLOCK)
        self._cache = (None, b"")
        self._sha = None

    @property
    def filename(self):
        return f"fault-{self.seed}.{self.kind}"

    @property
    def filetype(self):
        return "application/dicom" if self.kind == "dcm" else "application/pdf"

    def block(self, i):
        if self._cache[0] == i:
            return self._cache[1]
        r = (i * 7919 + self.seed * 104729) % self.BLOCK
        b = bytearray(self._base[r:] + self._base[:r])
        b[0:24] = f"{self.seed:012d}{i:012d}".encode()
        if i == 0:
            if self.kind == "dcm":
                b[0:132] = bytes(128) + b"DICM"
            else:
                b[0:8] = b"%PDF-1.7"
        data = bytes(b)
        self._cache = (i, data)
        return data

    def read(self, start, end):
        end = min(end, self.size)
        out = []
        while start < end:
            i, off = divmod(start, self.BLOCK)
            chunk = self.block(i)[off:off + (end - start)]
            out.append(chunk)
            start += len(chunk)
        return b"".join(out)

    def sha256(self):
        if self._sha is None:
            h = hashlib.sha256()
            for start in range(0, self.size, self.BLOCK):
                h.update(self.read(start, start + self.BLOCK))
            self._sha = h.hexdigest()
        return self._sha
