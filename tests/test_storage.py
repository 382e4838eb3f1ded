"""Storage: which blobs are compressed, and the bytes of database and store a study takes."""

from __future__ import annotations

import numpy as np
import pytest

from lfpbold import compat

ZLIB = b"ZL123\0"  # DataJoint's header of a zlib-compressed blob


def _atlas_row(name: str, template: np.ndarray) -> dict:
    mask = np.zeros((16, 16, 8), bool)
    mask[4:12, 4:12, 2:6] = True
    return dict(
        atlas=name,
        shape=list(mask.shape),
        voxel_size_mm=[0.5, 0.5, 0.5],
        affine=np.eye(4) * 0.5,
        brain_mask=mask,
        wm_mask=mask,
        ventricle_mask=~mask,
        n_brain_voxels=int(mask.sum()),
        atlas_dir="atlas",
        template=template,
    )


def _stored(table, attribute: str) -> bytes:
    qi = table.connection.adapter.quote_identifier
    value = table.connection.query(f"SELECT {qi(attribute)} FROM {table.full_table_name}").fetchone()[0]
    return bytes(value)


def test_upstream_blob_codec_still_always_compresses():
    """When this fails, DataJoint stopped compressing everything: revisit compat's blob_compression."""
    from datajoint.builtin_codecs.blob import BlobCodec

    encode = compat.upstream_blob_encode()
    assert encode(BlobCodec(), np.zeros(10_000, np.float64)).startswith(ZLIB)


def test_listed_float_blobs_are_stored_raw_and_read_back(db):
    """Atlas.affine is listed (its zlib saved 0%): stored raw; the masks are compressed; both read back."""
    from lfpbold.schemas import acquisition

    assert ("atlas", "affine") in compat.UNCOMPRESSED_BLOBS
    assert compat.blob_compressed("atlas", "brain_mask")
    row = _atlas_row("raw_check", np.zeros((16, 16, 8), np.float32))
    row["affine"] = np.eye(4)[None].repeat(64, axis=0)  # > 1000 bytes and very compressible: zlib would shrink it
    acquisition.Atlas.insert1(row)
    assert not _stored(acquisition.Atlas, "affine").startswith(ZLIB)
    assert _stored(acquisition.Atlas, "brain_mask").startswith(ZLIB)
    back = (acquisition.Atlas & {"atlas": "raw_check"}).fetch1()
    np.testing.assert_array_equal(back["affine"], row["affine"])
    np.testing.assert_array_equal(back["brain_mask"], row["brain_mask"])


def test_compressed_rows_written_before_still_read(embedded_db):
    """Rows DataJoint compressed before lfpbold stored the attribute raw read back the same."""
    from datajoint import blob

    from lfpbold.schemas import acquisition

    affine = np.eye(4)[None].repeat(64, axis=0)
    packed = blob.pack(affine, compress=True)
    assert packed.startswith(ZLIB)
    np.testing.assert_array_equal(blob.unpack(packed, squeeze=False), affine)
    acquisition.Atlas.insert1(_atlas_row("old", np.zeros((16, 16, 8), np.float32)))
    assert not _stored(acquisition.Atlas, "affine").startswith(ZLIB)
    conn = acquisition.Atlas.connection
    qi = conn.adapter.quote_identifier
    conn.query(f"UPDATE {acquisition.Atlas.full_table_name} SET {qi('affine')} = %s", args=[packed])
    assert _stored(acquisition.Atlas, "affine").startswith(ZLIB)
    np.testing.assert_array_equal(acquisition.Atlas.fetch1("affine"), affine)


def test_database_bytes_count_this_prefix_only(db):
    """A 2 MB incompressible array in a table shows in the prefix's database bytes (every backend)."""
    from lfpbold.db import database_bytes, usage
    from lfpbold.pipeline import tables_by_schema
    from lfpbold.schemas import acquisition

    before = usage(db)
    assert before.scans == 0 and before.per_scan(before.database_bytes) is None
    assert before.database_bytes > 0  # the declared tables take pages already
    assert database_bytes(db.connection, [db.prefix + "no_such_schema"]) == 0
    template = np.random.default_rng(0).random(512 * 1024, dtype=np.float32)  # 2 MiB, zlib cannot shrink it
    acquisition.Atlas.insert1(_atlas_row("big", template))
    if db.backend == "mysql":  # InnoDB's data_length is a page statistic: have the server recount
        for table in (acquisition.Atlas,):
            db.connection.query(f"ANALYZE TABLE {table.full_table_name}")
    after = database_bytes(db.connection, list(tables_by_schema()))
    assert after - before.database_bytes >= template.nbytes * 0.9


def test_store_bytes_count_the_prefix_schemas_files(tmp_path):
    from lfpbold.db import store_bytes

    files = {
        "_hash/p_analysis/a": 100,
        "_hash/p_analysis/sub/b": 50,
        "p_relations/t/c": 7,  # a schema-addressed object
        "_hash/q_analysis/d": 1000,  # another prefix
        "other/e": 3,
    }
    for rel, n in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * n)
    assert store_bytes(tmp_path, ["p_analysis", "p_relations"]) == 157
    assert store_bytes(tmp_path / "missing", ["p_analysis"]) == 0


def test_lfpbold_db_reports_bytes_per_scan(populated_db, lfpbold_home):
    """`lfpbold db` on a populated study: database and store bytes, each divided by the scans."""
    import os

    from click.testing import CliRunner

    from lfpbold.cli import main
    from lfpbold.db import usage
    from lfpbold.schemas import acquisition

    used = usage(populated_db)
    scans = len(acquisition.Scan())
    assert used.scans == scans > 0 and used.store_bytes > 0
    assert used.per_scan(used.store_bytes) == pytest.approx(used.store_bytes / scans)
    env = {"LFPBOLD_HOME": os.environ["LFPBOLD_HOME"]}
    out = CliRunner().invoke(main, ["--prefix", populated_db.prefix, "db"], env=env)
    assert out.exit_code == 0, out.output
    lines = {line.split(":")[0]: line for line in out.output.splitlines() if ":" in line}
    assert f"per scan ({scans} scans)" in lines["database"]
    assert f"per scan ({scans} scans)" in lines["store"]
