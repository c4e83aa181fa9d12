"""Reading tars from strangers: members are checked before anything is read or written.

A shard may come from anywhere. We never extract to disk; still, a member whose name is absolute,
climbs out with `..`, is a link, device or directory, or claims an absurd size is refused with its
reason, because other tools (tar -x, webdataset caches, lhotse) would act on it.
"""

from __future__ import annotations

import posixpath
import tarfile

from funfactory.errors import UnsafeInputError

MAX_MEMBER_BYTES = 1 << 30  # 1 GiB: an 18-hour 16 kHz FLAC, far beyond any training clip


def check_member(member: tarfile.TarInfo, shard: str, max_bytes: int = MAX_MEMBER_BYTES) -> None:
    """Raise UnsafeInputError if `member` of `shard` is anything but a plain, sane file."""
    name = member.name
    where = f"shard {shard}: member {name!r}"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeInputError(f"{where} has an absolute path; refusing the shard")
    if ".." in posixpath.normpath(name).split("/") or ".." in name.split("/"):
        raise UnsafeInputError(f"{where} climbs out of the archive with '..'; refusing the shard")
    if member.issym() or member.islnk():
        raise UnsafeInputError(f"{where} is a link to {member.linkname!r}; shards hold plain files")
    if not member.isfile():
        raise UnsafeInputError(f"{where} is not a regular file (type {member.type!r})")
    if member.size > max_bytes:
        raise UnsafeInputError(f"{where} claims {member.size} bytes, over the {max_bytes}-byte "
                               "limit for one member")
    if "/" in name:
        raise UnsafeInputError(f"{where} is inside a folder; shard members are flat KEY.ext")
