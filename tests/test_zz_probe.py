import tests.test_multihost as t
from tests.test_multihost import members  # noqa
orig = t.test_a_node_leads_a_convention_status_names_each_workers_node_and_its_death_ends_them
def test_probe(tmp_path, members):
    try:
        orig(tmp_path, members)
    except BaseException:
        for m in members:
            for e in m.events():
                if e.get("event") != "worker.output":
                    print("MEMBER", m.name, e.get("timestamp"), e.get("event"), {k: v for k, v in e.items() if k in ("worker_id", "pool", "silent_s", "reason", "node")})
        raise
