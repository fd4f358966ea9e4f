"""Consistency checks between what medport recorded and what storage holds."""

import re

# A part's recorded digest: SHA-256 (hex) of the file digest's state at the part's end, so
# it names every byte up to there. Python cannot recompute that state; each part's bytes are
# checked through the stored ETags, the tail and, once complete, the whole file's SHA-256.
DIGEST = re.compile(r"[0-9a-f]{64}")


def offset_backed(db, s3, bucket, upload, content, parts=None):
    """Problems with `upload`'s claimed offset: every recorded part must be in storage with
    the recorded size and ETag, the parts must be exactly the whole parts below the offset,
    and the partial tail must be stored with the right bytes. [] when all is well.
    `parts`: the upload's rows of `Db.parts`, when already read."""
    problems = []
    offset, ps = upload["upload_offset"], upload["part_size"]
    whole, tail = divmod(offset, ps)
    if offset == upload["declared_size"] and tail:
        # Every byte is in: the short last part is a part of its own, not a tail.
        whole, tail = whole + 1, 0
    if parts is None:
        parts = db.parts(upload["id"])
    numbers = [p[0] for p in parts]
    if numbers != list(range(1, whole + 1)):
        problems.append(f"recorded parts {numbers} for offset {offset} (expected 1..{whole})")
    if upload["status"] == "active" and upload["storage_upload_id"]:
        stored = s3.list_parts(bucket, upload["object_key"], upload["storage_upload_id"])
        if stored is None:
            problems.append("the multipart upload is gone from storage")
            stored = {}
        for n, size, etag, digest in parts:
            if n not in stored:
                problems.append(f"part {n} is recorded but not in storage")
            elif stored[n][0] != size or stored[n][1] != etag.strip('"'):
                problems.append(f"part {n}: storage has {stored[n]}, recorded ({size}, {etag})")
            if not DIGEST.fullmatch(digest or ""):
                problems.append(f"part {n}: recorded digest {digest!r} is malformed")
        digests = [p[3] for p in parts]
        if len(set(digests)) != len(digests):
            problems.append("two parts are recorded with the same digest")
        if tail:
            key = f"{upload['object_key']}.tail.{offset}"
            try:
                data = s3.get_bytes(bucket, key)
            except Exception as e:  # noqa: BLE001 - a missing tail is the finding
                problems.append(f"tail {key} unreadable: {e}")
            else:
                if data != content.read(whole * ps, offset):
                    problems.append(f"tail {key} holds {len(data)} bytes that differ from the file")
    return problems


def check_completed(checks, db, s3, bucket, upload_id, content, label):
    """A completed upload: status, recorded SHA-256, parts (no duplicates, sizes add up),
    the stored object's bytes, one `upload.complete` event."""
    rows = db.uploads(f"id = '{upload_id}'")
    if not checks.ok(len(rows) == 1, f"{label}: row exists"):
        return False
    u = rows[0]
    ok = checks.eq(u["status"], "completed", f"{label}: status")
    ok &= checks.eq(u["sha256"], content.sha256(), f"{label}: recorded SHA-256")
    parts = db.parts(upload_id)
    numbers = [p[0] for p in parts]
    ps = u["part_size"]
    want_parts = max(1, -(-content.size // ps))
    ok &= checks.eq(numbers, list(range(1, want_parts + 1)), f"{label}: part numbers, each once")
    ok &= checks.eq(sum(p[1] for p in parts), content.size, f"{label}: part sizes add up")
    digest, size = s3.sha256(bucket, u["object_key"])
    ok &= checks.eq((digest, size), (content.sha256(), content.size),
                    f"{label}: stored object SHA-256 and size")
    ok &= checks.eq(db.audit_count("upload.complete", upload_id), 1,
                    f"{label}: one upload.complete event")
    return ok
