"""A writer killed mid-write leaves its temporary file; the next run of a job removes it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from funfactory.shards import storage


def test_a_killed_writers_partial_is_removed_and_nothing_else(tmp_path):
    target = tmp_path / "parts" / "unit.tar"
    script = textwrap.dedent(f"""
        import time
        from funfactory.shards.storage import open_write
        with open_write({str(target)!r}) as f:
            f.write(b"half a part")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    proc.kill()
    proc.wait()
    left = list((tmp_path / "parts").glob(".*.partial"))
    assert len(left) == 1 and not target.exists()  # SIGKILL runs no cleanup
    mine = tmp_path / "notes.partial"  # a user's file that open_write did not write
    mine.write_text("keep")
    assert storage.remove_partials(tmp_path) == 1
    assert not left[0].exists() and mine.exists()
    assert storage.remove_partials(tmp_path / "absent") == 0
    assert storage.remove_partials("s3://bucket/work") == 0
