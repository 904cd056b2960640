#!/usr/bin/env python3
"""Write the hand-made malformed changesets of DESIGN.md T5 and the
EXPECTED list (one line per file: name REASON [option=value ...]).

Run from anywhere: python3 tests/data/malformed/make_corpus.py
The files are committed; rerun only to add cases. The copies of
/work/shared/data/sqlite-session-traps/*.cs (hang-*, segv-*, mutated-*)
are kept as they are and listed at the top of EXPECTED.

Options on an EXPECTED line change the parser options for that file:
kind=patchset, allow=all|device|D|S|A|R (classes), max_rows=N,
max_bytes=N, max_value=N. The default is a device upload: a changeset
of D/S/A tables with the default limits.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

T, I, RL, B = "T", "I", "R", "B"
# (name, type, pk ordinal, not null) in declaration order: enough of the
# manifest for the cases below (proto/manifest.c is the truth).
HOUSEHOLD = [
    ("id", T, 1, 1), ("dwelling_id", T, 0, 0), ("grid_id", T, 0, 1),
    ("head_resident_id", T, 0, 0), ("size", I, 0, 0),
    ("residence_type", T, 0, 0), ("tenure", T, 0, 0),
    ("phone_enc", B, 0, 0), ("status", T, 0, 1), ("last_visit_at", T, 0, 0),
    ("note", T, 0, 0), ("hlc", T, 0, 1), ("origin", T, 0, 1),
    ("created_at", T, 0, 1), ("created_by", T, 0, 0),
    ("updated_at", T, 0, 0), ("updated_by", T, 0, 0),
    ("server_seq", I, 0, 0), ("deleted", I, 0, 1),
]
MOB_RESULT = [
    ("task_id", T, 1, 1), ("household_id", T, 2, 1), ("status", T, 0, 1),
    ("at", T, 0, 1), ("visit_id", T, 0, 0), ("hlc", T, 0, 1),
    ("origin", T, 0, 1), ("server_seq", I, 0, 0), ("deleted", I, 0, 1),
]
ORG = [
    ("id", T, 1, 1), ("kind", T, 0, 1), ("name", T, 0, 1),
    ("area_id", T, 0, 0), ("server_seq", I, 0, 0), ("deleted", I, 0, 1),
]
VISIT = [
    ("id", T, 1, 1), ("household_id", T, 0, 0), ("grid_id", T, 0, 1),
    ("worker_id", T, 0, 1), ("kind", T, 0, 1), ("task_id", T, 0, 0),
    ("started_at", T, 0, 1), ("ended_at", T, 0, 0), ("lat", RL, 0, 0),
    ("lng", RL, 0, 0), ("loc_accuracy_m", RL, 0, 0),
    ("loc_source", T, 0, 0), ("outcome", T, 0, 1), ("answers", T, 0, 0),
    ("summary", T, 0, 0), ("supersedes_id", T, 0, 0), ("hlc", T, 0, 1),
    ("origin", T, 0, 1), ("created_at", T, 0, 1), ("server_seq", I, 0, 0),
    ("deleted", I, 0, 1),
]
INSERT, UPDATE, DELETE = 0x12, 0x17, 0x09


def varint(n):
    """SQLite's varint for n < 2**56: 7-bit groups, most significant first."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def text(s):
    b = s.encode() if isinstance(s, str) else s
    return b"\x03" + varint(len(b)) + b


def blob(b):
    return b"\x04" + varint(len(b)) + b


def integer(i):
    return b"\x01" + struct.pack(">q", i)


def real(r):
    return b"\x02" + struct.pack(">d", r)


NULL = b"\x05"
UNDEF = b"\x00"


def header(name, cols, kind=b"T", ncol=None, pk=None):
    n = len(cols) if ncol is None else ncol
    flags = bytes(c[2] for c in cols) if pk is None else pk
    return kind + varint(n) + flags + name.encode() + b"\x00"


def sample(col, i=0):
    """A valid value for a column."""
    name, typ, _, _ = col
    if typ == T:
        return text("%s-%d" % (name, i))
    if typ == I:
        return integer(i)
    if typ == RL:
        return real(1.5)
    return blob(b"\x01\x02")


def row(cols, i=0, **over):
    return b"".join(over.get(c[0], sample(c, i)) for c in cols)


def change(op, *vectors, indirect=0):
    return bytes([op, indirect]) + b"".join(vectors)


def hh_insert(i=0, **over):
    return change(INSERT, row(HOUSEHOLD, i, **over))


def hh_update(old_over, new_over):
    """A changeset UPDATE: key plus old/new of the named columns."""
    old = b"".join(
        sample(c) if c[2] else old_over.get(c[0], UNDEF) for c in HOUSEHOLD)
    new = b"".join(new_over.get(c[0], UNDEF) for c in HOUSEHOLD)
    return change(UPDATE, old, new)


