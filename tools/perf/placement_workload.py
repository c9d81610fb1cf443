#!/usr/bin/python3
"""The placement directory's cost (docs/performance.md): the statements the
PostgreSQL store runs on a placement cache miss, timed with pgbench against
a directory of N placements. Starts a throwaway PostgreSQL (tests/pg_server.py),
makes a two-shard store with `omnihubctl shard list` (which opens the store and
applies the migrations), fills placements with N rows, then times, each with
the store's own SQL shape:

- one: one conversation's placement read (a read of an uncached conversation);
- batch4096: the placements of 4,096 conversations read at once (a sync batch
  of new conversations; the ids are built in SQL, gen4096 is that part alone);
- place1 / place4096: writing one / 4,096 new placements (INSERT ... ON
  CONFLICT DO NOTHING; a commit each, fsync on).

usage: placement_workload.py BUILD_DIR [N]"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from pg_server import PgServer  # noqa: E402

SCRIPTS = {
    "one": ("2000", "\\set i random(1, :n)\n"
            "SELECT conversation_id, shard FROM placements WHERE conversation_id IN "
            "(SELECT json_array_elements_text(json_build_array('c_' || md5(:i::text))));\n"),
    "batch4096": ("50", "\\set i random(1, :n - 4096)\n"
                  "SELECT conversation_id, shard FROM placements WHERE conversation_id IN "
                  "(SELECT json_array_elements_text((SELECT json_agg('c_' || md5((:i + g)::text)) "
                  "FROM generate_series(1, 4096) g)));\n"),
    "gen4096": ("50", "\\set i random(1, :n - 4096)\n"
                "SELECT count(*) FROM json_array_elements_text((SELECT json_agg('c_' || "
                "md5((:i + g)::text)) FROM generate_series(1, 4096) g));\n"),
    "place1": ("2000", "\\set i random(1, 1000000000)\n"
               "INSERT INTO placements (conversation_id, shard) SELECT c, s FROM "
               "json_to_recordset(json_build_array(json_build_object('c', 'p_' || :i, 's', 's0'))) "
               "AS x(c text, s text) ON CONFLICT DO NOTHING;\n"),
    "place4096": ("50", "\\set i random(1, 1000000000)\n"
                  "INSERT INTO placements (conversation_id, shard) SELECT c, s FROM "
                  "json_to_recordset((SELECT json_agg(json_build_object('c', 'n_' || :i || '_' || g, "
                  "'s', 's0')) FROM generate_series(1, 4096) g)) AS x(c text, s text) "
                  "ON CONFLICT DO NOTHING;\n"),
}


def main():
    build = Path(sys.argv[1]).resolve()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    work = tempfile.mkdtemp(prefix="omnihub-placement-")
    os.chmod(work, 0o755)
    with PgServer() as pg:
        d0, d1 = pg.createdb("place0"), pg.createdb("place1")
        cfg = Path(work) / "omnihub.yaml"
        cfg.write_text('store.backend: "postgres"\nstore.postgres.shards:\n  - "%s"\n  - "%s"\n'
                       % (d0, d1))
        subprocess.run([str(build / "tools" / "omnihubctl"), "shard", "list", "-c", str(cfg)],
                       check=True, capture_output=True)

        def psql(sql):
            return subprocess.run(["psql", "-At", d0], input=sql, capture_output=True, text=True,
                                  check=True).stdout

        psql("INSERT INTO placements SELECT 'c_' || md5(i::text), 's' || (i %% 2) "
             "FROM generate_series(1, %d) i; VACUUM ANALYZE placements;" % n)
        size = psql("SELECT pg_size_pretty(pg_total_relation_size('placements'))").strip()
        print("placements: %d rows, %s (table and index)" % (n, size))
        pgbench = os.path.join(pg.bindir, "pgbench")
        for name, (count, sql) in SCRIPTS.items():
            path = Path(work) / (name + ".sql")
            path.write_text(sql)
            os.chmod(path, 0o644)
            args = [pgbench, "-n", "-M", "prepared", "-t", count, "-D", "n=%d" % n, "-f",
                    str(path), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                    "place0"]
            if os.geteuid() == 0:
                args = ["runuser", "-u", "postgres", "--"] + args
            out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
            lat = [line.split("=")[1].strip() for line in out.splitlines()
                   if line.startswith("latency average")]
            print("%-10s latency average %s over %s runs" % (name, lat[0] if lat else "?", count))


if __name__ == "__main__":
    main()
