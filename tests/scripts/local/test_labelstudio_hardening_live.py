"""The local Label Studio (the tests' and the demo's, scripts/local/labelstudio.py) as hardened for issue 14:
sign-up only by invitation (item 1), no secret on a command line, its data dir and database owner-only (item 10).
Against the session's real Label Studio 1.23.2."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import requests

from tests.helpers import assert_owner_only


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _group_pids(leader: int) -> list[int]:
    """Every live process in the process group LS was started in (the server and any children)."""
    pids = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:  # after "pid (comm)": state, ppid, pgrp
            pids.append(int(stat_file.parent.name))
    return pids


def _form_post(session: requests.Session, url: str, path: str, data: dict) -> requests.Response:
    """A Django form POST the way a browser sends it: the CSRF cookie from a GET of the page, then the form."""
    page = path.split("?")[0]
    session.get(url + page, timeout=30)
    token = session.cookies.get("csrftoken")
    return session.post(url + path, data={**data, "csrfmiddlewaretoken": token}, headers={"Referer": url + page},
                        allow_redirects=False, timeout=30)


def _emails(ls) -> set[str]:
    return {u.email for u in ls.users.list()}


def test_no_secret_is_on_label_studios_command_line(ls_server):
    pids = _group_pids(ls_server.pid)
    assert ls_server.pid in pids
    creds = ls_server.credentials
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert creds.password not in cmdline and creds.token not in cmdline, f"a secret in the argv of {pid}"
    assert all(secret not in " ".join(ls_server.command()) for secret in (creds.password, creds.token))


def test_the_admin_from_the_environment_logs_in_and_its_token_works(ls_server, ls):
    s = requests.Session()
    r = _form_post(s, ls_server.url, "/user/login/", {"email": ls_server.credentials.username,
                                                       "password": ls_server.credentials.password})
    assert r.status_code == 302, r.text[:300]
    assert s.get(ls_server.url + "/api/current-user/whoami", timeout=30).json()["email"] == ls_server.credentials.username
    assert ls.users.whoami().email == ls_server.credentials.username  # the legacy token set from the environment


def test_data_dir_and_env_file_are_owner_only(ls_server):
    """The session's LS runs on PostgreSQL; the SQLite case is checked on the team's LS
    (tests/scripts/labelstudio/test_own_label_studio_live.py)."""
    assert_owner_only(ls_server)


def test_sign_up_without_an_invitation_is_refused_and_with_one_works(ls_server, ls):
    intruder = f"intruder-{secrets.token_hex(4)}@example.com"
    r = _form_post(requests.Session(), ls_server.url, "/user/signup/", {"email": intruder, "password": "Intruder-pw-123"})
    assert r.status_code == 403, r.status_code
    assert intruder not in _emails(ls)
    # the admin's invitation link still lets people in (LS's own way to add a member)
    invite = requests.get(ls_server.url + "/api/invite", headers={"Authorization": f"Token {ls_server.credentials.token}"},
                          timeout=30).json()["invite_url"]
    invited = f"invited-{secrets.token_hex(4)}@example.com"
    r = _form_post(requests.Session(), ls_server.url, invite, {"email": invited, "password": "Invited-pw-123"})
    assert r.status_code == 302, r.text[:300]
    assert invited in _emails(ls)