HH = header("household", HOUSEHOLD)
GOOD = HH + hh_insert(0)

CASES = [
    # name, bytes, reason, options
    ("ncol-0.cs", b"T\x00" + b"household\x00" + hh_insert(), "COLUMN_COUNT"),
    ("ncol-65537.cs", b"T" + varint(65537) + b"\x01" + b"\x00" * 40,
     "COLUMN_COUNT"),
    ("ncol-truncated-varint.cs", b"T\x81", "TRUNCATED"),
    ("ncol-overlong-varint.cs", b"T\x80\x80\x80\x80\x80\x13", "BAD_VARINT"),
    ("ncol-nonminimal-varint.cs",
     b"T\x80\x13" + HH[2:] + hh_insert(), "BAD_VARINT"),
    ("header-truncated-pk-flags.cs", b"T\x13\x01\x00\x00", "TRUNCATED"),
    ("header-only-T-then-end.cs", GOOD + b"T", "TRUNCATED"),
    ("name-not-terminated.cs", HH[:-1], "NAME_NOT_TERMINATED"),
    ("name-empty.cs", header("", HOUSEHOLD) + hh_insert(), "UNKNOWN_TABLE"),
    ("name-too-long.cs", header("household" * 10, HOUSEHOLD) + hh_insert(),
     "UNKNOWN_TABLE"),
    ("name-with-nul-suffix.cs",
     b"T" + varint(19) + HH[2:21] + b"house\x00hold\x00" + hh_insert(),
     "UNKNOWN_TABLE"),
    ("table-unknown-sqlite_stat1.cs",
     header("sqlite_stat1", [("tbl", T, 0, 0), ("idx", T, 0, 0),
                             ("stat", T, 0, 0)]) +
     change(INSERT, text("household"), NULL, text("1 1")), "UNKNOWN_TABLE"),
    ("table-not-allowlisted-org.cs",
     header("org", ORG) + change(INSERT, row(ORG)), "TABLE_NOT_ALLOWED"),
    ("table-not-allowlisted-household.cs", GOOD, "TABLE_NOT_ALLOWED",
     "allow=A"),
    ("table-repeated.cs", GOOD + HH + hh_insert(1), "TABLE_REPEATED"),
    ("table-repeated-other-ncol.cs",
     GOOD + header("household", HOUSEHOLD[:5]) +
     change(INSERT, row(HOUSEHOLD[:5])), "TABLE_REPEATED"),
    ("table-empty.cs", HH, "EMPTY_TABLE"),
    ("table-empty-then-table.cs",
     HH + header("mobilization_result", MOB_RESULT) +
     change(INSERT, row(MOB_RESULT)), "EMPTY_TABLE"),
    ("column-extra.cs",
     header("household", HOUSEHOLD + [("x", T, 0, 0)]) +
     change(INSERT, row(HOUSEHOLD) + text("x")), "COLUMN_COUNT"),
    ("column-missing.cs",
     header("household", HOUSEHOLD[:-1]) +
     change(INSERT, row(HOUSEHOLD[:-1])), "COLUMN_COUNT"),
    ("pk-moved-to-column-1.cs",
     header("household", HOUSEHOLD, pk=b"\x00\x01" + b"\x00" * 17) +
     hh_insert(), "PK_LAYOUT"),
    ("pk-extra-column.cs",
     header("household", HOUSEHOLD, pk=b"\x01\x02" + b"\x00" * 17) +
     hh_insert(), "PK_LAYOUT"),
    ("pk-none.cs",
     header("household", HOUSEHOLD, pk=b"\x00" * 19) + hh_insert(),
     "PK_LAYOUT"),
    ("pk-composite-order-swapped.cs",
     header("mobilization_result", MOB_RESULT,
            pk=b"\x02\x01" + b"\x00" * 7) +
     change(INSERT, row(MOB_RESULT)), "PK_LAYOUT"),
    ("pk-composite-as-booleans.cs",
     header("mobilization_result", MOB_RESULT,
            pk=b"\x01\x01" + b"\x00" * 7) +
     change(INSERT, row(MOB_RESULT)), "PK_LAYOUT"),
    ("patchset-where-changeset-expected.cs",
     header("household", HOUSEHOLD, kind=b"P") + hh_insert(),
     "PATCHSET_NOT_EXPECTED"),
    ("patchset-after-changeset-table.cs",
     GOOD + header("mobilization_result", MOB_RESULT, kind=b"P") +
     change(INSERT, row(MOB_RESULT)), "PATCHSET_NOT_EXPECTED"),
    ("changeset-where-patchset-expected.cs", GOOD,
     "CHANGESET_NOT_EXPECTED", "kind=patchset"),
    ("patchset-delete-full-record.cs",
     header("household", HOUSEHOLD, kind=b"P") +
     change(DELETE, row(HOUSEHOLD)), "BAD_OP", "kind=patchset"),
    ("no-table-header.cs", hh_insert(), "NO_TABLE"),
    ("no-table-header-zero.cs", b"\x00\x00\x00", "NO_TABLE"),
    ("op-unknown-0x13.cs", HH + change(0x13, row(HOUSEHOLD)), "BAD_OP"),
    ("op-unknown-0x00.cs", HH + change(0x00, row(HOUSEHOLD)), "BAD_OP"),
    ("op-sqlite-rebase-flag.cs", HH + b"\x12\x02" + row(HOUSEHOLD),
     "BAD_INDIRECT"),
    ("op-without-indirect.cs", HH + b"\x12", "TRUNCATED"),
    ("trailing-garbage-zero.cs", GOOD + b"\x00", "BAD_OP"),
    ("trailing-garbage-ff.cs", GOOD + b"\xff\xff\xff\xff", "BAD_OP"),
    ("trailing-half-change.cs", GOOD + hh_insert(1)[:30], "TRUNCATED"),
    ("record-missing-columns.cs",
     HH + change(INSERT, row(HOUSEHOLD[:10])), "TRUNCATED"),
    ("record-text-shorter-than-declared.cs",
     HH + change(INSERT, b"\x03\x24" + b"0190c0de-0000-7000-8000-0000"),
     "TRUNCATED"),
    ("record-int-cut-short.cs",
     HH + b"\x12\x00" + row(HOUSEHOLD[:4]) + b"\x01\x00\x00\x00",
     "TRUNCATED"),
    ("record-text-length-truncated-varint.cs", HH + b"\x12\x00\x03\x81",
     "TRUNCATED"),
    ("record-text-length-nonminimal.cs",
     HH + change(INSERT, b"\x03\x80\x04abcd" + row(HOUSEHOLD[1:])),
     "BAD_VARINT"),
    ("record-blob-length-2pow32-1.cs",
     HH + b"\x12\x00" + row(HOUSEHOLD[:7]) + b"\x04" + varint(2**32 - 1),
     "VALUE_TOO_BIG"),
    ("record-blob-length-6-byte-varint.cs",
     HH + b"\x12\x00" + row(HOUSEHOLD[:7]) + b"\x04\x81\x80\x80\x80\x80\x00",
     "BAD_VARINT"),
    ("value-too-big-for-limit.cs",
     HH + hh_insert(0, note=text("x" * 300)), "VALUE_TOO_BIG",
     "max_value=256"),
    ("pk-null-insert.cs", HH + hh_insert(0, id=NULL), "PK_NULL"),
    ("pk-undefined-insert.cs", HH + hh_insert(0, id=UNDEF), "PK_MISSING"),
    ("pk-null-delete.cs", HH + change(DELETE, row(HOUSEHOLD, 0, id=NULL)),
     "PK_NULL"),
    ("pk-undefined-delete.cs",
     HH + change(DELETE, row(HOUSEHOLD, 0, id=UNDEF)), "PK_MISSING"),
    ("pk-undefined-update-old.cs",
     HH + change(UPDATE, UNDEF + UNDEF * 9 + text("s0") + UNDEF * 8,
                 UNDEF * 10 + text("s1") + UNDEF * 8), "PK_MISSING"),
    ("pk-set-in-update-new.cs",
     HH + hh_update({"note": text("a")},
                    {"id": text("other"), "note": text("b")}), "PK_CHANGED"),
    ("pk-composite-second-null.cs",
     header("mobilization_result", MOB_RESULT) +
     change(INSERT, row(MOB_RESULT, 0, household_id=NULL)), "PK_NULL"),
    ("patchset-delete-pk-undefined.cs",
     header("household", HOUSEHOLD, kind=b"P") + change(DELETE, UNDEF),
     "PK_MISSING", "kind=patchset"),
    ("patchset-update-pk-null.cs",
     header("household", HOUSEHOLD, kind=b"P") +
     change(UPDATE, NULL + UNDEF * 9 + text("n") + UNDEF * 8), "PK_NULL",
     "kind=patchset"),
    ("patchset-update-nothing.cs",
     header("household", HOUSEHOLD, kind=b"P") +
     change(UPDATE, text("id-0") + UNDEF * 18), "EMPTY_UPDATE",
     "kind=patchset"),
    ("update-changes-nothing.cs", HH + hh_update({}, {}), "EMPTY_UPDATE"),
    ("update-new-without-old.cs",
     HH + hh_update({}, {"note": text("b")}), "OLD_MISSING"),
    ("update-old-without-new.cs",
     HH + hh_update({"note": text("a"), "tenure": text("t")},
                    {"note": text("b")}), "NEW_MISSING"),
    ("insert-undefined-column.cs", HH + hh_insert(0, tenure=UNDEF),
     "UNDEFINED_VALUE"),
    ("delete-undefined-column.cs",
     HH + change(DELETE, row(HOUSEHOLD, 0, note=UNDEF)), "UNDEFINED_VALUE"),
    ("type-byte-6.cs", HH + hh_insert(0, note=b"\x06"), "BAD_TYPE"),
    ("type-byte-0x54-in-value.cs", HH + hh_insert(0, note=b"T"), "BAD_TYPE"),
    ("type-int-in-text-column.cs", HH + hh_insert(0, note=integer(7)),
     "TYPE_MISMATCH"),
    ("type-blob-in-text-pk.cs", HH + hh_insert(0, id=blob(b"k")),
     "TYPE_MISMATCH"),
    ("type-text-in-integer-column.cs", HH + hh_insert(0, size=text("3")),
     "TYPE_MISMATCH"),
    ("type-real-in-integer-column.cs", HH + hh_insert(0, size=real(3.5)),
     "TYPE_MISMATCH"),
    ("type-text-in-blob-column.cs",
     HH + hh_insert(0, phone_enc=text("13800000000")), "TYPE_MISMATCH"),
    ("utf8-invalid-continuation.cs",
     HH + hh_insert(0, note=text(b"ok\xc3\x28")), "BAD_UTF8"),
    ("utf8-overlong-nul.cs", HH + hh_insert(0, note=text(b"\xc0\x80")),
     "BAD_UTF8"),
    ("utf8-surrogate.cs", HH + hh_insert(0, note=text(b"\xed\xa0\x80")),
     "BAD_UTF8"),
    ("utf8-above-10ffff.cs",
     HH + hh_insert(0, note=text(b"\xf4\x90\x80\x80")), "BAD_UTF8"),
    ("utf8-cut-chinese.cs",
     HH + hh_insert(0, note=text("网格".encode()[:5])), "BAD_UTF8"),
    ("text-embedded-nul.cs", HH + hh_insert(0, note=text(b"a\x00b")),
     "BAD_UTF8"),
    ("not-null-grid-id.cs", HH + hh_insert(0, grid_id=NULL), "NOT_NULL"),
    ("not-null-old-value.cs",
     HH + hh_update({"status": NULL}, {"status": text("x")}), "NOT_NULL"),
    ("too-many-rows.cs", HH + hh_insert(0) + hh_insert(1) + hh_insert(2),
     "TOO_MANY_ROWS", "max_rows=2"),
    ("too-big.cs", GOOD, "TOO_BIG", "max_bytes=64"),
]


