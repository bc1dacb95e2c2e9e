"""A job is visible only to its owner; another owner's id looks exactly like an unknown one."""
from tests.helpers import submit, wait_for_state

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def test_other_owner_gets_the_same_404_as_an_unknown_id(client, other_client):
    job = submit(client, duration_seconds=0.1, steps=1)
    wait_for_state(client, job["id"], "Succeeded")
    for method, suffix in [("get", ""), ("get", "/events"), ("get", "/result"), ("delete", ""),
                           ("post", "/retry"), ("post", "/cancel")]:
        body = {"json": {}} if method == "post" else {}
        foreign = getattr(other_client, method)(f"/jobs/{job['id']}{suffix}", **body)
        unknown = getattr(other_client, method)(f"/jobs/{UNKNOWN}{suffix}", **body)
        assert foreign.status_code == unknown.status_code == 404
        assert {k: v for k, v in foreign.get_json().items() if k != "instance"} == \
               {k: v for k, v in unknown.get_json().items() if k != "instance"}
    assert other_client.get("/jobs").get_json()["total"] == 0


def test_bearer_tokens_act_as_their_owner_and_can_be_revoked(app, client):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["tokens", "create", "alice", "--name", "ci"])
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert token.startswith("lr_")
    auth = {"Authorization": f"Bearer {token}"}
    api = app.test_client(use_cookies=False)
    job = submit(api, headers=auth, duration_seconds=0, steps=1)
    assert api.get(f"/jobs/{job['id']}", headers=auth).status_code == 200
    # The browser session of someone else cannot see alice's job.
    assert client.get(f"/jobs/{job['id']}").status_code == 404
    # Only the hash is stored.
    listing = runner.invoke(args=["tokens", "list"]).output
    assert token not in listing and "alice" in listing
    token_id = next(line.split("\t")[0] for line in listing.splitlines() if "\talice\tci\t" in line)
    assert runner.invoke(args=["tokens", "revoke", token_id]).exit_code == 0
    assert api.get(f"/jobs/{job['id']}", headers=auth).status_code == 401
