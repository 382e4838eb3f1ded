"""What DataJoint's zlib compression of ``<blob>`` attributes saves, per table and attribute.

Reads every row of every table with a ``<blob>`` / ``<blob@store>`` attribute under a prefix (a
study already ingested and populated, e.g. ``lfpbold simulate``, ``ingest``, ``populate``), and
encodes each stored value again with DataJoint's own serializer, ``datajoint.blob.pack``, once
without compression and once with it (what DataJoint 2.3 always does). Prints per table and
attribute: rows, bytes raw, bytes compressed, the saving, the time of each encode, and whether
lfpbold now stores the attribute compressed (:data:`lfpbold.compat.UNCOMPRESSED_BLOBS`, the
attributes whose saving measured here was under 20%). Asserts nothing.

    lfpbold simulate /tmp/study && lfpbold --prefix stor_ ingest /tmp/study && lfpbold --prefix stor_ populate
    python benchmarks/storage.py --prefix stor_
"""

from __future__ import annotations

import argparse
import time


def measure(table, attribute: str) -> dict:
    """Bytes and encode seconds of one attribute's stored values, raw and zlib-compressed."""
    from datajoint import blob

    out = dict(rows=0, raw=0, compressed=0, raw_s=0.0, compressed_s=0.0)
    for row in table.proj(attribute).to_dicts():
        value = row[attribute]
        if value is None:
            continue
        t0 = time.perf_counter()
        raw = blob.pack(value, compress=False)
        t1 = time.perf_counter()
        packed = blob.pack(value, compress=True)
        t2 = time.perf_counter()
        out["rows"] += 1
        out["raw"] += len(raw)
        out["compressed"] += len(packed)
        out["raw_s"] += t1 - t0
        out["compressed_s"] += t2 - t1
    return out


def blob_attributes(table) -> list[str]:
    """The table's attributes stored with the ``<blob>`` codec (in the table or in a store)."""
    return [a.name for a in table.heading.attributes.values() if a.codec is not None and a.codec.name == "blob"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default=None, help="the study's schema prefix (default $LFPBOLD_PREFIX)")
    args = parser.parse_args()

    import lfpbold
    from lfpbold.compat import UNCOMPRESSED_BLOBS
    from lfpbold.pipeline import tables_by_schema

    db = lfpbold.connect(prefix=args.prefix)
    print(f"prefix {db.prefix} on {db.backend}{' (embedded)' if db.embedded else ''}")
    header = (
        f"{'table.attribute':<44} {'rows':>5} {'raw bytes':>12} {'zlib bytes':>12} {'saving':>7} "
        f"{'raw ms':>8} {'zlib ms':>8}  stored"
    )
    print(header)
    print("-" * len(header))
    total = dict(raw=0, compressed=0, raw_s=0.0, compressed_s=0.0, stored=0, stored_s=0.0)
    for tables in tables_by_schema().values():
        for name, table in tables:
            for attribute in blob_attributes(table):
                m = measure(table(), attribute)
                if not m["rows"]:
                    continue
                saving = 1 - m["compressed"] / m["raw"]
                off = (table.table_name, attribute) in UNCOMPRESSED_BLOBS
                print(
                    f"{name + '.' + attribute:<44} {m['rows']:>5} {m['raw']:>12,} {m['compressed']:>12,} "
                    f"{100 * saving:>6.1f}% {1000 * m['raw_s']:>8.1f} {1000 * m['compressed_s']:>8.1f}  "
                    f"{'raw' if off else 'zlib'}"
                )
                total["raw"] += m["raw"]
                total["compressed"] += m["compressed"]
                total["raw_s"] += m["raw_s"]
                total["compressed_s"] += m["compressed_s"]
                total["stored"] += m["raw"] if off else m["compressed"]
                total["stored_s"] += m["raw_s"] if off else m["compressed_s"]
    print("-" * len(header))
    print(
        f"all blobs: raw {total['raw']:,} B in {1000 * total['raw_s']:.0f} ms; all compressed "
        f"{total['compressed']:,} B in {1000 * total['compressed_s']:.0f} ms; as lfpbold stores them now "
        f"{total['stored']:,} B in {1000 * total['stored_s']:.0f} ms"
    )


if __name__ == "__main__":
    main()