def nan_case():
    """NaN in a REAL column (visit.lat)."""
    nan = b"\x02\x7f\xf8\x00\x00\x00\x00\x00\x00"
    return header("visit", VISIT) + change(INSERT, row(VISIT, 0, lat=nan))


def main():
    cases = CASES + [
        ("real-nan.cs", nan_case(), "BAD_REAL"),
        ("type-text-in-real-column.cs",
         header("visit", VISIT) +
         change(INSERT, row(VISIT, 0, lat=text("39.9"))), "TYPE_MISMATCH"),
    ]
    lines = []
    traps = sorted(f for f in os.listdir(HERE)
                   if f.endswith(".cs") and
                   f.startswith(("hang-", "segv-", "mutated-")))
    for name in traps:
        with open(os.path.join(HERE, name), "rb") as f:
            first = f.read(1)
        # Table "hh" is not replicated; the 'P' files are patchsets.
        reason = "PATCHSET_NOT_EXPECTED" if first == b"P" else "UNKNOWN_TABLE"
        if name == "hang-1-byte-T.cs":
            reason = "TRUNCATED"
        if name == "hang-8-byte-table-header.cs":
            reason = "NAME_NOT_TERMINATED"
        lines.append("%s %s" % (name, reason))
        if first == b"P":
            lines.append("%s %s kind=patchset" % (name, "UNKNOWN_TABLE"))
    for c in cases:
        name, data, reason = c[0], c[1], c[2]
        opts = " " + c[3] if len(c) > 3 else ""
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        lines.append("%s %s%s" % (name, reason, opts))
    with open(os.path.join(HERE, "EXPECTED"), "w") as f:
        f.write("# file REASON [option=value ...]: see make_corpus.py\n")
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
